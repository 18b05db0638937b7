"""Hook events: what the pre-receive hook reports (``POST /v1/events``: every blocked
push, break-glass bypass and push let through unscanned), listed and read back.

The body is ``sentinel.events.HookEvent``, the model the hook itself writes. It holds
no secret's value: each finding is a keyed fingerprint and a redacted preview, and the
model refuses any other field. A preview that is not in the shape ``redact`` gives is
redacted again here, so a careless or hostile client cannot put a value into the store
through it. The event id is the hook's: the first delivery is stored (201), a
redelivery (the spool retries after a lost answer) stores nothing and gets the same
answer (200). See ``sentinel.store.events`` for how findings are ingested.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from sentinel.api.deps import (
    Principal,
    Problem,
    audit,
    db_session,
    require,
    store_of,
    validation_detail,
)
from sentinel.events import EventFinding, HookEvent, Kind, RefUpdate
from sentinel.store import queries
from sentinel.store.models import HookEventRecord

log = logging.getLogger("sentinel.api")
router = APIRouter(prefix="/v1/events", tags=["events"])
DB = Annotated[Session, Depends(db_session)]

Verdict = Literal["blocked", "bypassed", "allowed"]
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
# redact(): up to 4 characters of the value and eight stars, or a PEM block's BEGIN line
_PREVIEW = re.compile(r"^[^\n]{0,4}\*{8}$|^-----BEGIN [A-Z0-9 ]{1,60}----- \*{4}$")
_MAX_INT = 2**31 - 1  # the store's integer columns
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class EventFindingOut(EventFinding):
    finding_id: int | None = Field(
        description="the store's finding for this fingerprint (null: not ingested)"
    )


class EventOut(BaseModel):
    """An event as stored: the push, its verdict, and what became of its findings."""

    id: str
    kind: Kind
    verdict: Verdict = Field(description="blocked, bypassed (break-glass) or allowed unscanned")
    cause: str
    reason: str
    repository: str
    pusher: str
    at: datetime = Field(description="when the hook decided")
    received_at: datetime
    received_by: str = Field(description="the token that delivered it")
    refs: list[RefUpdate]
    findings: list[EventFindingOut]
    findings_stored: bool = Field(description="its findings were ingested as occurrences")
    findings_not_stored: str | None = Field(description="why they were not, when not")
    findings_new: int = Field(description="findings this event was the first to report")
    scan_id: str | None = Field(description="the scan (kind hook) holding its occurrences")
    sentinel_version: str


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


def event_out(row: HookEventRecord) -> EventOut:
    p = row.payload or {}
    ev = p.get("event") or {}
    ids = list(p.get("finding_ids") or [])
    findings = [
        EventFindingOut(**f, finding_id=ids[i] if i < len(ids) else None)
        for i, f in enumerate(ev.get("findings") or [])
    ]
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return EventOut(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        verdict=p.get("verdict", "allowed"),
        cause=ev.get("cause", ""),
        reason=row.reason or "",
        repository=row.repository,
        pusher=ev.get("pusher", row.pusher or ""),
        at=at,
        received_at=row.received_at,
        received_by=p.get("received_by", ""),
        refs=[RefUpdate(**u) for u in ev.get("updates") or []],
        findings=findings,
        findings_stored=bool(p.get("findings_stored")),
        findings_not_stored=p.get("findings_not_stored"),
        findings_new=int(p.get("findings_new") or 0),
        scan_id=row.scan_id,
        sentinel_version=ev.get("sentinel_version", "unknown"),
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def checked(doc: Any) -> HookEvent:
    """The event in ``doc``, refused (ValueError, one line, no value echoed) when the
    store could not hold it as given; previews not shaped as ``redact`` makes them are
    redacted again."""
    from sentinel.fingerprint import redact

    event = HookEvent.model_validate(doc)
    for text in _strings(event.model_dump(mode="json")):
        if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise ValueError("a text field holds a NUL or an unpaired surrogate")
    for name in ("repository", "pusher", "cause"):
        if any(ord(c) < 32 or ord(c) == 127 for c in getattr(event, name)):
            raise ValueError(f"{name}: control characters are not allowed")
    if not event.repository.strip():
        raise ValueError("repository: must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for u in event.updates for c in u.ref):
        raise ValueError("updates.ref: control characters are not allowed")
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        raise ValueError("at: not a time the store can hold") from None
    if at < _EARLIEST or at.year >= 9999:
        raise ValueError("at: not a plausible time")
    fixed = []
    for i, f in enumerate(event.findings):
        if not _FINGERPRINT.match(f.fingerprint):
            raise ValueError(f"findings.{i}.fingerprint: not a fingerprint (64 hex digits)")
        if not f.rule_id or any(ord(c) < 32 or ord(c) == 127 for c in f.rule_id):
            raise ValueError(f"findings.{i}.rule_id: empty or with control characters")
        if f.line > _MAX_INT or (f.column or 0) > _MAX_INT:
            raise ValueError(f"findings.{i}: line or column out of range")
        preview = f.redacted if _PREVIEW.match(f.redacted) else redact(f.redacted)
        fixed.append(f.model_copy(update={"redacted": preview}))
    return event.model_copy(update={"at": at, "findings": fixed})


@router.post(
    "",
    status_code=201,
    response_model=EventOut,
    summary="Store a pre-receive hook's event (blocked, bypassed or unscanned push)",
    responses={
        200: {"model": EventOut, "description": "this event id was stored before"},
        422: {"description": "not an event the service can store"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": HookEvent.model_json_schema()}},
        }
    },
)
async def receive_event(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("scans:write"))],
) -> EventOut:
    import json

    from starlette.concurrency import run_in_threadpool

    raw = await request.body()  # BodyLimit caps it (settings.service.max_event_bytes)
    try:
        event = checked(json.loads(raw))
    except ValidationError as exc:
        # parsed here, not by FastAPI, so that no error echoes the body back
        raise Problem(422, "Invalid event", validation_detail(exc.errors())) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Problem(422, "Invalid event", "the body is not JSON (or nested too deep)") from None
    except ValueError as exc:  # checked()'s own one-line reasons, which name no value
        raise Problem(422, "Invalid event", str(exc)) from None
    out, created = await run_in_threadpool(_store_event, request, principal, event)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/events/{out.id}"
    return out


def _store_event(request: Request, principal: Principal, event: HookEvent) -> tuple[EventOut, bool]:
    from sentinel.api.routes.scans import after_ingest
    from sentinel.store.events import VERDICTS, record_event

    def audited(s: Session, row: HookEventRecord) -> None:
        audit(
            s,
            principal,
            request,
            "event.store",
            "event",
            row.id,
            {
                "kind": event.kind,
                "verdict": VERDICTS[event.kind],
                "repository": event.repository[:500],
                "findings": len(event.findings),
                "scan": row.scan_id,
            },
        )

    stored = record_event(store_of(request), event, principal.actor, audited)
    row = stored.record
    if stored.created:
        p = row.payload or {}
        log.info(
            "stored hook event %s (%s): %d finding(s)%s",
            row.id,
            p.get("verdict"),
            len(event.findings),
            "" if p.get("findings_stored") or not event.findings else ", not ingested",
        )
        if p.get("findings_not_stored"):
            log.warning(
                "hook event %s: findings not ingested: %s", row.id, p["findings_not_stored"]
            )
        if row.scan_id:
            after_ingest(request, row.scan_id)
    return event_out(row), stored.created


@router.get("", response_model=EventPage, summary="List hook events, newest first")
def list_events(
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    verdict: Verdict | None = None,
    repository: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> EventPage:
    from sentinel.store import events

    try:
        page = events.list_events(
            session, verdict=verdict, repository=repository, limit=limit, cursor=cursor
        )
    except queries.QueryError as exc:
        raise Problem(422, "Invalid request", str(exc)) from None
    return EventPage(items=[event_out(x) for x in page.items], next_cursor=page.next_cursor)


@router.get("/{event_id}", response_model=EventOut, summary="A hook event")
def get_event(
    event_id: str,
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
) -> EventOut:
    from sentinel.store import events

    try:
        return event_out(events.get_event(session, event_id))
    except queries.NotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
