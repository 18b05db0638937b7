"""A PostgreSQL role owned by OpenBao's database secrets engine (a static role),
rotated through ``rotate-role``: the new password read back logs in, the exposed one
is refused; a resumed create reads back what Vault already set instead of rotating
again; the whole rotation through the state machine with the value in Vault KV."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from rotators.base import Blocked, Credential, VerifyFailed
from rotators.providers import vault_database
from tests import pgauth

pytestmark = pytest.mark.integration
ENV = "SNT_TEST_VAULT_ROOT"


@pytest.fixture
def static_role(bao: Any) -> Iterator[tuple[str, pgauth.PgRole, str]]:
    """(static role name, the PostgreSQL role, the password Vault set at creation)."""
    c = bao.client()
    mounts = c.sys.list_mounted_secrets_engines()["data"]
    if "database/" not in mounts:
        c.sys.enable_secrets_engine("database", path="database")
    with pgauth.throwaway_role() as role:
        conn = f"pg-{secrets.token_hex(3)}"
        c.secrets.database.configure(
            name=conn,
            plugin_name="postgresql-database-plugin",
            connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            username="postgres",
            password="trusted-here",  # loopback logins as postgres are trusted on this machine
            allowed_roles="*",
            verify_connection=True,
        )
        name = f"static-{role.name}"
        c.secrets.database.create_static_role(
            name=name,
            db_name=conn,
            username=role.name,
            rotation_period=86400,
            rotation_statements=["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"],
        )
        current = c.secrets.database.get_static_credentials(name)["data"]["password"]
        try:
            yield name, role, current
        finally:
            c.secrets.database.delete_static_role(name)


def _rotator(bao: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(ENV, bao.token)
    return vault_database.build({"url": bao.url, "token_env": ENV})


def test_rotate_role_replaces_the_password_and_the_old_one_is_refused(
    bao: Any, static_role: tuple[str, pgauth.PgRole, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, role, current = static_role
    assert pgauth.can_login(role, current)
    rot = _rotator(bao, monkeypatch)
    exposed = Credential(vault_database.NAME, role.name, current, {"role": name})
    plan = rot.plan(exposed)
    assert any("rotate-role" in a for a in plan.actions) and current not in str(plan)
    with pytest.raises(VerifyFailed):
        rot.verify(exposed)
    intent = rot.prepare(exposed)
    new = rot.create(exposed, intent)
    assert new.identifier == role.name and new.secret != current
    # resumed after a crash that lost the result: reads back, does not rotate again
    again = rot.create(exposed, intent)
    assert again.secret == new.secret
    rot.test(new)
    assert rot.revoke(exposed) is False
    rot.verify(exposed)
    assert pgauth.can_login(role, new.secret) and not pgauth.can_login(role, current)
    with pytest.raises(Blocked):
        rot.rollback(exposed, new)
    assert current not in str(exposed) and new.secret not in repr(new)


def test_a_static_role_of_another_user_is_refused(
    bao: Any, static_role: tuple[str, pgauth.PgRole, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _role, current = static_role
    rot = _rotator(bao, monkeypatch)
    with pytest.raises(Blocked):
        rot.prepare(Credential(vault_database.NAME, "someone_else", current, {"role": name}))


def test_the_machine_rotates_a_managed_static_role(
    store_env: str,
    bao: Any,
    static_role: tuple[str, pgauth.PgRole, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sentinel.jobs.rotation import Rotations
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import open_store

    name, role, current = static_role
    monkeypatch.setenv(ENV, bao.token)
    path = f"db/{name}"
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=path, mount_point="secret", secret={"username": role.name, "password": current}
    )
    settings = ServiceSettings.model_validate(
        {
            "rotation": {
                "providers": {vault_database.NAME: {"url": bao.url, "token_env": ENV}},
                "stores": {"kv": {"kind": "vault-kv", "url": bao.url, "token_env": ENV}},
                "managed": [
                    {
                        "name": "static",
                        "rotator": vault_database.NAME,
                        "store": "kv",
                        "path": f"secret/{path}",
                        "max_age_days": 7,
                        "extra": {"role": name},
                    }
                ],
            }
        }
    )
    st = open_store()
    try:
        rot = Rotations(st, settings)
        [rid] = rot.managed_round()
        v = rot.run(rid)
        assert v["status"] == "succeeded", (v["last_error"], v["steps"])
    finally:
        st.close()
    stored = bao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    vault_now = bao.client().secrets.database.get_static_credentials(name)["data"]["password"]
    assert stored["password"] == vault_now != current
    assert pgauth.can_login(role, vault_now) and not pgauth.can_login(role, current)
