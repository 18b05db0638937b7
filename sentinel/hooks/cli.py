"""``sentinel hook pre-commit|commit-msg|pre-receive``: what git runs.

Dispatched by ``sentinel.cli.main`` before the CLI framework is imported (typer and
what it pulls in cost more than the scan of a typical commit), so this module uses
argparse and imports only what the hook in question needs.

Exit codes are git's: 0 lets the commit or push through, anything else stops it
(1: secrets found or the server's fail-closed policy; 2: the hook could not run).
"""

from __future__ import annotations

import sys

USAGE = """sentinel hook pre-commit              scan what is staged (run by git before a commit)
sentinel hook pre-commit FILE...      scan these files whole (the pre-commit framework's way)
sentinel hook commit-msg FILE         scan a commit message (run by git with its file)
sentinel hook pre-receive             scan a push, ref updates on stdin (run by git on a server)
sentinel hook deliver-events --git-dir DIR   post its spooled events (the hook starts it)

Install them with 'sentinel hooks install' (see 'sentinel hooks --help')."""


def _parser():  # type: ignore[no-untyped-def]
    import argparse

    p = argparse.ArgumentParser(prog="sentinel hook", usage=USAGE, add_help=True)
    sub = p.add_subparsers(dest="hook", metavar="HOOK")
    pre = sub.add_parser("pre-commit", help="scan the staged changes, or FILEs whole")
    pre.add_argument("files", metavar="FILE", nargs="*")
    msg = sub.add_parser("commit-msg", help="scan the commit message in FILE")
    msg.add_argument("file", metavar="FILE")
    sub.add_parser("pre-receive", help="scan the objects a push introduces (stdin: ref updates)")
    ev = sub.add_parser("deliver-events", help="post the pre-receive hook's spooled events")
    ev.add_argument("--git-dir", required=True)
    return p


def main(argv: list[str]) -> int:
    # the common forms skip argparse (a hook pays for every import)
    if argv == ["pre-commit"]:
        return _run("pre-commit", None)
    if argv[:1] == ["pre-commit"] and argv[1:2] not in (["-h"], ["--help"]):
        # file names, as the pre-commit framework passes them (any name, even "-x")
        names = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        return _run_files(names) if names else _run("pre-commit", None)
    if len(argv) == 2 and argv[0] == "commit-msg" and not argv[1].startswith("-"):
        return _run("commit-msg", argv[1])
    if argv == ["pre-receive"]:
        return _run("pre-receive", None)
    if len(argv) == 3 and argv[:2] == ["deliver-events", "--git-dir"]:
        return _deliver(argv[2])
    args = _parser().parse_args(argv)
    if args.hook is None:
        _parser().print_usage(sys.stderr)
        return 2
    if args.hook == "deliver-events":
        return _deliver(args.git_dir)
    return _run(args.hook, getattr(args, "file", None))


def _run_files(names: list[str]) -> int:
    from sentinel.errors import SentinelError

    try:
        from sentinel.hooks.named import pre_commit_files

        return pre_commit_files(names)
    except SentinelError as exc:
        from sentinel.display import for_terminal

        print(f"sentinel: error: {for_terminal(exc)}", file=sys.stderr)
        return 2


def _run(hook: str, file: str | None) -> int:
    from sentinel.errors import SentinelError

    try:
        if hook == "pre-commit":
            from sentinel.hooks import start_staged_reads

            try:
                diff, cat = start_staged_reads()
            except FileNotFoundError:
                print("sentinel: error: git is not installed or not on PATH", file=sys.stderr)
                return 2
            from sentinel.hooks.precommit import pre_commit

            return pre_commit(diff=diff, cat=cat)
        if hook == "commit-msg":
            from sentinel.hooks.precommit import commit_msg

            assert file is not None
            return commit_msg(file)
        from sentinel.hooks.prereceive import pre_receive

        return pre_receive(sys.stdin.buffer.read())
    except SentinelError as exc:
        from sentinel.display import for_terminal

        print(f"sentinel: error: {for_terminal(exc)}", file=sys.stderr)
        return 2


def _deliver(git_dir: str) -> int:
    """What the pre-receive hook starts, detached, after spooling an event: one
    delivery round, quietly (its output goes nowhere; the hook log says what failed).
    Another deliverer already at work: exit at once, it will see this event too."""
    from sentinel.errors import SentinelError
    from sentinel.hooks.spool import deliver

    try:
        result = deliver(git_dir)
    except SentinelError as exc:
        from sentinel.display import for_terminal

        print(f"sentinel: error: {for_terminal(exc)}", file=sys.stderr)
        return 2
    return 1 if result.kept and not result.busy else 0
