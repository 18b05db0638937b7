"""Baselines: known secrets to stop reporting, by keyed fingerprint of the value.

A baseline names each secret by the HMAC of its value, never by commit or line,
so a rebase, a moved line or a renamed file does not bring a finding back, and
the file itself discloses nothing. It records which key made the fingerprints:
a baseline made under another ``SENTINEL_FINGERPRINT_KEY`` is refused, not
silently ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.errors import ConfigError
from sentinel.fingerprint import key_id
from sentinel.models import Occurrence

VERSION = 1


@dataclass(frozen=True)
class Baseline:
    key_id: str
    fingerprints: frozenset[str]


def _document(rows: list[tuple[str, str, str, str]], key: bytes) -> dict[str, Any]:
    """rows: (fingerprint, rule_id, redacted, path) per occurrence."""
    entries: dict[str, dict[str, Any]] = {}
    for fp, rule_id, redacted, path in rows:
        e = entries.setdefault(
            fp, {"rule_id": rule_id, "redacted": redacted, "first_seen": path, "count": 0}
        )
        e["count"] += 1
    return {
        "version": VERSION,
        "tool": "sentinel",
        "key_id": key_id(key),
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "secrets": dict(sorted(entries.items())),
    }


def build(occurrences: list[Occurrence], key: bytes) -> dict[str, Any]:
    return _document(
        [(o.fingerprint, o.rule_id, o.redacted, o.origin.path) for o in occurrences], key
    )


def from_report(report: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A baseline from a ``--format json`` report (fingerprints are already in it)."""
    findings = report.get("findings")
    if report.get("version") != 1 or not isinstance(findings, list):
        raise ConfigError("that file is not a sentinel JSON report (version 1)")
    try:
        rows = [(f["fingerprint"], f["rule_id"], f["redacted"], f["path"]) for f in findings]
    except (KeyError, TypeError):
        raise ConfigError("that report's findings lack fingerprints") from None
    return _document(rows, key)


def load(path: Path, key: bytes) -> Baseline:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"baseline {path} does not exist", "create it with 'sentinel baseline create'"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"baseline {path} is not readable JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("version") != VERSION
        or not isinstance(doc.get("secrets"), dict)
    ):
        raise ConfigError(f"baseline {path} is not a sentinel baseline (version {VERSION})")
    if doc.get("key_id") != key_id(key):
        raise ConfigError(
            f"baseline {path} was made with another fingerprint key",
            "set SENTINEL_FINGERPRINT_KEY to the key it was made with, or recreate it",
        )
    return Baseline(doc["key_id"], frozenset(doc["secrets"]))


_FP = re.compile(r"^[0-9a-f]{64}$")


def add(path: Path, fingerprints: list[str], key: bytes, rule_id: str = "") -> int:
    """Add fingerprints to the baseline at ``path`` (a new one if it does not exist);
    how many were new. The file is replaced whole, never left half-written."""
    import os
    import tempfile

    bad = [f for f in fingerprints if not _FP.match(f.strip().lower())]
    if bad:
        raise ConfigError(
            f"{bad[0]!r} is not a fingerprint (64 hex digits, as 'sentinel hook' and "
            "'scan --format json' print them)"
        )
    if path.exists():
        load(path, key)  # refuses a foreign file or another key before anything changes
        doc = json.loads(path.read_text(encoding="utf-8"))
    else:
        doc = _document([], key)
    added = 0
    for fp in fingerprints:
        fp = fp.strip().lower()
        if fp not in doc["secrets"]:
            doc["secrets"][fp] = {
                "rule_id": rule_id,
                "redacted": "",
                "first_seen": "added with 'sentinel baseline add'",
                "count": 0,
            }
            added += 1
    doc["secrets"] = dict(sorted(doc["secrets"].items()))
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".baseline-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return added
