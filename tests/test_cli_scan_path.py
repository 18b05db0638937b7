"""``sentinel scan path`` through the real entry point: formats, exit codes, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import SCHEMAS, password, run_cli, token

REQUIRED = {
    "rule_id",
    "description",
    "severity",
    "fingerprint",
    "redacted",
    "source",
    "path",
    "line",
    "column",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.py").write_text(
        f'DEBUG = True\nGITHUB_TOKEN = "{token("ghp", 21)}"\n'
    )
    (tmp_path / ".env").write_text(f"DB_PASSWORD={password(21)}\n")
    (tmp_path / "README.md").write_text("nothing to see\n")
    return tmp_path


def test_json_report_follows_the_contract(project: Path) -> None:
    res = run_cli("scan", "path", str(project), "--format", "json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["version"] == 1
    by_rule = {f["rule_id"]: f for f in doc["findings"]}
    assert set(by_rule) == {"github.pat-classic", "generic.secret-assignment"}
    gh = by_rule["github.pat-classic"]
    assert set(gh) >= REQUIRED
    assert gh["source"] == "file"
    assert gh["path"].endswith("src/settings.py")
    assert (gh["line"], gh["column"]) == (2, 17)
    assert "secret" not in gh
    assert doc["stats"]["files_scanned"] == 3
    assert doc["stats"]["findings"] == 2


def test_plaintext_only_with_show_secrets(project: Path) -> None:
    secret = token("ghp", 21)
    for fmt in ("json", "jsonl", "sarif", "table"):
        res = run_cli("scan", "path", str(project), "--format", fmt)
        assert secret not in res.stdout + res.stderr, fmt
        shown = run_cli("scan", "path", str(project), "--format", fmt, "--show-secrets")
        assert secret in shown.stdout, fmt


def test_exit_codes(tmp_path: Path, project: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("hello\n")
    assert run_cli("scan", "path", str(clean), "-f", "json").returncode == 0
    assert run_cli("scan", "path", str(project), "-f", "json").returncode == 1
    bad = run_cli("scan", "path", str(tmp_path / "missing"), "-f", "json")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert run_cli("scan", "path", str(project), "--format", "xml").returncode == 2


def test_sarif_validates_against_the_schema(project: Path) -> None:
    res = run_cli("scan", "path", str(project), "--format", "sarif")
    doc = json.loads(res.stdout)
    schema = json.loads((SCHEMAS / "sarif-2.1.0.json").read_text())
    jsonschema.validate(doc, schema)
    run = doc["runs"][0]
    assert {r["ruleId"] for r in run["results"]} == {
        "github.pat-classic",
        "generic.secret-assignment",
    }
    result = next(r for r in run["results"] if r["ruleId"] == "github.pat-classic")
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 2 and region["startColumn"] == 17
    assert result["partialFingerprints"]["sentinel/v1"]
    assert result["level"] == "error"


def test_jsonl_one_finding_per_line(project: Path) -> None:
    res = run_cli("scan", "path", str(project), "--format", "jsonl")
    lines = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert len(lines) == 2 and all(set(x) >= REQUIRED for x in lines)


def test_output_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    res = run_cli("scan", "path", str(project), "--format", "json", "--output", str(out))
    assert res.returncode == 1 and res.stdout == ""
    assert len(json.loads(out.read_text())["findings"]) == 2


def test_table_is_the_default_for_a_terminal_but_json_for_a_pipe(project: Path) -> None:
    res = run_cli("scan", "path", str(project))
    assert json.loads(res.stdout)["version"] == 1
    table = run_cli("scan", "path", str(project), "--format", "table")
    assert "github.pat-classic" in table.stdout and "ghp_****" in table.stdout


def test_both_cores_give_the_same_findings(tmp_path: Path) -> None:
    for i in range(300):
        body = "x = 1\n" * 3000
        if i % 50 == 0:
            body += f'TOKEN = "{token("ghp", 100 + i)}"\n'
        (tmp_path / f"f{i:03}.py").write_text(body)
    one = json.loads(run_cli("scan", "path", str(tmp_path), "-f", "json", "-j", "1").stdout)
    two = json.loads(run_cli("scan", "path", str(tmp_path), "-f", "json", "-j", "2").stdout)
    assert one["findings"] == two["findings"]
    assert len(one["findings"]) == 6


def test_rules_list_and_test_commands(tmp_path: Path) -> None:
    res = run_cli("rules", "list", "--format", "json")
    rules = json.loads(res.stdout)
    assert len(rules) >= 150 and {"id", "description", "severity", "regex"} <= set(rules[0])
    good = tmp_path / "acme.toml"
    good.write_text(
        "[[rule]]\nid = 'acme.token'\ndescription = 'Acme token'\n"
        "regex = '''\\b(acme_[a-z0-9]{20})\\b'''\nkeywords = ['acme_']\n"
        "examples = ['k = acme_k2j4h5g6f7d8s9a0q1w2']\nnegative_examples = ['acme_short']\n"
    )
    ok = run_cli("rules", "test", str(good))
    assert ok.returncode == 0 and "1 rules, 2 examples, 0 failures" in ok.stdout
    bad = tmp_path / "broken.toml"
    bad.write_text(good.read_text().replace("acme_short", "k = acme_k2j4h5g6f7d8s9a0q1w3"))
    res = run_cli("rules", "test", str(bad))
    assert res.returncode == 1 and "acme.token: negative" in res.stdout


def test_same_findings_when_hyperscan_cannot_load(project: Path, tmp_path: Path) -> None:
    """A machine without Hyperscan (no wheel, old CPU) falls back to the regex path."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "hyperscan.py").write_text(
        "raise ModuleNotFoundError('hyperscan is not available here')\n"
    )
    fast = json.loads(run_cli("scan", "path", str(project), "-f", "json").stdout)
    slow = json.loads(
        run_cli("scan", "path", str(project), "-f", "json", env={"PYTHONPATH": str(shadow)}).stdout
    )
    assert slow["findings"] == fast["findings"] and len(fast["findings"]) == 2
