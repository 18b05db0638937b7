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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.store.models import Scan
from tests.conftest import run_cli, token

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


# -- restarts -------------------------------------------------------------------------


def set_next_run(store: Any, name: str, when: datetime) -> None:
    """Leave the stored job as a process that died before ``when``'s run would have
    left it, through APScheduler's own job store."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from sentinel.jobs.aps import LeaderScheduler
    from sentinel.store.session import make_engine

    aps = LeaderScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=make_engine(store.url))}, timezone=UTC
    )
    aps.start(paused=True)
    try:
        aps.modify_job(f"schedule:{name}", next_run_time=when)
    finally:
        aps.shutdown(wait=False)


def daily(name: str, root: Path, hour: int, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cron": f"0 {hour} * * *",
        "kind": "path",
        "target": str(root / "app"),
        **kw,
    }


def far_hour() -> int:
    """An hour of the day about twelve hours away: its last run is long past and its
    next one far ahead, whenever the test runs."""
    return (datetime.now(UTC).hour + 12) % 24


def test_a_restart_keeps_the_next_run_and_sync_follows_the_config(opened: Any, root: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler

    h = far_hour()
    first = settings_for(root, [daily("nightly", root, h), daily("weekly", root, h)])
    runner = InProcessRunner(opened, first)
    try:
        sched = Scheduler(opened, first, runner)
        made = sched.start()
        sched.stop()
        assert sorted(made.added) == ["nightly", "weekly"]
        before = view(opened, first, "nightly").next_run
        assert before is not None and before > datetime.now(UTC)
        assert before.hour == h and before.minute == 0

        # a restart with the same config keeps what the store holds
        again = Scheduler(opened, first, runner)
        kept = again.start()
        again.stop()
        assert sorted(kept.kept) == ["nightly", "weekly"] and not kept.added
        assert view(opened, first, "nightly").next_run == before

        # a changed cron reschedules, a removed or disabled schedule goes
        h2 = (h + 1) % 24
        second = settings_for(
            root, [daily("nightly", root, h2), daily("weekly", root, h, enabled=False)]
        )
        third = Scheduler(opened, second, runner)
        changed = third.start()
        third.stop()
        assert changed.changed == ["nightly"] and changed.removed == ["weekly"]
        after = view(opened, second, "nightly").next_run
        assert after is not None and after.hour == h2
        assert view(opened, second, "weekly").next_run is None
    finally:
        runner.shutdown()
    assert scans_of(opened, "nightly") == [] and scans_of(opened, "weekly") == []


def test_runs_missed_while_down_run_once_within_the_grace(opened: Any, root: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler

    settings = settings_for(
        root,
        [{"name": "hourly", "cron": "0 * * * *", "kind": "path", "target": str(root / "app")}],
        misfire_grace_seconds=4 * 3600,
    )
    runner = InProcessRunner(opened, settings)
    try:
        first = Scheduler(opened, settings, runner)
        first.start()
        first.stop()
        # down for three hours: three runs missed, all within the grace
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        set_next_run(opened, "hourly", hour - timedelta(hours=2))

        again = Scheduler(opened, settings, runner)
        again.start()
        try:
            done = wait_for(
                "the missed run",
                lambda: [s for s in scans_of(opened, "hourly") if s.status == "succeeded"],
            )
            nxt = wait_for(
                "the next run to be set ahead",
                lambda: (v := view(opened, settings, "hourly").next_run) and v > hour and v,
            )
        finally:
            again.stop()
    finally:
        runner.shutdown()
    # coalesced: one run for the three missed, none repeated before the next
    assert len([s for s in scans_of(opened, "hourly") if s.created_at < nxt]) == 1
    assert done[0].findings_new == 1


def test_a_run_missed_beyond_the_grace_is_skipped_and_logged(
    opened: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler

    settings = settings_for(root, [daily("nightly", root, far_hour())], misfire_grace_seconds=60)
    runner = InProcessRunner(opened, settings)
    try:
        first = Scheduler(opened, settings, runner)
        first.start()
        first.stop()
        planned = view(opened, settings, "nightly").next_run
        set_next_run(opened, "nightly", planned - timedelta(days=1))
        with caplog.at_level("WARNING", logger="sentinel.scheduler"):
            again = Scheduler(opened, settings, runner)
            again.start()
            try:
                wait_for("the missed run to be logged", lambda: "was missed" in caplog.text)
                wait_for(
                    "the next run to move ahead",
                    lambda: view(opened, settings, "nightly").next_run == planned,
                )
            finally:
                again.stop()
    finally:
        runner.shutdown()
    assert scans_of(opened, "nightly") == []
    assert "schedule nightly: the run due at" in caplog.text


# -- configuration errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"cron": "61 * * * *"}, "bad cron expression '61 * * * *': "),
        ({"cron": "* * *"}, "bad cron expression '* * *': 3 field(s)"),
        ({"cron": "0 9 * * 8"}, "weekday '8' is out of range"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"target": "/etc"}, "target refused: "),
    ],
)
def test_serve_refuses_a_bad_schedule_in_one_line(
    tmp_path: Path, root: Path, entry: dict[str, str], says: str
) -> None:
    sch = {"name": "app", "cron": "0 3 * * *", "kind": "path", "target": str(root / "app")}
    sch.update(entry)
    cfg = tmp_path / "service.toml"
    body = "\n".join(f"{k} = {v!r}" for k, v in sch.items())
    cfg.write_text(f"[service]\nscan_roots = [{str(root)!r}]\n\n[[schedules]]\n{body}\n")
    r = run_cli("serve", "--port", "0", "--config", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"sentinel: error: service config {cfg}: schedule 'app': ")
    assert says in lines[0]
    assert "Traceback" not in r.stderr


def test_two_schedules_of_one_name_are_refused(tmp_path: Path, root: Path) -> None:
    cfg = tmp_path / "service.toml"
    one = f'name = "app"\ncron = "0 3 * * *"\nkind = "path"\ntarget = {str(root / "app")!r}\n'
    cfg.write_text(
        f"[service]\nscan_roots = [{str(root)!r}]\n[[schedules]]\n{one}[[schedules]]\n{one}"
    )
    r = run_cli("serve", "--port", "0", "--config", str(cfg))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"sentinel: error: service config {cfg}: schedules: the name 'app' is used twice"
    ]


# -- a full queue ---------------------------------------------------------------------


class FullOnce:
    """The job runner interface in front of the real pool, refusing the first scan as
    a full queue does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refused = 0

    def submit_scan(self, scan_id: str) -> None:
        from sentinel.jobs.base import QueueFull

        if not self.refused:
            self.refused += 1
            raise QueueFull(retry_after=1, depth=3)
        self.inner.submit_scan(scan_id)

    def depth(self) -> int:
        return int(self.inner.depth())

    def shutdown(self, wait: bool = True) -> None:
        self.inner.shutdown(wait)


def test_a_full_queue_is_retried_later_and_logged(
    opened: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler
    from sentinel.store.models import apscheduler_jobs

    settings = settings_for(root, [daily("nightly", root, far_hour())])
    runner = FullOnce(InProcessRunner(opened, settings))
    sched = Scheduler(opened, settings, runner)
    sched.start()
    try:
        with caplog.at_level("WARNING", logger="sentinel.scheduler"):
            assert sched.run("nightly") is None  # what the cron trigger calls
        assert "schedule nightly: the scan queue is full; retrying in 1 s" in caplog.text
        assert scans_of(opened, "nightly") == []  # the refused scan left no row behind
        done = wait_for(
            "the retried scan to succeed",
            lambda: [s for s in scans_of(opened, "nightly") if s.status == "succeeded"],
        )

        def retry_gone() -> bool:
            with opened.sessions() as s:
                ids = set(s.scalars(select(apscheduler_jobs.c.id)))
            return ids == {"schedule:nightly"}

        wait_for("the one-off retry job to be gone", retry_gone)
    finally:
        sched.stop()
        runner.shutdown()
    assert len(scans_of(opened, "nightly")) == 1 and done[0].findings_new == 1


# -- the CLI and the API --------------------------------------------------------------


def test_schedules_list_and_run_from_the_cli(opened: Any, root: Path, tmp_path: Path) -> None:
    from sentinel import settings as settings_mod
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.scheduler import Scheduler

    cfg = write_config(tmp_path / "service.toml", root, cron="0 3 * * 1-5")
    with cfg.open("a") as fh:
        fh.write(
            '\n[[schedules]]\nname = "paris"\ncron = "30 9 * * *"\ntimezone = "Europe/Paris"\n'
            f'kind = "path"\ntarget = {str(root / "app")!r}\nenabled = false\n'
        )
    r = run_cli("schedules", "list", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CRON", "NEXT", "RUN", "LAST", "SCAN"]
    assert lines[1].startswith("app ") and "0 3 * * 1-5" in lines[1]
    assert "not scheduled yet" in lines[1] and lines[1].endswith(" -")
    assert "30 9 * * * (Europe/Paris)" in lines[2] and "disabled" in lines[2]

    r = run_cli("schedules", "run", "app", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    (scan,) = scans_of(opened, "app")
    assert r.stdout.strip() == f"scan {scan.id} succeeded: 1 new finding(s)"

    # once a leader has stored it, the next run shows; the last scan is the one just run
    settings = settings_mod.load(cfg)
    runner = InProcessRunner(opened, settings)
    sched = Scheduler(opened, settings, runner)
    sched.start()
    sched.stop()
    runner.shutdown()
    nxt = view(opened, settings, "app").next_run
    assert nxt is not None and nxt.weekday() < 5 and (nxt.hour, nxt.minute) == (3, 0)
    r = run_cli("schedules", "list", "--config", str(cfg))
    app_line = r.stdout.splitlines()[1]
    assert nxt.isoformat(timespec="seconds").replace("+00:00", "Z") in app_line
    assert f"{scan.id} succeeded" in app_line

    r = run_cli("schedules", "run", "nope", "--config", str(cfg))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"sentinel: error: no schedule named 'nope' in {cfg} (configured: app, paris)"
    ]


def test_the_api_lists_schedules_and_runs_one_now(opened: Any, root: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.store.models import AuditRecord
    from tests.apiclient import TestClient, app_for, bearer, new_token

    hour = far_hour()
    settings = settings_for(
        root, [daily("nightly", root, hour), daily("off", root, 1, enabled=False)]
    )
    runner = InProcessRunner(opened, settings)
    reader = bearer(new_token(opened, "reader", ["findings:read"]))
    writer = bearer(new_token(opened, "ci", ["scans:write"]))
    try:
        with TestClient(app_for(opened, settings, runner)) as client:
            r = client.post("/v1/schedules/nightly/run", headers=writer)
            assert r.status_code == 202, r.text
            sid = r.json()["id"]
            assert r.headers["Location"] == f"/v1/scans/{sid}"
            wait_for(
                "the scan to succeed",
                lambda: [s for s in scans_of(opened, "nightly") if s.status == "succeeded"],
            )
            r = client.get("/v1/schedules", headers=reader)
            assert r.status_code == 200, r.text
            items = {i["name"]: i for i in r.json()["items"]}
            assert items["nightly"]["last_scan"]["id"] == sid
            assert items["nightly"]["last_scan"]["status"] == "succeeded"
            assert items["nightly"]["cron"] == f"0 {hour} * * *"
            assert items["off"]["enabled"] is False and items["off"]["next_run"] is None
            r = client.post("/v1/schedules/missing/run", headers=writer)
            assert r.status_code == 404
            assert r.headers["content-type"].startswith("application/problem+json")
    finally:
        runner.shutdown()
    with opened.sessions() as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "schedule.run")).one()
    assert rec.object_id == sid and rec.detail == {"schedule": "nightly"} and rec.actor == "ci"
