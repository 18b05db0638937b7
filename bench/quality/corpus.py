#!/usr/bin/env python3
"""Deterministic generator of the labelled detection-quality corpus.

    python3 bench/quality/corpus.py            # both splits
    python3 bench/quality/corpus.py --split dev

Writes bench/quality/work/<split>/ (gitignored; no fake secret is ever committed, the
generator *is* the corpus):

    tree/           files to scan as a directory (`sentinel scan path tree`)
    history/        a git repository whose history holds secrets that were later
                    removed or overwritten (`sentinel scan git history`)
    labels.jsonl    one record per labelled case (positive or negative)
    summary.json    counts by category, kind, shape, frame

Splits: `dev` (seed 1) and `heldout` (seed 2). The heldout split draws a large share of
its cases from context frames, variable names and directory layouts that `dev` never
uses (see FRAME tags "d"/"h"/"c" and heldout_name()), so rules tuned on dev do not win
heldout for free. Secret values are random strings in each provider's documented shape
(prefix, length, alphabet, checksum where the format has one), written from the
providers' public documentation. Stdlib only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import uuid as uuidlib
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
SPLITS = {"dev": 1, "heldout": 2}

# ----------------------------------------------------------------------------- random

ALPH = {
    "A": string.ascii_letters + string.digits,
    "a": string.ascii_lowercase + string.digits,
    "U": string.ascii_uppercase + string.digits,
    "h": "0123456789abcdef",
    "H": "0123456789ABCDEF",
    "d": string.digits,
    "L": string.ascii_letters,
    "l": string.ascii_lowercase,
    "B": string.ascii_uppercase + "234567",  # RFC 4648 base32
    "b": string.ascii_lowercase + "234567",
    "w": string.ascii_letters + string.digits + "_-",  # base64url
    "s": string.ascii_letters + string.digits + "+/",  # base64
    "z": string.ascii_letters + string.digits + "_~.-",  # Azure AD client secret
    "c": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",  # bech32, upper
    "e": "qpzry9x8gf2tvdw0s3jn54khce6mua7l",  # bech32, lower
    "p": string.ascii_letters + string.digits + "!@%^*-_+.~",  # passwords
    "D": string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)",  # django SECRET_KEY
}
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
FMT_RE = re.compile(r"\{(uuid|UUID|b64:\d+|b64u:\d+|b64p:\d+|[A-Za-z]:\d+(?:-\d+)?)\}")


class Rand(random.Random):
    def s(self, cls: str, n: int) -> str:
        a = ALPH[cls]
        return "".join(self.choice(a) for _ in range(n))

    def uuid(self) -> str:
        return str(uuidlib.UUID(int=self.getrandbits(128), version=4))

    def raw(self, n: int) -> bytes:
        return bytes(self.getrandbits(8) for _ in range(n))

    def fmt(self, f: str) -> str:
        def rep(m: re.Match[str]) -> str:
            t = m.group(1)
            if t == "uuid":
                return self.uuid()
            if t == "UUID":
                return self.uuid().upper()
            k, n = t.split(":")
            if k == "b64":  # standard base64 of n random bytes, padded
                return base64.b64encode(self.raw(int(n))).decode()
            if k == "b64p":  # same, without padding
                return base64.b64encode(self.raw(int(n))).decode().rstrip("=")
            if k == "b64u":
                return base64.urlsafe_b64encode(self.raw(int(n))).decode().rstrip("=")
            if "-" in n:
                lo, hi = (int(x) for x in n.split("-"))
                return self.s(k, self.randint(lo, hi))
            return self.s(k, int(n))

        return FMT_RE.sub(rep, f)

    def pick(self, seq: Any) -> Any:
        return seq[self.randrange(len(seq))]


def b62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def b64j(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


# ------------------------------------------------------------ structured value makers


def crc_token(prefix: str) -> Callable[[Rand], str]:
    """GitHub / npm token format: prefix + 30 base62 + CRC32 of those 30, base62, 6 wide."""

    def make(r: Rand) -> str:
        body = r.s("A", 30)
        return prefix + body + b62(zlib.crc32(body.encode()), 6)

    return make


def pypi_token(r: Rand) -> str:
    """PyPI API token: 'pypi-' + base64url of a v2 macaroon (location pypi.org)."""
    ident = r.uuid().encode()
    cav = json.dumps({"version": 1, "permissions": "user"}).encode()
    mac = (
        b"\x02"
        + b"\x01\x08pypi.org"
        + b"\x02"
        + bytes([len(ident)])
        + ident
        + b"\x00"
        + b"\x02"
        + bytes([len(cav)])
        + cav
        + b"\x00\x00"
        + b"\x06\x20"
        + r.raw(32)
    )
    return "pypi-" + b64u(mac)


def jwt(r: Rand, payload: dict[str, Any], alg: str = "HS256", sig_bytes: int = 32) -> str:
    head = {"alg": alg, "typ": "JWT"}
    if alg == "RS256":
        head["kid"] = r.s("w", 43)
        sig_bytes = 256
    return b64j(head) + "." + b64j(payload) + "." + b64u(r.raw(sig_bytes))


def now_claims(r: Rand) -> dict[str, Any]:
    iat = 1700000000 + r.randrange(60_000_000)
    return {"iat": iat, "exp": iat + r.choice([3600, 86400, 31536000, 315360000])}


def discord_bot(r: Rand) -> str:
    uid = str(r.randrange(10**17, 13 * 10**17))
    return b64u(uid.encode()) + "." + r.s("w", 6) + "." + r.s("w", 38)


def sentry_org(r: Rand) -> str:
    org = r.choice(["acme", "northwind", "initech", "globex", "umbrella"])
    body = {
        "iat": 1700000000 + r.randrange(10**7),
        "url": "https://sentry.io",
        "region_url": "https://us.sentry.io",
        "org": org,
    }
    return "sntrys_" + b64j(body) + "_" + r.s("w", 43)


def grafana_cloud(r: Rand) -> str:
    body = {
        "o": str(r.randrange(100000, 999999)),
        "n": "stack-" + str(r.randrange(100000, 999999)) + "-hm-read",
        "k": r.s("A", 24),
        "m": {"r": r.choice(["prod-us-east-0", "prod-eu-west-2"])},
    }
    return "glc_" + base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def onepassword_sa(r: Rand) -> str:
    body = {
        "signInAddress": "my.1password.com",
        "userAuth": {
            "method": "SRPg-4096",
            "alg": "PBES2g-HS256",
            "iterations": 650000,
            "salt": b64u(r.raw(16)),
        },
        "email": r.s("a", 13) + "@1passwordserviceaccounts.com",
        "srpX": r.s("h", 64),
        "muk": {
            "alg": "A256GCM",
            "ext": False,
            "k": b64u(r.raw(32)),
            "key_ops": ["decrypt", "encrypt"],
            "kty": "oct",
            "kid": "mp",
        },
        "secretKey": "A3-" + r.s("U", 6) + "-" + r.s("U", 6) + "-" + r.s("U", 5),
        "deviceUuid": r.s("a", 26),
    }
    return "ops_" + b64j(body)


def mapbox_secret(r: Rand) -> str:
    return "sk." + b64j({"u": r.s("l", 8), "a": r.s("a", 25)}) + "." + r.s("w", 22)


def mapbox_public(r: Rand) -> str:
    return "pk." + b64j({"u": r.s("l", 8), "a": r.s("a", 25)}) + "." + r.s("w", 22)


def intercom(r: Rand) -> str:
    return base64.b64encode(("tok:" + r.uuid() + ":1:0").encode()).decode()


def elastic_key(r: Rand) -> str:
    return base64.b64encode((r.s("w", 20) + ":" + r.s("w", 22)).encode()).decode()


def jfrog_identity(r: Rand) -> str:
    raw = "reftkn:01:" + str(r.randrange(10**9, 10**10)) + ":" + r.s("A", 27)
    return base64.b64encode(raw.encode()).decode().rstrip("=")


def supabase_service(r: Rand) -> str:
    p = {"iss": "supabase", "ref": r.s("l", 20), "role": "service_role"} | now_claims(r)
    return jwt(r, p)


def supabase_anon(r: Rand) -> str:
    p = {"iss": "supabase", "ref": r.s("l", 20), "role": "anon"} | now_claims(r)
    return jwt(r, p)


def k8s_sa_token(r: Rand) -> str:
    ns = r.choice(["default", "ci", "monitoring", "deploy"])
    p = {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": "deployer-token-" + r.s("a", 5),
        "kubernetes.io/serviceaccount/service-account.name": "deployer",
        "kubernetes.io/serviceaccount/service-account.uid": r.uuid(),
        "sub": "system:serviceaccount:" + ns + ":deployer",
    }
    return jwt(r, p, alg="RS256")


def generic_jwt(r: Rand) -> str:
    p = {
        "sub": str(r.randrange(10**6, 10**9)),
        "scope": r.choice(["read write", "admin", "api:full"]),
        "iss": "https://auth." + r.choice(["acme.io", "globex.dev", "initech.net"]),
    } | now_claims(r)
    return jwt(r, p)


def aws_session(r: Rand) -> str:
    return "IQoJb3JpZ2luX2Vj" + r.s("s", 300 + r.randrange(80)) + "="


def firebase_fcm(r: Rand) -> str:
    return "AAAA" + r.s("w", 7) + ":APA91b" + r.s("w", 134)


def twitter_bearer(r: Rand) -> str:
    return "A" * 22 + r.s("A", 23) + "%3D" + r.s("A", 50)


def salesforce(r: Rand) -> str:
    return "00D" + r.s("A", 12) + "!AQ" + r.s("A", 4) + "AQ" + r.s("A", 40) + "." + r.s("A", 48)


def azure_ad_secret(r: Rand) -> str:
    return r.s("A", 3) + r.s("d", 1) + "Q~" + r.s("z", 34)


def azure_conn(r: Rand) -> str:
    acct = r.s("l", 6) + r.choice(["store", "data", "logs", "assets"])
    return (
        "DefaultEndpointsProtocol=https;AccountName="
        + acct
        + ";AccountKey="
        + base64.b64encode(r.raw(64)).decode()
        + ";EndpointSuffix=core.windows.net"
    )


def azure_sas(r: Rand) -> str:
    sig = (
        base64.b64encode(r.raw(32))
        .decode()
        .replace("+", "%2B")
        .replace("/", "%2F")
        .replace("=", "%3D")
    )
    return (
        "https://"
        + r.s("l", 8)
        + ".blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2026-12-31T23:59:59Z"
        + "&st=2024-01-01T00:00:00Z&spr=https&sig="
        + sig
    )


def azure_cosmos(r: Rand) -> str:
    return (
        "AccountEndpoint=https://"
        + r.s("l", 7)
        + "-cosmos.documents.azure.com:443/;AccountKey="
        + base64.b64encode(r.raw(64)).decode()
        + ";"
    )


def azure_servicebus(r: Rand) -> str:
    return (
        "Endpoint=sb://"
        + r.s("l", 7)
        + "-bus.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey="
        + base64.b64encode(r.raw(32)).decode()
    )


def teams_webhook(r: Rand) -> str:
    return (
        "https://"
        + r.s("l", 7)
        + ".webhook.office.com/webhookb2/"
        + r.uuid()
        + "@"
        + r.uuid()
        + "/IncomingWebhook/"
        + r.s("h", 32)
        + "/"
        + r.uuid()
    )


def cloudinary(r: Rand) -> str:
    return "cloudinary://" + r.s("d", 15) + ":" + r.s("w", 27) + "@" + r.s("l", 8)


def mailchimp(r: Rand) -> str:
    return r.s("h", 32) + "-us" + str(r.randrange(1, 22))


def pinecone(r: Rand) -> str:
    return "pcsk_" + r.s("A", 5) + "_" + r.s("A", 63)


def bip39(r: Rand) -> str:
    return " ".join(r.choice(BIP39_WORDS) for _ in range(12))


BIP39_WORDS = (  # noqa: SIM905 (some of the BIP-39 English list)
    "abandon ability able about above absent absorb abstract absurd abuse access accident "
    "account accuse achieve acid acoustic acquire across act action actor actress actual "
    "adapt add addict address adjust admit adult advance advice aerobic affair afford afraid "
    "again age agent agree ahead aim air airport aisle alarm album alcohol alert alien all "
    "alley allow almost alone alpha already also alter always amateur amazing among amount "
    "amused analyst anchor ancient anger angle angry animal ankle announce annual another "
    "answer antenna antique anxiety any apart apology appear apple approve april arch arctic "
    "area arena argue arm armed armor army around arrange arrest arrive arrow art artefact "
    "artist artwork ask aspect assault asset assist assume asthma athlete atom attack attend "
    "badge bag balance balcony ball bamboo banana banner bar barely bargain barrel base basic "
    "cabbage cabin cable cactus cage cake call calm camera camp canal cancel candy cannon dad "
    "damage damp dance danger daring dash daughter dawn day deal debate debris decade"
).split()


# ------------------------------------------------------------------ PEM / key material


def pem(label: str, der: bytes, width: int = 64, headers: list[str] | None = None) -> list[str]:
    b = base64.b64encode(der).decode()
    body = [b[i : i + width] for i in range(0, len(b), width)]
    return [f"-----BEGIN {label}-----", *(headers or []), *body, f"-----END {label}-----"]


def der_rsa_pkcs1(r: Rand) -> bytes:
    head = bytes.fromhex("308204a40201000282010100")
    return head + r.raw(0x4A4 + 4 - len(head))


def der_pkcs8_rsa(r: Rand) -> bytes:
    head = bytes.fromhex(
        "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100"
    )
    return head + r.raw(0x4BE + 4 - len(head))


def der_ec(r: Rand) -> bytes:
    return (
        bytes.fromhex("30770201010420")
        + r.raw(32)
        + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
        + r.raw(64)
    )


def der_pkcs8_ec(r: Rand) -> bytes:
    """PKCS#8 P-256 key, as in an App Store Connect / APNs .p8 file."""
    return (
        bytes.fromhex("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420")
        + r.raw(32)
        + bytes.fromhex("a14403420004")
        + r.raw(64)
    )


def _ssh_str(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def openssh_ed25519(r: Rand, comment: str) -> bytes:
    pk, sk = r.raw(32), r.raw(32)
    pub = _ssh_str(b"ssh-ed25519") + _ssh_str(pk)
    chk = r.raw(4)
    priv = chk + chk + pub + _ssh_str(sk + pk) + _ssh_str(comment.encode())
    pad = 1
    while len(priv) % 8:
        priv += bytes([pad])
        pad += 1
    return (
        b"openssh-key-v1\x00"
        + _ssh_str(b"none")
        + _ssh_str(b"none")
        + _ssh_str(b"")
        + (1).to_bytes(4, "big")
        + _ssh_str(pub)
        + _ssh_str(priv)
    )


def openssh_rsa(r: Rand, comment: str) -> bytes:
    n = b"\x00" + r.raw(256)
    pub = _ssh_str(b"ssh-rsa") + _ssh_str(b"\x01\x00\x01") + _ssh_str(n)
    chk = r.raw(4)
    priv = (
        chk
        + chk
        + _ssh_str(b"ssh-rsa")
        + _ssh_str(n)
        + _ssh_str(b"\x01\x00\x01")
        + _ssh_str(b"\x00" + r.raw(256))
        + _ssh_str(b"\x00" + r.raw(128))
        + _ssh_str(b"\x00" + r.raw(128))
        + _ssh_str(b"\x00" + r.raw(128))
        + _ssh_str(comment.encode())
    )
    pad = 1
    while len(priv) % 8:
        priv += bytes([pad])
        pad += 1
    return (
        b"openssh-key-v1\x00"
        + _ssh_str(b"none")
        + _ssh_str(b"none")
        + _ssh_str(b"")
        + (1).to_bytes(4, "big")
        + _ssh_str(pub)
        + _ssh_str(priv)
    )


def ssh_rsa_pub(r: Rand) -> str:
    blob = _ssh_str(b"ssh-rsa") + _ssh_str(b"\x01\x00\x01") + _ssh_str(b"\x00" + r.raw(256))
    return "ssh-rsa " + base64.b64encode(blob).decode()


def ssh_ed_pub(r: Rand) -> str:
    blob = _ssh_str(b"ssh-ed25519") + _ssh_str(r.raw(32))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def crc24(data: bytes) -> int:
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def pgp_block(r: Rand, private: bool) -> list[str]:
    tag = b"\x95\x03\xc6\x04" if private else b"\x99\x01\x0d\x04"
    data = (
        tag
        + (1600000000 + r.randrange(10**8)).to_bytes(4, "big")
        + b"\x01"
        + r.raw(900 if private else 270)
    )
    b = base64.b64encode(data).decode()
    kind = "PRIVATE KEY BLOCK" if private else "PUBLIC KEY BLOCK"
    return [
        f"-----BEGIN PGP {kind}-----",
        "",
        *[b[i : i + 64] for i in range(0, len(b), 64)],
        "=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode(),
        f"-----END PGP {kind}-----",
    ]


def der_cert(r: Rand) -> bytes:
    head = bytes.fromhex("308203" + "5f" + "30820247a003020102021400")
    return (
        head
        + r.raw(19)
        + bytes.fromhex("300d06092a864886f70d01010b0500")
        + r.raw(0x35F + 4 - len(head) - 19 - 15)
    )


def der_pub(r: Rand) -> bytes:
    return (
        bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        + r.raw(256)
        + bytes.fromhex("0203010001")
    )


def private_key_lines(r: Rand, kind: str) -> list[str]:
    """A private key as the lines of its usual text form."""
    if kind == "rsa":
        return pem("RSA PRIVATE KEY", der_rsa_pkcs1(r))
    if kind == "pkcs8":
        return pem("PRIVATE KEY", der_pkcs8_rsa(r))
    if kind == "ec":
        return pem("EC PRIVATE KEY", der_ec(r))
    if kind == "pkcs8-ec":
        return pem("PRIVATE KEY", der_pkcs8_ec(r))
    if kind == "openssh":
        return pem(
            "OPENSSH PRIVATE KEY", openssh_ed25519(r, r.s("l", 6) + "@" + r.s("l", 5)), width=70
        )
    if kind == "openssh-rsa":
        return pem("OPENSSH PRIVATE KEY", openssh_rsa(r, "deploy@ci"), width=70)
    if kind == "pgp":
        return pgp_block(r, private=True)
    raise ValueError(kind)


def ppk_lines(r: Rand) -> list[str]:
    pub = base64.b64encode(_ssh_str(b"ssh-ed25519") + _ssh_str(r.raw(32))).decode()
    priv = base64.b64encode(_ssh_str(r.raw(32))).decode()
    return [
        "PuTTY-User-Key-File-3: ssh-ed25519",
        "Encryption: none",
        "Comment: eddsa-key-2024" + r.s("d", 4),
        "Public-Lines: 2",
        pub[:64],
        pub[64:],
        "Private-Lines: 1",
        priv,
        "Private-MAC: " + r.s("h", 64),
    ]


# ------------------------------------------------------------------------ providers


@dataclass
class Provider:
    id: str
    category: str
    gen: str | Callable[[Rand], str]
    names: list[str]  # env-style names as real code uses them; frames re-case them
    alt: list[str] = field(
        default_factory=list
    )  # heldout-only names (besides the automatic variants)
    api: str | None = None  # if set, the value may appear in a curl header to this host
    header: str = "Authorization: Bearer {v}"
    pair: tuple[str, str] | None = (
        None  # (name, format) of the identifier real code keeps next to it
    )
    count: int = 3  # cases per split

    def make(self, r: Rand) -> str:
        return self.gen(r) if callable(self.gen) else r.fmt(self.gen)


def P(
    id: str, cat: str, gen: Any, names: str, alt: str = "", api: str | None = None, header: str = ""
) -> Provider:
    return Provider(
        id, cat, gen, names.split(), alt.split(), api, header or "Authorization: Bearer {v}"
    )


# Credentials that come as (identifier, secret): real files hold both, next to each other, and
# several scanners only report the pair. The identifier line is part of the positive's span.
# fmt: off
PAIRS = {
    "aws-secret-access-key": ("AWS_ACCESS_KEY_ID", "AKIA{B:16}"),
    "alibaba-access-key-secret": ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI{A:20}"),
    "tencent-secret-key": ("TENCENTCLOUD_SECRET_ID", "AKID{A:32}"),
    "twilio-auth-token": ("TWILIO_ACCOUNT_SID", "AC{h:32}"),
    "twilio-api-secret": ("TWILIO_API_KEY", "SK{h:32}"),
    "algolia-admin-key": ("ALGOLIA_APP_ID", "{U:10}"),
    "mailjet-secret": ("MJ_APIKEY_PUBLIC", "{h:32}"),
    "plaid-secret": ("PLAID_CLIENT_ID", "{h:24}"),
    "binance-api-secret": ("BINANCE_API_KEY", "{A:64}"),
    "scaleway-secret-key": ("SCW_ACCESS_KEY", "SCW{U:17}"),
    "backblaze-b2-app-key": ("B2_APPLICATION_KEY_ID", "00{h:23}"),
    "confluent-api-secret": ("CONFLUENT_CLOUD_API_KEY", "{U:16}"),
    "mongodb-atlas-private-key": ("MONGODB_ATLAS_PUBLIC_KEY", "{l:8}"),
    "braintree-private-key": ("BRAINTREE_PUBLIC_KEY", "{a:16}"),
    "razorpay-key-secret": ("RAZORPAY_KEY_ID", "rzp_live_{A:14}"),
    "paypal-client-secret": ("PAYPAL_CLIENT_ID", "A{w:79}"),
    "facebook-app-secret": ("FACEBOOK_APP_ID", "{d:15}"),
    "twitter-api-secret": ("TWITTER_API_KEY", "{A:25}"),
    "github-oauth-client-secret": ("GITHUB_CLIENT_ID", "Ov23li{A:14}"),
    "google-oauth-client-secret": ("GOOGLE_CLIENT_ID", "{d:12}-{a:32}.apps.googleusercontent.com"),
    "auth0-client-secret": ("AUTH0_CLIENT_ID", "{A:32}"),
    "azure-ad-client-secret": ("AZURE_CLIENT_ID", "{uuid}"),
    "cognito-client-secret": ("COGNITO_CLIENT_ID", "{a:26}"),
    "keycloak-client-secret": ("KEYCLOAK_CLIENT_ID", "backend-{l:6}"),
    "onelogin-client-secret": ("ONELOGIN_CLIENT_ID", "{h:64}"),
    "duo-secret-key": ("DUO_INTEGRATION_KEY", "DI{U:18}"),
    "kraken-private-key": ("KRAKEN_API_KEY", "{s:56}"),
    "bybit-api-secret": ("BYBIT_API_KEY", "{A:18}"),
    "vonage-api-secret": ("VONAGE_API_KEY", "{h:8}"),
    "plivo-auth-token": ("PLIVO_AUTH_ID", "MA{U:18}"),
    "pusher-app-secret": ("PUSHER_APP_KEY", "{h:20}"),
    "sumologic-access-key": ("SUMO_ACCESS_ID", "su{A:12}"),
    "ibm-cos-hmac-secret": ("COS_HMAC_ACCESS_KEY_ID", "{h:32}"),
    "digitalocean-spaces-secret": ("SPACES_ACCESS_KEY_ID", "DO{U:18}"),
    "kucoin-api-secret": ("KUCOIN_API_KEY", "{h:24}"),
    "okx-secret-key": ("OKX_API_KEY", "{uuid}"),
    "datadog-app-key": ("DD_API_KEY", "{h:32}"),
    "shopify-shared-secret": ("SHOPIFY_API_KEY", "{h:32}"),
    "square-app-secret": ("SQUARE_APPLICATION_ID", "sq0idp-{w:22}"),
    "akamai-client-secret": ("AKAMAI_CLIENT_TOKEN", "akab-{a:16}-{a:16}"),
}
# fmt: on
COUNTS = {"aws-access-key-id": 1, "aws-temp-access-key-id": 1}


# fmt: off
PROVIDERS: list[Provider] = [
    # --- cloud
    P("aws-access-key-id", "cloud", "AKIA{B:16}", "AWS_ACCESS_KEY_ID", "AWS_KEY_ID AWS_ACCESS_KEY"),
    P("aws-secret-access-key", "cloud", "{s:40}", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY AWS_SECRET"),
    P("aws-session-token", "cloud", aws_session, "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"),
    P("aws-temp-access-key-id", "cloud", "ASIA{B:16}", "AWS_ACCESS_KEY_ID", "AWS_TEMP_KEY_ID"),
    P("google-api-key", "cloud", "AIza{w:35}", "GOOGLE_API_KEY GCP_API_KEY", "GOOGLE_CLOUD_KEY", api="www.googleapis.com", header="x-goog-api-key: {v}"),
    P("google-oauth-refresh-token", "cloud", "1//0{w:99}", "GOOGLE_REFRESH_TOKEN", "GCLOUD_REFRESH_TOKEN"),
    P("google-oauth-access-token", "cloud", "ya29.{w:150}", "GOOGLE_ACCESS_TOKEN", "GCP_OAUTH_TOKEN", api="www.googleapis.com"),
    P("azure-storage-connection-string", "cloud", azure_conn, "AZURE_STORAGE_CONNECTION_STRING AzureWebJobsStorage", "STORAGE_CONN"),
    P("azure-sas-url", "cloud", azure_sas, "AZURE_BLOB_SAS_URL", "BACKUP_CONTAINER_URL"),
    P("azure-devops-pat", "cloud", "{b:52}", "AZURE_DEVOPS_PAT AZURE_DEVOPS_EXT_PAT", "ADO_TOKEN"),
    P("azure-cosmosdb-connection-string", "cloud", azure_cosmos, "COSMOS_CONNECTION_STRING", "COSMOSDB_CONN"),
    P("azure-servicebus-connection-string", "cloud", azure_servicebus, "SERVICEBUS_CONNECTION_STRING", "SB_CONNECTION"),
    P("digitalocean-pat", "cloud", "dop_v1_{h:64}", "DIGITALOCEAN_TOKEN DO_API_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", api="api.digitalocean.com"),
    P("digitalocean-spaces-secret", "cloud", "{s:43}", "SPACES_SECRET_ACCESS_KEY", "DO_SPACES_SECRET"),
    P("alibaba-access-key-id", "cloud", "LTAI{A:20}", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_ID"),
    P("alibaba-access-key-secret", "cloud", "{A:30}", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIYUN_ACCESS_KEY_SECRET"),
    P("tencent-secret-id", "cloud", "AKID{A:32}", "TENCENTCLOUD_SECRET_ID", "TC_SECRET_ID"),
    P("tencent-secret-key", "cloud", "{A:32}", "TENCENTCLOUD_SECRET_KEY", "TC_SECRET_KEY"),
    P("ibm-cloud-api-key", "cloud", "{w:44}", "IBMCLOUD_API_KEY IC_API_KEY", "IBM_CLOUD_APIKEY"),
    P("linode-token", "cloud", "{h:64}", "LINODE_TOKEN LINODE_API_TOKEN", "LINODE_CLI_TOKEN", api="api.linode.com"),
    P("vultr-api-key", "cloud", "{U:36}", "VULTR_API_KEY", "VULTR_KEY", api="api.vultr.com"),
    P("hetzner-cloud-token", "cloud", "{A:64}", "HCLOUD_TOKEN", "HETZNER_TOKEN", api="api.hetzner.cloud"),
    P("scaleway-secret-key", "cloud", "{uuid}", "SCW_SECRET_KEY", "SCALEWAY_SECRET_KEY"),
    P("cloudflare-api-token", "cloud", "{w:40}", "CLOUDFLARE_API_TOKEN CF_API_TOKEN", "CLOUDFLARE_TOKEN", api="api.cloudflare.com"),
    P("cloudflare-global-api-key", "cloud", "{h:37}", "CLOUDFLARE_API_KEY CF_API_KEY", "CLOUDFLARE_GLOBAL_KEY"),
    P("cloudflare-origin-ca-key", "cloud", "v1.0-{h:24}-{h:146}", "CF_ORIGIN_CA_KEY", "CLOUDFLARE_ORIGIN_KEY"),
    P("heroku-api-key", "cloud", "{uuid}", "HEROKU_API_KEY", "HEROKU_AUTH_TOKEN", api="api.heroku.com"),
    P("heroku-api-key-v2", "cloud", "HRKU-AA{w:58}", "HEROKU_API_KEY", "HEROKU_OAUTH_TOKEN", api="api.heroku.com"),
    P("flyio-token", "cloud", "FlyV1 fm2_{b64:120},fm2_{b64:90}", "FLY_API_TOKEN", "FLY_ACCESS_TOKEN"),
    P("netlify-pat", "cloud", "nfp_{A:36}", "NETLIFY_AUTH_TOKEN", "NETLIFY_TOKEN", api="api.netlify.com"),
    P("vercel-token", "cloud", "{A:24}", "VERCEL_TOKEN", "VERCEL_ACCESS_TOKEN", api="api.vercel.com"),
    P("render-api-key", "cloud", "rnd_{A:32}", "RENDER_API_KEY", "RENDER_TOKEN", api="api.render.com"),
    P("railway-token", "cloud", "{uuid}", "RAILWAY_TOKEN", "RAILWAY_API_TOKEN"),
    P("yandex-api-key", "cloud", "AQVN{w:35}", "YC_API_KEY YANDEX_API_KEY", "YANDEX_CLOUD_KEY"),
    P("backblaze-b2-app-key", "cloud", "K00{d:1}{A:27}", "B2_APPLICATION_KEY", "BACKBLAZE_KEY"),
    P("cloudinary-url", "cloud", cloudinary, "CLOUDINARY_URL", "MEDIA_CLOUDINARY_URL"),
    P("akamai-client-secret", "cloud", "{b64:32}", "AKAMAI_CLIENT_SECRET", "EDGEGRID_CLIENT_SECRET"),
    P("fastly-api-token", "cloud", "{w:32}", "FASTLY_API_TOKEN", "FASTLY_KEY", api="api.fastly.com", header="Fastly-Key: {v}"),
    P("kubernetes-sa-token", "cloud", k8s_sa_token, "KUBE_TOKEN K8S_SA_TOKEN", "CLUSTER_TOKEN", api="kubernetes.default.svc"),
    P("ibm-cos-hmac-secret", "cloud", "{h:48}", "COS_HMAC_SECRET_ACCESS_KEY", "IBM_COS_SECRET"),
    # --- payments / commerce
    P("stripe-secret-key", "payments", "sk_live_{A:24}", "STRIPE_SECRET_KEY STRIPE_API_KEY", "STRIPE_LIVE_SECRET", api="api.stripe.com"),
    P("stripe-secret-key-long", "payments", "sk_live_51{A:97}", "STRIPE_SECRET_KEY", "STRIPE_SK", api="api.stripe.com"),
    P("stripe-restricted-key", "payments", "rk_live_{A:24}", "STRIPE_RESTRICTED_KEY", "STRIPE_RK"),
    P("stripe-webhook-secret", "payments", "whsec_{A:32}", "STRIPE_WEBHOOK_SECRET", "STRIPE_SIGNING_SECRET"),
    P("braintree-access-token", "payments", "access_token$production${a:16}${h:32}", "BRAINTREE_ACCESS_TOKEN", "PAYPAL_ACCESS_TOKEN"),
    P("braintree-private-key", "payments", "{h:32}", "BRAINTREE_PRIVATE_KEY", "BT_PRIVATE_KEY"),
    P("paypal-client-secret", "payments", "E{w:79}", "PAYPAL_CLIENT_SECRET", "PAYPAL_SECRET"),
    P("square-access-token", "payments", "EAAA{w:60}", "SQUARE_ACCESS_TOKEN", "SQUARE_TOKEN", api="connect.squareup.com"),
    P("square-app-secret", "payments", "sq0csp-{w:43}", "SQUARE_APPLICATION_SECRET", "SQUARE_OAUTH_SECRET"),
    P("razorpay-key-secret", "payments", "{A:24}", "RAZORPAY_KEY_SECRET", "RAZORPAY_SECRET"),
    P("mollie-api-key", "payments", "live_{A:30}", "MOLLIE_API_KEY", "MOLLIE_KEY", api="api.mollie.com"),
    P("paystack-secret-key", "payments", "sk_live_{h:40}", "PAYSTACK_SECRET_KEY", "PAYSTACK_SK", api="api.paystack.co"),
    P("flutterwave-secret-key", "payments", "FLWSECK-{h:32}-X", "FLW_SECRET_KEY", "FLUTTERWAVE_SECRET"),
    P("gocardless-token", "payments", "live_{w:40}", "GOCARDLESS_ACCESS_TOKEN", "GC_ACCESS_TOKEN", api="api.gocardless.com"),
    P("plaid-secret", "payments", "{h:30}", "PLAID_SECRET", "PLAID_PRODUCTION_SECRET"),
    P("plaid-access-token", "payments", "access-production-{uuid}", "PLAID_ACCESS_TOKEN", "PLAID_ITEM_TOKEN"),
    P("authorizenet-transaction-key", "payments", "{A:16}", "AUTHORIZE_NET_TRANSACTION_KEY", "AUTHNET_TRANSACTION_KEY"),
    P("shopify-admin-token", "payments", "shpat_{h:32}", "SHOPIFY_ACCESS_TOKEN SHOPIFY_ADMIN_API_TOKEN", "SHOPIFY_TOKEN", header="X-Shopify-Access-Token: {v}", api="shop.myshopify.com"),
    P("shopify-shared-secret", "payments", "shpss_{h:32}", "SHOPIFY_API_SECRET", "SHOPIFY_SHARED_SECRET"),
    P("shopify-custom-app-token", "payments", "shpca_{h:32}", "SHOPIFY_CUSTOM_APP_TOKEN", "SHOPIFY_APP_TOKEN"),
    P("shopify-private-app-password", "payments", "shppa_{h:32}", "SHOPIFY_PASSWORD", "SHOPIFY_PRIVATE_APP_PASSWORD"),
    P("shippo-token", "payments", "shippo_live_{h:40}", "SHIPPO_API_TOKEN", "SHIPPO_KEY", api="api.goshippo.com", header="Authorization: ShippoToken {v}"),
    P("easypost-api-key", "payments", "EZAK{A:54}", "EASYPOST_API_KEY", "EASYPOST_KEY"),
    # --- CI/CD, source hosting, secret managers
    P("github-pat", "cicd", crc_token("ghp_"), "GITHUB_TOKEN GH_TOKEN", "GITHUB_PAT GH_PAT", api="api.github.com", header="Authorization: token {v}"),
    P("github-oauth-token", "cicd", crc_token("gho_"), "GITHUB_OAUTH_TOKEN", "GH_OAUTH"),
    P("github-user-to-server", "cicd", crc_token("ghu_"), "GITHUB_USER_TOKEN", "GH_USER_TOKEN"),
    P("github-server-to-server", "cicd", crc_token("ghs_"), "GITHUB_APP_TOKEN", "GH_INSTALLATION_TOKEN"),
    P("github-refresh-token", "cicd", crc_token("ghr_"), "GITHUB_REFRESH_TOKEN", "GH_REFRESH"),
    P("github-fine-grained-pat", "cicd", "github_pat_11{U:20}_{A:59}", "GITHUB_TOKEN GH_TOKEN", "GITHUB_FG_TOKEN", api="api.github.com"),
    P("github-oauth-client-secret", "identity", "{h:40}", "GITHUB_CLIENT_SECRET", "GH_OAUTH_CLIENT_SECRET"),
    P("gitlab-pat", "cicd", "glpat-{w:20}", "GITLAB_TOKEN GITLAB_PRIVATE_TOKEN", "GL_TOKEN", api="gitlab.com", header="PRIVATE-TOKEN: {v}"),
    P("gitlab-pipeline-trigger", "cicd", "glptt-{h:40}", "GITLAB_TRIGGER_TOKEN", "CI_TRIGGER_TOKEN"),
    P("gitlab-runner-token", "cicd", "glrt-{w:20}", "RUNNER_TOKEN CI_SERVER_TOKEN", "GITLAB_RUNNER_AUTH"),
    P("gitlab-runner-registration", "cicd", "GR1348941{w:20}", "REGISTRATION_TOKEN", "GITLAB_RUNNER_REGISTRATION_TOKEN"),
    P("gitlab-deploy-token", "cicd", "gldt-{w:20}", "GITLAB_DEPLOY_TOKEN", "DEPLOY_TOKEN_PASSWORD"),
    P("gitlab-feed-token", "cicd", "glft-{w:20}", "GITLAB_FEED_TOKEN", "GL_FEED_TOKEN"),
    P("bitbucket-app-password", "cicd", "ATBB{A:32}", "BITBUCKET_APP_PASSWORD", "BB_APP_PASSWORD"),
    P("atlassian-api-token", "collaboration", "ATATT3xFfGF0{w:170}={H:8}", "ATLASSIAN_API_TOKEN JIRA_API_TOKEN", "CONFLUENCE_API_TOKEN"),
    P("circleci-pat", "cicd", "CCIPAT_{A:22}_{h:40}", "CIRCLECI_TOKEN CIRCLE_TOKEN", "CIRCLECI_API_TOKEN", api="circleci.com", header="Circle-Token: {v}"),
    P("travis-token", "cicd", "{w:22}", "TRAVIS_TOKEN TRAVIS_API_TOKEN", "TRAVIS_CI_TOKEN"),
    P("buildkite-token", "cicd", "bkua_{h:40}", "BUILDKITE_API_TOKEN", "BUILDKITE_TOKEN", api="api.buildkite.com"),
    P("drone-token", "cicd", "{A:32}", "DRONE_TOKEN", "DRONE_API_TOKEN"),
    P("jenkins-api-token", "cicd", "11{h:32}", "JENKINS_API_TOKEN JENKINS_TOKEN", "JENKINS_USER_TOKEN"),
    P("teamcity-token", "cicd", "eyJ0eXAiOiAiVENWMiJ9.{w:27}.{w:48}", "TEAMCITY_TOKEN", "TC_ACCESS_TOKEN"),
    P("codecov-token", "cicd", "{uuid}", "CODECOV_TOKEN", "CODECOV_UPLOAD_TOKEN"),
    P("sonarqube-token", "cicd", "squ_{h:40}", "SONAR_TOKEN", "SONARQUBE_TOKEN"),
    P("sonarcloud-token", "cicd", "{h:40}", "SONAR_TOKEN", "SONARCLOUD_TOKEN"),
    P("snyk-token", "cicd", "{uuid}", "SNYK_TOKEN", "SNYK_API_TOKEN"),
    P("octopus-api-key", "cicd", "API-{U:27}", "OCTOPUS_API_KEY", "OCTOPUS_CLI_API_KEY", header="X-Octopus-ApiKey: {v}", api="octopus.example.com"),
    P("harness-pat", "cicd", "pat.{A:22}.{h:24}.{A:20}", "HARNESS_API_KEY", "HARNESS_PLATFORM_API_KEY"),
    P("pulumi-token", "cicd", "pul-{h:40}", "PULUMI_ACCESS_TOKEN", "PULUMI_TOKEN"),
    P("terraform-cloud-token", "cicd", "{A:14}.atlasv1.{A:67}", "TFE_TOKEN TF_API_TOKEN", "TERRAFORM_CLOUD_TOKEN", api="app.terraform.io"),
    P("vault-service-token", "cicd", "hvs.CAESI{w:86}", "VAULT_TOKEN", "VAULT_ROOT_TOKEN"),
    P("vault-batch-token", "cicd", "hvb.AAAAAQ{w:120}", "VAULT_TOKEN", "VAULT_BATCH_TOKEN"),
    P("doppler-personal-token", "cicd", "dp.pt.{A:43}", "DOPPLER_TOKEN", "DOPPLER_PERSONAL_TOKEN"),
    P("doppler-service-token", "cicd", "dp.st.prd.{A:43}", "DOPPLER_TOKEN", "DOPPLER_SERVICE_TOKEN"),
    P("onepassword-service-account", "cicd", onepassword_sa, "OP_SERVICE_ACCOUNT_TOKEN", "ONEPASSWORD_SA_TOKEN"),
    P("tailscale-auth-key", "devtools", "tskey-auth-k{A:11}CNTRL-{A:33}", "TS_AUTHKEY TAILSCALE_AUTHKEY", "TAILSCALE_AUTH_KEY"),
    P("tailscale-api-key", "devtools", "tskey-api-k{A:11}CNTRL-{A:33}", "TAILSCALE_API_KEY", "TS_API_KEY", api="api.tailscale.com"),
    P("ngrok-authtoken", "devtools", "2{A:26}_{A:21}", "NGROK_AUTHTOKEN", "NGROK_AUTH_TOKEN"),
    P("sourcegraph-token", "devtools", "sgp_{h:16}_{h:40}", "SRC_ACCESS_TOKEN", "SOURCEGRAPH_TOKEN"),
    P("postman-api-key", "devtools", "PMAK-{h:24}-{h:34}", "POSTMAN_API_KEY", "POSTMAN_KEY", header="X-Api-Key: {v}", api="api.getpostman.com"),
    # --- artifact registries
    P("npm-token", "registry", crc_token("npm_"), "NPM_TOKEN NODE_AUTH_TOKEN", "NPM_AUTH_TOKEN"),
    P("pypi-token", "registry", pypi_token, "PYPI_API_TOKEN TWINE_PASSWORD", "PYPI_TOKEN"),
    P("rubygems-key", "registry", "rubygems_{h:48}", "GEM_HOST_API_KEY RUBYGEMS_API_KEY", "RUBYGEMS_TOKEN"),
    P("nuget-api-key", "registry", "oy2{a:43}", "NUGET_API_KEY", "NUGET_KEY"),
    P("jfrog-api-key", "registry", "AKCp{A:69}", "ARTIFACTORY_API_KEY", "JFROG_API_KEY", header="X-JFrog-Art-Api: {v}", api="acme.jfrog.io"),
    P("jfrog-identity-token", "registry", jfrog_identity, "ARTIFACTORY_ACCESS_TOKEN JFROG_ACCESS_TOKEN", "JF_ACCESS_TOKEN", api="acme.jfrog.io"),
    P("clojars-token", "registry", "CLOJARS_{a:60}", "CLOJARS_PASSWORD CLOJARS_DEPLOY_TOKEN", "CLOJARS_TOKEN"),
    P("crates-io-token", "registry", "cio{A:32}", "CARGO_REGISTRY_TOKEN", "CRATES_IO_TOKEN"),
    P("dockerhub-pat", "registry", "dckr_pat_{w:27}", "DOCKERHUB_TOKEN DOCKER_PASSWORD", "DOCKER_HUB_PAT"),
    P("gradle-publish-secret", "registry", "{A:32}", "GRADLE_PUBLISH_SECRET", "GRADLE_PLUGIN_PORTAL_SECRET"),
    P("cloudsmith-api-key", "registry", "{h:40}", "CLOUDSMITH_API_KEY", "CLOUDSMITH_KEY"),
    # --- observability / incident
    P("datadog-api-key", "observability", "{h:32}", "DD_API_KEY DATADOG_API_KEY", "DATADOG_KEY", header="DD-API-KEY: {v}", api="api.datadoghq.com"),
    P("datadog-app-key", "observability", "{h:40}", "DD_APP_KEY DATADOG_APP_KEY", "DATADOG_APPLICATION_KEY"),
    P("newrelic-user-key", "observability", "NRAK-{U:27}", "NEW_RELIC_API_KEY", "NEWRELIC_USER_KEY", header="Api-Key: {v}", api="api.newrelic.com"),
    P("newrelic-license-key", "observability", "{h:36}NRAL", "NEW_RELIC_LICENSE_KEY", "NR_LICENSE_KEY"),
    P("newrelic-insert-key", "observability", "NRII-{w:32}", "NEW_RELIC_INSERT_KEY", "NR_INSERT_KEY"),
    P("sentry-org-token", "observability", sentry_org, "SENTRY_AUTH_TOKEN", "SENTRY_TOKEN"),
    P("sentry-user-token", "observability", "sntryu_{h:64}", "SENTRY_AUTH_TOKEN", "SENTRY_USER_TOKEN", api="sentry.io"),
    P("grafana-cloud-token", "observability", grafana_cloud, "GRAFANA_CLOUD_API_KEY", "GRAFANA_CLOUD_TOKEN"),
    P("grafana-service-account", "observability", "glsa_{A:32}_{h:8}", "GRAFANA_TOKEN GRAFANA_SERVICE_ACCOUNT_TOKEN", "GRAFANA_SA_TOKEN"),
    P("honeycomb-api-key", "observability", "{A:22}", "HONEYCOMB_API_KEY", "HONEYCOMB_WRITEKEY", header="X-Honeycomb-Team: {v}", api="api.honeycomb.io"),
    P("splunk-hec-token", "observability", "{uuid}", "SPLUNK_HEC_TOKEN", "SPLUNK_TOKEN", header="Authorization: Splunk {v}", api="splunk.example.com:8088"),
    P("dynatrace-token", "observability", "dt0c01.{U:24}.{U:64}", "DT_API_TOKEN DYNATRACE_API_TOKEN", "DYNATRACE_TOKEN"),
    P("pagerduty-api-key", "observability", "u+{w:18}", "PAGERDUTY_TOKEN PAGERDUTY_API_KEY", "PD_API_KEY"),
    P("opsgenie-api-key", "observability", "{uuid}", "OPSGENIE_API_KEY", "OPSGENIE_KEY", header="Authorization: GenieKey {v}", api="api.opsgenie.com"),
    P("sumologic-access-key", "observability", "{A:64}", "SUMO_ACCESS_KEY SUMOLOGIC_ACCESS_KEY", "SUMO_KEY"),
    P("rollbar-token", "observability", "{h:32}", "ROLLBAR_ACCESS_TOKEN", "ROLLBAR_TOKEN"),
    P("bugsnag-api-key", "observability", "{h:32}", "BUGSNAG_API_KEY", "BUGSNAG_KEY"),
    P("axiom-token", "observability", "xaat-{uuid}", "AXIOM_TOKEN", "AXIOM_API_TOKEN"),
    P("logzio-token", "observability", "{A:32}", "LOGZIO_TOKEN LOGZIO_SHIPPING_TOKEN", "LOGZ_TOKEN"),
    P("coralogix-key", "observability", "cxtp_{A:30}", "CORALOGIX_PRIVATE_KEY", "CX_API_KEY"),
    P("elastic-api-key", "database", elastic_key, "ELASTIC_API_KEY ES_API_KEY", "ELASTICSEARCH_API_KEY", header="Authorization: ApiKey {v}", api="es.example.com:9200"),
    # --- CRM / marketing / email
    P("hubspot-private-app", "crm-marketing", "pat-na1-{uuid}", "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_TOKEN", api="api.hubapi.com"),
    P("salesforce-access-token", "crm-marketing", salesforce, "SF_ACCESS_TOKEN SALESFORCE_ACCESS_TOKEN", "SFDC_TOKEN"),
    P("mailchimp-api-key", "crm-marketing", mailchimp, "MAILCHIMP_API_KEY", "MAILCHIMP_KEY"),
    P("mailgun-api-key", "crm-marketing", "key-{h:32}", "MAILGUN_API_KEY", "MAILGUN_KEY"),
    P("mailgun-private-key", "crm-marketing", "{h:32}-{h:8}-{h:8}", "MAILGUN_API_KEY", "MAILGUN_PRIVATE_KEY"),
    P("sendgrid-api-key", "crm-marketing", "SG.{w:22}.{w:43}", "SENDGRID_API_KEY", "SENDGRID_KEY", api="api.sendgrid.com"),
    P("mailjet-secret", "crm-marketing", "{h:32}", "MJ_APIKEY_PRIVATE MAILJET_SECRET_KEY", "MAILJET_SECRET"),
    P("postmark-server-token", "crm-marketing", "{uuid}", "POSTMARK_SERVER_TOKEN POSTMARK_API_TOKEN", "POSTMARK_TOKEN", header="X-Postmark-Server-Token: {v}", api="api.postmarkapp.com"),
    P("brevo-api-key", "crm-marketing", "xkeysib-{h:64}-{A:16}", "BREVO_API_KEY SENDINBLUE_API_KEY", "SIB_API_KEY"),
    P("intercom-access-token", "crm-marketing", intercom, "INTERCOM_ACCESS_TOKEN", "INTERCOM_TOKEN", api="api.intercom.io"),
    P("zendesk-api-token", "crm-marketing", "{A:40}", "ZENDESK_API_TOKEN", "ZENDESK_TOKEN"),
    P("klaviyo-private-key", "crm-marketing", "pk_{h:34}", "KLAVIYO_PRIVATE_API_KEY", "KLAVIYO_API_KEY"),
    P("pipedrive-api-token", "crm-marketing", "{h:40}", "PIPEDRIVE_API_TOKEN", "PIPEDRIVE_TOKEN"),
    P("typeform-token", "crm-marketing", "tfp_{w:44}_{w:14}", "TYPEFORM_TOKEN", "TYPEFORM_API_TOKEN"),
    P("contentful-pat", "crm-marketing", "CFPAT-{w:43}", "CONTENTFUL_MANAGEMENT_TOKEN", "CONTENTFUL_CMA_TOKEN"),
    P("freshdesk-api-key", "crm-marketing", "{A:20}", "FRESHDESK_API_KEY", "FRESHDESK_KEY"),
    P("posthog-personal-key", "crm-marketing", "phx_{A:43}", "POSTHOG_PERSONAL_API_KEY", "POSTHOG_API_KEY"),
    # --- collaboration / productivity
    P("airtable-pat", "collaboration", "pat{A:14}.{h:64}", "AIRTABLE_API_KEY AIRTABLE_TOKEN", "AIRTABLE_PAT", api="api.airtable.com"),
    P("notion-token", "collaboration", "secret_{A:43}", "NOTION_TOKEN NOTION_API_KEY", "NOTION_SECRET", api="api.notion.com"),
    P("notion-token-v2", "collaboration", "ntn_{d:11}{A:35}", "NOTION_TOKEN", "NOTION_INTEGRATION_TOKEN", api="api.notion.com"),
    P("asana-pat", "collaboration", "2/{d:16}/{d:16}:{h:32}", "ASANA_ACCESS_TOKEN", "ASANA_PAT"),
    P("linear-api-key", "collaboration", "lin_api_{A:40}", "LINEAR_API_KEY", "LINEAR_TOKEN", header="Authorization: {v}", api="api.linear.app"),
    P("clickup-token", "collaboration", "pk_{d:8}_{U:32}", "CLICKUP_API_TOKEN", "CLICKUP_TOKEN"),
    P("trello-token", "collaboration", "ATTA{h:64}{H:8}", "TRELLO_TOKEN", "TRELLO_API_TOKEN"),
    P("figma-pat", "collaboration", "figd_{w:40}", "FIGMA_TOKEN FIGMA_ACCESS_TOKEN", "FIGMA_PAT", header="X-Figma-Token: {v}", api="api.figma.com"),
    P("dropbox-token", "collaboration", "sl.{w:135}", "DROPBOX_ACCESS_TOKEN", "DROPBOX_TOKEN", api="api.dropboxapi.com"),
    P("box-developer-token", "collaboration", "{A:32}", "BOX_DEVELOPER_TOKEN", "BOX_TOKEN"),
    # --- messaging / social
    P("slack-bot-token", "messaging", "xoxb-{d:11}-{d:13}-{A:24}", "SLACK_BOT_TOKEN SLACK_TOKEN", "SLACK_BOT_OAUTH_TOKEN", api="slack.com"),
    P("slack-user-token", "messaging", "xoxp-{d:11}-{d:11}-{d:13}-{h:32}", "SLACK_USER_TOKEN SLACK_TOKEN", "SLACK_OAUTH_TOKEN", api="slack.com"),
    P("slack-app-token", "messaging", "xapp-1-A{U:10}-{d:13}-{h:64}", "SLACK_APP_TOKEN", "SLACK_SOCKET_TOKEN"),
    P("slack-webhook", "messaging", "https://hooks.slack.com/services/T{U:10}/B{U:10}/{A:24}", "SLACK_WEBHOOK_URL", "SLACK_ALERTS_WEBHOOK"),
    P("slack-refresh-token", "messaging", "xoxe-1-{A:146}", "SLACK_REFRESH_TOKEN", "SLACK_ROTATION_TOKEN"),
    P("discord-bot-token", "messaging", discord_bot, "DISCORD_TOKEN DISCORD_BOT_TOKEN", "BOT_TOKEN", header="Authorization: Bot {v}", api="discord.com"),
    P("discord-webhook", "messaging", "https://discord.com/api/webhooks/{d:19}/{w:68}", "DISCORD_WEBHOOK_URL", "DISCORD_WEBHOOK"),
    P("telegram-bot-token", "messaging", "{d:10}:AA{w:33}", "TELEGRAM_BOT_TOKEN TELEGRAM_TOKEN", "TG_BOT_TOKEN"),
    P("twilio-auth-token", "messaging", "{h:32}", "TWILIO_AUTH_TOKEN", "TWILIO_TOKEN"),
    P("twilio-api-secret", "messaging", "{A:32}", "TWILIO_API_SECRET", "TWILIO_API_KEY_SECRET"),
    P("teams-webhook", "messaging", teams_webhook, "TEAMS_WEBHOOK_URL", "MSTEAMS_WEBHOOK"),
    P("pusher-app-secret", "messaging", "{h:20}", "PUSHER_APP_SECRET", "PUSHER_SECRET"),
    P("ably-api-key", "messaging", "{A:6}.{A:6}:{w:43}", "ABLY_API_KEY", "ABLY_KEY"),
    P("plivo-auth-token", "messaging", "{A:40}", "PLIVO_AUTH_TOKEN", "PLIVO_TOKEN"),
    P("vonage-api-secret", "messaging", "{A:16}", "VONAGE_API_SECRET NEXMO_API_SECRET", "NEXMO_SECRET"),
    P("facebook-access-token", "messaging", "EAA{A:170}", "FACEBOOK_ACCESS_TOKEN FB_PAGE_ACCESS_TOKEN", "META_ACCESS_TOKEN", api="graph.facebook.com"),
    P("facebook-app-secret", "messaging", "{h:32}", "FACEBOOK_APP_SECRET FB_APP_SECRET", "META_APP_SECRET"),
    P("twitter-bearer-token", "messaging", twitter_bearer, "TWITTER_BEARER_TOKEN", "X_BEARER_TOKEN", api="api.twitter.com"),
    P("twitter-api-secret", "messaging", "{A:50}", "TWITTER_API_SECRET TWITTER_CONSUMER_SECRET", "X_API_SECRET"),
    # --- maps
    P("mapbox-secret-token", "maps", mapbox_secret, "MAPBOX_SECRET_TOKEN MAPBOX_DOWNLOADS_TOKEN", "MAPBOX_SK"),
    P("google-maps-key", "maps", "AIza{w:35}", "GOOGLE_MAPS_API_KEY", "MAPS_API_KEY"),
    P("here-api-key", "maps", "{w:43}", "HERE_API_KEY", "HERE_APIKEY"),
    P("tomtom-api-key", "maps", "{A:32}", "TOMTOM_API_KEY", "TOMTOM_KEY"),
    P("opencage-api-key", "maps", "{h:32}", "OPENCAGE_API_KEY", "OPENCAGE_KEY"),
    P("bing-maps-key", "maps", "{w:64}", "BING_MAPS_KEY", "BINGMAPS_API_KEY"),
    # --- AI / ML
    P("openai-project-key", "ai-ml", "sk-proj-{w:74}T3BlbkFJ{w:74}", "OPENAI_API_KEY", "OPENAI_KEY", api="api.openai.com"),
    P("openai-legacy-key", "ai-ml", "sk-{A:20}T3BlbkFJ{A:20}", "OPENAI_API_KEY", "OPENAI_SECRET_KEY", api="api.openai.com"),
    P("openai-service-account-key", "ai-ml", "sk-svcacct-{w:74}T3BlbkFJ{w:74}", "OPENAI_API_KEY", "OPENAI_SVC_KEY"),
    P("anthropic-api-key", "ai-ml", "sk-ant-api03-{w:93}AA", "ANTHROPIC_API_KEY", "CLAUDE_API_KEY", api="api.anthropic.com", header="x-api-key: {v}"),
    P("anthropic-admin-key", "ai-ml", "sk-ant-admin01-{w:93}AA", "ANTHROPIC_ADMIN_KEY", "ANTHROPIC_ADMIN_API_KEY"),
    P("huggingface-token", "ai-ml", "hf_{L:34}", "HF_TOKEN HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", api="huggingface.co"),
    P("huggingface-org-token", "ai-ml", "api_org_{L:34}", "HF_ORG_TOKEN", "HUGGINGFACE_ORG_KEY"),
    P("cohere-api-key", "ai-ml", "{A:40}", "COHERE_API_KEY CO_API_KEY", "COHERE_KEY", api="api.cohere.ai"),
    P("replicate-token", "ai-ml", "r8_{A:37}", "REPLICATE_API_TOKEN", "REPLICATE_TOKEN", api="api.replicate.com"),
    P("groq-api-key", "ai-ml", "gsk_{A:52}", "GROQ_API_KEY", "GROQ_KEY", api="api.groq.com"),
    P("mistral-api-key", "ai-ml", "{A:32}", "MISTRAL_API_KEY", "MISTRAL_KEY", api="api.mistral.ai"),
    P("perplexity-api-key", "ai-ml", "pplx-{A:48}", "PERPLEXITY_API_KEY PPLX_API_KEY", "PERPLEXITY_KEY", api="api.perplexity.ai"),
    P("xai-api-key", "ai-ml", "xai-{A:80}", "XAI_API_KEY", "GROK_API_KEY", api="api.x.ai"),
    P("gemini-api-key", "ai-ml", "AIza{w:35}", "GEMINI_API_KEY GOOGLE_GENAI_API_KEY", "GEMINI_KEY"),
    P("deepseek-api-key", "ai-ml", "sk-{h:32}", "DEEPSEEK_API_KEY", "DEEPSEEK_KEY", api="api.deepseek.com"),
    P("together-api-key", "ai-ml", "{h:64}", "TOGETHER_API_KEY", "TOGETHERAI_KEY"),
    P("fireworks-api-key", "ai-ml", "fw_{A:24}", "FIREWORKS_API_KEY", "FIREWORKS_KEY"),
    P("wandb-api-key", "ai-ml", "{h:40}", "WANDB_API_KEY", "WANDB_KEY"),
    P("langsmith-api-key", "ai-ml", "lsv2_pt_{h:32}_{h:10}", "LANGSMITH_API_KEY LANGCHAIN_API_KEY", "LANGSMITH_KEY"),
    P("elevenlabs-api-key", "ai-ml", "sk_{h:48}", "ELEVENLABS_API_KEY ELEVEN_API_KEY", "XI_API_KEY", header="xi-api-key: {v}", api="api.elevenlabs.io"),
    P("assemblyai-api-key", "ai-ml", "{h:32}", "ASSEMBLYAI_API_KEY", "ASSEMBLY_AI_KEY"),
    P("deepgram-api-key", "ai-ml", "{h:40}", "DEEPGRAM_API_KEY", "DEEPGRAM_KEY", header="Authorization: Token {v}", api="api.deepgram.com"),
    P("stability-api-key", "ai-ml", "sk-{A:48}", "STABILITY_API_KEY", "STABILITY_KEY"),
    P("openrouter-api-key", "ai-ml", "sk-or-v1-{h:64}", "OPENROUTER_API_KEY", "OPENROUTER_KEY", api="openrouter.ai"),
    P("azure-openai-key", "ai-ml", "{h:32}", "AZURE_OPENAI_API_KEY AZURE_OPENAI_KEY", "AOAI_KEY", header="api-key: {v}", api="acme.openai.azure.com"),
    P("cerebras-api-key", "ai-ml", "csk-{a:48}", "CEREBRAS_API_KEY", "CEREBRAS_KEY"),
    P("nvidia-api-key", "ai-ml", "nvapi-{w:64}", "NVIDIA_API_KEY NGC_API_KEY", "NIM_API_KEY"),
    P("modal-token-secret", "ai-ml", "as-{A:22}", "MODAL_TOKEN_SECRET", "MODAL_SECRET"),
    P("pinecone-api-key", "ai-ml", pinecone, "PINECONE_API_KEY", "PINECONE_KEY"),
    # --- databases / data platforms
    P("supabase-access-token", "database", "sbp_{h:40}", "SUPABASE_ACCESS_TOKEN", "SUPABASE_TOKEN"),
    P("supabase-service-role", "database", supabase_service, "SUPABASE_SERVICE_ROLE_KEY SUPABASE_SERVICE_KEY", "SUPABASE_ADMIN_KEY"),
    P("planetscale-token", "database", "pscale_tkn_{w:43}", "PLANETSCALE_SERVICE_TOKEN", "PSCALE_TOKEN"),
    P("planetscale-password", "database", "pscale_pw_{w:43}", "DATABASE_PASSWORD PLANETSCALE_DB_PASSWORD", "PSCALE_PASSWORD"),
    P("neon-api-key", "database", "napi_{a:64}", "NEON_API_KEY", "NEON_KEY"),
    P("mongodb-atlas-private-key", "database", "{uuid}", "MONGODB_ATLAS_PRIVATE_KEY ATLAS_PRIVATE_KEY", "MONGODB_ATLAS_API_PRIVATE_KEY"),
    P("databricks-token", "database", "dapi{h:32}", "DATABRICKS_TOKEN", "DATABRICKS_PAT", api="adb-1234567890123456.7.azuredatabricks.net"),
    P("fauna-secret", "database", "fnA{w:37}", "FAUNA_SECRET FAUNADB_SECRET", "FAUNA_KEY"),
    P("influxdb-token", "database", "{w:86}==", "INFLUXDB_TOKEN INFLUX_TOKEN", "INFLUXDB_ADMIN_TOKEN", header="Authorization: Token {v}", api="influx.example.com:8086"),
    P("confluent-api-secret", "database", "{s:64}", "CONFLUENT_CLOUD_API_SECRET KAFKA_API_SECRET", "CONFLUENT_SECRET"),
    P("algolia-admin-key", "database", "{h:32}", "ALGOLIA_ADMIN_API_KEY ALGOLIA_API_KEY", "ALGOLIA_WRITE_KEY", header="X-Algolia-API-Key: {v}", api="acme-dsn.algolia.net"),
    P("firebase-fcm-server-key", "database", firebase_fcm, "FCM_SERVER_KEY FIREBASE_SERVER_KEY", "FIREBASE_MESSAGING_KEY", header="Authorization: key={v}", api="fcm.googleapis.com"),
    P("xata-api-key", "database", "xau_{A:32}", "XATA_API_KEY", "XATA_KEY"),
    # --- feature flags
    P("launchdarkly-sdk-key", "feature-flags", "sdk-{uuid}", "LAUNCHDARKLY_SDK_KEY LD_SDK_KEY", "LAUNCHDARKLY_SERVER_KEY"),
    P("launchdarkly-api-token", "feature-flags", "api-{uuid}", "LAUNCHDARKLY_ACCESS_TOKEN LD_API_TOKEN", "LAUNCHDARKLY_API_KEY", header="Authorization: {v}", api="app.launchdarkly.com"),
    P("flagsmith-server-key", "feature-flags", "ser.{A:22}", "FLAGSMITH_ENVIRONMENT_KEY FLAGSMITH_SERVER_KEY", "FLAGSMITH_KEY"),
    P("statsig-server-secret", "feature-flags", "secret-{A:43}", "STATSIG_SERVER_SECRET", "STATSIG_SECRET_KEY"),
    P("unleash-api-token", "feature-flags", "*:production.{h:64}", "UNLEASH_API_TOKEN", "UNLEASH_CLIENT_KEY"),
    P("devcycle-server-key", "feature-flags", "dvc_server_{uuid}_{h:7}", "DEVCYCLE_SERVER_SDK_KEY", "DVC_SERVER_KEY"),
    # --- identity providers
    P("okta-api-token", "identity", "00{w:40}", "OKTA_API_TOKEN OKTA_CLIENT_TOKEN", "OKTA_TOKEN", header="Authorization: SSWS {v}", api="acme.okta.com"),
    P("auth0-client-secret", "identity", "{w:64}", "AUTH0_CLIENT_SECRET", "AUTH0_SECRET"),
    P("azure-ad-client-secret", "identity", azure_ad_secret, "AZURE_CLIENT_SECRET ARM_CLIENT_SECRET", "AAD_CLIENT_SECRET"),
    P("google-oauth-client-secret", "identity", "GOCSPX-{w:28}", "GOOGLE_CLIENT_SECRET", "GOOGLE_OAUTH_SECRET"),
    P("duo-secret-key", "identity", "{A:40}", "DUO_SECRET_KEY DUO_SKEY", "DUO_API_SECRET"),
    P("recaptcha-secret-key", "identity", "6L{w:38}", "RECAPTCHA_SECRET_KEY", "RECAPTCHA_SECRET"),
    P("keycloak-client-secret", "identity", "{A:32}", "KEYCLOAK_CLIENT_SECRET", "KC_CLIENT_SECRET"),
    P("onelogin-client-secret", "identity", "{h:64}", "ONELOGIN_CLIENT_SECRET", "ONELOGIN_SECRET"),
    P("stytch-secret", "identity", "secret-live-{w:36}", "STYTCH_SECRET", "STYTCH_SECRET_KEY"),
    P("cognito-client-secret", "identity", "{a:52}", "COGNITO_CLIENT_SECRET", "AWS_COGNITO_SECRET"),
    # --- crypto exchanges / web3
    P("binance-api-secret", "crypto", "{A:64}", "BINANCE_API_SECRET BINANCE_SECRET_KEY", "BINANCE_SECRET"),
    P("kraken-private-key", "crypto", "{s:86}==", "KRAKEN_PRIVATE_KEY KRAKEN_API_SECRET", "KRAKEN_SECRET"),
    P("kucoin-api-secret", "crypto", "{uuid}", "KUCOIN_API_SECRET", "KUCOIN_SECRET"),
    P("okx-secret-key", "crypto", "{H:32}", "OKX_SECRET_KEY OKX_API_SECRET", "OKEX_SECRET"),
    P("bybit-api-secret", "crypto", "{A:36}", "BYBIT_API_SECRET", "BYBIT_SECRET"),
    P("etherscan-api-key", "crypto", "{U:34}", "ETHERSCAN_API_KEY", "ETHERSCAN_KEY"),
    P("infura-project-secret", "crypto", "{h:32}", "INFURA_PROJECT_SECRET INFURA_API_SECRET", "INFURA_SECRET"),
    P("alchemy-api-key", "crypto", "{w:32}", "ALCHEMY_API_KEY", "ALCHEMY_KEY"),
    P("ethereum-private-key", "crypto", "0x{h:64}", "PRIVATE_KEY DEPLOYER_PRIVATE_KEY", "WALLET_PRIVATE_KEY"),
    P("bip39-mnemonic", "crypto", bip39, "MNEMONIC WALLET_MNEMONIC", "SEED_PHRASE"),
    # --- other developer services
    P("readme-api-key", "devtools", "rdme_{h:70}", "README_API_KEY", "RDME_API_KEY"),
    P("prefect-api-key", "devtools", "pnu_{A:36}", "PREFECT_API_KEY", "PREFECT_KEY"),
    P("adafruit-io-key", "devtools", "aio_{A:28}", "ADAFRUIT_IO_KEY", "AIO_KEY"),
    P("frameio-token", "devtools", "fio-u-{w:64}", "FRAMEIO_TOKEN", "FRAME_IO_TOKEN"),
    P("rapidapi-key", "devtools", "{a:50}", "RAPIDAPI_KEY", "X_RAPIDAPI_KEY", header="X-RapidAPI-Key: {v}", api="example.p.rapidapi.com"),
    P("virustotal-api-key", "devtools", "{h:64}", "VT_API_KEY VIRUSTOTAL_API_KEY", "VIRUSTOTAL_KEY", header="x-apikey: {v}", api="www.virustotal.com"),
    P("consul-token", "devtools", "{uuid}", "CONSUL_HTTP_TOKEN", "CONSUL_TOKEN", header="X-Consul-Token: {v}", api="consul.service.internal:8500"),
    P("scalingo-token", "cloud", "tk-us-{w:48}", "SCALINGO_API_TOKEN", "SCALINGO_TOKEN"),
]
# fmt: on


# -------------------------------------------------------------------- names, casing


def tokens(name: str) -> list[str]:
    """'STRIPE_SECRET_KEY' / 'AzureWebJobsStorage' / 'db-password' -> lowercase tokens."""
    out: list[str] = []
    for part in re.split(r"[_\-.\s]+", name):
        if re.fullmatch(r"[A-Z0-9]+|[a-z0-9]+", part):
            out.append(part.lower())
            continue
        out += [
            t.lower()
            for t in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+", part)
        ]
    return [t for t in out if t]


def casings(toks: list[str]) -> dict[str, str]:
    cap = [t[:1].upper() + t[1:] for t in toks]
    return {
        "UPPER": "_".join(t.upper() for t in toks),
        "lower": "_".join(toks),
        "camel": toks[0] + "".join(cap[1:]),
        "Pascal": "".join(cap),
        "kebab": "-".join(toks),
        "dotted": ".".join(toks),
    }


QUALIFIERS = ["prod", "live", "primary", "main", "svc", "app", "ext"]


def heldout_name(r: Rand, toks: list[str], alt: list[str]) -> list[str]:
    """A name real code uses for the same credential, drawn from forms dev never uses."""
    choices = ["prefix", "suffix", "joined", "drop"] + (["alt", "alt"] if alt else [])
    how = r.pick(choices)
    if how == "alt":
        return tokens(r.pick(alt))
    if how == "prefix":
        return [r.pick(QUALIFIERS), *toks]
    if how == "suffix":
        return [*toks, r.pick(["prod", "live", "v2", "primary"])]
    if how == "joined" and len(toks) >= 2:  # API_KEY -> APIKEY
        return [*toks[:-2], toks[-2] + toks[-1]]
    if len(toks) >= 3:  # drop a middle word: STRIPE_SECRET_KEY -> STRIPE_KEY
        return toks[:1] + toks[2:]
    return [r.pick(QUALIFIERS), *toks]


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    kind: str  # positive | negative
    category: str  # positives: provider family; negatives: negative kind
    provider: str  # provider / credential type, or the look-alike it imitates
    form: str  # assign | expr | cmd | block
    value: str = ""  # the string on the line (secret for positives)
    name: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)
    exprs: dict[str, str] = field(default_factory=dict)  # lang -> code (form expr)
    cmd: str = ""
    shapes: list[str] = field(default_factory=list)  # allowed shapes (empty: any assign shape)
    tags: set[str] = field(
        default_factory=set
    )  # e.g. "maven": may sit in a settings.xml <password>
    name_variant: str = "base"
    note: str = ""
    companion: tuple[list[str], str] | None = (
        None  # identifier line rendered just before the secret
    )
    # filled in when placed
    shape: str = ""
    frame: str = ""
    frame_tag: str = ""
    file: str = ""
    line: int = 0
    end_line: int = 0
    test_path: bool = False
    commit: str | None = None
    commits: list[str] = field(default_factory=list)
    part: str = "tree"


# ---------------------------------------------------------------------------- frames


def q_env(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9_./:@%+=,~^*!-]*", v) else '"' + v + '"'


def q_yaml(v: str) -> str:
    if v and re.fullmatch(r"[A-Za-z0-9_./+=~^-][A-Za-z0-9_./:@%+=,~^*!-]*", v) and ": " not in v:
        return v
    return json.dumps(v)


def xml_esc(v: str) -> str:
    return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@dataclass
class Frame:
    id: str
    shape: str
    tag: str  # c: both splits, d: dev only, h: heldout only
    files: list[str]  # basenames
    head: list[str]
    assign: list[str] | None
    tail: list[str] = field(default_factory=list)
    expr: list[str] | None = None
    cmd: str | None = None
    block: str | None = None  # block style; None: value written escaped on one line
    filler: list[list[str]] = field(default_factory=list)
    esc: str = "raw"  # raw | json | xml
    sep: str | None = None  # JSON: comma between members
    lang: str = ""  # expression language
    accept: str = ""  # "maven": only cases tagged maven
    dirs: tuple[str, ...] = ()  # directory hints (heldout layouts differ anyway)


PY_FILL = [
    ["import logging"],
    ["logger = logging.getLogger(__name__)"],
    ["TIMEOUT_SECONDS = 30"],
    ["MAX_RETRIES = 5"],
    ["DEBUG = False"],
    ['ALLOWED_HOSTS = ["localhost", "127.0.0.1"]'],
    ["", "", "def healthcheck():", '    return {"status": "ok"}', ""],
    ['REGION = "eu-west-1"'],
    ["BATCH_SIZE = 500"],
    ['LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"'],
]
JS_FILL = [
    ["const port = Number(process.env.PORT || 3000);"],
    ['const region = "us-east-1";'],
    ["const retries = 3;"],
    ["", "function healthcheck() {", "  return { status: 'ok' };", "}", ""],
    ['const baseUrl = "https://api.example.com/v2";'],
]
OBJ_FILL_JS = [
    ["  timeout: 30000,"],
    ["  retries: 3,"],
    ["  region: 'eu-central-1',"],
    ["  debug: false,"],
]
GO_FILL = [["\tDefaultTimeout = 30"], ['\tServiceName = "orders"'], ["\tMaxConns = 64"]]
YAML_ENV_FILL = [
    ["        - name: LOG_LEVEL", '          value: "info"'],
    ["        - name: PORT", '          value: "8080"'],
    ["        - name: NODE_ENV", "          value: production"],
]
YAML_MAP_FILL = [
    ['  LOG_LEVEL: "info"'],
    ['  TZ: "UTC"'],
    ['  PORT: "8080"'],
    ['  FEATURE_SEARCH: "true"'],
]
ENV_FILL = [
    ["NODE_ENV=production"],
    ["PORT=8080"],
    ["LOG_LEVEL=info"],
    ["TZ=UTC"],
    ["# --- services ---"],
    [""],
]
SH_FILL = [
    ['echo "deploying ${SERVICE:-app}"'],
    ['cd "$(dirname "$0")/.."'],
    ["mkdir -p build/logs"],
    [""],
    ['REGION="eu-west-1"'],
]
K8S_HEAD = [
    "apiVersion: apps/v1",
    "kind: Deployment",
    "metadata:",
    "  name: {svc}",
    "  labels:",
    "    app: {svc}",
    "spec:",
    "  replicas: 2",
    "  selector:",
    "    matchLabels:",
    "      app: {svc}",
    "  template:",
    "    metadata:",
    "      labels:",
    "        app: {svc}",
    "    spec:",
    "      containers:",
    "      - name: {svc}",
    "        image: registry.example.com/{svc}:1.4.2",
    "        ports:",
    "        - containerPort: 8080",
    "        env:",
]

FRAMES: list[Frame] = [
    # python
    Frame(
        "py/constants",
        "python",
        "c",
        ["settings.py", "config.py", "constants.py"],
        ["import os", "import subprocess", ""],
        ['{UPPER} = "{v}"'],
        expr=["{UPPER} = {e}"],
        cmd="subprocess.run({cmdrepr}, shell=True, check=True)",
        block="pyq",
        filler=PY_FILL,
        lang="python",
    ),
    Frame(
        "py/dict",
        "python",
        "d",
        ["config.py", "defaults.py"],
        ['"""Service configuration."""', "", "CONFIG = {"],
        ['    "{lower}": "{v}",'],
        tail=["}"],
        expr=['    "{lower}": {e},'],
        filler=[
            ['    "timeout": 30,'],
            ['    "region": "eu-west-1",'],
            ['    "retries": 3,'],
            ['    "debug": False,'],
        ],
        lang="python",
    ),
    Frame(
        "py/kwargs",
        "python",
        "h",
        ["clients.py", "wiring.py"],
        ["from {svc}.clients import make_client", "", "CLIENTS = {}"],
        ['CLIENTS["{kebab}"] = make_client({lower}="{v}", timeout=10)'],
        expr=['CLIENTS["{kebab}"] = make_client({lower}={e}, timeout=10)'],
        filler=PY_FILL,
        lang="python",
    ),
    Frame(
        "py/environ",
        "python",
        "h",
        ["bootstrap.py", "conftest.py"],
        ["import os", ""],
        ['os.environ.setdefault("{UPPER}", "{v}")'],
        expr=['os.environ.setdefault("{UPPER}", {e})'],
        filler=PY_FILL,
        lang="python",
    ),
    Frame(
        "py/class",
        "python",
        "h",
        ["conf.py", "production.py"],
        ["class ProductionConfig(BaseConfig):", '    """Production settings."""', ""],
        ['    {UPPER} = "{v}"'],
        expr=["    {UPPER} = {e}"],
        block="pyq-indent",
        filler=[
            ["    DEBUG = False"],
            ["    TESTING = False"],
            ["    SESSION_COOKIE_SECURE = True"],
            ['    PREFERRED_URL_SCHEME = "https"'],
        ],
        lang="python",
    ),
    # javascript / typescript
    Frame(
        "js/const",
        "javascript",
        "c",
        ["config.js", "index.js", "server.js"],
        ['const { execSync } = require("child_process");', ""],
        ['const {camel} = "{v}";'],
        expr=["const {camel} = {e};"],
        cmd="execSync(`{cmd}`);",
        block="jsq",
        filler=JS_FILL,
        lang="js",
    ),
    Frame(
        "js/exports",
        "javascript",
        "d",
        ["config.js", "keys.js"],
        ["module.exports = {"],
        ["  {camel}: '{v}',"],
        tail=["};"],
        expr=["  {camel}: {e},"],
        filler=OBJ_FILL_JS,
        lang="js",
    ),
    Frame(
        "ts/config",
        "javascript",
        "h",
        ["config.ts", "env.ts"],
        ["export const config = {"],
        ['  {camel}: "{v}",'],
        tail=["} as const;"],
        expr=["  {camel}: {e},"],
        filler=OBJ_FILL_JS,
        lang="js",
    ),
    Frame(
        "js/fallback",
        "javascript",
        "h",
        ["env.js", "settings.mjs"],
        [],
        ['const {camel} = process.env.{UPPER} || "{v}";'],
        expr=["const {camel} = {e};"],
        filler=JS_FILL,
        lang="js",
    ),
    # go
    Frame(
        "go/const",
        "go",
        "c",
        ["config.go", "constants.go"],
        ["package config", "", "const ("],
        ['\t{Pascal} = "{v}"'],
        tail=[")"],
        filler=GO_FILL,
        lang="go",
    ),
    Frame(
        "go/struct",
        "go",
        "d",
        ["main.go", "wire.go"],
        ["package main", "", 'import "os"', "", "var cfg = Config{"],
        ['\t{Pascal}: "{v}",'],
        tail=["}"],
        expr=["\t{Pascal}: {e},"],
        filler=[["\tPort:    8080,"], ['\tRegion:  "eu-west-1",'], ["\tRetries: 3,"]],
        lang="go",
    ),
    Frame(
        "go/setenv",
        "go",
        "h",
        ["init.go", "env.go"],
        ["package main", "", 'import "os"', "", "func init() {"],
        ['\tos.Setenv("{UPPER}", "{v}")'],
        tail=["}"],
        expr=['\tos.Setenv("{UPPER}", {e})'],
        filler=[['\tos.Setenv("GOMAXPROCS", "4")'], ['\tos.Setenv("TZ", "UTC")']],
        lang="go",
    ),
    # java
    Frame(
        "java/constants",
        "java",
        "c",
        ["Credentials.java", "Constants.java"],
        ["package com.{svc}.config;", "", "public final class Constants {"],
        ['    public static final String {UPPER} = "{v}";'],
        tail=["}"],
        expr=["    public static final String {UPPER} = {e};"],
        filler=[
            ["    public static final int TIMEOUT_MS = 30000;"],
            ['    public static final String REGION = "eu-west-1";'],
            [""],
        ],
        lang="java",
    ),
    Frame(
        "java/props",
        "java",
        "d",
        ["AppConfig.java"],
        [
            "package com.{svc};",
            "",
            "import java.util.Properties;",
            "",
            "public class AppConfig {",
            "    public static Properties load() {",
            "        Properties props = new Properties();",
        ],
        ['        props.setProperty("{dotted}", "{v}");'],
        tail=["        return props;", "    }", "}"],
        expr=['        props.setProperty("{dotted}", {e});'],
        filler=[['        props.setProperty("http.timeout", "30");']],
        lang="java",
    ),
    Frame(
        "java/builder",
        "java",
        "h",
        ["ClientModule.java"],
        [
            "package com.{svc};",
            "",
            "public class ClientModule {",
            "    {Svc}Client client() {",
            "        return {Svc}Client.builder()",
        ],
        ['            .{camel}("{v}")'],
        tail=["            .build();", "    }", "}"],
        expr=["            .{camel}({e})"],
        filler=[["            .timeout(Duration.ofSeconds(30))"], ["            .retries(3)"]],
        lang="java",
    ),
    # ruby
    Frame(
        "rb/constants",
        "ruby",
        "c",
        ["secrets.rb", "config.rb"],
        ["# frozen_string_literal: true", ""],
        ['{UPPER} = "{v}"'],
        expr=["{UPPER} = {e}"],
        block="rbheredoc",
        filler=[["TIMEOUT = 30"], ['REGION = "eu-west-1"'], [""]],
        lang="ruby",
    ),
    Frame(
        "rb/rails",
        "ruby",
        "d",
        ["production.rb"],
        ["Rails.application.configure do"],
        ['  config.{lower} = "{v}"'],
        tail=["end"],
        expr=["  config.{lower} = {e}"],
        filler=[
            ["  config.cache_classes = true"],
            ["  config.log_level = :info"],
            ["  config.force_ssl = true"],
        ],
        lang="ruby",
    ),
    Frame(
        "rb/hash",
        "ruby",
        "h",
        ["credentials.rb", "initializer.rb"],
        ["CREDENTIALS = {"],
        ['  {lower}: "{v}",'],
        tail=["}.freeze"],
        expr=["  {lower}: {e},"],
        filler=[["  timeout: 30,"], ['  region: "eu-west-1",']],
        lang="ruby",
    ),
    # .env
    Frame(
        "env/plain",
        "env",
        "c",
        [".env", ".env.production"],
        [],
        ["{UPPER}={venv}"],
        filler=ENV_FILL,
    ),
    Frame(
        "env/quoted",
        "env",
        "d",
        [".env.local", ".env.staging"],
        [],
        ['{UPPER}="{v}"'],
        filler=ENV_FILL,
    ),
    Frame(
        "env/export",
        "env",
        "h",
        [".envrc", "prod.env"],
        [],
        ["export {UPPER}='{v}'"],
        filler=ENV_FILL,
    ),
    # yaml
    Frame(
        "yaml/k8s-env",
        "yaml",
        "d",
        ["deployment.yaml"],
        K8S_HEAD,
        ["        - name: {UPPER}", '          value: "{v}"'],
        filler=YAML_ENV_FILL,
    ),
    Frame(
        "yaml/compose-map",
        "yaml",
        "c",
        ["docker-compose.yml", "compose.yaml"],
        [
            "services:",
            "  {svc}:",
            "    image: registry.example.com/{svc}:latest",
            "    restart: unless-stopped",
            "    environment:",
        ],
        ['      {UPPER}: "{v}"'],
        tail=["    ports:", '      - "8080:8080"'],
        filler=[['      TZ: "UTC"'], ['      LOG_LEVEL: "info"']],
    ),
    Frame(
        "yaml/compose-list",
        "yaml",
        "h",
        ["docker-compose.prod.yml"],
        ["services:", "  {svc}:", "    build: .", "    environment:"],
        ["      - {UPPER}={v}"],
        filler=[["      - TZ=UTC"], ["      - PORT=8080"]],
    ),
    Frame(
        "yaml/gha-env",
        "yaml",
        "d",
        ["deploy.yml", "release.yml"],
        [
            "name: deploy",
            "on:",
            "  push:",
            "    branches: [main]",
            "jobs:",
            "  deploy:",
            "    runs-on: ubuntu-latest",
            "    env:",
        ],
        ["      {UPPER}: {vy}"],
        tail=["    steps:", "      - uses: actions/checkout@v4", "      - run: make deploy"],
        filler=[["      NODE_VERSION: 20"], ["      CI: true"]],
    ),
    Frame(
        "yaml/gha-run",
        "yaml",
        "c",
        ["ci.yml", "publish.yml"],
        [
            "name: publish",
            "on: [workflow_dispatch]",
            "jobs:",
            "  publish:",
            "    runs-on: ubuntu-latest",
            "    steps:",
            "      - uses: actions/checkout@v4",
        ],
        None,
        cmd="      - run: {cmdy}",
        filler=[["      - run: npm ci"], ["      - run: make test"]],
    ),
    Frame(
        "yaml/gitlab-vars",
        "yaml",
        "h",
        [".gitlab-ci.yml"],
        ["stages: [build, deploy]", "", "variables:"],
        ['  {UPPER}: "{v}"'],
        tail=["", "build:", "  stage: build", "  script:", "    - make build"],
        filler=[['  GIT_DEPTH: "10"'], ['  DOCKER_DRIVER: "overlay2"']],
    ),
    Frame(
        "yaml/gitlab-script",
        "yaml",
        "c",
        [".gitlab-ci.yml"],
        ["deploy:", "  stage: deploy", "  image: alpine:3.19", "  script:"],
        None,
        cmd="    - {cmdy}",
        filler=[["    - apk add --no-cache curl"], ["    - make release"]],
    ),
    Frame(
        "yaml/helm-values",
        "yaml",
        "c",
        ["values.yaml", "values-prod.yaml"],
        [
            "replicaCount: 2",
            "image:",
            "  repository: registry.example.com/{svc}",
            "  tag: 1.4.2",
            "{svc}:",
        ],
        ['  {camel}: "{v}"'],
        block="yaml",
        filler=[["  replicas: 2"], ["  logLevel: info"], ["  enabled: true"]],
    ),
    Frame(
        "yaml/spring",
        "yaml",
        "h",
        ["application.yml", "application-prod.yml"],
        ["spring:", "  application:", "    name: {svc}", "{svc}:"],
        ["  {kebab}: {vy}"],
        block="yaml",
        filler=[["  pool-size: 10"], ["  connect-timeout: 5s"]],
    ),
    Frame(
        "yaml/configmap",
        "yaml",
        "h",
        ["configmap.yaml"],
        ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: {svc}-config", "data:"],
        ['  {UPPER}: "{v}"'],
        block="yaml",
        filler=YAML_MAP_FILL,
    ),
    Frame(
        "yaml/ansible",
        "yaml",
        "d",
        ["all.yml", "main.yml"],
        ["---"],
        ['{lower}: "{v}"'],
        block="yaml0",
        filler=[["app_port: 8080"], ["app_user: deploy"], ["ntp_server: pool.ntp.org"]],
    ),
    Frame(
        "yaml/k8s-secret",
        "yaml",
        "c",
        ["secret.yaml"],
        [
            "apiVersion: v1",
            "kind: Secret",
            "metadata:",
            "  name: {svc}-credentials",
            "type: Opaque",
            "stringData:",
        ],
        ['  {kebab}: "{v}"'],
        block="yaml",
        filler=[['  region: "eu-west-1"']],
    ),
    # json
    Frame(
        "json/flat",
        "json",
        "c",
        ["config.json", "credentials.json"],
        ["{"],
        ['  "{camel}": "{v}"'],
        tail=["}"],
        esc="json",
        sep=",",
        filler=[
            ['  "timeout": 30'],
            ['  "region": "us-east-1"'],
            ['  "retries": 3'],
            ['  "enabled": true'],
        ],
    ),
    Frame(
        "json/appsettings",
        "json",
        "d",
        ["appsettings.json", "appsettings.Production.json"],
        [
            "{",
            '  "Logging": {',
            '    "LogLevel": {',
            '      "Default": "Information"',
            "    }",
            "  },",
            '  "{Svc}": {',
        ],
        ['    "{Pascal}": "{v}"'],
        tail=["  }", "}"],
        esc="json",
        sep=",",
        filler=[['    "TimeoutSeconds": 30'], ['    "Region": "westeurope"']],
    ),
    Frame(
        "json/nested",
        "json",
        "h",
        ["settings.json", "secrets.json"],
        ["{", '  "name": "{svc}",', '  "env": "production",', '  "credentials": {'],
        ['    "{lower}": "{v}"'],
        tail=["  }", "}"],
        esc="json",
        sep=",",
        filler=[['    "region": "eu-west-1"'], ['    "version": 2']],
    ),
    # xml
    Frame(
        "xml/webconfig",
        "xml",
        "c",
        ["web.config", "app.config"],
        ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>", "  <appSettings>"],
        ['    <add key="{Pascal}" value="{v}" />'],
        tail=["  </appSettings>", "</configuration>"],
        esc="xml",
        filler=[
            ['    <add key="Environment" value="Production" />'],
            ['    <add key="TimeoutSeconds" value="30" />'],
        ],
    ),
    Frame(
        "xml/maven",
        "xml",
        "d",
        ["settings.xml"],
        ['<?xml version="1.0" encoding="UTF-8"?>', "<settings>", "  <servers>"],
        [
            "    <server>",
            "      <id>{svc}-releases</id>",
            "      <username>deployer</username>",
            "      <password>{v}</password>",
            "    </server>",
        ],
        tail=["  </servers>", "</settings>"],
        esc="xml",
        accept="maven",
    ),
    Frame(
        "xml/spring",
        "xml",
        "h",
        ["beans.xml", "config.xml"],
        ['<?xml version="1.0" encoding="UTF-8"?>', "<config>", "  <{svc}>"],
        ["    <{camel}>{v}</{camel}>"],
        tail=["  </{svc}>", "</config>"],
        esc="xml",
        block="xml",
        filler=[["    <timeout>30</timeout>"], ["    <region>eu-west-1</region>"]],
    ),
    # properties
    Frame(
        "props/dotted",
        "properties",
        "c",
        ["application.properties", "app.properties"],
        ["# {svc} configuration"],
        ["{dotted}={v}"],
        filler=[
            ["server.port=8080"],
            ["logging.level.root=INFO"],
            ["spring.jpa.open-in-view=false"],
        ],
    ),
    Frame(
        "props/gradle",
        "properties",
        "d",
        ["gradle.properties"],
        ["org.gradle.jvmargs=-Xmx2g", "org.gradle.parallel=true"],
        ["{camel}={v}"],
        filler=[["version=1.4.2"], ["group=com.example"]],
    ),
    Frame(
        "props/spaced",
        "properties",
        "h",
        ["service.properties", "prod.properties"],
        ["# generated by configure.sh"],
        ["{lower} = {v}"],
        filler=[["http_port = 8080"], ["pool_size = 10"]],
    ),
    # Dockerfile
    Frame(
        "docker/env",
        "dockerfile",
        "c",
        ["Dockerfile"],
        ["FROM python:3.12-slim", "WORKDIR /app", "COPY . ."],
        ["ENV {UPPER}={venv}"],
        tail=['CMD ["python", "-m", "app"]'],
        cmd="RUN {cmd}",
        filler=[["RUN pip install --no-cache-dir -r requirements.txt"], ["EXPOSE 8080"]],
    ),
    Frame(
        "docker/arg",
        "dockerfile",
        "d",
        ["Dockerfile", "Dockerfile.build"],
        ["FROM node:20-alpine AS build", "WORKDIR /src"],
        ["ARG {UPPER}={venv}"],
        tail=["RUN npm ci && npm run build"],
        cmd="RUN {cmd}",
        filler=[["COPY package*.json ./"]],
    ),
    Frame(
        "docker/envq",
        "dockerfile",
        "h",
        ["Dockerfile.prod", "Containerfile"],
        ["FROM eclipse-temurin:21-jre", "WORKDIR /opt/app"],
        ['ENV {UPPER}="{v}"'],
        tail=['ENTRYPOINT ["java", "-jar", "app.jar"]'],
        cmd="RUN {cmd}",
        filler=[["COPY target/app.jar app.jar"]],
    ),
    # shell
    Frame(
        "sh/export",
        "shell",
        "c",
        ["deploy.sh", "setup.sh"],
        ["#!/usr/bin/env bash", "set -euo pipefail", ""],
        ['export {UPPER}="{v}"'],
        cmd="{cmd}",
        block="shheredoc",
        filler=SH_FILL,
    ),
    Frame(
        "sh/plain",
        "shell",
        "d",
        ["release.sh", "bootstrap.sh"],
        ["#!/bin/sh", ""],
        ["{UPPER}='{v}'"],
        cmd="{cmd}",
        filler=SH_FILL,
    ),
    Frame(
        "sh/default",
        "shell",
        "h",
        ["entrypoint.sh", "run.sh"],
        ["#!/usr/bin/env bash", "set -e", ""],
        [': "${{UPPER}:={v}}"'],
        cmd="{cmd}",
        filler=SH_FILL,
    ),
    Frame(
        "make/recipe",
        "makefile",
        "h",
        ["Makefile"],
        [".PHONY: deploy", "", "deploy:"],
        None,
        cmd="\t{cmd}",
        filler=[["\t@echo deploying"], ["\tgo build ./..."]],
    ),
    # terraform
    Frame(
        "tf/provider",
        "terraform",
        "c",
        ["main.tf", "providers.tf"],
        ['provider "{svc}" {'],
        ['  {lower} = "{v}"'],
        tail=["}"],
        expr=["  {lower} = {e}"],
        block="tfheredoc",
        filler=[['  region = "eu-west-1"']],
        lang="tf",
    ),
    Frame(
        "tf/variable",
        "terraform",
        "d",
        ["variables.tf"],
        [],
        ['variable "{lower}" {', "  type    = string", '  default = "{v}"', "}", ""],
        filler=[['variable "region" {', '  default = "eu-west-1"', "}", ""]],
    ),
    Frame(
        "tf/resource",
        "terraform",
        "h",
        ["secrets.tf", "app.tf"],
        ['resource "{svc}_config" "main" {'],
        ['  {lower} = "{v}"'],
        tail=["}"],
        expr=["  {lower} = {e}"],
        block="tfheredoc",
        filler=[['  name = "main"']],
        lang="tf",
    ),
    Frame(
        "tf/tfvars",
        "terraform",
        "c",
        ["terraform.tfvars", "prod.auto.tfvars"],
        [],
        ['{lower} = "{v}"'],
        filler=[['region = "eu-west-1"'], ["instance_count = 3"]],
    ),
    # notebooks (rendered by render_notebook)
    Frame(
        "ipynb/assign",
        "ipynb",
        "c",
        ["analysis.ipynb", "explore.ipynb"],
        [],
        ['{lower} = "{v}"'],
        cmd="!{cmd}",
        lang="python",
        expr=["{lower} = {e}"],
    ),
    Frame(
        "ipynb/environ",
        "ipynb",
        "h",
        ["training.ipynb", "eval.ipynb"],
        [],
        ['os.environ["{UPPER}"] = "{v}"'],
        cmd="!{cmd}",
        lang="python",
        expr=['os.environ["{UPPER}"] = {e}'],
    ),
    # ini / toml
    Frame(
        "ini/section",
        "ini",
        "c",
        ["config.ini", "setup.cfg"],
        ["[{svc}]"],
        ["{lower} = {v}"],
        filler=[["timeout = 30"], ["region = eu-west-1"]],
    ),
    Frame(
        "ini/awscreds",
        "ini",
        "d",
        ["credentials", "defaults.cfg"],
        ["[default]"],
        ["{lower} = {v}"],
        filler=[["region = us-east-1"], ["output = json"]],
    ),
    Frame(
        "ini/colon",
        "ini",
        "h",
        ["service.conf", "app.cfg"],
        ["[main]"],
        ["{lower}: {v}"],
        filler=[["workers: 4"], ["bind: 0.0.0.0:8080"]],
    ),
    Frame(
        "toml/section",
        "toml",
        "c",
        ["config.toml", "settings.toml"],
        ["[{svc}]"],
        ['{lower} = "{v}"'],
        filler=[["timeout = 30"], ['region = "eu-west-1"']],
    ),
    Frame(
        "toml/kebab",
        "toml",
        "h",
        ["deploy.toml", "secrets.toml"],
        ["[{svc}.credentials]"],
        ['{kebab} = "{v}"'],
        filler=[["retries = 3"]],
    ),
    # markdown
    Frame(
        "md/fence",
        "markdown",
        "c",
        ["README.md", "SETUP.md"],
        ["# {Svc}", "", "Local setup:", "", "```bash"],
        ["export {UPPER}={venv}"],
        tail=["```", ""],
        cmd="{cmd}",
        filler=[["make dev"], ["npm install"]],
    ),
    Frame(
        "md/prose",
        "markdown",
        "h",
        ["RUNBOOK.md", "onboarding.md"],
        ["# Runbook: {svc}", "", "Credentials currently in use:", ""],
        ["- `{UPPER}`: `{v}`"],
        tail=["", "Rotate them after an incident."],
        filler=[["- Region: eu-west-1"], ["- Owner: platform team"]],
    ),
]
FRAME_BY_ID = {f.id: f for f in FRAMES}
for _p in PROVIDERS:
    _p.pair = PAIRS.get(_p.id)
    _p.count = COUNTS.get(_p.id, 3)
SHAPES = sorted({f.shape for f in FRAMES})
ASSIGN_SHAPES = sorted({f.shape for f in FRAMES if f.assign})
CMD_SHAPES = sorted({f.shape for f in FRAMES if f.cmd})
CODE_SHAPES = sorted({f.shape for f in FRAMES if f.expr})


# ------------------------------------------------------------------ positive planners

SVCS = [
    "billing",
    "orders",
    "inventory",
    "auth",
    "search",
    "notify",
    "reports",
    "gateway",
    "ledger",
    "catalog",
    "checkout",
    "analytics",
    "mailer",
    "scheduler",
    "uploader",
    "webhooks",
    "payments",
    "profile",
    "admin",
    "etl",
]
HOSTS = [
    "db.internal",
    "10.0.3.12",
    "prod-db.cluster-cx2k.eu-west-1.rds.amazonaws.com",
    "pg-main.acme.lan",
    "mysql.prod.svc",
]
WORDS = [
    "falcon",
    "rivet",
    "copper",
    "meadow",
    "harbor",
    "velvet",
    "orbit",
    "cactus",
    "summit",
    "lantern",
    "tundra",
    "pepper",
    "quartz",
    "willow",
    "ember",
    "glacier",
    "saffron",
    "thistle",
    "bramble",
    "cobalt",
]


def password(r: Rand, urlsafe: bool = False) -> str:
    """A password as people and password managers make them."""
    style = r.randrange(4)
    if style == 0:  # human: Word + symbol + Word + digits
        sym = r.pick("-_.~" if urlsafe else "!@%*-_.")
        return (
            r.pick(WORDS).capitalize()
            + sym
            + r.pick(WORDS).capitalize()
            + str(r.randrange(10, 9999))
        )
    if style == 1:  # leet-speak word + digits
        w = r.pick(WORDS) + r.pick(WORDS)
        w = w.translate(str.maketrans("aeios", "43105"))
        return (
            w[:1].upper()
            + w[1:]
            + str(r.randrange(10, 999))
            + ("" if urlsafe else r.pick("!#*%"))[:1]
            if not urlsafe
            else w[:1].upper() + w[1:] + str(r.randrange(10, 999))
        )
    n = r.randrange(14, 25)
    if urlsafe:
        return r.s("A", n - 2) + r.pick("-_.~") + r.s("d", 1)
    s = r.s("p", n)
    return s if any(c.isdigit() for c in s) else s + r.s("d", 2)


def secret_key(r: Rand) -> str:
    k = r.randrange(5)
    if k == 0:
        return r.s("h", 64)
    if k == 1:
        return base64.b64encode(r.raw(32)).decode()
    if k == 2:
        return r.s("D", 50)
    if k == 3:
        return r.s("A", r.randrange(32, 49))
    return r.s("h", 32)


GENERIC_NAMES_DEV = {
    "password": [
        "db_password",
        "DB_PASSWORD",
        "admin_password",
        "smtp_password",
        "redis_password",
        "keystore_password",
        "password",
        "passwd",
        "mysql_root_password",
        "POSTGRES_PASSWORD",
        "ldap_password",
        "rabbitmq_password",
    ],
    "key": [
        "secret_key",
        "jwt_secret",
        "api_token",
        "client_secret",
        "encryption_key",
        "signing_secret",
        "webhook_secret",
        "session_secret",
        "access_token",
        "auth_token",
        "master_key",
        "app_secret",
        "api_key",
        "hmac_key",
    ],
}
GENERIC_NAMES_HO = {
    "password": [
        "mongo_pw",
        "bind_pw",
        "sftp_passphrase",
        "root_pass",
        "basic_auth_pass",
        "kafka_sasl_password",
        "truststore_password",
        "pwd",
        "db_pwd",
        "admin_pass",
        "mail_pass",
        "svc_account_password",
    ],
    "key": [
        "cookie_secret",
        "service_credential",
        "oauth_client_secret",
        "upstream_auth",
        "encryption_passphrase",
        "api_secret",
        "secret",
        "token",
        "private_token",
        "license_secret",
        "shared_secret",
        "bearer_token",
    ],
}

CMDS_DEV = [
    ("mysql-cli", "mysql -u root -p{pw} -h db.internal app_production"),
    ("mysqldump", "mysqldump -u backup --password={pw} --all-databases > /backups/all.sql"),
    ("curl-basic", "curl -fsS -u admin:{pw} https://jenkins.internal.example.com/api/json"),
    (
        "curl-bearer",
        'curl -fsS -H "Authorization: Bearer {tok}" https://api.internal.example.com/v1/jobs',
    ),
    ("docker-login", "docker login -u deployer -p {pw} registry.example.com"),
    ("redis-cli", "redis-cli -h cache.internal -a {pw} PING"),
    ("git-clone-token", "git clone https://deploy:{tok}@git.example.com/platform/infra.git"),
    ("htpasswd", "htpasswd -b -c /etc/nginx/.htpasswd admin {pw}"),
    ("java-cli-password", "java -jar app.jar --spring.datasource.password={pw}"),
]
CMDS_HO = [
    ("sshpass", "sshpass -p {pw} ssh deploy@10.0.3.12 systemctl restart app"),
    ("rabbitmqctl", "rabbitmqctl add_user app {pw}"),
    ("pgpassword-env", "PGPASSWORD={pw} psql -h db.internal -U app -d app"),
    (
        "keytool",
        "keytool -importkeystore -srckeystore keystore.p12 -srcstoretype PKCS12 -storepass {pw}",
    ),
    (
        "openssl-passout",
        "openssl pkcs12 -export -in tls.crt -inkey tls.key -out keystore.p12 -passout pass:{pw}",
    ),
    (
        "ldapsearch",
        "ldapsearch -x -H ldap://ldap.internal -D cn=admin,dc=example,dc=org -w {pw} -b dc=example,dc=org",
    ),
    (
        "mongodump",
        "mongodump --uri mongodb://backup:{pw}@mongo.internal:27017/admin --out /backups",
    ),
    (
        "wget-password",
        "wget --user=ci --password={pw} https://artifacts.example.com/releases/app.tar.gz",
    ),
]


def conn_strings(r: Rand, split: str) -> list[tuple[str, str, list[str]]]:
    """(provider, value, names) for URL / DSN credentials."""
    pw = lambda: password(r, urlsafe=True)  # noqa: E731
    user = lambda: r.pick(["app", "svc_orders", "admin", "backend", "etl_user", "readwrite"])  # noqa: E731
    db = lambda: r.pick(["app", "orders", "production", "analytics", "core"])  # noqa: E731
    host = lambda: r.pick(HOSTS)  # noqa: E731
    out = [
        (
            "postgres-url",
            f"postgres://{user()}:{pw()}@{host()}:5432/{db()}",
            ["DATABASE_URL", "POSTGRES_URL"],
        ),
        (
            "postgres-sqlalchemy-url",
            f"postgresql+psycopg2://{user()}:{pw()}@{host()}/{db()}",
            ["SQLALCHEMY_DATABASE_URI", "DB_URI"],
        ),
        (
            "mysql-url",
            f"mysql://{user()}:{pw()}@{host()}:3306/{db()}",
            ["MYSQL_URL", "DATABASE_URL"],
        ),
        (
            "mongodb-srv-url",
            f"mongodb+srv://{user()}:{pw()}@cluster0.{r.s('a', 5)}.mongodb.net/{db()}?retryWrites=true&w=majority",
            ["MONGODB_URI", "MONGO_URL"],
        ),
        ("redis-url", f"redis://:{pw()}@cache.internal:6379/0", ["REDIS_URL", "CACHE_URL"]),
        (
            "rediss-url",
            f"rediss://default:{pw()}@{r.s('a', 8)}.upstash.io:6379",
            ["REDIS_URL", "UPSTASH_REDIS_URL"],
        ),
        (
            "amqp-url",
            f"amqp://{user()}:{pw()}@rabbitmq.internal:5672/{db()}",
            ["AMQP_URL", "CELERY_BROKER_URL"],
        ),
        (
            "jdbc-postgres",
            f"jdbc:postgresql://{host()}:5432/{db()}?user={user()}&password={pw()}",
            ["JDBC_URL", "SPRING_DATASOURCE_URL"],
        ),
        (
            "jdbc-mysql",
            f"jdbc:mysql://{host()}:3306/{db()}?user={user()}&password={pw()}&useSSL=true",
            ["JDBC_URL", "DB_JDBC_URL"],
        ),
        (
            "jdbc-sqlserver",
            f"jdbc:sqlserver://{host()}:1433;databaseName={db()};user=sa;password={pw()};encrypt=true",
            ["JDBC_URL", "MSSQL_JDBC_URL"],
        ),
        (
            "adonet-sqlserver",
            f"Server=tcp:{r.s('l', 8)}.database.windows.net,1433;Initial Catalog={db()};User ID={user()};Password={pw()};Encrypt=True;",
            ["ConnectionStrings__DefaultConnection", "DB_CONNECTION_STRING"],
        ),
        (
            "odbc-sqlserver",
            f"Driver={{ODBC Driver 18 for SQL Server}};Server={host()};Database={db()};Uid={user()};Pwd={pw()};",
            ["ODBC_CONNECTION_STRING", "MSSQL_CONN"],
        ),
        (
            "smtp-url",
            f"smtp://{user()}:{pw()}@smtp.mailprovider.net:587",
            ["SMTP_URL", "EMAIL_URL"],
        ),
        (
            "sftp-url",
            f"sftp://{user()}:{pw()}@files.partner.example.com:22/upload",
            ["SFTP_URL", "PARTNER_SFTP_URL"],
        ),
        (
            "https-basic-auth-url",
            f"https://{user()}:{pw()}@nexus.example.com/repository/maven-releases/",
            ["MAVEN_REPO_URL", "REGISTRY_URL"],
        ),
        (
            "elasticsearch-url",
            f"https://elastic:{pw()}@es.internal.example.com:9200",
            ["ELASTICSEARCH_URL", "ES_URL"],
        ),
        ("nats-url", f"nats://{user()}:{pw()}@nats.internal:4222", ["NATS_URL", "NATS_SERVERS"]),
    ]
    return out


def provider_cases(r: Rand, split: str, per_provider: int) -> list[Case]:
    out = []
    for p in PROVIDERS:
        n = min(per_provider, p.count)
        for i in range(n):
            nm = tokens(r.pick(p.names))
            c = Case("positive", p.category, p.id, "assign", p.make(r), nm)
            if p.pair and i < n - 1:
                c.companion = (tokens(p.pair[0]), r.fmt(p.pair[1]))
            if p.api and i == n - 1 and r.random() < 0.35:
                c.form = "cmd"
                c.cmd = (
                    'curl -fsS -H "' + p.header.replace("{v}", c.value) + '" https://' + p.api + "/"
                )
            if p.category in ("registry",) or p.id in (
                "github-pat",
                "gitlab-pat",
                "jfrog-identity-token",
                "bitbucket-app-password",
            ):
                c.tags.add("maven")
            if " " in c.value:
                c.shapes = [s for s in ASSIGN_SHAPES if s not in ("markdown",)]
            out.append(c)
    return out


def generic_cases(r: Rand, split: str, n: int) -> list[Case]:
    out = []
    for i in range(n):
        kind = "password" if i % 2 == 0 else "key"
        pool = GENERIC_NAMES_DEV[kind]
        variant = "base"
        if split == "heldout" and r.random() < 0.5:
            pool, variant = GENERIC_NAMES_HO[kind], "heldout"
        nm = tokens(r.pick(pool))
        if kind == "password":
            v = password(r)
            prov = "password"
        elif nm[-1] in ("token",) and r.random() < 0.3:
            v, prov = generic_jwt(r), "jwt"
        else:
            v, prov = secret_key(r), "secret-key"
        c = Case("positive", "generic", prov, "assign", v, nm, name_variant=variant)
        if kind == "password":
            c.tags.add("maven")
        out.append(c)
    # command lines
    cmds = CMDS_DEV + (CMDS_HO if split == "heldout" else [])
    k = len(cmds) * (2 if split == "dev" else 1) + (len(CMDS_DEV) if split == "heldout" else 0)
    for i in range(k):
        cid, tmpl = (
            cmds[i % len(cmds)]
            if split == "dev"
            else (cmds[i] if i < len(cmds) else r.pick(CMDS_HO))
        )
        pw = password(r, urlsafe=True)
        tok = r.s("A", 40)
        cmd = tmpl.replace("{pw}", pw).replace("{tok}", tok)
        out.append(
            Case(
                "positive",
                "generic",
                "cmdline-" + cid,
                "cmd",
                tok if "{tok}" in tmpl else pw,
                [],
                cmd=cmd,
                name_variant="heldout" if (cid, tmpl) in CMDS_HO else "base",
            )
        )
    return out


def conn_cases(r: Rand, split: str, per: int) -> list[Case]:
    out = []
    for _ in range(per):
        for prov, val, names in conn_strings(r, split):
            nm = tokens(r.pick(names))
            variant = "base"
            if split == "heldout" and r.random() < 0.5:
                nm, variant = heldout_name(r, nm, []), "heldout"
            c = Case("positive", "connection-string", prov, "assign", val, nm, name_variant=variant)
            out.append(c)
    # a few as command lines
    for _ in range(per):
        v = f"postgresql://app:{password(r, urlsafe=True)}@{r.pick(HOSTS)}:5432/app"
        out.append(
            Case(
                "positive",
                "connection-string",
                "postgres-url",
                "cmd",
                v,
                cmd=f'psql "{v}" -c "select 1"',
            )
        )
        v = f"mongodb+srv://admin:{password(r, urlsafe=True)}@cluster0.{r.s('a', 5)}.mongodb.net/admin"
        out.append(
            Case(
                "positive",
                "connection-string",
                "mongodb-srv-url",
                "cmd",
                v,
                cmd=f'mongosh "{v}" --eval "db.stats()"',
            )
        )
    return out


PEM_KINDS = {
    "rsa": ("rsa-private-key", ["PRIVATE_KEY", "RSA_PRIVATE_KEY", "JWT_PRIVATE_KEY"]),
    "pkcs8": ("pkcs8-private-key", ["PRIVATE_KEY", "SIGNING_KEY", "TLS_KEY"]),
    "ec": ("ec-private-key", ["EC_PRIVATE_KEY", "TLS_KEY", "ES256_KEY"]),
    "pkcs8-ec": (
        "apple-p8-private-key",
        ["APNS_AUTH_KEY", "APP_STORE_CONNECT_KEY", "APPLE_PRIVATE_KEY"],
    ),
    "openssh": ("openssh-private-key", ["SSH_PRIVATE_KEY", "DEPLOY_KEY"]),
    "openssh-rsa": ("openssh-private-key", ["SSH_PRIVATE_KEY", "GIT_SSH_KEY"]),
    "pgp": ("pgp-private-key", ["GPG_PRIVATE_KEY", "SIGNING_KEY"]),
}


def key_cases(r: Rand, split: str, per: int) -> list[Case]:
    out = []
    for kind, (prov, names) in PEM_KINDS.items():
        for _ in range(per):
            lines = private_key_lines(r, kind)
            nm = tokens(r.pick(names))
            c = Case("positive", "private-key", prov, "block", lines[0], nm, block=lines)
            out.append(c)
    for _ in range(per):
        v = "AGE-SECRET-KEY-1" + r.s("c", 58)
        out.append(
            Case(
                "positive",
                "private-key",
                "age-secret-key",
                "assign",
                v,
                tokens(r.pick(["SOPS_AGE_KEY", "AGE_SECRET_KEY"])),
            )
        )
    return out


# --------------------------------------------------------------- special (whole) files


@dataclass
class FileSpec:
    basename: str
    lines: list[str]
    labels: list[tuple[int, int, Case]]  # 0-based start, end (inclusive), case
    shape: str
    frame: str
    dirs: tuple[str, ...] = ()


def spec(
    basename: str, shape: str, frame: str, parts: list[Any], dirs: tuple[str, ...] = ()
) -> FileSpec:
    """parts: str lines, or (Case, [lines]) labelled spans."""
    lines: list[str] = []
    labels = []
    for p in parts:
        if isinstance(p, tuple):
            c, ls = p
            labels.append((len(lines), len(lines) + len(ls) - 1, c))
            lines += ls
        else:
            lines.append(p)
    return FileSpec(basename, lines, labels, shape, frame, dirs)


def pos(cat: str, prov: str, value: str) -> Case:
    return Case("positive", cat, prov, "file", value)


def neg(kind: str, prov: str, value: str) -> Case:
    return Case("negative", kind, prov, "file", value)


def special_positive_files(r: Rand, split: str) -> list[FileSpec]:
    out: list[FileSpec] = []
    ho = split == "heldout"
    # PEM key files (some with the certificate chain in the same file)
    names = (
        ["id_rsa", "server.key", "tls.key", "private.pem", "deploy_key", "signing-key.asc"]
        if not ho
        else [
            "id_ed25519",
            "client.key",
            "key.pem",
            "gh-app.private-key.pem",
            "jwt-signing.pem",
            "release-signing.asc",
        ]
    )
    kinds = (
        ["rsa", "pkcs8", "ec", "pkcs8", "openssh", "pgp"]
        if not ho
        else ["openssh", "ec", "pkcs8", "rsa", "rsa", "pgp"]
    )
    for base, kind in zip(names, kinds, strict=False):
        for _ in range(2):
            lines = private_key_lines(r, kind)
            parts: list[Any] = [(pos("private-key", PEM_KINDS[kind][0], lines[0]), lines)]
            if kind in ("pkcs8", "ec") and r.random() < 0.5:
                cert = pem("CERTIFICATE", der_cert(r))
                parts += [(neg("certificate", "x509-certificate", cert[1]), cert)]
            out.append(spec(base, "keyfile", "file/pem", parts))
    # Apple .p8
    for _ in range(2):
        lines = private_key_lines(r, "pkcs8-ec")
        out.append(
            spec(
                "AuthKey_" + r.s("U", 10) + ".p8",
                "keyfile",
                "file/p8",
                [(pos("private-key", "apple-p8-private-key", lines[0]), lines)],
            )
        )
    # PuTTY
    for _ in range(2):
        lines = ppk_lines(r)
        out.append(
            spec(
                r.pick(["deploy.ppk", "jump-host.ppk", "ops.ppk"]),
                "keyfile",
                "file/ppk",
                [(pos("private-key", "putty-ppk", lines[0]), lines)],
            )
        )
    # age identity file (the public key line is a negative)
    for _ in range(2):
        sk = "AGE-SECRET-KEY-1" + r.s("c", 58)
        pk = "age1" + r.s("e", 58)
        out.append(
            spec(
                r.pick(["keys.txt", "age.key"]),
                "keyfile",
                "file/age",
                [
                    "# created: 2024-0"
                    + str(r.randrange(1, 10))
                    + "-1"
                    + str(r.randrange(10))
                    + "T10:2"
                    + str(r.randrange(10))
                    + ":00Z",
                    (neg("public-key", "age-recipient", pk), ["# public key: " + pk]),
                    (pos("private-key", "age-secret-key", sk), [sk]),
                ],
                dirs=("secrets", ".sops"),
            )
        )
    # WireGuard
    for _ in range(3):
        pk, psk, peer = (base64.b64encode(r.raw(32)).decode() for _ in range(3))
        out.append(
            spec(
                r.pick(["wg0.conf", "wg-office.conf"]),
                "ini",
                "file/wireguard",
                [
                    "[Interface]",
                    "Address = 10.8.0." + str(r.randrange(2, 250)) + "/24",
                    (pos("private-key", "wireguard-private-key", pk), ["PrivateKey = " + pk]),
                    "DNS = 1.1.1.1",
                    "",
                    "[Peer]",
                    (neg("public-key", "wireguard-public-key", peer), ["PublicKey = " + peer]),
                    (pos("private-key", "wireguard-preshared-key", psk), ["PresharedKey = " + psk]),
                    "Endpoint = vpn.example.net:51820",
                    "AllowedIPs = 0.0.0.0/0",
                ],
                dirs=("vpn", "wireguard"),
            )
        )
    # kubeconfig: client key (base64 PEM) + service-account token; CA / client cert are public
    for _ in range(2):
        key = base64.b64encode(("\n".join(private_key_lines(r, "rsa")) + "\n").encode()).decode()
        ca = base64.b64encode(("\n".join(pem("CERTIFICATE", der_cert(r))) + "\n").encode()).decode()
        crt = base64.b64encode(
            ("\n".join(pem("CERTIFICATE", der_cert(r))) + "\n").encode()
        ).decode()
        tok = k8s_sa_token(r)
        out.append(
            spec(
                r.pick(["kubeconfig", "kubeconfig.yaml", "config"]),
                "yaml",
                "file/kubeconfig",
                [
                    "apiVersion: v1",
                    "kind: Config",
                    "clusters:",
                    "- cluster:",
                    (
                        neg("certificate", "kubeconfig-ca-data", ca),
                        ["    certificate-authority-data: " + ca],
                    ),
                    "    server: https://10.0.0.1:6443",
                    "  name: prod",
                    "contexts:",
                    "- context:",
                    "    cluster: prod",
                    "    user: admin",
                    "  name: prod",
                    "current-context: prod",
                    "users:",
                    "- name: admin",
                    "  user:",
                    (
                        neg("certificate", "kubeconfig-client-cert", crt),
                        ["    client-certificate-data: " + crt],
                    ),
                    (
                        pos("private-key", "kubeconfig-client-key", key),
                        ["    client-key-data: " + key],
                    ),
                    "- name: deployer",
                    "  user:",
                    (pos("cloud", "kubernetes-sa-token", tok), ["    token: " + tok]),
                ],
                dirs=(".kube", "clusters"),
            )
        )
    # private JWK (the public one is a negative, elsewhere)
    for _ in range(2):
        d = b64u(r.raw(256))
        kid, n = r.s("h", 16), b64u(r.raw(256))
        out.append(
            spec(
                r.pick(["jwks.private.json", "signing-jwk.json"]),
                "json",
                "file/jwk",
                [
                    "{",
                    '  "keys": [',
                    "    {",
                    '      "kty": "RSA",',
                    (neg("random-non-secret", "jwk-kid", kid), ['      "kid": "' + kid + '",']),
                    '      "use": "sig",',
                    '      "alg": "RS256",',
                    (neg("public-key", "jwk-modulus", n), ['      "n": "' + n + '",']),
                    '      "e": "AQAB",',
                    (
                        pos("private-key", "jwk-private-key", d),
                        [
                            '      "d": "' + d + '",',
                            '      "p": "' + b64u(r.raw(128)) + '",',
                            '      "q": "' + b64u(r.raw(128)) + '"',
                        ],
                    ),
                    "    }",
                    "  ]",
                    "}",
                ],
            )
        )
    # GCP service account key file
    for _ in range(3):
        proj = r.pick(["acme-prod", "data-platform-42", "ml-training-7"]) + "-" + r.s("d", 6)
        key = "\\n".join(private_key_lines(r, "pkcs8")) + "\\n"
        kid = r.s("h", 40)
        email = (
            r.pick(["deployer", "ci-runner", "bq-reader"]) + "@" + proj + ".iam.gserviceaccount.com"
        )
        out.append(
            spec(
                r.pick(["service-account.json", proj + "-" + kid[:12] + ".json", "gcp-key.json"]),
                "json",
                "file/gcp-sa",
                [
                    "{",
                    '  "type": "service_account",',
                    '  "project_id": "' + proj + '",',
                    '  "private_key_id": "' + kid + '",',
                    (
                        pos("private-key", "gcp-service-account-key", key),
                        ['  "private_key": "' + key + '",'],
                    ),
                    '  "client_email": "' + email + '",',
                    '  "client_id": "' + r.s("d", 21) + '",',
                    '  "auth_uri": "https://accounts.google.com/o/oauth2/auth",',
                    '  "token_uri": "https://oauth2.googleapis.com/token",',
                    '  "universe_domain": "googleapis.com"',
                    "}",
                ],
                dirs=("credentials", "keys"),
            )
        )
    # Coinbase CDP key file
    for _ in range(2):
        key = "\\n".join(private_key_lines(r, "ec")) + "\\n"
        out.append(
            spec(
                "cdp_api_key.json",
                "json",
                "file/cdp",
                [
                    "{",
                    '  "name": "organizations/' + r.uuid() + "/apiKeys/" + r.uuid() + '",',
                    (
                        pos("crypto", "coinbase-cdp-private-key", key),
                        ['  "privateKey": "' + key + '"'],
                    ),
                    "}",
                ],
            )
        )
    # kaggle.json
    for _ in range(2):
        k = r.s("h", 32)
        out.append(
            spec(
                "kaggle.json",
                "json",
                "file/kaggle",
                [
                    (
                        pos("ai-ml", "kaggle-api-key", k),
                        ['{"username":"' + r.pick(WORDS) + r.s("d", 3) + '","key":"' + k + '"}'],
                    )
                ],
                dirs=(".kaggle",),
            )
        )
    # .npmrc
    for _ in range(3):
        t = crc_token("npm_")(r)
        g = crc_token("ghp_")(r)
        parts = [
            "registry=https://registry.npmjs.org/",
            (pos("registry", "npm-token", t), ["//registry.npmjs.org/:_authToken=" + t]),
        ]
        if r.random() < 0.6:
            parts += [
                "@acme:registry=https://npm.pkg.github.com",
                (pos("cicd", "github-pat", g), ["//npm.pkg.github.com/:_authToken=" + g]),
            ]
        parts += [
            (
                neg("template-reference", "npmrc-env", "${NPM_TOKEN}"),
                ["//npm.internal.example.com/:_authToken=${NPM_TOKEN}"],
            )
        ]
        out.append(spec(".npmrc", "ini", "file/npmrc", parts))
    # .npmrc _auth (base64 user:pass)
    for _ in range(2):
        a = base64.b64encode(("ci-bot:" + password(r)).encode()).decode()
        out.append(
            spec(
                ".npmrc",
                "ini",
                "file/npmrc-auth",
                [
                    "registry=https://nexus.example.com/repository/npm-group/",
                    (pos("generic", "npmrc-basic-auth", a), ["_auth=" + a]),
                    "always-auth=true",
                ],
                dirs=("frontend", "web"),
            )
        )
    # .pypirc
    for _ in range(2):
        t = pypi_token(r)
        out.append(
            spec(
                ".pypirc",
                "ini",
                "file/pypirc",
                [
                    "[distutils]",
                    "index-servers =",
                    "    pypi",
                    "",
                    "[pypi]",
                    "username = __token__",
                    (pos("registry", "pypi-token", t), ["password = " + t]),
                ],
            )
        )
    # .netrc / .pgpass / .git-credentials / docker config.json
    for _ in range(3):
        pw = password(r)
        out.append(
            spec(
                ".netrc",
                "netrc",
                "file/netrc",
                [
                    (
                        pos("generic", "netrc-password", pw),
                        [
                            f"machine {r.pick(['api.heroku.com', 'git.example.com', 'ftp.partner.net'])} login {r.pick(['deploy', 'ci@example.com'])} password {pw}"
                        ],
                    )
                ],
            )
        )
        pw = password(r)
        out.append(
            spec(
                ".pgpass",
                "netrc",
                "file/pgpass",
                [
                    "# hostname:port:database:username:password",
                    (
                        pos("generic", "pgpass-password", pw),
                        [f"{r.pick(HOSTS)}:5432:app:app_user:{pw}"],
                    ),
                ],
            )
        )
        tok = crc_token("ghp_")(r) if r.random() < 0.5 else password(r, urlsafe=True)
        out.append(
            spec(
                ".git-credentials",
                "netrc",
                "file/git-credentials",
                [
                    (
                        pos("connection-string", "git-credentials-url", tok),
                        [
                            f"https://{r.pick(['deploy', 'x-access-token', 'ci-bot'])}:{tok}@{r.pick(['github.com', 'git.example.com'])}"
                        ],
                    )
                ],
            )
        )
        auth = base64.b64encode(("deployer:" + password(r)).encode()).decode()
        out.append(
            spec(
                "config.json",
                "json",
                "file/docker-config",
                [
                    "{",
                    '  "auths": {',
                    '    "registry.example.com": {',
                    (pos("generic", "docker-config-auth", auth), ['      "auth": "' + auth + '"']),
                    "    }",
                    "  }",
                    "}",
                ],
                dirs=(".docker",),
            )
        )
    # k8s Secret with base64 data (the values are base64 of the secret)
    for _ in range(4):
        pw, key = password(r), secret_key(r)
        e1, e2 = base64.b64encode(pw.encode()).decode(), base64.b64encode(key.encode()).decode()
        out.append(
            spec(
                r.pick(["db-secret.yaml", "app-secrets.yaml"]),
                "yaml",
                "file/k8s-secret-data",
                [
                    "apiVersion: v1",
                    (
                        Case(
                            "ignore", "secret-object-header", "k8s-secret", "file", "kind: Secret"
                        ),
                        ["kind: Secret"],
                    ),
                    "metadata:",
                    "  name: " + r.pick(SVCS) + "-db",
                    "type: Opaque",
                    "data:",
                    (
                        neg("uuid-id", "base64-username", base64.b64encode(b"app").decode()),
                        ["  username: " + base64.b64encode(b"app").decode()],
                    ),
                    (pos("generic", "k8s-secret-base64-password", e1), ["  password: " + e1]),
                    (pos("generic", "k8s-secret-base64-key", e2), ["  api-key: " + e2]),
                ],
                dirs=("k8s", "manifests"),
            )
        )
    # Akamai .edgerc
    for _ in range(2):
        sec = base64.b64encode(r.raw(32)).decode()
        out.append(
            spec(
                ".edgerc",
                "ini",
                "file/edgerc",
                [
                    "[default]",
                    (pos("cloud", "akamai-client-secret", sec), ["client_secret = " + sec]),
                    "host = akab-" + r.s("a", 16) + "-" + r.s("a", 16) + ".luna.akamaiapis.net",
                    (
                        pos("cloud", "akamai-access-token", "x"),
                        ["access_token = akab-" + r.s("a", 16) + "-" + r.s("a", 16)],
                    ),
                    (
                        pos("cloud", "akamai-client-token", "x"),
                        ["client_token = akab-" + r.s("a", 16) + "-" + r.s("a", 16)],
                    ),
                ],
            )
        )
    # web.config connectionStrings
    for _ in range(3):
        pw = password(r, urlsafe=True)
        v = f"Server=tcp:{r.s('l', 8)}.database.windows.net,1433;Initial Catalog=app;User ID=app;Password={pw};Encrypt=True;"
        out.append(
            spec(
                "Web.config",
                "xml",
                "file/webconfig-conn",
                [
                    '<?xml version="1.0" encoding="utf-8"?>',
                    "<configuration>",
                    "  <connectionStrings>",
                    (
                        pos("connection-string", "adonet-sqlserver", v),
                        [
                            f'    <add name="DefaultConnection" connectionString="{v}" providerName="System.Data.SqlClient" />'
                        ],
                    ),
                    (
                        neg(
                            "connection-string-no-password",
                            "adonet-integrated",
                            "Trusted_Connection=True",
                        ),
                        [
                            '    <add name="Reporting" connectionString="Server=reports.internal;Database=dw;Trusted_Connection=True;" providerName="System.Data.SqlClient" />'
                        ],
                    ),
                    "  </connectionStrings>",
                    "</configuration>",
                ],
            )
        )
    # Jupyter notebook-free special: hardhat config with a wallet key
    for _ in range(2):
        k = "0x" + r.s("h", 64)
        out.append(
            spec(
                "hardhat.config.js",
                "javascript",
                "file/hardhat",
                [
                    'require("@nomicfoundation/hardhat-toolbox");',
                    "",
                    "module.exports = {",
                    '  solidity: "0.8.24",',
                    "  networks: {",
                    "    mainnet: {",
                    '      url: "https://eth-mainnet.g.alchemy.com/v2/" + process.env.ALCHEMY_KEY,',
                    (pos("crypto", "ethereum-private-key", k), [f'      accounts: ["{k}"],']),
                    "    },",
                    "  },",
                    "};",
                ],
                dirs=("contracts",),
            )
        )
    # fix the akamai access_token placeholder value
    for f in out:
        for _, _, c in f.labels:
            if c.provider in ("akamai-access-token", "akamai-client-token"):
                c.value = f.lines[next(i for i, _, cc in f.labels if cc is c)].split(" = ", 1)[1]
    return out


# ------------------------------------------------------------------ negative planners

PLACEHOLDERS = [
    "<your-api-key>",
    "<YOUR_TOKEN_HERE>",
    "your-api-key-here",
    "your_secret_here",
    "xxxxxxxxxxxxxxxxxxxx",
    "XXXXXXXXXXXXXXXXXXXXXXXX",
    "changeme",
    "change_me",
    "CHANGE_ME_IN_PRODUCTION",
    "REPLACE_ME",
    "TODO",
    "dummy",
    "example",
    "insert-key-here",
    "<password>",
    "{password}",
    "set-me",
    "fill-me-in",
    "put-your-key-here",
    "my-secret-key",
    "secret",
    "password",
    "test",
    "none",
    "<secret>",
    "YOUR_API_KEY",
    "API_KEY_GOES_HERE",
    "00000000-0000-0000-0000-000000000000",
    "1234567890",
    "abcdef",
    "foobar",
    "s3cr3t",
    "placeholder",
]
PREFIX_PLACEHOLDERS = [
    ("stripe-secret-key", "sk_live_" + "x" * 24),
    ("stripe-secret-key", "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("github-pat", "ghp_" + "x" * 36),
    ("github-pat", "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
    ("aws-access-key-id", "AKIAXXXXXXXXXXXXXXXX"),
    ("slack-bot-token", "xoxb-your-bot-token"),
    ("slack-bot-token", "xoxb-XXXXXXXXXXX-XXXXXXXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("openai-project-key", "sk-proj-..."),
    ("openai-legacy-key", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("sendgrid-api-key", "SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("gitlab-pat", "glpat-xxxxxxxxxxxxxxxxxxxx"),
    ("anthropic-api-key", "sk-ant-api03-..."),
    ("npm-token", "npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
    ("huggingface-token", "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("google-api-key", "AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
    ("twilio-auth-token", "your_auth_token"),
    ("mailchimp-api-key", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-us6"),
    ("shopify-admin-token", "shpat_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("dockerhub-pat", "dckr_pat_xxxxxxxxxxxxxxxxxxxxxxxxxxx"),
]
MASKED = [
    "********",
    "****************",
    "sk_live_****************4242",
    "•••••••••••",
    "<redacted>",
    "REDACTED",
    "[FILTERED]",
    "xxxx-xxxx-xxxx-xxxx",
    "ghp_****************************abcd",
    "***REMOVED***",
    "[hidden]",
    "sk-...a1b2",
]
SM_REFS = [
    "vault:secret/data/{svc}#password",
    "vault:kv/{svc}/prod#api_key",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/{svc}/db-AbC1d2",
    "{{resolve:secretsmanager:prod/{svc}:SecretString:password}}",
    "{{resolve:ssm-secure:/prod/{svc}/api-key:1}}",
    "projects/acme-prod/secrets/{svc}-api-key/versions/latest",
    "@Microsoft.KeyVault(SecretUri=https://acme-kv.vault.azure.net/secrets/{svc}-key/)",
    "op://Production/{svc}/credential",
    "ref+vault://secret/{svc}#/password",
    "sm://acme-prod/{svc}-token",
    "ssm:/prod/{svc}/db_password",
    "arn:aws:ssm:us-east-1:123456789012:parameter/prod/{svc}/token",
    "azurekeyvault://acme-kv.vault.azure.net/secrets/{svc}",
    "gcp:secretmanager:projects/acme/secrets/{svc}/versions/3",
    "secretsmanager:prod/{svc}/stripe:SecretString:key",
]
DOC_EXAMPLES = [
    ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"),
    ("aws-secret-access-key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY"),
    ("aws-access-key-id", "AKIAI44QH8DHBEXAMPLE", "AWS_ACCESS_KEY_ID"),
    ("aws-secret-access-key", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY"),
    (
        "jwt-io-sample",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "ACCESS_TOKEN",
    ),
    (
        "rfc7519-jwt",
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "ID_TOKEN",
    ),
    ("stripe-test-docs", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_SECRET_KEY"),
    ("stripe-test-docs", "pk_test_TYooMQauvdEDq54NiTphI7jx", "STRIPE_PUBLISHABLE_KEY"),
    (
        "azurite-dev-account",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        "AZURE_STORAGE_CONNECTION_STRING",
    ),
    ("azurite-dev-account", "UseDevelopmentStorage=true", "AzureWebJobsStorage"),
    (
        "slack-webhook-docs",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "SLACK_WEBHOOK_URL",
    ),
    ("rfc6238-totp-seed", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "TOTP_TEST_SECRET"),
    ("rfc4226-hotp-seed", "12345678901234567890", "HOTP_TEST_SECRET"),
    (
        "hardhat-account-0",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "PRIVATE_KEY",
    ),
    ("hardhat-mnemonic", "test test test test test test test test test test test junk", "MNEMONIC"),
    (
        "bip39-all-abandon",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "MNEMONIC",
    ),
    ("twilio-docs-sid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "TWILIO_ACCOUNT_SID"),
    ("minio-default", "minioadmin", "MINIO_ROOT_PASSWORD"),
]
HASH_NAMES = [
    "checksum",
    "sha256",
    "sha256sum",
    "file_hash",
    "content_digest",
    "etag",
    "cache_key",
    "fingerprint",
    "artifact_sha1",
    "tarball_checksum",
    "md5",
    "source_hash",
    "integrity_hash",
    "schema_hash",
    "lock_hash",
]
GIT_NAMES = [
    "commit",
    "revision",
    "git_sha",
    "GIT_COMMIT",
    "BUILD_SHA",
    "source_version",
    "pinned_ref",
    "base_commit",
]
UUID_NAMES = [
    "id",
    "tenant_id",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "ARM_SUBSCRIPTION_ID",
    "request_id",
    "correlation_id",
    "project_id",
    "workspace_id",
    "idempotency_key",
    "key_id",
    "client_id",
    "app_id",
    "installation_id",
    "org_id",
    "dashboard_uid",
    "datasource_uid",
]
POLICY = [  # (name, value, bare?)
    ("password_min_length", "12", True),
    ("password_max_age_days", "90", True),
    ("token_ttl_seconds", "3600", True),
    ("secret_rotation_days", "30", True),
    ("api_key_header", "X-API-Key", False),
    ("token_type", "Bearer", False),
    ("password_reset_url", "/accounts/password/reset/", False),
    ("token_url", "https://oauth2.googleapis.com/token", False),
    ("key_size", "4096", True),
    ("jwt_algorithm", "RS256", False),
    ("token_endpoint_auth_method", "client_secret_basic", False),
    ("password_hasher", "argon2", False),
    ("secret_name", "prod/{svc}/db-credentials", False),
    ("password_field", "password", False),
    ("auth_token_header", "X-Auth-Token", False),
    ("password_regex", "^(?=.*[A-Z])(?=.*[0-9]).{12,}$", False),
    ("api_key_prefix", "sk_live_", False),
    ("refresh_token_ttl", "2592000", True),
    ("secret_key_ref", "{svc}-secrets", False),
    ("password_require_symbols", "true", True),
    ("token_issuer", "https://auth.example.com/", False),
    ("access_key_rotation", "enabled", False),
    ("private_key_path", "/etc/ssl/private/{svc}.key", False),
    ("password_file", "/run/secrets/db_password", False),
    ("credentials_file", "~/.aws/credentials", False),
    ("api_key_env_var", "OPENAI_API_KEY", False),
    ("secret_mount_path", "/var/run/secrets/{svc}", False),
]
NONSECRET = [  # (name, maker)
    ("main_bundle", lambda r: "main." + r.s("h", 20) + ".js"),
    ("stylesheet", lambda r: "/static/css/app." + r.s("h", 8) + ".css"),
    ("chunk_hash", lambda r: r.s("h", 20)),
    ("button_class", lambda r: "Button_primary__" + r.s("A", 5)),
    ("css_class", lambda r: "css-" + r.s("a", 7)),
    ("trace_id", lambda r: r.s("h", 32)),
    ("traceparent", lambda r: "00-" + r.s("h", 32) + "-" + r.s("h", 16) + "-01"),
    ("instance_id", lambda r: "i-0" + r.s("h", 16)),
    ("ami_id", lambda r: "ami-0" + r.s("h", 16)),
    ("security_group_id", lambda r: "sg-0" + r.s("h", 16)),
    ("subnet_id", lambda r: "subnet-0" + r.s("h", 16)),
    ("customer_id", lambda r: "cus_" + r.s("A", 14)),
    ("price_id", lambda r: "price_1" + r.s("A", 23)),
    ("payment_intent", lambda r: "pi_3" + r.s("A", 23)),
    ("object_id", lambda r: r.s("h", 24)),
    ("request_nonce_id", lambda r: r.s("w", 21)),
    ("sentry_release", lambda r: "web@" + r.s("h", 40)),
    ("build_id", lambda r: r.s("d", 8) + "-" + r.s("h", 7)),
    ("slack_channel", lambda r: "C0" + r.s("U", 9)),
    ("youtube_video", lambda r: r.s("w", 11)),
    ("i18n_key", lambda r: "auth.errors.invalid_" + r.pick(["token", "password", "api_key"])),
    ("color_primary", lambda r: "#" + r.s("h", 6)),
    ("ga_measurement_id", lambda r: "G-" + r.s("U", 10)),
    ("account_id", lambda r: r.s("d", 12)),
    ("user_pool_id", lambda r: "eu-west-1_" + r.s("A", 9)),
    (
        "google_oauth_client_id",
        lambda r: r.s("d", 12) + "-" + r.s("a", 32) + ".apps.googleusercontent.com",
    ),
    ("github_app_client_id", lambda r: "Iv23li" + r.s("A", 14)),
    ("auth0_client_id", lambda r: r.s("A", 32)),
    ("docker_image", lambda r: "ghcr.io/acme/" + r.pick(SVCS) + "@sha256:" + r.s("h", 64)),
    ("gpg_key_id", lambda r: r.s("H", 16)),
    ("ssh_host_fingerprint", lambda r: "SHA256:" + b64u(r.raw(32))),
    ("cert_thumbprint", lambda r: r.s("H", 40)),
    ("content_security_nonce_len", lambda r: "16"),
    (
        "base64_sample",
        lambda r: base64.b64encode(
            r.pick([b"Hello World", b'{"ok":true}', b"user@example.com"])
        ).decode(),
    ),
]
PUBLISHABLE = [
    ("stripe-publishable", "STRIPE_PUBLISHABLE_KEY", lambda r: "pk_live_" + r.s("A", 24)),
    ("stripe-publishable", "NEXT_PUBLIC_STRIPE_KEY", lambda r: "pk_live_51" + r.s("A", 97)),
    ("mapbox-public-token", "MAPBOX_ACCESS_TOKEN", mapbox_public),
    ("posthog-project-key", "POSTHOG_KEY", lambda r: "phc_" + r.s("A", 43)),
    (
        "sentry-dsn",
        "SENTRY_DSN",
        lambda r: (
            "https://" + r.s("h", 32) + "@o" + r.s("d", 6) + ".ingest.sentry.io/" + r.s("d", 7)
        ),
    ),
    ("recaptcha-site-key", "RECAPTCHA_SITE_KEY", lambda r: "6L" + r.s("w", 38)),
    ("supabase-anon-key", "SUPABASE_ANON_KEY", supabase_anon),
    ("launchdarkly-client-id", "LD_CLIENT_SIDE_ID", lambda r: r.s("h", 24)),
    (
        "clerk-publishable",
        "CLERK_PUBLISHABLE_KEY",
        lambda r: (
            "pk_live_"
            + base64.b64encode(("clerk." + r.pick(WORDS) + ".com$").encode()).decode().rstrip("=")
        ),
    ),
    ("razorpay-key-id", "RAZORPAY_KEY_ID", lambda r: "rzp_live_" + r.s("A", 14)),
    ("algolia-search-only", "ALGOLIA_SEARCH_ONLY_KEY", lambda r: r.s("h", 32)),
    ("firebase-app-id", "FIREBASE_APP_ID", lambda r: "1:" + r.s("d", 12) + ":web:" + r.s("h", 22)),
    ("paypal-client-id", "PAYPAL_CLIENT_ID", lambda r: "A" + r.s("w", 79)),
    (
        "braintree-tokenization",
        "BRAINTREE_TOKENIZATION_KEY",
        lambda r: "production_" + r.s("a", 8) + "_" + r.s("a", 16),
    ),
    ("newrelic-browser-key", "NEW_RELIC_BROWSER_KEY", lambda r: "NRJS-" + r.s("h", 19)),
]


def pw_hash(r: Rand) -> tuple[str, str]:
    k = r.randrange(5)
    if k == 0:
        return "bcrypt", "$2b$12$" + r.s("A", 53).replace("+", ".")
    if k == 1:
        return "argon2id", "$argon2id$v=19$m=65536,t=3,p=4$" + b64u(r.raw(16)) + "$" + b64u(
            r.raw(32)
        )
    if k == 2:
        return "django-pbkdf2", "pbkdf2_sha256$600000$" + r.s("A", 22) + "$" + base64.b64encode(
            r.raw(32)
        ).decode()
    if k == 3:
        return "sha512crypt", "$6$" + r.s("A", 16) + "$" + r.s("A", 86)
    return "apr1", "$apr1$" + r.s("A", 8) + "$" + r.s("A", 22)


def encrypted(r: Rand) -> tuple[str, str]:
    k = r.randrange(4)
    if k == 0:
        return "sops", "ENC[AES256_GCM,data:" + base64.b64encode(
            r.raw(18)
        ).decode() + ",iv:" + base64.b64encode(r.raw(32)).decode() + ",tag:" + base64.b64encode(
            r.raw(16)
        ).decode() + ",type:str]"
    if k == 1:
        return "aws-kms-ciphertext", "AQICAHh" + r.s("s", 180) + "=="
    if k == 2:
        return "sealed-secret", "AgB" + r.s("s", 600) + "=="
    return "jenkins-encrypted", "{AQAAABAAAAAQ" + r.s("s", 40) + "=}"


def data_uri(r: Rand) -> tuple[str, str]:
    k = r.randrange(3)
    if k == 0:
        return "png-data-uri", "data:image/png;base64," + base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + r.raw(300)
        ).decode()
    if k == 1:
        return "gif-data-uri", "data:image/gif;base64," + base64.b64encode(
            b"GIF89a" + r.raw(120)
        ).decode()
    return "woff2-data-uri", "data:font/woff2;base64," + base64.b64encode(
        b"wOF2\x00\x01\x00\x00" + r.raw(600)
    ).decode()


TEMPLATE_REFS = {  # shape -> list of templates ({N} = UPPER name, {n} = lower name)
    "env": ["${{N}}", "${{N}:-}", "$(cat /run/secrets/{n})"],
    "yaml": [
        "${{N}}",
        "{{ .Values.{c}.{c2} }}",
        "{{ {n} }}",
        "${{ secrets.{N} }}",
        "(({n}))",
        "{{ vault_{n} }}",
        "#{{N}}#",
    ],
    "properties": ["${{N}}", "${env.{N}}", "${{n}:}", "@{n}@"],
    "dockerfile": ["${{N}}", "${{N}:-}"],
    "shell": [
        "${{N}}",
        "$(vault kv get -field={n} secret/{svc})",
        "$(cat /run/secrets/{n})",
        "$(aws ssm get-parameter --name /prod/{n} --with-decryption --query Parameter.Value --output text)",
    ],
    "terraform": ["${var.{n}}", '${data.vault_generic_secret.{svc}.data["{n}"]}'],
    "ini": ["%({n})s", "${{N}}", "{{{n}}}"],
    "toml": ["${{N}}", "{{ {n} }}", "env:{N}"],
    "xml": ["${{N}}", "${env.{N}}", "#{{n}}"],
    "json": ["${{N}}", "{{ {n} }}", "$ENV:{N}", "%{N}%"],
    "python": ["%({n})s", "{{{{ {n} }}}}"],
    "ruby": ["<%= ENV['{N}'] %>", "#{ENV.fetch('{N}')}"],
    "javascript": ["${process.env.{N}}", "{{{n}}}"],
    "markdown": ["<{N}>", "$" + "{N}", "<your {n}>"],
    "ipynb": ["{{{n}}}", "<{N}>"],
    "go": ["{{.{c}}}"],
    "java": ["${{n}}"],
}
EXPR = {  # lang -> kind -> templates
    "python": {
        "env-reference": [
            'os.environ["{N}"]',
            'os.getenv("{N}")',
            'os.environ.get("{N}", "")',
            'config("{N}")',
            'env.str("{N}")',
        ],
        "function-call": [
            "get_password()",
            'vault_client.read_secret("{svc}/{n}")',
            'keyring.get_password("{svc}", "deploy")',
            "load_credentials().{n}",
            'secrets_manager.get_secret_value(SecretId="prod/{svc}")["SecretString"]',
            "getpass.getpass()",
        ],
        "identifier": [
            "auth_token",
            "self.{n}",
            "settings.{N}",
            "creds.{n}",
            'kwargs["{n}"]',
            "None",
            "{n}",
        ],
    },
    "js": {
        "env-reference": [
            "process.env.{N}",
            "process.env['{N}']",
            "import.meta.env.VITE_{N}",
            "Deno.env.get('{N}')",
        ],
        "function-call": [
            "await getSecret('{n}')",
            "await vault.read('secret/{svc}')",
            "readFileSync('/run/secrets/{n}', 'utf8').trim()",
            "getToken()",
        ],
        "identifier": [
            "authToken",
            "this.{c}",
            "config.{c}",
            "opts.{c}",
            "undefined",
            "credentials.{c}",
        ],
    },
    "go": {
        "env-reference": ['os.Getenv("{N}")', 'mustEnv("{N}")', 'viper.GetString("{n}")'],
        "function-call": [
            'secrets.Fetch(ctx, "{n}")',
            'readSecret("/run/secrets/{n}")',
            "getPassword()",
        ],
        "identifier": ["token", "cfg.{C}", "opts.{C}"],
    },
    "java": {
        "env-reference": [
            'System.getenv("{N}")',
            'env.getProperty("{n}")',
            'System.getProperty("{n}")',
        ],
        "function-call": [
            'vault.read("secret/{svc}").getData().get("{n}")',
            "getPassword()",
            'secretsClient.getSecret("{n}").getValue()',
        ],
        "identifier": ["this.{c}", "properties.get{C}()", "credentials.{c}()"],
    },
    "ruby": {
        "env-reference": ["ENV['{N}']", "ENV.fetch('{N}')", "ENV.fetch('{N}', nil)"],
        "function-call": [
            "Rails.application.credentials.{n}",
            "Vault.logical.read('secret/{svc}').data[:{n}]",
            "fetch_password",
        ],
        "identifier": ["@{n}", "config[:{n}]", "options.fetch(:{n})", "nil"],
    },
    "tf": {
        "env-reference": ["var.{n}"],
        "function-call": [
            "data.aws_secretsmanager_secret_version.{svc}.secret_string",
            "random_password.{svc}.result",
            'jsondecode(data.aws_secretsmanager_secret_version.{svc}.secret_string)["{n}"]',
            'data.vault_generic_secret.{svc}.data["{n}"]',
        ],
        "identifier": ["local.{n}", "module.secrets.{n}", "sensitive(var.{n})"],
    },
}
CMD_NEG = [
    "mysql -u root -p -h db.internal app",
    'curl -fsS -H "Authorization: Bearer $API_TOKEN" https://api.internal.example.com/v1/jobs',
    'echo "$REGISTRY_PASSWORD" | docker login -u "$REGISTRY_USER" --password-stdin registry.example.com',
    'psql "$DATABASE_URL" -c "select 1"',
    "sshpass -f ~/.sshpass ssh deploy@10.0.3.12",
    'redis-cli -h cache.internal -a "$REDIS_PASSWORD" PING',
    "git clone https://x-access-token:${GITHUB_TOKEN}@github.com/acme/infra.git",
    'mysqldump -u backup --password="${MYSQL_PASSWORD}" app > dump.sql',
    "htpasswd -c /etc/nginx/.htpasswd admin",
    'curl -u "admin:${JENKINS_TOKEN}" https://jenkins.internal.example.com/api/json',
    "java -jar app.jar --spring.datasource.password=${DB_PASSWORD}",
    "openssl rand -base64 32 > /run/secrets/session_key",
    'kubectl create secret generic db --from-literal=password="$(openssl rand -hex 16)"',
    'aws configure set aws_secret_access_key "$AWS_SECRET_ACCESS_KEY"',
    "gh auth login --with-token < ~/.config/gh/token",
    "npm config set //registry.npmjs.org/:_authToken ${NPM_TOKEN}",
]


def neg_name(r: Rand, split: str) -> tuple[list[str], str]:
    """A secret-sounding name (what makes a look-alike look alike)."""
    if r.random() < 0.55:
        p = r.pick(PROVIDERS)
        nm = tokens(r.pick(p.names))
        if split == "heldout" and r.random() < 0.5:
            return heldout_name(r, nm, p.alt), "heldout"
        return nm, "base"
    kind = r.pick(["password", "key"])
    if split == "heldout" and r.random() < 0.5:
        return tokens(r.pick(GENERIC_NAMES_HO[kind])), "heldout"
    return tokens(r.pick(GENERIC_NAMES_DEV[kind])), "base"


def fill_ref(t: str, nm: list[str], svc: str) -> str:
    cs = casings(nm)
    return (
        t.replace("{N}", cs["UPPER"])
        .replace("{n}", cs["lower"])
        .replace("{c}", cs["camel"])
        .replace("{c2}", "password" if nm[-1] == "password" else nm[-1])
        .replace("{C}", cs["Pascal"])
        .replace("{svc}", svc)
    )


def negative_cases(r: Rand, split: str, scale: int) -> list[Case]:
    out: list[Case] = []

    def add(
        kind: str,
        prov: str,
        value: str,
        nm: list[str],
        variant: str = "base",
        form: str = "assign",
        shapes: list[str] | None = None,
        **kw: Any,
    ) -> Case:
        c = Case(
            "negative", kind, prov, form, value, nm, shapes=shapes or [], name_variant=variant, **kw
        )
        out.append(c)
        return c

    for _ in range(10 * scale):
        nm, var = neg_name(r, split)
        add("placeholder", "placeholder", r.pick(PLACEHOLDERS), nm, var)
    for prov, v in PREFIX_PLACEHOLDERS * scale:
        p = next(p for p in PROVIDERS if p.id == prov)
        add("placeholder", prov + "-placeholder", v, tokens(r.pick(p.names)))
    for _ in range(3 * scale):
        nm, var = neg_name(r, split)
        add("placeholder", "empty", "", nm, var)
    for _ in range(4 * scale):
        nm, var = neg_name(r, split)
        add("masked", "masked", r.pick(MASKED), nm, var)
    for _ in range(12 * scale):
        nm, var = neg_name(r, split)
        shape = r.pick(sorted(TEMPLATE_REFS))
        t = r.pick(TEMPLATE_REFS[shape])
        add(
            "template-reference", "template", fill_ref(t, nm, r.pick(SVCS)), nm, var, shapes=[shape]
        )
    for kind, n in (("env-reference", 8), ("function-call", 6), ("identifier", 5)):
        for _ in range(n * scale):
            nm, var = neg_name(r, split)
            svc = r.pick(SVCS)
            exprs = {lang: fill_ref(r.pick(d[kind]), nm, svc) for lang, d in EXPR.items()}
            add(kind, kind, exprs["python"], nm, var, form="expr", exprs=exprs, shapes=CODE_SHAPES)
    for _ in range(5 * scale):
        nm, var = neg_name(r, split)
        add(
            "secret-manager-ref",
            "secret-manager-ref",
            fill_ref(r.pick(SM_REFS), nm, r.pick(SVCS)),
            nm,
            var,
        )
    for prov, v, name in DOC_EXAMPLES * scale:
        add("doc-example", prov, v, tokens(name))
    for _ in range(6 * scale):
        nm = tokens(r.pick(HASH_NAMES))
        k = r.randrange(4)
        v = [r.s("h", 40), r.s("h", 64), r.s("h", 32), "sha256:" + r.s("h", 64)][k]
        add("hash", ["sha1", "sha256", "md5", "sha256-prefixed"][k], v, nm)
    for _ in range(3 * scale):
        add("git-sha", "git-commit", r.s("h", 40), tokens(r.pick(GIT_NAMES)))
    for _ in range(6 * scale):
        add("uuid-id", "uuid", r.pick([r.uuid(), r.uuid().upper()]), tokens(r.pick(UUID_NAMES)))
    for _ in range(2 * scale):
        for prov, name, mk in PUBLISHABLE:
            if r.random() < 0.5:
                add("publishable-key", prov, mk(r), tokens(name))
    for _ in range(2 * scale):
        for name, val, bare in POLICY:
            if r.random() < 0.4:
                v = val.replace("{svc}", r.pick(SVCS))
                c = add("password-policy", "config-value", v, tokens(name))
                if bare:
                    c.exprs = {"*": v}
    for _ in range(4 * scale):
        prov, h = pw_hash(r)
        add(
            "password-hash",
            prov,
            h,
            tokens(
                r.pick(
                    [
                        "password_hash",
                        "hashed_password",
                        "admin_password_hash",
                        "password_digest",
                        "encrypted_password",
                    ]
                )
            ),
        )
    for _ in range(6 * scale):
        name, mk = r.pick(NONSECRET)
        add("random-non-secret", name, mk(r), tokens(name))
    for _ in range(4 * scale):
        nm, var = neg_name(r, split)
        prov, v = encrypted(r)
        add("encrypted-value", prov, v, nm, var)
    for _ in range(2 * scale):
        prov, v = data_uri(r)
        add(
            "base64-blob",
            prov,
            v,
            tokens(
                r.pick(
                    [
                        "logo",
                        "placeholder_image",
                        "favicon",
                        "icon_font",
                        "avatar_default",
                        "spinner",
                    ]
                )
            ),
        )
    for _ in range(3 * scale):
        nm = tokens(r.pick(["DATABASE_URL", "REDIS_URL", "MONGO_URL", "AMQP_URL", "POSTGRES_DSN"]))
        v = r.pick(
            [
                "postgres://localhost:5432/app",
                "postgres://app@db.internal:5432/app",
                "mongodb://mongo:27017/app",
                "redis://redis:6379/0",
                "postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:5432/app",
                "postgres://user:password@localhost:5432/mydb",
                "mysql://root@127.0.0.1:3306/test",
                "amqp://rabbitmq:5672",
                "postgres://app:<password>@db.internal/app",
                "jdbc:postgresql://db.internal:5432/app",
                "Server=.;Database=app;Trusted_Connection=True;",
                "mongodb+srv://<username>:<password>@cluster0.example.mongodb.net/",
            ]
        )
        add("connection-string-no-password", "url-without-secret", v, nm)
    for _ in range(2 * scale):
        nm = tokens(r.pick(["SSH_PUBLIC_KEY", "deploy_public_key", "authorized_key", "ssh_key"]))
        v = (
            (ssh_rsa_pub(r) if r.random() < 0.5 else ssh_ed_pub(r))
            + " "
            + r.pick(["deploy@ci", "alice@laptop", "ops"])
        )
        add("public-key", "ssh-public-key", v, nm)
        add(
            "public-key",
            "age-recipient",
            "age1" + r.s("e", 58),
            tokens(r.pick(["SOPS_AGE_RECIPIENTS", "age_recipient"])),
        )
        add(
            "public-key",
            "wireguard-public-key",
            base64.b64encode(r.raw(32)).decode(),
            tokens("WG_PEER_PUBLIC_KEY"),
        )
    for _ in range(2 * scale):
        lines = pem("PUBLIC KEY", der_pub(r))
        add(
            "public-key",
            "pem-public-key",
            lines[0],
            tokens(r.pick(["JWT_PUBLIC_KEY", "public_key", "verification_key"])),
            form="block",
            block=lines,
        )
        lines = pem("CERTIFICATE", der_cert(r))
        add(
            "certificate",
            "x509-certificate",
            lines[0],
            tokens(r.pick(["TLS_CERT", "ca_certificate", "client_cert"])),
            form="block",
            block=lines,
        )
        if r.random() < 0.5:
            lines = pgp_block(r, private=False)
            add(
                "public-key",
                "pgp-public-key",
                lines[0],
                tokens("GPG_PUBLIC_KEY"),
                form="block",
                block=lines,
            )
        ph = [
            ["-----BEGIN RSA PRIVATE KEY-----", "...", "-----END RSA PRIVATE KEY-----"],
            ["-----BEGIN PRIVATE KEY-----", "<your private key here>", "-----END PRIVATE KEY-----"],
            [
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "REPLACE_WITH_DEPLOY_KEY",
                "-----END OPENSSH PRIVATE KEY-----",
            ],
        ]
        lines = r.pick(ph)
        add(
            "placeholder",
            "pem-placeholder",
            lines[0],
            tokens(r.pick(["PRIVATE_KEY", "SSH_PRIVATE_KEY"])),
            form="block",
            block=lines,
        )
    for _ in range(3 * scale):
        add("cmd-reference", "cmd-reference", "", [], form="cmd", cmd=r.pick(CMD_NEG))
    return out


def special_negative_files(r: Rand, split: str) -> list[FileSpec]:
    out: list[FileSpec] = []
    ho = split == "heldout"
    pkgs = [
        "lodash",
        "express",
        "react-dom",
        "axios",
        "chalk",
        "debug",
        "ms",
        "semver",
        "uuid",
        "zod",
        "yargs",
        "tslib",
    ]
    for _ in range(3):
        parts: list[Any] = [
            "{",
            '  "name": "' + r.pick(SVCS) + '-web",',
            '  "lockfileVersion": 3,',
            '  "packages": {',
        ]
        for i, p in enumerate(r.sample(pkgs, 5)):
            integ = "sha512-" + base64.b64encode(r.raw(64)).decode()
            parts += [
                f'    "node_modules/{p}": {{',
                f'      "version": "{r.randrange(1, 9)}.{r.randrange(20)}.{r.randrange(9)}",',
                f'      "resolved": "https://registry.npmjs.org/{p}/-/{p}-1.0.0.tgz",',
                (
                    neg("lockfile-integrity", "npm-integrity", integ),
                    [f'      "integrity": "{integ}"'],
                ),
                "    }" + ("," if i < 4 else ""),
            ]
        parts += ["  }", "}"]
        out.append(spec("package-lock.json", "json", "file/package-lock", parts))
    for _ in range(2):
        parts = [
            "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.",
            "# yarn lockfile v1",
            "",
        ]
        for p in r.sample(pkgs, 4):
            integ = "sha512-" + base64.b64encode(r.raw(64)).decode()
            parts += [
                f"{p}@^1.0.0:",
                '  version "1.2.3"',
                f'  resolved "https://registry.yarnpkg.com/{p}/-/{p}-1.2.3.tgz#{r.s("h", 40)}"',
                (neg("lockfile-integrity", "yarn-integrity", integ), [f"  integrity {integ}"]),
                "",
            ]
        out.append(spec("yarn.lock", "lockfile", "file/yarn-lock", parts))
    mods = [
        "github.com/spf13/cobra",
        "golang.org/x/sync",
        "github.com/google/uuid",
        "go.uber.org/zap",
        "github.com/stretchr/testify",
    ]
    for _ in range(3):
        parts = []
        for m in r.sample(mods, 4):
            h1 = "h1:" + base64.b64encode(r.raw(32)).decode()
            parts.append(
                (
                    neg("lockfile-integrity", "go-sum", h1),
                    [f"{m} v1.{r.randrange(20)}.{r.randrange(9)} {h1}"],
                )
            )
        out.append(spec("go.sum", "lockfile", "file/go-sum", parts))
    for _ in range(2):
        parts = ["[[package]]", 'name = "requests"', 'version = "2.32.3"', "files = ["]
        for _ in range(3):
            hsh = "sha256:" + r.s("h", 64)
            parts.append(
                (
                    neg("lockfile-integrity", "poetry-hash", hsh),
                    [f'    {{file = "requests-2.32.3-py3-none-any.whl", hash = "{hsh}"}},'],
                )
            )
        parts += ["]"]
        out.append(spec("poetry.lock", "toml", "file/poetry-lock", parts))
        parts = []
        for p in ["certifi==2024.8.30", "idna==3.10", "urllib3==2.2.3"]:
            hsh = r.s("h", 64)
            parts += [
                f"{p} \\",
                (neg("lockfile-integrity", "pip-hash", hsh), [f"    --hash=sha256:{hsh}"]),
            ]
        out.append(spec("requirements.txt", "lockfile", "file/requirements-hashes", parts))
        parts = ["version = 3", ""]
        for p in ["serde", "tokio", "anyhow"]:
            hsh = r.s("h", 64)
            parts += [
                "[[package]]",
                f'name = "{p}"',
                'version = "1.0.0"',
                'source = "registry+https://github.com/rust-lang/crates.io-index"',
                (neg("lockfile-integrity", "cargo-checksum", hsh), [f'checksum = "{hsh}"']),
                "",
            ]
        out.append(spec("Cargo.lock", "toml", "file/cargo-lock", parts))
        h1 = "h1:" + base64.b64encode(r.raw(32)).decode()
        zh = [r.s("h", 64) for _ in range(2)]
        out.append(
            spec(
                ".terraform.lock.hcl",
                "terraform",
                "file/tf-lock",
                [
                    'provider "registry.terraform.io/hashicorp/aws" {',
                    '  version     = "5.72.1"',
                    '  constraints = "~> 5.0"',
                    "  hashes = [",
                    (neg("lockfile-integrity", "tf-lock-h1", h1), [f'    "{h1}",']),
                    (neg("lockfile-integrity", "tf-lock-zh", zh[0]), [f'    "zh:{zh[0]}",']),
                    (neg("lockfile-integrity", "tf-lock-zh", zh[1]), [f'    "zh:{zh[1]}",']),
                    "  ]",
                    "}",
                ],
            )
        )
    for _ in range(3):
        d1, d2 = r.s("h", 64), r.s("h", 64)
        out.append(
            spec(
                "Dockerfile",
                "dockerfile",
                "file/docker-digest",
                [
                    (
                        neg("docker-digest", "image-digest", d1),
                        [f"FROM python:3.12-slim@sha256:{d1} AS base"],
                    ),
                    "WORKDIR /app",
                    (neg("hash", "download-sha256", d2), [f"ARG NODE_SHA256={d2}"]),
                    'RUN curl -fsSLO https://nodejs.org/dist/v20.11.0/node-v20.11.0-linux-x64.tar.xz && echo "${NODE_SHA256}  node-v20.11.0-linux-x64.tar.xz" | sha256sum -c -',
                    'CMD ["python", "-m", "app"]',
                ],
                dirs=("docker", "images"),
            )
        )
    for _ in range(2):
        d = r.s("h", 64)
        out.append(
            spec(
                "kustomization.yaml",
                "yaml",
                "file/k8s-digest",
                [
                    "apiVersion: kustomize.config.k8s.io/v1beta1",
                    "kind: Kustomization",
                    "images:",
                    "- name: registry.example.com/" + r.pick(SVCS),
                    (neg("docker-digest", "image-digest", d), [f"  digest: sha256:{d}"]),
                ],
            )
        )
    for _ in range(3):
        parts = ["# Changelog", "", "## 2.4.0", ""]
        for msg in [
            "Fix token refresh race in the session middleware",
            "Rotate signing keys without downtime",
            "Drop the legacy password reset flow",
        ]:
            sha = r.s("h", 40)
            parts.append((neg("git-sha", "changelog-commit", sha), [f"- {msg} ({sha})"]))
        out.append(spec("CHANGELOG.md", "markdown", "file/changelog", parts))
    for _ in range(2):
        sri = "sha384-" + base64.b64encode(r.raw(48)).decode()
        _, img = data_uri(r)
        css = "app." + r.s("h", 8) + ".css"
        out.append(
            spec(
                "index.html",
                "html",
                "file/html",
                [
                    "<!doctype html>",
                    '<html lang="en">',
                    "<head>",
                    '  <meta charset="utf-8">',
                    (
                        neg("random-non-secret", "hashed-asset-name", css),
                        [f'  <link rel="stylesheet" href="/static/{css}">'],
                    ),
                    (
                        neg("hash", "sri-integrity", sri),
                        [
                            f'  <script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js" integrity="{sri}" crossorigin="anonymous"></script>'
                        ],
                    ),
                    "</head>",
                    "<body>",
                    (
                        neg("base64-blob", "img-data-uri", img[:40]),
                        [f'  <img alt="logo" src="{img}">'],
                    ),
                    "</body>",
                    "</html>",
                ],
                dirs=("public", "static"),
            )
        )
        _, font = data_uri(r)
        cls = "css-" + r.s("a", 7)
        out.append(
            spec(
                "styles.css",
                "css",
                "file/css",
                [
                    "@font-face {",
                    '  font-family: "Inter";',
                    (
                        neg("base64-blob", "font-data-uri", font[:40]),
                        [f'  src: url({font}) format("woff2");'],
                    ),
                    "}",
                    "",
                    (neg("random-non-secret", "css-hash-class", cls), [f".{cls} {{"]),
                    "  color: #1f2937;",
                    "}",
                ],
                dirs=("public", "assets"),
            )
        )
    for _ in range(2):
        parts = [
            (
                neg("public-key", "authorized-key", "ssh"),
                [(ssh_ed_pub(r) if i % 2 else ssh_rsa_pub(r)) + f" {u}@{h}"],
            )
            for i, (u, h) in enumerate(
                [("alice", "laptop"), ("deploy", "ci"), ("bob", "workstation")]
            )
        ]
        out.append(
            spec(
                "authorized_keys",
                "keyfile",
                "file/authorized-keys",
                parts,
                dirs=(".ssh", "provisioning"),
            )
        )
        parts = [
            (neg("public-key", "known-host", "host"), [f"{h} {ssh_ed_pub(r)}"])
            for h in ["github.com", "gitlab.com", "10.0.3.12"]
        ]
        out.append(
            spec("known_hosts", "keyfile", "file/known-hosts", parts, dirs=(".ssh", "provisioning"))
        )
        parts = [
            (
                neg("password-hash", "htpasswd-apr1", "x"),
                [f"{u}:$apr1${r.s('A', 8)}${r.s('A', 22)}"],
            )
            for u in ["admin", "grafana", "metrics"]
        ]
        out.append(
            spec(".htpasswd", "keyfile", "file/htpasswd", parts, dirs=("nginx", "deploy/nginx"))
        )
        parts = ["root:*:19700:0:99999:7:::"] + [
            (
                neg("password-hash", "shadow-sha512crypt", "x"),
                [f"{u}:$6${r.s('A', 16)}${r.s('A', 86)}:19700:0:99999:7:::"],
            )
            for u in ["deploy", "app"]
        ]
        out.append(
            spec("shadow", "keyfile", "file/shadow-fixture", parts, dirs=("tests/fixtures/etc",))
        )
    for _ in range(2):
        parts = [
            "[",
            "  {",
            '    "model": "auth.user",',
            '    "pk": 1,',
            '    "fields": {',
            '      "username": "admin",',
        ]
        h = "pbkdf2_sha256$600000$" + r.s("A", 22) + "$" + base64.b64encode(r.raw(32)).decode()
        parts += [
            (neg("password-hash", "django-fixture", h), [f'      "password": "{h}",']),
            '      "is_superuser": true',
            "    }",
            "  },",
            "  {",
            '    "model": "auth.user",',
            '    "pk": 2,',
            '    "fields": {',
            '      "username": "editor",',
        ]
        h = "$2b$12$" + r.s("A", 53)
        parts += [
            (neg("password-hash", "bcrypt-fixture", h), [f'      "password": "{h}"']),
            "    }",
            "  }",
            "]",
        ]
        out.append(
            spec("users.json", "json", "file/user-fixture", parts, dirs=("fixtures", "seed"))
        )
    for _ in range(2):
        parts = ["{"]
        items = [
            ("auth.password.label", "Password"),
            ("auth.password.too_short", "Your password must be at least 12 characters."),
            ("auth.token.expired", "Your session token expired, sign in again."),
            ("settings.api_key.title", "API keys"),
            ("settings.api_key.help", "Create a secret key to call the API from your server."),
        ]
        for i, (k, v) in enumerate(items):
            parts.append(
                (
                    neg("random-non-secret", "i18n-string", v),
                    [f'  "{k}": "{v}"' + ("," if i < len(items) - 1 else "")],
                )
            )
        parts.append("}")
        out.append(
            spec(
                r.pick(["en.json", "messages.en.json"]),
                "json",
                "file/i18n",
                parts,
                dirs=("locales", "i18n"),
            )
        )
    for _ in range(2):
        n = b64u(r.raw(256))
        kid = r.s("h", 16)
        out.append(
            spec(
                "jwks.json",
                "json",
                "file/jwks-public",
                [
                    "{",
                    '  "keys": [',
                    "    {",
                    '      "kty": "RSA",',
                    (neg("random-non-secret", "jwk-kid", kid), [f'      "kid": "{kid}",']),
                    '      "use": "sig",',
                    '      "alg": "RS256",',
                    (neg("public-key", "jwk-modulus", n), [f'      "n": "{n}",']),
                    '      "e": "AQAB"',
                    "    }",
                    "  ]",
                    "}",
                ],
                dirs=(".well-known", "public"),
            )
        )
    for _ in range(2):
        parts = ["db:"]
        for k in ["user", "password", "host"]:
            _, e = (
                "sops",
                "ENC[AES256_GCM,data:"
                + base64.b64encode(r.raw(12)).decode()
                + ",iv:"
                + base64.b64encode(r.raw(32)).decode()
                + ",tag:"
                + base64.b64encode(r.raw(16)).decode()
                + ",type:str]",
            )
            parts.append((neg("encrypted-value", "sops", e), [f"    {k}: {e}"]))
        rcp = "age1" + r.s("e", 58)
        mac = (
            "ENC[AES256_GCM,data:"
            + base64.b64encode(r.raw(32)).decode()
            + ",iv:"
            + base64.b64encode(r.raw(32)).decode()
            + ",tag:"
            + base64.b64encode(r.raw(16)).decode()
            + ",type:str]"
        )
        parts += [
            "sops:",
            "    age:",
            (neg("public-key", "age-recipient", rcp), ["        - recipient: " + rcp]),
            '    lastmodified: "2024-05-02T09:12:44Z"',
            (neg("encrypted-value", "sops-mac", mac), ["    mac: " + mac]),
            "    version: 3.8.1",
        ]
        out.append(
            spec("secrets.enc.yaml", "yaml", "file/sops", parts, dirs=("secrets", "env/prod"))
        )
        hexes = [r.s("h", 80) for _ in range(5)]
        out.append(
            spec(
                r.pick(["vault.yml", "secrets.yml"]),
                "yaml",
                "file/ansible-vault",
                [
                    "db_password: !vault |",
                    (
                        neg("encrypted-value", "ansible-vault", "$ANSIBLE_VAULT"),
                        ["          $ANSIBLE_VAULT;1.1;AES256", *["          " + h for h in hexes]],
                    ),
                ],
                dirs=("group_vars/prod", "inventories/prod"),
            )
        )
        enc = "AgB" + r.s("s", 700) + "=="
        out.append(
            spec(
                "sealedsecret.yaml",
                "yaml",
                "file/sealed-secret",
                [
                    "apiVersion: bitnami.com/v1alpha1",
                    "kind: SealedSecret",
                    "metadata:",
                    "  name: " + r.pick(SVCS) + "-db",
                    "spec:",
                    "  encryptedData:",
                    (neg("encrypted-value", "sealed-secret", enc[:20]), [f"    password: {enc}"]),
                ],
                dirs=("k8s", "manifests"),
            )
        )
    for _ in range(2):
        hs = ["'sha256-" + base64.b64encode(r.raw(32)).decode() + "'" for _ in range(2)]
        out.append(
            spec(
                r.pick(["nginx.conf", "security-headers.conf"]),
                "nginx",
                "file/csp",
                [
                    "server {",
                    "  listen 443 ssl;",
                    "  ssl_certificate     /etc/ssl/certs/site.crt;",
                    "  ssl_certificate_key /etc/ssl/private/site.key;",
                    (
                        neg("hash", "csp-hash", hs[0]),
                        [
                            f"  add_header Content-Security-Policy \"script-src 'self' {hs[0]} {hs[1]}\" always;"
                        ],
                    ),
                    "}",
                ],
                dirs=("nginx", "deploy/nginx"),
            )
        )
        oid = r.s("h", 64)
        out.append(
            spec(
                r.pick(["model.bin", "dataset.parquet"]),
                "lfs",
                "file/lfs-pointer",
                [
                    "version https://git-lfs.github.com/spec/v1",
                    (neg("hash", "lfs-oid", oid), [f"oid sha256:{oid}"]),
                    f"size {r.randrange(10**6, 10**9)}",
                ],
                dirs=("models", "data"),
            )
        )
        out.append(
            spec(
                "openapi.yaml",
                "yaml",
                "file/openapi",
                [
                    "openapi: 3.0.3",
                    "info:",
                    "  title: Orders API",
                    "  version: 1.0.0",
                    "components:",
                    "  securitySchemes:",
                    "    ApiKeyAuth:",
                    "      type: apiKey",
                    "      in: header",
                    (
                        neg("password-policy", "openapi-header-name", "X-API-Key"),
                        ["      name: X-API-Key"],
                    ),
                    "  schemas:",
                    "    Login:",
                    "      type: object",
                    "      properties:",
                    "        password:",
                    "          type: string",
                    "          format: password",
                    (
                        neg("placeholder", "openapi-example", "hunter2"),
                        ["          example: hunter2"],
                    ),
                    (
                        neg("password-policy", "openapi-minlength", "12"),
                        ["          minLength: 12"],
                    ),
                ],
                dirs=("api", "docs/api"),
            )
        )
    if ho:  # heldout-only look-alike files
        for _ in range(2):
            parts = ['syntax = "proto3";', "", "message Credentials {"]
            for f in ["string api_key = 1;", "string password = 2;", "bytes private_key = 3;"]:
                parts.append((neg("identifier", "proto-field", f), ["  " + f]))
            parts.append("}")
            out.append(
                spec("credentials.proto", "proto", "file/proto", parts, dirs=("proto", "api/proto"))
            )
    return out


# -------------------------------------------------------------------------- placement

KEYS_RE = re.compile(
    r"\{(UPPER|lower|camel|Pascal|kebab|dotted|v|venv|vy|e|svc|Svc|cmd|cmdy|cmdrepr)\}"
)


def subst(t: str, ctx: dict[str, str]) -> str:
    return KEYS_RE.sub(lambda m: ctx.get(m.group(1), m.group(0)), t)


def esc_value(frame: Frame, v: str) -> str:
    if frame.esc == "json":
        return json.dumps(v)[1:-1]
    v = v.replace("\n", "\\n")
    if frame.esc == "xml":
        return xml_esc(v)
    return v


def q_cmd_yaml(cmd: str) -> str:
    if ": " in cmd or cmd[:1] in "\"'{[*&!|>%@`" or " #" in cmd:
        return "'" + cmd.replace("'", "''") + "'"
    return cmd


def frame_ok(f: Frame, c: Case) -> bool:
    if f.accept == "maven" and "maven" not in c.tags:
        return False
    if c.form == "assign":
        if c.exprs.get("*") and f.expr and f.lang:
            return True
        return f.assign is not None and (not f.accept or ("maven" in c.tags and not c.companion))
    if c.form == "expr":
        return f.expr is not None and f.lang in c.exprs
    if c.form == "cmd":
        return f.cmd is not None
    if c.form == "block":
        return f.assign is not None and f.accept == ""
    return False


def entry(frame: Frame, c: Case, svc: str) -> tuple[list[str], int, int]:
    """Lines for one case in this frame, and the labelled span (0-based, inclusive)."""
    ctx = {"svc": svc, "Svc": svc.capitalize()}
    if c.name:
        ctx |= casings(c.name)
    if c.form == "cmd":
        ctx |= {"cmd": c.cmd, "cmdy": q_cmd_yaml(c.cmd), "cmdrepr": repr(c.cmd)}
        return [subst(frame.cmd or "{cmd}", ctx)], 0, 0
    if c.form == "expr" or (c.exprs.get("*") and frame.expr and frame.lang):
        ctx["e"] = c.exprs.get(frame.lang) or c.exprs["*"]
        tmpl = frame.expr or []
    elif c.form == "block" and frame.block:
        return block_entry(frame, c, ctx)
    else:
        v = ("\n".join(c.block) + "\n") if c.form == "block" else c.value
        ctx |= {
            "v": esc_value(frame, v),
            "venv": q_env(v.replace("\n", "\\n")),
            "vy": q_yaml(v.replace("\n", "\\n")),
        }
        tmpl = frame.assign or []
    lines = [subst(t, ctx) for t in tmpl]
    idx = next((i for i, t in enumerate(tmpl) if re.search(r"\{(v|venv|vy|e)\}", t)), 0)
    return lines, idx, idx


def case_lines(frame: Frame, c: Case, svc: str) -> tuple[list[str], int, int]:
    """entry(), plus the identifier line of a paired credential (inside the labelled span)."""
    if not c.companion or c.form != "assign":
        return entry(frame, c, svc)
    comp = Case(c.kind, c.category, c.provider, "assign", c.companion[1], c.companion[0])
    l1, a1, _ = entry(frame, comp, svc)
    l2, _, b2 = entry(frame, c, svc)
    return l1 + l2, a1, len(l1) + b2


def block_entry(frame: Frame, c: Case, ctx: dict[str, str]) -> tuple[list[str], int, int]:
    b = c.block
    st = frame.block
    key = subst((frame.assign or ["{lower}"])[0], ctx)
    if st in ("pyq", "pyq-indent"):
        ind = "    " if st == "pyq-indent" else ""
        lines = [f'{ind}{ctx["UPPER"]} = """{b[0]}', *b[1:-1], f'{b[-1]}"""']
        return lines, 0, len(lines) - 1
    if st == "jsq":
        lines = [f"const {ctx['camel']} = `{b[0]}", *b[1:-1], f"{b[-1]}`;"]
        return lines, 0, len(lines) - 1
    if st == "rbheredoc":
        return [f"{ctx['UPPER']} = <<~PEM", *("  " + x for x in b), "PEM"], 0, len(b)
    if st in ("yaml", "yaml0"):
        k = key.split(":")[0]
        ind = " " * (len(k) - len(k.lstrip()) + 2)
        return [k + ": |", *(ind + x if x else "" for x in b)], 0, len(b)
    if st == "tfheredoc":
        k = key.split("=")[0].rstrip()
        return [k + " = <<EOF", *b, "EOF"], 0, len(b)
    if st == "shheredoc":
        return [f"cat > /etc/ssl/private/{ctx['svc']}.key <<'EOF'", *b, "EOF"], 0, len(b)
    if st == "xml":
        tag = ctx["camel"]
        lines = [f"    <{tag}>{b[0]}", *b[1:-1], f"{b[-1]}</{tag}>"]
        return lines, 0, len(lines) - 1
    raise ValueError(st)


def render_frame_file(r: Rand, frame: Frame, cases: list[Case]) -> FileSpec:
    svc = r.pick(SVCS)
    ctx = {"svc": svc, "Svc": svc.capitalize()}
    lines = [subst(h, ctx) for h in frame.head]
    labels: list[tuple[int, int, Case]] = []
    member_ends: list[int] = []
    items: list[Any] = list(cases)
    if frame.filler:  # each filler line at most once per file
        for fill in r.sample(frame.filler, min(len(frame.filler), r.randrange(1, len(cases) + 3))):
            items.insert(r.randrange(len(items) + 1), fill)
    if frame.shape == "ipynb":
        return render_notebook(r, frame, cases, svc)
    for it in items:
        if isinstance(it, Case):
            ls, a, b = case_lines(frame, it, svc)
            labels.append((len(lines) + a, len(lines) + b, it))
        else:
            ls = [subst(x, ctx) for x in it]
        if frame.sep and isinstance(it, Case) and it.companion and len(ls) > 1:
            ls = [ls[0] + frame.sep, *ls[1:]] if len(frame.assign or []) == 1 else ls
        lines += ls
        member_ends.append(len(lines) - 1)
    if frame.sep:
        for i in member_ends[:-1]:
            lines[i] += frame.sep
    lines += [subst(t, ctx) for t in frame.tail]
    if "kind: Secret" in lines[:3] and any(c.kind == "positive" for c in cases):
        # a finding on the header of a Secret that does hold credentials points at a real
        # secret: neither a true positive (no value named) nor a false one
        i = lines.index("kind: Secret")
        labels.append(
            (
                i,
                i,
                Case(
                    "ignore",
                    "secret-object-header",
                    "k8s-secret",
                    "assign",
                    "kind: Secret",
                    frame=frame.id,
                    shape=frame.shape,
                    frame_tag=frame.tag,
                ),
            )
        )
    base = r.pick(frame.files)
    return FileSpec(base, lines, labels, frame.shape, frame.id, frame.dirs)


def render_notebook(r: Rand, frame: Frame, cases: list[Case], svc: str) -> FileSpec:
    cells: list[tuple[str, list[tuple[str, Case | None, bool]]]] = [
        ("markdown", [("# " + svc.capitalize() + " exploration", None, False)])
    ]
    for c in cases:
        src: list[tuple[str, Case | None, bool]] = []
        if r.random() < 0.5:
            src.append(("import os", None, False))
        ls, a, b = case_lines(frame, c, svc)
        for i, line in enumerate(ls):
            src.append((line, c if a <= i <= b else None, i == a))
        if r.random() < 0.5:
            src.append(('df = load_frame("' + svc + '")', None, False))
        cells.append(("code", src))
        if r.random() < 0.3:
            cells.append(("markdown", [("Results below are for the last 30 days.", None, False)]))
    out = ["{", ' "cells": [']
    labels: list[tuple[int, int, Case]] = []
    for ci, (kind, src) in enumerate(cells):
        out += ["  {", f'   "cell_type": "{kind}",']
        if kind == "code":
            out += [f'   "execution_count": {ci},', '   "metadata": {},', '   "outputs": [],']
        else:
            out += ['   "metadata": {},']
        out.append('   "source": [')
        start: dict[int, int] = {}
        for si, (line, c, _first) in enumerate(src):
            text = line + ("\n" if si < len(src) - 1 else "")
            out.append("    " + json.dumps(text) + ("," if si < len(src) - 1 else ""))
            if c is not None:
                key = id(c)
                if key not in start:
                    start[key] = len(out) - 1
                    labels.append((len(out) - 1, len(out) - 1, c))
                else:
                    idx = next(i for i, (_, _, cc) in enumerate(labels) if cc is c)
                    labels[idx] = (labels[idx][0], len(out) - 1, c)
        out += ["   ]", "  }" + ("," if ci < len(cells) - 1 else "")]
    out += [
        " ],",
        ' "metadata": {',
        '  "kernelspec": {',
        '   "display_name": "Python 3",',
        '   "language": "python",',
        '   "name": "python3"',
        "  },",
        '  "language_info": {',
        '   "name": "python",',
        '   "version": "3.11.7"',
        "  }",
        " },",
        ' "nbformat": 4,',
        ' "nbformat_minor": 5',
        "}",
    ]
    return FileSpec(r.pick(frame.files), out, labels, "ipynb", frame.id, frame.dirs)


ROOTS = {
    "dev": ["src", "app", "config", "deploy", "scripts", "backend", "web", "ci", "docs"],
    "heldout": ["services", "platform", "infra", "packages", "ops", "apps", "stacks", "tools"],
}
TEST_ROOTS = {
    "dev": ["tests/fixtures", "examples", "test/data"],
    "heldout": ["test/resources", "fixtures", "examples/config", "spec/fixtures"],
}
SHAPE_DIRS = {
    "yaml/gha-env": ".github/workflows",
    "yaml/gha-run": ".github/workflows",
    "md/fence": "docs",
    "md/prose": "docs",
    "yaml/k8s-env": "k8s",
    "yaml/configmap": "k8s",
    "yaml/k8s-secret": "k8s",
    "yaml/helm-values": "charts",
    "yaml/ansible": "ansible/group_vars",
    "tf/provider": "terraform",
    "tf/variable": "terraform",
    "tf/resource": "terraform",
    "tf/tfvars": "terraform",
    "ipynb/assign": "notebooks",
    "ipynb/environ": "notebooks",
}


def choose_frame(r: Rand, c: Case, split: str, avoid_shapes: set[str]) -> Frame:
    tags = {"c", "d"} if split == "dev" else {"c", "h"}
    cands = [
        f
        for f in FRAMES
        if f.tag in tags and frame_ok(f, c) and (not c.shapes or f.shape in c.shapes)
    ]
    if not cands:  # a shape-restricted case whose shape has no frame in this split
        cands = [f for f in FRAMES if f.tag in tags and frame_ok(f, c)]
    shapes = sorted({f.shape for f in cands})
    fresh = [s for s in shapes if s not in avoid_shapes] or shapes
    shape = r.pick(fresh)
    cands = [f for f in cands if f.shape == shape]
    if split == "heldout":
        h = [f for f in cands if f.tag == "h"]
        if h and r.random() < 0.65:
            cands = h
    return r.pick(cands)


def place(r: Rand, split: str, cases: list[Case], specials: list[FileSpec]) -> list[FileSpec]:
    used: dict[str, set[str]] = {}
    groups: dict[str, list[Case]] = {}
    for c in cases:
        key = c.provider if c.kind == "positive" else c.category
        f = choose_frame(r, c, split, used.setdefault(key, set()))
        used[key].add(f.shape)
        c.frame, c.frame_tag, c.shape = f.id, f.tag, f.shape
        groups.setdefault(f.id, []).append(c)
    files: list[FileSpec] = []
    for fid in sorted(groups):
        g = groups[fid]
        r.shuffle(g)
        frame = FRAME_BY_ID[fid]
        pending = g
        while pending:
            n = r.randrange(2, 7) if frame.shape != "ipynb" else r.randrange(2, 5)
            chunk: list[Case] = []
            names: set[str] = set()
            rest: list[Case] = []
            for c in pending:  # one name per file, as in real config files
                nm = "_".join(c.name)
                if len(chunk) < n and (not nm or nm not in names):
                    chunk.append(c)
                    names.add(nm)
                else:
                    rest.append(c)
            files.append(render_frame_file(r, frame, chunk))
            pending = rest
    files += specials
    for f in files:
        for _, _, c in f.labels:
            if not c.frame:
                c.frame, c.frame_tag, c.shape = f.frame, "s", f.shape
    # paths
    taken: set[str] = set()
    for f in files:
        has_pos = any(c.kind == "positive" for _, _, c in f.labels)
        svc = r.pick(SVCS)
        if has_pos and r.random() < 0.08:
            d = r.pick(TEST_ROOTS[split]) + "/" + svc
        elif f.frame in SHAPE_DIRS:
            sd = SHAPE_DIRS[f.frame]
            d = (
                sd + "/" + svc
                if split == "dev"
                else r.pick(ROOTS[split]) + "/" + svc + "/" + sd.split("/")[0]
            )
            if f.frame.startswith("yaml/gha"):
                d = ".github/workflows"
        elif f.dirs:
            d = (
                r.pick(ROOTS[split]) + "/" + svc + "/" + r.pick(f.dirs)
                if r.random() < 0.6
                else r.pick(f.dirs)
            )
        else:
            d = r.pick(ROOTS[split]) + "/" + svc
        base = f.basename
        path = d + "/" + base
        alts = [x for x in SVCS if x != svc]
        r.shuffle(alts)
        k = 0
        while path in taken:
            if k < len(alts) and not d.startswith(".github") and "/" + svc in d:
                path = d.replace("/" + svc, "/" + alts[k], 1) + "/" + base
            elif d.startswith(".github"):
                stem, _dot, ext = base.rpartition(".")
                path = (
                    f"{d}/{alts[k % len(alts)]}-{stem}.{ext}"
                    if k < len(alts)
                    else f"{d}/{stem}-{k}.{ext}"
                )
            else:
                path = f"{ROOTS[split][k % len(ROOTS[split])]}/{alts[k % len(alts)]}/{d}/{base}"
            k += 1
        taken.add(path)
        f.basename = path
        for _, _, c in f.labels:
            c.test_path = any(
                path.startswith(t)
                for t in TEST_ROOTS[split] + TEST_ROOTS["dev"] + TEST_ROOTS["heldout"]
            )
    return files


def write_files(root: Path, files: list[FileSpec]) -> None:
    for f in files:
        p = root / f.basename
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(f.lines) + "\n", encoding="utf-8")
        for a, b, c in f.labels:
            c.file, c.line, c.end_line = f.basename, a + 1, b + 1


# ------------------------------------------------------------------------------ history

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Dana Developer",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Developer",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
    "LC_ALL": "C",
    "TZ": "UTC",
}


def build_history(r: Rand, split: str, repo: Path) -> list[Case]:
    """A small repository whose history holds secrets later removed or overwritten."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    env = os.environ | GIT_ENV
    day = [0]

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a],
            cwd=repo,
            env=env
            | {
                "GIT_AUTHOR_DATE": f"2024-03-{day[0] + 1:02d}T10:00:00Z",
                "GIT_COMMITTER_DATE": f"2024-03-{day[0] + 1:02d}T10:00:00Z",
            },
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "core.hooksPath", os.devnull)
    git("config", "commit.gpgsign", "false")
    state: dict[str, list[Any]] = {}  # path -> [str | (text, Case)]
    cases: list[Case] = []
    frames = {
        "py": FRAME_BY_ID["py/constants"],
        "env": FRAME_BY_ID["env/plain"],
        "yml": FRAME_BY_ID["yaml/compose-map"],
        "md": FRAME_BY_ID["md/fence"],
        "js": FRAME_BY_ID["js/const"],
    }
    svc = r.pick(SVCS)
    provs = [p for p in PROVIDERS]
    r.shuffle(provs)
    pi = iter(provs)

    def pos_entry(kind: str) -> tuple[str, Case]:
        p = next(pi)
        c = Case(
            "positive", p.category, p.id, "assign", p.make(r), tokens(p.names[0]), part="history"
        )
        if split == "heldout" and r.random() < 0.5:
            c.name, c.name_variant = heldout_name(r, c.name, p.alt), "heldout"
        if " " in c.value:
            c.value = c.value.replace(" ", "_")
        ls, a, _ = entry(frames[kind], c, svc)
        c.frame, c.shape, c.frame_tag = frames[kind].id, frames[kind].shape, frames[kind].tag
        cases.append(c)
        return ls[a], c

    def neg_entry(kind: str, like: Case | None = None) -> tuple[str, Case]:
        nm = like.name if like else neg_name(r, split)[0]
        f = frames[kind]
        if f.expr:
            exprs = {
                lang: fill_ref(r.pick(d["env-reference"]), nm, svc) for lang, d in EXPR.items()
            }
            c = Case(
                "negative",
                "env-reference",
                "env-reference",
                "expr",
                exprs["python"],
                nm,
                exprs=exprs,
                part="history",
            )
        else:
            t = r.pick(TEMPLATE_REFS.get(f.shape, ["${{N}}"]))
            c = Case(
                "negative",
                "template-reference",
                "template",
                "assign",
                fill_ref(t, nm, svc),
                nm,
                part="history",
            )
        ls, a, _ = entry(f, c, svc)
        c.frame, c.shape, c.frame_tag = f.id, f.shape, f.tag
        cases.append(c)
        return ls[a], c

    def commit(msg: str) -> str:
        for path in list(state):
            p = repo / path
            if state[path] is None:
                if p.exists():
                    p.unlink()
                del state[path]
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("\n".join(x if isinstance(x, str) else x[0] for x in state[path]) + "\n")
        git("add", "-A")
        git("commit", "-q", "-m", msg)
        sha = git("rev-parse", "HEAD")
        for path, items in state.items():
            for i, x in enumerate(items):
                if not isinstance(x, str):
                    c = x[1]
                    if not c.commits:
                        c.commit, c.file, c.line, c.end_line = sha, path, i + 1, i + 1
                    c.commits.append(sha)
        day[0] += 1
        return sha

    py = "config/settings.py" if split == "dev" else "app/core/config.py"
    yml = "deploy/docker-compose.yml" if split == "dev" else "infra/compose/stack.yml"
    envf = ".env" if split == "dev" else "services/api/.env.production"
    state["README.md"] = ["# " + svc, "", "Internal service.", ""]
    state[py] = [
        "import os",
        "",
        "DEBUG = False",
        "TIMEOUT_SECONDS = 30",
        neg_entry("py"),
        neg_entry("py"),
        "",
    ]
    state[yml] = [
        "services:",
        f"  {svc}:",
        f"    image: registry.example.com/{svc}:1.0.0",
        "    environment:",
        '      TZ: "UTC"',
        neg_entry("yml"),
    ]
    commit("Initial commit")
    added = [pos_entry("py") for _ in range(8)]
    state[py] += added
    commit("Add third-party integrations")
    for i, (_, c) in enumerate(added):  # same lines now read the environment
        idx = state[py].index(added[i])
        state[py][idx] = neg_entry("py", like=c)
    commit("Read credentials from the environment")
    state[envf] = (
        ["NODE_ENV=production", "PORT=8080"]
        + [pos_entry("env") for _ in range(7)]
        + [neg_entry("env")]
    )
    commit("Add env file for the staging box")
    state[envf] = None  # type: ignore[assignment]
    state[".gitignore"] = [".env", "*.pem", "__pycache__/"]
    commit("Remove env file, ignore it")
    comp = [pos_entry("yml") for _ in range(7)]
    state[yml] += comp
    commit("Compose: wire the integrations")
    i0 = state[yml].index(comp[0])
    old = comp[0][1]
    p = next(p for p in PROVIDERS if p.id == old.provider)
    c = Case(
        "positive",
        p.category,
        p.id,
        "assign",
        p.make(r),
        old.name,
        part="history",
        name_variant=old.name_variant,
    )
    ls, a, _ = entry(frames["yml"], c, svc)
    c.frame, c.shape, c.frame_tag = frames["yml"].id, "yaml", "c"
    cases.append(c)
    state[yml][i0] = (ls[a], c)
    commit("Rotate " + p.id.split("-")[0] + " credential")
    for x in list(state[yml]):
        if not isinstance(x, str) and x[1].kind == "positive":
            state[yml][state[yml].index(x)] = neg_entry("yml", like=x[1])
    commit("Compose: take credentials from the environment")
    key = private_key_lines(r, r.pick(["rsa", "openssh", "pkcs8"]))
    kc = Case(
        "positive",
        "private-key",
        "pem-private-key",
        "block",
        key[0],
        part="history",
        frame="file/pem",
        shape="keyfile",
        frame_tag="s",
    )
    cases.append(kc)
    state["keys/deploy_key"] = [key[0], *key[1:]]
    commit("Add deploy key for the release job")
    # label the key block (span) now that the commit is known
    state["keys/deploy_key"] = None  # type: ignore[assignment]
    commit("Remove deploy key; use the CI secret store")
    lock = special_negative_files(r, split)[0]
    state["web/package-lock.json"] = lock.lines
    commit("Add web lockfile")
    docs = [neg_entry("md"), neg_entry("md"), pos_entry("md"), neg_entry("md")]
    state["docs/setup.md"] = ["# Setup", "", "```bash", *docs, "```"]
    commit("Document local setup")
    git("checkout", "-q", "-b", "feature/metrics")
    state["src/metrics.js"] = [
        "const statsd = require('hot-shots');",
        "",
        pos_entry("js"),
        pos_entry("js"),
        neg_entry("js"),
        "",
    ]
    commit("WIP metrics exporter")
    git("checkout", "-q", "main")
    del state["src/metrics.js"]
    state["README.md"] += ["See docs/setup.md."]
    commit("README: link the setup guide")
    git("gc", "-q")
    # the key block: find its introducing commit from git itself
    log = git("log", "--all", "--format=%H", "--diff-filter=A", "--", "keys/deploy_key").split()
    kc.commit, kc.commits, kc.file, kc.line, kc.end_line = (
        log[0],
        log[:1],
        "keys/deploy_key",
        1,
        len(key),
    )
    lk_sha = git(
        "log", "--all", "--format=%H", "--diff-filter=A", "--", "web/package-lock.json"
    ).split()[0]
    all_shas = git("rev-list", "--all").split()
    for a, b, c in lock.labels:
        c.part, c.file, c.line, c.end_line, c.commit = (
            "history",
            "web/package-lock.json",
            a + 1,
            b + 1,
            lk_sha,
        )
        c.commits = [
            s for s in all_shas if s == lk_sha
        ]  # present from lk_sha on; introducing commit is what matters
        c.frame, c.shape, c.frame_tag = lock.frame, lock.shape, "s"
        cases.append(c)
    return cases


# --------------------------------------------------------------------------------- main


def generate(split: str) -> dict[str, Any]:
    seed = SPLITS[split]
    r = Rand(seed)
    out = WORK / split
    if out.exists():
        shutil.rmtree(out)
    tree = out / "tree"
    tree.mkdir(parents=True)
    cases: list[Case] = []
    prov = provider_cases(r, split, 3)
    if split == "heldout":
        for c in prov:
            if c.form == "assign" and r.random() < 0.5:
                p = next(p for p in PROVIDERS if p.id == c.provider)
                c.name, c.name_variant = heldout_name(r, c.name, p.alt), "heldout"
    cases += prov
    cases += generic_cases(r, split, 90)
    cases += conn_cases(r, split, 2)
    cases += key_cases(r, split, 3)
    cases += negative_cases(r, split, 4)
    specials = special_positive_files(r, split) + special_negative_files(r, split)
    files = place(r, split, cases, specials)
    write_files(tree, files)
    labelled = [c for f in files for _, _, c in f.labels]
    hist = build_history(r, split, out / "history")
    labelled += hist
    with open(out / "labels.jsonl", "w") as fh:
        for i, c in enumerate(labelled):
            rec = {
                "id": f"{split}-{i:05d}",
                "split": split,
                "part": c.part,
                "kind": c.kind,
                "category": c.category,
                "provider": c.provider,
                "file": c.file,
                "line": c.line,
                "end_line": c.end_line,
                "commit": c.commit,
                "commits": c.commits or None,
                "value": c.value if c.kind == "positive" else (c.value or c.cmd),
                "shape": c.shape,
                "frame": c.frame,
                "frame_tag": c.frame_tag,
                "form": c.form,
                "name": casings(c.name)["UPPER"] if c.name else None,
                "name_variant": c.name_variant,
                "test_path": c.test_path,
            }
            fh.write(json.dumps(rec) + "\n")
    summary = summarize(split, labelled, files)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(split: str, labelled: list[Case], files: list[FileSpec]) -> dict[str, Any]:
    tree = [c for c in labelled if c.part == "tree"]
    pos = [c for c in tree if c.kind == "positive"]
    negs = [c for c in tree if c.kind == "negative"]
    hist = [c for c in labelled if c.part == "history"]
    novel = [c for c in tree if c.frame_tag == "h" or c.name_variant == "heldout"]
    return {
        "split": split,
        "seed": SPLITS[split],
        "files": len(files),
        "positives": len(pos),
        "negatives": len(negs),
        "providers": len({c.provider for c in pos}),
        "positives_in_test_paths": sum(c.test_path for c in pos),
        "history": {
            "positives": sum(c.kind == "positive" for c in hist),
            "negatives": sum(c.kind == "negative" for c in hist),
        },
        "positives_by_category": dict(sorted(Counter(c.category for c in pos).items())),
        "negatives_by_kind": dict(sorted(Counter(c.category for c in negs).items())),
        "cases_by_shape": dict(sorted(Counter(c.shape for c in tree).items())),
        "files_by_shape": dict(sorted(Counter(f.shape for f in files).items())),
        "heldout_only_context_share": round(len(novel) / max(1, len(tree)), 3),
        "heldout_only_frame_share": round(
            sum(c.frame_tag == "h" for c in tree) / max(1, len(tree)), 3
        ),
        "heldout_only_name_share": round(
            sum(c.name_variant == "heldout" for c in tree) / max(1, len(tree)), 3
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    a = ap.parse_args()
    for split in SPLITS if a.split == "all" else [a.split]:
        s = generate(split)
        print(
            f"corpus {split}: {s['files']} files, {s['positives']} positives ({s['providers']} credential types), "
            f"{s['negatives']} negatives; history {s['history']['positives']}+/{s['history']['negatives']}-; "
            f"heldout-only contexts {s['heldout_only_context_share']:.0%} -> {WORK / split}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
