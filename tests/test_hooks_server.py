"""The pre-receive hook on a real bare repository, pushed to over git's local transport
(which runs the hook with the pushed objects in quarantine, as a server does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]
SENTINEL = str(Path(sys.executable).parent / "sentinel")


class Server:
    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", f"--git-dir={self.path}", *args], capture_output=True, text=True, check=False
        )

    def config(self, key: str, value: str) -> None:
        assert self.git("config", key, value).returncode == 0

    def ref(self, name: str) -> str | None:
        res = self.git("rev-parse", "--verify", "--quiet", name)
        return res.stdout.strip() or None

    def has(self, sha: str) -> bool:
        return self.git("cat-file", "-e", sha).returncode == 0

    def log(self) -> list[dict[str, Any]]:
        path = self.path / "sentinel" / "pre-receive.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def push(
    repo: GitRepo, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "origin", *args],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def server(tmp_path: Path) -> Server:
    path = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    res = run_cli("hooks", "install", "--repo", str(path))
    assert res.returncode == 0, res.stderr
    assert "pre-receive: installed" in res.stderr
    return Server(path)


@pytest.fixture
def dev(git_repo: MakeRepo, server: Server) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n", "app/config.py": "DEBUG = True\n"})
    repo.git("remote", "add", "origin", f"file://{server.path}")
    res = push(repo, "main")
    assert res.returncode == 0, res.stderr
    return repo


def test_secret_in_an_intermediate_commit_is_rejected_even_if_the_tip_removes_it(
    dev: GitRepo, server: Server
) -> None:
    secret = token("ghp", 201)
    before = server.ref("main")
    leaky = dev.commit("add token", {"app/config.py": f"DEBUG = True\nTOKEN = '{secret}'\n"})
    dev.commit("oops, remove it", {"app/config.py": "DEBUG = True\n"})

    res = push(dev, "main")
    assert res.returncode != 0
    assert server.ref("main") == before  # the ref did not move
    # the objects only ever lived in the quarantine, and were scanned there
    assert not server.has(leaky)
    err = res.stderr
    assert "remote: sentinel: push rejected: 1 secret" in err
    assert f"remote:   {leaky[:12]}  app/config.py:2" in err
    assert secret[:4] + "********" in err
    assert "git rebase -i" in err
    assert secret not in err
    [entry] = [e for e in server.log() if e["outcome"] == "rejected"]
    assert entry["findings"][0]["commit"] == leaky
    assert entry["findings"][0]["path"] == "app/config.py"
    assert secret not in json.dumps(server.log())


def test_clean_push_branch_deletion_and_tags_are_accepted(dev: GitRepo, server: Server) -> None:
    dev.commit("docs", {"docs/index.md": "# Docs\n"})
    assert push(dev, "main").returncode == 0

    dev.git("checkout", "-q", "-b", "feature")
    dev.commit("feature", {"feature.py": "x = 1\n"})
    assert push(dev, "feature").returncode == 0
    assert server.ref("feature")

    dev.git("tag", "v1-light")
    dev.git("tag", "-a", "v1", "-m", "release 1")
    res = push(dev, "--tags")
    assert res.returncode == 0, res.stderr
    assert server.ref("refs/tags/v1") and server.ref("refs/tags/v1-light")

    res = push(dev, "--delete", "feature")
    assert res.returncode == 0, res.stderr
    assert server.ref("feature") is None
    outcomes = [e["outcome"] for e in server.log()]
    assert outcomes and set(outcomes) == {"accepted"}


def test_secret_in_an_annotated_tag_message_is_rejected(dev: GitRepo, server: Server) -> None:
    dev.git("tag", "-a", "v2", "-m", f"release with {token('ghp', 202)}")
    res = push(dev, "v2")
    assert res.returncode != 0
    assert "(tag message)" in res.stderr
    assert server.ref("refs/tags/v2") is None


def test_force_push_is_scanned(dev: GitRepo, server: Server) -> None:
    dev.commit("one", {"one.txt": "1\n"})
    assert push(dev, "main").returncode == 0
    dev.git("reset", "-q", "--hard", "HEAD~1")
    dev.commit("rewritten", {"one.txt": f"TOKEN={token('ghp', 203)}\n"})
    res = push(dev, "--force", "main")
    assert res.returncode != 0
    assert "one.txt:1" in res.stderr


def test_new_branch_scans_only_commits_the_server_lacks(dev: GitRepo, server: Server) -> None:
    """An old secret already on the server (pushed before the hook, say) does not block
    a new branch that merely points at it; a new commit on top is still scanned."""
    secret = token("ghp", 204)
    dev.commit("old leak", {"legacy.env": f"TOKEN={secret}\n"})
    (server.path / "hooks" / "pre-receive").rename(server.path / "hooks" / "off")
    assert push(dev, "main").returncode == 0
    (server.path / "hooks" / "off").rename(server.path / "hooks" / "pre-receive")

    dev.git("checkout", "-q", "-b", "topic")
    res = push(dev, "topic")
    assert res.returncode == 0, res.stderr

    # editing another line of the file that holds the old secret: a warning only
    dev.commit("edit", {"legacy.env": f"TOKEN={secret}\nOTHER=1\n"})
    res = push(dev, "topic")
    assert res.returncode == 0, res.stderr
    assert "already in these files" in res.stderr
    assert "legacy.env:1" in res.stderr


def test_time_budget_follows_the_configured_policy(dev: GitRepo, server: Server) -> None:
    server.config("sentinel.timeBudget", "0.001")
    dev.commit("work", {"work.py": "x = 2\n"})
    res = push(dev, "main")  # fail_closed is the default
    assert res.returncode != 0
    assert "time budget" in res.stderr
    assert "fail_closed" in res.stderr
    assert server.log()[-1]["outcome"] == "rejected_unscanned"

    server.config("sentinel.onTimeout", "fail_open")
    res = push(dev, "main")
    assert res.returncode == 0, res.stderr
    assert "accepted unscanned" in res.stderr
    assert server.log()[-1]["outcome"] == "unscanned"
    [queued] = [
        json.loads(line)
        for line in (server.path / "sentinel" / "unscanned.jsonl").read_text().splitlines()
    ]
    assert queued["updates"][0]["ref"] == "refs/heads/main"
    assert queued["updates"][0]["new"] == dev.git("rev-parse", "HEAD")


def test_break_glass_push_option(dev: GitRepo, server: Server) -> None:
    server.config("receive.advertisePushOptions", "true")
    dev.commit("hotfix", {"hotfix.env": f"TOKEN={token('ghp', 205)}\n"})

    res = push(dev, "-o", "sentinel.skip=incident 42, rotating now", "main")
    assert res.returncode != 0  # not enabled on this server: scanned as usual
    assert "not enabled on this server" in res.stderr

    server.config("sentinel.allowSkip", "true")
    res = push(dev, "-o", "sentinel.skip=incident 42, rotating now", "main", env={"USER": "alice"})
    assert res.returncode == 0, res.stderr
    assert "break-glass" in res.stderr
    last = server.log()[-1]
    assert last["outcome"] == "skipped"
    assert last["reason"] == "incident 42, rotating now"
    assert last["pusher"] == "alice"


def run_hook(server: Server, stdin: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SENTINEL, "hook", "pre-receive"],
        cwd=server.path,
        input=stdin.decode("utf-8", "replace"),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "stdin",
    [
        b"this is not a ref update\n",
        b"0000000000000000000000000000000000000000 1234 refs/heads/main\n",
        b"\xff\xfe garbage \x00\n",
    ],
)
def test_malformed_input_gets_a_message_and_the_fail_mode(
    dev: GitRepo, server: Server, stdin: bytes
) -> None:
    res = run_hook(server, stdin)
    assert res.returncode == 1
    assert "not '<old-sha> <new-sha> <ref>'" in res.stderr
    assert "Traceback" not in res.stderr
    server.config("sentinel.onTimeout", "fail_open")
    res = run_hook(server, stdin)
    assert res.returncode == 0
    assert "accepted unscanned" in res.stderr


def test_unknown_object_is_a_clear_rejection(dev: GitRepo, server: Server) -> None:
    missing = "1234567890abcdef1234567890abcdef12345678"
    res = run_hook(server, f"{'0' * 40} {missing} refs/heads/x\n".encode())
    assert res.returncode == 1
    assert f"pushed object {missing} is not in the repository" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_server_setting_is_named(dev: GitRepo, server: Server) -> None:
    server.config("sentinel.onTimeout", "maybe")
    res = run_hook(server, b"")
    assert res.returncode == 2
    assert "sentinel.onTimeout" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_copied_shim_works_as_a_server_hook(git_repo: MakeRepo, tmp_path: Path) -> None:
    """hooks/pre-receive, copied by hand as an admin would, with sentinel on PATH."""
    from tests.conftest import ROOT

    bare = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    shutil.copy(ROOT / "hooks" / "pre-receive", bare / "hooks" / "pre-receive")
    repo = git_repo("copier")
    repo.commit("init", {"README.md": "x\n"})
    repo.git("remote", "add", "origin", f"file://{bare}")
    env = {"PATH": f"{Path(SENTINEL).parent}{os.pathsep}{os.environ['PATH']}"}
    assert push(repo, "main", env=env).returncode == 0
    repo.commit("leak", {"leak.env": f"TOKEN={token('ghp', 206)}\n"})
    res = push(repo, "main", env=env)
    assert res.returncode != 0
    assert "leak.env:1" in res.stderr


def test_corrupt_repository_gets_a_message_and_the_fail_mode(
    git_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = git_repo("src")
    commit = repo.commit("c", {"a.txt": "hello\n"})
    bare = tmp_path / "broken.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    blob = repo.git("rev-parse", "HEAD:a.txt")
    for pack in list((bare / "objects" / "pack").glob("*.pack")):  # make every object loose
        moved = tmp_path / pack.name
        pack.rename(moved)
        pack.with_suffix(".idx").unlink()
        with moved.open("rb") as fh:
            subprocess.run(
                ["git", f"--git-dir={bare}", "unpack-objects", "-q"], stdin=fh, check=True
            )
    (bare / "objects" / blob[:2] / blob[2:]).unlink()  # and lose one of them
    server = Server(bare)
    assert server.git("update-ref", "-d", "refs/heads/main").returncode == 0  # as if new
    res = run_hook(server, f"{'0' * 40} {commit} refs/heads/new\n".encode())
    assert res.returncode == 1
    assert "could not be checked for secrets (fail_closed)" in res.stderr
    assert "Traceback" not in res.stderr
    server.config("sentinel.onTimeout", "fail_open")
    res = run_hook(server, f"{'0' * 40} {commit} refs/heads/new\n".encode())
    assert res.returncode == 0
    assert "accepted unscanned" in res.stderr


def test_shallow_server_still_scans_pushes(git_repo: MakeRepo, tmp_path: Path) -> None:
    origin = git_repo("origin")
    for i in range(3):
        origin.commit(f"c{i}", {"n.txt": f"{i}\n"})
    bare = tmp_path / "shallow.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", "--depth", "1", f"file://{origin.path}", str(bare)],
        check=True,
    )
    assert (bare / "shallow").exists()
    assert run_cli("hooks", "install", "--repo", str(bare)).returncode == 0
    origin.git("remote", "add", "server", f"file://{bare}")
    origin.commit("clean", {"n.txt": "clean\n"})
    res = subprocess.run(
        ["git", "push", "server", "main"], cwd=origin.path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    origin.commit("leak", {"leak.env": f"TOKEN={token('ghp', 207)}\n"})
    res = subprocess.run(
        ["git", "push", "server", "main"], cwd=origin.path, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "leak.env:1" in res.stderr
    assert "Traceback" not in res.stderr
