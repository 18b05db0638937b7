"""``sentinel hook pre-commit|commit-msg|pre-receive``: what git runs.

Dispatched by ``sentinel.cli.main`` before the CLI framework is imported (typer and
what it pulls in cost more than the scan of a typical commit), so this module uses
argparse and imports only what the hook in question needs.

Exit codes are git's: 0 lets the commit or push through, anything else stops it
(1: secrets found or the server's fail-closed policy; 2: the hook could not run).
"""

from __future__ import annotations

import argparse
import sys

USAGE = """sentinel hook pre-commit              scan what is staged (run by git before a commit)
sentinel hook commit-msg FILE         scan a commit message (run by git with its file)
sentinel hook pre-receive             scan a push, ref updates on stdin (run by git on a server)

Install them with 'sentinel hooks install' (see 'sentinel hooks --help')."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sentinel hook", usage=USAGE, add_help=True)
    sub = p.add_subparsers(dest="hook", metavar="HOOK")
    sub.add_parser("pre-commit", help="scan the staged changes")
    msg = sub.add_parser("commit-msg", help="scan the commit message in FILE")
    msg.add_argument("file", metavar="FILE")
    sub.add_parser("pre-receive", help="scan the objects a push introduces (stdin: ref updates)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from sentinel.errors import SentinelError

    try:
        if args.hook == "pre-commit":
            from sentinel.hooks.precommit import pre_commit

            return pre_commit()
        if args.hook == "commit-msg":
            from sentinel.hooks.precommit import commit_msg

            return commit_msg(args.file)
        if args.hook == "pre-receive":
            from sentinel.hooks.prereceive import pre_receive

            return pre_receive(sys.stdin.buffer.read())
    except SentinelError as exc:
        print(f"sentinel: error: {exc}", file=sys.stderr)
        return 2
    _parser().print_usage(sys.stderr)
    return 2
