"""Project configuration: ``.sentinel.toml``, or ``[tool.sentinel]`` in pyproject.toml.

max_file_size = "10MB"          # larger files and blobs are skipped (counted)
exclude_paths = ["vendor/**"]   # gitignore-style globs, relative to the project root
disable_rules = ["jwt.token"]
min_confidence = "low"          # low | medium | high: scans report findings at least this sure
block_confidence = "medium"     # hooks block on findings at least this sure and warn on the rest
oversize = "warn"               # hooks, on a file over max_file_size: warn (scan its first and
                                # last parts, name what was not scanned) | block (refuse it)

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
OVERSIZE_MODES = ("warn", "block")  # what a hook does with a file over max_file_size
_KEYS = {
    "max_file_size",
    "exclude_paths",
    "disable_rules",
    "min_confidence",
    "block_confidence",
    "oversize",
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
    oversize: str = "warn"
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
    oversize = str(doc.get("oversize", "warn")).strip().lower()
    if oversize not in OVERSIZE_MODES:
        raise ConfigError(f"{where}: oversize {doc['oversize']!r} is not warn or block")

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
        oversize=oversize,
        allow_paths=_strs(allow, "paths", where),
        allow_regexes=_strs(allow, "regexes", where),
        allow_stopwords=_strs(allow, "stopwords", where),
        allow_commits=_strs(allow, "commits", where),
        rules=rules,
    )


MAX_CONFIG_FILE = 1024 * 1024  # a config file larger than this is refused


def _read_config(path: Path) -> str:
    """The text of a config file; a FIFO, device or oversize file in its place (a
    scanned tree is someone else's) is refused with a one-line error, never waited on."""
    from sentinel.sources.safeio import FileTooLarge, read_text

    try:
        return read_text(path, MAX_CONFIG_FILE)
    except FileTooLarge:
        raise ConfigError(
            f"config {path} is larger than {MAX_CONFIG_FILE // 1024} KiB: not a config file",
            "pass --config with the right file",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot read config {path}: {reason}") from None


def load(path: Path) -> Config:
    text = _read_config(path)
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
    import os
    import stat

    def mode(p: Path) -> int | None:
        try:
            return p.lstat().st_mode
        except OSError:  # missing, or in a directory without search permission
            return None

    try:
        is_dir = stat.S_ISDIR(os.stat(start).st_mode)
    except OSError:
        is_dir = False
    d = start if is_dir else start.parent
    candidate = d / ".sentinel.toml"
    if mode(candidate) is not None:
        return load(candidate)  # a FIFO or device here is an error, not a silent default
    pyproject = d / "pyproject.toml"
    pm = mode(pyproject)
    if pm is not None and stat.S_ISREG(pm):
        from sentinel.sources.safeio import read_text

        try:
            text = read_text(pyproject, MAX_CONFIG_FILE)
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
