"""Schedules: the ``[[schedules]]`` of this service's config with their next run (from
the scheduler's job store, whichever process leads) and latest scan; run one now
(202, queued on this process's job runner like ``POST /v1/scans``; 429 when full)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from sentinel.api.deps import Principal, Problem, audit, db_session, require, settings_of, store_of
from sentinel.api.routes.scans import ScanAccepted

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
DB = Annotated[Session, Depends(db_session)]
Name = Annotated[str, Path(min_length=1, max_length=100)]


class LastScan(BaseModel):
    id: str
    status: str
    created_at: datetime


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    kind: str
    target: str
    enabled: bool
    next_run: datetime | None = Field(
        description="when it runs next; null while disabled or before a leader has stored it"
    )
    last_scan: LastScan | None


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


@router.get("", response_model=ScheduleList, summary="The configured schedules")
def list_schedules(
    request: Request,
    session: DB,
    _p: Annotated[Principal, Depends(require("findings:read"))],
) -> ScheduleList:
    from sentinel.jobs.scheduler import views

    items = []
    for v in views(session, settings_of(request)):
        last = None
        if v.last_scan_id and v.last_scan_status and v.last_scan_at:
            last = LastScan(id=v.last_scan_id, status=v.last_scan_status, created_at=v.last_scan_at)
        items.append(
            ScheduleOut(
                name=v.name,
                cron=v.cron,
                timezone=v.timezone,
                kind=v.kind,
                target=v.target,
                enabled=v.enabled,
                next_run=v.next_run if v.enabled else None,
                last_scan=last,
            )
        )
    return ScheduleList(items=items)


@router.post(
    "/{name}/run",
    status_code=202,
    response_model=ScanAccepted,
    summary="Run a schedule's scan now",
    responses={
        404: {"description": "no such schedule"},
        422: {"description": "target refused"},
        429: {"description": "queue full"},
    },
)
def run_schedule(
    name: Name,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("scans:write"))],
) -> ScanAccepted:
    from sentinel.api.targets import TargetRefused
    from sentinel.jobs.base import QueueFull
    from sentinel.jobs.scheduler import find, queue_scan
    from sentinel.store.session import writing

    settings = settings_of(request)
    sch = find(settings, name)
    if sch is None:
        raise Problem(404, "Not found", "no schedule of that name is configured")
    runner = getattr(request.app.state, "jobs", None)
    if runner is None:
        raise Problem(503, "Unavailable", "this service runs no scans (no job runner)")
    store = store_of(request)
    try:
        sid = queue_scan(store, settings, runner, sch)
    except TargetRefused as exc:
        raise Problem(422, "Scan target refused", str(exc)) from None
    except QueueFull as exc:
        raise Problem(
            429,
            "Too many scans",
            f"the scan queue is full ({exc.depth} waiting); retry after {exc.retry_after} s",
            {"Retry-After": str(exc.retry_after)},
        ) from None
    with store.sessions() as s:
        writing(s)
        audit(s, principal, request, "schedule.run", "scan", sid, {"schedule": sch.name})
        s.commit()
    location = f"/v1/scans/{sid}"
    response.headers["Location"] = location
    return ScanAccepted(id=sid, status="queued", location=location)
