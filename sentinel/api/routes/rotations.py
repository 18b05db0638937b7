"""Rotations: start one for a finding (``POST /v1/findings/{id}/rotate``, scope
``rotations:write``; ``dry_run`` answers the plan and touches nothing), list them, show
one with every step's state, retry a failed one, and the managed credentials.

A rotation runs on this process in the background once requested (202, ``Location``
names it); the scheduler's leader resumes it after a crash and runs its retries. No
answer carries a secret: a credential is shown by its public part (an access key id)
or its redacted preview.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sentinel.api.deps import Principal, Problem, RowId, audit, require, settings_of, store_of

router = APIRouter(tags=["rotations"])
RotationId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(False, description="answer the plan; touch nothing")


class StepOut(BaseModel):
    name: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    detail: dict[str, Any]


class RotationOut(BaseModel):
    id: str
    finding_id: int | None
    findings: list[int]
    managed: str | None
    rotator: str
    mode: str = Field(description="rotate, revoke (revoke-only provider) or manual")
    status: str
    store: str | None
    path: str | None
    identity: str | None
    exposed: str = Field(description="the exposed credential's public part")
    replacement: str | None = Field(description="the replacement's public part")
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    purge_after: datetime | None
    last_error: str | None
    remediation: dict[str, Any] | None
    steps: list[StepOut]


class RotationList(BaseModel):
    items: list[RotationOut]
    next_cursor: str | None


class PlanOut(BaseModel):
    dry_run: bool = True
    plan: dict[str, Any]


class ManagedOut(BaseModel):
    name: str
    rotator: str
    store: str
    path: str
    max_age_days: float
    last_rotated_at: datetime | None
    next_due_at: datetime | None
    last_rotation_id: str | None
    rotations: int


class ManagedList(BaseModel):
    items: list[ManagedOut]


def rotations_of(request: Request) -> Any:
    rot = getattr(request.app.state, "rotations", None)
    if rot is None:
        from sentinel.jobs.rotation import for_service

        rot = for_service(store_of(request), settings_of(request))
        request.app.state.rotations = rot
    return rot


@router.post(
    "/v1/findings/{finding_id}/rotate",
    status_code=202,
    response_model=RotationOut | PlanOut,
    summary="Rotate (or revoke) a finding's credential",
    responses={
        200: {"model": PlanOut, "description": "the plan (dry_run), nothing touched"},
        404: {"description": "no such finding"},
        409: {"description": "the rotation cannot start as configured"},
    },
)
def rotate_finding(
    finding_id: RowId,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("rotations:write"))],
    body: RotateBody | None = None,
) -> RotationOut | PlanOut:
    from sentinel.errors import ConfigError
    from sentinel.jobs.rotation import NotFound
    from sentinel.store.session import writing

    rot = rotations_of(request)
    store = store_of(request)
    dry = bool(body and body.dry_run)
    try:
        if dry:
            response.status_code = 200
            return PlanOut(plan=rot.plan(finding_id))
        out = rot.request(finding_id, f"token:{principal.name}")
    except NotFound:
        raise Problem(404, "Not found", "no finding with that id") from None
    except ConfigError as exc:
        raise Problem(409, "Rotation not possible", str(exc)) from None
    with store.sessions() as s:
        writing(s)
        audit(
            s,
            principal,
            request,
            "rotation.request",
            "rotation",
            out.rotation_id,
            {"finding": finding_id, "created": out.created},
        )
        s.commit()
    if out.view["mode"] != "manual" and out.view["status"] in ("pending", "waiting", "running"):
        rot.kick([out.rotation_id])
    response.headers["Location"] = f"/v1/rotations/{out.rotation_id}"
    if not out.created:
        response.status_code = 200  # the credential's rotation exists: this is it
    return RotationOut.model_validate(out.view)


@router.get("/v1/rotations", response_model=RotationList, summary="Rotations, newest first")
def list_rotations(
    request: Request,
    _p: Annotated[Principal, Depends(require("findings:read"))],
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=36)] = None,
) -> RotationList:
    from sentinel.store.rotations import listing

    rows = listing(store_of(request), status=status, limit=limit + 1, before=cursor)
    nxt = rows[limit - 1]["id"] if len(rows) > limit else None
    return RotationList(
        items=[RotationOut.model_validate(r) for r in rows[:limit]], next_cursor=nxt
    )


@router.get(
    "/v1/rotations/managed",
    response_model=ManagedList,
    summary="Managed credentials: last rotated, next due",
)
def managed(
    request: Request, _p: Annotated[Principal, Depends(require("findings:read"))]
) -> ManagedList:
    rows = rotations_of(request).managed_views()
    return ManagedList(items=[ManagedOut.model_validate(m) for m in rows])


@router.get(
    "/v1/rotations/{rotation_id}",
    response_model=RotationOut,
    summary="One rotation with every step's state",
    responses={404: {"description": "no such rotation"}},
)
def get_rotation(
    rotation_id: RotationId,
    request: Request,
    _p: Annotated[Principal, Depends(require("findings:read"))],
) -> RotationOut:
    from sentinel.store.rotations import view

    v = view(store_of(request), rotation_id)
    if v is None:
        raise Problem(404, "Not found", "no rotation with that id")
    return RotationOut.model_validate(v)


@router.post(
    "/v1/rotations/{rotation_id}/retry",
    status_code=202,
    response_model=RotationOut,
    summary="Run a failed or rolled-back rotation again",
    responses={404: {"description": "no such rotation"}, 409: {"description": "not failed"}},
)
def retry_rotation(
    rotation_id: RotationId,
    request: Request,
    principal: Annotated[Principal, Depends(require("rotations:write"))],
) -> RotationOut:
    from sentinel.store.rotations import view
    from sentinel.store.session import writing

    store = store_of(request)
    rot = rotations_of(request)
    if view(store, rotation_id) is None:
        raise Problem(404, "Not found", "no rotation with that id")
    if not rot.retry(rotation_id, f"token:{principal.name}"):
        raise Problem(409, "Not retryable", "only a failed or rolled-back rotation is retried")
    with store.sessions() as s:
        writing(s)
        audit(s, principal, request, "rotation.retry", "rotation", rotation_id, {})
        s.commit()
    rot.kick([rotation_id])
    v = view(store, rotation_id)
    assert v is not None
    return RotationOut.model_validate(v)
