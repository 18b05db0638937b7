"""A live-cluster scan through the real ``kubernetes`` client, against a loopback
stand-in that answers the core/v1 list endpoints as the API server documents them
(tests/kubeapi.py): pagination to the end, namespaces, Secrets, RBAC and server
errors on one namespace that must not stop the others, contexts."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import password, run_cli, token
from tests.kubeapi import FakeCluster, clear_proxy_env, configmap, make_cluster, secret

pytestmark = pytest.mark.integration

TOKENS = {ns: token("ghp", 500 + i) for i, ns in enumerate(("team-a", "team-b", "team-c"))}


def objects(per_namespace: int = 400) -> list[dict[str, Any]]:
    out = []
    for ns, leak in TOKENS.items():
        for i in range(per_namespace):
            data = {"LOG_LEVEL": "info", "replicas": str(i)}
            if i == per_namespace - 7:  # deep in the list: only pagination reaches it
                data["GITHUB_TOKEN"] = leak
            out.append(configmap(f"cm-{i:04d}", ns, data))
        out.append(secret("api", ns, {"token": token("ghp", 600 + len(out))}))
        out.append(secret("db", ns, {"DB_PASSWORD": password(700 + len(out))}))
    return out


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    clear_proxy_env(monkeypatch)
    with make_cluster(objects(), namespaces=("default", *TOKENS)) as c:
        yield c


def scan(kubeconfig: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    res = run_cli("scan", "k8s", "--cluster", "--kubeconfig", str(kubeconfig), "-f", "json", *extra)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, (json.loads(res.stdout) if res.stdout.strip() else {}), res.stderr


def test_every_page_of_every_namespace_is_read(cluster: FakeCluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, doc, err = scan(kc, "--page-size", "100", "--show-secrets")
    assert rc == 1, err
    found = {(f["namespace"], f["name"], f["key"], f["secret"]) for f in doc["findings"]}
    assert found == {(ns, "cm-0393", "GITHUB_TOKEN", leak) for ns, leak in TOKENS.items()}
    assert doc["stats"]["objects_scanned"] == 1200
    assert doc["stats"]["cluster"] == "test-ctx"
    assert {f["cluster"] for f in doc["findings"]} == {"test-ctx"}
    assert {f["kind"] for f in doc["findings"]} == {"ConfigMap"}
    # one all-namespaces list, followed page by page to its end: 12 pages of 100
    assert cluster.list_calls["/api/v1/configmaps"] == 12
    assert set(cluster.limits) == {100}
    assert cluster.continues[0] is None and all(cluster.continues[1:])
    assert not any("/secrets" in p for p in cluster.list_calls)  # not without the flag


def test_namespaces_are_honoured(cluster: FakeCluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, doc, err = scan(kc, "-n", "team-a", "--namespace", "team-c")
    assert rc == 1, err
    assert {f["namespace"] for f in doc["findings"]} == {"team-a", "team-c"}
    assert set(cluster.list_calls) == {
        "/api/v1/namespaces/team-a/configmaps",
        "/api/v1/namespaces/team-c/configmaps",
    }


def test_secrets_only_when_asked_and_only_provider_rules(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, doc, err = scan(kc, "-n", "team-b", "--include-secrets")
    assert rc == 1, err
    secrets = [f for f in doc["findings"] if f["kind"] == "Secret"]
    # the GitHub token in "api" is reported; the password in "db" is where it belongs
    assert [(f["name"], f["key"], f["rule_id"].split(".")[0]) for f in secrets] == [
        ("api", "token", "github")
    ]
    assert not any(f["rule_id"] == "k8s.secret-manifest" for f in doc["findings"])
    assert "/api/v1/namespaces/team-b/secrets" in cluster.list_calls


def test_a_forbidden_namespace_does_not_stop_the_others(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.deny.add(("team-b", "configmaps"))
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, doc, err = scan(kc, "-n", "team-a", "-n", "team-b", "-n", "team-c")
    assert rc == 2
    [line] = err.strip().splitlines()
    assert "configmaps in namespace team-b: 403 Forbidden" in line
    assert 'cannot list resource "configmaps"' in line
    assert "docs/k8s-rbac.yaml" in line
    assert {f["namespace"] for f in doc["findings"]} == {"team-a", "team-c"}


def test_cluster_wide_list_forbidden_is_explained(cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.deny_cluster_wide.add("configmaps")
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, _, err = scan(kc)
    assert rc == 2
    assert "at the cluster scope" in err
    assert "--namespace" in err or "docs/k8s-rbac.yaml" in err


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_server_errors_on_one_namespace(cluster: FakeCluster, tmp_path: Path, fault: str) -> None:
    cluster.faults[("team-b", "configmaps")] = fault  # type: ignore[assignment]
    cluster.hang_seconds = 5
    kc = cluster.kubeconfig(tmp_path / "kubeconfig")
    rc, doc, err = scan(kc, "-n", "team-a", "-n", "team-b", "-n", "team-c", "--timeout", "1")
    assert rc == 2
    assert "namespace team-b" in err
    assert ("500" in err) if fault == "500" else ("no answer within 1 s" in err)
    assert {f["namespace"] for f in doc["findings"]} == {"team-a", "team-c"}


def test_wrong_credentials_are_a_401(cluster: FakeCluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig(tmp_path / "kubeconfig", token="not-the-token")
    rc, doc, err = scan(kc)
    assert rc == 2
    assert "401 Unauthorized" in err
    assert "credentials" in err
    assert doc["findings"] == []


def test_context_selects_the_cluster(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leak = token("ghp", 800)
    with make_cluster([configmap("only-here", "prod", {"GITHUB_TOKEN": leak})]) as other:
        kc = cluster.kubeconfig(tmp_path / "kubeconfig", other=other, other_context="staging")
        rc, doc, err = scan(kc, "--context", "staging", "--show-secrets")
        assert rc == 1, err
        assert [(f["cluster"], f["name"], f["secret"]) for f in doc["findings"]] == [
            ("staging", "only-here", leak)
        ]
        rc, _, err = scan(kc, "--context", "nope")
        assert rc == 2
        assert "no context 'nope'" in err


def test_missing_kubeconfig_is_a_one_line_error(tmp_path: Path) -> None:
    rc, _, err = scan(tmp_path / "absent")
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "kube" in err.lower()


def test_unreachable_api_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    with make_cluster([]) as c:
        kc = c.kubeconfig(tmp_path / "kubeconfig")
    rc, _, err = scan(kc, "--timeout", "2")  # the server is gone now
    assert rc == 2
    assert "refused" in err or "no answer" in err


SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def test_in_cluster_service_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in a pod: no kubeconfig, KUBERNETES_SERVICE_HOST/PORT set, the service
    account's token and CA at their fixed paths (written here, then removed)."""
    if SA_DIR.parent.parent.exists() or not os.access("/var/run", os.W_OK):
        pytest.skip("cannot stand in for a pod's service account on this machine")
    clear_proxy_env(monkeypatch)
    leak = token("ghp", 900)
    with make_cluster([configmap("pod-cfg", "apps", {"GITHUB_TOKEN": leak})], tls=True) as c:
        SA_DIR.mkdir(parents=True)
        try:
            (SA_DIR / "token").write_text(c.token)
            assert c.ca_pem is not None
            (SA_DIR / "ca.crt").write_bytes(c.ca_pem)
            env = {
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(c.port),
                "HOME": str(tmp_path),  # no ~/.kube/config
                "KUBECONFIG": "",
            }
            res = run_cli("scan", "k8s", "--cluster", "-f", "json", env=env)
        finally:
            shutil.rmtree(SA_DIR.parent.parent)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["stats"]["cluster"] == "in-cluster"
    assert [f["name"] for f in doc["findings"]] == ["pod-cfg"]
