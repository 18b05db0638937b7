"""``sentinel serve``: the HTTP API, the scan pool and (as leader) the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Serving processes on one port (default from [service], 1); each runs "
            "its own scan pool.",
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
    import uvicorn

    n = processes or settings.service.processes
    listen = dict(
        host=host or settings.service.host,
        port=settings.service.port if port is None else port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # httptools parses requests (a dependency: h11, uvicorn's pure-Python fallback,
        # cost a fifth of a request); the loop is asyncio's own even where uvloop is
        # installed: under 50 busy connections uvloop left some requests waiting over a
        # second (p99 500 ms against asyncio's 63 ms, bench/api_load.py)
        http="httptools",
        loop="asyncio",
    )
    if n > 1:
        store.close()  # migrated; each worker process opens its own
        _serve_processes(n, config, listen, log)
        return
    from sentinel.api.serving import assemble

    app, stops = assemble(store, settings)
    server = uvicorn.Server(uvicorn.Config(app, **listen))  # type: ignore[arg-type]

    # say where it listens once it does (port 0 picks one), for people and for tests
    orig_startup = server.startup

    async def startup(sockets=None):  # type: ignore[no-untyped-def]
        await orig_startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                _say_listening(sock, log)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        for stop in stops:
            stop()
        store.close()


def _say_listening(sock: Any, log: Any) -> None:
    import sys

    addr = sock.getsockname()
    log.info(f"listening on http://{addr[0]}:{addr[1]}")
    print(f"sentinel: listening on http://{addr[0]}:{addr[1]}", file=sys.stderr, flush=True)


def _serve_processes(n: int, config: Path | None, listen: dict[str, Any], log: Any) -> None:
    """N serving processes under uvicorn's supervisor (it restarts one that dies), each
    listening on the port itself (sentinel.api.listener); Prometheus counters shared
    through a directory of this run's own. The listening line is said once every
    process answers."""
    import os
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from sentinel.api.listener import register_pickling, reserve
    from sentinel.api.serving import ENV_CONFIG

    class Supervisor(Multiprocess):
        def init_processes(self) -> None:
            super().init_processes()
            # before the supervision loop starts: nothing else uses the pipes yet
            if all(p.wait_until_ready(60, self.should_exit) for p in self.processes):
                _say_listening(sock, log)
                log.info("serving with %d processes", n)

    metrics_dir = tempfile.mkdtemp(prefix="sentinel-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[ENV_CONFIG] = str(config) if config is not None else ""
    cfg = uvicorn.Config("sentinel.api.serving:worker_app", factory=True, workers=n, **listen)
    register_pickling()
    sock = reserve(cfg.host, cfg.port, cfg.backlog)
    try:
        Supervisor(cfg, sockets=[sock]).run()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
