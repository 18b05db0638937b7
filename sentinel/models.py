"""What flows from sources through the engine to reporters.

A source yields ``Chunk``s (bytes plus an ``Origin`` saying where they came
from); scanning turns engine matches into ``Occurrence``s, one per place a
secret appears. Occurrences with the same rule and fingerprint are one finding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


def utcnow_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def display_path(raw: str | bytes) -> str:
    """A path as valid text: bytes that are not UTF-8 (file names are bytes on POSIX)
    become backslash escapes instead of lone surrogates that no encoder accepts."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Origin:
    source: str  # git | file | image | k8s
    path: str
    commit: str | None = None
    author: str | None = None
    email: str | None = None
    date: str | None = None
    object_type: str | None = None  # for git: blob | commit | tag
    repository: str | None = None
    image: str | None = None
    layer: str | None = None
    layer_index: int | None = None  # 1-based, bottom layer first
    created_by: str | None = None  # the history entry that made the layer (secrets redacted)
    deleted_in_layer: str | None = None  # digest of the layer whose whiteout removes the file
    deleted_in_layer_index: int | None = None
    cluster: str | None = None  # kube context of a live cluster
    document: int | None = None  # 1-based document of a multi-document YAML file
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    key: str | None = None

    def with_(self, **changes: Any) -> Origin:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    origin: Origin


@dataclass(slots=True)
class Occurrence:
    rule_id: str
    description: str
    severity: str
    confidence: str
    fingerprint: str
    redacted: str
    origin: Origin
    line: int
    column: int
    end_line: int
    end_column: int
    entropy: float
    decoded: str = ""
    secret: str = field(default="", repr=False)
    offset: int | None = None  # byte offsets of the secret in a binary file
    end_offset: int | None = None
    # its fingerprint under the baseline's key, when that is not the report's key
    baseline_fingerprint: str = field(default="", repr=False)

    def to_dict(self, show_secret: bool = False) -> dict[str, Any]:
        o = asdict(self.origin)
        d: dict[str, Any] = {
            "rule_id": self.rule_id,
            "description": self.description,
            "severity": self.severity,
            "confidence": self.confidence,
            "fingerprint": self.fingerprint,
            "redacted": self.redacted,
            "source": o.pop("source"),
            "path": o.pop("path"),
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "entropy": self.entropy,
        }
        if self.decoded:
            d["decoded"] = self.decoded
        if self.offset is not None:
            d["offset"] = self.offset
            d["end_offset"] = self.end_offset
        d.update({k: v for k, v in o.items() if v is not None})
        if show_secret:
            d["secret"] = self.secret
        return d


@dataclass
class ScanResult:
    occurrences: list[Occurrence] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
