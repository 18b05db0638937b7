"""``sentinel rotate`` (and ``--dry-run``), ``sentinel rotations``, ``sentinel
rotators list``, the auto-rotation policy on a real serve, and a rotation a killed
process left half done, finished by a service's scheduler after a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sentinel.store.models import Rotation
from tests.apiclient import bearer, new_token
from tests.conftest import run_cli
from tests.rotationsetup import env_for, plant_and_scan, refused, sentinel, write_config
from tests.serveproc import start_serve, stop_serve

pytestmark = [pytest.mark.integration]


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def test_rotators_list_says_what_each_rule_does() -> None:
    r = run_cli("rotators", "list", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {x["rule"]: x for x in json.loads(r.stdout)["items"]}
    assert rows["aws.access-key-id"]["mode"] == "rotate"
    assert rows["aws.access-key-id"]["rotator"] == "aws-iam-access-key"
    assert rows["github.pat-classic"]["mode"] == "revoke"
    assert rows["stripe.secret-key"]["mode"] == "manual"
    text = run_cli("rotators", "list")
    assert "only revoke" in text.stderr and "need manual remediation" in text.stderr


def test_dry_run_shows_the_plan_and_touches_nothing(moto: Any, opened: Any, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "service.toml", moto)
    leak = plant_and_scan(tmp_path, moto, opened)
    r = sentinel(
        "rotate", str(leak.finding_id), "--dry-run", "--config", str(cfg), env=env_for(moto)
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "nothing touched" in out and leak.key.access_key_id in out
    assert "create -> store -> set -> test -> finish -> revoke -> verify -> purge" in out
    assert "user/admin" in out  # the privileged identity, never the leaked key
    assert f"leaked/{leak.repo.name}/{leak.key.access_key_id}" in out
    assert leak.key.secret_access_key not in out
    assert moto.keys(leak.key.user) == {leak.key.access_key_id: "Active"}
    with opened.sessions() as s:
        assert list(s.scalars(select(Rotation))) == []
    # then for real, and listed
    done = sentinel("rotate", str(leak.finding_id), "--config", str(cfg), env=env_for(moto))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout and leak.key.secret_access_key not in done.stdout
    listed = sentinel("rotations", "list", "--format", "json", "--config", str(cfg))
    [item] = json.loads(listed.stdout)["items"]
    assert item["status"] == "succeeded" and item["exposed"] == leak.key.access_key_id
    shown = sentinel("rotations", "show", item["id"], "--config", str(cfg))
    assert "purge" in shown.stdout and "done" in shown.stdout


def test_a_rotation_a_killed_process_left_is_finished_by_the_service(
    moto: Any, opened: Any, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "service.toml", moto)
    env = env_for(moto)
    leak = plant_and_scan(tmp_path, moto, opened)
    killed = sentinel(
        "rotate",
        str(leak.finding_id),
        "--config",
        str(cfg),
        env={**env, "SENTINEL_FAILPOINTS": "after:finish"},
    )
    assert killed.returncode == -9
    with opened.sessions() as s:
        [r] = s.scalars(select(Rotation))
        assert r.status == "running"
    proc, url = start_serve(tmp_path / "serve.log", "--config", str(cfg), env=env)
    try:
        tok = new_token(opened, "reader", ["findings:read"])
        deadline = time.monotonic() + 60
        while True:
            v = httpx.get(f"{url}/v1/rotations/{r.id}", headers=bearer(tok)).json()
            if v["status"] == "succeeded":
                break
            assert time.monotonic() < deadline, v
            time.sleep(0.3)
    finally:
        stop_serve(proc)
    assert leak.key.access_key_id not in moto.keys(leak.key.user)
    assert refused(moto, leak.key)


def test_auto_rotation_contains_a_key_found_by_a_scan(
    moto: Any, opened: Any, tmp_path: Path
) -> None:
    root = tmp_path / "repos"
    root.mkdir()
    cfg = write_config(
        tmp_path / "service.toml",
        moto,
        auto=True,
        extra="",
    )
    cfg.write_text(f"[service]\nscan_roots = [{json.dumps(str(root))}]\n\n" + cfg.read_text())
    env = env_for(moto)
    key = moto.throwaway_user("auto")
    (root / "app").mkdir()
    (root / "app" / "config.env").write_text(
        f"AWS_ACCESS_KEY_ID={key.access_key_id}\nAWS_SECRET_ACCESS_KEY={key.secret_access_key}\n"
    )
    proc, url = start_serve(tmp_path / "serve.log", "--config", str(cfg), env=env)
    try:
        tok = new_token(opened, "ci", ["scans:write", "findings:read"])
        r = httpx.post(
            f"{url}/v1/scans",
            headers=bearer(tok),
            json={"kind": "path", "target": str(root / "app")},
        )
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while True:
            items = httpx.get(f"{url}/v1/rotations", headers=bearer(tok)).json()["items"]
            if items and items[0]["status"] == "succeeded":
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.3)
        assert items[0]["requested_by"] == "auto"
    finally:
        stop_serve(proc)
    assert key.access_key_id not in moto.keys(key.user) and refused(moto, key)


def test_the_deletion_waits_out_the_grace_period_then_the_scheduler_does_it(
    moto: Any, opened: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel import settings as settings_mod
    from sentinel.jobs.rotation import Rotations

    cfg = write_config(tmp_path / "service.toml", moto, grace=1.5)
    for k, v in env_for(moto).items():
        monkeypatch.setenv(k, v)
    leak = plant_and_scan(tmp_path, moto, opened)
    rot = Rotations(opened, settings_mod.load(cfg))
    rid = rot.request(leak.finding_id, "test").rotation_id
    v = rot.run(rid)
    # revoked and verified; the key is only deactivated until the grace period ends
    assert v["status"] == "waiting" and v["purge_after"] is not None, v
    states = {s["name"]: s["state"] for s in v["steps"]}
    assert states["verify"] == "done" and states["purge"] == "pending"
    assert moto.keys(leak.key.user)[leak.key.access_key_id] == "Inactive"
    assert rot.tick() == [] or rot.run(rid)["status"] == "waiting"  # not yet
    assert leak.key.access_key_id in moto.keys(leak.key.user)
    deadline = time.monotonic() + 20
    while v["status"] == "waiting":
        assert time.monotonic() < deadline, v
        time.sleep(0.3)
        rot.tick()
        v = rot.run(rid)
    assert v["status"] == "succeeded"
    assert leak.key.access_key_id not in moto.keys(leak.key.user) and refused(moto, leak.key)
