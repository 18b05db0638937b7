"""The rotations API on a real store: scopes, 404/409 answers, the existing rotation
given back, a revoke-only rotation run in the background to its end, retry, and the
managed credentials' listing. No answer carries a value."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.settings import ServiceSettings
from sentinel.store.models import Finding
from tests.apiapp import TestClient, bearer, make_app, make_token
from tests.conftest import run_cli, token
from tests.revokeapis import GithubStandIn


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _finding(opened: Any, tmp_path: Path, gh: str) -> int:
    d = tmp_path / "repo"
    d.mkdir(exist_ok=True)
    (d / "ci.env").write_text(f"GITHUB_TOKEN={gh}\n")
    run_cli("scan", "path", str(d), "--store", "-f", "json")
    with opened.sessions() as s:
        fid = s.scalar(select(Finding.id).where(Finding.rule_id.like("github%")))
    assert fid is not None
    return int(fid)


def test_rotate_through_the_api(opened: Any, tmp_path: Path) -> None:
    gh = token("ghp", 41)
    fid = _finding(opened, tmp_path, gh)
    with GithubStandIn({gh}) as api:
        settings = ServiceSettings.model_validate(
            {
                "rotation": {
                    "backoff_seconds": 0.2,
                    "providers": {"github-token": {"api_url": api.api_url}},
                    "stores": {"v": {"kind": "vault-kv", "url": "http://127.0.0.1:1"}},
                    "managed": [
                        {
                            "name": "ci-db",
                            "rotator": "postgres-password",
                            "store": "v",
                            "path": "secret/db/ci",
                            "max_age_days": 7,
                        }
                    ],
                }
            }
        )
        writer = make_token(opened, "rot", ["rotations:write", "findings:read"])
        reader = make_token(opened, "ro", ["findings:read"])
        with TestClient(make_app(opened, settings)) as c:
            assert c.post(f"/v1/findings/{fid}/rotate", headers=bearer(reader)).status_code == 403
            assert c.post("/v1/findings/999999/rotate", headers=bearer(writer)).status_code == 404
            plan = c.post(
                f"/v1/findings/{fid}/rotate", headers=bearer(writer), json={"dry_run": True}
            )
            assert plan.status_code == 200 and plan.json()["plan"]["steps"] == ["revoke", "verify"]
            assert api.works(gh)
            r = c.post(f"/v1/findings/{fid}/rotate", headers=bearer(writer))
            assert r.status_code == 202, r.text
            rid = r.json()["id"]
            deadline = time.monotonic() + 20
            while True:
                v = c.get(f"/v1/rotations/{rid}", headers=bearer(reader)).json()
                if v["status"] == "succeeded":
                    break
                assert time.monotonic() < deadline, v
                time.sleep(0.1)
            assert not api.works(gh)
            assert v["mode"] == "revoke" and [s["state"] for s in v["steps"]][:5] == ["skipped"] * 5
            again = c.post(f"/v1/findings/{fid}/rotate", headers=bearer(writer))
            assert again.status_code == 200 and again.json()["id"] == rid
            assert c.post(f"/v1/rotations/{rid}/retry", headers=bearer(writer)).status_code == 409
            assert c.get("/v1/rotations/" + "0" * 36, headers=bearer(reader)).status_code == 404
            assert c.get("/v1/rotations/not-an-id", headers=bearer(reader)).status_code == 422
            listed = c.get("/v1/rotations?status=succeeded", headers=bearer(reader)).json()
            assert [i["id"] for i in listed["items"]] == [rid] and listed["next_cursor"] is None
            managed = c.get("/v1/rotations/managed", headers=bearer(reader)).json()["items"]
            assert managed == [
                {
                    "name": "ci-db",
                    "rotator": "postgres-password",
                    "store": "v",
                    "path": "secret/db/ci",
                    "max_age_days": 7.0,
                    "last_rotated_at": None,
                    "next_due_at": None,
                    "last_rotation_id": None,
                    "rotations": 0,
                }
            ]
            for resp in (r, again, plan):
                assert gh not in resp.text
            with opened.sessions() as s:
                assert s.get(Finding, fid).status == "revoked"
