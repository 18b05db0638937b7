"""Hyperscan database: compile all rule patterns into one, cached on disk by hash.

A hook starts in milliseconds only if it never compiles: the serialized database
is stored under the cache directory, keyed by a hash of the patterns, their
flags and the Hyperscan version, and loaded with ``hyperscan.loadb``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class HyperscanUnavailable(RuntimeError):
    """The hyperscan module cannot be imported or cannot run on this CPU."""


def import_hyperscan() -> Any:
    try:
        import hyperscan
    except Exception as exc:  # ImportError, or a CPU without the instructions it needs
        raise HyperscanUnavailable(str(exc)) from None
    return hyperscan


_NAMED_GROUP = re.compile(r"\(\?P?<(?![=!])[A-Za-z_][A-Za-z0-9_]*>")


def to_hyperscan(pattern: str) -> bytes:
    """Hyperscan has no named groups: turn them into plain groups (captures are ignored)."""
    return _NAMED_GROUP.sub("(", pattern).encode()


@dataclass(frozen=True)
class Pattern:
    expression: bytes
    id: int
    singlematch: bool = False


def default_cache_dir() -> Path:
    base = os.environ.get("SENTINEL_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    if os.environ.get("SENTINEL_CACHE_DIR"):
        return Path(base or "")
    return Path(base) / "sentinel" if base else Path.home() / ".cache" / "sentinel"


def pattern_flags(hs: Any, expression: bytes, singlematch: bool) -> int:
    """Flags that make ``expression`` compile: exact if Hyperscan supports it, else in
    prefilter mode (a superset the ``regex`` confirmation step narrows down)."""
    base = hs.HS_FLAG_MULTILINE | (hs.HS_FLAG_SINGLEMATCH if singlematch else 0)
    for flags in (base, base | hs.HS_FLAG_PREFILTER):
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        try:
            db.compile(expressions=[expression], ids=[0], elements=1, flags=[flags])
        except hs.error:
            continue
        return int(flags)
    raise ValueError("Hyperscan cannot compile this pattern, even as a prefilter")


def compile_check(expression: bytes) -> str | None:
    """None if Hyperscan can compile ``expression`` (exactly or as a prefilter), else why."""
    hs = import_hyperscan()
    try:
        pattern_flags(hs, expression, False)
    except ValueError as exc:
        return str(exc)
    return None


def _key(hs: Any, patterns: Sequence[Pattern]) -> str:
    h = hashlib.sha256(f"hs{hs.__version__}|v2".encode())
    for p in patterns:
        h.update(b"%d|%d|" % (p.id, p.singlematch) + p.expression + b"\0")
    return h.hexdigest()[:40]


def _compile(hs: Any, patterns: Sequence[Pattern], flags: list[int]) -> Any:
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    try:
        db.compile(
            expressions=[p.expression for p in patterns],
            ids=[p.id for p in patterns],
            elements=len(patterns),
            flags=flags,
        )
    except hs.error:
        return None
    return db


_NEEDS_PREFILTER = re.compile(rb"\(\?<?[=!]|\\[1-9]|\\k<|\(\?\(")


def load_or_compile(patterns: Sequence[Pattern], cache_dir: Path | None) -> Any:
    """A ready-to-scan Hyperscan block-mode database for ``patterns``."""
    hs = import_hyperscan()
    path = (cache_dir or default_cache_dir()) / f"hs-{_key(hs, patterns)}.db"
    try:
        db = hs.loadb(path.read_bytes(), hs.HS_MODE_BLOCK)
        db.scratch = hs.Scratch(db)
        return db
    except (OSError, hs.error):
        pass
    base = hs.HS_FLAG_MULTILINE
    # lookaround and back-references are what Hyperscan only takes in prefilter mode:
    # guessing from the syntax makes one compile of the whole set, not one per pattern
    flags = [
        base
        | (hs.HS_FLAG_SINGLEMATCH if p.singlematch else 0)
        | (hs.HS_FLAG_PREFILTER if _NEEDS_PREFILTER.search(p.expression) else 0)
        for p in patterns
    ]
    db = _compile(hs, patterns, flags)
    if db is None:  # the guess was wrong somewhere: find which, once per rule set
        flags = [pattern_flags(hs, p.expression, p.singlematch) for p in patterns]
        db = _compile(hs, patterns, flags)
        if db is None:
            raise ValueError("Hyperscan cannot compile the rule set")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hs-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(hs.dumpb(db))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next start a compile
    return db
