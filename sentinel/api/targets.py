"""What ``POST /v1/scans`` may scan: targets from the API are untrusted.

- git: ``https://`` or ``ssh://`` URLs and scp-like ``user@host:path``, with no
  credentials in them; never ``file://``, ``ext::``/``fd::`` or any other transport
  helper, nothing git could read as an option (a leading ``-`` anywhere it lands on a
  command line), no control characters; a local repository only under ``scan_roots``.
- path and k8s manifests: absolute paths that, with ``..`` and every symlink resolved,
  lie under one of ``scan_roots`` (none configured: no local path at all).
- image: a registry reference; when ``registry_allowlist`` is set, its registry must be
  on it. An absolute path is a local archive or OCI layout, under ``scan_roots`` only; a
  reference that also names a file relative to the service's directory is refused (the
  scanner would read the file).
- k8s cluster: a context of the service's own kubeconfig (``$KUBECONFIG`` or
  ``~/.kube/config``); a request cannot name a kubeconfig.

Each refusal is a ``TargetRefused`` with a one-line reason (the API's 422). What is
accepted is normalised (a resolved path, a stripped URL) and that is what gets scanned.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sentinel.settings import ServiceSection

MAX_TARGET = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# git's transport helpers: "<name>::<address>" (ext::, fd::, and any remote-<name>)
_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP = re.compile(
    r"^(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)$"
)
_HOST = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}$")
_SINCE = re.compile(r"^[0-9A-Za-z:.+ -]{1,40}$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/+-]{0,252}$")
# docker reference: [registry/]path[:tag][@sha256:digest]
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$",
    re.IGNORECASE,
)
KINDS = ("git", "path", "image", "k8s")
_OPTIONS: dict[str, set[str]] = {
    "git": {"branch", "since"},
    "path": set(),
    "image": {"platform", "insecure_registry"},
    "k8s": {"cluster", "namespaces", "include_secrets"},
}


class TargetRefused(ValueError):
    """A scan target or option the service will not scan, with a one-line reason."""


@dataclass(frozen=True)
class ScanTarget:
    kind: str
    target: str  # what is scanned: a resolved path, a URL, a reference, a context
    params: dict[str, Any]


def check_scan(
    kind: str, target: str, options: dict[str, Any], service: ServiceSection
) -> ScanTarget:
    """Validate and normalise one scan request, or raise TargetRefused."""
    if kind not in KINDS:
        raise TargetRefused(f"kind must be one of {', '.join(KINDS)}")
    _plain_text("target", target)
    given = {k for k, v in options.items() if v is not None}
    extra = sorted(given - _OPTIONS[kind])
    if extra:
        raise TargetRefused(f"option {extra[0]!r} does not apply to a {kind} scan")
    if kind == "git":
        return ScanTarget("git", check_git(target, service), _git_options(options))
    if kind == "path":
        return ScanTarget("path", check_local(target, service), {})
    if kind == "image":
        ref = check_image(target, service)
        return ScanTarget("image", ref, _image_options(ref, options, service))
    if options.get("cluster"):
        ctx = check_context(target)
        params: dict[str, Any] = {"cluster": True}
        namespaces = options.get("namespaces") or []
        if not isinstance(namespaces, list) or len(namespaces) > 100:
            raise TargetRefused("namespaces: give a list of at most 100 names")
        for ns in namespaces:
            if not isinstance(ns, str) or not _NAMESPACE.match(ns):
                raise TargetRefused(f"namespaces: {str(ns)[:64]!r} is not a namespace name")
        if namespaces:
            params["namespaces"] = list(namespaces)
        if options.get("include_secrets"):
            params["include_secrets"] = True
        return ScanTarget("k8s", ctx, params)
    if options.get("namespaces") or options.get("include_secrets"):
        raise TargetRefused("namespaces and include_secrets apply to a cluster scan only")
    return ScanTarget("k8s", check_local(target, service), {})


def _plain_text(name: str, value: str) -> None:
    if not value or not value.strip():
        raise TargetRefused(f"{name} is empty")
    if len(value) > MAX_TARGET:
        raise TargetRefused(f"{name} is longer than {MAX_TARGET} characters")
    if _CONTROL.search(value):
        raise TargetRefused(f"{name} contains control characters")
    if value != value.strip():
        raise TargetRefused(f"{name} has leading or trailing spaces")
    if value.startswith("-"):
        raise TargetRefused(f"{name} starts with '-' (it would be read as an option)")


# -- git -----------------------------------------------------------------------------


def check_git(target: str, service: ServiceSection) -> str:
    _plain_text("target", target)
    if _HELPER.match(target):
        helper = target.split("::", 1)[0]
        raise TargetRefused(
            f"git transport helper {helper}:: is refused (it can run commands); use https or ssh"
        )
    m = _SCHEME.match(target)
    if m:
        return _git_url(target, m.group(1).lower(), service)
    scp = _SCP.match(target)
    if scp and "/" not in target.split(":", 1)[0]:
        path = scp.group("path")
        if path.startswith("-") or path.startswith("/-"):
            raise TargetRefused("repository path starts with '-' (it would be read as an option)")
        if ":" in scp.group("user") or "@" in path:
            raise TargetRefused(
                "credentials in a git URL are refused: configure them in the service"
            )
        return target
    if target.startswith("/"):
        return check_local(target, service)
    if ":" in target.split("/", 1)[0]:
        raise TargetRefused("git target is neither https://, ssh:// nor user@host:path")
    raise TargetRefused("a local repository must be an absolute path under a scan root")


def _git_url(target: str, scheme: str, service: ServiceSection) -> str:
    if scheme == "file":
        raise TargetRefused(
            "file:// URLs are refused: a local repository must be under a scan root"
        )
    allowed = {"https", "ssh"} | ({"http"} if service.git_http_loopback else set())
    if scheme not in allowed:
        raise TargetRefused(f"{scheme}:// is refused: git URLs must be https:// or ssh://")
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError:
        raise TargetRefused("git URL is malformed") from None
    del port
    host = parts.hostname or ""
    if parts.password is not None or (parts.username is not None and scheme != "ssh"):
        raise TargetRefused(
            "credentials in a git URL are refused: configure them in the service, not the URL"
        )
    if parts.username is not None and parts.username.startswith("-"):
        raise TargetRefused("git URL user starts with '-' (it would be read as an option)")
    if not host or host.startswith("-") or not (_HOST.match(host) or _is_ip(host)):
        raise TargetRefused("git URL has no valid host name")
    if scheme == "http" and not _loopback(host):
        raise TargetRefused("http:// git URLs are allowed to loopback only; use https://")
    if not parts.path or parts.path == "/":
        raise TargetRefused("git URL names no repository")
    if parts.path.lstrip("/").startswith("-"):
        raise TargetRefused("repository path starts with '-' (it would be read as an option)")
    if parts.query or parts.fragment:
        raise TargetRefused("git URL has a query or fragment")
    return target


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _git_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    branch = options.get("branch")
    if branch is not None:
        if not isinstance(branch, str) or not _REF.match(branch) or ".." in branch:
            raise TargetRefused("branch: not a branch name (letters, digits, . _ / + -)")
        out["branch"] = branch
    since = options.get("since")
    if since is not None:
        if not isinstance(since, str) or not _SINCE.match(since) or since.startswith("-"):
            raise TargetRefused("since: not a date (e.g. 2026-01-01)")
        out["since"] = since
    return out


# -- local paths ---------------------------------------------------------------------


def check_local(target: str, service: ServiceSection) -> str:
    """The resolved path, if it is under a scan root and exists."""
    _plain_text("target", target)
    roots = [Path(os.path.realpath(r)) for r in service.scan_roots]
    if not roots:
        raise TargetRefused("local paths are refused: the service has no scan_roots configured")
    if not target.startswith("/"):
        raise TargetRefused("a local path must be absolute")
    if "," in target:
        raise TargetRefused("a path containing ',' cannot be scanned through the API")
    resolved = Path(os.path.realpath(target))
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise TargetRefused("path is outside the scan roots (after resolving '..' and symlinks)")
    if not resolved.exists():
        raise TargetRefused("no such path under the scan roots")
    return str(resolved)


# -- images --------------------------------------------------------------------------


def registry_of(name: str) -> str:
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def check_image(target: str, service: ServiceSection) -> str:
    _plain_text("target", target)
    if target.startswith("/"):
        return check_local(target, service)
    if "://" in target or target.startswith(".") or _HELPER.match(target):
        raise TargetRefused(
            "image must be a registry reference (registry/name:tag) or an absolute path"
        )
    m = _IMAGE.match(target)
    if not m:
        raise TargetRefused("image is not a valid reference (registry/name[:tag][@sha256:...])")
    registry = registry_of(m.group("name"))
    allow = {r.lower().rstrip("/") for r in service.registry_allowlist}
    if (
        allow
        and registry not in allow
        and not (registry == "docker.io" and {"index.docker.io", "registry-1.docker.io"} & allow)
    ):
        raise TargetRefused(f"registry {registry} is not on the service's registry_allowlist")
    if os.path.lexists(target) or target.endswith((".tar", ".tar.gz", ".tgz")):
        raise TargetRefused("image reference also names a local file; give a full reference")
    return target


def _image_options(ref: str, options: dict[str, Any], service: ServiceSection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    platform = options.get("platform")
    if platform is not None:
        if not isinstance(platform, str) or not _PLATFORM.match(platform):
            raise TargetRefused("platform: give os/arch[/variant], e.g. linux/amd64")
        out["platform"] = platform
    if options.get("insecure_registry"):
        if ref.startswith("/"):
            raise TargetRefused("insecure_registry does not apply to a local image")
        registry = registry_of(ref.split("@", 1)[0])
        host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry
        allow = {r.lower() for r in service.registry_allowlist}
        if not (_loopback(host) or registry in allow):
            raise TargetRefused(
                "insecure_registry: plain HTTP only to a loopback or allowlisted registry"
            )
        out["insecure_registry"] = True
    return out


# -- clusters ------------------------------------------------------------------------


def check_context(target: str) -> str:
    """A context of the service's own kubeconfig ("current-context": its active one)."""
    _plain_text("target", target)
    if not _CONTEXT.match(target):
        raise TargetRefused("cluster context name has characters a context cannot have")
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    # read now, as the scan's child will (the library fixes its default at import)
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except ConfigException:
        raise TargetRefused("the service has no usable kubeconfig for cluster scans") from None
    except OSError:
        raise TargetRefused("the service cannot read its kubeconfig") from None
    names = {c.get("name") for c in contexts or [] if isinstance(c, dict)}
    if target == "current-context":
        if not active:
            raise TargetRefused("the service's kubeconfig has no current context")
        return target
    if target not in names:
        raise TargetRefused(f"the service's kubeconfig has no context {target!r}")
    return target
