"""The HTTP API, assembled: one router per resource under ``/v1``, health and metrics at
the root, JSON problems for every error, a body size cap. Nothing else lives here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store


def create_app(
    store: Store, settings: ServiceSettings | None = None, runner: Any = None
) -> FastAPI:
    import logging

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from sentinel.api import routes
    from sentinel.api.access import AccessLog
    from sentinel.api.deps import install_problems, problem_response
    from sentinel.api.limits import BodyLimit, UrlGuard
    from sentinel.api.metrics import Metrics
    from sentinel.settings import ServiceSettings

    settings = settings or ServiceSettings()
    threads = settings.service.api_threads

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # the threads sync routes run in (anyio's default is 40): more only queue on the
        # GIL and the database, and the wait of each request grows with them
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Sentinel",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        description="Secrets found in git history, images and clusters: scans, findings, "
        "tokens and the audit log. Every route but /healthz, /readyz and /metrics needs a "
        "bearer token with the scope it names.",
    )
    install_problems(app)
    log = logging.getLogger("sentinel.api")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # never a traceback in an answer; the log names the route and the type only
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(500, "Internal error", "the server met an unexpected error")

    for router in routes.all_routers():
        app.include_router(router)
    app.state.store = store
    app.state.settings = settings
    app.state.runner = runner
    app.state.jobs = runner
    app.state.metrics = Metrics(store, runner)
    # called with the scan id after a scan is stored inside this process (a reported
    # scan, a hook event); scans run by the job runner go through runner.on_done
    app.state.on_ingest = []
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.service.max_body_bytes,
        per_path={"/v1/events": settings.service.max_event_bytes},
    )
    app.add_middleware(UrlGuard)
    app.add_middleware(AccessLog)
    return app
