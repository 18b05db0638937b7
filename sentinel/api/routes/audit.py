"""The audit log: every mutation, newest first, cursor-paginated. Admin only."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.api.deps import Principal, Problem, db_session, require
from sentinel.store.models import AuditRecord

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    token_id: int | None
    actor: str
    action: str
    object_type: str
    object_id: str
    client: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"a:{last_id}".encode()).decode().rstrip("=")


def _uncursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "a" or not value.isdigit():
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "Invalid request", "cursor: not a cursor this list gave") from None


@router.get("", response_model=AuditPage)
def list_audit(
    _p: Annotated[Principal, Depends(require("admin"))],
    session: Annotated[Session, Depends(db_session)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
) -> AuditPage:
    q = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit + 1)
    if cursor:
        q = q.where(AuditRecord.id < _uncursor(cursor))
    if action:
        q = q.where(AuditRecord.action == action)
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        items=[AuditOut.model_validate(r) for r in rows],
        next_cursor=_cursor(rows[-1].id) if more and rows else None,
    )
