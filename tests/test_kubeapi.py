"""The fake API server (tests/kubeapi.py) answers the official ``kubernetes`` client the way a
real kube-apiserver does: list shapes, paging, auth, RBAC denials, faults, contexts, TLS."""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import (
    ApiException,
    BadRequestException,
    ForbiddenException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)

from tests import kubeapi
from tests.kubeapi import (
    DEFAULT_USER,
    FakeCluster,
    KubeContext,
    configmaps,
    forbidden_message,
    make_cluster,
    sample_objects,
    secret,
    status_body,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration

kube_cluster = kubeapi.kube_cluster  # the fixture; conftest does not load tests.kubeapi


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    kubeapi.clear_proxy_env(monkeypatch)


@contextlib.contextmanager
def core_v1(
    kubeconfig: Path, context: str | None = None, *, retries: object = None
) -> Iterator[client.CoreV1Api]:
    configuration = None
    if retries is not None:
        configuration = client.Configuration()
        configuration.retries = retries
    with config.new_client_from_config(
        config_file=str(kubeconfig), context=context, client_configuration=configuration
    ) as api_client:
        yield client.CoreV1Api(api_client)


def raw(response: urllib3.HTTPResponse) -> Any:
    """What the scanner will do with ``_preload_content=False``: parse the JSON itself."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def spread(n: int, namespaces: list[str]) -> list[dict[str, Any]]:
    per = n // len(namespaces)
    return [o for ns in namespaces for o in configmaps(per, ns, prefix=f"cm-{ns}")]


def api_error(exc_info: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert exc_info.value.body is not None
    body: dict[str, Any] = json.loads(exc_info.value.body)
    return body


# --------------------------------------------------------------------------- shapes


def test_kubeconfig_contexts_and_model_objects(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    kc = kube_cluster.kubeconfig(tmp_path / "config", namespace="team-a")
    contexts, current = config.list_kube_config_contexts(config_file=str(kc))
    assert [c["name"] for c in contexts] == ["test-ctx", "other-ctx"]
    assert current["name"] == "test-ctx"
    assert current["context"]["namespace"] == "team-a"
    assert kc.stat().st_mode & 0o777 == 0o600

    with core_v1(kc, "test-ctx") as v1:
        cms = v1.list_config_map_for_all_namespaces()
        assert isinstance(cms, client.V1ConfigMapList)
        keys = [f"{i.metadata.namespace}/{i.metadata.name}" for i in cms.items]
        assert keys == sorted(keys)  # etcd key order
        assert keys[:3] == ["default/app-config", "default/kube-root-ca.crt", "kube-system/coredns"]
        assert all(i.kind is None and i.api_version is None for i in cms.items)
        assert cms.metadata._continue is None
        assert cms.metadata.remaining_item_count is None
        assert cms.metadata.resource_version == kube_cluster.resource_version

        secrets = v1.list_namespaced_secret("team-a")
        by_name = {s.metadata.name: s for s in secrets.items}
        assert sorted(by_name) == ["db-creds", "registry"]
        assert by_name["db-creds"].type == "Opaque"
        assert base64.b64decode(by_name["db-creds"].data["username"]) == b"app"
        assert by_name["registry"].type == "kubernetes.io/dockerconfigjson"

    record = kube_cluster.requests[0]
    assert record.path == "/api/v1/configmaps"
    assert record.query == {}
    headers = {k.lower(): v for k, v in record.headers.items()}
    assert headers["authorization"] == f"Bearer {kube_cluster.token}"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("OpenAPI-Generator/")
    assert kube_cluster.list_calls == {
        "/api/v1/configmaps": 1,
        "/api/v1/namespaces/team-a/secrets": 1,
    }


def test_raw_list_has_the_api_shape(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    kc = kube_cluster.kubeconfig(tmp_path / "config")
    with core_v1(kc) as v1:
        response = v1.list_namespaced_secret("team-a", _preload_content=False)
        assert isinstance(response, urllib3.HTTPResponse)
        assert response.headers["Content-Type"] == "application/json"
        body = raw(response)
        cm_body = raw(v1.list_namespaced_config_map("team-a", _preload_content=False))

    assert list(body) == ["kind", "apiVersion", "metadata", "items"]
    assert body["kind"] == "SecretList"
    assert body["apiVersion"] == "v1"
    assert body["metadata"] == {"resourceVersion": kube_cluster.resource_version}
    item = body["items"][0]
    assert "kind" not in item
    assert "apiVersion" not in item
    meta = item["metadata"]
    assert {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"} <= set(meta)
    assert item["type"] == "Opaque"
    assert base64.b64decode(item["data"]["username"]) == b"app"
    applied = json.loads(meta["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["data"] == item["data"]

    blob = next(i for i in cm_body["items"] if i["metadata"]["name"] == "blob")
    assert blob["binaryData"] == {"blob.bin": base64.b64encode(b"\x00\x01").decode()}
    assert cm_body["kind"] == "ConfigMapList"


def test_single_object_get_and_not_found(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    with core_v1(kube_cluster.kubeconfig(tmp_path / "config")) as v1:
        cm = v1.read_namespaced_config_map("settings", "team-a")
        assert cm.kind == "ConfigMap"  # single objects do carry kind/apiVersion
        assert cm.api_version == "v1"
        assert cm.data == {"db_host": "db.team-a.svc", "db_user": "app"}
        with pytest.raises(NotFoundException) as exc_info:
            v1.read_namespaced_secret("missing", "team-a")
    assert api_error(exc_info) == status_body(
        404, "NotFound", 'secrets "missing" not found', {"name": "missing", "kind": "secrets"}
    )


def test_string_data_is_folded_into_data() -> None:
    obj = secret("s", "default")
    obj["stringData"] = {"plain": "text"}
    with (
        make_cluster([obj]) as cluster,
        contextlib.closing(http.client.HTTPConnection("127.0.0.1", cluster.port)) as conn,
    ):
        conn.request(
            "GET",
            "/api/v1/namespaces/default/secrets/s",
            headers={"Authorization": f"Bearer {cluster.token}"},
        )
        got = json.loads(conn.getresponse().read())
    assert "stringData" not in got
    assert got["data"] == {"plain": base64.b64encode(b"text").decode()}


# --------------------------------------------------------------------------- paging


def test_paging_1000_configmaps_raw(tmp_path: Path) -> None:
    namespaces = ["team-a", "team-b", "team", "default"]  # "team-b/..." sorts before "team/..."
    with make_cluster(spread(1000, namespaces)) as cluster:
        kc = cluster.kubeconfig(tmp_path / "config")
        seen: list[str] = []
        tokens: list[str | None] = [None]
        remaining: list[int | None] = []
        versions: set[str] = set()
        with core_v1(kc) as v1:
            while True:
                body = raw(
                    v1.list_config_map_for_all_namespaces(
                        limit=100, _continue=tokens[-1], _preload_content=False
                    )
                )
                assert body["kind"] == "ConfigMapList"
                seen += [
                    f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in body["items"]
                ]
                versions.add(body["metadata"]["resourceVersion"])
                remaining.append(body["metadata"].get("remainingItemCount"))
                if "continue" not in body["metadata"]:
                    break
                tokens.append(body["metadata"]["continue"])

        assert len(seen) == 1000
        assert len(set(seen)) == 1000
        assert seen == sorted(seen)
        assert seen[0].startswith("default/")
        assert [s.split("/")[0] for s in seen[500:502]] == ["team-b", "team-b"]
        assert versions == {cluster.resource_version}
        assert remaining == [900, 800, 700, 600, 500, 400, 300, 200, 100, None]
        assert cluster.list_calls == {"/api/v1/configmaps": 10}
        assert cluster.limits == [100] * 10
        assert cluster.continues == tokens
        assert all(r.query["limit"] == ["100"] for r in cluster.list_requests())


def test_paging_models_all_namespaces_and_namespaced(tmp_path: Path) -> None:
    with make_cluster(spread(1000, ["team-a", "team-b"])) as cluster:
        kc = cluster.kubeconfig(tmp_path / "config")
        with core_v1(kc) as v1:
            names: list[tuple[str, str]] = []
            token: str | None = None
            pages = 0
            while True:
                page = v1.list_config_map_for_all_namespaces(limit=100, _continue=token)
                pages += 1
                names += [(i.metadata.namespace, i.metadata.name) for i in page.items]
                token = page.metadata._continue
                if not token:
                    assert page.metadata.remaining_item_count is None
                    break
                assert page.metadata.remaining_item_count == 1000 - len(names)
            assert pages == 10
            assert len(names) == len(set(names)) == 1000

            team_b: list[str] = []
            token = None
            while True:
                page = v1.list_namespaced_config_map("team-b", limit=64, _continue=token)
                team_b += [i.metadata.name for i in page.items]
                token = page.metadata._continue
                if not token:
                    break
            assert team_b == [f"cm-team-b-{i:05d}" for i in range(500)]
        assert cluster.list_calls["/api/v1/namespaces/team-b/configmaps"] == 8  # 500 / 64


def test_without_limit_everything_in_one_answer(tmp_path: Path) -> None:
    with make_cluster(configmaps(1500, "bulk")) as cluster:
        with core_v1(cluster.kubeconfig(tmp_path / "config")) as v1:
            body = raw(v1.list_namespaced_config_map("bulk", _preload_content=False))
            empty = raw(v1.list_namespaced_config_map("no-such-ns", _preload_content=False))
        assert len(body["items"]) == 1500
        assert "continue" not in body["metadata"]
        assert empty["items"] == []  # a namespace that does not exist lists as empty, not 404
        assert cluster.limits == [None, None]


def test_continued_pages_come_from_the_first_pages_snapshot(tmp_path: Path) -> None:
    with make_cluster(configmaps(10, "ns")) as cluster:
        with core_v1(cluster.kubeconfig(tmp_path / "config")) as v1:
            first = v1.list_namespaced_config_map("ns", limit=5)
            cluster.delete("configmaps", "ns", "cm-00007")
            cluster.add(*configmaps(1, "ns", prefix="cm-zz"))
            rest = v1.list_namespaced_config_map("ns", limit=5, _continue=first.metadata._continue)
            fresh = v1.list_namespaced_config_map("ns")
        assert rest.metadata.resource_version == first.metadata.resource_version
        assert [i.metadata.name for i in rest.items] == [f"cm-{i:05d}" for i in range(5, 10)]
        fresh_names = [i.metadata.name for i in fresh.items]
        assert "cm-00007" not in fresh_names
        assert "cm-zz-00000" in fresh_names
        assert fresh.metadata.resource_version == cluster.resource_version


def test_bad_and_expired_continue_tokens(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    with core_v1(kube_cluster.kubeconfig(tmp_path / "config")) as v1:
        with pytest.raises(BadRequestException) as bad:
            v1.list_config_map_for_all_namespaces(limit=2, _continue="not-a-token")
        assert bad.value.status == 400
        assert api_error(bad)["reason"] == "BadRequest"
        assert api_error(bad)["message"].startswith("invalid continue token: ")

        first = v1.list_config_map_for_all_namespaces(limit=2)
        kube_cluster.expire_continue_tokens()
        with pytest.raises(ApiException) as expired:
            v1.list_config_map_for_all_namespaces(limit=2, _continue=first.metadata._continue)
        assert expired.value.status == 410
        status = api_error(expired)
        assert status["reason"] == "Expired"
        assert status["code"] == 410
        assert status["message"].startswith("The provided continue parameter is too old")

        # The 410 carries an inconsistent-list token that resumes after the last key seen.
        names = [i.metadata.name for i in first.items]
        token: str | None = status["metadata"]["continue"]
        while token:
            page = v1.list_config_map_for_all_namespaces(limit=2, _continue=token)
            names += [i.metadata.name for i in page.items]
            token = page.metadata._continue
        assert len(names) == 7


# --------------------------------------------------------------------------- auth and RBAC


def test_forbidden_namespace_and_cluster_scope(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    kube_cluster.deny.add(("kube-system", "secrets"))
    with core_v1(kube_cluster.kubeconfig(tmp_path / "config")) as v1:
        with pytest.raises(ApiException) as namespaced:
            v1.list_namespaced_secret("kube-system")
        with pytest.raises(ApiException) as raw_namespaced:
            v1.list_namespaced_secret("kube-system", _preload_content=False)
        # RBAC only grants: with one namespace denied, the cluster-scope list is denied too.
        with pytest.raises(ForbiddenException) as cluster_scope:
            v1.list_secret_for_all_namespaces(limit=100)
        assert len(v1.list_namespaced_secret("team-a").items) == 2
        assert len(v1.list_config_map_for_all_namespaces().items) == 7

    assert isinstance(namespaced.value, ForbiddenException)
    assert namespaced.value.status == raw_namespaced.value.status == 403
    assert (
        api_error(namespaced)
        == api_error(raw_namespaced)
        == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": (
                f'secrets is forbidden: User "{DEFAULT_USER}" cannot list resource "secrets" '
                'in API group "" in the namespace "kube-system"'
            ),
            "reason": "Forbidden",
            "details": {"kind": "secrets"},
            "code": 403,
        }
    )
    assert api_error(cluster_scope)["message"] == (
        f'secrets is forbidden: User "{DEFAULT_USER}" cannot list resource "secrets" '
        'in API group "" at the cluster scope'
    )
    assert [(r.path, r.status) for r in kube_cluster.list_requests()][:3] == [
        ("/api/v1/namespaces/kube-system/secrets", 403),
        ("/api/v1/namespaces/kube-system/secrets", 403),
        ("/api/v1/secrets", 403),
    ]


def test_deny_cluster_wide_only(tmp_path: Path) -> None:
    user = "system:serviceaccount:x:y"
    options: dict[str, Any] = {"user": user, "deny_cluster_wide": {"configmaps", "namespaces"}}
    with (
        make_cluster(sample_objects(), **options) as cluster,
        core_v1(cluster.kubeconfig(tmp_path / "config")) as v1,
    ):
        with pytest.raises(ForbiddenException) as cms:
            v1.list_config_map_for_all_namespaces()
        with pytest.raises(ForbiddenException) as nss:
            v1.list_namespace()
        assert len(v1.list_namespaced_config_map("kube-system").items) == 2
    assert api_error(cms) == status_body(
        403, "Forbidden", forbidden_message(user, "configmaps", None), {"kind": "configmaps"}
    )
    assert api_error(nss)["message"] == (
        f'namespaces is forbidden: User "{user}" cannot list resource "namespaces" '
        'in API group "" at the cluster scope'
    )


@pytest.mark.parametrize("token", ["wrong-token", ""], ids=["wrong", "missing"])
def test_unauthorized(kube_cluster: FakeCluster, tmp_path: Path, token: str) -> None:
    kc = kube_cluster.kubeconfig(tmp_path / "config", token=token)
    with core_v1(kc) as v1:
        with pytest.raises(UnauthorizedException) as models:
            v1.list_config_map_for_all_namespaces(limit=10)
        with pytest.raises(ApiException) as raw_call:
            v1.list_namespaced_secret("team-a", _preload_content=False)
    expected = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert models.value.status == raw_call.value.status == 401
    assert api_error(models) == api_error(raw_call) == expected
    sent = [{k.lower() for k in r.headers} for r in kube_cluster.requests]
    assert all(("authorization" in h) == bool(token) for h in sent)
    assert kube_cluster.list_calls == {
        "/api/v1/configmaps": 1,
        "/api/v1/namespaces/team-a/secrets": 1,
    }
    assert kube_cluster.limits == [10, None]  # recorded for refused requests too
    assert kube_cluster.continues == [None, None]


# --------------------------------------------------------------------------- faults


def test_internal_error_fault(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    kube_cluster.faults[("team-b", "configmaps")] = "500"
    with core_v1(kube_cluster.kubeconfig(tmp_path / "config")) as v1:
        with pytest.raises(ServiceException) as exc_info:
            v1.list_namespaced_config_map("team-b")
        assert len(v1.list_namespaced_config_map("team-a").items) == 2
        # All namespaces: pages without team-b objects are fine; the one with them fails.
        token: str | None = None
        pages = 0
        with pytest.raises(ServiceException):
            while True:
                page = v1.list_config_map_for_all_namespaces(limit=2, _continue=token)
                pages += 1
                token = page.metadata._continue
        assert pages == 3
    assert exc_info.value.status == 500
    status = api_error(exc_info)
    assert status["reason"] == "InternalError"
    assert status["code"] == 500
    assert status["message"].startswith("Internal error occurred: ")


def test_hang_times_out_after_urllib3_retries(tmp_path: Path) -> None:
    faults: dict[tuple[str, str], kubeapi.Fault] = {("team-b", "secrets"): "hang"}
    with make_cluster(sample_objects(), faults=faults, hang_seconds=30) as cluster:
        with core_v1(cluster.kubeconfig(tmp_path / "config")) as v1:
            started = time.monotonic()
            with pytest.raises(urllib3.exceptions.MaxRetryError) as exc_info:
                v1.list_namespaced_secret("team-b", _request_timeout=1)
            elapsed = time.monotonic() - started
            assert len(v1.list_namespaced_secret("team-a").items) == 2
        # urllib3's default Retry(3) re-sends the idempotent GET: four 1 s attempts.
        assert isinstance(exc_info.value.reason, urllib3.exceptions.ReadTimeoutError)
        assert 3.5 < elapsed < 8
        assert cluster.list_calls["/api/v1/namespaces/team-b/secrets"] == 4


def test_hang_without_retries_raises_read_timeout(tmp_path: Path) -> None:
    faults: dict[tuple[str, str], kubeapi.Fault] = {("team-b", "secrets"): "hang"}
    with make_cluster(sample_objects(), faults=faults, hang_seconds=30) as cluster:
        with core_v1(cluster.kubeconfig(tmp_path / "config"), retries=False) as v1:
            started = time.monotonic()
            with pytest.raises(urllib3.exceptions.ReadTimeoutError):
                v1.list_namespaced_secret("team-b", _request_timeout=1)
            assert time.monotonic() - started < 3
        assert cluster.list_calls["/api/v1/namespaces/team-b/secrets"] == 1


def test_slow_answer_within_the_timeout_arrives(tmp_path: Path) -> None:
    faults: dict[tuple[str, str], kubeapi.Fault] = {("team-a", "secrets"): "hang"}
    with (
        make_cluster(sample_objects(), faults=faults, hang_seconds=0.3) as cluster,
        core_v1(cluster.kubeconfig(tmp_path / "config")) as v1,
    ):
        started = time.monotonic()
        assert len(v1.list_namespaced_secret("team-a", _request_timeout=5).items) == 2
        assert time.monotonic() - started >= 0.3


def test_dropped_connection(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    kube_cluster.faults[("team-a", "secrets")] = "drop"
    with (
        core_v1(kube_cluster.kubeconfig(tmp_path / "config")) as v1,
        pytest.raises(urllib3.exceptions.MaxRetryError) as exc_info,
    ):
        v1.list_namespaced_secret("team-a")
    assert isinstance(exc_info.value.reason, urllib3.exceptions.ProtocolError)
    assert kube_cluster.list_calls["/api/v1/namespaces/team-a/secrets"] == 4
    assert {r.status for r in kube_cluster.list_requests()} == {0}


# --------------------------------------------------------------------------- contexts, TLS, misc


def test_context_selects_another_cluster(tmp_path: Path) -> None:
    with (
        make_cluster(sample_objects(0)) as first,
        make_cluster(configmaps(3, "elsewhere")) as other,
    ):
        kc = first.kubeconfig(tmp_path / "config", other=other, other_namespace="elsewhere")
        with core_v1(kc) as v1:
            assert len(v1.list_config_map_for_all_namespaces().items) == 7
        with core_v1(kc, "other-ctx") as v1:
            assert [i.metadata.name for i in v1.list_config_map_for_all_namespaces().items] == [
                "cm-00000",
                "cm-00001",
                "cm-00002",
            ]
        _, current = config.list_kube_config_contexts(config_file=str(kc))
        assert current["name"] == "test-ctx"
        assert first.list_calls == {"/api/v1/configmaps": 1}
        assert other.list_calls == {"/api/v1/configmaps": 1}
        assert first.token != other.token


def test_discovery_and_namespaces(kube_cluster: FakeCluster, tmp_path: Path) -> None:
    with config.new_client_from_config(
        config_file=str(kube_cluster.kubeconfig(tmp_path / "config"))
    ) as api_client:
        version = client.VersionApi(api_client).get_code()
        assert (version.major, version.minor, version.git_version) == ("1", "30", "v1.30.2")
        assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
        assert client.ApisApi(api_client).get_api_versions().groups == []
        resources = client.CoreV1Api(api_client).get_api_resources().resources
        assert {r.name for r in resources} >= {"configmaps", "secrets", "namespaces"}
        namespaces = client.CoreV1Api(api_client).list_namespace()
    assert [n.metadata.name for n in namespaces.items] == [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
        "team-a",
        "team-b",
    ]
    assert {n.status.phase for n in namespaces.items} == {"Active"}
    paths = [r.path for r in kube_cluster.requests]
    assert paths == ["/version/", "/api/", "/apis/", "/api/v1/", "/api/v1/namespaces"]


def test_tls_with_the_kubeconfig_ca(tmp_path: Path) -> None:
    with make_cluster(sample_objects(), tls=True) as cluster, make_cluster(tls=True) as stranger:
        assert cluster.url.startswith("https://127.0.0.1:")
        kc = cluster.kubeconfig(tmp_path / "config")
        with core_v1(kc) as v1:
            assert len(v1.list_namespaced_secret("team-a").items) == 2
        # A kubeconfig carrying the wrong CA: verification fails (after urllib3's retries).
        wrong = write_kubeconfig(tmp_path / "wrong", [KubeContext("x", stranger)])
        text = wrong.read_text().replace(
            base64.b64encode(stranger.ca_pem or b"").decode(),
            base64.b64encode(cluster.ca_pem or b"").decode(),
        )
        wrong.write_text(text)
        with core_v1(wrong) as v1, pytest.raises(urllib3.exceptions.MaxRetryError) as exc_info:
            v1.list_namespace()
        assert isinstance(exc_info.value.reason, urllib3.exceptions.SSLError)


def test_raw_http_details(kube_cluster: FakeCluster) -> None:
    """What the client never exercises: gzip for big answers, 404 and 405 Statuses."""
    kube_cluster.add(*configmaps(600, "big", lambda i: {"filler": "x" * 300}))
    auth = {"Authorization": f"Bearer {kube_cluster.token}"}
    connection = http.client.HTTPConnection("127.0.0.1", kube_cluster.port, timeout=10)
    with contextlib.closing(connection) as conn:
        conn.request(
            "GET", "/api/v1/namespaces/big/configmaps", headers={**auth, "Accept-Encoding": "gzip"}
        )
        response = conn.getresponse()
        payload = response.read()
        assert response.getheader("Content-Encoding") == "gzip"
        assert len(json.loads(gzip.decompress(payload))["items"]) == 600

        conn.request("GET", "/api/v1/pods", headers=auth)
        response = conn.getresponse()
        assert response.status == 404
        assert json.loads(response.read())["reason"] == "NotFound"

        conn.request("DELETE", "/api/v1/namespaces/team-a/secrets/db-creds", headers=auth)
        response = conn.getresponse()
        assert response.status == 405
        assert json.loads(response.read())["reason"] == "MethodNotAllowed"


# --------------------------------------------------------------------------- timing


def test_time_listing_10000_configmaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    objects = [o for ns in ("bulk-a", "bulk-b") for o in configmaps(5000, ns)]
    generated = time.perf_counter()
    with make_cluster(objects) as cluster:
        loaded = time.perf_counter()
        kc = cluster.kubeconfig(tmp_path / "config")
        with core_v1(kc) as v1:
            t0 = time.perf_counter()
            count, token = 0, None
            while True:
                body = raw(
                    v1.list_config_map_for_all_namespaces(
                        limit=500, _continue=token, _preload_content=False
                    )
                )
                count += len(body["items"])
                token = body["metadata"].get("continue")
                if not token:
                    break
            listed = time.perf_counter() - t0

            t0 = time.perf_counter()
            model_count, token = 0, None
            while True:
                page = v1.list_config_map_for_all_namespaces(limit=500, _continue=token)
                model_count += len(page.items)
                token = page.metadata._continue
                if not token:
                    break
            listed_models = time.perf_counter() - t0
    assert count == model_count == 10_000
    assert cluster.list_calls["/api/v1/configmaps"] == 40
    with capsys.disabled():
        print(
            f"\n[kubeapi] 10,000 ConfigMaps: generate {generated - started:.2f}s, "
            f"load into fake {loaded - generated:.2f}s, list in 20 pages of 500 "
            f"raw JSON {listed:.2f}s, model objects {listed_models:.2f}s"
        )
