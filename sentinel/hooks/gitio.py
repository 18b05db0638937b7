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
from sentinel.sources.gitcmd import first_error_line, safe_argv, safe_env

ZERO_OIDS = (b"0" * 40, b"0" * 64)
_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def git(git_dir: str | None, *args: str, input: bytes | None = None, timeout: float | None = None):  # type: ignore[no-untyped-def]
    """``git [--git-dir=DIR] ARGS`` with the repository's programs and output settings
    overridden (``gitcmd.OVERRIDES``). The variables git set for the hook are kept: in a
    pre-receive hook they carry the quarantine directory of the objects being pushed."""
    argv = [*safe_argv(git_dir), *args]
    try:
        return subprocess.run(
            argv,
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
            env=safe_env(hook=True),
        )
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
            [
                *safe_argv(),
                "rev-parse",
                "--absolute-git-dir",
                "--is-bare-repository",
                "--show-toplevel",
            ],
            cwd=cwd,
            capture_output=True,
            check=False,
            env=safe_env(hook=True),
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
    """The lines (1-based, in the new version) a change adds to one file, as the
    ``[first, last]`` ranges of its hunks. ``everything``: git showed no lines (a
    binary file, or one a gitattributes ``-diff`` makes look binary), so every line
    counts as added."""

    __slots__ = ("everything", "ranges")

    def __init__(self, everything: bool = False) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.everything = everything

    def touches(self, first: int, last: int) -> bool:
        return self.everything or any(a <= last and first <= b for a, b in self.ranges)


def _binary_target(line: bytes) -> bytes | None:
    """The new path of a ``Binary files A and B differ`` line (None: deleted)."""
    body = line[len(b"Binary files ") :].removesuffix(b" differ")
    if body.startswith(b"/dev/null and "):
        new = body[len(b"/dev/null and ") :]
    elif body.endswith(b" and /dev/null"):
        return None
    else:
        half = (len(body) - len(b" and ")) // 2
        if body[half : half + 5] == b" and " and body[:half][2:] == body[half + 5 :][2:]:
            new = body[half + 5 :]  # the same name on both sides: cut in the middle
        else:  # a rename: split at the last " and " before the new side's prefix
            cut = max(body.rfind(b" and b/"), body.rfind(b' and "b/'))
            new = body[cut + 5 :] if cut >= 0 else body
    new = unquote_path(new)
    return new[2:] if new.startswith(b"b/") else new


# The lines of a patch that are not content: content lines start with "+", "-", " " or
# "\\", so these, matched at a line start, are headers; "+++ " and "--- " only before a
# file's first hunk ("+++ x" inside a hunk is the added line "++ x").
_PATCH_HEADER = re.compile(rb"^(?:diff --git |@@ |\+\+\+ |Binary files )[^\n]*", re.MULTILINE)


def added_lines(patch: bytes) -> dict[bytes, Added]:
    """``{new path: Added}`` from a unified diff made with ``-U0``. A file that is only
    renamed has no hunks and so adds no lines; a binary one, whose lines git does not
    show, adds all of them (a secret in it is new unless a baseline knows it).

    Only header lines are looked at (found by one regex pass, not a Python loop over
    every line: a 20 MB file adds millions of lines)."""
    out: dict[bytes, Added] = {}
    current: Added | None = None
    in_header = False  # between "diff --git" and the file's first hunk
    for m in _PATCH_HEADER.finditer(patch):
        line = m.group(0).rstrip(b"\r")
        if line.startswith(b"@@ "):
            in_header = False
            h = _HUNK.match(line)
            if h is not None and current is not None:
                start = int(h.group(1))
                count = int(h.group(2)) if h.group(2) is not None else 1
                if count:
                    current.ranges.append((start, start + count - 1))
        elif line.startswith(b"diff --git "):
            current, in_header = None, True
        elif not in_header:
            continue  # an added line that looks like a header
        elif line.startswith(b"+++ "):
            # git ends the line with a tab when the name holds a space (for patch(1))
            target = line[4:].removesuffix(b"\t")
            if target == b"/dev/null":
                current = None
                continue
            target = unquote_path(target)
            current = out.setdefault(target[2:] if target.startswith(b"b/") else target, Added())
        else:  # Binary files A and B differ
            target = _binary_target(line) if line.endswith(b" differ") else None
            if target is not None:
                out[target] = Added(everything=True)
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

    try:
        return spawn(CAT_FILE, feed=True, git_dir=git_dir)  # type: ignore[no-any-return]
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


CAT_FILE_NAME = "git cat-file"


@dataclass(frozen=True)
class Edges:
    """The first and last part of a blob too large to scan whole (see ``read_edges``)."""

    sha: bytes
    size: int
    head: bytes
    tail: bytes
    tail_offset: int  # where ``tail`` starts in the blob
    tail_line: int  # how many lines come before it (the first line of ``tail`` is this + 1)

    @property
    def unscanned(self) -> int:
        return max(0, self.tail_offset - len(self.head))


def read_edges(
    git_dir: str | None, shas: Sequence[bytes], edge: int, timeout: float | None = None
) -> list[Edges | None]:
    """The first ``edge`` bytes and the last ``edge`` bytes of each blob of ``shas``
    (None: missing), streamed through one ``git cat-file --batch``: the middle is read
    past in 1 MiB pieces, only its newlines counted, so memory stays near ``2 * edge``
    whatever the blob's size. The head ends and the tail starts at a line boundary
    when there is one near the cut, so line and column numbers in both stay true.
    ``timeout`` bounds the whole read: git is killed and ``subprocess.TimeoutExpired``
    raised past it."""
    import threading

    if not shas:
        return []
    proc = cat_file(git_dir)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            stdin.write(b"".join(s + b"\n" for s in shas))
            stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer is not None:
        timer.start()
    out: list[Edges | None] = []
    try:
        for sha in shas:
            parts = stdout.readline().split()
            if len(parts) != 3:
                out.append(None)
                continue
            size = int(parts[2])
            head = stdout.read(min(size, edge))
            if len(head) < size and b"\n" in head[-4096:]:
                head = head[: head.rindex(b"\n") + 1]
            pos, lines = len(head), head.count(b"\n")
            # one byte before the tail is kept too: it says whether the tail starts a line
            keep_from = max(pos, size - edge - 1)
            rest = b""
            while pos < size:
                piece = stdout.read(min(size - pos, 1 << 20))
                if not piece:
                    break
                cut = min(len(piece), max(0, keep_from - pos))
                lines += piece.count(b"\n", 0, cut)
                rest += piece[cut:]
                pos += len(piece)
            stdout.read(1)
            start = keep_from
            if rest and keep_from > len(head):
                nl = rest.find(b"\n", 0, 4096)
                drop = nl + 1 if nl >= 0 else 1
                lines += rest.count(b"\n", 0, drop)
                rest, start = rest[drop:], start + drop
            out.append(Edges(sha, size, head, rest, start, lines))
    finally:
        if timer is not None:
            timer.cancel()
        stdout.close()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    if proc.returncode and proc.returncode < 0 and timeout:
        raise subprocess.TimeoutExpired(CAT_FILE_NAME, timeout)
    return out
