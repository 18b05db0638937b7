"""Suppression that survives history (baselines, inline allow) and project config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import GitRepo, password, run_cli, token

DATA = Path(__file__).parent / "data" / "config"


def _findings(res) -> list[dict]:  # type: ignore[no-untyped-def]
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)["findings"]


@pytest.mark.integration
def test_baseline_survives_rebase_and_moved_lines(git_repo) -> None:  # type: ignore[no-untyped-def]
    repo: GitRepo = git_repo()
    old = token("ghp", 31)
    repo.commit("config", {"conf.py": f'TOKEN = "{old}"\n'})
    base = repo.path / ".sentinel-baseline.json"
    res = run_cli("baseline", "create", str(repo.path), "--output", str(base))
    assert res.returncode == 0, res.stderr
    doc = json.loads(base.read_text())
    assert len(doc["secrets"]) == 1
    assert old not in base.read_text()  # fingerprints only, never the value
    # move the line, rename the file, rewrite history: still suppressed
    repo.commit(
        "move", {"settings/conf.py": f'# moved\n\n\nTOKEN = "{old}"\n'}, remove=("conf.py",)
    )
    repo.git("commit", "-q", "--amend", "-m", "moved and amended")
    res = run_cli("scan", "git", str(repo.path), "-f", "json", "--baseline", str(base))
    assert res.returncode == 0 and _findings(res) == []
    assert json.loads(res.stdout)["stats"]["suppressed"]["baseline"] >= 1
    # a new secret still reports
    new = token("ghp", 32)
    repo.commit("new", {"other.py": f'T = "{new}"\n'})
    found = _findings(run_cli("scan", "git", str(repo.path), "-f", "json", "--baseline", str(base)))
    assert [f["path"] for f in found] == ["other.py"]


def test_baseline_from_report_and_key_mismatch(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text(f"API_TOKEN={token('ghp', 33)}\n")
    report = tmp_path / "r.json"
    run_cli("scan", "path", str(tmp_path / "a.env"), "-f", "json", "-o", str(report))
    base = tmp_path / "b.json"
    assert (
        run_cli("baseline", "create", "--from-report", str(report), "-o", str(base)).returncode == 0
    )
    assert (
        run_cli(
            "scan", "path", str(tmp_path / "a.env"), "-f", "json", "--baseline", str(base)
        ).returncode
        == 0
    )
    other = run_cli(
        "scan",
        "path",
        str(tmp_path / "a.env"),
        "-f",
        "json",
        "--baseline",
        str(base),
        env={"SENTINEL_FINGERPRINT_KEY": "another-team-key"},
    )
    assert other.returncode == 2
    assert "made with another fingerprint key" in other.stderr
    missing = run_cli("scan", "path", str(tmp_path), "--baseline", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_baseline_add_accepts_fingerprints_and_refuses_garbage(tmp_path: Path) -> None:
    target = tmp_path / "a.env"
    target.write_text(f"API_TOKEN={token('ghp', 34)}\nOTHER={token('ghp', 35)}\n")
    found = run_cli("scan", "path", str(target), "-f", "json")
    assert found.returncode == 1
    fps = sorted({f["fingerprint"] for f in json.loads(found.stdout)["findings"]})
    assert len(fps) == 2
    base = tmp_path / "base.json"

    # a JSON report's fingerprints are under this installation's key
    res = run_cli("baseline", "add", fps[0], "--file", str(base), "--key", "installation")
    assert res.returncode == 0, res.stderr
    assert "1 fingerprint(s) added" in res.stderr
    left = run_cli("scan", "path", str(target), "-f", "json", "--baseline", str(base))
    assert left.returncode == 1
    assert [f["fingerprint"] for f in json.loads(left.stdout)["findings"]] == [fps[1]]

    res = run_cli("baseline", "add", *fps, "--file", str(base))  # one new, one already there
    assert "1 fingerprint(s) added, 1 already there" in res.stderr
    assert run_cli("scan", "path", str(target), "--baseline", str(base)).returncode == 0

    bad = run_cli("baseline", "add", "not-a-fingerprint", "--file", str(base))
    assert bad.returncode == 2
    assert "is not a fingerprint" in bad.stderr
    other_key = run_cli(
        "baseline",
        "add",
        fps[0],
        "--file",
        str(base),
        env={"SENTINEL_FINGERPRINT_KEY": "another-team-key"},
    )
    assert other_key.returncode == 2
    assert "made with another fingerprint key" in other_key.stderr
    assert json.loads(base.read_text())["secrets"].keys() == set(fps)


def test_fingerprint_is_keyed(tmp_path: Path) -> None:
    f = tmp_path / "a.env"
    f.write_text(f"API_TOKEN={token('ghp', 34)}\n")
    a = _findings(run_cli("scan", "path", str(f), "-f", "json"))[0]["fingerprint"]
    b = _findings(
        run_cli("scan", "path", str(f), "-f", "json", env={"SENTINEL_FINGERPRINT_KEY": "k2"})
    )
    assert a != b[0]["fingerprint"] and len(a) == 64


def test_project_config_custom_rule_excludes_and_allowlist(tmp_path: Path) -> None:
    allowed = password(41)
    (tmp_path / ".sentinel.toml").write_text(
        f"""
exclude_paths = ["vendor/**"]
[allowlist]
stopwords = ["{allowed[3:11]}"]
paths = ["docs/*.md"]

[[rule]]
id = "acme.internal-token"
description = "Acme internal service token"
regex = '''\\b(acme_live_[a-z0-9]{{24}})\\b'''
keywords = ["acme_live_"]
severity = "high"
examples = ["ACME=acme_live_q8w7e6r5t4y3u2i1o9p0a8s7"]
negative_examples = ["acme_live_short"]
"""
    )
    (tmp_path / "app.cfg").write_text("ACME=acme_live_q8w7e6r5t4y3u2i1o9p0a8s7\n")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "lib.py").write_text(f'T = "{token("ghp", 42)}"\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(f'T = "{token("ghp", 43)}"\n')
    (tmp_path / "db.env").write_text(f"DB_PASSWORD={allowed}\n")
    res = run_cli("scan", "path", str(tmp_path), "-f", "json")
    found = _findings(res)
    assert [(f["rule_id"], Path(f["path"]).name) for f in found] == [
        ("acme.internal-token", "app.cfg")
    ]
    stats = json.loads(res.stdout)["stats"]
    assert stats["skipped"]["excluded"] == 1
    assert stats["suppressed"]["allowlist_path"] == 1


def test_pyproject_tool_sentinel_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.sentinel]\ndisable_rules = ["github.pat-classic"]\n'
    )
    (tmp_path / "a.py").write_text(f'T = "{token("ghp", 44)}"\n')
    assert _findings(run_cli("scan", "path", str(tmp_path), "-f", "json")) == []


def test_inline_allow_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(
        f'A = "{token("ghp", 45)}"  # sentinel:allow fixture\nB = "{token("ghp", 46)}"\n'
    )
    found = _findings(run_cli("scan", "path", str(tmp_path), "-f", "json"))
    assert [f["line"] for f in found] == [2]


@pytest.mark.parametrize("case", sorted(p.stem for p in DATA.glob("*.toml")))
def test_config_errors_have_exact_messages(tmp_path: Path, case: str) -> None:
    """Each tests/data/config/<case>.toml is paired with <case>.expected: the one line
    the user sees."""
    cfg = tmp_path / ".sentinel.toml"
    cfg.write_text((DATA / f"{case}.toml").read_text())
    (tmp_path / "a.txt").write_text("hello\n")
    res = run_cli("scan", "path", str(tmp_path), "-f", "json")
    assert res.returncode == 2
    expected = (DATA / f"{case}.expected").read_text().strip().replace("{CONFIG}", str(cfg))
    assert res.stderr.strip() == expected
