"""Confidence levels: how sure a finding is that it holds a live secret.

``high``: a checksummed or prefix-anchored provider format; ``medium``: a provider
format confirmed by the provider's name or host nearby, or a connection string;
``low``: a generic guess from a secret-sounding name and a random-looking value.
A finding in a test, fixture or example path is one level less sure (never hidden:
test fixtures leak real keys too).
"""

from __future__ import annotations

import re

LEVELS = ("low", "medium", "high")
_RANK = {name: i for i, name in enumerate(LEVELS)}

# a directory or file name that marks test, fixture, sample or documentation code
_TEST_PATH = re.compile(
    r"(?:^|[/\\])(?:tests?|__tests__|testing|testdata|test[-_]data|spec|specs|"
    r"fixtures?|__fixtures__|__mocks__|mocks?|examples?|samples?|demos?|"
    r"e2e|integration[-_]tests?|unit[-_]tests?)(?:[/\\]|$)|"
    r"(?:^|[/\\])(?:test_[^/\\]*|[^/\\]*_tests?\.[A-Za-z0-9]+|[^/\\]*\.(?:test|spec)\.[A-Za-z0-9]+|"
    r"[^/\\]*Tests?\.(?:java|kt|cs|scala|swift|php)|conftest\.py|"
    r"[^/\\]*\.(?:example|sample|template|dist|tmpl))$",
)


def rank(level: str) -> int:
    return _RANK[level]


def at_least(level: str, floor: str) -> bool:
    return _RANK[level] >= _RANK[floor]


def is_test_path(path: str | None) -> bool:
    """``tests/…``, ``src/__fixtures__/…``, ``foo_test.go``, ``app.spec.ts``,
    ``FooTest.java``, ``.env.example``: code that exercises or documents, not runs."""
    return bool(path) and _TEST_PATH.search(path or "") is not None


def for_path(level: str, path: str | None) -> str:
    """``level`` lowered one step for a test/fixture/example path."""
    if is_test_path(path):
        return LEVELS[max(0, _RANK[level] - 1)]
    return level


def parse(value: str) -> str:
    v = value.strip().lower()
    if v not in _RANK:
        raise ValueError(f"confidence must be one of {', '.join(LEVELS)}, not {value!r}")
    return v
