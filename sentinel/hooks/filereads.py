"""Reading a file a hook was named, bounded: the whole of it up to ``max_file_size``,
else its first and last parts (the middle streamed past, only its newlines counted),
never blocking on a FIFO or following a symlink to somewhere else.

Used by the pre-commit hook when it is given file names (the pre-commit framework's
way, ``pre-commit run --all-files`` included) and by the commit-msg hook, whose message
file is whatever git, an editor or a script left at that path.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import IO

from sentinel.sources.safeio import NotRegularFile, kind_of

PIECE = 1 << 20  # the middle of an oversize file is read past in pieces of this size
NEAR = 4096  # a cut moves to a line boundary within this many bytes


@dataclass(frozen=True)
class FileRead:
    """``data`` is the whole file, unless ``size`` exceeded the cap: then it is the
    head, and ``tail`` (starting at byte ``tail_offset``, after ``tail_line`` lines)
    the end of the file."""

    size: int
    data: bytes
    tail: bytes = b""
    tail_offset: int = 0
    tail_line: int = 0

    @property
    def whole(self) -> bool:
        return self.tail_offset == 0

    @property
    def scanned(self) -> int:
        return len(self.data) + len(self.tail)


def read_bounded(path: str, max_size: int, *, follow_symlinks: bool = False) -> FileRead:
    """``path`` read whole if it is at most ``max_size`` bytes, else its first and last
    ``max_size // 2`` bytes. Raises ``NotRegularFile`` (an ``OSError``) for a FIFO,
    socket, device or directory, and ``OSError`` (``ELOOP``) for a symlink unless
    ``follow_symlinks``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, kind_of(st.st_mode))
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        size = st.st_size
        if size <= max_size:
            # a file that grows while it is read is read as far as it was when opened
            return FileRead(size, fh.read(size))
        return _edges(fh, size, max_size // 2)


def _edges(fh: IO[bytes], size: int, edge: int) -> FileRead:
    head = fh.read(edge)
    if b"\n" in head[-NEAR:]:
        head = head[: head.rindex(b"\n") + 1]
    pos, lines = len(head), head.count(b"\n")
    fh.seek(pos)
    keep_from = max(pos, size - edge - 1)  # one byte more: does the tail start a line?
    while pos < keep_from:
        piece = fh.read(min(keep_from - pos, PIECE))
        if not piece:
            break
        lines += piece.count(b"\n")
        pos += len(piece)
    rest = fh.read(size - pos) if pos < size else b""
    start = pos
    if rest and pos > len(head):
        nl = rest.find(b"\n", 0, NEAR)
        drop = nl + 1 if nl >= 0 else 1
        lines += rest.count(b"\n", 0, drop)
        rest, start = rest[drop:], start + drop
    return FileRead(size, head, rest, start, lines)
