"""From a scanned finding to a revoked token, through the service's rotations (the
store's RotationLog, the state machine) and the revokers, against the stand-ins of
tests/revokeapis.py; on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.settings import ServiceSettings
from sentinel.store.models import Finding
from tests.conftest import run_cli, token
from tests.revokeapis import GithubStandIn, GitlabStandIn, SlackStandIn

pytestmark = pytest.mark.integration

ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def apis() -> Iterator[tuple[GithubStandIn, SlackStandIn, GitlabStandIn]]:
    with GithubStandIn() as gh, SlackStandIn() as sl, GitlabStandIn() as gl:
        yield gh, sl, gl


def _settings(gh: GithubStandIn, sl: SlackStandIn, gl: GitlabStandIn) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "rotation": {
                "backoff_seconds": 0.1,
                "backoff_max_seconds": 0.2,
                "providers": {
                    "github-token": {"api_url": gh.api_url},
                    "slack-token": {"api_url": sl.api_url},
                    "gitlab-token": {"url": gl.url},
                },
            }
        }
    )


def test_leaked_tokens_are_revoked_once_and_verified(
    opened: Any, tmp_path: Path, apis: tuple[GithubStandIn, SlackStandIn, GitlabStandIn]
) -> None:
    from sentinel.jobs.rotation import Rotations

    gh, sl, gl = apis
    values = {
        "github-token": token("ghp", secrets.randbelow(10**9)),
        "slack-token": f"xoxb-{_rand(12, string.digits)}-{_rand(12, string.digits)}-{_rand(24)}",
        "gitlab-token": "glpat-" + _rand(20),
    }
    gh.add(values["github-token"])
    sl.add(values["slack-token"])
    gl.add(values["gitlab-token"])
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "ci.env").write_text(
        f"GITHUB_TOKEN={values['github-token']}\n"
        f"SLACK_BOT_TOKEN={values['slack-token']}\n"
        f"GITLAB_TOKEN={values['gitlab-token']}\n"
    )
    run_cli("scan", "path", str(repo), "--store", "-f", "json")
    with opened.sessions() as s:
        findings = {f.rotator: f.id for f in s.scalars(select(Finding)) if f.rotator in values}
    assert set(findings) == set(values)

    rot = Rotations(opened, _settings(gh, sl, gl))
    gh.fail_next(1, 503)  # GitHub's first answer is a server error: the step waits
    views = {}
    for name, fid in findings.items():
        out = rot.request(fid, "test")
        assert out.view["mode"] == "revoke"
        views[name] = rot.run(out.rotation_id)
    assert views["github-token"]["status"] == "waiting"
    views["github-token"] = rot.run(
        rot.request(findings["github-token"], "test").rotation_id, now_regardless=True
    )
    for name, v in views.items():
        assert v["status"] == "succeeded", (name, v)

    assert not gh.works(values["github-token"]) and values["github-token"] in gh.revoked
    assert not sl.works(values["slack-token"]) and values["slack-token"] in sl.revoked
    assert not gl.works(values["gitlab-token"]) and values["gitlab-token"] in gl.revoked
    assert len([c for c in gh.calls_to("POST", "/credentials/revoke") if c.status == 202]) == 1
    assert len(gl.calls_to("DELETE", gl.self_path)) == 1

    # asking again finds the same, finished rotation: nothing more is sent
    before = len(gh.calls) + len(sl.calls) + len(gl.calls)
    for fid in findings.values():
        out = rot.request(fid, "test")
        assert not out.created and rot.run(out.rotation_id)["status"] == "succeeded"
    assert len(gh.calls) + len(sl.calls) + len(gl.calls) == before
    for v in views.values():
        assert all(val not in repr(v) for val in values.values())
