"""Bare mirrors of remote repositories, fetched from a real smart-HTTP git server on
loopback: created once, brought up to date, tips remembered, and nothing in a URL, in
the served repository or in the mirror's own config gets git to run a program."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.settings import ServiceSection, ServiceSettings
from sentinel.sweeps import mirrors
from sentinel.sweeps.mirrors import MirrorError, sync, sync_mirror
from sentinel.sweeps.urls import RefusedURL
from tests.conftest import GitRepo
from tests.githttp import GitHTTPServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    root = tmp_path / "served"
    root.mkdir()
    srv = GitHTTPServer(root)
    yield srv
    srv.close()


def _settings(tmp_path: Path, **kw: object) -> ServiceSettings:
    svc = {"mirrors_dir": tmp_path / "mirrors", "git_http_loopback": True, **kw}
    return ServiceSettings(service=ServiceSection(**svc))  # type: ignore[arg-type]


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_first_sync_mirrors_every_ref_and_a_later_one_remembers_what_moved(
    tmp_path: Path, server: GitHTTPServer
) -> None:
    work = GitRepo(tmp_path / "work")
    first = work.commit("one", {"a.txt": "a\n"})
    work.git("tag", "v1")
    work.git("branch", "feature")
    url = server.publish(work.path, "app")
    st = _settings(tmp_path)

    s1 = sync(url, st)
    assert s1.created and s1.before == {}
    assert s1.after == {
        "refs/heads/main": first,
        "refs/heads/feature": first,
        "refs/tags/v1": first,
    }
    assert s1.path.parent == tmp_path / "mirrors"
    assert _git(s1.path, "config", "core.bare") == "true"

    second = work.commit("two", {"b.txt": "b\n"})
    work.git("branch", "-D", "feature")
    server.push(work.path, "app", "main")
    subprocess.run(
        ["git", f"--git-dir={server.root / 'app.git'}", "branch", "-D", "feature"],
        check=True,
        capture_output=True,
    )
    s2 = sync(url, st)
    assert not s2.created and s2.path == s1.path
    assert s2.changed() == {
        "refs/heads/main": (first, second),
        "refs/heads/feature": (first, None),  # pruned
    }
    assert _git(s2.path, "rev-parse", "refs/heads/main") == second
    remembered = mirrors.remembered_tips(url, st)
    assert remembered is not None and remembered.before == s1.after and remembered.after == s2.after


def test_the_mirror_name_comes_from_a_hash_and_never_leaves_the_directory(tmp_path: Path) -> None:
    st = _settings(tmp_path)
    a = mirrors.mirror_path("https://github.com/acme/app.git", st)
    assert a == mirrors.mirror_path("https://USER:tok@GitHub.com/acme/app/", st)  # normalised
    assert a.name.startswith("acme-app-") and a.name.endswith(".git")
    for hostile in (
        "https://h.example/../../../etc/passwd",
        "https://h.example/a/..%2f..%2f/x",
        "ssh://h.example/%00/../..",
        "git@h.example:../../.ssh",
    ):
        p = mirrors.mirror_path(hostile, st)
        assert p.parent == tmp_path / "mirrors", hostile
        assert ".." not in p.name and "/" not in p.name


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc", "scheme 'file' is refused"),
        ("ext::sh -c touch% {payload}", "whitespace"),
        ("ext::sh%20-c%20id", "transport helper"),
        ("fd::3", "transport helper"),
        ("-u{payload}", "starts with '-'"),
        ("--upload-pack=touch {payload}", "whitespace"),
        ("--upload-pack=id", "starts with '-'"),
        ("/srv/git/app.git", "local paths are refused"),
        ("../app.git", "local paths are refused"),
        ("http://example.org/app.git", "scheme 'http' is refused"),
        ("ssh://-oProxyCommand=id/x", "valid host"),
        ("git://example.org/app.git", "scheme 'git' is refused"),
    ],
)
def test_urls_that_are_not_https_or_ssh_are_refused_before_git_runs(
    tmp_path: Path, url: str, says: str
) -> None:
    payload = tmp_path / "pwned"
    url = url.replace("{payload}", str(payload))
    with pytest.raises(RefusedURL) as exc:
        sync_mirror(url, _settings(tmp_path))
    msg = str(exc.value)
    assert says in msg and "\n" not in msg
    assert not payload.exists()
    assert not (tmp_path / "mirrors").exists()  # refused before anything was made


def test_plain_http_needs_the_loopback_setting(tmp_path: Path, server: GitHTTPServer) -> None:
    work = GitRepo(tmp_path / "work")
    work.commit("one", {"a.txt": "a\n"})
    url = server.publish(work.path, "app")
    with pytest.raises(RefusedURL, match="scheme 'http' is refused"):
        sync_mirror(url, _settings(tmp_path, git_http_loopback=False))
    assert server.log == []


def test_git_itself_refuses_other_transports_even_past_the_url_check(tmp_path: Path) -> None:
    """The fetch profile is a second wall: a URL rewritten by config or a redirect to
    another transport is refused by git (protocol.allow=never + https/ssh only)."""
    from sentinel.sources.gitcmd import fetch_argv, fetch_env

    target = tmp_path / "t.git"
    subprocess.run(["git", "init", "-q", "--bare", str(target)], check=True)
    payload = tmp_path / "pwned"
    for url in (f"ext::sh -c touch% {payload}", f"file://{tmp_path}", str(tmp_path)):
        res = subprocess.run(
            [*fetch_argv(str(target)), "fetch", "--", url, "+refs/*:refs/*"],
            capture_output=True,
            env=fetch_env(),
            check=False,
        )
        assert res.returncode != 0 and b"not allowed" in res.stderr, url
    assert not payload.exists()


def test_credentials_in_a_url_reach_no_message_no_config_and_no_tips_file(
    tmp_path: Path, server: GitHTTPServer
) -> None:
    work = GitRepo(tmp_path / "work")
    work.commit("one", {"a.txt": "a\n"})
    server.publish(work.path, "app")
    secret = "s3cretTOKENvalue"
    st = _settings(tmp_path)
    good = f"http://x-access-token:{secret}@127.0.0.1:{server.port}/app.git"
    s = sync(good, st)
    assert secret not in s.url
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "mirrors").rglob("*") if p.is_file())
    assert secret.encode() not in on_disk

    with pytest.raises(MirrorError) as exc:
        sync_mirror(f"http://user:{secret}@127.0.0.1:{server.port}/missing.git", st)
    msg = str(exc.value)
    assert secret not in msg and "user" not in msg and "\n" not in msg
    assert msg.startswith(f"cannot fetch http://127.0.0.1:{server.port}/missing.git: ")
    # a failed first sync leaves no half-made mirror behind
    assert not mirrors.mirror_path(f"http://127.0.0.1:{server.port}/missing.git", st).exists()


def test_the_mirrors_own_config_and_hooks_never_run_a_program(
    tmp_path: Path, server: GitHTTPServer
) -> None:
    """Server-side config does not travel with a fetch, but a mirror lives on: if its own
    config or hooks directory were changed between syncs, the next sync must not run
    them. The same plant is shown to run under plain git, so the test has teeth."""
    work = GitRepo(tmp_path / "work")
    work.commit("one", {"a.txt": "a\n"})
    url = server.publish(work.path, "app")
    st = _settings(tmp_path)
    path = sync_mirror(url, st)

    payload = tmp_path / "pwned"
    script = tmp_path / "payload.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {payload}\nexit 0\n')
    script.chmod(0o755)
    hooks = path / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("reference-transaction", "post-fetch", "post-checkout"):
        (hooks / hook).symlink_to(script)
    for key, value in (
        ("core.fsmonitor", str(script)),
        ("core.sshCommand", str(script)),
        ("core.askPass", str(script)),
        ("credential.helper", f"!{script}"),
        ("gc.auto", "1"),
        ("gc.autoDetach", "false"),
        ("uploadpack.packObjectsHook", str(script)),
        ("remote.origin.url", f"ext::{script}"),
        ("remote.origin.uploadpack", str(script)),
    ):
        _git(path, "config", key, value)

    # teeth: the planted hook runs under a plain git fetch into this mirror
    plain = tmp_path / "plain.git"
    subprocess.run(["cp", "-a", str(path), str(plain)], check=True)
    subprocess.run(
        ["git", f"--git-dir={plain}", "fetch", "-q", url, "+refs/*:refs/*"],
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_ALLOW_PROTOCOL": "http"},
    )
    work.commit("nudge", {"n.txt": "n\n"})
    server.push(work.path, "app", "main")
    subprocess.run(
        ["git", f"--git-dir={plain}", "fetch", "-q", url, "+refs/*:refs/*"],
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_ALLOW_PROTOCOL": "http"},
    )
    assert payload.exists(), "the planted hook should run under plain git"
    payload.unlink()

    work.commit("two", {"b.txt": "b\n"})
    server.push(work.path, "app", "main")
    s = sync(url, st)
    assert "refs/heads/main" in s.changed()
    assert not payload.exists()


def test_a_hostile_served_repository_runs_nothing_on_clone_fetch_or_scan(
    tmp_path: Path, server: GitHTTPServer
) -> None:
    payload = tmp_path / "pwned"
    script = tmp_path / "payload.sh"
    script.write_text(f'#!/bin/sh\necho "$0" >> {payload}\n')
    script.chmod(0o755)
    work = GitRepo(tmp_path / "work")
    work.commit(
        "hostile content",
        {
            ".gitattributes": "* filter=evil diff=evil\n",
            ".gitmodules": f'[submodule "x"]\n\tpath = x\n\turl = ext::{script}\n',
            "a.txt": "a\n",
        },
    )
    url = server.publish(work.path, "app")
    served = server.root / "app.git"
    for key, value in (
        ("filter.evil.smudge", str(script)),
        ("diff.evil.textconv", str(script)),
        ("core.fsmonitor", str(script)),
        ("log.showSignature", "true"),
        ("gpg.program", str(script)),
    ):
        _git(served, "config", key, value)
    st = _settings(tmp_path)
    path = sync_mirror(url, st)
    cfg = (path / "config").read_text()
    assert "evil" not in cfg and str(script) not in cfg  # server config did not travel
    from tests.conftest import run_cli

    res = run_cli("scan", "git", "--no-target-config", "--format", "json", "--", str(path))
    assert res.returncode == 0, res.stderr
    assert not payload.exists()


def test_two_syncs_of_one_url_take_turns(tmp_path: Path, server: GitHTTPServer) -> None:
    work = GitRepo(tmp_path / "work")
    work.commit("one", {"a.txt": "a\n"})
    url = server.publish(work.path, "app")
    st = _settings(tmp_path, mirror_timeout_seconds=1.5)
    lock = tmp_path / "mirrors" / f"{mirrors.mirror_name(url)}.lock"
    lock.parent.mkdir()
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(MirrorError, match="held its mirror's lock past the time limit"):
            sync_mirror(url, st)
    assert server.log == []  # it waited: no fetch started while another held the lock

    results: list[object] = []

    def run() -> None:
        try:
            results.append(sync(url, _settings(tmp_path)))
        except Exception as exc:  # the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, mirrors.Sync) for r in results), results
    assert sum(r.created for r in results) == 1  # type: ignore[attr-defined]
    assert len(list((tmp_path / "mirrors").glob("*.git"))) == 1
    assert not list((tmp_path / "mirrors").glob(".*"))  # no temporary clone left


def test_a_server_that_never_answers_is_given_up_on(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    try:
        with pytest.raises(MirrorError, match="ran past the time limit"):
            sync_mirror(
                f"http://127.0.0.1:{port}/stuck.git", _settings(tmp_path, mirror_timeout_seconds=2)
            )
    finally:
        sock.close()


def test_a_repository_larger_than_the_cap_is_not_kept(
    tmp_path: Path, server: GitHTTPServer
) -> None:
    work = GitRepo(tmp_path / "work")
    work.commit("big", {"big.bin": os.urandom(3 * 1024 * 1024)})
    url = server.publish(work.path, "big")
    st = _settings(tmp_path, mirror_max_bytes=1024 * 1024)
    with pytest.raises(MirrorError, match="grew past 1048576 bytes"):
        sync_mirror(url, st)
    assert not mirrors.mirror_path(url, st).exists()


def test_tips_file_is_private_json(tmp_path: Path, server: GitHTTPServer) -> None:
    work = GitRepo(tmp_path / "work")
    work.commit("one", {"a.txt": "a\n"})
    url = server.publish(work.path, "app")
    st = _settings(tmp_path)
    sync(url, st)
    tips = tmp_path / "mirrors" / f"{mirrors.mirror_name(url)}.tips.json"
    assert tips.stat().st_mode & 0o077 == 0
    assert json.loads(tips.read_text())["url"] == url
