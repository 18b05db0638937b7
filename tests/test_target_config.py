"""A scanned repository's own ``.sentinel.toml`` is written by whoever wrote the
repository. It may legitimately allowlist test fixtures, but it can also silence its own
live keys; when Sentinel scans a target that is not the user's current project, every
match that config hid is counted and named in a warning, and ``--no-target-config``
scans without it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token

LEAK = token("ghp", 4242)


def scan(kind: str, target: Path, *extra: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    res = run_cli("scan", kind, str(target), "-f", "json", "--show-secrets", *extra, cwd=cwd)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout), res.stderr


@pytest.fixture
def silenced(git_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = git_repo("untrusted")
    repo.commit(
        "add service",
        {
            "app.py": f'GITHUB_TOKEN = "{LEAK}"\n',
            ".sentinel.toml": '[allowlist]\npaths = ["**/*.py"]\n',
        },
    )
    return repo


@pytest.mark.parametrize("kind", ["git", "path"])
def test_an_allowlist_in_the_scanned_target_is_counted_and_named(
    silenced: GitRepo, tmp_path: Path, kind: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rc, doc, err = scan(kind, silenced.path, cwd=elsewhere)
    assert rc == 0 and doc["findings"] == []
    assert doc["stats"]["suppressed"]["allowlist_path"] >= 1
    assert doc["stats"]["config"] == {
        "source": str(silenced.path / ".sentinel.toml"),
        "from_scanned_target": True,
    }
    (warning,) = [w for w in doc["stats"]["warnings"] if "own config" in w]
    assert "it hid" in warning and "allowlist_path" in warning and "--no-target-config" in warning
    assert "scanned target's own config" in err  # printed, not only in the file

    rc, doc, err = scan(kind, silenced.path, "--no-target-config", cwd=elsewhere)
    assert rc == 1
    assert [f["secret"] for f in doc["findings"]] == [LEAK]
    assert "config" not in doc["stats"]
    assert "own config" not in err


def test_value_allowlists_and_disabled_rules_are_counted(
    git_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = git_repo("untrusted")
    repo.commit(
        "add",
        {
            "a.py": f'TOKEN = "{LEAK}"\n',
            "b.py": f'OTHER = "{token("npm", 7)}"\n',
            ".sentinel.toml": f'disable_rules = ["npm.access-token"]\n[allowlist]\nstopwords = ["{LEAK[-8:]}"]\n',
        },
    )
    rc, doc, _err = scan("path", repo.path, cwd=tmp_path)
    assert rc == 0 and doc["findings"] == []
    # before, a stopword or regex allowlist hid a value without any count at all
    assert doc["stats"]["suppressed"]["allowlist_value"] >= 1
    (warning,) = [w for w in doc["stats"]["warnings"] if "own config" in w]
    assert "allowlist_value" in warning
    assert "disables 1 rule(s): npm.access-token" in warning


def test_the_users_own_project_is_not_warned_about(silenced: GitRepo) -> None:
    sub = silenced.path / "src"
    sub.mkdir()
    for cwd in (silenced.path, sub):
        rc, doc, _err = scan("git", silenced.path, cwd=cwd)
        assert rc == 0
        assert doc["stats"]["config"]["from_scanned_target"] is False
        assert doc["stats"]["suppressed"]["allowlist_path"] >= 1  # still counted
        assert not any("own config" in w for w in doc["stats"].get("warnings", []))


def test_an_explicit_config_is_the_users_choice(silenced: GitRepo, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("min_confidence = 'low'\n")
    rc, doc, _err = scan("git", silenced.path, "--config", str(mine), cwd=tmp_path)
    assert rc == 1
    assert [f["secret"] for f in doc["findings"]] == [LEAK]
    assert doc["stats"]["config"] == {"source": str(mine), "from_scanned_target": False}


def test_exclude_paths_and_narrowing_settings_are_named(
    git_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = git_repo("untrusted")
    repo.commit(
        "add",
        {
            "vendor/lib.py": f'TOKEN = "{LEAK}"\n',
            ".sentinel.toml": 'exclude_paths = ["vendor/**"]\nmin_confidence = "high"\nmax_file_size = "10"\n',
        },
    )
    _rc, doc, _err = scan("path", repo.path, cwd=tmp_path)
    (warning,) = [w for w in doc["stats"]["warnings"] if "own config" in w]
    assert "exclude_paths kept 1 file(s) out" in warning
    assert "only findings of high confidence or more" in warning
    assert "lowers max_file_size to 10 bytes" in warning


def test_a_file_named_like_sentinels_own_is_scanned_below_the_root(
    git_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """Matches in the target's own .sentinel.toml (rule examples) are not findings; a key
    in deploy/.sentinel.toml or app/.sentinel-baseline.json was hidden the same way."""
    repo = git_repo("untrusted")
    repo.commit(
        "add",
        {
            "deploy/.sentinel.toml": f'token = "{LEAK}"\n',
            "app/.sentinel-baseline.json": f'{{"note": "{token("npm", 99)}"}}\n',
            ".sentinel.toml": f"# example: {token('ghp', 77)}\n",
        },
    )
    for kind in ("git", "path"):
        rc, doc, err = scan(kind, repo.path, cwd=tmp_path)
        assert rc == 1, err
        assert sorted(f["path"].split("untrusted/")[-1] for f in doc["findings"]) == [
            "app/.sentinel-baseline.json",
            "deploy/.sentinel.toml",
        ]
        assert doc["stats"]["suppressed"]["sentinel_config"] >= 1
        (warning,) = [w for w in doc["stats"]["warnings"] if "own config" in w]
        assert "sentinel_config" in warning
