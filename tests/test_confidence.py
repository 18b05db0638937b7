"""Confidence on every finding: what each level means, ``--min-confidence`` and the
config's ``min_confidence``, test/fixture paths one level lower (reported, not hidden),
and hooks that block on high/medium but only warn on low."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sentinel.confidence import at_least, for_path, is_test_path
from tests.conftest import GitRepo, password, run_cli, token

SENTINEL = str(Path(sys.executable).parent / "sentinel")


def scan(*args: str, cwd: Path | None = None) -> tuple[int, list[dict[str, object]], dict]:
    res = run_cli("scan", "path", *args, "--format", "json", cwd=cwd)
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    return res.returncode, doc["findings"], doc["stats"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "app").mkdir(parents=True)
    (root / "tests" / "fixtures").mkdir(parents=True)
    provider = token("ghp", 301)
    generic = password(301, n=20)
    body = f"GITHUB_TOKEN={provider}\nDB_PASSWORD={generic}\n"
    (root / "app" / "settings.env").write_text(body)
    (root / "tests" / "fixtures" / "settings.env").write_text(body)
    return root


def _levels(findings: list[dict[str, object]]) -> dict[tuple[str, str], str]:
    return {
        (str(f["path"]), str(f["rule_id"]).split(".")[0]): str(f["confidence"]) for f in findings
    }


def test_every_finding_has_a_confidence_and_test_paths_are_one_lower(project: Path) -> None:
    code, findings, _ = scan(".", cwd=project)
    assert code == 1
    levels = _levels(findings)
    assert levels[("app/settings.env", "github")] == "high"
    assert levels[("app/settings.env", "generic")] == "low"
    # the same secrets under tests/fixtures are still reported, one level less sure
    assert levels[("tests/fixtures/settings.env", "github")] == "medium"
    assert levels[("tests/fixtures/settings.env", "generic")] == "low"


def test_min_confidence_filters_the_report_and_the_exit_code(project: Path) -> None:
    _, findings, stats = scan(".", "--min-confidence", "medium", cwd=project)
    assert {(f["path"], f["confidence"]) for f in findings} == {
        ("app/settings.env", "high"),
        ("tests/fixtures/settings.env", "medium"),
    }
    assert stats["below_min_confidence"] == 2
    _, findings, _ = scan(".", "--min-confidence", "high", cwd=project)
    assert [f["path"] for f in findings] == ["app/settings.env"]
    (project / "tests" / "fixtures" / "settings.env").unlink()
    (project / "app" / "settings.env").write_text(f"DB_PASSWORD={password(302, n=20)}\n")
    code, findings, _ = scan(".", "--min-confidence", "medium", cwd=project)
    assert (code, findings) == (0, [])  # only a low-confidence guess left: a clean exit


def test_min_confidence_from_the_project_config(project: Path) -> None:
    (project / ".sentinel.toml").write_text('min_confidence = "high"\n')
    _, findings, _ = scan(".", cwd=project)
    assert {f["confidence"] for f in findings} == {"high"}
    (project / ".sentinel.toml").write_text('min_confidence = "certain"\n')
    res = run_cli("scan", "path", ".", "--format", "json", cwd=project)
    assert res.returncode == 2
    assert "confidence must be one of low, medium, high" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_min_confidence_flag_is_a_usage_error(project: Path) -> None:
    res = run_cli("scan", "path", ".", "--min-confidence", "sure", cwd=project)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


def test_a_root_under_tests_does_not_make_everything_a_test(project: Path) -> None:
    # scanning tests/fixtures itself: paths are relative to the root, nothing is lowered
    _, findings, _ = scan(".", cwd=project / "tests" / "fixtures")
    assert _levels(findings)[("settings.env", "github")] == "high"


@pytest.mark.parametrize(
    ("path", "test"),
    [
        ("tests/test_api.py", True),
        ("src/__fixtures__/keys.json", True),
        ("pkg/client_test.go", True),
        ("web/src/app.spec.ts", True),
        ("src/test/java/com/acme/ClientTest.java", True),
        (".env.example", True),
        ("examples/quickstart.py", True),
        ("config/settings.py", False),
        ("src/contest/entry.py", False),
        ("attestation/verify.go", False),
    ],
)
def test_test_paths(path: str, test: bool) -> None:
    assert is_test_path(path) is test
    assert for_path("high", path) == ("medium" if test else "high")


def test_levels_are_ordered() -> None:
    assert at_least("high", "medium") and at_least("medium", "medium")
    assert not at_least("low", "medium")


# -- hooks ----------------------------------------------------------------------------------


MakeRepo = Callable[..., GitRepo]


@pytest.fixture
def hooked(git_repo: MakeRepo) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n"})
    res = run_cli("hooks", "install", "--repo", str(repo.path))
    assert res.returncode == 0, res.stderr
    return repo


def commit(repo: GitRepo, message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-m", message],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SENTINEL": SENTINEL},
    )


@pytest.mark.integration
def test_pre_commit_warns_on_a_generic_guess_and_blocks_a_provider_key(hooked: GitRepo) -> None:
    guess = password(310, n=20)
    hooked.write("app/db.env", f"DB_PASSWORD={guess}\n")
    hooked.git("add", "-A")
    res = commit(hooked, "db settings")
    assert res.returncode == 0, res.stderr  # committed
    assert "possible secret(s) in the lines this commit adds" in res.stderr
    assert "app/db.env:1  generic.secret-assignment" in res.stderr
    assert guess not in res.stderr

    hooked.write("app/gh.env", f"GITHUB_TOKEN={token('ghp', 311)}\n")
    hooked.git("add", "-A")
    res = commit(hooked, "gh settings")
    assert res.returncode != 0
    assert "commit blocked: 1 secret" in res.stderr


@pytest.mark.integration
def test_block_confidence_low_makes_the_hook_strict(hooked: GitRepo) -> None:
    hooked.write(".sentinel.toml", 'block_confidence = "low"\n')
    hooked.write("app/db.env", f"DB_PASSWORD={password(312, n=20)}\n")
    hooked.git("add", "-A")
    res = commit(hooked, "db settings")
    assert res.returncode != 0
    assert "commit blocked: 1 secret" in res.stderr


@pytest.mark.integration
def test_pre_receive_accepts_a_generic_guess_with_a_warning(
    git_repo: MakeRepo, tmp_path: Path
) -> None:
    server = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(server)], check=True)
    assert run_cli("hooks", "install", "--repo", str(server)).returncode == 0
    dev = git_repo("dev")
    dev.commit("init", {"README.md": "hello\n"})
    dev.git("remote", "add", "origin", f"file://{server}")
    guess = password(320, n=20)
    dev.commit("settings", {"app/db.env": f"DB_PASSWORD={guess}\n"})
    res = subprocess.run(
        ["git", "push", "origin", "main"], cwd=dev.path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "possible secret(s) in the pushed commits (low confidence, not blocking)" in res.stderr
    assert guess not in res.stderr
    dev.commit("more", {"app/gh.env": f"GITHUB_TOKEN={token('ghp', 321)}\n"})
    res = subprocess.run(
        ["git", "push", "origin", "main"], cwd=dev.path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode != 0
    assert "push rejected: 1 secret" in res.stderr
