"""A loopback stand-in for the Kubernetes API server, for tests of ``sentinel scan k8s --cluster``.

No kube-apiserver can run in the test environment, so :class:`FakeCluster` answers the parts of
the core/v1 API a secrets scan reads, the way the real server (with etcd storage) answers them:

* ``GET /api/v1/configmaps``, ``/api/v1/secrets`` (all namespaces) and
  ``/api/v1/namespaces/{ns}/configmaps``, ``/api/v1/namespaces/{ns}/secrets``: ``ConfigMapList`` /
  ``SecretList`` whose items carry no ``kind``/``apiVersion`` (as the real server's list items),
  ordered by etcd key (``namespace/name`` as a string, so ``team-b`` sorts before ``team``)
* ``GET /api/v1/namespaces`` (``NamespaceList``), and single objects
  (``/api/v1/namespaces/{ns}``, ``/api/v1/namespaces/{ns}/configmaps/{name}``, ...)
* ``/version``, ``/api``, ``/apis``, ``/api/v1`` discovery answers

Lists honour ``limit`` and ``continue``: the continue token is the apiserver's own format
(unpadded URL-safe base64 of ``{"v": "meta.k8s.io/v1", "rv": N, "start": "<key>\\x00"}``),
``metadata.remainingItemCount`` is set while more remain, and continued pages are served from the
snapshot the first page was taken from. An undecodable token answers 400 ``BadRequest``
(``invalid continue token: ...``, as the etcd3 store does); a token older than the last
:meth:`FakeCluster.expire_continue_tokens` ("compaction") answers 410 ``Expired`` with an
inconsistent-continue token in the Status ``metadata.continue``.

Every request needs ``Authorization: Bearer <cluster.token>`` (else 401 ``Unauthorized``).
RBAC is simulated with ``deny`` (``{(namespace, resource)}``; namespace ``"*"`` = every namespace)
and ``deny_cluster_wide`` (``{resource}``): 403 ``Forbidden`` with the real message. RBAC only
grants, so a cluster-scope list of a resource is forbidden whenever any namespace denies it.

``faults`` maps ``(namespace, resource)`` to ``"500"`` (``InternalError``), ``"hang"`` (no answer
for ``hang_seconds``, then the normal answer) or ``"drop"`` (connection closed without an answer).
A namespace key acts like one broken object in that namespace: it hits that namespace's list and
any all-namespaces page that would contain items of that namespace; the key
``(CLUSTER_SCOPE, resource)`` (``""``) hits only the all-namespaces endpoint.

Plain HTTP by default (the client is happy with ``server: http://...``); ``tls=True`` serves HTTPS
with a throwaway CA that the written kubeconfig carries as ``certificate-authority-data``.

The ``kube_cluster`` fixture yields a started cluster holding :func:`sample_objects`; tests that
need other objects use ``with make_cluster(objects, **options) as cluster:``. Note the
``kubernetes`` client picks proxies up from ``HTTP(S)_PROXY``; ``kube_cluster`` removes them, and
tests using :func:`make_cluster` directly should call :func:`clear_proxy_env` first.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import datetime as dt
import gzip
import ipaddress
import json
import random
import socket
import ssl
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from secrets import token_urlsafe
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Obj = dict[str, Any]
Fault = Literal["500", "hang", "drop"]

DEFAULT_USER = "system:serviceaccount:sentinel:scanner"
DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
CLUSTER_SCOPE = ""  # faults key namespace meaning "the all-namespaces endpoint"
ANY_NAMESPACE = "*"  # deny key namespace meaning "every namespace"
CREATED = "2024-05-01T12:00:00Z"
GIT_VERSION = "v1.30.2"
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
GZIP_THRESHOLD = 128 * 1024  # the apiserver compresses larger answers when the client allows it

_KIND_RESOURCE = {"ConfigMap": "configmaps", "Secret": "secrets", "Namespace": "namespaces"}
_RESOURCE_KIND = {v: k for k, v in _KIND_RESOURCE.items()}
_NAMESPACED = frozenset({"configmaps", "secrets"})
_TOKEN_VERSION = "meta.k8s.io/v1"
_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubernetes client sends loopback requests through ``HTTP_PROXY`` if one is set."""
    for var in PROXY_ENV:
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- object builders


def _uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel-test/{kind}/{namespace}/{name}"))


def _meta(
    kind: str,
    name: str,
    namespace: str,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": _uid(kind, namespace, name),
        "creationTimestamp": CREATED,
    }
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def configmap(
    name: str,
    namespace: str = "default",
    data: Mapping[str, str] | None = None,
    *,
    binary_data: Mapping[str, bytes] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """A ConfigMap as the API returns it (``resourceVersion`` is assigned by the cluster)."""
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("ConfigMap", name, namespace, labels, annotations),
    }
    if data is not None:
        obj["data"] = dict(data)
    if binary_data is not None:
        obj["binaryData"] = {k: _b64(v) for k, v in binary_data.items()}
    return obj


def secret(
    name: str,
    namespace: str = "default",
    data: Mapping[str, str | bytes] | None = None,
    *,
    type: str = "Opaque",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    last_applied: bool = False,
) -> Obj:
    """A Secret as the API returns it: ``data`` values given raw here, base64 in the object.

    ``last_applied=True`` adds the ``kubectl.kubernetes.io/last-applied-configuration``
    annotation ``kubectl apply`` leaves behind, which repeats the whole Secret (data included).
    """
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta("Secret", name, namespace, labels, annotations),
        "type": type,
    }
    if data is not None:
        obj["data"] = {k: _b64(v) for k, v in data.items()}
    if last_applied:
        applied = {
            "apiVersion": "v1",
            "data": obj.get("data", {}),
            "kind": "Secret",
            "metadata": {"annotations": {}, "name": name, "namespace": namespace},
            "type": type,
        }
        annotations_out = obj["metadata"].setdefault("annotations", {})
        annotations_out["kubectl.kubernetes.io/last-applied-configuration"] = (
            json.dumps(applied, separators=(",", ":")) + "\n"
        )
    return obj


def configmaps(
    n: int,
    namespace: str = "default",
    data_fn: Callable[[int], Mapping[str, str]] | None = None,
    *,
    prefix: str = "cm",
) -> list[Obj]:
    """``n`` ConfigMaps named ``{prefix}-00000``... (zero-padded, so name order is index order)."""
    width = max(5, len(str(n - 1)))
    fn = data_fn or (lambda i: {"index": str(i), "setting": f"value-{i}"})
    return [configmap(f"{prefix}-{i:0{width}d}", namespace, fn(i)) for i in range(n)]


def secrets(
    n: int,
    namespace: str = "default",
    data_fn: Callable[[int], Mapping[str, str | bytes]] | None = None,
    *,
    prefix: str = "secret",
    type: str = "Opaque",
) -> list[Obj]:
    """``n`` Secrets named ``{prefix}-00000``...; ``data_fn(i)`` gives raw (not base64) values."""
    width = max(5, len(str(n - 1)))
    fn = data_fn or (lambda i: {"index": str(i)})
    return [secret(f"{prefix}-{i:0{width}d}", namespace, fn(i), type=type) for i in range(n)]


def sample_objects(seed: int = 0) -> list[Obj]:
    """What ``kube_cluster`` holds: 7 ConfigMaps and 5 Secrets over default, team-a, team-b and
    kube-system. Secret values are random at run time (no credential-shaped literals here)."""
    rnd = random.Random(f"kubeapi-{seed}")

    def pw() -> str:
        return "".join(
            rnd.choice("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(20)
        )

    return [
        configmap("app-config", "default", {"LOG_LEVEL": "info", "FEATURE_X": "on"}),
        configmap("kube-root-ca.crt", "default", {"ca.crt": "-----BEGIN CERTIFICATE-----\n..."}),
        configmap("settings", "team-a", {"db_host": "db.team-a.svc", "db_user": "app"}),
        configmap(
            "blob", "team-a", {"readme": "binary below"}, binary_data={"blob.bin": b"\x00\x01"}
        ),
        configmap("settings", "team-b", {"endpoint": "https://api.example.test"}),
        configmap(
            "coredns", "kube-system", {"Corefile": ".:53 {\n    forward . /etc/resolv.conf\n}"}
        ),
        configmap("extension-apiserver-authentication", "kube-system", {"client-ca-file": "..."}),
        secret("db-creds", "team-a", {"username": "app", "password": pw()}, last_applied=True),
        secret(
            "registry",
            "team-a",
            {
                ".dockerconfigjson": json.dumps(
                    {"auths": {"registry.example.test": {"auth": _b64("u:" + pw())}}}
                )
            },
            type="kubernetes.io/dockerconfigjson",
        ),
        secret("api-key", "team-b", {"key": pw()}),
        secret(
            "tls-cert", "default", {"tls.crt": "cert", "tls.key": "key"}, type="kubernetes.io/tls"
        ),
        secret(
            "bootstrap-token-abcdef",
            "kube-system",
            {"token-id": "abcdef", "token-secret": pw()[:16]},
            type="bootstrap.kubernetes.io/token",
        ),
    ]


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class _Entry:
    resource: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    item: bytes  # JSON as a list item: no kind/apiVersion
    full: bytes  # JSON as a single GET answers it


class _Index:
    """Entries sorted by their etcd key relative to the resource (or namespace) prefix."""

    def __init__(self, entries: Sequence[_Entry], key: Callable[[_Entry], str]) -> None:
        pairs = sorted(((key(e), e) for e in entries), key=lambda p: p[0])
        self.keys = [k for k, _ in pairs]
        self.entries = [e for _, e in pairs]


@dataclass
class _State:
    rv: int
    all: dict[str, _Index]  # resource -> every object
    by_ns: dict[str, dict[str, _Index]]  # resource -> namespace -> that namespace's objects


def _build_state(rv: int, objects: Iterable[_Entry]) -> _State:
    grouped: dict[str, list[_Entry]] = {r: [] for r in _RESOURCE_KIND}
    for entry in objects:
        grouped[entry.resource].append(entry)
    state = _State(rv, {}, {})
    for resource, entries in grouped.items():
        if resource in _NAMESPACED:
            state.all[resource] = _Index(entries, lambda e: f"{e.namespace}/{e.name}")
            per_ns: dict[str, list[_Entry]] = {}
            for e in entries:
                per_ns.setdefault(e.namespace, []).append(e)
            state.by_ns[resource] = {ns: _Index(es, lambda e: e.name) for ns, es in per_ns.items()}
        else:
            state.all[resource] = _Index(entries, lambda e: e.name)
    return state


def _encode_continue(rv: int, start: str) -> str:
    raw = _dumps({"v": _TOKEN_VERSION, "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_continue(token: str) -> tuple[int, str]:
    """(rv, start key) like apiserver's storage.DecodeContinue; ValueError when not valid."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"continue key is not valid: {exc}") from None
    if not isinstance(decoded, dict) or decoded.get("v") != _TOKEN_VERSION:
        raise ValueError(
            f"continue key is not valid: server does not recognize this encoded key "
            f"(version {_TOKEN_VERSION})"
        )
    rv, start = decoded.get("rv"), decoded.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or not isinstance(start, str) or not start:
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion")
    if rv == 0:
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion")
    return rv, start


# --------------------------------------------------------------------------- statuses


def status_body(
    code: int, reason: str, message: str, details: Obj | None = None, metadata: Obj | None = None
) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": metadata or {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def forbidden_message(user: str, resource: str, namespace: str | None, verb: str = "list") -> str:
    """The apiserver's RBAC denial text; ``namespace=None`` for the cluster scope."""
    where = "at the cluster scope" if namespace is None else f'in the namespace "{namespace}"'
    return (
        f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "" {where}'
    )


class _Answer(Exception):
    """Raised inside request handling to answer with a Status."""

    def __init__(self, body: Obj) -> None:
        super().__init__(body["message"])
        self.body = body


# --------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int  # 0 when the connection was dropped (or abandoned at shutdown) unanswered


@dataclass(frozen=True)
class KubeContext:
    """One kubeconfig context. ``token=None`` means the cluster's token, ``""`` no token at all."""

    name: str
    cluster: FakeCluster
    token: str | None = None
    namespace: str | None = None


class FakeCluster:
    """A started-on-demand fake API server; use as a context manager or start()/stop()."""

    def __init__(
        self,
        objects: Iterable[Obj] = (),
        *,
        token: str | None = None,
        user: str = DEFAULT_USER,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        deny: Iterable[tuple[str, str]] = (),
        deny_cluster_wide: Iterable[str] = (),
        faults: Mapping[tuple[str, str], Fault] | None = None,
        hang_seconds: float = 10.0,
        tls: bool = False,
        git_version: str = GIT_VERSION,
    ) -> None:
        self.token = token if token is not None else token_urlsafe(24)
        self.user = user
        # Configuration; tests may change these while the server runs.
        self.deny: set[tuple[str, str]] = set(deny)
        self.deny_cluster_wide: set[str] = set(deny_cluster_wide)
        self.faults: dict[tuple[str, str], Fault] = dict(faults or {})
        self.hang_seconds = hang_seconds
        self.tls = tls
        self.git_version = git_version
        # Counters.
        self.requests: list[RequestRecord] = []
        self.list_calls: Counter[str] = Counter()  # list requests received, by path
        self.limits: list[int | None] = []  # `limit` of each list request, in order
        self.continues: list[str | None] = []  # `continue` of each list request, in order
        # Storage.
        self._lock = threading.Lock()
        self._rv = 1000
        self._objects: dict[tuple[str, str, str], _Entry] = {}
        self._states: dict[int, _State] = {}
        self._compacted = 0  # continue tokens with an older rv answer 410
        self._add_locked([self._namespace_obj(ns) for ns in namespaces])
        self._add_locked(list(objects))
        # Server.
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ca_pem: bytes | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeCluster:
        if self._server is not None:
            raise RuntimeError("already started")
        context = None
        if self.tls:
            context, self.ca_pem = _tls_context()
        self._stopping.clear()
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-kube-apiserver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # ends "hang" faults at once
        server.shutdown()
        server.abort_connections()  # idle keep-alive connections end their handler threads
        server.server_close()  # joins the handler threads
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- kubeconfig

    def kubeconfig(
        self,
        path: Path | str,
        context: str = "test-ctx",
        token: str | None = None,
        *,
        namespace: str | None = None,
        other: FakeCluster | None = None,
        other_context: str = "other-ctx",
        other_namespace: str | None = None,
    ) -> Path:
        """Write a kubeconfig with two contexts: ``context`` (current) on this cluster and
        ``other_context`` on ``other`` (default: this cluster again, e.g. with another default
        namespace). ``token=None`` uses the cluster's token; ``token=""`` writes no token."""
        return write_kubeconfig(
            path,
            [
                KubeContext(context, self, token, namespace),
                KubeContext(other_context, other or self, None, other_namespace),
            ],
            current=context,
        )

    # ---------------------------------------------------------------- objects

    def add(self, *objects: Obj) -> None:
        """Create or replace objects (one new resourceVersion for the batch)."""
        with self._lock:
            self._add_locked(list(objects))

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            del self._objects[(resource, namespace, name)]
            self._rv += 1
            self._snapshot_locked()

    def expire_continue_tokens(self) -> None:
        """Compaction: every continue token issued so far now answers 410 Expired."""
        with self._lock:
            self._rv += 1
            self._compacted = self._rv
            self._snapshot_locked()
            self._states = {self._rv: self._states[self._rv]}

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.list_calls.clear()
            self.limits.clear()
            self.continues.clear()

    def list_requests(self, path: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.requests
                if _parse_path(r.path)[0] == "list" and (path is None or r.path == path)
            ]

    def _namespace_obj(self, name: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": _uid("Namespace", "", name),
                "creationTimestamp": CREATED,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def _add_locked(self, objects: list[Obj]) -> None:
        if not objects:
            return
        implicit: set[str] = set()
        for raw in objects:
            self._rv += 1
            entry = self._normalize(raw, self._rv)
            self._objects[(entry.resource, entry.namespace, entry.name)] = entry
            if entry.namespace:
                implicit.add(entry.namespace)
        for ns in sorted(implicit):
            if ("namespaces", "", ns) not in self._objects:
                self._rv += 1
                self._objects[("namespaces", "", ns)] = self._normalize(
                    self._namespace_obj(ns), self._rv
                )
        self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        self._states[self._rv] = _build_state(self._rv, self._objects.values())

    @staticmethod
    def _normalize(raw: Obj, rv: int) -> _Entry:
        obj: Obj = json.loads(json.dumps(raw))  # deep copy; must be JSON-serialisable
        kind = obj.get("kind")
        if kind not in _KIND_RESOURCE:
            raise ValueError(f"unsupported kind {kind!r} (ConfigMap, Secret, Namespace)")
        resource = _KIND_RESOURCE[kind]
        obj["apiVersion"] = "v1"
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{kind} needs a metadata.name without '/': {meta!r}")
        if resource in _NAMESPACED:
            namespace = meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
            namespace = ""
        meta.setdefault("uid", _uid(kind, namespace, name))
        meta.setdefault("resourceVersion", str(rv))
        meta.setdefault("creationTimestamp", CREATED)
        if kind == "Secret":
            # stringData is write-only: the API folds it into data and never returns it.
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                obj.setdefault("data", {}).update({k: _b64(v) for k, v in string_data.items()})
            obj.setdefault("type", "Opaque")
        item = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        full = {"kind": kind, "apiVersion": "v1", **item}
        return _Entry(resource, namespace, name, _dumps(item), _dumps(full))

    # ---------------------------------------------------------------- request handling

    def _forbidden(self, resource: str, namespace: str | None, verb: str) -> _Answer:
        return _Answer(
            status_body(
                403,
                "Forbidden",
                forbidden_message(self.user, resource, namespace, verb),
                {"kind": resource},
            )
        )

    def _check_rbac(self, resource: str, namespace: str | None, verb: str) -> None:
        if namespace is None:
            denied = resource in self.deny_cluster_wide or any(r == resource for _, r in self.deny)
        else:
            denied = (namespace, resource) in self.deny or (ANY_NAMESPACE, resource) in self.deny
        if denied:
            raise self._forbidden(resource, namespace, verb)

    def _list(
        self, resource: str, namespace: str | None, query: dict[str, list[str]]
    ) -> tuple[bytes, set[str]]:
        """The list body and the namespaces of the items it holds."""

        def param(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        limit_s, token = param("limit"), param("continue") or None
        limit: int | None = None
        if limit_s:
            try:
                limit = int(limit_s)
            except ValueError:
                raise _Answer(
                    status_body(400, "BadRequest", f'invalid value "{limit_s}" for limit')
                ) from None
        if param("watch") in ("true", "1"):
            raise _Answer(status_body(400, "BadRequest", "watch is not supported by the fake"))
        for selector in ("labelSelector", "fieldSelector"):
            if param(selector):
                raise _Answer(status_body(400, "BadRequest", f"{selector} is not supported"))
        self._check_rbac(resource, namespace, "list")

        with self._lock:
            current, compacted, states = self._rv, self._compacted, self._states
            start: str | None = None
            rv = current
            if token is not None:
                if (param("resourceVersion") or "0") != "0":
                    raise _Answer(
                        status_body(
                            400,
                            "BadRequest",
                            "specifying resource version is not allowed when using continue",
                        )
                    )
                try:
                    token_rv, start = _decode_continue(token)
                except ValueError as exc:
                    raise _Answer(
                        status_body(400, "BadRequest", f"invalid continue token: {exc}")
                    ) from None
                if token_rv > 0:
                    if token_rv < compacted or token_rv not in states:
                        raise _Answer(
                            status_body(
                                410,
                                "Expired",
                                _EXPIRED_MESSAGE,
                                metadata={"continue": _encode_continue(-1, start)},
                            )
                        )
                    rv = token_rv
            state = states[rv]
        empty = _Index([], lambda e: e.name)
        if namespace is None:
            index = state.all[resource]
        else:
            index = state.by_ns.get(resource, {}).get(namespace, empty)
        total = len(index.keys)
        lo = bisect.bisect_left(index.keys, start) if start is not None else 0
        hi = total if not limit or limit <= 0 else min(total, lo + limit)
        page = index.entries[lo:hi]
        meta: Obj = {"resourceVersion": str(rv)}
        if hi < total:
            meta["continue"] = _encode_continue(rv, index.keys[hi - 1] + "\x00")
            meta["remainingItemCount"] = total - hi
        head = _dumps(
            {"kind": f"{_RESOURCE_KIND[resource]}List", "apiVersion": "v1", "metadata": meta}
        )
        body = head[:-1] + b',"items":[' + b",".join(e.item for e in page) + b"]}"
        return body, {e.namespace for e in page}

    def _fault_for(
        self, resource: str, namespace: str | None, page_namespaces: set[str]
    ) -> Fault | None:
        faults = dict(self.faults)
        if namespace is not None:
            return faults.get((namespace, resource))
        if (CLUSTER_SCOPE, resource) in faults:
            return faults[(CLUSTER_SCOPE, resource)]
        for (ns, res), fault in sorted(faults.items()):
            if res == resource and ns in page_namespaces:
                return fault
        return None

    def _get(self, resource: str, namespace: str, name: str) -> bytes:
        self._check_rbac(resource, namespace or None, "get")
        with self._lock:
            entry = self._objects.get((resource, namespace, name))
        if entry is None:
            raise _Answer(
                status_body(
                    404,
                    "NotFound",
                    f'{resource} "{name}" not found',
                    {"name": name, "kind": resource},
                )
            )
        return entry.full

    def _discovery(self, path: str) -> bytes | None:
        path = path.rstrip("/")  # the client asks for /version/, /api/, /apis/
        if path == "/version":
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            return _dumps(
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": self.git_version,
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2024-06-11T20:20:00Z",
                    "goVersion": "go1.22.4",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if path == "/api":
            return _dumps(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                    ],
                }
            )
        if path == "/apis":
            return _dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            resources = [
                {
                    "name": resource,
                    "singularName": kind.lower(),
                    "namespaced": resource in _NAMESPACED,
                    "kind": kind,
                    "verbs": _VERBS,
                    **(
                        {"shortNames": [short]}
                        if (short := {"configmaps": "cm", "namespaces": "ns"}.get(resource))
                        else {}
                    ),
                }
                for resource, kind in sorted(_RESOURCE_KIND.items())
            ]
            return _dumps({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
        return None


def _parse_path(path: str) -> tuple[str, str, str | None, str | None]:
    """(verb, resource, namespace, name) for a core/v1 path; verb "" when not one."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] != ["api", "v1"]:
        return "", "", None, None
    rest = parts[2:]
    if len(rest) == 1 and rest[0] in _RESOURCE_KIND:
        return "list", rest[0], None, None
    if len(rest) == 2 and rest[0] == "namespaces":
        return "get", "namespaces", "", rest[1]
    if len(rest) == 3 and rest[0] == "namespaces" and rest[2] in _NAMESPACED:
        return "list", rest[2], rest[1], None
    if len(rest) == 4 and rest[0] == "namespaces" and rest[2] in _NAMESPACED:
        return "get", rest[2], rest[1], rest[3]
    return "", "", None, None


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads
    block_on_close = True

    def __init__(self, cluster: FakeCluster, context: ssl.SSLContext | None) -> None:
        self.cluster = cluster
        self.ssl_context = context
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # Handshake in the handler thread, so a silent client cannot stall accept().
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # client went away, TLS refused, ...
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections close after this
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        status = 0
        try:
            status = self._serve(cluster, url.path, query)
        finally:
            record = RequestRecord("GET", url.path, query, dict(self.headers.items()), status)
            with cluster._lock:
                cluster.requests.append(record)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send(
            405,
            _dumps(
                status_body(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            ),
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed

    def _serve(self, cluster: FakeCluster, path: str, query: dict[str, list[str]]) -> int:
        verb, resource, namespace, name = _parse_path(path)
        if verb == "list":  # counted whatever the answer (401, 403, ...)
            limit = (query.get("limit") or [""])[-1]
            with cluster._lock:
                cluster.list_calls[path] += 1
                cluster.limits.append(int(limit) if limit.isdigit() else None)
                cluster.continues.append((query.get("continue") or [""])[-1] or None)
        try:
            # the apiserver takes the scheme in any case (in-cluster clients send "bearer")
            scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or presented != cluster.token:
                raise _Answer(status_body(401, "Unauthorized", "Unauthorized"))
            if verb == "list":
                body, page_namespaces = cluster._list(resource, namespace, query)
                fault = cluster._fault_for(resource, namespace, page_namespaces)
                if fault == "drop":
                    self.close_connection = True
                    return 0
                if fault == "hang" and cluster._stopping.wait(cluster.hang_seconds):
                    self.close_connection = True
                    return 0
                if fault == "500":
                    where = f"{namespace}/" if namespace else ""
                    message = (
                        f'Internal error occurred: unable to transform key "/registry/{resource}/'
                        f'{where}": injected fault'
                    )
                    raise _Answer(
                        status_body(
                            500, "InternalError", message, {"causes": [{"message": message}]}
                        )
                    )
                return self._send(200, body)
            if verb == "get":
                assert name is not None and namespace is not None
                return self._send(200, cluster._get(resource, namespace, name))
            found = cluster._discovery(path)
            if found is None:
                raise _Answer(
                    status_body(
                        404, "NotFound", "the server could not find the requested resource", {}
                    )
                )
            return self._send(200, found)
        except _Answer as answer:
            return self._send(answer.body["code"], _dumps(answer.body))

    def _send(self, status: int, payload: bytes) -> int:
        headers = [
            ("Audit-Id", str(uuid.uuid4())),
            ("Cache-Control", "no-cache, private"),
            ("Content-Type", "application/json"),
        ]
        if len(payload) > GZIP_THRESHOLD and "gzip" in self.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload, compresslevel=1)
            headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        try:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True
        return status


def _tls_context() -> tuple[ssl.SSLContext, bytes]:
    """A server context for 127.0.0.1/localhost signed by a fresh CA; returns (context, CA PEM)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sentinel-test-kubernetes-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="fake-kube-tls-") as tmp:
        cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context, ca.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------- kubeconfig


def write_kubeconfig(
    path: Path | str, contexts: Sequence[KubeContext], current: str | None = None
) -> Path:
    """A kubeconfig (mode 0600) with one cluster and one user per context."""
    clusters, users, ctxs = [], [], []
    for ctx in contexts:
        cluster: Obj = {"server": ctx.cluster.url}
        if ctx.cluster.tls:
            assert ctx.cluster.ca_pem is not None
            cluster["certificate-authority-data"] = _b64(ctx.cluster.ca_pem)
        token = ctx.cluster.token if ctx.token is None else ctx.token
        clusters.append({"name": f"{ctx.name}-cluster", "cluster": cluster})
        users.append({"name": f"{ctx.name}-user", "user": {"token": token} if token else {}})
        context: Obj = {"cluster": f"{ctx.name}-cluster", "user": f"{ctx.name}-user"}
        if ctx.namespace:
            context["namespace"] = ctx.namespace
        ctxs.append({"name": ctx.name, "context": context})
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": ctxs,
        "current-context": current or contexts[0].name,
    }
    out = Path(path)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    out.chmod(0o600)
    return out


# --------------------------------------------------------------------------- fixtures


@contextlib.contextmanager
def make_cluster(objects: Iterable[Obj] = (), **options: Any) -> Iterator[FakeCluster]:
    """``with make_cluster(objs, deny={...}, faults={...}) as cluster:`` - started, then stopped."""
    cluster = FakeCluster(objects, **options)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    """A running FakeCluster with :func:`sample_objects`; set ``deny``/``faults`` on it freely."""
    clear_proxy_env(monkeypatch)
    with make_cluster(sample_objects()) as cluster:
        yield cluster
