"""Reporters: the same scan result as a table, JSON, JSON Lines or SARIF 2.1.0.

Plaintext appears only when the caller passes ``show_secrets`` (``--show-secrets``).
"""

from __future__ import annotations

from typing import TextIO

from sentinel.models import ScanResult

FORMATS = ("table", "json", "jsonl", "sarif")


def render(result: ScanResult, fmt: str, out: TextIO, *, show_secrets: bool = False) -> None:
    if fmt == "json":
        from sentinel.report.jsonfmt import write_json

        write_json(result, out, show_secrets)
    elif fmt == "jsonl":
        from sentinel.report.jsonfmt import write_jsonl

        write_jsonl(result, out, show_secrets)
    elif fmt == "sarif":
        from sentinel.report.sarif import write_sarif

        write_sarif(result, out, show_secrets)
    elif fmt == "table":
        from sentinel.report.table import write_table

        write_table(result, out, show_secrets)
    else:
        raise ValueError(f"unknown format {fmt!r}")
