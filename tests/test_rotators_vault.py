"""The Vault/OpenBao parts of rotation against a real OpenBao server (tests/baoserver.py):
the KV v2 secret store, the Vault token revoker and the database static-role rotator."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotators import store_module
from rotators.base import Blocked, Retryable, RotationError, SecretStore
from rotators.stores import vault_kv
from rotators.vaultauth import ConfigError
from tests.baoserver import BaoServer

pytestmark = pytest.mark.integration

TOKEN_ENV = "SNT_TEST_VAULT_TOKEN"


def _value() -> dict[str, str]:
    return {"username": f"app_{secrets.token_hex(3)}", "password": secrets.token_urlsafe(24)}


def _path(mount: str = "kv") -> str:
    return f"{mount}/data/repo-{uuid.uuid4().hex[:8]}/generic-password"


@pytest.fixture
def kv(bao: BaoServer, monkeypatch: pytest.MonkeyPatch) -> vault_kv.VaultKVStore:
    monkeypatch.setenv(TOKEN_ENV, bao.token)
    store = store_module("vault-kv").build({"url": bao.url, "token_env": TOKEN_ENV})
    assert isinstance(store, SecretStore)
    return store  # type: ignore[no-any-return]


def _meta(bao: BaoServer, path: str) -> dict[str, Any]:
    mount, _, rel = path.partition("/data/")
    return bao.client().secrets.kv.v2.read_secret_metadata(path=rel, mount_point=mount)["data"]  # type: ignore[no-any-return]


def _write(bao: BaoServer, path: str, value: dict[str, str]) -> int:
    mount, _, rel = path.partition("/data/")
    r = bao.client().secrets.kv.v2.create_or_update_secret(
        path=rel, secret=value, mount_point=mount
    )
    return int(r["data"]["version"])


def _version(bao: BaoServer, path: str, version: int) -> dict[str, str]:
    mount, _, rel = path.partition("/data/")
    r = bao.client().secrets.kv.v2.read_secret_version(
        path=rel, version=version, mount_point=mount, raise_on_deleted_version=False
    )
    return r["data"]["data"]  # type: ignore[no-any-return]


META = {"finding": "f-1234", "rule": "generic-password"}


# -- the KV v2 store --------------------------------------------------------------------


def test_stage_is_pending_until_promoted_and_written_once(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    old, new = _value(), _value()
    _write(bao, path, old)
    rid = f"rot-{uuid.uuid4().hex[:8]}"

    vid = kv.stage(path, new, token=rid, metadata=META)
    assert kv.read_staged(path, token=rid) == new
    assert kv.read_current(path) == old  # staging does not touch the target
    assert kv.read_staged(path, token="another-rotation") is None

    # a second stage (a retried step) finds it and writes nothing, even with another value
    assert kv.stage(path, _value(), token=rid, metadata=META) == vid
    assert kv.read_staged(path, token=rid) == new
    pending = _meta(bao, path + f".sentinel-pending/{rid}")
    assert pending["current_version"] == 1
    assert pending["custom_metadata"] == {
        "sentinel-finding": "f-1234",
        "sentinel-rule": "generic-password",
        "sentinel-rotation": rid,
        "sentinel-base-version": "1",
    }


def test_promote_makes_it_current_keeps_previous_and_labels_the_target(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    old, new = _value(), _value()
    _write(bao, path, old)
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    kv.stage(path, new, token=rid, metadata=META)

    kv.promote(path, token=rid)
    assert kv.read_current(path) == new
    assert _version(bao, path, 1) == old  # the previous version is kept, readable
    meta = _meta(bao, path)
    assert meta["current_version"] == 2
    assert meta["custom_metadata"] == {
        "sentinel-finding": "f-1234",
        "sentinel-rule": "generic-password",
        "sentinel-rotation": rid,
        "sentinel-version": "2",
    }
    assert kv.read_staged(path, token=rid) is None  # the pending secret is gone entirely
    mount, _, rel = path.partition("/data/")
    listed = bao.client().secrets.kv.v2.list_secrets(path=rel.rsplit("/", 1)[0], mount_point=mount)
    assert listed["data"]["keys"] == ["generic-password"]

    kv.promote(path, token=rid)  # retried: nothing more is written
    assert _meta(bao, path)["current_version"] == 2


def test_promote_of_a_new_secret_and_both_path_forms(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    api_form = _path()
    logical = api_form.replace("/data/", "/", 1)
    new = _value()
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    assert kv.read_current(logical) is None
    kv.stage(logical, new, token=rid, metadata=META)
    assert kv.read_staged(api_form, token=rid) == new  # one secret, either form
    kv.promote(api_form, token=rid)
    assert kv.read_current(logical) == new
    assert _meta(bao, api_form)["current_version"] == 1
    assert kv.describe(api_form) == f"vault kv {logical} at {bao.url}"


def test_another_writer_between_stage_and_promote_is_not_clobbered(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    old, new, theirs = _value(), _value(), _value()
    _write(bao, path, old)
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    kv.stage(path, new, token=rid, metadata=META)
    _write(bao, path, theirs)  # someone else rotated it by hand meanwhile

    with pytest.raises(Blocked) as err:
        kv.promote(path, token=rid)
    msg = str(err.value)
    assert "another writer changed it" in msg
    for v in (old, new, theirs):
        assert v["password"] not in msg
    assert kv.read_current(path) == theirs  # target unchanged
    assert _meta(bao, path)["current_version"] == 2
    assert kv.read_staged(path, token=rid) == new  # the replacement is not lost


def test_promote_cut_short_after_its_write_does_not_write_again(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    old, new = _value(), _value()
    _write(bao, path, old)
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    kv.stage(path, new, token=rid, metadata=META)
    _write(bao, path, new)  # what promote's write did before a crash (cas=1 -> version 2)

    kv.promote(path, token=rid)
    meta = _meta(bao, path)
    assert meta["current_version"] == 2  # no third version
    assert meta["custom_metadata"]["sentinel-rotation"] == rid
    assert kv.read_staged(path, token=rid) is None


def test_discard_removes_the_pending_version_only(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    old, new = _value(), _value()
    _write(bao, path, old)
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    kv.stage(path, new, token=rid, metadata=META)
    kv.discard(path, token=rid)
    assert kv.read_staged(path, token=rid) is None
    assert kv.read_current(path) == old
    assert _meta(bao, path)["current_version"] == 1
    kv.discard(path, token=rid)  # again: nothing to do, no error
    with pytest.raises(RotationError, match="no pending version"):
        kv.promote(path, token=rid)
    assert kv.read_current(path) == old


def test_read_current_of_a_deleted_secret_is_none(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path("secret")
    _write(bao, path, _value())
    mount, _, rel = path.partition("/data/")
    bao.client().secrets.kv.v2.delete_latest_version_of_secret(path=rel, mount_point=mount)
    assert kv.read_current(path) is None


def test_store_down_or_sealed_is_retryable_and_data_survives_a_restart(
    bao: BaoServer, kv: vault_kv.VaultKVStore
) -> None:
    path = _path()
    new = _value()
    rid = f"rot-{uuid.uuid4().hex[:8]}"
    kv.stage(path, new, token=rid, metadata=META)
    bao.stop()
    try:
        with pytest.raises(Retryable, match="cannot reach the server") as err:
            kv.promote(path, token=rid)
        assert new["password"] not in str(err.value)
    finally:
        bao.start()
    assert kv.read_staged(path, token=rid) == new  # the server kept it across the restart
    bao.seal()
    try:
        with pytest.raises(Retryable, match="sealed"):
            kv.promote(path, token=rid)
    finally:
        bao.unseal()  # waits until active again
    kv.promote(path, token=rid)
    assert kv.read_current(path) == new


def test_token_auth_options(
    bao: BaoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(bao.token + "\n")
    store = vault_kv.build({"url": bao.url, "token_file": str(token_file)})
    path = _path()
    store.stage(path, _value(), token="r1", metadata={})
    assert store.identity().startswith("root (accessor ")

    with pytest.raises(ConfigError, match="must not be inline"):
        vault_kv.build({"url": bao.url, "token": bao.token})
    monkeypatch.delenv("SNT_UNSET_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="SNT_UNSET_TOKEN") as err:
        vault_kv.build({"url": bao.url, "token_env": "SNT_UNSET_TOKEN"})
    assert bao.token not in str(err.value)

    monkeypatch.setenv("SNT_BAD_TOKEN", "s." + secrets.token_urlsafe(18))
    bad = vault_kv.build({"url": bao.url, "token_env": "SNT_BAD_TOKEN"})
    with pytest.raises(RotationError, match="permission denied") as err2:
        bad.read_current(path)
    assert not isinstance(err2.value, Retryable)


KV_POLICY = """
path "kv/data/*" { capabilities = ["create", "read", "update", "patch", "delete"] }
path "kv/metadata/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
"""


def _enable_auth(bao: BaoServer, method: str) -> None:
    c = bao.client()
    if f"{method}/" not in c.sys.list_auth_methods()["data"]:
        c.sys.enable_auth_method(method)


@pytest.fixture
def approle(bao: BaoServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    _enable_auth(bao, "approle")
    c = bao.client()
    c.sys.create_or_update_policy("sentinel-kv", KV_POLICY)
    role = f"sentinel-{uuid.uuid4().hex[:6]}"
    c.auth.approle.create_or_update_approle(role, token_policies=["sentinel-kv"])
    role_id = c.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = c.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    (tmp_path / "secret-id").write_text(secret_id)
    yield {"role": role, "role_id": role_id, "secret_id_file": str(tmp_path / "secret-id")}
    c.auth.approle.delete_role(role)


def test_approle_auth_stages_and_promotes(bao: BaoServer, approle: dict[str, str]) -> None:
    store = vault_kv.build(
        {
            "url": bao.url,
            "auth": "approle",
            "role_id": approle["role_id"],
            "secret_id_file": approle["secret_id_file"],
        }
    )
    path = _path()
    new = _value()
    store.stage(path, new, token="r-approle", metadata=META)
    store.promote(path, token="r-approle")
    assert store.read_current(path) == new
    assert store.identity().startswith("approle (accessor ")
    # the policy covers kv/ only: the same login is refused elsewhere, and says so
    with pytest.raises(RotationError, match="permission denied"):
        store.read_current(_path("secret"))


def test_approle_with_a_wrong_secret_id_is_refused(
    bao: BaoServer, approle: dict[str, str], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text(str(uuid.uuid4()))
    store = vault_kv.build(
        {
            "url": bao.url,
            "auth": "approle",
            "role_id": approle["role_id"],
            "secret_id_file": str(wrong),
        }
    )
    with pytest.raises(RotationError, match="approle login") as err:
        store.read_current(_path())
    assert not isinstance(err.value, Retryable)
    assert wrong.read_text() not in str(err.value)


def test_a_kv_mount_still_upgrading_is_retried_not_failed() -> None:
    """OpenBao answers 400 "Upgrading from non-versioned to versioned data ... will resume
    service shortly" for a moment after a KV v2 mount is enabled: the scheduler retries
    that with backoff instead of failing the rotation for good."""
    import hvac.exceptions as hx

    from rotators.vaultauth import guard

    def upgrading() -> None:
        raise hx.InvalidRequest(
            errors=[
                "Upgrading from non-versioned to versioned data. This backend will be "
                "unavailable for a brief period and will resume service shortly."
            ]
        )

    with pytest.raises(Retryable, match="Upgrading"):
        guard(upgrading, "read secret/app/db")

    def missing() -> None:
        raise hx.InvalidRequest(errors=["no handler for route"])

    with pytest.raises(RotationError, match="no handler") as err:
        guard(missing, "read secret/app/db")
    assert not isinstance(err.value, Retryable)
