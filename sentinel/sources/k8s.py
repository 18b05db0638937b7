"""Kubernetes objects: manifests on disk (or stdin) and live clusters.

What is scanned in an object:

- ``ConfigMap``: every ``data`` value, and every ``binaryData`` value base64-decoded;
- ``Secret``: ``data`` values base64-decoded, ``stringData`` as is. A Secret manifest
  holding real values is itself reported (rule ``k8s.secret-manifest``): base64 is
  not encryption. In a live cluster, Secrets are where credentials belong, so only
  provider rules are reported there (no generic guesses, and not the Secret itself);
- any workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
  and templates of other kinds): ``env[].value`` of every container and init container.

A value is scanned as ``<key>: <value>`` when it is one line, so that a key named
``DB_PASSWORD`` gives the generic detector the name it needs; a multi-line value (a
config file) is scanned as it is. Lines are counted within the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import content
from detectors.rule import Rule
from sentinel.models import Origin
from sentinel.sources.kube_yaml import YamlRefused, documents

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
SECRET_MANIFEST_RULE = "k8s.secret-manifest"
MAX_MANIFEST = 64 * 1024 * 1024  # bytes of one manifest file or of stdin
MAX_PAGE_BYTES = 256 * 1024 * 1024  # bytes of one list page from an API server
MAX_PAGES = 100_000  # pages of one list (50 million objects at the default page size)


def secret_manifest_rule() -> Rule:
    """The structural rule: found by walking the manifest, not by a pattern (so it is
    never compiled into the engine; reporters know it through the factory)."""
    return Rule(
        id=SECRET_MANIFEST_RULE,
        description="Kubernetes Secret manifest with a real value (base64 is not encryption)",
        regex=r"(?!x)x",
        keywords=(),
        severity="high",
        examples=(),
        confidence="high",
    )


@dataclass
class KubeStats:
    files: int = 0
    documents: int = 0
    objects: int = 0
    values: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


@dataclass(frozen=True)
class Value:
    """One scannable value of one object."""

    kind: str
    namespace: str
    name: str
    key: str
    data: bytes
    provider_only: bool = False  # a live Secret: report provider rules only


def _text(key: str, raw: bytes) -> bytes:
    if b"\n" not in raw.rstrip(b"\n"):
        return key.encode("utf-8", "replace") + b": " + raw
    return raw


def values_of(
    obj: dict[str, Any], *, live: bool, on_error: Callable[[str], None]
) -> Iterator[Value]:
    kind = str(obj.get("kind") or "")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = str(meta.get("name") or "")
    ns = str(meta.get("namespace") or ("" if live else "default"))
    where = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
    if kind == "ConfigMap":
        for key, v in _mapping(obj.get("data")):
            yield Value(kind, ns, name, key, _text(key, str(v).encode("utf-8", "replace")))
        for key, v in _mapping(obj.get("binaryData")):
            raw = _b64(v)
            if raw is None:
                on_error(f"{where}: binaryData {key!r} is not valid base64")
                continue
            yield Value(kind, ns, name, key, raw)
    elif kind == "Secret":
        for key, v in _mapping(obj.get("data")):
            raw = _b64(v)
            if raw is None:
                on_error(f"{where}: data {key!r} is not valid base64")
                continue
            yield Value(kind, ns, name, key, _text(key, raw), provider_only=live)
        for key, v in _mapping(obj.get("stringData")):
            yield Value(
                kind,
                ns,
                name,
                key,
                _text(key, str(v).encode("utf-8", "replace")),
                provider_only=live,
            )
    else:
        for key, v in _env_values(obj):
            yield Value(kind, ns, name, key, f"{key}={v}".encode("utf-8", "replace"))


def _mapping(m: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(m, dict):
        for k, v in m.items():
            if v is not None and not isinstance(v, (dict, list)):
                yield str(k), v


def _b64(v: Any) -> bytes | None:
    try:
        return base64.b64decode(str(v).strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj.get("kind") == "Pod":
        yield spec
    # Deployment & co: spec.template.spec; CronJob: spec.jobTemplate.spec.template.spec
    tpl = spec.get("template")
    if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
        yield tpl["spec"]
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        yield from _pod_specs({"kind": "Job", "spec": job.get("spec")})


def _env_values(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for pod in _pod_specs(obj):
        for group in ("initContainers", "containers", "ephemeralContainers"):
            containers = pod.get(group)
            if not isinstance(containers, list):
                continue
            for c in containers:
                if not isinstance(c, dict) or not isinstance(c.get("env"), list):
                    continue
                cname = str(c.get("name") or "")
                for e in c["env"]:
                    if isinstance(e, dict) and isinstance(e.get("value"), (str, int, float)):
                        yield f"{cname}.env.{e.get('name', '')}", str(e["value"])


def objects_in(doc: Any) -> Iterator[dict[str, Any]]:
    """The objects of one document: itself, or the items of a ``*List``."""
    if not isinstance(doc, dict):
        return
    kind = str(doc.get("kind") or "")
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        item_kind = kind[: -len("List")] if kind != "List" else ""
        for item in doc["items"]:
            if isinstance(item, dict):
                if item_kind and not item.get("kind"):
                    item = {**item, "kind": item_kind}
                yield item
    elif kind:
        yield doc


# -- manifests on disk ----------------------------------------------------------------------


def manifest_files(paths: list[str], stats: KubeStats) -> Iterator[tuple[str, str | None]]:
    """(display name, chart directory or None) for every manifest, chart or stdin."""
    for p in paths:
        if p == "-":
            yield "-", None
            continue
        path = Path(p)
        if not path.exists():
            stats.errors.append(f"{p}: no such file or directory")
            continue
        if not path.is_dir():
            yield str(path), None  # a FIFO or device is refused when read, not waited on
            continue
        tree = _tree(path, stats)
        charts = {f.parent for f in tree if f.name == "Chart.yaml"}
        for chart in sorted(charts):
            yield str(chart), str(chart)
        for f in tree:
            if f.suffix.lower() in MANIFEST_SUFFIXES:
                if any(c == f.parent or c in f.parents for c in charts):
                    continue  # part of a chart: rendered (or scanned raw) with it
                yield str(f), None


def _tree(top: Path, stats: KubeStats) -> list[Path]:
    """Every regular file under ``top``, sorted; an explicit stack (any depth), and
    symlinks are not followed (no loops). Unlistable directories are counted."""
    import os
    import stat

    out: list[Path] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            stats.skip("unreadable")
            continue
        for e in entries:
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except OSError:
                stats.skip("unreadable")
                continue
            if stat.S_ISDIR(mode):
                stack.append(Path(e.path))
            elif stat.S_ISREG(mode):
                out.append(Path(e.path))
    return sorted(out)


def render_chart(chart: str, timeout: float = 120.0) -> tuple[str | None, str]:
    """``helm template`` output, or None (and why) when helm is absent or fails."""
    import shutil
    import subprocess

    helm = shutil.which("helm")
    if helm is None:
        return None, "helm is not installed"
    try:
        res = subprocess.run(
            [helm, "template", "sentinel-scan", chart],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"helm failed: {exc}"
    if res.returncode != 0:
        first = res.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        return None, f"helm template failed: {first[0] if first else res.returncode}"
    return res.stdout.decode("utf-8", "replace"), ""


# -- scanning ---------------------------------------------------------------------------------


class ValueScanner:
    """The engine over object values, with the Secret-manifest rule and the
    provider-only filter for live Secrets."""

    def __init__(self, spec: Any, on_hit: Callable[[Origin, Any], None]) -> None:
        self.engine = spec.build()
        self.generic = {r.id for r in spec.ruleset if getattr(r, "generic", False)}
        self.on_hit = on_hit

    def scan_value(self, v: Value, origin: Origin) -> None:
        from sentinel.scanning import text_hits

        for hit in text_hits(self.engine, v.data):
            if v.provider_only and hit.rule_id in self.generic:
                continue
            self.on_hit(origin, hit)

    def secret_manifest(self, obj: dict[str, Any], origin: Origin) -> None:
        """Report each real value of a Secret manifest (not placeholders, not empty)."""
        from detectors.entropy import shannon
        from detectors.filters import is_placeholder, is_template_variable
        from sentinel.scanning import RawHit

        for field_name in ("data", "stringData"):
            for key, v in _mapping(obj.get(field_name)):
                raw = _b64(v) if field_name == "data" else str(v).encode("utf-8", "replace")
                if raw is None:
                    continue
                value = raw.strip()
                if len(value) < 4 or is_placeholder(value) or is_template_variable(value):
                    continue
                preview = ""
                if content.sniff(value) == content.BINARY:  # never raw bytes in a report
                    text = base64.b64encode(value).decode()
                    preview = f"<binary, {len(value)} bytes>"
                else:
                    text = value.decode("utf-8", "replace")
                last_line = text.count("\n") + 1
                self.on_hit(
                    origin.with_(key=key),
                    RawHit(
                        SECRET_MANIFEST_RULE,
                        text,
                        1,
                        1,
                        last_line,
                        len(text.rsplit("\n", 1)[-1]) + 1,
                        round(shannon(value), 3),
                        "base64" if field_name == "data" else "",
                        redacted=preview,
                    ),
                )


def scan_documents(
    text: str | bytes,
    where: str,
    scanner: ValueScanner,
    stats: KubeStats,
) -> None:
    try:
        for n, doc in documents(text, where):
            stats.documents += 1
            for obj in objects_in(doc):
                scan_object(obj, where, scanner, stats, document=n)
    except YamlRefused as exc:
        stats.errors.append(str(exc))


def scan_object(
    obj: dict[str, Any],
    where: str,
    scanner: ValueScanner,
    stats: KubeStats,
    *,
    document: int | None = None,
    cluster: str | None = None,
) -> None:
    stats.objects += 1
    live = cluster is not None

    def error(msg: str) -> None:
        stats.errors.append(f"{where}: {msg}")

    for v in values_of(obj, live=live, on_error=error):
        stats.values += 1
        stats.bytes += len(v.data)
        origin = Origin(
            source="k8s",
            path=where,
            namespace=v.namespace or None,
            kind=v.kind,
            name=v.name,
            key=v.key,
            cluster=cluster,
            document=document,
        )
        scanner.scan_value(v, origin)
    if not live and obj.get("kind") == "Secret":
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        scanner.secret_manifest(
            obj,
            Origin(
                source="k8s",
                path=where,
                namespace=str(meta.get("namespace") or "default"),
                kind="Secret",
                name=str(meta.get("name") or ""),
                document=document,
            ),
        )


def scan_manifests(paths: list[str], scanner: ValueScanner, stats: KubeStats, stdin: Any) -> None:
    for name, chart in manifest_files(paths, stats):
        if chart is not None:
            rendered, why = render_chart(chart)
            if rendered is not None:
                stats.files += 1
                scan_documents(rendered, f"{chart} (helm template)", scanner, stats)
                continue
            stats.skip("chart_not_rendered")
            _scan_chart_raw(Path(chart), scanner, stats, why)
            continue
        if name == "-":
            data = stdin.read(MAX_MANIFEST + 1)
            if len(data) > MAX_MANIFEST:
                stats.errors.append(f"stdin: more than {MAX_MANIFEST // 1024**2} MiB of manifests")
                continue
        else:
            data = _read_manifest(Path(name), stats)
            if data is None:
                continue
        stats.files += 1
        scan_documents(data, name, scanner, stats)


def _read_manifest(path: Path, stats: KubeStats) -> bytes | None:
    """The file's bytes; a FIFO, device or file over ``MAX_MANIFEST`` is an error in
    the report (never a hang, never a whole file in memory)."""
    from sentinel.sources.safeio import FileTooLarge, NotRegularFile, read_regular

    try:
        return read_regular(path, MAX_MANIFEST)
    except FileTooLarge:
        stats.errors.append(f"{path}: larger than {MAX_MANIFEST // 1024**2} MiB, not read")
    except NotRegularFile as exc:
        stats.errors.append(f"{path}: {exc.kind}, not a manifest file")
    except OSError as exc:
        stats.errors.append(f"{path}: cannot read: {exc.strerror}")
    return None


def _scan_chart_raw(chart: Path, scanner: ValueScanner, stats: KubeStats, why: str) -> None:
    """Without helm: the chart's values and templates as text (templates are not YAML
    until rendered)."""
    for f in _tree(chart, stats):
        if f.suffix.lower() not in (*MANIFEST_SUFFIXES, ".tpl", ".txt"):
            continue
        data = _read_manifest(f, stats)
        if data is None:
            continue
        stats.files += 1
        stats.bytes += len(data)
        scanner.scan_value(
            Value("HelmChart", "", chart.name, str(f.relative_to(chart)), data),
            Origin(source="k8s", path=str(f), kind="HelmChart", name=chart.name),
        )


# -- live clusters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: tuple[str, ...] = ()
    include_secrets: bool = False
    page_size: int = 500
    timeout: float = 30.0
    # what one API server may send: a page's body (the real server caps an object near
    # 1.5 MiB, so a page of 500 is far below this) and the pages of one list
    max_page_bytes: int = MAX_PAGE_BYTES
    max_pages: int = MAX_PAGES


class PageRefused(Exception):
    """A list page that cannot be used; the message says why, in one line."""


def _read_page(resp: Any, limit: int) -> dict[str, Any]:
    """One list page's JSON, read at most ``limit`` bytes, checked for its shape."""
    import json

    try:
        data = resp.read(limit + 1)
    finally:
        resp.release_conn()
    if len(data) > limit:
        raise PageRefused(
            f"a list page is over {limit >> 20} MiB; retry with a smaller --page-size"
        )
    try:
        doc = json.loads(data)
    except RecursionError:
        raise PageRefused("the API server sent JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise PageRefused(f"the API server sent something else than JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PageRefused("the API server's list is not a JSON object")
    items = doc.get("items")
    if items is not None and not isinstance(items, list):
        raise PageRefused("the API server's list has 'items' that is not a list")
    meta = doc.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise PageRefused("the API server's list has 'metadata' that is not an object")
    token = (meta or {}).get("continue")
    if token is not None and not isinstance(token, str):
        raise PageRefused("the API server's continue token is not a string")
    return doc


def _pages(fn: Callable[..., Any], kwargs: dict[str, Any], opts: ClusterOptions) -> Iterator[Any]:
    """The items of one list, page by page to its end. A server that repeats a continue
    token (which would list forever) or sends more than ``opts.max_pages`` pages is
    stopped with ``PageRefused`` after the items already read."""
    import hashlib

    seen: set[bytes] = set()
    token: str | None = None
    for page in range(1, opts.max_pages + 1):
        if token:
            kwargs["_continue"] = token
        resp = fn(
            limit=opts.page_size,
            _preload_content=False,
            _request_timeout=opts.timeout,
            **kwargs,
        )
        doc = _read_page(resp, opts.max_page_bytes)
        yield from doc.get("items") or []
        token = (doc.get("metadata") or {}).get("continue") or None
        if not token:
            return
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if digest in seen:
            raise PageRefused(
                f"the API server repeated a continue token; listing stopped after {page} pages"
            )
        seen.add(digest)
    raise PageRefused(f"listing stopped after {opts.max_pages} pages (the most one list may have)")


def scan_cluster(opts: ClusterOptions, scanner: ValueScanner, stats: KubeStats) -> str:
    """List ConfigMaps (and Secrets) page by page; returns the cluster's name as shown."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from sentinel.errors import SourceError

    try:
        if opts.kubeconfig or not _in_cluster():
            contexts, active = config.list_kube_config_contexts(config_file=opts.kubeconfig)
            name = opts.context or (active or {}).get("name", "")
            if opts.context and opts.context not in {c.get("name") for c in contexts or []}:
                raise SourceError(f"kubeconfig has no context {opts.context!r}")
            api_client = config.new_client_from_config(
                config_file=opts.kubeconfig, context=opts.context
            )
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
            name = "in-cluster"
    except ConfigException as exc:
        raise SourceError(f"cannot load the Kubernetes configuration: {exc}") from None
    except OSError as exc:
        raise SourceError(f"cannot read the kubeconfig: {exc.strerror or exc}") from None
    v1 = client.CoreV1Api(api_client)
    kinds = [("ConfigMap", "config_map")]
    if opts.include_secrets:
        kinds.append(("Secret", "secret"))
    try:
        for kind, noun in kinds:
            scopes: list[str | None] = list(opts.namespaces) or [None]
            for ns in scopes:
                where = f"{name}: {kind.lower()}s" + (f" in namespace {ns}" if ns else "")
                if ns is None:
                    fn = getattr(v1, f"list_{noun}_for_all_namespaces")
                    kwargs: dict[str, Any] = {}
                else:
                    fn = getattr(v1, f"list_namespaced_{noun}")
                    kwargs = {"namespace": ns}
                try:
                    for item in _pages(fn, kwargs, opts):
                        if isinstance(item, dict):
                            item.setdefault("kind", kind)
                            meta = item.get("metadata")
                            meta = meta if isinstance(meta, dict) else {}
                            obj_where = (
                                f"{name}/{meta.get('namespace', '')}/{kind}/{meta.get('name', '')}"
                            )
                            scan_object(item, obj_where, scanner, stats, cluster=name)
                        else:
                            stats.skip("malformed_object")
                except ApiException as exc:
                    msg = _api_error(exc)
                    if exc.status == 403 and ns is None:
                        msg += "; or pass --namespace for the namespaces it may list"
                    stats.errors.append(f"{where}: {msg}")
                except PageRefused as exc:
                    stats.errors.append(f"{where}: {exc}")
                except Exception as exc:  # urllib3 timeouts and connection errors
                    stats.errors.append(f"{where}: {_transport_error(exc, opts.timeout)}")
    finally:
        api_client.close()
    return name


def _in_cluster() -> bool:
    import os

    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and not os.environ.get("KUBECONFIG")
        and not Path("~/.kube/config").expanduser().exists()
    )


def _api_error(exc: Any) -> str:
    import json

    message = ""
    try:
        body = json.loads((exc.body or b"{}")[: 64 * 1024])
        if isinstance(body, dict):
            message = str(body.get("message", ""))[:500]
    except (ValueError, TypeError, RecursionError):
        pass
    hint = {
        401: " (check the kubeconfig's credentials)",
        403: " (the scanner needs 'list' on this resource: see docs/k8s-rbac.yaml)",
    }.get(exc.status, "")
    return f"{exc.status} {exc.reason}: {message}{hint}".strip()


def _transport_error(exc: BaseException, timeout: float) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return f"no answer within {timeout:g} s (tried 4 times)"
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:200]
