"""The AWS pieces of rotation against a real moto server with IAM auth enforced:
the Secrets Manager store and the IAM access-key rotator."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rotators import base
from rotators.base import Blocked, Credential, RotationError, Rotator, SecretStore
from rotators.providers.aws_iam import AwsIamAccessKey, policy_document
from rotators.stores.aws_secretsmanager import SecretsManagerStore
from tests import motoserver
from tests.motoserver import AwsKey, Moto

pytestmark = pytest.mark.integration
moto = motoserver.moto  # the session fixture, used by name below


def _store(m: Moto, key: AwsKey | None = None) -> SecretsManagerStore:
    return SecretsManagerStore(m.client("secretsmanager", key), sts=m.client("sts", key))


def _rotator(m: Moto, admin: AwsKey | None = None, **kw: Any) -> AwsIamAccessKey:
    def key_client(service: str, key_id: str, secret: str) -> Any:
        return m.client(service, AwsKey("?", key_id, secret))

    return AwsIamAccessKey(
        m.client("iam", admin), key_client, sts=m.client("sts", admin), test_delay=0.1, **kw
    )


def _exposed(k: AwsKey) -> Credential:
    return Credential(kind="aws-access-key", identifier=k.access_key_id, secret=k.secret_access_key)


def _stages(m: Moto, path: str) -> dict[str, list[str]]:
    return m.client("secretsmanager").describe_secret(SecretId=path)["VersionIdsToStages"]


def _refused(m: Moto, key: AwsKey) -> str:
    with pytest.raises(ClientError) as exc:
        m.caller_arn(key)
    return str(exc.value.response["Error"]["Code"])


# -- the store ------------------------------------------------------------------------


def test_store_creates_an_absent_secret_with_tags_and_stage_is_idempotent(moto: Moto) -> None:
    store = _store(moto)
    assert isinstance(store, SecretStore)
    path = f"sentinel/test/{secrets.token_hex(4)}"
    token = str(uuid.uuid4())
    value = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": secrets.token_hex(20)}
    meta = {"finding": "f-123", "rule": "aws.access-key"}
    assert store.read_current(path) is None
    vid = store.stage(path, value, token=token, metadata=meta)
    assert vid == token
    desc = moto.client("secretsmanager").describe_secret(SecretId=path)
    tags = {t["Key"]: t["Value"] for t in desc["Tags"]}
    assert tags == {
        "sentinel:finding": "f-123",
        "sentinel:rule": "aws.access-key",
        "sentinel:rotation": token,
    }
    assert store.stage(path, value, token=token, metadata=meta) == vid  # again: nothing new
    assert list(_stages(moto, path)) == [vid]
    assert "AWSPENDING" in _stages(moto, path)[vid]
    assert store.read_staged(path, token=token) == value
    store.promote(path, token=token)
    assert _stages(moto, path)[vid] == ["AWSCURRENT"]
    assert store.read_current(path) == value
    assert store.identity() == moto.caller_arn(moto.admin)


def test_store_promote_keeps_the_old_as_previous_and_discard_leaves_current(moto: Moto) -> None:
    store = _store(moto)
    path = f"sentinel/test/{secrets.token_hex(4)}"
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    v1, v2, v3 = ({"k": secrets.token_hex(8)} for _ in range(3))
    store.stage(path, v1, token=first, metadata={})
    store.promote(path, token=first)
    store.stage(path, v2, token=second, metadata={})
    assert store.read_current(path) == v1  # pending is not current
    assert store.read_staged(path, token=second) == v2
    assert store.stage(path, v2, token=second, metadata={}) == second
    assert len(_stages(moto, path)) == 2
    store.promote(path, token=second)
    store.promote(path, token=second)  # idempotent once current
    stages = _stages(moto, path)
    assert stages[second] == ["AWSCURRENT"]
    assert stages[first] == ["AWSPREVIOUS"]
    assert store.read_current(path) == v2
    assert store.read_staged(path, token=second) is None
    store.stage(path, v3, token=third, metadata={})
    store.discard(path, token=third)
    store.discard(path, token=third)
    assert store.read_staged(path, token=third) is None
    assert store.read_current(path) == v2
    assert "AWSPENDING" not in _stages(moto, path)[third]


def test_store_refuses_another_value_under_the_same_token(moto: Moto) -> None:
    store = _store(moto)
    path = f"sentinel/test/{secrets.token_hex(4)}"
    token = str(uuid.uuid4())
    hidden = secrets.token_hex(16)
    store.stage(path, {"k": "one"}, token=token, metadata={})
    with pytest.raises(RotationError) as exc:
        store.stage(path, {"k": hidden}, token=token, metadata={})
    assert hidden not in str(exc.value)
    assert store.read_staged(path, token=token) == {"k": "one"}


def test_store_without_permission_is_a_one_line_error(moto: Moto) -> None:
    nobody = moto.throwaway_user("nobody", policy=None)
    store = _store(moto, nobody)
    with pytest.raises(RotationError) as exc:
        store.stage("sentinel/denied", {"k": "v"}, token=str(uuid.uuid4()), metadata={})
    assert not exc.value.retryable
    assert "AccessDenied" in str(exc.value) and "\n" not in str(exc.value)


def test_store_down_is_retryable() -> None:
    import boto3

    client = boto3.client(
        "secretsmanager",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    with pytest.raises(RotationError) as exc:
        SecretsManagerStore(client).read_current("any")
    assert exc.value.retryable


# -- the IAM rotator ------------------------------------------------------------------


def test_iam_rotation_in_order(moto: Moto) -> None:
    exposed_key = moto.throwaway_user("leaky")
    rot = _rotator(moto)
    assert isinstance(rot, Rotator)
    exposed = _exposed(exposed_key)
    plan = rot.plan(exposed)
    assert plan.identity == moto.caller_arn(moto.admin)
    assert any(exposed_key.user in a for a in plan.actions)
    assert moto.keys(exposed_key.user) == {
        exposed_key.access_key_id: "Active"
    }  # plan wrote nothing

    intent = rot.prepare(exposed)
    assert intent["user"] == exposed_key.user
    new = rot.create(exposed, intent)
    assert new.identifier != exposed.identifier and new.extra["user"] == exposed_key.user
    assert rot.secret_value(new) == {
        "aws_access_key_id": new.identifier,
        "aws_secret_access_key": new.secret,
    }
    rot.apply(exposed, new)
    rot.test(new)
    new_key = AwsKey(exposed_key.user, new.identifier, new.secret)
    assert moto.caller_arn(new_key).endswith(f":user/{exposed_key.user}")

    assert rot.revoke(exposed) is True
    assert rot.revoke(exposed) is False
    assert moto.keys(exposed_key.user)[exposed_key.access_key_id] == "Inactive"
    rot.verify(exposed)
    assert rot.purge(exposed) is True
    assert rot.purge(exposed) is False
    assert moto.keys(exposed_key.user) == {new.identifier: "Active"}
    rot.verify(exposed)
    assert _refused(moto, exposed_key) == "InvalidClientTokenId"
    assert moto.caller_arn(new_key).endswith(f":user/{exposed_key.user}")


def test_iam_verify_fails_while_the_key_is_active(moto: Moto) -> None:
    k = moto.throwaway_user("active")
    with pytest.raises(RotationError) as exc:
        _rotator(moto).verify(_exposed(k))
    assert type(exc.value).__name__ == "VerifyFailed"
    assert k.secret_access_key not in str(exc.value)


def test_iam_two_keys_one_recently_used_is_blocked(moto: Moto) -> None:
    k = moto.throwaway_user("twokeys")
    other = moto.new_key(k.user)
    moto.caller_arn(other)  # the other key is in use
    rot = _rotator(moto)
    intent = rot.prepare(_exposed(k))
    with pytest.raises(Blocked) as exc:
        rot.create(_exposed(k), intent)
    assert other.access_key_id in str(exc.value) and "\n" not in str(exc.value)
    assert k.secret_access_key not in str(exc.value)
    assert moto.keys(k.user) == {k.access_key_id: "Active", other.access_key_id: "Active"}


def test_iam_two_keys_a_fresh_unused_key_is_not_dropped(moto: Moto) -> None:
    k = moto.throwaway_user("fresh")
    other = moto.new_key(k.user)  # never used, but created just now: someone may deploy it
    rot = _rotator(moto)
    with pytest.raises(Blocked):
        rot.create(_exposed(k), rot.prepare(_exposed(k)))
    assert set(moto.keys(k.user)) == {k.access_key_id, other.access_key_id}


def test_iam_two_keys_an_old_unused_key_is_dropped(moto: Moto) -> None:
    k = moto.throwaway_user("stale")
    other = moto.new_key(k.user)
    later = datetime.now(UTC) + timedelta(days=31)  # the other key has sat unused 31 days
    rot = _rotator(moto, clock=lambda: later)
    new = rot.create(_exposed(k), rot.prepare(_exposed(k)))
    assert new.extra["dropped_unused"] == other.access_key_id
    assert moto.keys(k.user) == {k.access_key_id: "Active", new.identifier: "Active"}
    rot.test(new)


def test_iam_resume_after_a_lost_secret_leaves_one_replacement(moto: Moto) -> None:
    k = moto.throwaway_user("resume")
    rot = _rotator(moto)
    intent = rot.prepare(_exposed(k))
    lost = rot.create(_exposed(k), intent)  # minted, then the process died
    again = rot.create(_exposed(k), intent)
    assert again.identifier != lost.identifier
    assert again.extra["dropped_orphans"] == lost.identifier
    assert moto.keys(k.user) == {k.access_key_id: "Active", again.identifier: "Active"}


def test_iam_rollback_deletes_the_new_key_only(moto: Moto) -> None:
    k = moto.throwaway_user("rollback")
    rot = _rotator(moto)
    new = rot.create(_exposed(k), rot.prepare(_exposed(k)))
    rot.rollback(_exposed(k), new)
    rot.rollback(_exposed(k), new)
    assert moto.keys(k.user) == {k.access_key_id: "Active"}
    assert moto.caller_arn(k).endswith(f":user/{k.user}")
    with pytest.raises(base.TestFailed) as exc:
        rot.test(new)
    assert new.secret not in str(exc.value)


def test_iam_unknown_key_is_blocked(moto: Moto) -> None:
    k = moto.throwaway_user("gone")
    moto.client("iam").delete_access_key(UserName=k.user, AccessKeyId=k.access_key_id)
    with pytest.raises(Blocked) as exc:
        _rotator(moto).prepare(_exposed(k))
    assert k.secret_access_key not in str(exc.value)


def test_the_shipped_policy_is_enough_for_a_whole_rotation(moto: Moto) -> None:
    """A user holding only aws_iam_policy.json rotates another user's key, under moto's
    auth enforcement; without the policy the same identity is refused."""
    rotator_key = moto.throwaway_user("rotator", policy=policy_document())
    k = moto.throwaway_user("victim")
    rot = _rotator(moto, admin=rotator_key)
    exposed = _exposed(k)
    assert rot.plan(exposed).identity.endswith(f":user/{rotator_key.user}")
    new = rot.create(exposed, rot.prepare(exposed))
    rot.test(new)
    assert rot.revoke(exposed) is True
    rot.verify(exposed)
    assert rot.purge(exposed) is True
    rot.verify(exposed)
    assert moto.keys(k.user) == {new.identifier: "Active"}

    bare = moto.throwaway_user("bare", policy=None)
    other = moto.throwaway_user("victim2")
    with pytest.raises(RotationError) as exc:
        _rotator(moto, admin=bare).prepare(_exposed(other))
    assert "AccessDenied" in str(exc.value)
