"""Every rule proves itself: its examples are found, its negative examples are not,
and it is well formed. A rule that fails here does not ship."""

from __future__ import annotations

import pytest

from detectors.engine import Engine
from detectors.hsdb import compile_check, to_hyperscan
from detectors.rule import RULE_ID_RE, lint_rule
from detectors.ruleset import load_builtin

RULES = load_builtin()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(RULES, backend="hyperscan")


def _cases(kind: str) -> list[pytest.param]:
    out = []
    for r in RULES:
        for i, ex in enumerate(getattr(r, kind)):
            out.append(pytest.param(r.id, ex, id=f"{r.id}[{i}]"))
    return out


@pytest.mark.parametrize(("rule_id", "text"), _cases("examples"))
def test_example_is_found(engine: Engine, rule_id: str, text: str) -> None:
    found = [m for m in engine.scan(text.encode()) if m.rule_id == rule_id]
    assert found, f"{rule_id} does not find its example {text!r}"
    assert all(m.secret in text.encode() or m.decoded for m in found)


@pytest.mark.parametrize(("rule_id", "text"), _cases("negative_examples"))
def test_negative_example_is_not_found(engine: Engine, rule_id: str, text: str) -> None:
    found = [m.secret for m in engine.scan(text.encode()) if m.rule_id == rule_id]
    assert not found, f"{rule_id} wrongly reports {found!r} in {text!r}"


@pytest.mark.parametrize("rule", list(RULES), ids=lambda r: r.id)
def test_rule_lints_clean(rule) -> None:  # type: ignore[no-untyped-def]
    assert RULE_ID_RE.match(rule.id)
    assert lint_rule(rule) == []
    assert compile_check(to_hyperscan(rule.regex)) is None
    assert compile_check(to_hyperscan(rule.scan_pattern())) is None
    assert rule.negative_examples, "every rule needs negative examples"


def test_coverage_and_unique_ids() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150
    families = {r.family for r in RULES}
    for needed in (
        "aws",
        "gcp",
        "azure",
        "github",
        "gitlab",
        "slack",
        "stripe",
        "openai",
        "anthropic",
        "privatekey",
        "jwt",
        "uri",
        "generic",
        "npm",
        "pypi",
    ):
        assert needed in families, f"no rules for {needed}"


def test_checksummed_tokens_use_the_checksum() -> None:
    for rid in ("github.pat-classic", "github.oauth-token", "npm.access-token"):
        assert RULES.by_id(rid).checksum is not None
