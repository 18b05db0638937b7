"""Scans: run one inside the service (``POST /v1/scans``: 202, queued on the job runner,
429 with Retry-After when its queue is full), list and get them, and receive what
``sentinel scan ... --report-to URL`` posts (``POST /v1/scans/reports``).

A report carries each secret's value, because the service fingerprints it under its
own key (the CLI's may differ) and seals the rotatable ones. The values go from the
body into ``record_result`` and nowhere else: not into the Scan row, a log line, an
error or the answer. A body that fails validation is answered without echoing it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from sentinel.api.deps import (
    Principal,
    Problem,
    audit,
    db_session,
    require,
    settings_of,
    store_of,
    validation_detail,
)
from sentinel.store import queries
from sentinel.store.models import Scan

log = logging.getLogger("sentinel.api")
router = APIRouter(prefix="/v1/scans", tags=["scans"])
DB = Annotated[Session, Depends(db_session)]

Kind = Literal["git", "image", "k8s", "path"]
MAX_REPORTED = 100_000


class ScanOptions(BaseModel):
    """What a scan may be told besides its target; each applies to one kind."""

    model_config = ConfigDict(extra="forbid")

    branch: str | None = Field(None, max_length=255, description="git: scan this branch only")
    since: str | None = Field(None, max_length=40, description="git: commits since this date")
    platform: str | None = Field(None, max_length=64, description="image: os/arch[/variant]")
    insecure_registry: bool | None = Field(
        None, description="image: plain HTTP (loopback or allowlisted registries only)"
    )
    cluster: bool | None = Field(
        None, description="k8s: target is a context of the service's kubeconfig"
    )
    namespaces: list[str] | None = Field(None, max_length=100, description="k8s cluster")
    include_secrets: bool | None = Field(None, description="k8s cluster: list Secrets too")


class ScanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    target: str = Field(
        min_length=1,
        max_length=2048,
        description="git: https:// or ssh:// URL, user@host:path, or a path under a scan "
        "root; path / k8s manifests: a path under a scan root; image: a registry "
        "reference; k8s cluster: a context name",
    )
    options: ScanOptions = Field(default_factory=lambda: ScanOptions.model_validate({}))


class ScanAccepted(BaseModel):
    id: str
    status: str
    location: str


class ScanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    target: str
    params: dict[str, Any]
    requested_by: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    stats: dict[str, Any]
    errors: list[str]
    exit_code: int | None
    findings_new: int
    occurrences_new: int
    occurrences_seen: int
    occurrences_gone: int


class ScanPage(BaseModel):
    items: list[ScanOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ReportedOccurrence(BaseModel):
    """One occurrence as ``Occurrence.to_dict(show_secret=True)`` writes it. The
    reporter's fingerprint and preview are not trusted: both are made again here."""

    model_config = ConfigDict(extra="ignore")

    rule_id: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    severity: Literal["critical", "high", "medium", "low", "info"]
    confidence: Literal["high", "medium", "low"]
    secret: str = Field(min_length=1, max_length=64 * 1024)
    source: Literal["git", "file", "image", "k8s"]
    path: str = Field("", max_length=4096)
    line: int = Field(0, ge=0)
    column: int = Field(0, ge=0)
    end_line: int = Field(0, ge=0)
    end_column: int = Field(0, ge=0)
    entropy: float = 0.0
    commit: str | None = Field(None, max_length=64)
    author: str | None = Field(None, max_length=500)
    email: str | None = Field(None, max_length=500)
    date: str | None = Field(None, max_length=40)
    object_type: str | None = Field(None, max_length=20)
    repository: str | None = Field(None, max_length=4096)
    image: str | None = Field(None, max_length=4096)
    layer: str | None = Field(None, max_length=100)
    layer_index: int | None = None
    cluster: str | None = Field(None, max_length=1000)
    document: int | None = None
    namespace: str | None = Field(None, max_length=253)
    kind: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=253)
    key: str | None = Field(None, max_length=1000)


class ReportIn(BaseModel):
    """What ``sentinel scan ... --report-to`` posts (sentinel.cli.report_to.body)."""

    model_config = ConfigDict(extra="ignore")

    kind: Kind
    target: str = Field(min_length=1, max_length=8192)
    params: dict[str, Any] = Field(default_factory=dict)
    complete: bool = False
    started_at: datetime | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    findings: list[ReportedOccurrence] = Field(default_factory=list, max_length=MAX_REPORTED)


class ReportStored(BaseModel):
    id: str
    findings_new: int
    findings_seen: int
    occurrences_new: int
    occurrences_seen: int
    occurrences_gone: int
    values_sealed: int
    values_not_kept: int = Field(description="rotatable values not kept: no encryption key")


def rebuild(report: ReportIn, key: bytes) -> Any:
    """The report as a ScanResult, fingerprinted under ``key`` (the service's)."""
    from sentinel.fingerprint import fingerprint, redact
    from sentinel.models import Occurrence, Origin, ScanResult

    occs = []
    for r in report.findings:
        origin = Origin(
            source=r.source,
            path=r.path,
            commit=r.commit,
            author=r.author,
            email=r.email,
            date=r.date,
            object_type=r.object_type,
            repository=r.repository,
            image=r.image,
            layer=r.layer,
            layer_index=r.layer_index,
            cluster=r.cluster,
            document=r.document,
            namespace=r.namespace,
            kind=r.kind,
            name=r.name,
            key=r.key,
        )
        occs.append(
            Occurrence(
                rule_id=r.rule_id,
                description=r.description,
                severity=r.severity,
                confidence=r.confidence,
                fingerprint=fingerprint(r.secret.encode("utf-8", "surrogatepass"), key),
                redacted=redact(r.secret),
                origin=origin,
                line=r.line,
                column=r.column,
                end_line=r.end_line,
                end_column=r.end_column,
                entropy=r.entropy,
                secret=r.secret,
            )
        )
    stats = {k: v for k, v in report.stats.items() if k != "findings"}
    return ScanResult(occurrences=occs, stats=stats)


def scan_out(scan: Scan) -> ScanOut:
    return ScanOut.model_validate(scan)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


@router.post(
    "",
    status_code=202,
    response_model=ScanAccepted,
    summary="Run a scan inside the service",
    responses={422: {"description": "target refused"}, 429: {"description": "queue full"}},
)
def create_scan(
    body: ScanCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("scans:write"))],
) -> ScanAccepted:
    from sentinel.api.targets import TargetRefused, check_scan
    from sentinel.jobs.base import QueueFull
    from sentinel.store.facade import new_scan_id
    from sentinel.store.session import writing

    settings = settings_of(request)
    try:
        checked = check_scan(
            body.kind, body.target, body.options.model_dump(exclude_none=True), settings.service
        )
    except TargetRefused as exc:
        raise Problem(422, "Scan target refused", str(exc)) from None
    runner = getattr(request.app.state, "jobs", None)
    if runner is None:
        raise Problem(503, "Unavailable", "this service runs no scans (no job runner)")
    store = store_of(request)
    sid = new_scan_id()
    with store.sessions() as s:
        writing(s)
        s.add(
            Scan(
                id=sid,
                kind=checked.kind,
                target=checked.target,
                params=checked.params,
                requested_by=principal.actor,
                status="queued",
            )
        )
        s.commit()
    try:
        runner.submit_scan(sid)
    except QueueFull as exc:
        # not accepted: no queued row is left behind for a restart to run
        with store.sessions() as s:
            writing(s)
            row = s.get(Scan, sid)
            if row is not None and row.status == "queued":
                s.delete(row)
            s.commit()
        raise Problem(
            429,
            "Too many scans",
            f"the scan queue is full ({exc.depth} waiting); retry after {exc.retry_after} s",
            {"Retry-After": str(exc.retry_after)},
        ) from None
    with store.sessions() as s:
        writing(s)
        audit(
            s,
            principal,
            request,
            "scan.create",
            "scan",
            sid,
            {"kind": checked.kind, "target": checked.target},
        )
        s.commit()
    location = f"/v1/scans/{sid}"
    response.headers["Location"] = location
    return ScanAccepted(id=sid, status="queued", location=location)


@router.get("", response_model=ScanPage, summary="List scans, newest first")
def list_scans(
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    status: Literal["queued", "running", "succeeded", "failed"] | None = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> ScanPage:
    try:
        page = queries.list_scans(session, status=status, kind=kind, limit=limit, cursor=cursor)
    except queries.QueryError as exc:
        raise Problem(422, "Invalid request", str(exc)) from None
    return ScanPage(items=[scan_out(x) for x in page.items], next_cursor=page.next_cursor)


@router.get("/{scan_id}", response_model=ScanOut, summary="A scan: status, stats, errors")
def get_scan(
    scan_id: str,
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
) -> ScanOut:
    try:
        return scan_out(queries.get_scan(session, scan_id))
    except queries.NotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportStored,
    summary="Store a scan a CLI ran (sentinel scan ... --report-to)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReportIn.model_json_schema()}},
        }
    },
)
async def receive_report(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("scans:write"))],
) -> ReportStored:
    import json

    from starlette.concurrency import run_in_threadpool

    raw = await request.body()
    try:
        report = ReportIn.model_validate(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        # parsed here, not by FastAPI, so that no error can echo a secret back
        detail = (
            validation_detail(exc.errors())
            if isinstance(exc, ValidationError)
            else "the body is not JSON"
        )
        raise Problem(422, "Invalid report", detail) from None
    if any(ord(c) < 32 for c in report.target):
        raise Problem(422, "Invalid report", "target contains control characters")
    stored = await run_in_threadpool(_store_report, request, principal, report)
    response.headers["Location"] = f"/v1/scans/{stored.id}"
    return stored


def after_ingest(request: Request, scan_id: str) -> None:
    """Run the app's after-ingest callbacks (alerts); one failing never fails the
    request that stored the scan, and is logged without its details."""
    for cb in request.app.state.on_ingest:
        try:
            cb(scan_id)
        except Exception as exc:  # a callback's failure is its own to report
            log.error("after-ingest %s failed for scan %s: %s", cb, scan_id, type(exc).__name__)


def _store_report(request: Request, principal: Principal, report: ReportIn) -> ReportStored:
    from sentinel.store.facade import record_result
    from sentinel.store.session import writing

    store = store_of(request)
    result = rebuild(report, store.fingerprint.key)
    scan, res = record_result(
        store,
        kind=report.kind,
        target=report.target,
        result=result,
        requested_by=principal.actor,
        complete=report.complete,
        params=report.params,
        started=_utc(report.started_at),
    )
    with store.sessions() as s:
        writing(s)
        audit(
            s,
            principal,
            request,
            "scan.report",
            "scan",
            scan.id,
            {"kind": report.kind, "occurrences": len(result.occurrences)},
        )
        s.commit()
    log.info("stored reported scan %s: %d occurrence(s)", scan.id, len(result.occurrences))
    after_ingest(request, scan.id)
    return ReportStored(
        id=scan.id,
        findings_new=len(res.new_findings),
        findings_seen=res.findings_seen,
        occurrences_new=res.occurrences_new,
        occurrences_seen=res.occurrences_seen,
        occurrences_gone=res.occurrences_gone,
        values_sealed=res.sealed,
        values_not_kept=res.plaintext_refused,
    )
