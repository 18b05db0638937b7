"""A remote git URL is untrusted input: before git sees one it must be https or ssh
(plain http only to loopback, for test setups), name a host, and nothing in it may be
read by git as an option or as a ``transport::address`` helper (``ext::sh -c ...`` runs a
program). ``file://`` and local paths are refused: a remote scan must not read the
service's own disk. Every message shows the URL without its userinfo."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from sentinel.errors import SourceError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_URL = 2048
_SCP = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._~+-]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)$"
)
_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]*$|^[0-9a-f:.]*:[0-9a-f:.]*$")  # name, IPv4 or IPv6
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


class RefusedURL(SourceError):
    """A remote URL Sentinel will not hand to git."""


def redact(url: str) -> str:
    """``url`` without the userinfo of any ``scheme://user:secret@`` in it."""
    return _USERINFO.sub("", url)


def without_userinfo(url: str) -> str:
    """The URL to record and show: userinfo dropped (a token in it is a credential)."""
    if "://" not in url:
        return url  # scp-like ``git@host:path`` carries a user name, never a password
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return SplitResult(parts.scheme, host, parts.path, parts.query, parts.fragment).geturl()


def check_git_url(url: str, *, http_loopback: bool = False, schemes: tuple[str, ...] = ()) -> str:
    """``url`` if git may fetch it, else RefusedURL saying why. ``schemes`` narrows the
    allowed schemes (the GitHub webhook takes https only); scp-like ``user@host:path``
    counts as ssh."""
    allowed = set(schemes or ("https", "ssh"))
    shown = redact(url)[:200]
    if not url or len(url) > MAX_URL:
        raise RefusedURL(f"git URL is empty or longer than {MAX_URL} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise RefusedURL(f"git URL {shown!r} contains whitespace or control characters")
    if url.startswith("-"):
        raise RefusedURL(f"git URL {shown!r} starts with '-' (git would read it as an option)")
    if "::" in url.split("://", 1)[0] or url.startswith(("ext:", "fd:")):
        raise RefusedURL(f"git URL {shown!r} names a transport helper; use https or ssh")
    if "://" not in url:
        m = _SCP.match(url)
        if m is None or "/" in m.group("host") or "ssh" not in allowed:
            raise RefusedURL(
                f"git URL {shown!r} is not an https or ssh URL (local paths are refused)"
            )
        if m.group("path").startswith("-"):
            raise RefusedURL(f"git URL {shown!r}: the path starts with '-'")
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise RefusedURL(f"git URL {shown!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme == "http" and http_loopback and host in LOOPBACK:
        pass
    elif scheme not in allowed:
        want = " or ".join(sorted(allowed))
        raise RefusedURL(f"git URL {shown!r}: scheme {scheme or 'none'!r} is refused; use {want}")
    if not _HOST.match(host):
        raise RefusedURL(f"git URL {shown!r} does not name a valid host")
    if not parts.path or parts.path == "/":
        raise RefusedURL(f"git URL {shown!r} names no repository path")
    return url
