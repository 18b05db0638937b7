"""The pre-receive hook against pushes built to slip past it or break it (issue #12):
real bare repositories, real ``git push`` over the local transport, the installed hook."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token
from tests.test_hooks_server import Server, push

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]
SENTINEL = str(Path(sys.executable).parent / "sentinel")


@pytest.fixture
def server(tmp_path: Path) -> Server:
    path = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    res = run_cli("hooks", "install", "--repo", str(path))
    assert res.returncode == 0, res.stderr
    return Server(path)


@pytest.fixture
def dev(git_repo: MakeRepo, server: Server) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n"})
    repo.git("remote", "add", "origin", f"file://{server.path}")
    res = push(repo, "main")
    assert res.returncode == 0, res.stderr
    return repo


def queued(server: Server) -> list[dict[str, Any]]:
    path = server.path / "sentinel" / "unscanned.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def slow_text(size: int) -> str:
    """Text whose every line is a candidate for the generic rules (each one confirmed in
    Python): tens of seconds of scanning for a few MB, past any short time budget."""
    rnd = random.Random(7)
    lines = []
    n = 0
    while n < size:
        v = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(24))
        line = f'db_password = "{v}"\n'
        lines.append(line)
        n += len(line)
    return "".join(lines)


# -- the time budget running out inside the worker pool -------------------------------------------


@pytest.mark.slow
def test_budget_running_out_in_the_worker_pool_honours_the_fail_mode(
    dev: GitRepo, server: Server
) -> None:
    """Over 8 MiB the push is scanned by a pool of workers; its timeout is
    multiprocessing's own TimeoutError. On fd70725 the hook crashed with
    'internal error: TimeoutError': fail_open was ignored, nothing logged or queued."""
    server.config("sentinel.timeBudget", "3")
    dev.commit("big", {"data/big.py": slow_text(9 * 1024 * 1024 + 512 * 1024)})
    tip = dev.git("rev-parse", "HEAD")

    res = push(dev, "main")  # fail_closed, the default
    assert res.returncode != 0
    assert "internal error" not in res.stderr
    assert "time budget" in res.stderr and "fail_closed" in res.stderr
    last = server.log()[-1]
    assert last["outcome"] == "rejected_unscanned"
    assert last["cause"] == "time_budget"

    server.config("sentinel.onTimeout", "fail_open")
    res = push(dev, "main")
    assert res.returncode == 0, res.stderr
    assert "internal error" not in res.stderr
    assert "accepted unscanned" in res.stderr
    last = server.log()[-1]
    assert last["outcome"] == "unscanned"
    assert last["cause"] == "time_budget"
    [entry] = queued(server)
    assert entry["cause"] == "time_budget"
    assert entry["updates"][0]["new"] == tip
    assert server.ref("main") == tip


# -- break-glass ------------------------------------------------------------------------------------


def test_break_glass_push_is_queued_and_names_the_pusher_without_user_vars(
    dev: GitRepo, server: Server
) -> None:
    """A skipped push is as unscanned as a fail_open one, so it is queued for a full
    scan; with USER and LOGNAME unset (daemons, containers) the pusher is still named.
    On fd70725 nothing was queued and the pusher was "unknown"."""
    import pwd

    server.config("receive.advertisePushOptions", "true")
    server.config("sentinel.allowSkip", "true")
    dev.commit("hotfix", {"hotfix.env": f"TOKEN={token('ghp', 905)}\n"})
    tip = dev.git("rev-parse", "HEAD")
    env = {k: v for k, v in os.environ.items() if k not in ("USER", "LOGNAME")}
    res = subprocess.run(
        ["git", "push", "-o", "sentinel.skip=incident 7", "origin", "main"],
        cwd=dev.path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "queued for a full scan" in res.stderr
    me = pwd.getpwuid(os.getuid()).pw_name
    last = server.log()[-1]
    assert last["outcome"] == "skipped"
    assert last["pusher"] == me
    [entry] = queued(server)
    assert entry["cause"] == "break_glass"
    assert entry["reason"] == "incident 7"
    assert entry["pusher"] == me
    assert entry["updates"][0]["new"] == tip


# -- what the pusher reads ---------------------------------------------------------------------------


def test_control_characters_in_pushed_names_are_escaped(dev: GitRepo, server: Server) -> None:
    """A file name with terminal escapes (clear screen, cursor up, a bidi override) must
    not reach the pusher's terminal raw: printed raw it can hide the rejection. The hook
    is run as git runs it, its stderr read directly (git's sideband may or may not mask
    control characters, depending on its version)."""
    name = "esc\x1b[2J\x1b[1Aname\u202e.env"
    dev.commit("odd", {name: f"TOKEN={token('ghp', 906)}\n"})
    tip = dev.git("rev-parse", "HEAD")
    old = server.ref("main")
    # the objects reach the server without any ref (FETCH_HEAD only), as in a quarantine
    server.git("fetch", "-q", str(dev.path), "main")
    assert server.has(tip)
    res = subprocess.run(
        [SENTINEL, "hook", "pre-receive"],
        cwd=server.path,
        input=f"{old} {tip} refs/heads/main\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    assert "push rejected: 1 secret" in res.stderr
    assert "\x1b" not in res.stderr
    assert "\u202e" not in res.stderr
    assert "esc\\x1b[2J\\x1b[1Aname\\u202e.env:1" in res.stderr
