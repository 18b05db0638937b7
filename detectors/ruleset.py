"""Loading rule files into an ordered, hashable set of rules."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.rule import Rule, RuleFormatError, rule_from_table

BUILTIN_DIR = Path(__file__).parent / "rules"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise RuleFormatError(f"rule id {r.id!r} is defined twice")
            seen.add(r.id)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def by_id(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def digest(self) -> str:
        """A hash of everything in the rules that changes what the engine reports: the
        patterns, and also keywords, entropy, checksum, confidence, allowlists (a cache
        of verdicts keyed by less would keep a stale verdict after a rule change)."""
        h = hashlib.sha256()
        for r in self.rules:
            h.update(repr(r).encode() + b"\1")
        return h.hexdigest()

    def without(self, ids: Iterable[str]) -> RuleSet:
        drop = set(ids)
        return RuleSet(tuple(r for r in self.rules if r.id not in drop))

    def plus(self, extra: Sequence[Rule]) -> RuleSet:
        return RuleSet(self.rules + tuple(extra))


def parse_rules_toml(text: str, source_file: str, validate: bool = True) -> list[Rule]:
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFormatError(f"{source_file}: not valid TOML: {exc}") from None
    return rules_from_doc(doc, source_file, validate)


def rules_from_doc(doc: dict[str, Any], source_file: str, validate: bool = True) -> list[Rule]:
    tables = doc.get("rule", doc.get("rules", []))
    if not isinstance(tables, list):
        raise RuleFormatError(f"{source_file}: 'rule' must be an array of tables ([[rule]])")
    return [rule_from_table(t, source_file, validate) for t in tables]


def load_file(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFormatError(f"{path}: cannot read rule file: {exc}") from None
    return parse_rules_toml(text, str(path))


def builtin_rule_files() -> list[Path]:
    return sorted(BUILTIN_DIR.glob("*.toml"))


def _parse_builtin(files: list[Path]) -> RuleSet:
    rules: list[Rule] = []
    for path in files:
        rules.extend(
            parse_rules_toml(
                path.read_text(encoding="utf-8"), f"detectors/rules/{path.name}", validate=False
            )
        )
    return RuleSet(tuple(rules))


def load_builtin(cache_dir: Path | None = None) -> RuleSet:
    """The built-in rules. Parsing a hundred TOML files is most of a hook's start-up,
    so the parsed set is kept in the cache directory, keyed by the name, size and
    modification time of every rule file and of the code that defines a rule: any
    edit or upgrade makes a new key. A cache that cannot be read or written only
    costs a parse."""
    import os
    import pickle
    import sys
    import tempfile

    from detectors import hsdb, rule

    files = builtin_rule_files()
    key = hashlib.sha256(f"rules|v1|{sys.version_info[:2]}".encode())
    for path in [*files, Path(rule.__file__), Path(__file__)]:
        try:
            st = path.stat()
        except OSError:
            return _parse_builtin(files)
        key.update(f"{path.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cached = (cache_dir or hsdb.default_cache_dir()) / f"rules-{key.hexdigest()[:40]}.pickle"
    try:
        with open(cached, "rb") as fh:
            found = pickle.load(fh)
        if isinstance(found, RuleSet):
            return found
    except Exception:  # absent, stale or damaged: parse again
        pass
    ruleset = _parse_builtin(files)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".rules-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(ruleset, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cached)
    except OSError:
        pass
    return ruleset
