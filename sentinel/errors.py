"""Errors Sentinel reports to a person. The CLI catches ``SentinelError`` and prints
its message on one line (exit 2); anything else is a bug and gets a log file.

    SentinelError
    ├── ConfigError            bad .sentinel.toml / pyproject / baseline / option value
    ├── RuleError              a rule file that does not load or lint
    └── SourceError            the thing to scan cannot be read
        ├── NotARepository     path is not a git repository
        ├── RefNotFound        --branch / --since names no ref or commit
        └── CorruptRepository  git failed reading objects (corrupt pack, missing object)
"""

from __future__ import annotations


class SentinelError(Exception):
    """A failure with a message fit for a person; ``hint`` says what to do next."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class ConfigError(SentinelError):
    pass


class RuleError(SentinelError):
    pass


class SourceError(SentinelError):
    pass


class NotARepository(SourceError):
    pass


class RefNotFound(SourceError):
    pass


class CorruptRepository(SourceError):
    pass
