"""The JSON contract: ``{"version": 1, "findings": [...], "stats": {...}}``, and JSON Lines."""

from __future__ import annotations

import json
from typing import TextIO

from sentinel.display import json_text
from sentinel.display import write_json as dump
from sentinel.models import ScanResult


def write_json(result: ScanResult, out: TextIO, show_secrets: bool) -> None:
    doc = {
        "version": 1,
        "findings": [o.to_dict(show_secrets) for o in result.occurrences],
        "stats": result.stats,
    }
    dump(doc, out)
    out.write("\n")


def write_jsonl(result: ScanResult, out: TextIO, show_secrets: bool) -> None:
    for o in result.occurrences:
        out.write(json_text(json.dumps(o.to_dict(show_secrets), ensure_ascii=False)))
        out.write("\n")
