"""The scheduler: [[schedules]] fire real scans through the real job runner on both
databases, survive a restart without repeating or losing a run, and only one
``sentinel serve`` per database schedules (the others take over when it dies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.store.models import Scan
from tests.conftest import token

DEADLINE = 120.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A scan root holding one file with a leaked token."""
    r = tmp_path / "roots"
    (r / "app").mkdir(parents=True)
    (r / "app" / "config.env").write_text(f"GITHUB_TOKEN={token('ghp', 41)}\n")
    return r


def settings_for(root: Path, schedules: list[dict[str, Any]], **scheduler: Any) -> Any:
    from sentinel.settings import ServiceSettings

    return ServiceSettings.model_validate(
        {
            "service": {"scan_roots": [str(root)], "workers": 1, "queue_size": 4},
            "scheduler": {"lease_seconds": 2, **scheduler},
            "schedules": schedules,
        }
    )


def scans_of(store: Any, name: str) -> list[Scan]:
    with store.sessions() as s:
        return list(
            s.scalars(
                select(Scan)
                .where(Scan.requested_by == f"schedule:{name}")
                .order_by(Scan.created_at)
            )
        )


def view(store: Any, settings: Any, name: str) -> Any:
    from sentinel.jobs.scheduler import views

    with store.sessions() as s:
        return next(v for v in views(s, settings) if v.name == name)


# -- cron expressions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # crontab weekdays: 0 and 7 are Sunday, 1-5 Monday to Friday (not APScheduler 3's)
        ("0 9 * * 1-5", "2026-12-05T12:00", "2026-12-07T09:00"),  # Sat -> Mon
        ("0 9 * * 0", "2026-12-01T00:00", "2026-12-06T09:00"),  # Tue -> Sun
        ("30 2 * * 7", "2026-12-01T00:00", "2026-12-06T02:30"),
        ("0 0 * * */2", "2026-12-07T01:00", "2026-12-08T00:00"),  # Sun,Tue,...: Mon -> Tue
        ("0 0 1 * *", "2026-12-04T00:00", "2027-01-01T00:00"),
        ("*/10 * * * * *", "2026-12-04T00:00:01", "2026-12-04T00:00:10"),  # seconds first
    ],
)
def test_cron_expressions_mean_what_crontab_means(expr: str, after: str, expected: str) -> None:
    from sentinel.jobs.scheduler import parse_cron

    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    got = parse_cron(expr).get_next_fire_time(None, start)
    assert got == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_a_time_zone_shifts_the_schedule() -> None:
    from sentinel.jobs.scheduler import parse_cron

    start = datetime(2026, 12, 4, tzinfo=UTC)
    got = parse_cron("0 9 * * *", "Europe/Paris").get_next_fire_time(None, start)
    assert got is not None and got.astimezone(UTC) == datetime(2026, 12, 4, 8, tzinfo=UTC)


# -- firing ---------------------------------------------------------------------------


def test_a_schedule_fires_and_its_scan_runs(opened: Any, root: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler

    settings = settings_for(
        root,
        [{"name": "app", "cron": "*/2 * * * * *", "kind": "path", "target": str(root / "app")}],
    )
    runner = InProcessRunner(opened, settings)
    sched = Scheduler(opened, settings, runner)
    sched.start()
    try:
        done = wait_for(
            "a scheduled scan to finish",
            lambda: [s for s in scans_of(opened, "app") if s.status in ("succeeded", "failed")],
        )
    finally:
        sched.stop()
        runner.shutdown()
    scan = done[0]
    assert scan.status == "succeeded", scan.errors
    assert scan.kind == "path" and scan.target == str((root / "app").resolve())
    assert scan.findings_new == 1


# -- several `sentinel serve` on one database ------------------------------------------


class Served:
    """A real ``sentinel serve`` process; its structured log lines in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel.cli.main",
                "serve",
                "--port",
                "0",
                "--config",
                str(config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._fh,
            env=dict(os.environ),
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def says(self, what: str) -> bool:
        return what in self.text()

    def count(self, what: str) -> int:
        return self.text().count(what)

    def wait_listening(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"sentinel serve exited {self.proc.returncode}: {self.text()}")
            return self.says("sentinel: listening on")

        wait_for("sentinel serve to listen", ready)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


LEADS = "scheduler: this process leads"
QUEUED = "schedule app: queued scan"


def write_config(path: Path, root: Path, cron: str = "*/2 * * * * *", **scheduler: Any) -> Path:
    sched = {"lease_seconds": 3, "heartbeat_seconds": 0.5, **scheduler}
    lines = ["[service]", f"scan_roots = [{str(root)!r}]", "", "[scheduler]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in sched.items()]
    lines += [
        "",
        "[[schedules]]",
        'name = "app"',
        f"cron = {cron!r}",
        'kind = "path"',
        f"target = {str(root / 'app')!r}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_of_two_services_schedules_and_the_other_takes_over_when_it_dies(
    opened: Any, root: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "service.toml", root)
    a = Served(cfg, tmp_path / "a.log")
    b: Served | None = None
    try:
        a.wait_listening()
        wait_for("the first service to lead", lambda: a.says(LEADS))
        b = Served(cfg, tmp_path / "b.log")
        b.wait_listening()
        wait_for(
            "two scheduled scans to succeed",
            lambda: len([s for s in scans_of(opened, "app") if s.status == "succeeded"]) >= 2,
        )
        # the second serves the API and leaves scheduling to the first
        assert a.count(QUEUED) >= 2
        assert not b.says(LEADS) and not b.says(QUEUED)

        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed_at = datetime.now(UTC)
        wait_for("the second service to take the lead", lambda: b is not None and b.says(LEADS))
        wait_for(
            "a scan scheduled by the new leader to succeed",
            lambda: [
                s
                for s in scans_of(opened, "app")
                if s.created_at > killed_at and s.status == "succeeded"
            ],
        )
        assert b.says(QUEUED)
    finally:
        a.stop()
        if b is not None:
            b.stop()
