"""Git hooks: block secrets at commit time (pre-commit, commit-msg) and at push time
(pre-receive), and install them into repositories.

Start-up is a hook's whole cost, so nothing here is imported by ``sentinel --help``
and ``sentinel hook ...`` is dispatched before the CLI framework loads (see
``sentinel.hooks.cli``).
"""

from __future__ import annotations

from typing import Any

# The one git call that gives both views of a staged change: the raw list (blob ids,
# modes, renames) and the patch (which lines are added). Here, so that the hook can
# start it before importing anything heavy.
STAGED_DIFF = (
    "git",
    "-c",
    "core.quotePath=false",
    "diff",
    "--cached",
    "--patch-with-raw",
    "-U0",
    "-M",
    "--no-abbrev",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
CAT_FILE = ("git", "cat-file", "--batch")


def spawn(argv: tuple[str, ...] | list[str], *, cwd: str | None = None, feed: bool = False) -> Any:
    """Start a git command whose output the caller reads (and, with ``feed``, whose
    stdin it writes). Raises FileNotFoundError without git."""
    import subprocess

    return subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def start_staged_reads(cwd: str | None = None) -> tuple[Any, Any]:
    """The pre-commit hook's two git processes, started before anything heavy is
    imported so that git works on the other core: the staged diff, and a cat-file
    waiting for the blob ids the diff names."""
    return spawn(STAGED_DIFF, cwd=cwd), spawn(CAT_FILE, cwd=cwd, feed=True)
