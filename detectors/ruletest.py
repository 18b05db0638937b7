"""Run every rule's examples and negative examples through the real engine.

Used by the test suite and by ``sentinel rules test``: a rule is only shipped
when its positives are found and its negatives are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.engine import Backend, Engine
from detectors.hsdb import compile_check, to_hyperscan
from detectors.rule import lint_rule
from detectors.ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class Failure:
    rule_id: str
    kind: str  # lint | hyperscan | example | negative
    detail: str

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.kind}: {self.detail}"


def check_example(engine: Engine, rule_id: str, text: str) -> bool:
    return any(m.rule_id == rule_id for m in engine.scan(text.encode()))


def run(ruleset: RuleSet, backend: Backend = "auto", hyperscan_lint: bool = True) -> list[Failure]:
    failures: list[Failure] = []
    for rule in ruleset:
        failures.extend(Failure(rule.id, "lint", p) for p in lint_rule(rule))
        if hyperscan_lint:
            why = compile_check(to_hyperscan(rule.scan_pattern()))
            if why:
                failures.append(Failure(rule.id, "hyperscan", why))
    engine = Engine(ruleset, backend=backend)
    for rule in ruleset:
        for ex in rule.examples:
            if not check_example(engine, rule.id, ex):
                failures.append(Failure(rule.id, "example", f"not found in {ex[:80]!r}"))
        for ex in rule.negative_examples:
            if check_example(engine, rule.id, ex):
                failures.append(Failure(rule.id, "negative", f"wrongly found in {ex[:80]!r}"))
    return failures


def main(argv: list[str] | None = None) -> int:
    """``python -m detectors.ruletest [FILE.toml ...]``: the check ``sentinel rules test`` runs."""
    import sys
    from pathlib import Path

    from detectors.ruleset import load_builtin, load_file

    files = sys.argv[1:] if argv is None else argv
    if files:
        ruleset = RuleSet(tuple(r for f in files for r in load_file(Path(f))))
    else:
        ruleset = load_builtin()
    failures = run(ruleset)
    for f in failures:
        print(f)
    print(f"{len(ruleset)} rules, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
