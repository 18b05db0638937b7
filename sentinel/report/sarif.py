"""SARIF 2.1.0, for code-scanning dashboards. Each occurrence is a result with a
``partialFingerprints`` entry, so dashboards track a secret across moves."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from sentinel.models import ScanResult

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def _version() -> str:
    try:
        return version("sentinel-secrets")
    except PackageNotFoundError:
        return "0.0.0"


def document(result: ScanResult, show_secrets: bool) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for o in result.occurrences:
        if o.rule_id not in index:
            index[o.rule_id] = len(rules)
            rules.append(
                {
                    "id": o.rule_id,
                    "name": o.rule_id.replace(".", "/"),
                    "shortDescription": {"text": o.description},
                    "defaultConfiguration": {"level": LEVELS[o.severity]},
                    "properties": {"severity": o.severity, "tags": ["security", "secret"]},
                }
            )
        where = o.origin
        text = f"{o.description}: {o.secret if show_secrets else o.redacted}"
        if where.commit:
            text += f" (introduced in commit {where.commit[:12]}"
            text += f" by {where.author})" if where.author else ")"
        if where.image:
            text += f" (image {where.image}"
            text += f", layer {where.layer_index})" if where.layer_index else ", config)"
        if where.deleted_in_layer_index:
            text += (
                f"; deleted in layer {where.deleted_in_layer_index}, but still retrievable "
                "from the image by anyone who pulls it"
            )
        props = {
            k: v
            for k, v in o.to_dict(show_secrets).items()
            if k
            not in (
                "rule_id",
                "description",
                "path",
                "line",
                "column",
                "end_line",
                "end_column",
                "offset",
                "end_offset",
            )
        }
        region: dict[str, Any] = {
            "startLine": o.line,
            "startColumn": o.column,
            "endLine": o.end_line,
            "endColumn": o.end_column,
        }
        if o.offset is not None:  # in a binary, bytes say where; lines mean little
            region["byteOffset"] = o.offset
            if o.end_offset is not None:
                region["byteLength"] = o.end_offset - o.offset
        results.append(
            {
                "ruleId": o.rule_id,
                "ruleIndex": index[o.rule_id],
                "level": LEVELS[o.severity],
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": where.path},
                            "region": region,
                        }
                    }
                ],
                "partialFingerprints": {"sentinel/v1": o.fingerprint},
                "properties": props,
            }
        )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sentinel",
                        "version": _version(),
                        "informationUri": "https://github.com/sentinel-secrets/sentinel",
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
                "properties": {"stats": result.stats},
            }
        ],
    }


def write_sarif(result: ScanResult, out: TextIO, show_secrets: bool) -> None:
    from sentinel.display import write_json

    write_json(document(result, show_secrets), out)
    out.write("\n")
