"""``sentinel serve``: the HTTP API, the scan pool and (as leader) the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Listen address (default from [service], 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default from [service], 8080; 0 picks one)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Service config (default $SENTINEL_HOME/service.toml).", readable=False
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Local use: create an encryption key file if there is none, and say where.",
        ),
    ] = False,
) -> None:
    """Serve the API on the embedded default (SQLite in $SENTINEL_HOME) or
    SENTINEL_DATABASE_URL; pending migrations are applied first, under a lock."""
    import logging
    import os
    import sys

    from sentinel import logs
    from sentinel import settings as settings_mod
    from sentinel.store import crypto

    logs.configure()
    log = logging.getLogger("sentinel.serve")
    settings = settings_mod.load(config)
    from sentinel.jobs.scheduler import check_schedules

    check_schedules(settings)  # a bad cron expression stops here, in one line
    if dev and not os.environ.get(crypto.ENV_KEY) and not crypto.key_file_path().exists():
        path = crypto.key_file_path()
        crypto.add_key_to_file(path, crypto.new_key_text())
        print(
            f"sentinel: --dev: created an encryption key file at {path} (0600); back it up",
            file=sys.stderr,
        )
    ring = crypto.load_keyring()
    if not ring.available:
        print(
            "sentinel: warning: no encryption key (SENTINEL_ENCRYPTION_KEY or "
            f"{crypto.key_file_path()}): no secret value will be kept, so rotation will need "
            "values supplied again; `sentinel serve --dev` makes a local key",
            file=sys.stderr,
        )
    from sentinel.store.facade import open_store

    store = open_store(migrate_now=True, keyring=ring)
    from sentinel.api.app import create_app
    from sentinel.jobs.inprocess import InProcessRunner

    runner = InProcessRunner(store, settings)
    app = create_app(store, settings, runner)
    runner.on_done.append(app.state.metrics.scan_done)
    from sentinel.service_hooks import after_ingest_hooks, after_scan_hooks, start_background

    metrics = app.state.metrics
    runner.on_done.extend(after_scan_hooks(store, settings, metrics))
    app.state.on_ingest.extend(after_ingest_hooks(store, settings, metrics))
    background = start_background(store, settings, runner, metrics)

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host or settings.service.host,
            port=settings.service.port if port is None else port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )

    # say where it listens once it does (port 0 picks one), for people and for tests
    orig_startup = server.startup

    async def startup(sockets=None):  # type: ignore[no-untyped-def]
        await orig_startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                addr = sock.getsockname()
                log.info(f"listening on http://{addr[0]}:{addr[1]}")
                print(
                    f"sentinel: listening on http://{addr[0]}:{addr[1]}",
                    file=sys.stderr,
                    flush=True,
                )

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        for stop in background:
            stop()
        runner.shutdown(wait=False)
        store.close()
