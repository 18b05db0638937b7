"""Project configuration: ``.sentinel.toml``, or ``[tool.sentinel]`` in pyproject.toml.

max_file_size = "10MB"          # larger files and blobs are skipped (counted)
exclude_paths = ["vendor/**"]   # gitignore-style globs, relative to the project root
disable_rules = ["jwt.token"]
min_confidence = "low"          # low | medium | high: scans report findings at least this sure
block_confidence = "medium"     # hooks block on findings at least this sure and warn on the rest

[allowlist]                     # never report these
paths = ["tests/fixtures/**"]   # globs
regexes = ['''^AKIA[0-9A-Z]{12}TEST$''']   # searched in the secret value
stopwords = ["not-a-secret"]    # substrings of the secret value, case-insensitive
commits = ["<full sha>"]        # findings first introduced by these commits

[[rule]]                        # custom rules, same fields as detectors/rules/*.toml
id = "acme.internal-token"
...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.errors import ConfigError

if TYPE_CHECKING:
    from detectors.rule import Rule

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
_KEYS = {
    "max_file_size",
    "exclude_paths",
    "disable_rules",
    "min_confidence",
    "block_confidence",
    "allowlist",
    "rule",
    "rules",
}
_ALLOW_KEYS = {"paths", "regexes", "stopwords", "commits"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Config:
    source: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    exclude_paths: tuple[str, ...] = ()
    disable_rules: tuple[str, ...] = ()
    min_confidence: str = "low"
    block_confidence: str = "medium"
    allow_paths: tuple[str, ...] = ()
    allow_regexes: tuple[str, ...] = ()
    allow_stopwords: tuple[str, ...] = ()
    allow_commits: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = field(default_factory=tuple)


def parse_size(value: Any, where: str) -> int:
    if isinstance(value, int) and value > 0:
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{where}: max_file_size {value!r} is not a size like 10MB or 1048576")
    number, unit = float(m.group(1)), (m.group(2) or "b").lower()
    mult = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(unit[0], 1)
    return int(number * mult)


def _strs(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = table.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return tuple(v)


def from_table(doc: dict[str, Any], where: str) -> Config:
    unknown = set(doc) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    allow = doc.get("allowlist", {})
    if not isinstance(allow, dict):
        raise ConfigError(f"{where}: [allowlist] must be a table")
    bad = set(allow) - _ALLOW_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown [allowlist] setting(s): {', '.join(sorted(bad))}")
    for rx in _strs(allow, "regexes", where):
        try:
            re.compile(rx)
        except re.error as exc:
            raise ConfigError(f"{where}: allowlist regex {rx!r} does not compile: {exc}") from None
    from detectors.rule import RuleFormatError
    from detectors.ruleset import rules_from_doc
    from sentinel.confidence import parse as parse_confidence

    try:
        min_confidence = parse_confidence(str(doc.get("min_confidence", "low")))
        block_confidence = parse_confidence(str(doc.get("block_confidence", "medium")))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None

    try:
        rules = tuple(rules_from_doc(doc, where))
    except RuleFormatError as exc:
        raise ConfigError(str(exc)) from None
    return Config(
        source=where,
        max_file_size=parse_size(doc.get("max_file_size", DEFAULT_MAX_FILE_SIZE), where),
        exclude_paths=_strs(doc, "exclude_paths", where),
        disable_rules=_strs(doc, "disable_rules", where),
        min_confidence=min_confidence,
        block_confidence=block_confidence,
        allow_paths=_strs(allow, "paths", where),
        allow_regexes=_strs(allow, "regexes", where),
        allow_stopwords=_strs(allow, "stopwords", where),
        allow_commits=_strs(allow, "commits", where),
        rules=rules,
    )


def load(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        doc = doc.get("tool", {}).get("sentinel", {})
    return from_table(doc, str(path))


def discover(start: Path) -> Config:
    """The project config at ``start`` (a directory or a file's directory), or defaults."""
    d = start if start.is_dir() else start.parent
    candidate = d / ".sentinel.toml"
    if candidate.is_file():
        return load(candidate)
    pyproject = d / "pyproject.toml"
    if pyproject.is_file():
        try:
            text = pyproject.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return Config()
        if "sentinel" not in text:
            return Config()  # no [tool.sentinel] table: no need to parse the file
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return Config()
        if "sentinel" in doc.get("tool", {}):
            return from_table(doc["tool"]["sentinel"], f"{pyproject} [tool.sentinel]")
    return Config()
