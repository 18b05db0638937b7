"""``sentinel schedules list|run``: the ``[[schedules]]`` of the service config, with
their next run (from the scheduler's job store) and their latest scan; run one now."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

app = typer.Typer(
    help="Scheduled rescans ([[schedules]] in the service config).", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Service config (default $SENTINEL_HOME/service.toml).", readable=False
    ),
]


def _settings(config: Path | None) -> ServiceSettings:
    from sentinel import settings as settings_mod
    from sentinel.jobs.scheduler import check_schedules

    settings = settings_mod.load(config)
    check_schedules(settings)
    return settings


def _when(dt: object) -> str:
    from datetime import datetime

    if not isinstance(dt, datetime):
        return "-"
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


@app.command("list")
def list_(config: ConfigOpt = None) -> None:
    """Each schedule: name, cron expression, next run and latest scan."""
    from sentinel.display import for_terminal
    from sentinel.jobs.scheduler import views
    from sentinel.store.facade import open_store

    settings = _settings(config)
    if not settings.schedules:
        where = settings.source or "the service config"
        print(f"no schedules in {where}")
        return
    store = open_store()
    try:
        with store.sessions() as s:
            rows = views(s, settings)
    finally:
        store.close()
    table = [("NAME", "CRON", "NEXT RUN", "LAST SCAN")]
    for v in rows:
        cron = v.cron if v.timezone == "UTC" else f"{v.cron} ({v.timezone})"
        if not v.enabled:
            nxt = "disabled"
        elif v.next_run is None:
            nxt = "not scheduled yet"  # no leader has synced it into the job store
        else:
            nxt = _when(v.next_run)
        last = (
            f"{v.last_scan_id} {v.last_scan_status} {_when(v.last_scan_at)}"
            if v.last_scan_id
            else "-"
        )
        table.append((v.name, cron, nxt, last))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(
            for_terminal(
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3]
            )
        )


class _Inline:
    """A job runner that runs the scan before it returns (the CLI waits for it)."""

    def __init__(self, store: Store, settings: ServiceSettings) -> None:
        self.store = store
        self.settings = settings
        self.outcome: object = None

    def submit_scan(self, scan_id: str) -> None:
        from sentinel.jobs.leader import holder_id
        from sentinel.jobs.recovery import RunnerLease, stamp
        from sentinel.jobs.scan import run_scan

        # held like any runner's, so a running service's leader does not take it as
        # abandoned and run it a second time
        self.holder = holder_id()
        lease = RunnerLease(self.store, self.holder, self.settings.scheduler.lease_seconds)
        lease.ensure_started()
        try:
            stamp(self.store, scan_id, self.holder)
            self.outcome = run_scan(self.store, self.settings, scan_id)
        finally:
            lease.stop()

    def depth(self) -> int:
        return 0

    def shutdown(self, wait: bool = True) -> None:
        return None


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    config: ConfigOpt = None,
) -> None:
    """Run one schedule's scan now, here, and wait for it (exit 0 when it ran, its
    findings stored; 2 when it failed)."""
    import sys

    from sentinel.api.targets import TargetRefused
    from sentinel.display import for_terminal
    from sentinel.errors import ConfigError
    from sentinel.jobs.scheduler import find, queue_scan
    from sentinel.store.facade import open_store
    from sentinel.store.models import Scan

    settings = _settings(config)
    sch = find(settings, name)
    if sch is None:
        names = ", ".join(s.name for s in settings.schedules) or "none"
        raise ConfigError(
            f"no schedule named {name!r} in {settings.source or 'the service config'} "
            f"(configured: {names})"
        )
    store = open_store()
    try:
        runner = _Inline(store, settings)
        print(f"sentinel: schedule {sch.name}: scanning {sch.kind} {sch.target}", file=sys.stderr)
        try:
            sid = queue_scan(store, settings, runner, sch)
        except TargetRefused as exc:
            raise ConfigError(f"schedule {sch.name!r}: target refused: {exc}") from None
        with store.sessions() as s:
            row = s.get(Scan, sid)
            assert row is not None
            status, new, errors = row.status, row.findings_new, list(row.errors or [])
    finally:
        store.close()
    if status != "succeeded":
        why = errors[-1] if errors else "no reason recorded"
        print(for_terminal(f"sentinel: scan {sid} {status}: {why}"), file=sys.stderr)
        raise typer.Exit(2)
    print(f"scan {sid} succeeded: {new} new finding(s)")
