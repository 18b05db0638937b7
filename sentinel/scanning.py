"""Turning bytes into occurrences, in this process or in a pool of workers.

Workers are separate processes (the engine's Python confirmation step holds the
GIL), each builds its engine once from an ``EngineSpec``; the Hyperscan
database comes from the on-disk cache, so a worker starts in milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import content
from detectors.engine import Backend, Engine, GlobalAllowlist, Match
from detectors.ruleset import RuleSet
from sentinel.confidence import for_path
from sentinel.fingerprint import fingerprint, redact
from sentinel.models import Occurrence, Origin


@dataclass(frozen=True)
class EngineSpec:
    """Everything needed to rebuild the same engine in a worker process."""

    ruleset: RuleSet
    backend: Backend = "auto"
    allowlist: GlobalAllowlist = field(default_factory=GlobalAllowlist)
    cache_dir: str | None = None
    decode_depth: int = 2
    fingerprint_key: bytes = b""

    def build(self) -> Engine:
        return Engine(
            self.ruleset,
            backend=self.backend,
            allowlist=self.allowlist,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
            decode_depth=self.decode_depth,
        )


def workers(requested: int | None = None) -> int:
    if requested:
        return max(1, requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class RawHit:
    """A match with positions resolved, before an origin is attached (picklable, small)."""

    rule_id: str
    secret: str
    line: int
    column: int
    end_line: int
    end_column: int
    entropy: float
    decoded: str
    offset: int | None = None  # byte offsets in a binary, where lines mean little
    end_offset: int | None = None
    redacted: str = ""  # a preview that stands in for ``redact(secret)`` (binary values)


@dataclass(frozen=True, slots=True)
class KnownHit:
    """A hit remembered without its value (from the image layer cache): the keyed
    fingerprint and redacted preview stand in for the secret."""

    rule_id: str
    fingerprint: str
    redacted: str
    line: int
    column: int
    end_line: int
    end_column: int
    entropy: float
    decoded: str = ""
    secret: str = ""
    offset: int | None = None
    end_offset: int | None = None


def _positions(data: bytes, offsets: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(line, column) of many offsets in one pass over ``data`` (one ``line_col`` per
    offset costs the whole chunk each time: quadratic with many hits)."""
    out: dict[int, tuple[int, int]] = {}
    line, last, line_start, col = 1, 0, 0, 1
    for off in sorted(set(offsets)):
        newlines = data.count(b"\n", last, off)
        if newlines:
            line += newlines
            line_start = data.rfind(b"\n", last, off) + 1
            col = len(data[line_start:off].decode("utf-8", "replace")) + 1
        else:
            col += len(data[last:off].decode("utf-8", "replace"))
        out[off] = (line, col)
        last = off
    return out


def resolve(data: bytes, matches: Iterable[Match], how: str = "") -> list[RawHit]:
    """Raw hits with lines and columns in ``data``. ``how``: how the chunk was read
    (``utf-16le`` ...), prefixed to each hit's ``decoded``; ``binary-strings`` hits
    carry their byte offset too."""
    matches = list(matches)
    at = _positions(data, [o for m in matches for o in (m.start, m.end)])
    out = []
    for m in matches:
        line, col = at[m.start]
        end_line, end_col = at[m.end]
        decoded = ">".join(x for x in (how, m.decoded) if x)
        out.append(
            RawHit(
                m.rule_id,
                m.secret.decode("utf-8", "replace"),
                line,
                col,
                end_line,
                end_col,
                m.entropy,
                decoded,
                m.start if how == content.BINARY else None,
                m.end if how == content.BINARY else None,
            )
        )
    return out


def text_hits(engine: Engine, data: bytes) -> list[RawHit]:
    """The engine's hits in ``data``, positions resolved, however the bytes are best
    read: as text; UTF-16/32 text decoded (lines and columns in the decoded text,
    ``decoded`` names the encoding); a binary's printable runs with the strict rules
    only (``offset`` says where). How each chunk was read is counted in
    ``engine.stats.scanned_as``."""
    kind = content.sniff(data)
    engine.stats.scanned_as[kind] = engine.stats.scanned_as.get(kind, 0) + 1
    if kind == content.TEXT:
        matches = engine.scan(data)
        return resolve(data, matches) if matches else []
    if kind == content.BINARY:
        matches = engine.scan(content.printable_runs(data), strict=True)
        return resolve(data, matches, kind) if matches else []
    text = content.decode_text(data, kind)
    matches = engine.scan(text)
    return resolve(text, matches, kind) if matches else []


class OccurrenceFactory:
    """Attaches rule metadata, fingerprint and redaction to raw hits."""

    def __init__(self, ruleset: RuleSet, key: bytes) -> None:
        self.rules = {r.id: r for r in ruleset}
        self.key = key

    def make(
        self, hit: RawHit | KnownHit, origin: Origin, rel_path: str | None = None
    ) -> Occurrence:
        """``rel_path``: the path below the scanned root, which decides whether the
        finding is in test code (a root that is itself under ``tests/`` does not count)."""
        rule = self.rules[hit.rule_id]
        if isinstance(hit, KnownHit):
            fp, preview = hit.fingerprint, hit.redacted
        else:
            fp = fingerprint(hit.secret.encode(), self.key)
            preview = hit.redacted or redact(hit.secret)
        return Occurrence(
            rule_id=rule.id,
            description=rule.description,
            severity=rule.severity,
            confidence=for_path(rule.confidence, rel_path if rel_path is not None else origin.path),
            fingerprint=fp,
            redacted=preview,
            origin=origin,
            line=hit.line,
            column=hit.column,
            end_line=hit.end_line,
            end_column=hit.end_column,
            entropy=hit.entropy,
            decoded=hit.decoded,
            secret=hit.secret,
            offset=hit.offset,
            end_offset=hit.end_offset,
        )

    def path_allowed(self, rule_id: str, path: str) -> bool:
        """False when the rule's own allowlist names this path."""
        rule = self.rules[rule_id]
        if not rule.allowlist.paths:
            return True
        import regex

        return not any(regex.search(p, path) for p in rule.allowlist.paths)


# -- worker-process state -----------------------------------------------------------------

_ENGINE: Engine | None = None


def init_worker(spec: EngineSpec) -> None:
    global _ENGINE
    _ENGINE = spec.build()


def worker_engine() -> Engine:
    if _ENGINE is None:
        raise RuntimeError("worker used before init_worker")
    return _ENGINE


def pool(spec: EngineSpec, n: int) -> Any:
    """A process pool whose workers each hold an engine built from ``spec``."""
    import multiprocessing as mp

    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
    return ctx.Pool(n, initializer=init_worker, initargs=(spec,))


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
