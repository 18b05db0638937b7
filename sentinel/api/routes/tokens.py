"""Tokens: create (shown once), list, revoke. Admin only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.api import tokens
from sentinel.api.deps import (
    Principal,
    Problem,
    RowId,
    audit,
    db_session,
    forget_tokens,
    require,
)
from sentinel.store.models import ApiToken

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=5)
    expires: str | None = Field("90d", max_length=20, description="90d, 12h, 30m or never")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown this once, never again")


class TokenList(BaseModel):
    items: list[TokenOut]


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(
    body: TokenCreate,
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
    session: Annotated[Session, Depends(db_session)],
) -> TokenCreated:
    from sentinel.store.session import writing

    try:
        scopes = tokens.parse_scopes(body.scopes)
        expires = tokens.parse_expiry(body.expires)
        session.rollback()
        writing(session)
        made = tokens.make(session, body.name, scopes, expires, principal.actor)
    except tokens.TokenError as exc:
        raise Problem(422, "Invalid request", str(exc)) from None
    audit(
        session,
        principal,
        request,
        "token.create",
        "token",
        str(made.row.id),
        {"name": made.row.name, "scopes": scopes},
    )
    session.commit()
    return TokenCreated(**TokenOut.model_validate(made.row).model_dump(), token=made.token)


@router.get("", response_model=TokenList)
def list_tokens(
    _p: Annotated[Principal, Depends(require("admin"))],
    session: Annotated[Session, Depends(db_session)],
) -> TokenList:
    rows = session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
    return TokenList(items=[TokenOut.model_validate(r) for r in rows])


@router.delete("/{token_id}", response_model=TokenOut)
def revoke_token(
    token_id: RowId,
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
    session: Annotated[Session, Depends(db_session)],
) -> TokenOut:
    from sentinel.store.session import writing

    session.rollback()
    writing(session)
    row = session.get(ApiToken, token_id)
    if row is None:
        raise Problem(404, "Not found", f"no token {token_id}")
    if tokens.revoke(row):
        audit(session, principal, request, "token.revoke", "token", str(row.id), {"name": row.name})
    session.commit()
    forget_tokens(request)
    return TokenOut.model_validate(row)
