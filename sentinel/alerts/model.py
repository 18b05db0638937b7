"""What an alert says about one finding: built from the store's Finding and its first
Occurrence. It carries the redacted preview only; the plaintext never gets here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from sentinel.sweeps.urls import redact as without_userinfo

if TYPE_CHECKING:
    from sentinel.store.models import Finding, Occurrence

# hosts whose repository pages we know how to link to, and their blob path segment
_FORGES = {"github.com": "blob", "gitlab.com": "-/blob"}


@dataclass(frozen=True, slots=True)
class Alert:
    finding_id: int
    fingerprint: str
    rule_id: str
    description: str
    severity: str
    confidence: str
    source: str  # git | file | image | k8s
    target: str  # repository URL or path, image reference, cluster (userinfo dropped)
    path: str
    line: int
    commit: str | None
    author: str | None
    redacted: str
    web_url: str | None  # the line at its commit on GitHub/GitLab, when the target is one
    api_url: str | None  # the finding in Sentinel's API


def web_url(target: str, commit: str | None, path: str, line: int) -> str | None:
    """``https://host/owner/repo/blob/<commit>/<path>#L<line>`` for an https repository
    on GitHub or GitLab (GitLab: ``/-/blob/``), else None."""
    if not commit or not path or not target.startswith("https://"):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    blob = _FORGES.get(host) or ("-/blob" if host.startswith("gitlab.") else None)
    if blob is None or parts.query or parts.fragment:
        return None
    repo = parts.path.strip("/").removesuffix(".git")
    segments = repo.split("/")
    if len(segments) < 2 or any(not s or s in (".", "..") for s in segments):
        return None
    if host == "github.com" and len(segments) != 2:
        return None
    if not all(c.isalnum() or c in "-_." for s in segments for c in s):
        return None
    if not all(c in "0123456789abcdef" for c in commit.lower()):
        return None
    anchor = f"#L{line}" if line > 0 else ""
    return f"https://{host}/{repo}/{blob}/{commit}/{quote(path, safe='/')}{anchor}"


def api_url(public_url: str | None, finding_id: int) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/v1/findings/{finding_id}"


def from_store(finding: Finding, occurrence: Occurrence | None, public_url: str | None) -> Alert:
    """The alert for ``finding``, placed at ``occurrence`` (its first, usually)."""
    o: Any = occurrence
    target = without_userinfo(o.target) if o is not None else ""
    path = o.path if o is not None else ""
    line = o.line if o is not None else 0
    commit = o.commit if o is not None else None
    if o is not None and o.source == "image" and o.layer:
        commit = None  # an image has layers, not commits
    return Alert(
        finding_id=finding.id,
        fingerprint=finding.fingerprint,
        rule_id=finding.rule_id,
        description=finding.description,
        severity=finding.severity,
        confidence=finding.confidence,
        source=o.source if o is not None else "",
        target=target,
        path=path,
        line=line,
        commit=commit,
        author=o.author if o is not None else None,
        redacted=finding.redacted,
        web_url=web_url(target, commit, path, line)
        if o is not None and o.source == "git"
        else None,
        api_url=api_url(public_url, finding.id),
    )
