"""A repository that lacks part of its history is not reported clean (issue #12)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import GitRepo, run_cli, token

pytestmark = pytest.mark.integration

MakeRepo = Callable[..., GitRepo]


def test_a_missing_blob_is_an_error_and_the_rest_is_still_reported(git_repo: MakeRepo) -> None:
    repo = git_repo("corrupt")
    kept = token("ghp", 51)
    repo.commit("init", {"README.md": "hello\n", "keep.env": f"GITHUB_TOKEN={kept}\n"})
    repo.commit("config", {"app.env": f"GITHUB_TOKEN={token('ghp', 52)}\n"})
    blob = repo.git("rev-parse", "HEAD:app.env")
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    res = run_cli("scan", "git", str(repo.path), "--format", "json")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    report = json.loads(res.stdout)
    assert any(blob in e and "missing" in e for e in report["stats"]["errors"]), report["stats"]
    assert report["stats"]["skipped"].get("missing_object") == 1
    assert [f for f in report["findings"] if f.get("path") == "keep.env"], report["findings"]
    assert "sentinel: error:" in res.stderr and "missing" in res.stderr


def test_an_intact_repository_has_no_missing_objects(git_repo: MakeRepo) -> None:
    repo = git_repo("intact")
    repo.commit("init", {"README.md": "hello\n"})
    repo.commit("more", {"README.md": "hello again\n", "sub/x.txt": "x\n"})
    repo.commit("gone", remove=("sub/x.txt",))
    res = run_cli("scan", "git", str(repo.path), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert "errors" not in json.loads(res.stdout)["stats"]


def test_a_shallow_clone_is_scanned_with_a_warning(git_repo: MakeRepo, tmp_path: Path) -> None:
    origin = git_repo("origin")
    origin.commit("old", {"app.env": f"GITHUB_TOKEN={token('ghp', 53)}\n"})
    origin.commit("remove", remove=("app.env",))
    origin.commit("new", {"README.md": "hello\n"})
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{origin.path}", str(clone)], check=True
    )
    res = run_cli("scan", "git", str(clone), "--format", "json")
    assert res.returncode == 0, res.stderr
    warnings = json.loads(res.stdout)["stats"].get("warnings") or []
    assert any("shallow" in w for w in warnings), warnings
    assert "shallow clone" in res.stderr
    full = run_cli("scan", "git", str(origin.path), "--format", "json")
    assert "shallow" not in full.stderr
