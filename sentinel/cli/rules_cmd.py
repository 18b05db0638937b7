"""``sentinel rules list|test``: inspect the rules, and lint your own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="List and test detection rules.", no_args_is_help=True)


@app.command("list")
def list_rules(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
    rules: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--rules", help="Also list the rules in these files."),
    ] = None,
) -> None:
    """Every rule Sentinel loads (built-in plus --rules files)."""
    from detectors.rule import RuleFormatError
    from detectors.ruleset import load_builtin, load_file
    from sentinel.errors import ConfigError, RuleError

    if fmt not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, not {fmt!r}")
    try:
        rs = load_builtin()
        for f in rules or ():
            rs = rs.plus(load_file(f))
    except RuleFormatError as exc:
        raise RuleError(str(exc)) from None
    if fmt == "json":
        json.dump([r.to_dict() for r in rs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("ID", "Severity", "Confidence", "Description"):
        table.add_column(col)
    for r in rs:
        table.add_row(r.id, r.severity, r.confidence, r.description)
    console = Console()
    console.print(table)
    console.print(f"{len(rs)} rules", style="dim")


@app.command("test")
def test_rules(
    files: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(help="Rule files to test (default: the built-in rules)."),
    ] = None,
) -> None:
    """Lint rules and run their examples and negative examples through the engine.
    Exit 1 if any rule fails."""
    from detectors import ruletest
    from detectors.rule import RuleFormatError
    from detectors.ruleset import RuleSet, load_builtin, load_file
    from sentinel.errors import RuleError

    try:
        rs = RuleSet(tuple(r for f in files for r in load_file(f))) if files else load_builtin()
    except RuleFormatError as exc:
        raise RuleError(str(exc)) from None
    failures = ruletest.run(rs)
    for f in failures:
        print(f)
    examples = sum(len(r.examples) + len(r.negative_examples) for r in rs)
    print(f"{len(rs)} rules, {examples} examples, {len(failures)} failures")
    raise typer.Exit(1 if failures else 0)
