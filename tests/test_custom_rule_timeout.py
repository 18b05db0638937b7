"""A custom rule comes from a config file, and the config may be the scanned target's own
``.sentinel.toml``: its pattern can backtrack without end (``(a|aa)+b`` over a run of
``a``). Built-in rules are reviewed here; a custom rule's searches are bounded in time,
a rule that keeps timing out is dropped for the rest of the scan, and every search cut
short is counted (``stats.timed_out``) and named in a warning. Before, such a rule hung
the scan on a 60-byte file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.engine import GIVE_UP_AFTER, Engine
from detectors.rule import rule_from_table
from detectors.ruleset import RuleSet, load_builtin
from tests.conftest import token

EVIL_TOML = """
[[rule]]
id = "evil.backtracking"
description = "a pattern that backtracks without end when no b follows"
trigger = "aaaa"
max_length = 4096
regex = '''aaaa(a|aa)+b'''
keywords = ["aaaa"]
severity = "low"
examples = ["aaaaaab"]
negative_examples = ["nothing here"]
"""

RUN_OF_A = "a" * 90 + "\n"  # no 'b': the search tries every split of the run


def scan_path(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # our own bounded wait: before the fix this never finished
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel.cli.main",
            "scan",
            "path",
            str(target),
            "-f",
            "json",
            "--show-secrets",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=target.parent,
    )


def test_a_backtracking_rule_in_the_targets_config_does_not_hang_the_scan(tmp_path: Path) -> None:
    target = tmp_path / "untrusted"
    target.mkdir()
    (target / ".sentinel.toml").write_text(EVIL_TOML)
    (target / "bait.txt").write_text(RUN_OF_A)
    leak = token("ghp", 31337)
    (target / "app.py").write_text(f'GITHUB_TOKEN = "{leak}"\n')
    res = scan_path(target, "--jobs", "1")
    assert "Traceback" not in res.stderr, res.stderr
    doc = json.loads(res.stdout)
    assert res.returncode == 1
    assert [f["secret"] for f in doc["findings"]] == [leak]  # every other rule still ran
    assert doc["stats"]["timed_out"] == {"evil.backtracking": 1}
    assert "search(es) by custom rules not finished" in res.stderr
    assert "evil.backtracking (1)" in res.stderr


def test_a_rule_that_keeps_timing_out_is_dropped_and_every_skip_counted(tmp_path: Path) -> None:
    target = tmp_path / "untrusted"
    target.mkdir()
    (target / ".sentinel.toml").write_text(EVIL_TOML)
    files = 8
    for i in range(files):
        (target / f"bait-{i}.txt").write_text(RUN_OF_A)
    res = scan_path(target, "--jobs", "1")
    doc = json.loads(res.stdout)
    # GIVE_UP_AFTER searches ran out of time, then the rule was not run on the rest;
    # each file it did not finish is counted, none is passed over silently
    assert doc["stats"]["timed_out"] == {"evil.backtracking": files}
    assert files > GIVE_UP_AFTER


@pytest.mark.parametrize("backend", ["hyperscan", "regex"])
def test_both_backends_bound_a_custom_rules_search(backend: str) -> None:
    evil = rule_from_table(
        {
            "id": "evil.nested",
            "description": "backtracks over the whole chunk (no trigger)",
            "regex": r"(a|aa)+b",
            "keywords": ["aaaa"],
            "severity": "low",
            "examples": ["aaaab"],
        },
        "custom.toml",
    )
    github = [r for r in load_builtin() if r.id.startswith("github.")]
    eng = Engine(RuleSet((evil, *github)), backend=backend)  # type: ignore[arg-type]
    leak = token("ghp", 4711)
    data = f"x = '{leak}'\n{'a' * 90}c\n".encode()
    found = eng.scan(data)
    assert leak.encode() in {m.secret for m in found}
    if backend == "regex":  # the regex backend searches the whole chunk for this rule
        assert eng.stats.timed_out == {"evil.nested": 1}
