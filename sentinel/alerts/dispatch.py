"""The store side of Slack alerts: an outbox of ``AlertDelivery`` rows.

Each (finding, destination) gets one row, claimed with ``INSERT ... ON CONFLICT DO
NOTHING RETURNING``; only the call that inserted a row sends it, so two processes, a
rescan or a retry never alert twice for the same finding and destination. A row:

    pending  claimed, being sent; ``next_attempt_at`` is the claim's lease, after which
             a sender that died is presumed gone and ``retry_due`` takes the row over
    retry    an attempt failed; tried again from ``next_attempt_at`` (doubling backoff,
             never before Slack's Retry-After)
    sent     delivered at ``sent_at``
    failed   given up after ``max_attempts`` (or its destination left the config)
    skipped  the finding was triaged (ignored, false positive) before it went out

Only open findings alert. ``dispatch_scan`` alerts the findings a scan made new;
``pending_findings`` those stored with no delivery yet (``sentinel scan --store`` while
the service was not looking); ``retry_due`` resends what is due. No transaction is held
while Slack is called, and nothing here raises for a failed send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel.alerts.model import Alert, from_store
from sentinel.alerts.routing import AlertsConfig, Destination, destinations, route
from sentinel.alerts.slack import SendResult, messages_for, send
from sentinel.store.models import AlertDelivery, Finding, Occurrence, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.alerts")

_CHUNK = 500
DUE = ("pending", "retry")


@dataclass
class Tally:
    """What one call did, counted in deliveries (a digest counts each finding)."""

    sent: int = 0
    failed: int = 0  # attempts that failed and will be tried again
    gave_up: int = 0  # deliveries given up for good

    def __iadd__(self, other: Tally) -> Tally:
        self.sent += other.sent
        self.failed += other.failed
        self.gave_up += other.gave_up
        return self

    def __bool__(self) -> bool:
        return bool(self.sent or self.failed or self.gave_up)


Clock = Callable[[], datetime]


def _clock(now: datetime | None) -> Clock:
    return (lambda: now) if now is not None else utcnow


def _lease(cfg: AlertsConfig) -> timedelta:
    """Longer than one send can take with all of slack_sdk's retries, so a claim only
    lapses when its sender is really gone."""
    assert cfg.slack is not None
    c = cfg.slack
    per_try = c.timeout_seconds + max(c.max_retry_after_seconds, c.retry_backoff_seconds * 8)
    return timedelta(seconds=60 + 3 * (c.retries + 1) * per_try)


def backoff(cfg: AlertsConfig, attempts: int, retry_after: float | None = None) -> timedelta:
    """The wait before attempt ``attempts + 1``: doubling from redeliver_after_seconds up
    to redeliver_max_seconds, and never less than Slack's Retry-After."""
    assert cfg.slack is not None
    c = cfg.slack
    wait = min(c.redeliver_max_seconds, c.redeliver_after_seconds * 2 ** max(0, attempts - 1))
    return timedelta(seconds=max(wait, retry_after or 0.0))


def findings_url(public_url: str | None) -> str | None:
    return f"{public_url.rstrip('/')}/v1/findings?status=open" if public_url else None


# --- entry points ---------------------------------------------------------------------


def dispatch_scan(
    store: Store,
    cfg: AlertsConfig,
    scan_id: str,
    public_url: str | None = None,
    *,
    now: datetime | None = None,
) -> Tally:
    """Alert the open findings ``scan_id`` made new (an occurrence of a finding already
    known never re-alerts); one batch, so many of them become a digest."""
    from sqlalchemy import select

    if not cfg.enabled:
        return Tally()
    with store.sessions() as s:
        found = list(
            s.scalars(
                select(Finding)
                .where(Finding.first_scan_id == scan_id, Finding.status == "open")
                .order_by(Finding.id)
            )
        )
    return _alert_new(store, cfg, found, public_url, _clock(now))


def pending_findings(
    store: Store,
    cfg: AlertsConfig,
    public_url: str | None = None,
    *,
    now: datetime | None = None,
    limit: int = 200,
) -> Tally:
    """Alert open findings that have no delivery at all yet, oldest first, at most
    ``limit`` of them (first seen within ``catch_up_hours``)."""
    from sqlalchemy import exists, select

    if cfg.slack is None:
        return Tally()
    clock = _clock(now)
    since = clock() - timedelta(hours=cfg.slack.catch_up_hours)
    with store.sessions() as s:
        found = list(
            s.scalars(
                select(Finding)
                .where(
                    Finding.status == "open",
                    Finding.first_seen >= since,
                    ~exists().where(AlertDelivery.finding_id == Finding.id),
                )
                .order_by(Finding.first_seen, Finding.id)
                .limit(limit)
            )
        )
    return _alert_new(store, cfg, found, public_url, clock)


def retry_due(
    store: Store,
    cfg: AlertsConfig,
    now: datetime | None = None,
    public_url: str | None = None,
    *,
    limit: int = 200,
) -> Tally:
    """Resend deliveries whose retry time (or a dead sender's lease) has come; each row
    is claimed first, so two services retrying at once send it once."""
    from sqlalchemy import select, update

    from sentinel.store.session import writing

    if cfg.slack is None:
        return Tally()
    clock = _clock(now)
    t = clock()
    due_q = (
        select(AlertDelivery.id)
        .where(AlertDelivery.status.in_(DUE), AlertDelivery.next_attempt_at <= t)
        .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
        .limit(limit)
    )
    with store.sessions() as s:
        ids = list(s.scalars(due_q))  # a read first: an idle poll takes no write lock
    if not ids:
        return Tally()
    with store.sessions() as s:
        writing(s)
        claimed = s.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id.in_(ids),
                AlertDelivery.status.in_(DUE),
                AlertDelivery.next_attempt_at <= t,
            )
            .values(status="pending", next_attempt_at=t + _lease(cfg))
            .returning(AlertDelivery.id, AlertDelivery.finding_id, AlertDelivery.destination)
            .execution_options(synchronize_session=False)
        ).all()
        s.commit()
    if not claimed:
        return Tally()
    dests = destinations(cfg)
    tally = Tally()
    with store.sessions() as s:
        findings = _by_id(s, [r.finding_id for r in claimed])
        firsts = _first_occurrences(s, list(findings))
    skipped: list[int] = []
    lost: list[int] = []
    groups: dict[str, tuple[Destination, list[tuple[int, Alert]]]] = {}
    for r in claimed:
        f = findings.get(r.finding_id)
        if f is None or f.status != "open":
            skipped.append(r.id)
        elif r.destination not in dests:
            lost.append(r.id)
        else:
            a = from_store(f, firsts.get(f.id), public_url)
            groups.setdefault(r.destination, (dests[r.destination], []))[1].append((r.id, a))
    _close(store, skipped, "skipped", "the finding was triaged before it was sent", clock)
    _close(store, lost, "failed", "the destination is no longer configured", clock)
    tally.gave_up += len(lost)
    tally += _send_groups(store, cfg, groups, public_url, clock)
    return tally


# --- the outbox -----------------------------------------------------------------------


def _alert_new(
    store: Store,
    cfg: AlertsConfig,
    found: Sequence[Finding],
    public_url: str | None,
    clock: Clock,
) -> Tally:
    if not found or cfg.slack is None:
        return Tally()
    with store.sessions() as s:
        firsts = _first_occurrences(s, [f.id for f in found])
    alerts = [from_store(f, firsts.get(f.id), public_url) for f in found]
    routed: list[tuple[Destination, Alert]] = []
    for a in alerts:
        d = route(cfg, a.severity, a.source)
        if d is not None:
            routed.append((d, a))
    claimed = _claim(store, [(a.finding_id, d.name) for d, a in routed], clock() + _lease(cfg))
    groups: dict[str, tuple[Destination, list[tuple[int, Alert]]]] = {}
    for d, a in routed:
        row_id = claimed.get((a.finding_id, d.name))
        if row_id is not None:  # else another process, or an earlier call, has it
            groups.setdefault(d.name, (d, []))[1].append((row_id, a))
    return _send_groups(store, cfg, groups, public_url, clock)


def _claim(
    store: Store, pairs: Sequence[tuple[int, str]], lease_until: datetime
) -> dict[tuple[int, str], int]:
    """Insert a pending row per (finding id, destination); the ones this call inserted,
    with their row ids. A pair another caller holds already is left out."""
    from sentinel.store.session import writing

    out: dict[tuple[int, str], int] = {}
    if not pairs:
        return out
    now = utcnow()
    with store.sessions() as s:
        writing(s)
        insert = _dialect_insert(s)
        for i in range(0, len(pairs), _CHUNK):
            values = [
                {
                    "finding_id": fid,
                    "destination": dest,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": lease_until,
                }
                for fid, dest in pairs[i : i + _CHUNK]
            ]
            stmt = (
                insert(AlertDelivery.__table__)
                .values(values)
                .on_conflict_do_nothing(index_elements=["finding_id", "destination"])
                .returning(
                    AlertDelivery.__table__.c.id,
                    AlertDelivery.__table__.c.finding_id,
                    AlertDelivery.__table__.c.destination,
                )
            )
            for row in s.execute(stmt):
                out[(row.finding_id, row.destination)] = row.id
        s.commit()
    return out


def _dialect_insert(session: Session) -> Any:
    if session.connection().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _send_groups(
    store: Store,
    cfg: AlertsConfig,
    groups: dict[str, tuple[Destination, list[tuple[int, Alert]]]],
    public_url: str | None,
    clock: Clock,
) -> Tally:
    tally = Tally()
    for dest, items in groups.values():
        row_of = {a.finding_id: row_id for row_id, a in items}
        for msg in messages_for(dest, [a for _, a in items], cfg, findings_url(public_url)):
            result = send(msg, cfg)
            tally += _record(store, cfg, [row_of[f] for f in msg.finding_ids], result, clock)
    if tally:
        log.info(
            "alerts: %d sent, %d to retry, %d given up", tally.sent, tally.failed, tally.gave_up
        )
    return tally


def _record(
    store: Store, cfg: AlertsConfig, row_ids: list[int], result: SendResult, clock: Clock
) -> Tally:
    """One send's outcome onto its rows: sent, or one more failed attempt (retried
    later, or given up once ``max_attempts`` is reached)."""
    from sqlalchemy import select, update

    from sentinel.store.session import writing

    assert cfg.slack is not None
    t = clock()
    tally = Tally()
    with store.sessions() as s:
        writing(s)
        if result.ok:
            for chunk in _chunks(row_ids):
                s.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.id.in_(chunk))
                    .values(
                        status="sent",
                        sent_at=t,
                        attempts=AlertDelivery.attempts + 1,
                        last_error=None,
                        next_attempt_at=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            s.commit()
            tally.sent = len(row_ids)
            return tally
        error = _one_line(result.error or "failed")
        by_attempts: dict[int, list[int]] = {}
        for chunk in _chunks(row_ids):
            for rid, n in s.execute(
                select(AlertDelivery.id, AlertDelivery.attempts).where(AlertDelivery.id.in_(chunk))
            ):
                by_attempts.setdefault(n + 1, []).append(rid)
        for attempts, ids in by_attempts.items():
            done = attempts >= cfg.slack.max_attempts
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_error": error,
                "status": "failed" if done else "retry",
                "next_attempt_at": None if done else t + backoff(cfg, attempts, result.retry_after),
            }
            for chunk in _chunks(ids):
                s.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.id.in_(chunk))
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            if done:
                tally.gave_up += len(ids)
            else:
                tally.failed += len(ids)
        s.commit()
    if tally.gave_up:
        log.warning(
            "alerts: gave up on %d delivery(ies) to %s: %s",
            tally.gave_up,
            result.destination,
            error,
        )
    return tally


def _close(store: Store, row_ids: list[int], status: str, why: str, clock: Clock) -> None:
    from sqlalchemy import update

    from sentinel.store.session import writing

    if not row_ids:
        return
    with store.sessions() as s:
        writing(s)
        for chunk in _chunks(row_ids):
            s.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id.in_(chunk))
                .values(status=status, last_error=why, next_attempt_at=None)
                .execution_options(synchronize_session=False)
            )
        s.commit()


# --- reading --------------------------------------------------------------------------


def _by_id(s: Session, ids: list[int]) -> dict[int, Finding]:
    from sqlalchemy import select

    out: dict[int, Finding] = {}
    for chunk in _chunks(ids):
        for f in s.scalars(select(Finding).where(Finding.id.in_(chunk))):
            out[f.id] = f
    return out


def _first_occurrences(s: Session, finding_ids: list[int]) -> dict[int, Occurrence]:
    """Each finding's first occurrence (lowest id): where the alert places it."""
    from sqlalchemy import func, select

    out: dict[int, Occurrence] = {}
    for chunk in _chunks(finding_ids):
        first = (
            select(func.min(Occurrence.id))
            .where(Occurrence.finding_id.in_(chunk))
            .group_by(Occurrence.finding_id)
        )
        for o in s.scalars(select(Occurrence).where(Occurrence.id.in_(first))):
            out[o.finding_id] = o
    return out


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]
