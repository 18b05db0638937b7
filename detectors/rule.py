"""A detection rule: data loaded from ``detectors/rules/<family>.toml``.

A rule file holds ``[[rule]]`` tables. Each rule carries its own examples, so a
rule is only as good as the cases it proves: ``lint_rule`` checks the shape and
``detectors.ruletest`` runs the examples through the real engine.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # stdlib, bounds widths
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regex import Pattern

SEVERITIES = ("critical", "high", "medium", "low", "info")
CONFIDENCES = ("high", "medium", "low")
RULE_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+(?:[.-][a-z0-9]+)*$")
# Rules whose width cannot be bounded (``+``, ``*``) are confirmed in a window of this many
# bytes before each Hyperscan hit unless the rule sets ``max_length``.
DEFAULT_MAX_LENGTH = 16384


def regex_flags() -> int:
    """MULTILINE | VERSION0. The ``regex`` module is imported only when a rule is
    compiled: a hook whose staged lines hit no rule never pays for it."""
    import regex

    return int(regex.MULTILINE | regex.VERSION0)


class RuleFormatError(ValueError):
    """A rule file or rule table that cannot be loaded."""


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Values a rule must not report: regexes over the secret, and stopwords."""

    regexes: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    regex: str
    keywords: tuple[str, ...]
    severity: str
    examples: tuple[str, ...]
    negative_examples: tuple[str, ...] = ()
    entropy: float | None = None
    checksum: str | None = None
    rotator: str | None = None
    confidence: str = "high"
    references: tuple[str, ...] = ()
    secret_group: int | str | None = None
    max_length: int | None = None
    generic: bool = False
    trigger: str | None = None
    allowlist: Allowlist = field(default_factory=Allowlist)
    source_file: str = ""

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    def compiled(self) -> Pattern[bytes]:
        import regex

        return regex.compile(self.regex.encode(), regex_flags())

    def compiled_trigger(self) -> Pattern[bytes] | None:
        """The trigger for the ``regex`` backend, which stands in for Hyperscan's hits."""
        if self.trigger is None:
            return None
        import regex

        return regex.compile(self.trigger.encode(), regex_flags())

    def group(self, pat: Pattern[bytes] | None = None) -> int | str:
        """The group holding the secret: explicit, else ``secret``, else 1, else the match."""
        if self.secret_group is not None:
            return self.secret_group
        pat = pat or self.compiled()
        if "secret" in pat.groupindex:
            return "secret"
        return 1 if pat.groups >= 1 else 0

    def scan_pattern(self) -> str:
        """What Hyperscan looks for: the ``trigger`` when the rule has one (a prefix of
        the match that ends once per candidate), else the regex itself."""
        return self.trigger or self.regex

    def window(self) -> int:
        """How many bytes before a hit's end the whole match can start."""
        if self.trigger is not None:
            return pattern_width(self.trigger)
        if self.max_length is not None:
            return self.max_length
        return pattern_width(self.regex)

    def reach(self) -> int:
        """How many bytes after a hit's end the match can still run: with a trigger,
        the rest of the match (``max_length``)."""
        if self.trigger is None:
            return 0
        return self.max_length if self.max_length is not None else DEFAULT_MAX_LENGTH

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "family": self.family,
            "severity": self.severity,
            "confidence": self.confidence,
            "regex": self.regex,
            "keywords": list(self.keywords),
            "entropy": self.entropy,
            "checksum": self.checksum,
            "rotator": self.rotator,
            "references": list(self.references),
            "examples": len(self.examples),
            "negative_examples": len(self.negative_examples),
            "source_file": self.source_file,
        }
        if self.trigger is not None:
            d["trigger"] = self.trigger
        return d


def pattern_width(pattern: str) -> int:
    """Upper bound on a match's length, or DEFAULT_MAX_LENGTH when unbounded or unparsable."""
    try:
        lo, hi = sre_parse.parse(pattern, re.MULTILINE).getwidth()
    except Exception:  # regex-module syntax the stdlib parser does not know
        return DEFAULT_MAX_LENGTH
    del lo
    if hi >= sre_parse.MAXREPEAT or hi > DEFAULT_MAX_LENGTH:
        return DEFAULT_MAX_LENGTH
    return int(hi)


def _strs(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleFormatError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


_KNOWN_KEYS = {
    "id",
    "description",
    "name",
    "regex",
    "keywords",
    "severity",
    "examples",
    "negative_examples",
    "entropy",
    "checksum",
    "rotator",
    "confidence",
    "references",
    "secret_group",
    "max_length",
    "generic",
    "trigger",
    "allowlist",
}


def is_builtin(rule: Rule) -> bool:
    """A rule shipped in ``detectors/rules/`` (reviewed here), not one from a config."""
    return rule.source_file.startswith("detectors/rules/")


def rule_from_table(table: dict[str, Any], source_file: str = "", validate: bool = True) -> Rule:
    """Build a rule from one TOML table, with errors that name the rule and the field.

    ``validate=False`` skips compiling the pattern: built-in rules are compiled by the
    test suite, and the engine compiles a rule's pattern only when it first hits.
    """
    rid = table.get("id")
    where = f"{source_file or '<rules>'}: rule {rid!r}"
    if not isinstance(rid, str) or not rid:
        raise RuleFormatError(f"{source_file or '<rules>'}: a rule has no 'id'")
    unknown = set(table) - _KNOWN_KEYS
    if unknown:
        raise RuleFormatError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    pattern = table.get("regex")
    if not isinstance(pattern, str) or not pattern:
        raise RuleFormatError(f"{where}: 'regex' is required")
    if validate:
        import regex

        try:
            regex.compile(pattern.encode(), regex_flags())
        except regex.error as exc:
            raise RuleFormatError(f"{where}: regex does not compile: {exc}") from None
    severity = table.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleFormatError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    confidence = table.get("confidence", "high")
    if confidence not in CONFIDENCES:
        raise RuleFormatError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
    entropy = table.get("entropy")
    if entropy is not None and not isinstance(entropy, int | float):
        raise RuleFormatError(f"{where}: 'entropy' must be a number")
    max_length = table.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
        raise RuleFormatError(f"{where}: 'max_length' must be a positive integer")
    group = table.get("secret_group")
    if group is not None and not isinstance(group, int | str):
        raise RuleFormatError(f"{where}: 'secret_group' must be a group number or name")
    al = table.get("allowlist", {})
    if not isinstance(al, dict):
        raise RuleFormatError(f"{where}: 'allowlist' must be a table")
    allowlist = Allowlist(
        regexes=_strs(al, "regexes", where),
        stopwords=_strs(al, "stopwords", where),
        paths=_strs(al, "paths", where),
    )
    trigger = table.get("trigger")
    if trigger is not None:
        if not isinstance(trigger, str) or not trigger:
            raise RuleFormatError(f"{where}: 'trigger' must be a pattern")
        if max_length is None:
            raise RuleFormatError(f"{where}: a rule with a 'trigger' needs 'max_length'")
    description = table.get("description") or table.get("name") or ""
    if not isinstance(description, str):
        raise RuleFormatError(f"{where}: 'description' must be a string")
    return Rule(
        id=rid,
        description=description,
        regex=pattern,
        keywords=tuple(k.lower() for k in _strs(table, "keywords", where)),
        severity=severity,
        examples=_strs(table, "examples", where),
        negative_examples=_strs(table, "negative_examples", where),
        entropy=float(entropy) if entropy is not None else None,
        checksum=table.get("checksum"),
        rotator=table.get("rotator"),
        confidence=confidence,
        references=_strs(table, "references", where),
        secret_group=group,
        max_length=max_length,
        generic=bool(table.get("generic", False)),
        trigger=trigger,
        allowlist=allowlist,
        source_file=source_file,
    )


def lint_rule(rule: Rule) -> list[str]:
    """Shape problems that make a rule unfit to ship; empty when it is fine."""
    from detectors.validators import CHECKSUMS

    problems: list[str] = []
    if not RULE_ID_RE.match(rule.id):
        problems.append("id must look like 'family.name' (lowercase, digits, '-', '.')")
    if is_builtin(rule):  # built-in: one file per family
        stem = rule.source_file.rsplit("/", 1)[-1].removesuffix(".toml")
        if rule.family != stem:
            problems.append(f"id family '{rule.family}' does not match file '{stem}.toml'")
    if not rule.description:
        problems.append("description is empty")
    if not rule.examples:
        problems.append("needs at least one example")
    pat = rule.compiled()
    named = [n for n in pat.groupindex if n == "secret"]
    if rule.secret_group is None and pat.groups > 1 and not named:
        problems.append("has several groups: name the secret group (?P<secret>...)")
    if rule.checksum is not None and rule.checksum not in CHECKSUMS:
        problems.append(f"unknown checksum '{rule.checksum}'")
    for kw in rule.keywords:
        if len(kw) < 2:
            problems.append(f"keyword {kw!r} is too short to prefilter anything")
    for ex in rule.examples:
        if rule.keywords and not any(k in ex.lower() for k in rule.keywords):
            problems.append(f"example {ex[:40]!r} holds none of the keywords")
    return problems
