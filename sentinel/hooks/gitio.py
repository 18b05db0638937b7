"""The git plumbing the hooks share: where a repository is, which lines a change adds,
and reading a handful of blobs in one ``git cat-file`` call.

Only the ``git`` binary is used (no GitPython): a hook pays for every import.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from sentinel.errors import CorruptRepository, NotARepository
from sentinel.sources.gitcmd import first_error_line

ZERO_OIDS = (b"0" * 40, b"0" * 64)
_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def git(git_dir: str | None, *args: str, input: bytes | None = None, timeout: float | None = None):  # type: ignore[no-untyped-def]
    """``git [--git-dir=DIR] ARGS``; the environment is inherited on purpose: in a
    pre-receive hook it carries the quarantine directory of the objects being pushed."""
    argv = ["git", *([f"--git-dir={git_dir}"] if git_dir else []), *args]
    try:
        return subprocess.run(argv, input=input, capture_output=True, check=False, timeout=timeout)
    except FileNotFoundError:
        raise NotARepository("git is not installed or not on PATH") from None


@dataclass(frozen=True)
class Repo:
    git_dir: str  # absolute
    top: str | None  # the work tree, None when bare


def locate(path: str | None = None) -> Repo:
    """The repository at ``path`` (default: the current directory, as git finds it)."""
    cwd = path or "."
    if path is not None and not os.path.isdir(path):
        raise NotARepository(f"{path}: no such directory")
    try:
        res = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir", "--is-bare-repository", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise NotARepository("git is not installed or not on PATH") from None
    out = res.stdout.decode("utf-8", "surrogateescape").splitlines()
    if res.returncode != 0 or len(out) < 2:
        # a bare repository has no top level: rev-parse prints the first two and fails
        if len(out) >= 2 and out[1] == "true":
            return Repo(out[0], None)
        raise NotARepository(f"{os.path.abspath(cwd)} is not a git repository")
    if out[1] == "true":
        return Repo(out[0], None)
    return Repo(out[0], out[2] if len(out) > 2 else None)


def unquote_path(raw: bytes) -> bytes:
    """A path as git prints it in a patch header: C-quoted when it holds special bytes."""
    if raw.startswith(b'"') and raw.endswith(b'"'):
        return codecs.escape_decode(raw[1:-1])[0]
    return raw


class Added:
    """The line numbers (1-based, in the new version) a change adds to one file."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: set[int] = set()

    def touches(self, first: int, last: int) -> bool:
        return any(n in self.lines for n in range(first, last + 1))


def added_lines(patch: bytes) -> dict[bytes, Added]:
    """``{new path: Added}`` from a unified diff made with ``-U0``. A file that is only
    renamed, or binary, has no hunks and so adds no lines."""
    out: dict[bytes, Added] = {}
    current: Added | None = None
    for line in patch.split(b"\n"):
        if line.startswith(b"@@"):
            m = _HUNK.match(line)
            if m is not None and current is not None:
                start = int(m.group(1))
                count = int(m.group(2)) if m.group(2) is not None else 1
                current.lines.update(range(start, start + count))
        elif line.startswith(b"+++ "):
            # git ends the line with a tab when the name holds a space (for patch(1))
            target = line[4:].rstrip(b"\r").removesuffix(b"\t")
            if target == b"/dev/null":
                current = None
                continue
            target = unquote_path(target)
            current = out.setdefault(target[2:] if target.startswith(b"b/") else target, Added())
        elif line.startswith(b"diff --git "):
            current = None
    return out


@dataclass(frozen=True)
class Blob:
    sha: bytes
    data: bytes | None  # None: missing (or larger than the cap, see ``skipped``)
    skipped: str = ""


def read_blobs(
    git_dir: str | None,
    shas: Sequence[bytes],
    max_size: int,
    timeout: float | None = None,
    proc: subprocess.Popen[bytes] | None = None,
) -> list[Blob]:
    """The contents of ``shas`` in order, through one ``git cat-file --batch``. A blob
    over ``max_size`` is streamed past, never held in memory; ``timeout`` bounds the
    whole read (the process is killed when it runs out). ``proc``: a ``cat_file()``
    the caller started earlier, so that git's start-up overlapped other work."""
    import threading

    if proc is None:
        if not shas:
            return []
        proc = cat_file(git_dir)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            proc.stdin.write(b"".join(s + b"\n" for s in shas))  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError, OSError):
            pass

    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer is not None:
        timer.start()
    threading.Thread(target=feed, daemon=True).start()
    out: list[Blob] = []
    try:
        for sha in shas:
            header = proc.stdout.readline()
            parts = header.split()
            if len(parts) != 3:
                if not header:
                    break
                out.append(Blob(sha, None, "missing_object"))
                continue
            size = int(parts[2])
            if parts[1] != b"blob":
                _skip(proc.stdout, size + 1)
                out.append(Blob(sha, None, "missing_object"))
            elif size > max_size:
                _skip(proc.stdout, size + 1)
                out.append(Blob(sha, None, "too_large"))
            else:
                data = proc.stdout.read(size)
                proc.stdout.read(1)
                out.append(Blob(sha, data))
    finally:
        if timer is not None:
            timer.cancel()
        proc.stdout.close()
        proc.wait()
        err = proc.stderr.read() if proc.stderr else b""
        if proc.stderr:
            proc.stderr.close()
    if len(out) != len(shas):
        why = first_error_line(err) if err.strip() else "git cat-file stopped early"
        raise CorruptRepository(f"git cannot read objects: {why}")
    return out


def cat_file(git_dir: str | None = None) -> subprocess.Popen[bytes]:
    """A ``git cat-file --batch`` waiting for object names on stdin."""
    from sentinel.hooks import CAT_FILE, spawn

    argv = [CAT_FILE[0], *([f"--git-dir={git_dir}"] if git_dir else []), *CAT_FILE[1:]]
    try:
        return spawn(argv, feed=True)  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise NotARepository("git is not installed or not on PATH") from None


def _skip(stream: IO[bytes], n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            return
        n -= len(chunk)


def config_values(git_dir: str, names: Iterable[str]) -> dict[str, str]:
    """``git config --get`` for each of ``names`` (unset ones are left out), in one call."""
    res = git(git_dir, "config", "-z", "--get-regexp", r"^sentinel\.")
    found: dict[str, str] = {}
    for item in res.stdout.split(b"\0"):
        if not item:
            continue
        key, _, value = item.partition(b"\n")
        found[key.decode("utf-8", "replace").lower()] = value.decode("utf-8", "replace")
    return {n: found[n.lower()] for n in names if n.lower() in found}
