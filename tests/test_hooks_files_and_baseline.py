"""The pre-commit hook given file names (the pre-commit framework's way, ``pre-commit
run --all-files`` in CI), the baseline command it prints, and hook paths and message
files that are not what they seem (issue #12). Real git, the real ``pre-commit``
package, offline: the framework runs a ``repo: local`` hook built from this
repository's ``.pre-commit-hooks.yaml``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, GitRepo, run_cli, token
from tests.test_hooks_client import SENTINEL, commit, head

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]
MIB = 1024 * 1024
# a PATH with git but without any sentinel: what a person's shell has when Sentinel
# lives in the pre-commit framework's environment
BARE_PATH = os.pathsep.join(
    d
    for d in os.environ.get("PATH", "").split(os.pathsep)
    if d and not Path(d, "sentinel").exists()
)


@pytest.fixture
def hooked(git_repo: MakeRepo) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n"})
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    return repo


def framework_config(repo: GitRepo) -> None:
    """A ``repo: local`` hook with this repository's manifest settings for ``sentinel``
    (file names, types, serial), run from the installed console script."""
    [manifest] = [
        h
        for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
        if h["id"] == "sentinel"
    ]
    hook = {k: v for k, v in manifest.items() if k not in ("language", "entry")}
    hook.update({"language": "system", "entry": f"{SENTINEL} hook pre-commit"})
    repo.write(
        ".pre-commit-config.yaml", yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]})
    )


def pre_commit(repo: GitRepo, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"},
    )


def baseline_command(output: str) -> list[str]:
    """The ``baseline add`` command a hook printed, as a shell would split it."""
    [line] = [ln for ln in output.splitlines() if " baseline add " in ln]
    return shlex.split(line.split("  # ")[0])


# -- pre-commit run --all-files -------------------------------------------------------------------


def test_pre_commit_run_all_files_fails_on_a_committed_key(
    git_repo: MakeRepo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On fd70725 the manifest passed no file names and the hook read only the (empty)
    index: this run said "Passed"."""
    home = tmp_path_factory.mktemp("pre-commit-home")
    repo = git_repo("ci")
    framework_config(repo)
    repo.commit(
        "init", {"README.md": "hello\n", "deploy/leak.env": f"TOKEN={token('ghp', 1301)}\n"}
    )
    res = pre_commit(repo, home, "run", "--all-files")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Failed" in res.stdout
    assert "deploy/leak.env:1 " in res.stdout
    assert token("ghp", 1301) not in res.stdout

    # the printed way out works from a subdirectory, with no sentinel on PATH
    cmd = baseline_command(res.stdout)
    # the framework's PATH is not the user's: this interpreter, by its absolute path
    assert Path(cmd[0]).is_absolute() and cmd[1:3] == ["-m", "sentinel"], cmd
    added = subprocess.run(
        cmd,
        cwd=repo.path / "deploy",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": BARE_PATH},
    )
    assert added.returncode == 0, added.stderr
    assert str(repo.path / ".sentinel-baseline.json") in added.stderr
    assert not (repo.path / "deploy" / ".sentinel-baseline.json").exists()
    again = pre_commit(repo, home, "run", "--all-files")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Passed" in again.stdout


def test_pre_commit_framework_at_commit_time_blocks_a_staged_key(
    git_repo: MakeRepo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("pre-commit-home")
    repo = git_repo("local")
    framework_config(repo)
    repo.commit("init", {"README.md": "hello\n"})
    installed = pre_commit(repo, home, "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    repo.write("leak.env", f"TOKEN={token('ghp', 1302)}\n")
    repo.write("notes.txt", "unstaged, nothing secret\n")
    repo.git("add", "leak.env")
    before = head(repo)
    res = subprocess.run(
        ["git", "commit", "-m", "leak"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"},
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert head(repo) == before
    assert "leak.env:1 " in res.stdout + res.stderr


def test_named_files_are_scanned_whole_and_others_are_not(hooked: GitRepo) -> None:
    """With file names the hook judges those files, committed or not, whatever the index
    holds; without, it still judges only the staged diff. On fd70725 the names were a
    usage error (exit 2)."""
    secret = token("ghp", 1303)
    hooked.write("conf/old.env", f"A=1\nTOKEN={secret}\n")
    hooked.write("clean.txt", "ok\n")
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "--no-verify", "-m", "an old key, committed past the hook")
    res = run_cli("hook", "pre-commit", "conf/old.env", "clean.txt", cwd=hooked.path)
    assert res.returncode == 1, res.stderr
    assert "blocked: 1 secret in the files checked" in res.stderr
    assert "conf/old.env:2 " in res.stderr
    assert secret not in res.stderr
    assert run_cli("hook", "pre-commit", "clean.txt", cwd=hooked.path).returncode == 0
    assert run_cli("hook", "pre-commit", cwd=hooked.path).returncode == 0  # nothing staged

    # named from a subdirectory: reported (and allowlisted) relative to the top
    sub = run_cli("hook", "pre-commit", "old.env", cwd=hooked.path / "conf")
    assert sub.returncode == 1 and "conf/old.env:2 " in sub.stderr


def test_named_fifo_and_missing_file_are_one_line_each_and_the_rest_is_scanned(
    hooked: GitRepo,
) -> None:
    os.mkfifo(hooked.path / "pipe")
    hooked.write("leak.env", f"TOKEN={token('ghp', 1304)}\n")
    res = run_cli("hook", "pre-commit", "pipe", "gone.txt", "leak.env", cwd=hooked.path)
    assert res.returncode == 1, res.stderr
    assert (
        "sentinel: error: cannot read pipe: a FIFO, not a regular file (not scanned)" in res.stderr
    )
    assert "cannot read gone.txt: No such file or directory" in res.stderr
    assert "leak.env:1 " in res.stderr
    assert "Traceback" not in res.stderr
    only_bad = run_cli("hook", "pre-commit", "pipe", cwd=hooked.path)
    assert only_bad.returncode == 2


def test_named_symlink_is_not_followed(hooked: GitRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.env"
    outside.write_text(f"TOKEN={token('ghp', 1305)}\n")
    (hooked.path / "link.env").symlink_to(outside)
    res = run_cli("hook", "pre-commit", "link.env", cwd=hooked.path)
    assert res.returncode == 0, res.stderr  # git holds the link, not what it points to


def test_named_oversize_file_scans_both_ends_and_says_so(hooked: GitRepo) -> None:
    filler = b"an ordinary line of a generated file\n"
    tail = f"TOKEN={token('ghp', 1306)}\n".encode()
    data = filler * (20 * MIB // len(filler)) + tail
    hooked.write("dump.sql", data)
    res = run_cli("hook", "pre-commit", "dump.sql", cwd=hooked.path)
    assert res.returncode == 1, res.stderr
    lines = data.count(b"\n")
    assert f"dump.sql:{lines} " in res.stderr
    assert "WARNING: dump.sql is 20.0 MiB" in res.stderr


# -- baseline add from a subdirectory -------------------------------------------------------------


def test_baseline_add_as_printed_from_a_subdirectory_lets_the_commit_through(
    hooked: GitRepo,
) -> None:
    """On fd70725 the baseline went to the subdirectory, where the hook never looks,
    and the printed ``sentinel`` command was not on PATH."""
    sub = hooked.path / "src" / "pkg"
    hooked.write("src/pkg/settings.py", f"TOKEN = '{token('ghp', 1307)}'\n")
    hooked.git("add", "-A")
    env = {**os.environ, "SENTINEL": SENTINEL, "PATH": BARE_PATH}
    blocked = subprocess.run(
        ["git", "commit", "-m", "key"],
        cwd=sub,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert blocked.returncode == 1, blocked.stderr
    cmd = baseline_command(blocked.stderr)
    added = subprocess.run(cmd, cwd=sub, capture_output=True, text=True, timeout=300, env=env)
    assert added.returncode == 0, added.stderr
    where = hooked.path / ".sentinel-baseline.json"
    assert f"{where}: 1 fingerprint(s) added" in added.stderr
    assert not (sub / ".sentinel-baseline.json").exists()
    ok = subprocess.run(
        ["git", "commit", "-m", "key"],
        cwd=sub,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr


def test_python_dash_m_sentinel_is_the_command(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sentinel", "--version"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sentinel ")


def test_baseline_add_outside_a_repository_writes_here(tmp_path: Path) -> None:
    res = run_cli("baseline", "add", "a" * 64, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / ".sentinel-baseline.json").is_file()
    assert str(tmp_path / ".sentinel-baseline.json") in res.stderr


# -- commit message files -------------------------------------------------------------------------


def test_commit_msg_on_a_fifo_is_one_line_not_a_hang(hooked: GitRepo) -> None:
    """On fd70725 this read blocked until a writer came: forever."""
    os.mkfifo(hooked.path / "MSG")
    res = subprocess.run(
        [SENTINEL, "hook", "commit-msg", "MSG"],
        cwd=hooked.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == "sentinel: error: cannot read the commit message MSG: a FIFO, not a regular file"
    )


def test_commit_msg_over_max_file_size_reads_both_ends_and_says_so(hooked: GitRepo) -> None:
    """On fd70725 a message file was read whole into memory, whatever its size."""
    line = b"a very long generated commit message line\n"
    data = (
        b"subject\n\n" + line * (20 * MIB // len(line)) + f"TOKEN={token('ghp', 1308)}\n".encode()
    )
    (hooked.path / "MSG").write_bytes(data)
    res = subprocess.run(
        [SENTINEL, "hook", "commit-msg", "MSG"],
        cwd=hooked.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, res.stderr
    lines = data.count(b"\n")
    assert f"message line {lines} " in res.stderr
    assert "WARNING: the commit message MSG is" in res.stderr
    assert "in the middle were NOT" in res.stderr


# -- hooks install onto odd paths -----------------------------------------------------------------


def test_install_onto_a_fifo_is_refused_in_one_line(git_repo: MakeRepo) -> None:
    """On fd70725 install opened the FIFO to see whether it was Sentinel's: forever."""
    repo = git_repo("fifo")
    hooks = repo.path / ".git" / "hooks"
    os.mkfifo(hooks / "commit-msg")
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"sentinel: error: {hooks / 'commit-msg'} is a FIFO, not a hook script; remove it and install again"
    ]
    assert not (hooks / "pre-commit").exists()  # nothing changed before the refusal
    left = run_cli("hooks", "uninstall", "--repo", str(repo.path))
    assert left.returncode == 0, left.stderr
    assert "commit-msg: not Sentinel's hook, left alone" in left.stderr


def test_install_onto_a_symlink_pointing_elsewhere_is_refused(
    git_repo: MakeRepo, tmp_path: Path
) -> None:
    """On fd70725 the symlink was chained: a file outside the repository ran first on
    every commit, under Sentinel's name."""
    repo = git_repo("link")
    target = tmp_path / "shared-hook"
    target.write_text("#!/bin/sh\nexit 0\n")
    link = repo.path / ".git" / "hooks" / "pre-commit"
    link.symlink_to(target)
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 2
    [msg] = res.stderr.strip().splitlines()
    assert msg.startswith(f"sentinel: error: {link} is a symlink (to {target})")
    assert link.is_symlink() and target.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (link.parent / "pre-commit.pre-sentinel").exists()


# -- terminal controls in file names --------------------------------------------------------------


def test_control_characters_in_file_names_are_escaped_in_hook_output(hooked: GitRepo) -> None:
    name = "esc\x1b[2J\u202e.env"
    hooked.write(name, f"TOKEN={token('ghp', 1309)}\n")
    hooked.git("add", "-A")
    res = commit(hooked, "odd name")
    assert res.returncode == 1, res.stderr
    assert "esc\\x1b[2J\\u202e.env:1 " in res.stderr
    assert "\x1b" not in res.stderr and "\u202e" not in res.stderr
    named = run_cli("hook", "pre-commit", name, cwd=hooked.path)
    assert named.returncode == 1, named.stderr
    assert "esc\\x1b[2J\\u202e.env:1 " in named.stderr
    assert "\x1b" not in named.stderr and "\u202e" not in named.stderr
