"""The registry fixtures in tests/registry.py run a real registry: images pushed through
the helpers come back byte for byte, and each auth mode turns away who it should."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests import registry as registry_module
from tests.registry import (
    ISSUER,
    SERVICE,
    Registry,
    RegistryError,
    push_blob,
    push_manifest,
)

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Image:
    repository: str
    tag: str
    manifest: bytes
    digest: str
    config: bytes
    layer: bytes


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_repository() -> str:
    return f"sentinel-test/{uuid.uuid4().hex[:12]}"


def build_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar layer and its diff ID (digest of the uncompressed tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha256(raw)


def push_image(reg: Registry, repository: str, tag: str = "v1") -> Image:
    layer, diff_id = build_layer({"etc/motd": f"hello from {repository}\n".encode()})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": push_blob(reg, repository, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER,
                    "digest": push_blob(reg, repository, layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = push_manifest(reg, repository, tag, manifest, OCI_MANIFEST)
    return Image(repository, tag, manifest, digest, config, layer)


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters of a WWW-Authenticate header."""
    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def b64url_json(part: str) -> dict[str, object]:
    doc = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(params=["registry", "registry_basic", "registry_token"])
def any_registry(request: pytest.FixtureRequest) -> Registry:
    reg = request.getfixturevalue(request.param)
    assert isinstance(reg, Registry)
    return reg


def test_image_round_trip(any_registry: Registry) -> None:
    reg = any_registry
    assert reg.host.startswith("127.0.0.1:")
    assert reg.url == f"http://{reg.host}"
    image = push_image(reg, new_repository())
    assert image.digest == sha256(image.manifest)
    base = f"{reg.url}/v2/{image.repository}"
    pull = reg.headers(image.repository, "pull")

    for reference in (image.tag, image.digest):
        resp = reg.session.get(
            f"{base}/manifests/{reference}", headers={**pull, "Accept": OCI_MANIFEST}
        )
        assert resp.status_code == 200, resp.text
        assert resp.content == image.manifest
        assert resp.headers["Content-Type"] == OCI_MANIFEST
        assert resp.headers["Docker-Content-Digest"] == image.digest

    for blob in (image.config, image.layer):
        resp = reg.session.get(f"{base}/blobs/{sha256(blob)}", headers=pull, allow_redirects=False)
        assert resp.status_code == 200, resp.text
        assert resp.content == blob
        assert resp.headers["Docker-Content-Digest"] == sha256(blob)

    resp = reg.session.get(f"{base}/tags/list", headers=pull)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": image.repository, "tags": [image.tag]}

    # Written where the fixture said, and nowhere else.
    assert reg.storage is not None
    assert (reg.storage / "docker/registry/v2/repositories" / image.repository).is_dir()


def test_push_blob_is_idempotent(registry: Registry) -> None:
    repository = new_repository()
    data = b"the same bytes twice"
    assert push_blob(registry, repository, data) == push_blob(registry, repository, data)
    resp = registry.session.head(f"{registry.url}/v2/{repository}/blobs/{sha256(data)}")
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(len(data))


def test_manifest_needs_its_blobs_first(registry: Registry) -> None:
    missing = sha256(b"never uploaded")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": missing, "size": 14},
            "layers": [],
        }
    ).encode()
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
        push_manifest(registry, new_repository(), "v1", manifest, OCI_MANIFEST)


def test_oci_manifest_without_accept_header_is_not_found(registry: Registry) -> None:
    """distribution 2.8 hides an OCI manifest from a client that does not Accept it."""
    image = push_image(registry, new_repository())
    resp = registry.session.get(f"{registry.url}/v2/{image.repository}/manifests/{image.tag}")
    assert resp.status_code == 404
    assert resp.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_no_auth_registry_needs_no_headers(registry: Registry) -> None:
    assert registry.auth == "none"
    assert registry.headers("anything") == {}
    resp = registry.session.get(f"{registry.url}/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_basic_auth_turns_away_missing_and_wrong_credentials(registry_basic: Registry) -> None:
    reg = registry_basic
    assert reg.auth == "basic"
    assert reg.username and reg.password
    image = push_image(reg, new_repository())
    url = f"{reg.url}/v2/{image.repository}/manifests/{image.tag}"

    resp = reg.session.get(url, headers={"Accept": OCI_MANIFEST})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == f'Basic realm="{SERVICE}"'
    assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"

    resp = reg.session.get(url, headers={"Accept": OCI_MANIFEST}, auth=(reg.username, "wrong"))
    assert resp.status_code == 401

    resp = reg.session.get(url, headers={"Accept": OCI_MANIFEST}, auth=(reg.username, reg.password))
    assert resp.status_code == 200
    assert resp.content == image.manifest


def test_token_challenge_leads_to_a_working_token(registry_token: Registry) -> None:
    reg = registry_token
    assert reg.auth == "token"
    assert reg.username and reg.password
    image = push_image(reg, new_repository())
    url = f"{reg.url}/v2/{image.repository}/manifests/{image.tag}"

    resp = reg.session.get(url, headers={"Accept": OCI_MANIFEST})
    assert resp.status_code == 401
    header = resp.headers["WWW-Authenticate"]
    assert header == (
        f'Bearer realm="{reg.realm}",service="{SERVICE}",scope="repository:{image.repository}:pull"'
    )
    scheme, params = challenge(header)
    assert scheme == "Bearer"

    # Follow the challenge as a client would.
    query = {"service": params["service"], "scope": params["scope"]}
    resp = reg.session.get(params["realm"], params=query, auth=(reg.username, reg.password))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    resp = reg.session.get(
        url, headers={"Accept": OCI_MANIFEST, "Authorization": f"Bearer {body['token']}"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == image.manifest

    # Wrong credentials: the token server itself says no.
    resp = reg.session.get(params["realm"], params=query, auth=(reg.username, "wrong"))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    bad = Registry(reg.host, reg.url, "token", reg.username, "wrong", reg.realm, reg.service)
    with bad.session, pytest.raises(RegistryError, match="401"):
        bad.headers(image.repository)


def test_token_for_anonymous_grants_nothing(registry_token: Registry) -> None:
    reg = registry_token
    assert reg.realm
    image = push_image(reg, new_repository())
    scope = f"repository:{image.repository}:pull"
    resp = reg.session.get(reg.realm, params={"service": SERVICE, "scope": scope})
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert b64url_json(token.split(".")[1])["access"] == []

    resp = reg.session.get(
        f"{reg.url}/v2/{image.repository}/manifests/{image.tag}",
        headers={"Accept": OCI_MANIFEST, "Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 401
    scheme, params = challenge(resp.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == scope


def test_token_scope_is_enforced(registry_token: Registry) -> None:
    """A pull-only token reads but cannot start an upload."""
    reg = registry_token
    image = push_image(reg, new_repository())
    pull_only = reg.headers(image.repository, "pull")
    base = f"{reg.url}/v2/{image.repository}"
    resp = reg.session.get(f"{base}/blobs/{sha256(image.layer)}", headers=pull_only)
    assert resp.status_code == 200
    resp = reg.session.post(f"{base}/blobs/uploads/", headers=pull_only)
    assert resp.status_code == 401
    # And a token for one repository does not open another.
    other = push_image(reg, new_repository())
    resp = reg.session.get(
        f"{reg.url}/v2/{other.repository}/manifests/{other.tag}",
        headers={**pull_only, "Accept": OCI_MANIFEST},
    )
    assert resp.status_code == 401


def test_token_is_a_signed_rs256_jwt(registry_token: Registry) -> None:
    reg = registry_token
    repository = new_repository()
    jwt = reg.token(repository, "pull,push")
    head_b64, claims_b64, sig_b64 = jwt.split(".")
    header = b64url_json(head_b64)
    claims = b64url_json(claims_b64)
    assert header["alg"] == "RS256"
    assert isinstance(header["x5c"], list)
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    signature = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert claims["iss"] == ISSUER
    assert claims["aud"] == SERVICE
    assert claims["sub"] == reg.username
    assert claims["access"] == [
        {"type": "repository", "name": repository, "actions": ["pull", "push"]}
    ]
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 300


def test_missing_binary_skips_or_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(registry_module, "DEFAULT_BINARY", str(tmp_path / "docker-registry"))
    monkeypatch.delenv("SENTINEL_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="docker-registry"):
        registry_module.registry_binary()
    monkeypatch.setenv("SENTINEL_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="SENTINEL_REQUIRE_SERVICES"):
        registry_module.registry_binary()


def test_helpers_report_registry_errors(registry: Registry) -> None:
    # Upper case matches none of distribution's routes: a plain-text 404, not JSON.
    with pytest.raises(RegistryError, match=r"upload start failed: POST .* -> 404"):
        push_blob(registry, "Upper/Case", b"x")
    # requests itself is untouched by the environment's proxy settings.
    assert isinstance(registry.session, requests.Session)
    assert registry.session.trust_env is False
