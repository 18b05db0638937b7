"""Liveness, readiness and metrics: no token (load balancers and Prometheus call them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from sentinel.api.deps import problem_response, store_of

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    schema_revision: str


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"description": "database unreachable or migrations not current"}},
)
def readyz(request: Request) -> Ready | Response:
    from sqlalchemy.exc import SQLAlchemyError

    from sentinel.store import migrate

    try:
        st = migrate.status(store_of(request).engine)
    except SQLAlchemyError:
        return problem_response(503, "Not ready", "the database does not answer")
    if not st.up_to_date:
        return problem_response(
            503,
            "Not ready",
            f"schema at {st.current or 'none'}, not {st.head}: run sentinel db upgrade",
        )
    return Ready(status="ready", schema_revision=st.current or "")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    body, ctype = request.app.state.metrics.render()
    return Response(body, media_type=ctype)
