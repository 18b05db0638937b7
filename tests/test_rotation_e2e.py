"""End to end: a live moto IAM key planted in a repository, scanned into the store,
rotated through the API of a real ``sentinel serve``. The replacement ends AWSCURRENT
in Secrets Manager (and, in the second run, the current version in OpenBao), the
exposed key is deleted and refused, the findings are ``rotated``, Slack was told, and
no plaintext is in the service's log or the database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from sentinel.store.models import Finding
from tests.apiclient import bearer, new_token
from tests.motoserver import AwsKey
from tests.rotationsetup import env_for, plant_and_scan, refused, sm_current, write_config
from tests.serveproc import start_serve, stop_serve
from tests.slackapi import SlackStandIn

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def slack() -> Any:
    s = SlackStandIn().start()
    yield s
    s.stop()


def _wait_done(url: str, tok: str, rid: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        v: dict[str, Any] = httpx.get(f"{url}/v1/rotations/{rid}", headers=bearer(tok)).json()
        if v["status"] in ("succeeded", "failed", "rolled_back"):
            return v
        assert time.monotonic() < deadline, v
        time.sleep(0.2)


def _no_plaintext(opened: Any, blobs: list[bytes], secrets: list[str]) -> None:
    with opened.engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                    if opened.url.startswith("sqlite")
                    else "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            )
        ]
        for t in tables:
            for row in conn.execute(text(f'SELECT * FROM "{t}"')):
                blobs.append(repr(tuple(row)).encode())
    for blob in blobs:
        for secret in secrets:
            assert secret.encode() not in blob


@pytest.mark.parametrize("where", ["sm", "vault"])
def test_rotate_a_leaked_iam_key_through_the_api(
    where: str, moto: Any, bao: Any, opened: Any, slack: SlackStandIn, tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path / "service.toml",
        moto,
        store=where,
        bao=bao if where == "vault" else None,
        slack_url=slack.webhook_url(),
    )
    env = env_for(moto, bao if where == "vault" else None)
    leak = plant_and_scan(tmp_path, moto, opened)
    tok = new_token(opened, "rotator", ["rotations:write", "findings:read"])
    log = tmp_path / "serve.log"
    proc, url = start_serve(log, "--config", str(cfg), env=env)
    try:
        # a read-only token may look, not rotate
        ro = new_token(opened, "reader", ["findings:read"])
        r = httpx.post(f"{url}/v1/findings/{leak.finding_id}/rotate", headers=bearer(ro))
        assert r.status_code == 403
        # the plan first: nothing touched
        r = httpx.post(
            f"{url}/v1/findings/{leak.finding_id}/rotate",
            headers=bearer(tok),
            json={"dry_run": True},
        )
        assert r.status_code == 200, r.text
        plan = r.json()["plan"]
        assert plan["rotator"] == "aws-iam-access-key" and plan["exposed"] == leak.key.access_key_id
        assert plan["steps"][:2] == ["create", "store"] and plan["store"] == where
        assert "admin" in plan["identity"]
        assert list(moto.keys(leak.key.user)) == [leak.key.access_key_id]
        r = httpx.post(f"{url}/v1/findings/{leak.finding_id}/rotate", headers=bearer(tok))
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        assert r.headers["location"] == f"/v1/rotations/{rid}"
        v = _wait_done(url, tok, rid)
        assert v["status"] == "succeeded", (v["last_error"], v["steps"])
        assert [s["state"] for s in v["steps"]] == ["done"] * 8
        # asked again: the same rotation, nothing new
        again = httpx.post(f"{url}/v1/findings/{leak.finding_id}/rotate", headers=bearer(tok))
        assert again.status_code == 200 and again.json()["id"] == rid
        listed = httpx.get(f"{url}/v1/rotations", headers=bearer(tok)).json()
        assert [i["id"] for i in listed["items"]] == [rid]
    finally:
        stop_serve(proc)

    keys = moto.keys(leak.key.user)
    assert len(keys) == 1 and leak.key.access_key_id not in keys
    [new_id] = keys
    path = f"leaked/{leak.repo.name}/{leak.key.access_key_id}"
    if where == "sm":
        stored = sm_current(moto, path)
    else:
        got = bao.client().secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        stored = got["data"]["data"]
    assert stored["aws_access_key_id"] == new_id
    new = AwsKey(leak.key.user, new_id, stored["aws_secret_access_key"])
    assert moto.caller_arn(new).endswith(f"user/{leak.key.user}")
    assert refused(moto, leak.key)
    with opened.sessions() as s:
        statuses = {f.rule_id: f.status for f in s.scalars(select(Finding))}
    assert statuses["aws.access-key-id"] == "rotated"
    assert all(st == "rotated" for r, st in statuses.items() if r.startswith("aws."))
    told = " ".join(str(p) for p in slack.payloads())
    assert "Rotation started" in told and "Credential replaced and revoked" in told
    assert leak.key.access_key_id in told and "settings.py" in told
    _no_plaintext(
        opened,
        [log.read_bytes(), *(r.body for r in slack.requests)],
        [leak.key.secret_access_key, new.secret_access_key],
    )
