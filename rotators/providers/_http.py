"""What the revoke-only HTTP providers share: the base URL check, one request with the
provider's transient answers mapped to :class:`ProviderBusy`, and Retry-After."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from rotators.base import Retryable

LOOPBACK_NAMES = {"localhost"}
DEFAULT_TIMEOUT = 15.0


class ProviderBusy(Retryable):
    """The provider answered 5xx or throttled, or could not be reached.
    ``retry_after`` is the wait it asked for, in seconds (None if it named none)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(url: str, rotator: str) -> str:
    """``url`` with one trailing slash; https only, or http on a loopback address (a
    local stand-in or proxy). The exposed token is sent there, so nothing else."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not (parts.scheme == "https" and host) and not (
        parts.scheme == "http" and host and _is_loopback(host)
    ):
        raise ValueError(f"{rotator}: the API URL must be https:// (http:// only on loopback)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{rotator}: the API URL must have no credentials, query or fragment")
    return url.rstrip("/") + "/"


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait, from Retry-After (seconds or an HTTP date) or, as GitHub sends
    it with an exhausted quota, x-ratelimit-reset (epoch seconds)."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(0.0, float(reset) - now)
    return None


def busy(rotator: str, what: str, resp: httpx.Response) -> ProviderBusy:
    wait = retry_after(resp.headers)
    tail = f"; retry after {wait:.0f}s" if wait is not None else ""
    return ProviderBusy(f"{rotator}: {what} answered {resp.status_code}{tail}", wait)


def _send(
    client: httpx.Client,
    rotator: str,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    **kwargs: Any,
) -> httpx.Response:
    try:
        resp = client.request(method, url, headers=dict(headers), **kwargs)
    except httpx.TransportError as exc:
        raise ProviderBusy(f"{rotator}: {what} failed: {type(exc).__name__}") from None
    if resp.status_code >= 500 or resp.status_code == 429:
        raise busy(rotator, what, resp)
    return resp


class Http:
    """How a provider makes its calls: through the ``httpx.Client`` it was given (the
    caller owns it), or through a client opened for each call and closed after it, so
    a provider holds no open connection between steps."""

    def __init__(self, rotator: str, options: Mapping[str, Any], client: Any = None) -> None:
        self._rotator = rotator
        self._options = dict(options)
        self._client: httpx.Client | None = client

    def request(
        self, method: str, url: str, *, what: str, headers: Mapping[str, str], **kwargs: Any
    ) -> httpx.Response:
        """One call. Connection failures, 5xx and 429 raise :class:`ProviderBusy`; every
        other answer is returned for the provider to read. ``what`` names the call in
        messages (tokens go in headers, never in a URL or a message)."""
        if self._client is not None:
            return _send(
                self._client, self._rotator, method, url, what=what, headers=headers, **kwargs
            )
        with make_client(self._options) as client:
            return _send(client, self._rotator, method, url, what=what, headers=headers, **kwargs)


def make_client(options: Mapping[str, Any]) -> httpx.Client:
    """``timeout`` (seconds), ``ca_bundle`` (a CA file for a self-hosted server),
    ``trust_env`` (honour HTTP(S)_PROXY and the like; off: the exposed token goes only
    where the configuration says). Redirects are not followed, for the same reason."""
    timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
    ca_bundle = options.get("ca_bundle")
    return httpx.Client(
        timeout=timeout,
        verify=str(ca_bundle) if ca_bundle else True,
        trust_env=bool(options.get("trust_env", False)),
        follow_redirects=False,
    )
