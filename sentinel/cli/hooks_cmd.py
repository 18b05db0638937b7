"""``sentinel hooks install|uninstall`` and the help text of ``sentinel hook ...``
(running a hook never comes through here: ``sentinel.cli.main`` hands it straight to
``sentinel.hooks.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Install or remove Sentinel's git hooks.", no_args_is_help=True)
hook_app = typer.Typer(
    help="Run a git hook (git does this; install them with 'sentinel hooks install').",
    no_args_is_help=True,
)

RepoOpt = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation at runtime)
    typer.Option("--repo", help="The repository (default: the one around the current directory)."),
]
HookOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--hook",
        help="pre-commit, commit-msg or pre-receive (repeatable). Default: pre-commit and "
        "commit-msg in a work tree, pre-receive in a bare repository.",
    ),
]


def _hooks(repo, hook: list[str] | None) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    from sentinel.errors import ConfigError
    from sentinel.hooks import install

    if not hook:
        return install.default_hooks(repo)
    bad = [h for h in hook if h not in install.ALL_HOOKS]
    if bad:
        raise ConfigError(f"unknown hook {bad[0]!r}: choose from {', '.join(install.ALL_HOOKS)}")
    return tuple(dict.fromkeys(hook))


@app.command("install")
def install_cmd(repo: RepoOpt = None, hook: HookOpt = None) -> None:
    """Install the hooks (honours core.hooksPath; an existing hook is kept and chained)."""
    from sentinel.hooks import gitio, install

    r = gitio.locate(str(repo) if repo else None)
    for c in install.install(r, _hooks(r, hook)):
        note = {
            "installed": "installed",
            "updated": "updated",
            "unchanged": "already installed",
            "chained": f"installed; the existing hook now runs first as {c.path.name}{install.CHAINED_SUFFIX}",
        }[c.action]
        typer.echo(f"{c.hook}: {note} ({c.path})", err=True)
    _warm_rules()


def _warm_rules() -> None:
    """Compile the rules' Hyperscan database now, into the cache the hooks read: with
    500+ rules a cold compile takes seconds, which a first commit should not wait for
    and a first push would spend its time budget on."""
    import time

    from detectors.engine import Engine
    from detectors.hsdb import default_cache_dir
    from detectors.ruleset import load_builtin

    started = time.monotonic()
    rules = load_builtin()
    Engine(rules, cache_dir=default_cache_dir())
    typer.echo(
        f"rules: {len(rules)} rules ready ({time.monotonic() - started:.1f} s; "
        f"cache {default_cache_dir()})",
        err=True,
    )


@app.command("uninstall")
def uninstall_cmd(repo: RepoOpt = None, hook: HookOpt = None) -> None:
    """Remove Sentinel's hooks and put back any hook they had chained."""
    from sentinel.hooks import gitio, install

    r = gitio.locate(str(repo) if repo else None)
    hooks = tuple(hook) if hook else install.ALL_HOOKS
    for c in install.uninstall(r, _hooks(r, list(hooks))):
        if c.action == "absent" and not hook:
            continue
        note = {
            "removed": "removed",
            "restored": "removed; the earlier hook is back",
            "absent": "not installed",
            "foreign": "not Sentinel's hook, left alone",
        }[c.action]
        typer.echo(f"{c.hook}: {note} ({c.path})", err=True)


@app.command("deliver")
def deliver_cmd(
    repo: Annotated[
        Path, typer.Option("--repo", help="The server repository whose hook spooled events.")
    ],
) -> None:
    """Send the pre-receive hook's spooled events to the Sentinel service now (for cron:
    exit 0 when none is left waiting, 1 when some could not be sent)."""
    from sentinel.display import for_terminal
    from sentinel.hooks import gitio, spool

    r = gitio.locate(str(repo))
    result = spool.deliver(r.git_dir, wait=spool.LOCK_WAIT)
    where = result.endpoint or "the service"
    if result.busy:
        typer.echo(
            f"events: another delivery has held {spool.spool_dir(r.git_dir)} for "
            f"{spool.LOCK_WAIT:g} s; {result.kept} event(s) waiting",
            err=True,
        )
    for event_id, why in result.rejected:
        typer.echo(
            f"events: {event_id} refused: {for_terminal(why)} (moved to "
            f"{spool.spool_dir(r.git_dir) / spool.REJECTED})",
            err=True,
        )
    typer.echo(f"events: {len(result.delivered)} delivered to {where}", err=True)
    if result.kept:
        why = f": {for_terminal(result.problem)}" if result.problem else ""
        typer.echo(f"events: {result.kept} kept in the spool{why}", err=True)
    if result.dropped_total:
        typer.echo(
            f"events: {result.dropped_total} dropped so far because the spool was full "
            "(see the hook log)",
            err=True,
        )
    raise typer.Exit(1 if result.kept else 0)


def _run(argv: list[str]) -> None:
    from sentinel.hooks.cli import main

    raise typer.Exit(main(argv))


@hook_app.command("pre-commit")
def pre_commit(
    files: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(help="Files to scan whole (the pre-commit framework passes them)."),
    ] = None,
) -> None:
    """Scan what is staged (exit 1 when a line the commit adds holds a secret), or the
    FILEs given, whole (exit 1 when any holds one)."""
    _run(["pre-commit", "--", *(str(f) for f in files or [])])


@hook_app.command("commit-msg")
def commit_msg(file: Annotated[Path, typer.Argument(help="The commit message file.")]) -> None:
    """Scan a commit message; exit 1 when it holds a secret."""
    _run(["commit-msg", str(file)])


@hook_app.command("pre-receive")
def pre_receive() -> None:
    """Scan what a push introduces (ref updates on stdin); exit 1 rejects the push."""
    _run(["pre-receive"])
