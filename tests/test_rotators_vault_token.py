"""Vault/OpenBao tokens revoked against the real server: through a privileged token
and by revoke-self; revoked once (a second revoke says so and sends nothing), refused
afterwards, children revoked with it, other tokens untouched."""

from __future__ import annotations

from typing import Any

import pytest

from rotators.base import Credential, VerifyFailed
from rotators.providers import vault_token

pytestmark = pytest.mark.integration
ENV = "SNT_TEST_VAULT_ROOT"


def _token(bao: Any, policies: list[str] | None = None, **kw: Any) -> str:
    c = bao.client()
    c.sys.create_or_update_policy(
        name="sentinel-test-children",
        policy='path "auth/token/create" { capabilities = ["create", "update"] }',
    )
    pol = ["default", "sentinel-test-children"] if policies is None else policies
    tok: str = c.auth.token.create(policies=pol, ttl="1h", **kw)["auth"]["client_token"]
    return tok


def _works(bao: Any, token: str) -> bool:
    import hvac.exceptions as hx

    try:
        bao.client(token=token).auth.token.lookup_self()
    except hx.Forbidden:
        return False
    return True


@pytest.mark.parametrize("privileged", [True, False])
def test_a_token_is_revoked_once_and_refused(
    bao: Any, privileged: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, bao.token)
    opts: dict[str, Any] = {"url": bao.url}
    if privileged:
        opts["token_env"] = ENV
    rev = vault_token.build(opts)
    leaked = _token(bao)
    other = _token(bao)
    child = bao.client(token=leaked).auth.token.create(policies=["default"], ttl="1h")["auth"][
        "client_token"
    ]
    exposed = Credential("vault-token", leaked[:6] + "****", leaked)
    plan = rev.plan(exposed)
    assert leaked not in " ".join(plan.actions) + plan.identity
    assert _works(bao, leaked)
    with pytest.raises(VerifyFailed) as err:
        rev.verify(exposed)
    assert leaked not in str(err.value)
    assert rev.revoke(exposed) is True
    assert not _works(bao, leaked) and not _works(bao, child)
    assert _works(bao, other)
    rev.verify(exposed)
    assert rev.revoke(exposed) is False  # already revoked: nothing more


def test_revoke_self_works_for_a_token_without_any_policy(bao: Any) -> None:
    leaked = _token(bao, no_default_policy=True, policies=[])
    exposed = Credential("vault-token", "hvs.****", leaked)
    rev = vault_token.build({"url": bao.url})
    assert rev.revoke(exposed) is True
    assert not _works(bao, leaked)
    assert rev.revoke(exposed) is False
    rev.verify(exposed)
