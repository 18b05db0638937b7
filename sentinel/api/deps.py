"""What every router needs: the store, settings and job runner (``app.state``), a
database session, bearer-token auth with scopes, audit records and JSON problem answers.

Tokens are ``snt_<lookup>_<secret>``: ``lookup`` finds the row, the SHA-256 of the whole
token is compared in constant time; expired or revoked tokens are 401, a missing scope
403 (``admin`` holds every scope). The token itself is never stored nor logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel.store.models import ApiToken, AuditRecord, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


# a row id in a path: bounded to what the database's BIGINT holds, so a huge number is a
# 422, not an overflow in the driver
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class Problem(Exception):
    """An error answered as ``application/problem+json`` (RFC 9457), one line."""

    def __init__(
        self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    status: int, title: str, detail: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def install_problems(app: FastAPI) -> None:
    """Problem answers for Problem, HTTPException and validation errors; a validation
    error names the field and what is wrong, never the value given (it may be a secret)."""

    async def _problem(_req: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.title, exc.detail, exc.headers)

    async def _http(_req: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code, str(exc.detail), "", dict(exc.headers or {}) or None
        )

    async def _invalid(_req: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(422, "Invalid request", validation_detail(exc.errors()))

    app.add_exception_handler(Problem, _problem)
    # starlette's own (404 for an unknown route, 405) and FastAPI's subclass of it
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)


def validation_detail(errors: Any) -> str:
    if not errors:
        return "the request is not valid"
    err = errors[0]
    where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"[:300]


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def settings_of(request: Request) -> ServiceSettings:
    from sentinel.settings import ServiceSettings

    settings = getattr(request.app.state, "settings", None)
    return settings if settings is not None else ServiceSettings()


async def db_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Made here without a thread-pool hop (a Session connects
    only when first used, in the route's thread); closed in the pool, since closing
    ends its transaction on the database."""
    import anyio.to_thread

    s = store_of(request).sessions()
    try:
        yield s
    finally:
        # threads of their own: a close that waited for the route threads, while they
        # wait for the connections it returns, would deadlock the pool under load
        await anyio.to_thread.run_sync(s.close, limiter=_close_limiter())


_CLOSERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _close_limiter() -> Any:
    """The closing threads' limiter of the running event loop (one per loop: a test
    client runs each app in a loop of its own)."""
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    limiter = _CLOSERS.get(loop)
    if limiter is None:
        limiter = _CLOSERS[loop] = anyio.CapacityLimiter(8)
    return limiter


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, {"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    """The request's token, verified: from this process's cache when it was verified
    within AUTH_CACHE_SECONDS, else from its row, read on the event loop like the
    findings reads (a verification handed to the thread pool waited there behind the
    loop for the GIL, and every request arriving meanwhile missed the cache too)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise _unauthorized("a bearer token is required")
    parts = value.split("_")
    if len(parts) != 3 or parts[0] != "snt" or not parts[1] or len(parts[1]) > 16:
        raise _unauthorized("the token is not valid")
    digest = hashlib.sha256(value.encode()).hexdigest()
    cache = _auth_cache(request)
    hit = cache.get(digest)
    now_m = time.monotonic()
    if hit is not None and now_m - hit[0] < AUTH_CACHE_SECONDS:
        principal, expires_at = hit[1], hit[2]
        if expires_at is None or expires_at > utcnow():
            return principal
    principal, touch = _verify(request, parts[1], digest, cache, now_m)
    if touch is not None:
        # a write may wait on the database's write lock: in a thread, never on the loop
        import anyio.to_thread

        await anyio.to_thread.run_sync(_touch, request, *touch, limiter=_close_limiter())
    return principal


def _verify(
    request: Request,
    lookup: str,
    digest: str,
    cache: dict[str, tuple[float, Principal, Any]],
    now_m: float,
) -> tuple[Principal, tuple[int, Any] | None]:
    """The token's principal, and (row id, now) when its last use should be recorded."""
    from sqlalchemy import select

    row = store_of(request).loop_read(
        lambda s: s.scalars(select(ApiToken).where(ApiToken.lookup == lookup)).first()
    )
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise _unauthorized("the token is not valid")
    now = utcnow()
    if row.revoked_at is not None:
        raise _unauthorized("the token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthorized("the token has expired")
    # at most one write a minute per token, not one per request
    stale = row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60
    principal = Principal(row.id, row.name, frozenset(row.scopes or ()))
    if len(cache) >= AUTH_CACHE_MAX:
        cache.clear()
    cache[digest] = (now_m, principal, row.expires_at)
    return principal, ((row.id, now) if stale else None)


def _touch(request: Request, token_id: int, now: Any) -> None:
    from sentinel.store.session import writing

    with store_of(request).sessions() as s:
        writing(s)
        fresh = s.get(ApiToken, token_id)
        if fresh is not None:
            fresh.last_used_at = now
            s.commit()


# A verified token is taken on trust for this long without reading its row again: at
# the API's request rates the lookup was a tenth of each request's cost. A revocation
# through this process's API clears the cache at once; one made elsewhere (another
# process, `sentinel tokens revoke`) takes effect within this many seconds.
AUTH_CACHE_SECONDS = 2.0
AUTH_CACHE_MAX = 10_000


def _auth_cache(request: Request) -> dict[str, tuple[float, Principal, Any]]:
    state = request.app.state
    cache: dict[str, tuple[float, Principal, Any]] | None = getattr(state, "auth_cache", None)
    if cache is None:
        cache = {}
        state.auth_cache = cache
    return cache


def forget_tokens(request: Request) -> None:
    """Drop every cached token verification (after a revocation)."""
    _auth_cache(request).clear()


def require(scope: str) -> Callable[..., Principal]:
    # async, though it waits on nothing: a sync dependency costs a thread-pool hop
    async def _dep(principal: Principal = Depends(authenticate)) -> Principal:  # noqa: B008
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise Problem(403, "Forbidden", f"this token lacks the scope {scope}")
        return principal

    _dep.scope = scope  # type: ignore[attr-defined]  # read by the route-walk test
    return _dep


def audit(
    session: Session,
    principal: Principal,
    request: Request,
    action: str,
    object_type: str,
    object_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add the audit record of a mutation to ``session`` (committed with it)."""
    session.add(
        AuditRecord(
            token_id=principal.token_id,
            actor=principal.name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            client=request.client.host if request.client else None,
            detail=detail or {},
        )
    )
