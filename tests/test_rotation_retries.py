"""Transient failures are retried by the scheduler with backoff, persisted in the
store: the provider answering 5xx, and the secret store (OpenBao) down mid-rotation
and started again. Never a half-done state left silent: when the attempts are spent
the rotation is failed and Slack is told."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.settings import ServiceSettings
from sentinel.store.models import Finding
from tests.conftest import run_cli, token
from tests.revokeapis import GithubStandIn
from tests.slackapi import SlackStandIn

pytestmark = [pytest.mark.integration]


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _github_finding(opened: Any, tmp_path: Path, seed: int) -> tuple[int, str]:
    gh = token("ghp", seed)
    d = tmp_path / "repo"
    d.mkdir(exist_ok=True)
    (d / "ci.env").write_text(f"GITHUB_TOKEN={gh}\n")
    run_cli("scan", "path", str(d), "--store", "-f", "json")
    with opened.sessions() as s:
        fid = s.scalar(select(Finding.id).where(Finding.rule_id.like("github%")))
    assert fid is not None
    return fid, gh


def _rotations(opened: Any, gh_api: str, slack: SlackStandIn | None = None, **extra: Any) -> Any:
    from sentinel.alerts import routing
    from sentinel.jobs.rotation import Rotations

    settings = ServiceSettings.model_validate(
        {
            "rotation": {
                "backoff_seconds": 0.3,
                "backoff_max_seconds": 1,
                "providers": {"github-token": {"api_url": gh_api}},
                **extra,
            }
        }
    )
    alerts = None
    if slack is not None:
        alerts = routing.parse({"slack": {"webhook_url": slack.webhook_url(), "retries": 0}})
    return Rotations(opened, settings, alerts=alerts)


def test_a_provider_answering_5xx_is_retried_with_backoff_until_it_works(
    opened: Any, tmp_path: Path
) -> None:
    fid, gh = _github_finding(opened, tmp_path, 31)
    slack = SlackStandIn().start()
    with GithubStandIn({gh}) as api:
        try:
            rot = _rotations(opened, api.api_url, slack)
            api.fail_next(2, 503)
            rid = rot.request(fid, "test").rotation_id
            v = rot.run(rid)
            assert v["status"] == "waiting" and api.works(gh)
            revoke = next(s for s in v["steps"] if s["name"] == "revoke")
            assert revoke["state"] == "failed" and revoke["attempts"] == 1
            assert "503" in revoke["last_error"]
            first_due = v["next_attempt_at"]
            assert first_due is not None
            # before its time neither the scheduler nor a run touches it
            rot.tick()
            v = rot.run(rid)
            assert next(s for s in v["steps"] if s["name"] == "revoke")["attempts"] == 1
            deadline = time.monotonic() + 20
            while True:
                rot.tick()
                v = rot.run(rid)
                if v["status"] != "waiting":
                    break
                assert time.monotonic() < deadline, v
                time.sleep(0.1)
            assert v["status"] == "succeeded", v
            revoke = next(s for s in v["steps"] if s["name"] == "revoke")
            assert revoke["attempts"] == 3 and revoke["state"] == "done"
            assert not api.works(gh)
            told = " ".join(str(p) for p in slack.payloads())
            assert "Rotation retrying" in told and "Credential replaced and revoked" not in told
            assert "revoked" in told.lower() and gh not in told
        finally:
            slack.stop()


def test_spent_attempts_fail_the_rotation_and_say_so(opened: Any, tmp_path: Path) -> None:
    fid, gh = _github_finding(opened, tmp_path, 32)
    slack = SlackStandIn().start()
    with GithubStandIn({gh}) as api:
        try:
            rot = _rotations(opened, api.api_url, slack, max_attempts=2)
            api.fail_next(2, 502)
            rid = rot.request(fid, "test").rotation_id
            v = rot.run(rid)
            time.sleep(0.7)
            v = rot.run(rid)
            assert v["status"] == "failed", v
            assert "after 2 attempts" in v["last_error"]
            with opened.sessions() as s:
                assert s.get(Finding, fid).status == "rotation_failed"
            assert "Rotation failed" in " ".join(str(p) for p in slack.payloads())
            # a person retries it once the provider is back
            assert rot.retry(rid, "test")
            v = rot.run(rid)
            assert v["status"] == "succeeded", v
            assert not api.works(gh)
        finally:
            slack.stop()
