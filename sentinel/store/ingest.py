"""Occurrences in, idempotently.

One Finding per fingerprint, one Occurrence per place (its ``location_key`` hashes the
finding and every location field). Ingesting the same scan twice adds nothing. When a
scan covered its target completely (a full history, a whole image, a whole directory),
an occurrence of that target it no longer saw is marked gone (``gone_at``), never
deleted; one seen again is no longer gone. Triage (status, who, why) is never touched
here, so it survives rescans.

Inserts use ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL) and then read back, so
two ingests of the same secret at once make one finding, not an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentinel.store.models import SOURCE_BITS, Finding, Occurrence, Scan, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sentinel.models import Occurrence as ScanOccurrence
    from sentinel.store.crypto import Keyring

_BATCH = 500
_SEVERITY_ORDER = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
_CONFIDENCE_ORDER = {"high": 2, "medium": 1, "low": 0}


@dataclass
class IngestResult:
    new_findings: list[Finding] = field(default_factory=list)
    findings_seen: int = 0
    occurrences_new: int = 0
    occurrences_seen: int = 0
    occurrences_gone: int = 0
    sealed: int = 0
    plaintext_refused: int = 0  # rotatable secrets not kept: no encryption key


def target_of(occ: ScanOccurrence, default: str) -> str:
    o = occ.origin
    if o.source == "image" and o.image:
        return o.image
    if o.source == "k8s" and o.cluster:
        return o.cluster
    # a git Origin names its repository by directory name only: the scan's target
    # (the full path or URL) is what tells two repositories apart
    return default


def location_key(fingerprint: str, row: dict[str, Any]) -> str:
    parts = [fingerprint] + [
        row.get(k)
        for k in (
            "source",
            "target",
            "commit",
            "image",
            "layer",
            "cluster",
            "namespace",
            "kind",
            "name",
            "key",
            "path",
            "line",
            "column",
        )
    ]
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def occurrence_row(occ: ScanOccurrence, target: str) -> dict[str, Any]:
    o = occ.origin
    return {
        "source": o.source,
        "target": target,
        "commit": o.commit,
        "image": o.image,
        "layer": o.layer,
        "cluster": o.cluster,
        "namespace": o.namespace,
        "kind": o.kind,
        "name": o.name,
        "key": o.key,
        "path": o.path or "",
        "line": occ.line,
        "column": occ.column,
        "author": o.author,
        "email": o.email,
        "date": o.date,
    }


def _insert(
    session: Session, model: type[Any], rows: list[dict[str, Any]], key: str, returning: Any = None
) -> list[Any]:
    """Insert what is not there yet; with ``returning``, the rows this call inserted."""
    if not rows:
        return []
    table = model.__table__
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _insert_pg(conn, table, rows, key, returning)
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table).on_conflict_do_nothing(index_elements=[key])
    if returning is None:
        conn.execute(stmt, rows)  # in-process executemany: fast on SQLite
        return []
    return list(conn.execute(stmt.returning(*returning), rows))


def _insert_pg(
    conn: Any, table: Any, rows: list[dict[str, Any]], key: str, returning: Any
) -> list[Any]:
    """One statement per batch, each column sent as one array (``unnest``): a
    executemany is a round trip per row, and a multi-row VALUES of thousands of
    parameters costs more to build and parse than the insert itself."""
    cols = [c for c in table.columns if c.name in rows[0]]
    casts = ", ".join(f"%s::{c.type.compile(dialect=conn.dialect)}[]" for c in cols)
    names = ", ".join(f'"{c.name}"' for c in cols)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({casts}) '
        f'ON CONFLICT ("{key}") DO NOTHING'
    )
    if returning is not None:
        sql += " RETURNING " + ", ".join(f'"{r.key}"' for r in returning)
    params = tuple([r[c.name] for r in rows] for c in cols)
    result = conn.exec_driver_sql(sql, params)
    return list(result) if returning is not None else []


def _chunks(items: Sequence[Any], n: int = _BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def ingest(
    session: Session,
    scan: Scan,
    occurrences: Sequence[ScanOccurrence],
    *,
    fingerprint_key_id: str,
    default_target: str,
    complete: bool = False,
    keyring: Keyring | None = None,
    rotators: dict[str, str] | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Write ``occurrences`` (from one scan) into the store; the caller commits.

    ``rotators`` maps a rule id to the rotator that can handle its secrets: only those
    findings keep their value, sealed under ``keyring``'s current key.
    """
    from sqlalchemy import select, update

    now = now or utcnow()
    res = IngestResult()
    rotators = rotators or {}
    by_fp: dict[str, ScanOccurrence] = {}
    for occ in occurrences:
        by_fp.setdefault(occ.fingerprint, occ)
    fps = list(by_fp)

    existing: dict[str, Finding] = {}
    for chunk in _chunks(fps):
        for f in session.scalars(select(Finding).where(Finding.fingerprint.in_(chunk))):
            existing[f.fingerprint] = f
    fresh: list[dict[str, Any]] = []
    for fp in fps:
        if fp in existing:
            continue
        occ = by_fp[fp]
        rotator = rotators.get(occ.rule_id)
        row: dict[str, Any] = {
            "fingerprint": fp,
            "fingerprint_key_id": fingerprint_key_id,
            "rule_id": occ.rule_id,
            "description": occ.description,
            "severity": occ.severity,
            "confidence": occ.confidence,
            "redacted": occ.redacted,
            "status": "open",
            "first_seen": now,
            "last_seen": now,
            "first_scan_id": scan.id,
            "rotator": rotator,
            "secret_sealed": None,
            "secret_key_id": None,
        }
        if rotator and occ.secret:
            if keyring is not None and keyring.available:
                row["secret_sealed"], row["secret_key_id"] = keyring.seal(occ.secret, fp)
                res.sealed += 1
            else:
                res.plaintext_refused += 1
        fresh.append(row)
    inserted: set[str] = set()
    for chunk in _chunks(fresh):
        inserted.update(
            r.fingerprint
            for r in _insert(session, Finding, list(chunk), "fingerprint", (Finding.fingerprint,))
        )
    new_fps = {r["fingerprint"] for r in fresh}
    for chunk in _chunks(sorted(new_fps)):
        for f in session.scalars(select(Finding).where(Finding.fingerprint.in_(chunk))):
            existing[f.fingerprint] = f
            if f.fingerprint in inserted:
                res.new_findings.append(f)
    # made by another ingest at the same moment: seen here, new to the other one
    new_fps = inserted
    seen_ids = [f.id for fp, f in existing.items() if fp not in new_fps]
    res.findings_seen = len(seen_ids)
    for chunk in _chunks(seen_ids):
        session.execute(
            update(Finding).where(Finding.id.in_(chunk)).values(last_seen=now),
            execution_options={"synchronize_session": False},
        )
    # a higher severity or confidence seen later upgrades the finding's headline
    for fp, occ in by_fp.items():
        f = existing[fp]
        if fp not in new_fps and (
            _SEVERITY_ORDER.get(occ.severity, 0) > _SEVERITY_ORDER.get(f.severity, 0)
            or _CONFIDENCE_ORDER.get(occ.confidence, 0) > _CONFIDENCE_ORDER.get(f.confidence, 0)
        ):
            f.severity = max(f.severity, occ.severity, key=lambda s: _SEVERITY_ORDER.get(s, 0))
            f.confidence = max(
                f.confidence, occ.confidence, key=lambda s: _CONFIDENCE_ORDER.get(s, 0)
            )

    rows: dict[str, dict[str, Any]] = {}
    targets: set[tuple[str, str]] = set()
    for occ in occurrences:
        target = target_of(occ, default_target)
        row = occurrence_row(occ, target)
        key = location_key(occ.fingerprint, row)
        if key in rows:
            continue
        row.update(
            finding_id=existing[occ.fingerprint].id,
            location_key=key,
            first_seen=now,
            last_seen=now,
            last_scan_id=scan.id,
            gone_at=None,
        )
        rows[key] = row
        targets.add((row["source"], target))
    keys = list(rows)
    known: set[str] = set()
    for chunk in _chunks(keys):
        known.update(
            session.scalars(
                select(Occurrence.location_key).where(Occurrence.location_key.in_(chunk))
            )
        )
    new_rows = [rows[k] for k in keys if k not in known]
    for chunk in _chunks(new_rows):
        _insert(session, Occurrence, list(chunk), "location_key")
    bits: dict[int, int] = {}
    for r in new_rows:
        bits[r["finding_id"]] = bits.get(r["finding_id"], 0) | SOURCE_BITS.get(r["source"], 0)
    note_sources(session, bits)
    res.occurrences_new = len(new_rows)
    seen = sorted(known)
    res.occurrences_seen = len(seen)
    for chunk in _chunks(seen):
        session.execute(
            update(Occurrence)
            .where(Occurrence.location_key.in_(chunk))
            .values(last_seen=now, last_scan_id=scan.id, gone_at=None),
            execution_options={"synchronize_session": False},
        )
    if complete:
        scope = targets | {(_source_of(scan.kind), default_target)}
        for source, target in scope:
            result = session.execute(
                update(Occurrence)
                .where(
                    Occurrence.target == target,
                    Occurrence.source == source,
                    Occurrence.gone_at.is_(None),
                    (Occurrence.last_scan_id != scan.id) | Occurrence.last_scan_id.is_(None),
                )
                .values(gone_at=now),
                execution_options={"synchronize_session": False},
            )
            res.occurrences_gone += int(getattr(result, "rowcount", 0) or 0)
    scan.findings_new = len(res.new_findings)
    scan.occurrences_new = res.occurrences_new
    scan.occurrences_seen = res.occurrences_seen
    scan.occurrences_gone = res.occurrences_gone
    return res


def note_sources(session: Session, bits: dict[int, int]) -> None:
    """Add source kinds (SOURCE_BITS) to findings: ``bits`` maps a finding id to the
    kinds of the occurrences just recorded for it. One update per distinct set of
    kinds, or-ed in the database (two ingests at once lose neither's kinds)."""
    from sqlalchemy import update

    by_bits: dict[int, list[int]] = {}
    for fid, b in bits.items():
        if b:
            by_bits.setdefault(b, []).append(fid)
    for b, ids in sorted(by_bits.items()):
        for chunk in _chunks(sorted(ids)):
            session.execute(
                update(Finding)
                .where(Finding.id.in_(chunk), Finding.sources.op("&")(b) != b)
                .values(sources=Finding.sources.op("|")(b)),
                execution_options={"synchronize_session": False},
            )


def _source_of(scan_kind: str) -> str:
    return {"path": "file"}.get(scan_kind, scan_kind)
