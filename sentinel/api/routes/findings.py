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
    db_session,
    require,
    store_of,
)
from sentinel.store import queries
from sentinel.store.models import Finding, Occurrence

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
    def of_row(cls, row: Any) -> FindingOut:
        """From a listing's row (``queries.list_findings``)."""
        m = row._mapping
        return cls.model_construct(**{k: m[k] for k in _FINDING_FIELDS}, value_kept=m["value_kept"])

    @classmethod
    def of(cls, f: Finding) -> FindingOut:
        return cls.model_construct(**_fields_of(f))


_FINDING_FIELDS = tuple(k for k in FindingOut.model_fields if k != "value_kept")


def _fields_of(f: Finding) -> dict[str, Any]:
    """FindingOut's fields of a stored finding, for ``model_construct``: constructed, not
    validated, since the row's columns have these types already (validating every field
    of every row was a tenth of a list's cost)."""
    return {
        **{k: getattr(f, k) for k in _FINDING_FIELDS},
        "value_kept": f.secret_sealed is not None,
    }


def _json(model: BaseModel) -> Response:
    """The answer as JSON, serialized once: FastAPI would validate a returned model
    against the response model again first (the models here are built from the store's
    typed rows; the OpenAPI document still names the response model)."""
    return Response(model.model_dump_json(), media_type="application/json")


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


def _occ(o: Occurrence) -> OccurrenceOut:
    return OccurrenceOut.model_validate(o)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _query_error(exc: queries.QueryError) -> Problem:
    return Problem(422, "Invalid request", str(exc))


DB = Annotated[Session, Depends(db_session)]


@router.get("", response_model=FindingPage, summary="List findings")
def list_findings(
    session: DB,
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
        page = queries.list_findings(
            session, flt, sort=sort, order=order, limit=limit, cursor=cursor
        )
    except queries.QueryError as exc:
        raise _query_error(exc) from None
    return _json(  # type: ignore[return-value]
        FindingPage.model_construct(
            items=[FindingOut.of_row(r) for r in page.items], next_cursor=page.next_cursor
        )
    )


@router.get("/{finding_id}", response_model=FindingDetail, summary="A finding and its occurrences")
def get_finding(
    finding_id: RowId,
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    occurrences_limit: Annotated[
        int, Query(ge=1, le=queries.OCCURRENCES_PAGE)
    ] = queries.OCCURRENCES_PAGE,
    occurrences_cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> FindingDetail:
    try:
        f = queries.get_finding(session, finding_id)
        page = queries.occurrences_of(
            session, finding_id, limit=occurrences_limit, cursor=occurrences_cursor
        )
    except queries.NotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except queries.QueryError as exc:
        raise _query_error(exc) from None
    total, present = queries.occurrence_counts(session, finding_id)
    return _json(  # type: ignore[return-value]
        FindingDetail.model_construct(
            **_fields_of(f),
            occurrences=[_occ(o) for o in page.items],
            occurrences_total=total,
            occurrences_present=present,
            occurrences_next_cursor=page.next_cursor,
        )
    )


@router.patch("/{finding_id}", response_model=FindingOut, summary="Triage a finding")
def triage_finding(
    finding_id: RowId,
    body: TriageIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("findings:write"))],
) -> FindingOut:
    from sentinel.store.session import writing

    with store_of(request).sessions() as s:
        writing(s)
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
        return FindingOut.of(t.finding)
