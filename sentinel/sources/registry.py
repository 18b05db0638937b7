"""Pulling image manifests and blobs over the OCI distribution API.

Auth follows the registry's own challenge: a ``401`` with ``WWW-Authenticate: Basic``
is answered with the credentials; one with ``Bearer realm=...,service=...,scope=...``
sends them to the realm for a token, which then goes with every request for that
repository (the Docker token protocol). Credentials come from
``SENTINEL_REGISTRY_USERNAME``/``SENTINEL_REGISTRY_PASSWORD``, else from
``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) ``auths``; a
registry named in ``credHelpers``/``credsStore`` without inline credentials needs the
environment variables (external helpers are not run).

HTTPS unless ``insecure`` (``--insecure-registry``) allows plain HTTP. Timeouts on
connect and on every read; connection errors and 429/5xx answers are retried three
times with exponential backoff (urllib3's Retry, honouring Retry-After).
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sentinel.sources import boundedjson
from sentinel.sources.oci import ACCEPT, BadDocument, Descriptor, ImageError, check_digest

DOCKER_HUB = "registry-1.docker.io"
MAX_MANIFEST = 4 * 1024 * 1024  # distribution refuses to store a larger one; so do we
MAX_TOKEN = 1024 * 1024  # a token answer: a JWT or two and an expiry
MAX_DOCKER_CONFIG = 4 * 1024 * 1024
_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+:[a-f0-9]+))?$"
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] as written (docker.io means Docker Hub)
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """``[host[:port]/]path[:tag][@digest]``, as docker parses it: the first component
    is a registry host when it has a dot or a colon, or is ``localhost``."""
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", text
    m = _REF.match(path)
    if not m or not host:
        raise ImageError(f"{text!r} is not an image reference (host/name:tag or name@sha256:...)")
    name = m.group("name")
    if host == "docker.io" and "/" not in name:
        name = f"library/{name}"
    digest = m.group("digest")
    if digest:
        check_digest(digest, text)
    return Reference(host, name, m.group("tag"), digest)


def credentials(registry: str, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    env = dict(os.environ) if env is None else env
    user, password = env.get("SENTINEL_REGISTRY_USERNAME"), env.get("SENTINEL_REGISTRY_PASSWORD")
    if user and password is not None:
        return user, password
    config_dir = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        with open(config_dir / "config.json", "rb") as fh:
            raw = fh.read(MAX_DOCKER_CONFIG + 1)
        doc = boundedjson.loads(raw, what="config.json", max_bytes=MAX_DOCKER_CONFIG)
    except (OSError, boundedjson.JSONRefused):
        return None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry in ("docker.io", DOCKER_HUB):
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return user, password
        if entry.get("username") and entry.get("password") is not None:
            return str(entry["username"]), str(entry["password"])
    return None


class RegistryClient:
    def __init__(
        self,
        ref: Reference,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
        creds: tuple[str, str] | None = None,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.ref = ref
        host = DOCKER_HUB if ref.registry == "docker.io" else ref.registry
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.timeout = (min(10.0, timeout), timeout)
        self.creds = creds if creds is not None else credentials(ref.registry)
        self._token: str | None = None
        self._basic = False
        retry = Retry(
            total=3,
            connect=3,
            read=3,
            status=3,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "sentinel-secrets"

    # -- requests -------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if self._basic and self.creds:
            raw = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _get(self, path: str, accept: str | None = None, stream: bool = False) -> Any:
        import requests

        url = f"{self.base}/v2/{self.ref.repository}/{path}"
        for attempt in range(2):
            headers = self._auth_headers()
            if accept:
                headers["Accept"] = accept
            try:
                resp = self.session.get(url, headers=headers, timeout=self.timeout, stream=stream)
            except requests.exceptions.SSLError as exc:
                raise ImageError(
                    f"{self.ref.registry}: TLS failed ({_short(exc)}); for a plain-HTTP registry "
                    "on loopback or a private host use --insecure-registry"
                ) from None
            except requests.exceptions.Timeout:
                raise ImageError(
                    f"{self.ref.registry}: no answer within {self.timeout[1]:g} s (tried 4 times)"
                ) from None
            except requests.exceptions.RequestException as exc:
                reason = _short(exc)
                if "timed out" in reason:
                    raise ImageError(
                        f"{self.ref.registry}: no answer within {self.timeout[1]:g} s "
                        "(tried 4 times)"
                    ) from None
                raise ImageError(f"{self.ref.registry}: cannot connect ({reason})") from None
            if resp.status_code == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                self._answer(challenge)
                continue
            return self._checked(resp, path)
        return self._checked(resp, path)

    def _answer(self, challenge: str) -> None:
        """Take the registry's 401 challenge: Basic credentials, or a Bearer token."""
        import requests

        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if not self.creds:
                raise ImageError(
                    f"{self.ref.registry}: authentication required (401); set "
                    "SENTINEL_REGISTRY_USERNAME/SENTINEL_REGISTRY_PASSWORD or docker login"
                )
            self._basic = True
            return
        if scheme != "bearer":
            raise ImageError(f"{self.ref.registry}: unsupported auth challenge {challenge[:80]!r}")
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise ImageError(f"{self.ref.registry}: bearer challenge without a realm")
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or f"repository:{self.ref.repository}:pull"
        auth = self.creds if self.creds else None
        what = f"{self.ref.registry}: token server {realm[:100]}"
        try:
            resp = self.session.get(
                realm, params=query, auth=auth, timeout=self.timeout, stream=True
            )
        except requests.exceptions.RequestException as exc:
            raise ImageError(f"{what}: {_short(exc)}") from None
        try:
            if resp.status_code in (401, 403):
                raise ImageError(
                    f"{self.ref.registry}: the token server refused "
                    f"{'these credentials' if auth else 'anonymous access'} ({resp.status_code})"
                )
            if resp.status_code != 200:
                raise ImageError(f"{self.ref.registry}: token server answered {resp.status_code}")
            body = _read_capped(resp, MAX_TOKEN, f"{what}: the answer")
        finally:
            resp.close()
        try:
            doc = boundedjson.loads(body, what=f"{what}: the answer", max_bytes=MAX_TOKEN)
        except boundedjson.JSONRefused as exc:
            raise ImageError(str(exc)) from None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not token or not isinstance(token, str):
            raise ImageError(f"{self.ref.registry}: token server sent no token")
        self._token = token

    def _checked(self, resp: Any, path: str) -> Any:
        code = resp.status_code
        if code == 200:
            return resp
        resp.close()
        what = f"{self.ref.registry}/{self.ref.repository}: {path.split('/')[0][:-1] or path}"
        if code == 401:
            raise ImageError(f"{what}: not authorised (401): check the credentials")
        if code == 403:
            raise ImageError(f"{what}: access denied (403)")
        if code == 404:
            raise ImageError(f"{what} {path.rsplit('/', 1)[-1]} not found (404)")
        raise ImageError(f"{what}: the registry answered {code} (after retries)")

    # -- what the image reader needs --------------------------------------------------------

    def manifest(self, reference: str) -> tuple[bytes, str]:
        resp = self._get(f"manifests/{reference}", accept=ACCEPT, stream=True)
        try:
            data = _read_capped(resp, MAX_MANIFEST, f"{self.ref}: manifest {reference[:19]}")
        finally:
            resp.close()
        return data, resp.headers.get("Content-Type", "").split(";")[0].strip()

    def blob(self, desc: Descriptor) -> IO[bytes]:
        resp = self._get(f"blobs/{check_digest(desc.digest)}", stream=True)
        resp.raw.decode_content = False  # the blob's own bytes, whatever the transport
        return _ResponseStream(resp)


class _ResponseStream:
    """A blob body as a plain read()-able stream; a stalled read times out."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp

    def read(self, n: int = -1) -> bytes:
        import requests
        import urllib3

        try:
            return self._resp.raw.read(None if n is None or n < 0 else n) or b""
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            raise ImageError(f"reading a blob failed: {_short(exc)}") from None

    def close(self) -> None:
        self._resp.close()


def _read_capped(resp: Any, cap: int, what: str) -> bytes:
    """The body of ``resp`` (opened with ``stream=True``), or ``BadDocument`` as soon as
    it says or turns out to be larger than ``cap``: a hostile server cannot fill memory."""
    import requests
    import urllib3

    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > cap:
        raise BadDocument(
            f"{what} is too large ({int(length):,} bytes; at most {cap // 1024**2} MiB): refused"
        )
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in resp.iter_content(64 * 1024):
            total += len(chunk)
            if total > cap:
                raise BadDocument(f"{what} is too large (more than {cap // 1024**2} MiB): refused")
            parts.append(chunk)
    except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
        raise ImageError(f"{what}: reading the answer failed: {_short(exc)}") from None
    return b"".join(parts)


def _short(exc: BaseException) -> str:
    """The reason inside requests' nested exception text, e.g. "Connection refused"."""
    text = str(exc)
    for pattern in (
        r"\[Errno -?\d+\] ([^'\")]+)",
        r"(Read timed out|Connection aborted|Name or service not known|certificate verify failed)",
    ):
        m = re.search(pattern, text)
        if m:
            return m.group(1).strip()
    return type(exc).__name__
