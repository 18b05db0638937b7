"""Findings: list with filters and cursor pagination, get one with its occurrences,
triage (ignore / false positive with a reason, reopen).

A finding is shown by its keyed fingerprint and its redacted preview; its value (kept
sealed for rotatable rules) never leaves the store through this API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from sentinel.api.deps import (
    Principal,
    Problem,
    RowId,
    audit,
    require,
    store_of,
)
from sentinel.store import queries
from sentinel.store.models import Finding

router = APIRouter(prefix="/v1/findings", tags=["findings"])

Status = Literal[
    "open",
    "ignored",
    "false_positive",
    "rotating",
    "rotated",
    "revoked",
    "rotation_failed",
    "remediation_required",
]
Severity = Literal["critical", "high", "medium", "low", "info"]
Confidence = Literal["high", "medium", "low"]
Source = Literal["git", "file", "image", "k8s"]


class FindingOut(BaseModel):
    """One distinct secret (never its value)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    fingerprint: str
    fingerprint_key_id: str
    rule_id: str
    description: str
    severity: str
    confidence: str
    redacted: str
    status: str
    first_seen: datetime
    last_seen: datetime
    triaged_by: str | None
    triaged_at: datetime | None
    triage_reason: str | None
    first_scan_id: str | None
    rotator: str | None
    value_kept: bool = Field(description="the value is kept sealed, for rotation")

    @classmethod
    def of(cls, f: Finding) -> FindingOut:
        return cls.model_construct(**_fields_of(f))


_FINDING_FIELDS = tuple(k for k in FindingOut.model_fields if k != "value_kept")
_LISTED_FIELDS = (*_FINDING_FIELDS, "value_kept")


def _listed(row: Any) -> dict[str, Any]:
    """FindingOut's fields of a listing's row (``queries.list_findings``)."""
    m = row._mapping
    return {k: m[k] for k in _LISTED_FIELDS}


def _listed_all(rows: list[Any]) -> list[dict[str, Any]]:
    """``_listed`` of a page's rows, zipped with their column names: a listing reads
    exactly FindingOut's fields (a test holds it to that)."""
    if not rows:
        return []
    names = rows[0]._fields
    # tuple(r) first: iterating a Row itself is twice as slow
    return [dict(zip(names, tuple(r), strict=True)) for r in rows]


def _occurrence(row: Any) -> dict[str, Any]:
    """OccurrenceOut's fields of an ``queries.occurrences_of`` row."""
    return dict(zip(row._fields, tuple(row), strict=True))


def _fields_of(f: Finding) -> dict[str, Any]:
    """FindingOut's fields of a stored finding, for ``model_construct``: constructed, not
    validated, since the row's columns have these types already (validating every field
    of every row was a tenth of a list's cost)."""
    return {
        **{k: getattr(f, k) for k in _FINDING_FIELDS},
        "value_kept": f.secret_sealed is not None,
    }


def _json(doc: dict[str, Any]) -> Response:
    """The answer as JSON, straight from the store's rows: the reads build no model per
    row (constructing and dumping FindingOut for each row of a page was a fifth of a
    listing's cost). pydantic-core's serializer writes what the models would (times in
    ISO 8601); the OpenAPI document still names the response models, and a test holds
    every answer to them."""
    from pydantic_core import to_json

    return Response(to_json(doc), media_type="application/json")


class OccurrenceOut(BaseModel):
    """One place a finding appears."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    target: str
    commit: str | None
    image: str | None
    layer: str | None
    cluster: str | None
    namespace: str | None
    kind: str | None
    name: str | None
    key: str | None
    path: str
    line: int
    column: int
    author: str | None
    email: str | None
    date: str | None
    first_seen: datetime
    last_seen: datetime
    last_scan_id: str | None
    gone_at: datetime | None


class FindingPage(BaseModel):
    items: list[FindingOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class FindingDetail(FindingOut):
    occurrences: list[OccurrenceOut]
    occurrences_total: int
    occurrences_present: int = Field(description="occurrences not marked gone")
    occurrences_next_cursor: str | None = Field(
        description="pass as `occurrences_cursor` for the next page of occurrences"
    )


class TriageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "ignored", "false_positive"]
    reason: str | None = Field(
        None,
        max_length=queries.MAX_REASON,
        description="required for ignored and false_positive",
    )


def _utc(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _query_error(exc: queries.QueryError) -> Problem:
    return Problem(422, "Invalid request", str(exc))


# The two reads below run on the event loop itself, not in the thread pool: a page is a
# fraction of a millisecond of database work, less than a thread-pool hop and the GIL
# handoffs between the pool's threads cost (they tripled a request's CPU under load).
# Each read opens, uses and closes its session without an await in between, on the
# store's loop pool (Store.loop_session), so it holds the loop only while it queries;
# a serving process answers one read at a time, and `sentinel serve --processes N` uses
# N cores.


@router.get("", response_model=FindingPage, summary="List findings")
async def list_findings(
    request: Request,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    status: Status | None = None,
    severity: Severity | None = None,
    confidence: Confidence | None = None,
    rule: Annotated[
        str | None, Query(max_length=200, description="a rule id, or a prefix ending in *")
    ] = None,
    source: Source | None = None,
    target: Annotated[
        str | None, Query(max_length=4096, description="an occurrence's exact target")
    ] = None,
    since: Annotated[datetime | None, Query(description="last seen at or after")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in the rule id or preview")
    ] = None,
    sort: Literal["last_seen", "first_seen", "severity"] = "last_seen",
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> FindingPage:
    flt = queries.FindingFilter(
        status=status,
        severity=severity,
        confidence=confidence,
        rule=rule,
        source=source,
        target=target,
        since=_utc(since),
        q=q,
    )
    try:
        page = store_of(request).loop_read(
            lambda s: queries.list_findings(
                s, flt, sort=sort, order=order, limit=limit, cursor=cursor
            )
        )
    except queries.QueryError as exc:
        raise _query_error(exc) from None
    items = _listed_all(page.items)
    return _json({"items": items, "next_cursor": page.next_cursor})  # type: ignore[return-value]


@router.get("/{finding_id}", response_model=FindingDetail, summary="A finding and its occurrences")
async def get_finding(
    finding_id: RowId,
    request: Request,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    occurrences_limit: Annotated[
        int, Query(ge=1, le=queries.OCCURRENCES_PAGE)
    ] = queries.OCCURRENCES_PAGE,
    occurrences_cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> FindingDetail:

    def read(session: Session) -> tuple[Any, queries.Page[Any]]:
        row = queries.finding_row(session, finding_id)
        page = queries.occurrences_of(
            session, finding_id, limit=occurrences_limit, cursor=occurrences_cursor
        )
        return row, page

    try:
        row, page = store_of(request).loop_read(read)
    except queries.NotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except queries.QueryError as exc:
        raise _query_error(exc) from None
    m = row._mapping
    detail = _listed(row)
    detail["occurrences"] = [_occurrence(o) for o in page.items]
    detail["occurrences_total"] = int(m["occurrences_total"])
    detail["occurrences_present"] = int(m["occurrences_present"])
    detail["occurrences_next_cursor"] = page.next_cursor
    return _json(detail)  # type: ignore[return-value]


@router.patch("/{finding_id}", response_model=FindingOut, summary="Triage a finding")
async def triage_finding(
    finding_id: RowId,
    body: TriageIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("findings:write"))],
) -> FindingOut:
    """On the event loop like the reads when the lock is free (a thread-pool hop cost
    a triage several turns of a busy loop, 300 ms under load). A lock another write
    holds is tried again a few times a few milliseconds apart (another process's triage
    holds it about a millisecond), the loop serving others meanwhile; past that the
    triage goes to a thread and waits for the lock as long as it takes."""
    import asyncio

    from starlette.concurrency import run_in_threadpool

    from sentinel.store.session import lock_busy

    store = store_of(request)
    for pause in (*_LOCK_RETRY_PAUSES, None):
        try:
            return _triage(store.loop_session(), True, finding_id, body, request, principal)
        except Exception as exc:
            if not lock_busy(exc):
                raise
        if pause is not None:
            await asyncio.sleep(pause)
    return await run_in_threadpool(
        _triage, store.sessions(), False, finding_id, body, request, principal
    )


# seconds between the loop's attempts at a triage's lock, before it goes to a thread
_LOCK_RETRY_PAUSES = (0.002, 0.004, 0.008, 0.016)


def _triage(
    session: Session,
    nowait: bool,
    finding_id: int,
    body: TriageIn,
    request: Request,
    principal: Principal,
) -> Any:
    from sentinel.store.session import writing, writing_nowait

    with session as s:
        (writing_nowait if nowait else writing)(s)
        try:
            t = queries.triage(s, finding_id, body.status, reason=body.reason, who=principal.actor)
        except queries.NotFound as exc:
            raise Problem(404, "Not found", str(exc)) from None
        except queries.Conflict as exc:
            raise Problem(409, "Conflict", str(exc)) from None
        except queries.QueryError as exc:
            raise _query_error(exc) from None
        audit(
            s,
            principal,
            request,
            "finding.triage",
            "finding",
            str(finding_id),
            {"from": t.previous, "to": body.status, "reason": t.finding.triage_reason},
        )
        s.commit()
        return _json(FindingOut.of(t.finding).model_dump(mode="json"))
