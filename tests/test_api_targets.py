"""Scan targets from the API are untrusted: every refusal says why in one line, and what
is accepted is what gets scanned (a resolved path, not the path as given)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentinel.api.targets import TargetRefused, check_scan
from sentinel.settings import ServiceSection


def _svc(tmp_path: Path, **kw) -> ServiceSection:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return ServiceSection(scan_roots=[root], **kw)


def _refused(kind: str, target: str, svc: ServiceSection, options=None) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(TargetRefused) as err:
        check_scan(kind, target, options or {}, svc)
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("file:///etc", "file://"),
        ("FILE:///etc", "file://"),
        ("ext::sh -c touch% /tmp/pwned", "transport helper ext::"),
        ("fd::17", "transport helper fd::"),
        ("remote-x::whatever", "transport helper remote-x::"),
        ("git://example.com/r.git", "git:// is refused"),
        ("http://example.com/r.git", "http:// is refused"),
        ("--upload-pack=touch /tmp/x", "starts with '-'"),
        ("-oProxyCommand=x", "starts with '-'"),
        ("ssh://-oProxyCommand=x/r", "no valid host"),
        ("ssh://git@example.com/-r", "starts with '-'"),
        ("git@example.com:-r", "starts with '-'"),
        ("https://user:pw@example.com/r.git", "credentials"),
        ("https://ghp_token@example.com/r.git", "credentials"),
        ("ssh://git:pw@example.com/r.git", "credentials"),
        ("https://example.com/r.git\nfoo", "control characters"),
        ("https://example.com/r\x00.git", "control characters"),
        ("https://example.com/", "names no repository"),
        ("https:///r.git", "no valid host"),
        ("relative/repo", "absolute path"),
        ("example.com:r.git", "neither https"),
        (" https://example.com/r.git", "spaces"),
        ("", "empty"),
    ],
)
def test_git_targets_refused(tmp_path: Path, target: str, says: str) -> None:
    assert says in _refused("git", target, _svc(tmp_path))


@pytest.mark.parametrize(
    "target",
    [
        "https://github.com/org/repo.git",
        "https://git.example.com:8443/org/repo",
        "ssh://git@github.com/org/repo.git",
        "ssh://github.com:2222/org/repo.git",
        "git@github.com:org/repo.git",
    ],
)
def test_git_urls_accepted(tmp_path: Path, target: str) -> None:
    assert check_scan("git", target, {}, _svc(tmp_path)).target == target


def test_http_git_only_to_loopback_when_enabled(tmp_path: Path) -> None:
    svc = _svc(tmp_path, git_http_loopback=True)
    assert check_scan("git", "http://127.0.0.1:9/r.git", {}, svc).target
    assert "loopback only" in _refused("git", "http://example.com/r.git", svc)


def test_local_paths_only_under_scan_roots(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    root = tmp_path / "root"
    (root / "proj").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    assert check_scan("path", str(root / "proj"), {}, svc).target == str(root / "proj")
    # `..` and symlinks are resolved before the check, and the resolved path is scanned
    assert "outside the scan roots" in _refused("path", str(root / ".." / "outside"), svc)
    assert "outside the scan roots" in _refused("path", str(root / "link"), svc)
    assert "outside the scan roots" in _refused("path", "/etc", svc)
    assert "outside the scan roots" in _refused("git", "/etc", svc)
    assert "outside the scan roots" in _refused("k8s", "/etc", svc)
    assert "outside the scan roots" in _refused("image", "/etc/passwd", svc)
    assert "no such path" in _refused("path", str(root / "missing"), svc)
    assert "absolute" in _refused("path", "proj", svc)
    assert "','" in _refused("path", str(root / "a,b"), svc)
    nothing = ServiceSection()
    assert "no scan_roots" in _refused("path", str(root / "proj"), nothing)
    assert "no scan_roots" in _refused("git", str(root / "proj"), nothing)
    resolved = check_scan("path", str(root / "proj" / ".." / "proj"), {}, svc)
    assert resolved.target == str(root / "proj")


def test_image_registries_limited_to_the_allowlist(tmp_path: Path) -> None:
    svc = _svc(tmp_path, registry_allowlist=["registry.example.com", "127.0.0.1:5000"])
    assert check_scan("image", "registry.example.com/app:1.0", {}, svc).target
    assert check_scan("image", "127.0.0.1:5000/app@sha256:" + "a" * 64, {}, svc).target
    assert "docker.io is not on" in _refused("image", "library/alpine:3", svc)
    assert "evil.example.com is not on" in _refused("image", "evil.example.com/x:1", svc)
    assert "not a valid reference" in _refused("image", "Registry.example.com/APP:!!", svc)
    assert "registry reference" in _refused("image", "https://registry.example.com/x", svc)
    assert "starts with '-'" in _refused("image", "--insecure", svc)
    # plain HTTP only to loopback or an allowlisted registry
    ok = check_scan("image", "127.0.0.1:5000/app:1", {"insecure_registry": True}, svc)
    assert ok.params == {"insecure_registry": True}
    anyreg = _svc(tmp_path)
    assert check_scan("image", "library/alpine:3", {}, anyreg).target == "library/alpine:3"
    assert "plain HTTP" in _refused(
        "image", "example.com/app:1", anyreg, {"insecure_registry": True}
    )


def test_image_reference_naming_a_local_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "img").write_text("x")
    assert "local file" in _refused("image", "app/img", _svc(tmp_path))


def test_options_are_checked_per_kind(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    url = "https://example.com/r.git"
    assert check_scan("git", url, {"branch": "main", "since": "2026-01-01"}, svc).params == {
        "branch": "main",
        "since": "2026-01-01",
    }
    assert "branch" in _refused("git", url, svc, {"branch": "--output=/tmp/x"})
    assert "branch" in _refused("git", url, svc, {"branch": "a..b"})
    assert "since" in _refused("git", url, svc, {"since": "-1"})
    assert "does not apply to a git scan" in _refused("git", url, svc, {"platform": "linux/amd64"})
    assert "platform" in _refused("image", "a.io/x:1", svc, {"platform": "linux amd64"})
    assert "kind must be" in _refused("svn", url, svc)


def test_cluster_contexts_must_be_in_the_services_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = _svc(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: x}}]\n"
        "contexts: [{name: dev, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    ok = check_scan("k8s", "dev", {"cluster": True, "namespaces": ["default"]}, svc)
    assert ok.target == "dev" and ok.params == {"cluster": True, "namespaces": ["default"]}
    assert check_scan("k8s", "current-context", {"cluster": True}, svc).target
    assert "no context 'prod'" in _refused("k8s", "prod", svc, {"cluster": True})
    assert "does not apply" in _refused(
        "k8s", "dev", svc, {"cluster": True, "kubeconfig": "/etc/x"}
    )
    assert "namespace name" in _refused(
        "k8s", "dev", svc, {"cluster": True, "namespaces": ["Bad_NS"]}
    )
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert "kubeconfig" in _refused("k8s", "dev", svc, {"cluster": True})
