"""Client-side hooks through real ``git commit``: what blocks a commit, what only warns,
the ways out the message offers, and installing next to hooks that already exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, GitRepo, run_cli, token

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]
SENTINEL = str(Path(sys.executable).parent / "sentinel")


def commit(repo: GitRepo, message: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``git commit`` as a developer runs it: hooks and all."""
    return subprocess.run(
        ["git", "commit", "-m", message, *extra],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SENTINEL": SENTINEL},
    )


def head(repo: GitRepo) -> str:
    return repo.git("rev-parse", "HEAD")


@pytest.fixture
def hooked(git_repo: MakeRepo) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n", "app/settings.py": "DEBUG = True\n"})
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    assert "pre-commit: installed" in res.stderr
    assert "commit-msg: installed" in res.stderr
    return repo


def test_secret_on_a_staged_line_blocks_the_commit(hooked: GitRepo) -> None:
    secret = token("ghp", 101)
    before = head(hooked)
    hooked.write("app/settings.py", f"DEBUG = True\nGITHUB_TOKEN = '{secret}'\n")
    hooked.git("add", "-A")

    res = commit(hooked, "add settings")
    assert res.returncode != 0
    assert head(hooked) == before  # nothing was committed
    err = res.stderr
    assert "commit blocked: 1 secret" in err
    assert "app/settings.py:2" in err
    assert re.search(r"github\.[\w.-]+", err)
    assert secret[:4] + "********" in err
    assert secret not in err + res.stdout  # the message never shows the value
    # the three ways out
    assert "Remove it" in err
    assert "sentinel:allow" in err
    assert "sentinel baseline add " in err
    assert "Traceback" not in err


def test_the_index_is_scanned_not_the_working_tree(hooked: GitRepo) -> None:
    secret = token("ghp", 102)
    # staged: clean; working tree: a secret that is not part of the commit
    hooked.write("notes.txt", "nothing to see\n")
    hooked.git("add", "notes.txt")
    hooked.write("notes.txt", f"nothing to see\ntoken={secret}\n")
    res = commit(hooked, "notes")
    assert res.returncode == 0, res.stderr

    # staged: the secret; working tree: cleaned up but not re-added
    hooked.write("notes.txt", f"nothing to see\ntoken={secret}\nmore\n")
    hooked.git("add", "notes.txt")
    hooked.write("notes.txt", "nothing to see\n")
    res = commit(hooked, "notes again")
    assert res.returncode != 0
    assert "notes.txt:2" in res.stderr


def test_old_secret_elsewhere_in_a_touched_file_warns_but_does_not_block(
    hooked: GitRepo,
) -> None:
    secret = token("ghp", 103)
    hooked.write("legacy.env", f"A=1\nTOKEN={secret}\nB=2\n")
    hooked.git("add", "-A")
    assert commit(hooked, "legacy", "--no-verify").returncode == 0

    hooked.write("legacy.env", f"A=1\nTOKEN={secret}\nB=3\n")  # an unrelated line changes
    hooked.git("add", "-A")
    res = commit(hooked, "bump B")
    assert res.returncode == 0, res.stderr
    assert "warning" in res.stderr
    assert "legacy.env:2" in res.stderr
    assert "commit blocked" not in res.stderr


def test_renamed_file_with_an_old_secret_does_not_block(hooked: GitRepo) -> None:
    secret = token("ghp", 104)
    hooked.write("old/name.env", f"TOKEN={secret}\n")
    hooked.git("add", "-A")
    assert commit(hooked, "old", "--no-verify").returncode == 0
    hooked.git("mv", "old/name.env", "renamed.env")
    res = commit(hooked, "move it")
    assert res.returncode == 0, res.stderr
    assert "renamed.env:1" in res.stderr  # still reported, as a warning


def test_inline_allow_and_baseline_are_ways_out(hooked: GitRepo) -> None:
    allowed, accepted = token("ghp", 105), token("ghp", 106)
    hooked.write("a.py", f"T = '{allowed}'  # sentinel:allow test fixture\n")
    hooked.git("add", "-A")
    assert commit(hooked, "allowed").returncode == 0

    hooked.write("b.py", f"T = '{accepted}'\n")
    hooked.git("add", "-A")
    blocked = commit(hooked, "accepted")
    assert blocked.returncode != 0
    [command] = re.findall(r"sentinel baseline add [0-9a-f]{64}", blocked.stderr)
    res = run_cli(*command.split()[1:], cwd=hooked.path)
    assert res.returncode == 0, res.stderr
    doc = json.loads((hooked.path / ".sentinel-baseline.json").read_text())
    assert command.split()[-1] in doc["secrets"]
    assert accepted not in json.dumps(doc)
    hooked.git("add", "-A")
    res = commit(hooked, "accepted, with its baseline")
    assert res.returncode == 0, res.stderr


def test_binary_and_deleted_files_pass(hooked: GitRepo) -> None:
    hooked.write("blob.bin", b"\0\x01 no token in here " + b"\0" * 100)
    hooked.git("rm", "-q", "README.md")
    hooked.git("add", "-A")
    res = commit(hooked, "binary and a deletion")
    assert res.returncode == 0, res.stderr


def test_first_commit_of_a_new_repository_is_scanned(git_repo: MakeRepo) -> None:
    repo = git_repo("fresh")
    assert run_cli("hooks", "install", "--repo", str(repo.path)).returncode == 0
    repo.write("config.env", f"TOKEN={token('ghp', 108)}\n")
    repo.git("add", "-A")
    res = commit(repo, "first")
    assert res.returncode != 0
    assert "config.env:1" in res.stderr


# -- commit-msg ---------------------------------------------------------------------------------


def test_secret_in_the_commit_message_blocks_it(hooked: GitRepo) -> None:
    secret = token("ghp", 110)
    hooked.write("x.txt", "x\n")
    hooked.git("add", "-A")
    before = head(hooked)
    res = commit(hooked, f"deploy fix\n\nused token {secret} to test")
    assert res.returncode != 0
    assert head(hooked) == before
    assert "secret(s) in the commit message" in res.stderr
    assert "message line 3" in res.stderr
    assert secret not in res.stderr

    assert commit(hooked, "deploy fix").returncode == 0


def test_commit_msg_ignores_the_verbose_diff_below_the_scissors(
    hooked: GitRepo, tmp_path: Path
) -> None:
    msg = tmp_path / "msg"
    msg.write_text(
        "A clean message\n"
        "# ------------------------ >8 ------------------------\n"
        f"+TOKEN={token('ghp', 111)}\n"
    )
    res = run_cli("hook", "commit-msg", str(msg), cwd=hooked.path)
    assert res.returncode == 0, res.stderr


# -- install / uninstall ------------------------------------------------------------------------


def test_install_chains_an_existing_hook_and_uninstall_restores_it(git_repo: MakeRepo) -> None:
    repo = git_repo("chained")
    repo.commit("init", {"README.md": "x\n"})
    hooks = repo.path / ".git" / "hooks"
    original = '#!/bin/sh\necho ran >> "$(git rev-parse --git-dir)/existing-hook-ran"\nexit ${EXISTING_RC:-0}\n'
    (hooks / "pre-commit").write_text(original)
    (hooks / "pre-commit").chmod(0o755)

    for _ in range(2):  # idempotent: a second install changes nothing
        res = run_cli("hooks", "install", "--repo", str(repo.path))
        assert res.returncode == 0, res.stderr
    assert (hooks / "pre-commit.pre-sentinel").read_text() == original
    assert "sentinel-hook" in (hooks / "pre-commit").read_text()
    assert not (hooks / "pre-commit.pre-sentinel.pre-sentinel").exists()

    repo.write("a.txt", "clean\n")
    repo.git("add", "-A")
    assert commit(repo, "clean").returncode == 0
    assert (repo.path / ".git" / "existing-hook-ran").read_text() == "ran\n"

    # the chained hook's verdict stands even when Sentinel finds nothing
    repo.write("b.txt", "clean too\n")
    repo.git("add", "-A")
    env_rc = subprocess.run(
        ["git", "commit", "-m", "b"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        env={**os.environ, "EXISTING_RC": "3"},
    )
    assert env_rc.returncode != 0

    # and Sentinel still blocks a secret when the chained hook passes
    repo.write("c.env", f"TOKEN={token('ghp', 120)}\n")
    repo.git("add", "-A")
    assert commit(repo, "c").returncode != 0

    res = run_cli("hooks", "uninstall", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    assert (hooks / "pre-commit").read_text() == original
    assert os.access(hooks / "pre-commit", os.X_OK)
    assert not (hooks / "pre-commit.pre-sentinel").exists()
    assert not (hooks / "commit-msg").exists()


def test_install_honours_core_hooks_path(git_repo: MakeRepo) -> None:
    repo = git_repo("hookspath")
    repo.commit("init", {"README.md": "x\n"})
    repo.git("config", "core.hooksPath", ".githooks")
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    assert (repo.path / ".githooks" / "pre-commit").is_file()
    assert not (repo.path / ".git" / "hooks" / "pre-commit").exists()
    repo.write("c.env", f"TOKEN={token('ghp', 121)}\n")
    repo.git("add", "c.env")
    assert commit(repo, "c").returncode != 0


def test_uninstall_leaves_a_foreign_hook_alone(git_repo: MakeRepo) -> None:
    repo = git_repo("foreign")
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 0\n")
    res = run_cli("hooks", "uninstall", "--repo", str(repo.path))
    assert res.returncode == 0
    assert "not Sentinel's hook, left alone" in res.stderr
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"


def test_hooks_outside_a_repository_is_a_one_line_error(tmp_path: Path) -> None:
    res = run_cli("hooks", "install", "--repo", str(tmp_path))
    assert res.returncode == 2
    assert "not a git repository" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("hook", "pre-commit", cwd=tmp_path)
    assert res.returncode == 2
    assert "not a git repository" in res.stderr
    assert "Traceback" not in res.stderr


# -- the pre-commit framework -------------------------------------------------------------------


@pytest.mark.slow
def test_pre_commit_framework_runs_the_sentinel_hook(
    git_repo: MakeRepo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real ``pre-commit`` package, using this checkout as a hook repository
    (``try-repo`` takes its uncommitted changes too): a staged secret fails the hook,
    a clean change passes."""
    home = tmp_path_factory.mktemp("pre-commit-home")
    repo = git_repo("framework")
    repo.commit("init", {"README.md": "x\n"})
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "sentinel"],
            cwd=repo.path,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )

    repo.write("clean.txt", "nothing secret\n")
    repo.git("add", "-A")
    ok = try_repo()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Passed" in ok.stdout

    repo.write("leak.env", f"TOKEN={token('ghp', 130)}\n")
    repo.git("add", "-A")
    bad = try_repo()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "leak.env:1" in bad.stdout


def test_odd_file_names_are_reported_by_their_real_path(hooked: GitRepo) -> None:
    name = "config dir/clé ünïcode.env"
    hooked.write(name, f"A=1\nTOKEN={token('ghp', 140)}\n")
    hooked.git("add", "-A")
    res = commit(hooked, "odd name")
    assert res.returncode != 0
    assert f"{name}:2" in res.stderr


def test_hook_usage_errors_exit_2(hooked: GitRepo) -> None:
    for args in (("hook",), ("hook", "post-merge"), ("hook", "commit-msg")):
        res = run_cli(*args, cwd=hooked.path)
        assert res.returncode == 2, args
        assert "Traceback" not in res.stderr
