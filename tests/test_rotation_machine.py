"""The state machine's invariants through the service's own parts, against the real
PostgreSQL and OpenBao: a managed database role's password rotated with its value in
Vault KV, a failed ``test`` rolled back, the secret store down mid-rotation and back,
and the order of steps enforced. (Kills at every step boundary: test_rotation_faults.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rotators.base import Credential, RotationState
from rotators.machine import Machine, StepRefused
from sentinel.settings import ServiceSettings
from tests import pgauth
from tests.slackapi import SlackStandIn

pytestmark = [pytest.mark.integration]
VAULT_TOKEN_ENV = "SNT_TEST_VAULT_TOKEN"


@pytest.fixture
def opened(store_env: str, bao: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    monkeypatch.setenv(VAULT_TOKEN_ENV, bao.token)
    st = open_store()
    yield st
    st.close()


@pytest.fixture
def role() -> Iterator[pgauth.PgRole]:
    with pgauth.throwaway_role() as r:
        yield r


def _seed(bao: Any, path: str, role: pgauth.PgRole) -> None:
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=path, mount_point="secret", secret={"username": role.name, "password": role.password}
    )


def _current(bao: Any, path: str) -> dict[str, str]:
    got = bao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    data: dict[str, str] = got["data"]["data"]
    return data


def _rotations(
    opened: Any, bao: Any, path: str, *, slack: SlackStandIn | None = None, **extra: Any
) -> Any:
    from sentinel.alerts import routing
    from sentinel.jobs.rotation import Rotations

    settings = ServiceSettings.model_validate(
        {
            "rotation": {
                "backoff_seconds": 0.3,
                "backoff_max_seconds": 1,
                "providers": {
                    "postgres-password": {"dsn": pgauth.ADMIN_DSN},
                },
                "stores": {
                    "vault": {"kind": "vault-kv", "url": bao.url, "token_env": VAULT_TOKEN_ENV}
                },
                "managed": [
                    {
                        "name": "app-db",
                        "rotator": "postgres-password",
                        "store": "vault",
                        "path": f"secret/data/{path}",
                        "max_age_days": 30,
                        "extra": {"host": "127.0.0.1", "port": "5432", "dbname": "postgres"},
                    }
                ],
                **extra,
            }
        }
    )
    alerts = None
    if slack is not None:
        alerts = routing.parse({"slack": {"webhook_url": slack.webhook_url(), "retries": 0}})
    return Rotations(opened, settings, alerts=alerts)


def _uniq(prefix: str) -> str:
    import secrets

    return f"{prefix}-{secrets.token_hex(4)}"


def test_a_managed_role_is_rotated_and_its_store_shows_when_next(
    opened: Any, bao: Any, role: pgauth.PgRole
) -> None:
    path = _uniq("db/app")
    _seed(bao, path, role)
    rot = _rotations(opened, bao, path)
    [rid] = rot.managed_round()
    assert rot.managed_round() == []  # under way: not started twice
    v = rot.run(rid)
    assert v["status"] == "succeeded", (v["last_error"], v["steps"])
    cur = _current(bao, path)
    assert cur["username"] == role.name and cur["password"] != role.password
    assert pgauth.can_login(role, cur["password"])
    assert not pgauth.can_login(role, role.password)
    # previous versions are kept
    meta = bao.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    assert len(meta["data"]["versions"]) == 2
    assert meta["data"]["custom_metadata"]["sentinel-rotation"] == rid
    [m] = rot.managed_views()
    assert m["last_rotated_at"] is not None and m["rotations"] == 1
    assert m["next_due_at"] - m["last_rotated_at"] == timedelta(days=29)
    assert rot.managed_round() == []  # not due again for 29 days
    # the next rotation starts from the value the last one stored
    from sentinel.store.models import ManagedCredential

    with rot.store.sessions() as s:
        row = s.get(ManagedCredential, "app-db")
        row.last_rotated_at = row.last_rotated_at - timedelta(days=30)
        s.commit()
    [rid2] = rot.managed_round()
    assert rid2 != rid
    assert rot.run(rid2)["status"] == "succeeded"
    cur2 = _current(bao, path)
    assert cur2["password"] not in (cur["password"], role.password)
    assert pgauth.can_login(role, cur2["password"]) and not pgauth.can_login(role, cur["password"])


def test_a_failed_test_rolls_back_and_leaves_the_exposed_password(
    opened: Any, bao: Any, role: pgauth.PgRole
) -> None:
    path = _uniq("db/locked")
    _seed(bao, path, role)
    with psycopg.connect(pgauth.ADMIN_DSN, autocommit=True) as c:
        c.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role.name)))
    slack = SlackStandIn().start()
    try:
        rot = _rotations(opened, bao, path, slack=slack)
        [rid] = rot.managed_round()
        v = rot.run(rid)
        assert v["status"] == "rolled_back", v
        states = {s["name"]: s["state"] for s in v["steps"]}
        assert states["test"] == "failed" and states["revoke"] == "pending"
        # the pending version is gone, the current one untouched
        assert _current(bao, path) == {"username": role.name, "password": role.password}
        listed = bao.client().secrets.kv.v2.list_secrets(
            path=path.rsplit("/", 1)[0], mount_point="secret"
        )
        assert not [k for k in listed["data"]["keys"] if "pending" in k]
        with psycopg.connect(pgauth.ADMIN_DSN, autocommit=True) as c:
            c.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role.name)))
        assert pgauth.can_login(role, role.password)  # the exposed password is as it was
        told = " ".join(str(p) for p in slack.payloads())
        assert "rolled back" in told and role.password not in told
    finally:
        slack.stop()


def test_the_secret_store_down_mid_rotation_is_retried_until_it_is_back(
    opened: Any, bao: Any, role: pgauth.PgRole
) -> None:
    path = _uniq("db/outage")
    _seed(bao, path, role)
    rot = _rotations(opened, bao, path)
    [rid] = rot.managed_round()
    bao.stop()
    try:
        v = rot.run(rid)
        assert v["status"] == "waiting", v
        store = next(s for s in v["steps"] if s["name"] == "store")
        assert store["state"] == "failed" and store["attempts"] == 1
        assert pgauth.can_login(role, role.password)  # nothing applied without the store
        time.sleep(0.5)
        v = rot.run(rid)
        assert v["status"] == "waiting"
    finally:
        bao.start()
    deadline = time.monotonic() + 30
    while v["status"] == "waiting":
        assert time.monotonic() < deadline, v
        time.sleep(0.2)
        rot.tick()
        v = rot.run(rid)
    assert v["status"] == "succeeded", (v["last_error"], v["steps"])
    assert next(s for s in v["steps"] if s["name"] == "store")["attempts"] >= 3
    cur = _current(bao, path)
    assert pgauth.can_login(role, cur["password"]) and not pgauth.can_login(role, role.password)


def test_revoke_is_refused_before_the_replacement_is_stored_and_tested() -> None:
    """The machine checks the order itself, whatever a log says to run next."""
    state = RotationState(
        id="r", rotator="x", mode="rotate", exposed=Credential("x", "id", "s"), store_path="p"
    )
    state.step("create").state = "done"
    state.step("store").state = "done"
    m = Machine(log_=None, provider=None, store=None)  # type: ignore[arg-type]
    for step in ("revoke", "verify", "purge", "finish"):
        with pytest.raises(StepRefused):
            m._guard(state, step)
    for s in ("set", "test", "finish"):
        state.step(s).state = "done"
    m._guard(state, "revoke")  # now it may
