"""What every git caller needs, in a module light enough for a hook to import."""

from __future__ import annotations


def first_error_line(stderr: bytes) -> str:
    """The first non-blank line git wrote to stderr: its reason, fit for one line."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return "git failed"
