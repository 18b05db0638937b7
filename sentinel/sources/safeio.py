"""Opening files that someone else put there.

A scanned tree, image layout, manifest directory or repository can hold a FIFO, a
socket or a device where a regular file is expected, or swap a file for one between
the walk that listed it and the read: a plain ``open()`` of a FIFO blocks until a
writer appears, which is never. Every read of untrusted content goes through here:
the file is opened with ``O_NONBLOCK`` (which never blocks on a FIFO), its type is
checked on the open descriptor with ``fstat`` (no race between the check and the
read), and anything but a regular file is refused with ``NotRegularFile``, an
``OSError`` so that callers which already count unreadable files count this too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or directory, not a file to read."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file", str(path))
        self.kind = kind


class FileTooLarge(OSError):
    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {limit} bytes", str(path))
        self.limit = limit


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> IO[bytes]:
    """``path`` opened for binary reading, only if it is a regular file. Never blocks:
    a FIFO (or a file swapped for one after it was listed) raises ``NotRegularFile``.
    ``follow_symlinks=False`` refuses a symlink itself (``ELOOP``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, kind_of(st.st_mode))
        # a regular file ignores O_NONBLOCK; clear it all the same, so nothing that
        # inherits the descriptor sees a surprising flag
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``; ``FileTooLarge`` past ``limit``."""
    with open_regular(path) as fh:
        if limit is None:
            return fh.read()
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, limit)
    return data


def read_text(path: str | os.PathLike[str], limit: int | None = None) -> str:
    """``read_regular`` decoded as UTF-8 (``UnicodeDecodeError`` when it is not)."""
    return read_regular(path, limit).decode("utf-8")


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file now (symlinks followed), without raising."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
