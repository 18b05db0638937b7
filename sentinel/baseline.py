"""Baselines: known secrets to stop reporting, by keyed fingerprint of the value.

A baseline names each secret by the HMAC of its value, never by commit or line,
so a rebase, a moved line or a renamed file does not bring a finding back, and
the file holds no value. It records which key made the fingerprints: the built-in
public key by default (a committed baseline must match on every machine and on
the git server, and anyone holding it can test guesses against it), or this
installation's own key (``--key installation``: private, matches only here). A
baseline under any other key is refused, not silently ignored.
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
from sentinel.fingerprint import PUBLIC_KEY, PUBLIC_KEY_ID, FingerprintKey, key_id
from sentinel.models import Occurrence

VERSION = 1


@dataclass(frozen=True)
class Baseline:
    key_id: str
    fingerprints: frozenset[str]
    key: bytes = PUBLIC_KEY  # what a secret is fingerprinted with to look it up here


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
    """A baseline under ``key`` of these occurrences (scanned with ``baseline_key=key``,
    so each carries its fingerprint under that key)."""
    return _document(
        [
            (o.baseline_fingerprint or o.fingerprint, o.rule_id, o.redacted, o.origin.path)
            for o in occurrences
        ],
        key,
    )


def from_report(report: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A baseline from a ``--format json`` report (fingerprints are already in it, under
    the key that made the report: it must be ``key``)."""
    findings = report.get("findings")
    if report.get("version") != 1 or not isinstance(findings, list):
        raise ConfigError("that file is not a sentinel JSON report (version 1)")
    stats = report.get("stats")
    made_with = stats.get("fingerprint_key_id") if isinstance(stats, dict) else None
    if made_with != key_id(key):
        which = "the public key" if key == PUBLIC_KEY else "this installation's key"
        raise ConfigError(
            "that report's fingerprints are not under "
            + which
            + (" (it names no key: an older report)" if made_with is None else ""),
            "run 'sentinel baseline create' on the target instead, or pass --key "
            + ("installation" if key == PUBLIC_KEY else "public"),
        )
    rows = []
    for f in findings:
        if not isinstance(f, dict):
            raise ConfigError("that report's findings are not objects")
        try:
            rows.append(
                (str(f["fingerprint"]), str(f["rule_id"]), str(f["redacted"]), str(f["path"]))
            )
        except KeyError:
            raise ConfigError("that report's findings lack fingerprints") from None
    return _document(rows, key)


def load(path: Path, key: bytes | FingerprintKey) -> Baseline:
    """The baseline at ``path``; its key must be the public one or ``key`` (this
    installation's)."""
    from sentinel.sources.safeio import read_regular

    own = key.key if isinstance(key, FingerprintKey) else key
    try:
        doc = json.loads(read_regular(path, 64 * 1024 * 1024).decode("utf-8"))
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
    kid = doc.get("key_id")
    if kid == PUBLIC_KEY_ID:
        return Baseline(kid, frozenset(doc["secrets"]), PUBLIC_KEY)
    if kid == key_id(own):
        return Baseline(kid, frozenset(doc["secrets"]), own)
    raise ConfigError(
        f"baseline {path} was made with another fingerprint key",
        "set SENTINEL_FINGERPRINT_KEY to the key it was made with, or recreate it",
    )


_FP = re.compile(r"^[0-9a-f]{64}$")


def add(
    path: Path,
    fingerprints: list[str],
    key: bytes | FingerprintKey,
    rule_id: str = "",
    new_key: bytes = PUBLIC_KEY,
) -> int:
    """Add fingerprints to the baseline at ``path`` (a new one under ``new_key`` if it
    does not exist); how many were new. The file is replaced whole, never left
    half-written."""
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
        from sentinel.sources.safeio import read_regular

        doc = json.loads(read_regular(path, 64 * 1024 * 1024).decode("utf-8"))
    else:
        doc = _document([], new_key)
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
    os.fchmod(fd, 0o644)  # a committed file, read by everyone who clones (mkstemp makes 0600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return added
