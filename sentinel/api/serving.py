"""One serving process of ``sentinel serve``: the app, its job runner, the work after
each scan and ingest (alerts), and the background work (the scheduler as leader, alert
retries), all stopped with the app.

With ``--processes N`` (N > 1) the parent applies the migrations, binds the socket and
starts N of these under uvicorn's supervisor: ``worker_app`` is the factory each one
imports, reading what the parent was given from the environment. Each process is a
whole service (its own scan pool and runner lease); the database elects one of them to
schedule, and alert deliveries are claimed in the database, so N processes behave as
one. Prometheus counters are then shared through files in PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

ENV_CONFIG = "SENTINEL_SERVE_CONFIG"  # the parent's --config, for its worker processes
SWITCH_INTERVAL = 0.001  # seconds; see assemble


def assemble(store: Store, settings: ServiceSettings) -> tuple[FastAPI, list[Callable[[], object]]]:
    """The app over ``store`` with its runner and background work started; the
    functions that stop them, in order."""
    import sys

    # The API's reads and triage run on the event loop, which is busy under load; work
    # in threads (a triage that waits for a lock, scans, the leader's heartbeat) gets the
    # GIL back only when the loop thread is made to yield it, after Python's default
    # 5 ms. A thread holding the database's write lock should not hold it that much
    # longer for every release: 1 ms, for a little more switching.
    sys.setswitchinterval(SWITCH_INTERVAL)
    from sentinel.api.app import create_app
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.service_hooks import after_ingest_hooks, after_scan_hooks, start_background

    runner = InProcessRunner(store, settings)
    app = create_app(store, settings, runner)
    metrics = app.state.metrics
    runner.on_done.append(metrics.scan_done)
    runner.on_done.extend(after_scan_hooks(store, settings, metrics))
    app.state.on_ingest.extend(after_ingest_hooks(store, settings, metrics))
    background = start_background(store, settings, runner, metrics)
    return app, [*background, lambda: runner.shutdown(wait=False)]


def worker_app() -> FastAPI:
    """uvicorn's factory in each worker process (``--processes N``)."""
    from sentinel import logs
    from sentinel import settings as settings_mod
    from sentinel.store import crypto
    from sentinel.store.facade import open_store

    logs.configure()
    raw = os.environ.get(ENV_CONFIG)
    settings = settings_mod.load(Path(raw) if raw else None)
    store = open_store(keyring=crypto.load_keyring())
    app, stops = assemble(store, settings)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        try:
            async with inner(a) as state:
                yield state
        finally:
            for stop in stops:
                stop()
            store.close()

    app.router.lifespan_context = lifespan
    return app
