"""Hook events into the store: one ``HookEventRecord`` per event id, and the event's
findings as occurrences through the same ingest as every scan.

An event names each secret by its keyed fingerprint and a redacted preview, never its
value. When the fingerprints are under the store's own key (the hook says which key in
``fingerprint_key``), they are ingested as a Scan of kind ``hook`` (target: the
repository; params: the event id, verdict, cause and refs), so they group by fingerprint
with the CLI's and the service's scans, and each occurrence's ``last_scan_id`` leads to
the push that carried it. Under another key, or none named, the event is still recorded
(the security team sees the push) but its findings are not ingested: they would be
fingerprints no other scan can match.

The record, its scan and the caller's extra rows (the audit entry) commit in one
transaction; a second delivery of the same id (the hook's spool retries) stores nothing
and gets the first one's record back, even when both arrive at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from sentinel.store.models import Finding, HookEventRecord, utcnow
from sentinel.store.queries import (
    DEFAULT_LIMIT,
    NotFound,
    Page,
    QueryError,
    _bind,
    check_limit,
    decode_cursor,
    encode_cursor,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sentinel.events import HookEvent
    from sentinel.models import ScanResult
    from sentinel.store.facade import Store

VERDICTS = {"push_blocked": "blocked", "push_bypassed": "bypassed", "push_unscanned": "allowed"}
KIND_OF_VERDICT = {v: k for k, v in VERDICTS.items()}
SEVERITIES = ("critical", "high", "medium", "low", "info")
CONFIDENCES = ("high", "medium", "low")
# what fits the store's columns (Finding.severity, Occurrence.date, HookEventRecord.pusher)
_PUSHER_CHARS = 200
_DATE_CHARS = 40
Extra = Callable[["Session", HookEventRecord], None]


@dataclass
class Stored:
    record: HookEventRecord
    created: bool  # False: this id was stored before (a redelivery)


def payload_of(record: HookEventRecord) -> dict[str, Any]:
    return dict(record.payload or {})


def _rule_defaults() -> dict[str, tuple[str, str, str]]:
    """Rule id to (description, severity, confidence) for the built-in rules."""
    from detectors.ruleset import load_builtin

    return {r.id: (r.description, r.severity, r.confidence) for r in load_builtin()}


def scan_result(event: HookEvent) -> ScanResult:
    """The event's findings as a ScanResult with no values (fingerprints as given)."""
    from sentinel.models import Occurrence, Origin, ScanResult

    rules = _rule_defaults()
    occs = []
    for f in event.findings:
        desc, sev, conf = rules.get(f.rule_id, ("", "medium", "medium"))
        origin = Origin(
            source="git",
            path=f.path,
            commit=f.commit,
            author=f.author,
            email=f.email,
            date=(f.date or None) and f.date[:_DATE_CHARS],
            repository=event.repository,
        )
        occs.append(
            Occurrence(
                rule_id=f.rule_id,
                description=desc,
                severity=f.severity if f.severity in SEVERITIES else sev,
                confidence=f.confidence if f.confidence in CONFIDENCES else conf,
                fingerprint=f.fingerprint,
                redacted=f.redacted,
                origin=origin,
                line=f.line,
                column=f.column or 0,
                end_line=f.line,
                end_column=f.column or 0,
                entropy=0.0,
            )
        )
    return ScanResult(occurrences=occs, stats={"event": event.id, "findings": len(occs)})


def _record(event: HookEvent, actor: str, extra: dict[str, Any]) -> HookEventRecord:
    return HookEventRecord(
        id=event.id,
        kind=event.kind,
        repository=event.repository,
        pusher=event.pusher[:_PUSHER_CHARS],
        at=event.at,
        received_at=utcnow(),
        reason=event.reason,
        payload={
            "event": event.model_dump(mode="json"),
            "verdict": VERDICTS[event.kind],
            "received_by": actor,
            **extra,
        },
    )


def _existing(store: Store, event_id: str) -> HookEventRecord | None:
    with store.sessions() as s:
        return s.get(HookEventRecord, event_id)


def record_event(store: Store, event: HookEvent, actor: str, extra: Extra) -> Stored:
    """Store ``event`` once (see the module's docstring). ``extra`` adds rows to the same
    transaction (the audit record); it is not called for a redelivery."""
    from sqlalchemy.exc import IntegrityError

    from sentinel.store.facade import record_result
    from sentinel.store.session import writing

    found = _existing(store, event.id)
    if found is not None:
        return Stored(found, False)
    why_not = not_ingested(store, event)
    try:
        if not event.findings or why_not:
            with store.sessions() as s:
                writing(s)
                note = {"findings_stored": False, "findings_not_stored": why_not}
                row = _record(event, actor, {**note, "findings_new": 0, "finding_ids": []})
                s.add(row)
                s.flush()
                extra(s, row)
                s.commit()
                return Stored(row, True)
        made: list[HookEventRecord] = []

        def with_record(s: Session, scan: Any, res: Any) -> None:
            fps = sorted({f.fingerprint for f in event.findings})
            pairs = s.execute(
                select(Finding.fingerprint, Finding.id).where(Finding.fingerprint.in_(fps))
            )
            ids = {fp: fid for fp, fid in pairs}
            row = _record(
                event,
                actor,
                {
                    "findings_stored": True,
                    "findings_not_stored": None,
                    "findings_new": len(res.new_findings),
                    "finding_ids": [ids.get(f.fingerprint) for f in event.findings],
                },
            )
            row.scan_id = scan.id
            s.add(row)
            s.flush()
            extra(s, row)
            made.append(row)

        record_result(
            store,
            kind="hook",
            target=event.repository,
            result=scan_result(event),
            requested_by=actor,
            complete=False,
            params={
                "event": event.id,
                "verdict": VERDICTS[event.kind],
                "cause": event.cause,
                "pusher": event.pusher,
                "refs": [u.ref for u in event.updates[:100]],
            },
            before_commit=with_record,
        )
        return Stored(made[0], True)
    except IntegrityError:
        # the same id stored by a delivery that committed first: its record stands
        found = _existing(store, event.id)
        if found is None:
            raise
        return Stored(found, False)


def not_ingested(store: Store, event: HookEvent) -> str | None:
    """Why the event's findings cannot be ingested, or None when they can."""
    if not event.findings:
        return None
    if event.fingerprint_key is None:
        return "the event does not say which key its fingerprints are under"
    if event.fingerprint_key != store.fingerprint.id:
        return (
            f"its fingerprints are under key {event.fingerprint_key}, not the service's "
            f"({store.fingerprint.id}): give the git server the service's fingerprint key"
        )
    return None


# -- reading ------------------------------------------------------------------------------


def get_event(session: Session, event_id: str) -> HookEventRecord:
    row = session.get(HookEventRecord, event_id) if len(event_id) <= 64 else None
    if row is None:
        raise NotFound(f"no event {event_id[:64]}")
    return row


def list_events(
    session: Session,
    *,
    verdict: str | None = None,
    repository: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[HookEventRecord]:
    """Newest first (by when the service received them)."""
    if verdict is not None and verdict not in KIND_OF_VERDICT:
        raise QueryError(f"verdict: {verdict[:40]!r} is not one of {', '.join(KIND_OF_VERDICT)}")
    check_limit(limit)
    ckind = "events"
    stmt = select(HookEventRecord)
    if verdict:
        stmt = stmt.where(HookEventRecord.kind == KIND_OF_VERDICT[verdict])
    if repository is not None:
        stmt = stmt.where(HookEventRecord.repository == repository)
    if cursor:
        received, eid = decode_cursor(cursor, ckind, (datetime, str))
        col = HookEventRecord.received_at
        stmt = stmt.where(
            or_(
                col < _bind(col, received),
                and_(col == _bind(col, received), HookEventRecord.id < eid),
            )
        )
    stmt = stmt.order_by(HookEventRecord.received_at.desc(), HookEventRecord.id.desc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(ckind, (rows[-1].received_at, rows[-1].id)) if more else None
    return Page(rows, nxt)
