"""``sentinel baseline create``: record today's known secrets so only new ones report."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Manage baselines of known secrets.", no_args_is_help=True)


class KeyChoice(enum.StrEnum):
    public = "public"
    installation = "installation"


_KEY_HELP = (
    "Fingerprint key: 'public' (the default for a scan: a committed baseline matches on "
    "every machine, but anyone holding it can test guesses offline) or 'installation' "
    "(this installation's secret key: private, matches only here; the default with "
    "--from-report, whose fingerprints are under it)."
)


def _key(choice: KeyChoice | None, default: KeyChoice) -> bytes:
    from sentinel.fingerprint import PUBLIC_KEY, installation_key

    return PUBLIC_KEY if (choice or default) is KeyChoice.public else installation_key().key


@app.command("create")
def create(
    target: Annotated[
        Path, typer.Argument(help="A git repository (its history) or a directory/file.")
    ] = Path("."),
    output: Annotated[Path, typer.Option("--output", "-o", help="Baseline file to write.")] = Path(
        ".sentinel-baseline.json"
    ),
    from_report: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--from-report", help="Build it from a 'scan --format json' report instead."),
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="For a repository: its working tree only.")
    ] = False,
    config: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--config", help="Config file (default: discovered)."),
    ] = None,
    key_choice: Annotated[
        Optional[KeyChoice],  # noqa: UP045
        typer.Option("--key", help=_KEY_HELP),
    ] = None,
) -> None:
    """Write keyed fingerprints of every secret found (never commit:line, never the value)."""
    from sentinel import baseline, scanner
    from sentinel import config as config_mod
    from sentinel.errors import ConfigError, NotARepository
    from sentinel.sources.safeio import read_regular

    if from_report is not None:
        key = _key(key_choice, KeyChoice.installation)
        try:
            report = json.loads(read_regular(from_report, 1 << 30).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read report {from_report}: {exc}") from None
        if not isinstance(report, dict):
            raise ConfigError("that file is not a sentinel JSON report (version 1)")
        doc = baseline.from_report(report, key)
    else:
        key = _key(key_choice, KeyChoice.public)
        cfg = config_mod.load(config) if config else config_mod.discover(target)
        opts = scanner.ScanOptions(config=cfg, baseline_key=key)
        result = None
        if target.is_dir() and not no_history:
            try:
                result = scanner.scan_git(str(target), opts)
            except NotARepository:
                result = None
        if result is None:
            result = scanner.scan_paths([str(target)], opts)
        doc = baseline.build(result.occurrences, key)
    try:
        output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {output}: {len(doc['secrets'])} known secret(s)", err=True)


@app.command("add")
def add(
    fingerprints: Annotated[
        list[str],
        typer.Argument(help="Fingerprints to add, as a hook or a JSON report prints them."),
    ],
    file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--file",
            "-o",
            help="Baseline file to update (default: .sentinel-baseline.json at the top of "
            "the work tree around the current directory, where the hooks read it; outside "
            "a repository, in the current directory).",
        ),
    ] = None,
    rule: Annotated[
        str, typer.Option("--rule", help="Rule id to note next to them (informational).")
    ] = "",
    key_choice: Annotated[
        Optional[KeyChoice],  # noqa: UP045
        typer.Option(
            "--key",
            help="For a new file: the key its fingerprints are under (public, as hooks print "
            "them, or installation). An existing file keeps its own.",
        ),
    ] = None,
) -> None:
    """Accept known secrets: add their fingerprints to the baseline (created if missing)."""
    from sentinel import baseline
    from sentinel.display import for_terminal
    from sentinel.fingerprint import installation_key

    if file is None:
        file = _default_baseline()
    changed = baseline.add(
        file,
        fingerprints,
        installation_key(),
        rule_id=rule,
        new_key=_key(key_choice, KeyChoice.public),
    )
    typer.echo(
        f"{for_terminal(file)}: {changed} fingerprint(s) added, "
        f"{len(fingerprints) - changed} already there",
        err=True,
    )


def _default_baseline() -> Path:
    """``.sentinel-baseline.json`` where the hooks look for it: at the top of the work
    tree (from a subdirectory too), else in the current directory. Absolute, so the
    message says where it went."""
    from sentinel.errors import NotARepository
    from sentinel.hooks import gitio
    from sentinel.hooks.precommit import BASELINE_FILE

    try:
        top = gitio.locate().top
    except NotARepository:
        top = None
    return Path(top or Path.cwd()).absolute() / BASELINE_FILE
