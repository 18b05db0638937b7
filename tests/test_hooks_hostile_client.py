"""The client-side hooks against commits built to slip past them (issue #12): real
repositories, real ``git commit`` running the installed hooks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import GitRepo, run_cli, token
from tests.test_hooks_client import commit, head

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]
MIB = 1024 * 1024
FILLER = b"just an ordinary line of a large generated file\n"


def big_text(size: int, first: bytes = b"", last: bytes = b"") -> bytes:
    """``size`` bytes of plain lines, ``first`` as line 1 and ``last`` as the last line."""
    body = size - len(first) - len(last)
    return first + FILLER * (body // len(FILLER)) + b"x" * (body % len(FILLER)) + last


@pytest.fixture
def hooked(git_repo: MakeRepo) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n"})
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    return repo


# -- files over max_file_size ---------------------------------------------------------------------


def test_key_on_line_one_of_a_20_mib_file_blocks_the_commit(hooked: GitRepo) -> None:
    """On fd70725 a file over max_file_size (10 MiB) was skipped without a word: this
    commit went through."""
    secret = token("ghp", 1201)
    hooked.write("data/dump.sql", big_text(20 * MIB, first=f"-- TOKEN={secret}\n".encode()))
    hooked.git("add", "-A")
    before = head(hooked)
    res = commit(hooked, "dump")
    assert res.returncode == 1, res.stderr
    assert head(hooked) == before
    assert "commit blocked: 1 secret" in res.stderr
    assert "data/dump.sql:1 " in res.stderr
    assert "WARNING: data/dump.sql is 20.0 MiB" in res.stderr
    assert secret not in res.stderr


def test_key_only_in_the_tail_of_an_oversize_file_blocks_with_its_true_line(
    hooked: GitRepo,
) -> None:
    secret = token("ghp", 1202)
    data = big_text(20 * MIB, last=f"TOKEN={secret}\n".encode())
    hooked.write("data/dump.sql", data)
    hooked.git("add", "-A")
    res = commit(hooked, "dump")
    assert res.returncode == 1, res.stderr
    last_line = data.count(b"\n")
    assert f"data/dump.sql:{last_line} " in res.stderr  # the last line, counted
    assert secret not in res.stderr


def test_clean_oversize_file_is_accepted_with_a_loud_warning(hooked: GitRepo) -> None:
    size = 20 * MIB
    hooked.write("data/dump.sql", big_text(size))
    hooked.git("add", "-A")
    res = commit(hooked, "dump")
    assert res.returncode == 0, res.stderr
    [warning] = [ln for ln in res.stderr.splitlines() if ln.startswith("sentinel: WARNING:")]
    assert f"data/dump.sql is 20.0 MiB ({size} bytes)" in warning
    unscanned = int(warning.split(" bytes in the middle were NOT")[0].rsplit(" ", 1)[1])
    assert 0.45 * size < unscanned <= size - 10 * MIB + 8192  # ~half of it, and said so
    assert "sentinel.oversize block" in res.stderr


@pytest.mark.parametrize("where", ["git config", ".sentinel.toml"])
def test_oversize_block_setting_refuses_the_commit(hooked: GitRepo, where: str) -> None:
    if where == "git config":
        hooked.git("config", "sentinel.oversize", "block")
    else:
        hooked.commit("config", {".sentinel.toml": 'oversize = "block"\n'})
    hooked.write("data/dump.sql", big_text(20 * MIB))
    hooked.git("add", "-A")
    before = head(hooked)
    res = commit(hooked, "dump")
    assert res.returncode == 1, res.stderr
    assert head(hooked) == before
    assert "commit blocked: 1 staged file over max_file_size" in res.stderr
    assert "data/dump.sql is 20.0 MiB" in res.stderr


def test_bad_oversize_setting_is_named(hooked: GitRepo) -> None:
    hooked.git("config", "sentinel.oversize", "sometimes")
    hooked.write("data/dump.sql", big_text(11 * MIB))
    hooked.git("add", "-A")
    before = head(hooked)
    res = commit(hooked, "dump")
    assert res.returncode != 0  # the hook exits 2; git only says that it failed
    assert head(hooked) == before
    assert "sentinel: error: sentinel.oversize 'sometimes' is not warn or block" in res.stderr
    assert "Traceback" not in res.stderr


def test_an_added_line_that_looks_like_a_patch_header_does_not_hide_the_next_hunk(
    hooked: GitRepo,
) -> None:
    """In a -U0 patch an added line '++ b/x' reads '+++ b/x'; on fd70725 the hook took
    it for a new file's header, so a secret in a later hunk of the same file counted
    as old (a warning) and the commit went through."""
    lines = [f"line {i}\n" for i in range(40)]
    hooked.commit("base", {"notes.txt": "".join(lines)})
    lines[5] = "++ b/elsewhere.txt\n"
    lines[30] = f"TOKEN={token('ghp', 1203)}\n"
    hooked.write("notes.txt", "".join(lines))
    hooked.git("add", "-A")
    res = commit(hooked, "edit")
    assert res.returncode == 1, res.stderr
    assert "commit blocked: 1 secret" in res.stderr
    assert "notes.txt:31 " in res.stderr


# -- UTF-16 text and binaries ---------------------------------------------------------------------


def utf16le(text: str) -> bytes:
    """What Windows PowerShell's ``>`` writes: a BOM, then UTF-16LE."""
    return b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le")


def test_key_in_a_utf16le_file_blocks_the_commit(hooked: GitRepo) -> None:
    """On fd70725 the hook took UTF-16 for binary and skipped it: the commit passed."""
    secret = token("ghp", 1220)
    hooked.write("deploy/env.txt", utf16le(f"REGION=eu\nGITHUB_TOKEN={secret}\n"))
    hooked.git("add", "-A")
    before = head(hooked)
    res = commit(hooked, "env")
    assert res.returncode == 1, res.stderr
    assert head(hooked) == before
    assert "deploy/env.txt:2 " in res.stderr
    assert secret not in res.stderr


def test_provider_token_inside_a_binary_blobs_blocks_the_commit(hooked: GitRepo) -> None:
    """git shows no lines of a binary file, so every line of it counts as added. On
    fd70725 binaries were skipped and this commit passed."""
    secret = token("ghp", 1221)
    hooked.write(
        "assets/app.db", b"SQLite format 3\0" + b"\0\x01\x02" * 50 + secret.encode() + b"\0" * 64
    )
    hooked.git("add", "-A")
    res = commit(hooked, "db")
    assert res.returncode == 1, res.stderr
    assert "commit blocked: 1 secret" in res.stderr
    assert "assets/app.db:" in res.stderr
    assert secret not in res.stderr
