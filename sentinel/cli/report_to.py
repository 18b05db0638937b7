"""``sentinel scan ... --report-to URL``: post a finished scan to a running service.

The body carries each finding's value so that the service fingerprints it under its own
key (the CLI's key may differ) and seals the rotatable ones; so the URL must be HTTPS,
or plain HTTP to loopback only. The token comes from ``SENTINEL_TOKEN`` or the file
named by ``SENTINEL_TOKEN_FILE`` (scope ``scans:write``) and is never printed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

REPORTS_PATH = "/v1/scans/reports"
_MAX_TOKEN_FILE = 4096


def check_url(url: str) -> str:
    from sentinel.errors import ConfigError

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"--report-to {url!r}: not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError(
            f"--report-to {parts.scheme}://{parts.hostname}: plain HTTP is only allowed to "
            "loopback (the report carries secret values); use https"
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token() -> str:
    from sentinel.errors import ConfigError
    from sentinel.sources.safeio import read_regular

    value = os.environ.get("SENTINEL_TOKEN", "").strip()
    if value:
        return value
    named = os.environ.get("SENTINEL_TOKEN_FILE")
    if named:
        try:
            return read_regular(named, _MAX_TOKEN_FILE).decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"SENTINEL_TOKEN_FILE={named}: cannot read: {exc}") from None
    raise ConfigError(
        "--report-to needs an API token",
        "set SENTINEL_TOKEN (or SENTINEL_TOKEN_FILE); make one with "
        "`sentinel tokens create --name ci --scopes scans:write`",
    )


def body(
    result: Any,
    *,
    kind: str,
    target: str,
    params: dict[str, Any],
    complete: bool,
    started: datetime,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": target,
        "params": params,
        "complete": complete,
        "started_at": started.isoformat(),
        "stats": result.stats,
        "findings": [o.to_dict(show_secret=True) for o in result.occurrences],
    }


def post_results(url: str, result: Any, *, started: datetime, **scan: Any) -> str:
    """Post and return the service's scan id; a failure is a one-line SourceError."""
    import json

    import requests

    from sentinel.errors import SourceError

    url = check_url(url)
    payload = json.dumps(body(result, started=started, **scan), default=str)
    try:
        resp = requests.post(
            url + REPORTS_PATH,
            data=payload,
            headers={"Authorization": f"Bearer {token()}", "Content-Type": "application/json"},
            timeout=60,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise SourceError(f"cannot reach {url}: {type(exc).__name__}") from None
    if resp.status_code >= 300:
        detail = ""
        with contextlib.suppress(ValueError):
            detail = str(resp.json().get("detail") or resp.json().get("title") or "")
        raise SourceError(
            f"{url} refused the report: HTTP {resp.status_code} {detail[:200]}".rstrip()
        )
    scan_id = str(resp.json().get("id", ""))
    print(f"sentinel: reported scan {scan_id} to {url}", file=sys.stderr)
    return scan_id
