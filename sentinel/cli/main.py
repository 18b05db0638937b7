"""The ``sentinel`` command. Subcommand groups live in their own modules and import
their heavy dependencies lazily, so ``sentinel --help`` and the hooks start fast.

Exit codes: 0 nothing found, 1 findings, 2 error (usage, config, unreadable input).
"""

from __future__ import annotations

import os
import sys


def _app():  # type: ignore[no-untyped-def]
    import typer

    from sentinel.cli import (
        baseline_cmd,
        db_cmd,
        hooks_cmd,
        keys_cmd,
        rotate_cmd,
        rules_cmd,
        scan_cmd,
        schedules_cmd,
        serve_cmd,
        tokens_cmd,
    )

    app = typer.Typer(
        name="sentinel",
        help="Find leaked credentials in git history and files.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.add_typer(scan_cmd.app, name="scan")
    app.add_typer(rules_cmd.app, name="rules")
    app.add_typer(baseline_cmd.app, name="baseline")
    app.add_typer(hooks_cmd.app, name="hooks")
    app.add_typer(hooks_cmd.hook_app, name="hook")
    app.add_typer(db_cmd.app, name="db")
    app.add_typer(keys_cmd.app, name="keys")
    app.add_typer(tokens_cmd.app, name="tokens")
    app.add_typer(schedules_cmd.app, name="schedules")
    app.command("rotate")(rotate_cmd.rotate)
    app.add_typer(rotate_cmd.app, name="rotations")
    app.add_typer(rotate_cmd.rotators_app, name="rotators")
    app.command("serve")(serve_cmd.serve)
    return app


def _crash_log() -> str:
    import os
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="sentinel-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(traceback.format_exc())
    return path


def _safe(exc: BaseException) -> str:
    from sentinel.display import for_terminal

    return for_terminal(exc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sentinel-secrets")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _limit_memory() -> None:
    """A scan the service runs on untrusted input gets an address-space limit."""
    limit = os.environ.get("SENTINEL_RLIMIT_AS")
    if limit and limit.isdigit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def main() -> None:
    _limit_memory()
    if sys.argv[1:] in (["--version"], ["-V"]):
        # answered before the CLI framework is imported: a version check is instant
        print(f"sentinel {_version()}")
        sys.exit(0)
    if sys.argv[1:2] == ["hook"] and sys.argv[2:3] != ["--help"]:
        # what git runs on every commit or push: straight to the hook, no CLI framework
        from sentinel.hooks.cli import main as hook_main

        try:
            code = hook_main(sys.argv[2:])
            # a hook is a short process git waits for: skip tearing down the rule set and
            # the Hyperscan database object by object (~10 ms of a commit's wait)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        except KeyboardInterrupt:
            print("sentinel: interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:
            path = _crash_log()
            print(
                f"sentinel: internal error: {type(exc).__name__}: {_safe(exc)} (details in {path}; please report it)",
                file=sys.stderr,
            )
            sys.exit(2)

    from sentinel.errors import SentinelError

    try:
        rc = _app()(standalone_mode=False)
    except SentinelError as exc:
        from sentinel.display import for_terminal

        # messages name paths and values from the scanned content: never raw controls
        print(f"sentinel: error: {for_terminal(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("sentinel: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # typer vendors click; recognise its exceptions by what they carry, not by import
        name = type(exc).__name__
        if name == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if name == "Abort":
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(2)
        path = _crash_log()
        print(
            f"sentinel: internal error: {type(exc).__name__}: {_safe(exc)} (details in {path}; please report it)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
