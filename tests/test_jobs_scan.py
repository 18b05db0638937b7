"""The service's scan job: a queued Scan row run in a child process to its end, on the
in-process pool, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from sentinel.jobs.base import QueueFull
from sentinel.store.models import Finding, Occurrence, Scan
from tests.conftest import token


def _queue(store, kind: str, target: str, **params) -> str:  # type: ignore[no-untyped-def]
    from sentinel.store.facade import new_scan_id

    sid = new_scan_id()
    with store.sessions() as s:
        s.add(Scan(id=sid, kind=kind, target=target, params=params, requested_by="test"))
        s.commit()
    return sid


def _wait(store, sid: str, timeout: float = 120) -> Scan:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.sessions() as s:
            row = s.get(Scan, sid)
            if row is not None and row.status in ("succeeded", "failed"):
                return row
        time.sleep(0.1)
    raise AssertionError(f"scan {sid} did not finish")


@pytest.fixture
def opened(store_env: str):  # type: ignore[no-untyped-def]
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def test_a_queued_git_scan_runs_to_succeeded(opened, git_repo) -> None:  # type: ignore[no-untyped-def]
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.settings import ServiceSettings

    repo = git_repo("app")
    gh = token("ghp", 5)
    repo.commit(
        "add", {"ci.sh": f"GH={gh}\n", ".sentinel.toml": f'[allowlist]\nregexes = ["{gh}"]\n'}
    )
    done = []
    runner = InProcessRunner(opened, ServiceSettings(), on_done=[done.append])
    sid = _queue(opened, "git", str(repo.path.resolve()))
    runner.submit_scan(sid)
    row = _wait(opened, sid)
    runner.shutdown()
    assert row.status == "succeeded", row.errors
    assert row.exit_code == 1 and row.findings_new == 1 and row.duration_seconds is not None
    assert row.requested_by == "test"
    with opened.sessions() as s:
        f = s.scalars(select(Finding)).one()
        occ = s.scalars(select(Occurrence)).one()
    # the repository's own .sentinel.toml could allowlist its own secret: not read
    assert f.rule_id.startswith("github") and f.first_scan_id == sid
    assert occ.target == str(repo.path.resolve()) and occ.path == "ci.sh"
    assert [o.scan_id for o in done] == [sid]


def test_the_queue_is_bounded(opened, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.settings import ServiceSection, ServiceSettings

    settings = ServiceSettings(service=ServiceSection(workers=1, queue_size=1))
    runner = InProcessRunner(opened, settings)
    (tmp_path / "f").write_text("nothing\n")
    a = _queue(opened, "path", str(tmp_path))
    b = _queue(opened, "path", str(tmp_path))
    c = _queue(opened, "path", str(tmp_path))
    runner.submit_scan(a)
    runner.submit_scan(b)
    with pytest.raises(QueueFull) as exc:
        runner.submit_scan(c)
    assert exc.value.retry_after >= 1
    assert _wait(opened, a).status == "succeeded" and _wait(opened, b).status == "succeeded"
    runner.submit_scan(c)  # room again
    assert _wait(opened, c).status == "succeeded"
    runner.shutdown()
    assert runner.depth() == 0


def test_a_scan_past_its_time_is_stopped_and_failed(opened, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentinel.jobs.scan import run_scan
    from sentinel.settings import ServiceSection, ServiceSettings

    (tmp_path / "a.txt").write_text("x\n")
    sid = _queue(opened, "path", str(tmp_path))
    # no scan finishes in 50 ms (the child's interpreter alone takes longer to start)
    settings = ServiceSettings(service=ServiceSection(scan_timeout_seconds=0.05))
    out = run_scan(opened, settings, sid)
    row = _wait(opened, sid)
    assert out.status == "failed" and row.status == "failed" and row.exit_code is None
    assert row.errors == ["the scan ran past 0.05 s and was stopped"]


def test_a_failing_scan_says_why(opened, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentinel.jobs.scan import run_scan
    from sentinel.settings import ServiceSettings

    sid = _queue(opened, "git", str(tmp_path / "no-such-repo"))
    out = run_scan(opened, ServiceSettings(), sid)
    row = _wait(opened, sid)
    assert out.status == "failed" and row.status == "failed"
    assert row.errors and "no-such-repo" in row.errors[-1]
    assert "Traceback" not in row.errors[-1]


def test_a_finished_scan_is_not_run_again(opened, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sentinel.jobs.recovery import orphans
    from sentinel.jobs.scan import run_scan
    from sentinel.settings import ServiceSettings

    (tmp_path / "a.env").write_text(f"T={token('ghp', 9)}\n")
    sid = _queue(opened, "path", str(tmp_path))
    assert run_scan(opened, ServiceSettings(), sid).status == "succeeded"
    first = _wait(opened, sid).finished_at
    assert run_scan(opened, ServiceSettings(), sid).status == "succeeded"
    assert _wait(opened, sid).finished_at == first
    assert orphans(opened, 0) == []
