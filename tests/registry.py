"""A real OCI registry for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8)
on a free loopback port, with no auth, htpasswd basic auth, or bearer tokens from a token
server written here.

Fixtures (session-scoped, each registry with its own storage directory):

* ``registry``        - no auth
* ``registry_basic``  - HTTP basic auth against a bcrypt htpasswd file
* ``registry_token``  - Docker token auth: the registry challenges with
  ``Bearer realm=...,service=...,scope=...``; the token server issues RS256 JWTs whose
  ``x5c`` certificate the registry trusts through ``rootcertbundle``

Each yields a :class:`Registry`. :func:`push_blob` and :func:`push_manifest` upload what a
test builds in Python, over the OCI distribution API.

Without the ``docker-registry`` binary the fixtures skip, unless
``SENTINEL_REQUIRE_SERVICES=1`` (as in CI), where they fail.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import bcrypt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

DEFAULT_BINARY = "/usr/bin/docker-registry"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SERVICE = "sentinel-test-registry"
ISSUER = "sentinel-test-token-server"
TOKEN_TTL = 300


class RegistryError(Exception):
    """The registry or token server answered something other than what the helper expected."""


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxies or .netrc from the environment: loopback only
    return s


def _describe(resp: requests.Response) -> str:
    return f"{resp.request.method} {resp.url} -> {resp.status_code}: {resp.text[:500]}"


@dataclass
class Registry:
    """A running registry. ``host`` is what goes in an image reference."""

    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    auth: str  # "none" | "basic" | "token"
    username: str | None = None
    password: str | None = None
    realm: str | None = None  # token mode: the token endpoint, "http://127.0.0.1:PORT/token"
    service: str | None = None  # token mode: the service name the registry challenges with
    storage: Path | None = None  # the filesystem storage root
    session: requests.Session = field(default_factory=_session, repr=False)

    def token(self, repository: str, actions: str = "pull,push") -> str:
        """A bearer token for ``repository:<repository>:<actions>`` (token mode only)."""
        if self.auth != "token" or self.realm is None:
            raise RegistryError(f"a {self.auth!r} registry issues no tokens")
        resp = self.session.get(
            self.realm,
            params={"service": self.service, "scope": f"repository:{repository}:{actions}"},
            auth=(self.username or "", self.password or ""),
            timeout=10,
        )
        if resp.status_code != 200:
            raise RegistryError(f"token request failed: {_describe(resp)}")
        return str(resp.json()["token"])

    def headers(self, repository: str, actions: str = "pull,push") -> dict[str, str]:
        """Authorization headers a client needs for ``repository`` (basic: Basic; token:
        a bearer token fetched from the token server with the credentials; none: {})."""
        if self.auth == "none":
            return {}
        if self.auth == "basic":
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {"Authorization": "Bearer " + self.token(repository, actions)}


def push_blob(reg: Registry, repository: str, data: bytes) -> str:
    """Upload ``data`` as a blob (monolithic: POST an upload, PUT it with the digest) and
    return its ``sha256:`` digest. Does nothing if the registry already has the blob."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = reg.headers(repository, "pull,push")
    base = f"{reg.url}/v2/{repository}"
    resp = reg.session.head(f"{base}/blobs/{digest}", headers=headers, timeout=30)
    if resp.status_code == 200:
        return digest
    if resp.status_code != 404:
        raise RegistryError(f"blob check failed: {_describe(resp)}")
    resp = reg.session.post(f"{base}/blobs/uploads/", headers=headers, timeout=30)
    if resp.status_code != 202 or "Location" not in resp.headers:
        raise RegistryError(f"upload start failed: {_describe(resp)}")
    location = urlsplit(urljoin(base + "/", resp.headers["Location"]))
    query = parse_qs(location.query, keep_blank_values=True)
    query["digest"] = [digest]
    target = urlunsplit(location._replace(query=urlencode(query, doseq=True)))
    resp = reg.session.put(
        target,
        data=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    if resp.status_code != 201:
        raise RegistryError(f"blob upload failed: {_describe(resp)}")
    got = resp.headers.get("Docker-Content-Digest", digest)
    if got != digest:
        raise RegistryError(f"registry stored blob {digest} as {got}")
    return digest


def push_manifest(
    reg: Registry, repository: str, reference: str, body: bytes, media_type: str
) -> str:
    """PUT ``body`` as the manifest ``reference`` (a tag or a digest) of ``repository``
    with ``Content-Type: media_type``; return its digest."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    resp = reg.session.put(
        f"{reg.url}/v2/{repository}/manifests/{reference}",
        data=body,
        headers={**reg.headers(repository, "pull,push"), "Content-Type": media_type},
        timeout=30,
    )
    if resp.status_code != 201:
        raise RegistryError(f"manifest upload failed: {_describe(resp)}")
    got = resp.headers.get("Docker-Content-Digest", digest)
    if got != digest:
        raise RegistryError(f"registry stored manifest {digest} as {got}")
    return digest


# --- the registry process -------------------------------------------------------------


def registry_binary() -> str:
    """The ``docker-registry`` executable; skips the test (fails it under
    ``SENTINEL_REQUIRE_SERVICES=1``) when it is not installed."""
    found = shutil.which("docker-registry")
    if found is None and os.access(DEFAULT_BINARY, os.X_OK):
        found = DEFAULT_BINARY
    if found is not None:
        return found
    reason = (
        "docker-registry (CNCF distribution) is not installed; "
        "on Debian/Ubuntu: apt-get install docker-registry"
    )
    if os.environ.get("SENTINEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required: SENTINEL_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:]) or "(empty log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> str | None:
    """None once ``GET /v2/`` answers 200 or 401, else why not."""
    deadline = time.monotonic() + READY_TIMEOUT
    with _session() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited with status {proc.returncode}"
            try:
                resp = s.get(f"{url}/v2/", timeout=2)
            except requests.RequestException:
                pass
            else:
                if resp.status_code in (200, 401):
                    return None
            time.sleep(0.05)
    return f"not ready after {READY_TIMEOUT:.0f}s"


@contextlib.contextmanager
def _running_registry(workdir: Path, auth: dict[str, Any] | None) -> Iterator[tuple[str, Path]]:
    """Run ``docker-registry serve`` on a free loopback port with storage under
    ``workdir``; yield ("127.0.0.1:PORT", storage dir). Stops it on exit."""
    exe = registry_binary()
    storage = workdir / "storage"
    storage.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    attempts = 3
    for attempt in range(1, attempts + 1):
        host = f"127.0.0.1:{_free_port()}"
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": host, "secret": secrets.token_hex(16)},
            "health": {"storagedriver": {"enabled": False}},
        }
        if auth is not None:
            config["auth"] = auth
        cfg = workdir / "config.yml"
        cfg.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        log = workdir / f"registry-{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [exe, "serve", str(cfg)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            problem = _wait_ready(proc, f"http://{host}")
            if problem is None:
                yield host, storage
                return
        finally:
            _stop(proc)
        tail = _tail(log)
        if "address already in use" in tail and attempt < attempts:
            continue  # lost the race for the port; try another
        raise RegistryError(f"docker-registry on {host} {problem}; its log ends:\n{tail}")


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    tokens: TokenServer


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _send_json(
        self, status: int, doc: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(
        self, status: int, code: str, message: str, extra: dict[str, str] | None = None
    ) -> None:
        self._send_json(status, {"errors": [{"code": code, "message": message}]}, extra)

    def do_GET(self) -> None:
        tokens = self.server.tokens
        url = urlsplit(self.path)
        if url.path != "/token":
            self._error(404, "NOT_FOUND", f"no such endpoint {url.path}")
            return
        params = parse_qs(url.query)
        if params.get("service", [SERVICE]) != [SERVICE]:
            self._error(400, "INVALID_REQUEST", f"unknown service {params['service']!r}")
            return
        credentials: tuple[str, str] | None = None
        try:
            credentials = _basic_credentials(self.headers.get("Authorization"))
            valid = credentials is None or tokens.check(*credentials)
        except ValueError:  # UnicodeDecodeError and binascii.Error are ValueErrors
            valid = False
        if not valid:
            self._error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                {"WWW-Authenticate": 'Basic realm="sentinel-test-token-server"'},
            )
            return
        access: list[dict[str, Any]] = []
        for scope in " ".join(params.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if not (kind and name and actions):
                self._error(400, "INVALID_REQUEST", f"malformed scope {scope!r}")
                return
            if credentials is not None:  # anonymous clients get a token that grants nothing
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        subject = credentials[0] if credentials is not None else ""
        jwt = tokens.issue(subject, access)
        issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._send_json(
            200,
            {"token": jwt, "access_token": jwt, "expires_in": TOKEN_TTL, "issued_at": issued},
        )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from a Basic Authorization header, None without one; ValueError if
    it is not valid Basic."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ValueError(f"not Basic: {scheme!r}")
    user, sep, pw = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    if not sep:
        raise ValueError("no colon in Basic credentials")
    return user, pw


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Docker token server on a loopback port: ``GET /token?service=&scope=`` with Basic
    credentials, answering RS256 JWTs signed by a throwaway self-signed certificate."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sentinel test token signer")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        self._httpd = _TokenHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self._httpd.tokens = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="token-server", daemon=True
        )

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def check(self, username: str, password: str) -> bool:
        user_ok = secrets.compare_digest(username.encode(), self.username.encode())
        pw_ok = secrets.compare_digest(password.encode(), self.password.encode())
        return user_ok and pw_ok

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + TOKEN_TTL,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64url(signature)

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=STOP_TIMEOUT)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry without auth."""
    registry_binary()
    workdir = tmp_path_factory.mktemp("registry-none")
    with _running_registry(workdir, None) as (host, storage):
        reg = Registry(host=host, url=f"http://{host}", auth="none", storage=storage)
        with reg.session:
            yield reg


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind HTTP basic auth (htpasswd with a bcrypt hash)."""
    registry_binary()
    workdir = tmp_path_factory.mktemp("registry-basic")
    username, password = "sentinel", secrets.token_urlsafe(18)
    # Cost 5 (distribution accepts >= 4): the registry checks the hash on every request.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{username}:{hashed}\n")
    auth = {"htpasswd": {"realm": SERVICE, "path": str(htpasswd)}}
    with _running_registry(workdir, auth) as (host, storage):
        reg = Registry(
            host=host,
            url=f"http://{host}",
            auth="basic",
            username=username,
            password=password,
            storage=storage,
        )
        with reg.session:
            yield reg


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind Docker bearer-token auth, with its token server."""
    registry_binary()
    workdir = tmp_path_factory.mktemp("registry-token")
    username, password = "sentinel", secrets.token_urlsafe(18)
    with TokenServer(username, password) as tokens:
        bundle = workdir / "token-signer.pem"
        bundle.write_bytes(tokens.cert_pem())
        auth = {
            "token": {
                "realm": tokens.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(bundle),
            }
        }
        with _running_registry(workdir, auth) as (host, storage):
            reg = Registry(
                host=host,
                url=f"http://{host}",
                auth="token",
                username=username,
                password=password,
                realm=tokens.realm,
                service=SERVICE,
                storage=storage,
            )
            with reg.session:
                yield reg
