"""Namespaces and Kubernetes auth as configured: a store with ``namespace`` writes into
that OpenBao namespace and nowhere else (real server); ``auth = "kubernetes"`` needs
its role and reads the service-account token file when it logs in (no Kubernetes API
server runs here to review a token, so the login itself is not exercised)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from rotators.stores import vault_kv

pytestmark = pytest.mark.integration
ENV = "SNT_TEST_VAULT_ROOT"


def _wait_until_kv_serves(client: Any) -> None:
    """A new KV v2 mount upgrades itself for a moment before it serves."""
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            client.secrets.kv.v2.read_configuration(mount_point="secret")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_store_in_a_namespace_writes_there_only(
    bao: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hvac

    monkeypatch.setenv(ENV, bao.token)
    ns = f"team{secrets.token_hex(3)}"
    root = bao.client()
    root.sys.create_namespace(path=ns)
    in_ns = hvac.Client(url=bao.url, token=bao.token, namespace=ns)
    in_ns.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    _wait_until_kv_serves(in_ns)
    store = vault_kv.build({"url": bao.url, "token_env": ENV, "namespace": ns})
    token = "11111111-2222-3333-4444-" + secrets.token_hex(6)
    store.stage("secret/data/app/db", {"password": "x" * 20}, token=token, metadata={})
    store.promote("secret/data/app/db", token=token)
    assert store.read_current("secret/app/db") == {"password": "x" * 20}
    got = in_ns.secrets.kv.v2.read_secret_version(
        path="app/db", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"password": "x" * 20}
    import hvac.exceptions as hx

    with pytest.raises(hx.InvalidPath):
        root.secrets.kv.v2.read_secret_version(
            path="app/db", mount_point="secret", raise_on_deleted_version=True
        )


def test_kubernetes_auth_needs_its_role_and_reads_the_token_file(tmp_path: Path) -> None:
    from rotators.base import RotationError
    from rotators.vaultauth import VaultAuth

    with pytest.raises(ValueError, match="kubernetes_role"):
        VaultAuth({"url": "http://127.0.0.1:1", "auth": "kubernetes"})
    missing = tmp_path / "no-token"
    auth = VaultAuth(
        {
            "url": "http://127.0.0.1:1",
            "auth": "kubernetes",
            "kubernetes_role": "sentinel",
            "kubernetes_token_file": str(missing),
            "kubernetes_mount": "k8s-prod",
        }
    )
    assert auth.source == "kubernetes role sentinel at auth/k8s-prod"
    with pytest.raises(RotationError, match="service account token"):
        auth.login(auth.new_client())
