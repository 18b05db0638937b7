"""``sentinel hooks install|uninstall``: put the hooks into a repository without
breaking what is already there.

- The hooks directory is the one git itself uses: ``core.hooksPath`` when set, else
  ``GIT_DIR/hooks`` (``git rev-parse --git-path hooks`` answers both).
- An existing hook that is not Sentinel's is never overwritten: it is renamed to
  ``<hook>.pre-sentinel`` and Sentinel's hook runs it first (same arguments, same
  stdin); if it fails, that failure stands.
- Installing again only refreshes Sentinel's own script (idempotent); uninstalling
  removes it and puts the earlier hook back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import ConfigError
from sentinel.hooks import gitio

MARKER = "# sentinel-hook v1"
CHAINED_SUFFIX = ".pre-sentinel"
CLIENT_HOOKS = ("pre-commit", "commit-msg")
SERVER_HOOKS = ("pre-receive",)
ALL_HOOKS = CLIENT_HOOKS + SERVER_HOOKS


def hooks_dir(repo: gitio.Repo) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath is relative to the
    work tree, or to the repository itself when bare)."""
    import subprocess

    from sentinel.sources.gitcmd import safe_argv, safe_env

    base = repo.top or repo.git_dir
    res = subprocess.run(
        [*safe_argv(keep=("core.hooksPath",)), "rev-parse", "--git-path", "hooks"],
        cwd=base,
        capture_output=True,
        check=False,
        env=safe_env(hook=True),
    )
    raw = res.stdout.decode("utf-8", "surrogateescape").strip()
    if res.returncode != 0 or not raw:
        return Path(repo.git_dir) / "hooks"
    return Path(base, raw) if not os.path.isabs(raw) else Path(raw)


def _sentinel_command() -> str:
    """How the hook finds Sentinel: the executable that is installing it (so a venv
    install works without activating the venv), else whatever ``sentinel`` is on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "sentinel" and argv0.is_file():
        return str(argv0.absolute())
    beside = Path(sys.executable).parent / "sentinel"  # python -m sentinel.cli.main in a venv
    if beside.is_file():
        return str(beside)
    found = shutil.which("sentinel")
    return found or "sentinel"


def script(hook: str, command: str) -> str:
    exe = shlex.quote(command)
    if hook == "pre-receive":
        # both the chained hook and Sentinel read the ref updates from stdin
        body = f"""input=$(cat)
if [ -x "$0{CHAINED_SUFFIX}" ]; then
    printf '%s\\n' "$input" | "$0{CHAINED_SUFFIX}" "$@" || exit $?
fi
printf '%s\\n' "$input" | "$sentinel" hook pre-receive
"""
    else:
        body = f"""if [ -x "$0{CHAINED_SUFFIX}" ]; then
    "$0{CHAINED_SUFFIX}" "$@" || exit $?
fi
exec "$sentinel" hook {hook} "$@"
"""
    return f"""#!/bin/sh
{MARKER}: {hook}
# Installed by 'sentinel hooks install'; 'sentinel hooks uninstall' removes it and puts
# back any hook that was here before (kept as {hook}{CHAINED_SUFFIX}, and run first).
sentinel=${{SENTINEL:-{exe}}}
if ! command -v "$sentinel" >/dev/null 2>&1; then
    sentinel=sentinel
    if ! command -v sentinel >/dev/null 2>&1; then
        echo "sentinel: the {hook} hook cannot find the sentinel command (was it uninstalled?);" >&2
        echo "  reinstall it, or remove this hook with 'sentinel hooks uninstall'." >&2
        exit 1
    fi
fi
{body}"""


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a regular file holding Sentinel's marker: read without
    following a symlink and without blocking on a FIFO (a plain open waits forever)."""
    from sentinel.sources.safeio import open_regular

    try:
        with open_regular(path, follow_symlinks=False) as fh:
            return MARKER.encode() in fh.read(4096)
    except OSError:
        return False


def _refuse_odd(path: Path) -> None:
    """A hook path that is a symlink (it points elsewhere: writing or chaining through
    it would change a file outside this repository's hooks, or run whatever it points
    to) or not a regular file (a FIFO would block every reader) is left alone, with
    one line saying what to do."""
    from sentinel.display import for_terminal
    from sentinel.sources.safeio import kind_of

    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise ConfigError(
            f"{for_terminal(path)} is a symlink (to {for_terminal(target)}); Sentinel does not "
            "install through it: replace it with a copy of the hook it points to, or remove "
            "it, and install again"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"{for_terminal(path)} is {kind_of(st.st_mode)}, not a hook script; remove it "
            "and install again"
        )


@dataclass
class Change:
    hook: str
    path: Path
    action: str  # installed | updated | chained | removed | restored | absent | foreign


def _write_executable(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".sentinel-tmp")
    # a leftover (or planted) temp file or symlink is replaced, never written through
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o755)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    mode = tmp.stat().st_mode
    tmp.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)


def default_hooks(repo: gitio.Repo) -> tuple[str, ...]:
    return SERVER_HOOKS if repo.top is None else CLIENT_HOOKS


def install(repo: gitio.Repo, hooks: tuple[str, ...], command: str | None = None) -> list[Change]:
    directory = hooks_dir(repo)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the hooks directory {directory}: {exc.strerror}"
        ) from None
    cmd = command or _sentinel_command()
    for hook in hooks:  # all refused before any is changed
        _refuse_odd(directory / hook)
    changes = []
    for hook in hooks:
        path = directory / hook
        chained = directory / (hook + CHAINED_SUFFIX)
        text = script(hook, cmd)
        try:
            if path.is_symlink() or path.exists():
                if _is_ours(path):
                    action = "unchanged" if path.read_text(encoding="utf-8") == text else "updated"
                elif chained.exists() or chained.is_symlink():
                    raise ConfigError(
                        f"{path} is not Sentinel's, and {chained.name} is taken too; "
                        "move one of them away and install again"
                    )
                else:
                    os.replace(path, chained)  # keeps it (and its mode)
                    action = "chained"
            else:
                action = "installed"
            if action != "unchanged":
                _write_executable(path, text)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        changes.append(Change(hook, path, action))
    return changes


def uninstall(repo: gitio.Repo, hooks: tuple[str, ...]) -> list[Change]:
    directory = hooks_dir(repo)
    changes = []
    for hook in hooks:
        path = directory / hook
        chained = directory / (hook + CHAINED_SUFFIX)
        try:
            if not (path.exists() or path.is_symlink()):
                changes.append(Change(hook, path, "absent"))
                continue
            if not _is_ours(path):
                changes.append(Change(hook, path, "foreign"))
                continue
            path.unlink()
            if chained.exists() or chained.is_symlink():
                os.replace(chained, path)
                changes.append(Change(hook, path, "restored"))
            else:
                changes.append(Change(hook, path, "removed"))
        except OSError as exc:
            raise ConfigError(f"cannot change {path}: {exc.strerror or exc}") from None
    return changes
