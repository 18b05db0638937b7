"""Scans a dead process left unfinished are queued again on a live runner, once; scans a
live runner holds are left alone. On SQLite and PostgreSQL, with real scans, and through
a real ``sentinel serve`` started over the rows a killed one leaves behind."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sentinel.jobs.base import QueueFull
from sentinel.store.models import Lease, Occurrence, Scan, utcnow
from tests.conftest import token
from tests.serveproc import start_serve, stop_serve
from tests.test_webhook_github import wait as _wait

DEAD = "gone-host:4242:deadbeef"  # a runner whose process is gone: no lease row


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _leak(d: Path, seed: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "ci.env").write_text(f"GITHUB_TOKEN={token('ghp', seed)}\n")
    return d


def _row(
    store: Any, target: Path, *, status: str = "running", runner: str | None = DEAD, age: float = 0
) -> str:
    """A scan row as a process leaves it: accepted by ``runner``, never finished."""
    from sentinel.store.facade import new_scan_id

    sid = new_scan_id()
    with store.sessions() as s:
        s.add(
            Scan(
                id=sid,
                kind="path",
                target=str(target),
                params={},
                requested_by="token:ci",
                status=status,
                runner=runner,
                created_at=utcnow() - timedelta(seconds=age),
                started_at=utcnow() if status == "running" else None,
            )
        )
        s.commit()
    return sid


def _live_lease(store: Any, holder: str, replace: bool = False) -> None:
    with store.sessions() as s:
        if replace and s.get(Lease, "runner:" + holder) is not None:
            return
        s.add(Lease(name="runner:" + holder, holder=holder, expires_at=utcnow() + timedelta(1)))
        s.commit()


class _Recording:
    """A runner that stamps what it takes, as runners do, and runs nothing (to see
    exactly what is handed over)."""

    def __init__(self, store: Any, room: int = 100) -> None:
        self.store = store
        self.holder = "recording:1:aaaa"
        self.room = room
        self.got: list[str] = []

    def submit_scan(self, scan_id: str) -> None:
        from sentinel.jobs.recovery import stamp

        if len(self.got) >= self.room:
            raise QueueFull(retry_after=5, depth=len(self.got))
        _live_lease(self.store, self.holder, replace=True)
        stamp(self.store, scan_id, self.holder)
        self.got.append(scan_id)


def test_a_dead_runners_scans_are_run_again_and_stored_once(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.recovery import requeue_orphans
    from sentinel.settings import ServiceSettings

    running = _row(opened, _leak(tmp_path / "a", 1))
    queued = _row(opened, _leak(tmp_path / "b", 2), status="queued")
    runner = InProcessRunner(opened, ServiceSettings())
    try:
        assert requeue_orphans(opened, runner, 30) == [running, queued]
        for sid in (running, queued):
            row = _wait(opened, sid)
            assert row.status == "succeeded", row.errors
            assert row.runner == runner.holder
            assert row.findings_new == 1
        # the next pass finds nothing to do: each scan ran once
        assert requeue_orphans(opened, runner, 30) == []
    finally:
        runner.shutdown()
    with opened.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Occurrence)) == 2


def test_scans_a_live_runner_holds_are_left_alone(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.recovery import requeue_orphans

    _live_lease(opened, "other-host:7:cafe")
    held = _row(opened, tmp_path, runner="other-host:7:cafe")
    fresh = _row(opened, tmp_path, status="queued", runner=None)  # being handed over now
    stale = _row(opened, tmp_path, status="queued", runner=None, age=120)  # never was
    done = _row(opened, tmp_path, status="succeeded")
    rec = _Recording(opened)
    assert requeue_orphans(opened, rec, 30) == [stale]
    with opened.sessions() as s:
        rows = {sid: s.get(Scan, sid) for sid in (held, fresh, stale, done)}
        assert rows[held].status == "running" and rows[held].runner == "other-host:7:cafe"
        assert rows[fresh].status == "queued" and rows[fresh].runner is None
        assert rows[stale].status == "queued" and rows[stale].runner == rec.holder
        assert rows[done].status == "succeeded"


def test_a_lapsed_lease_counts_as_dead(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.recovery import requeue_orphans

    with opened.sessions() as s:
        s.add(Lease(name="runner:late:1:b", holder="late:1:b", expires_at=utcnow() - timedelta(1)))
        s.commit()
    sid = _row(opened, tmp_path, runner="late:1:b")
    rec = _Recording(opened)
    assert requeue_orphans(opened, rec, 30) == [sid]


def test_a_full_queue_leaves_the_rest_for_the_next_pass(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.recovery import requeue_orphans

    ids = [_row(opened, tmp_path, age=10 - i) for i in range(3)]
    rec = _Recording(opened, room=1)
    assert requeue_orphans(opened, rec, 30) == ids[:1]
    rec.room = 10
    assert requeue_orphans(opened, rec, 30) == ids[1:]
    assert rec.got == ids


def test_a_runner_gives_its_lease_up_when_it_stops(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.jobs.recovery import orphans
    from sentinel.settings import ServiceSettings

    runner = InProcessRunner(opened, ServiceSettings())
    sid = _row(opened, _leak(tmp_path, 3), status="queued", runner=None)
    runner.submit_scan(sid)
    with opened.sessions() as s:
        lease = s.get(Lease, "runner:" + runner.holder)
        assert lease is not None and lease.expires_at > utcnow()
        assert s.get(Scan, sid).runner == runner.holder  # type: ignore[union-attr]
    assert orphans(opened, 30) == []  # held by a live runner
    _wait(opened, sid)
    runner.shutdown()
    with opened.sessions() as s:
        assert s.get(Lease, "runner:" + runner.holder) is None


# -- through a real sentinel serve ------------------------------------------------------------


@pytest.mark.integration
def test_serve_runs_again_what_a_killed_serve_left_unfinished(opened: Any, tmp_path: Path) -> None:
    import httpx

    from tests.apiclient import bearer, new_token

    roots = tmp_path / "roots"
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nscan_roots = ["{roots}"]\nworkers = 1\n[scheduler]\nlease_seconds = 2\n'
    )
    log = tmp_path / "serve.log"
    headers = bearer(new_token(opened, "ci", ["scans:write", "findings:read"]))
    # the first serve takes two scans and is killed while the second waits in its queue
    big = roots / "big"
    big.mkdir(parents=True)
    for i in range(400):
        (big / f"f{i}.txt").write_text("lorem ipsum dolor sit amet\n" * 2000)
    small = _leak(roots / "small", 7)
    proc, url = start_serve(log, "--config", str(config))
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            first = c.post("/v1/scans", json={"kind": "path", "target": str(big)})
            second = c.post("/v1/scans", json={"kind": "path", "target": str(small)})
        assert first.status_code == second.status_code == 202, (first.text, second.text)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    sid = second.json()["id"]
    with opened.sessions() as s:
        row = s.get(Scan, sid)
        assert row is not None and row.status == "queued", row and row.status
    # a new serve: once the dead one's lease lapses it runs the waiting scan
    proc, url = start_serve(log, "--config", str(config))
    try:
        row = _wait(opened, sid)
        assert row.status == "succeeded", row.errors
        assert row.findings_new == 1
        assert _wait(opened, first.json()["id"]).status == "succeeded"
    finally:
        stop_serve(proc)
    assert "unfinished scan(s) queued again" in log.read_text()


def test_recovery_runs_on_election_and_not_on_a_follower(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.scheduler import Scheduler
    from sentinel.settings import ServiceSettings

    sid = _row(opened, tmp_path)
    rec = _Recording(opened)
    sched = Scheduler(opened, ServiceSettings(), rec)  # type: ignore[arg-type]
    assert rec.got == []  # nothing before the lead is won
    sched.start()
    try:
        deadline = time.monotonic() + 30
        while not rec.got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rec.got == [sid]
    finally:
        sched.stop()
