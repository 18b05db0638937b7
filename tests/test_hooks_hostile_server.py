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


# -- blobs over max_file_size ----------------------------------------------------------------------

MIB = 1024 * 1024
FILLER = b"just an ordinary line of a large generated file\n"


def big_text(size: int, first: bytes = b"", last: bytes = b"") -> bytes:
    body = size - len(first) - len(last)
    return first + FILLER * (body // len(FILLER)) + b"x" * (body % len(FILLER)) + last


@pytest.fixture
def roomy(server: Server) -> Server:
    """A server whose time budget does not decide these tests (the machine is shared)."""
    server.config("sentinel.timeBudget", "120")
    return server


@pytest.mark.parametrize("where", ["first", "last"])
def test_key_in_the_first_or_last_part_of_a_20_mib_blob_is_rejected(
    dev: GitRepo, roomy: Server, where: str
) -> None:
    """On fd70725 a blob over max_file_size was left out of the scan without a word."""
    secret = token("ghp", 1210)
    line = f"TOKEN={secret}\n".encode()
    data = big_text(20 * MIB, **{where: line})
    dev.commit("dump", {"data/dump.sql": data})
    old = roomy.ref("main")
    res = push(dev, "main")
    assert res.returncode != 0, res.stderr
    assert roomy.ref("main") == old
    n = 1 if where == "first" else data.count(b"\n")
    assert f"data/dump.sql:{n}  github." in res.stderr
    assert "data/dump.sql (in " in res.stderr and "is 20.0 MiB" in res.stderr
    assert secret not in res.stderr
    last = roomy.log()[-1]
    assert last["outcome"] == "rejected"
    assert last["findings"][0]["line"] == n
    [big] = last["oversize"]
    assert big["size"] == 20 * MIB and big["unscanned_bytes"] > 9 * MIB


def test_clean_oversize_blob_is_accepted_with_a_warning_and_logged(
    dev: GitRepo, roomy: Server
) -> None:
    dev.commit("dump", {"data/dump.sql": big_text(20 * MIB)})
    res = push(dev, "main")
    assert res.returncode == 0, res.stderr
    assert "WARNING: pushed file(s) over max_file_size" in res.stderr
    assert "data/dump.sql (in " in res.stderr
    assert "bytes in the middle were NOT" in res.stderr
    last = roomy.log()[-1]
    assert last["outcome"] == "accepted"
    [big] = last["oversize"]
    assert big["path"].startswith("data/dump.sql (in ")
    assert big["size"] == 20 * MIB


def test_oversize_block_setting_rejects_the_push(dev: GitRepo, roomy: Server) -> None:
    roomy.config("sentinel.oversize", "block")
    dev.commit("dump", {"data/dump.sql": big_text(20 * MIB)})
    old = roomy.ref("main")
    res = push(dev, "main")
    assert res.returncode != 0
    assert roomy.ref("main") == old
    assert "push rejected: 1 pushed file(s) over max_file_size" in res.stderr
    last = roomy.log()[-1]
    assert last["outcome"] == "rejected"
    assert last["reason"] == "oversize"


# -- UTF-16 text and binaries ---------------------------------------------------------------------


def test_key_in_a_utf16le_file_is_rejected(dev: GitRepo, server: Server) -> None:
    """A BOM + UTF-16LE file (PowerShell's ``>``). On fd70725 it was not decoded at all;
    with the decoding engine, git still shows it as binary (no lines), and the hook took
    "no added lines" for "an old secret": the push was accepted with a warning."""
    secret = token("ghp", 1230)
    text = f"REGION=eu\r\nGITHUB_TOKEN={secret}\r\n"
    dev.commit("env", {"deploy/env.txt": b"\xff\xfe" + text.encode("utf-16-le")})
    old = server.ref("main")
    res = push(dev, "main")
    assert res.returncode != 0, res.stderr
    assert server.ref("main") == old
    assert "push rejected: 1 secret" in res.stderr
    assert "deploy/env.txt:2  github." in res.stderr


def test_provider_token_inside_a_binary_blob_is_rejected(dev: GitRepo, server: Server) -> None:
    secret = token("ghp", 1231)
    blob = b"SQLite format 3\0" + b"\0\x01\x02" * 50 + secret.encode() + b"\0" * 64
    dev.commit("db", {"assets/app.db": blob})
    old = server.ref("main")
    res = push(dev, "main")
    assert res.returncode != 0, res.stderr
    assert server.ref("main") == old
    assert "push rejected: 1 secret" in res.stderr
    assert "assets/app.db:" in res.stderr
    assert secret not in res.stderr
