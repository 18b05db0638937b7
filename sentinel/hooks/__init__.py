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
# start it before importing anything heavy. Both are subcommands: ``spawn`` puts git and
# the configuration overrides before them.
STAGED_DIFF = (
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
CAT_FILE = ("cat-file", "--batch")


def spawn(
    args: tuple[str, ...] | list[str],
    *,
    cwd: str | None = None,
    feed: bool = False,
    git_dir: str | None = None,
) -> Any:
    """Start ``git [--git-dir=DIR] ARGS`` (the repository's programs and output
    settings overridden, see ``gitcmd.OVERRIDES``) whose output the caller reads (and,
    with ``feed``, whose stdin it writes). Raises FileNotFoundError without git."""
    import subprocess

    from sentinel.sources.gitcmd import safe_argv, safe_env

    return subprocess.Popen(
        [*safe_argv(git_dir), *args],
        cwd=cwd,
        env=safe_env(hook=True),
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def start_staged_reads(cwd: str | None = None) -> tuple[Any, Any]:
    """The pre-commit hook's two git processes, started before anything heavy is
    imported so that git works on the other core: the staged diff, and a cat-file
    waiting for the blob ids the diff names."""
    return spawn(STAGED_DIFF, cwd=cwd), spawn(CAT_FILE, cwd=cwd, feed=True)
