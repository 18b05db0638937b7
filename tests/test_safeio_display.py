"""The two helpers every source and reporter leans on: opening files that may be
FIFOs without blocking, and showing scanned text on a terminal without letting it
drive the terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.display import for_terminal
from sentinel.sources import safeio


def _in_subprocess(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a helper that blocks on a FIFO fails the
    test by timing out instead of hanging the whole test session."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "blob"
    os.mkfifo(fifo)
    res = _in_subprocess(
        "import sys; from sentinel.sources import safeio\n"
        "try:\n"
        f"    safeio.read_regular({str(fifo)!r})\n"
        "except safeio.NotRegularFile as exc:\n"
        "    print(exc.kind)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "a FIFO"


def test_a_socket_or_directory_is_refused(tmp_path: Path) -> None:
    sock_path = tmp_path / "s"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        with pytest.raises(OSError):  # a socket cannot even be opened: ENXIO
            safeio.read_regular(sock_path)
    finally:
        s.close()
    with pytest.raises(safeio.NotRegularFile) as info:
        safeio.read_regular(tmp_path)
    assert info.value.kind == "a directory"


def test_limit_and_symlink_policy(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert safeio.read_regular(f, 100) == b"x" * 100
    with pytest.raises(safeio.FileTooLarge):
        safeio.read_regular(f, 99)
    link = tmp_path / "link"
    link.symlink_to(f)
    assert safeio.read_regular(link) == b"x" * 100
    with pytest.raises(OSError):
        safeio.open_regular(link, follow_symlinks=False)
    # the descriptor handed out is blocking again, as a plain open() would give
    with safeio.open_regular(f) as fh:
        assert os.get_blocking(fh.fileno())


def test_terminal_text_escapes_controls_and_bidi_but_keeps_letters() -> None:
    assert for_terminal("esc\x1b[2J.txt") == "esc\\x1b[2J.txt"
    assert for_terminal("a\x9bb") == "a\\x9bb"  # C1 CSI
    assert for_terminal("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert for_terminal("two\nlines\ttab") == "two\\nlines\\ttab"
    assert for_terminal("two\nlines", multiline=True) == "two\nlines"
    assert for_terminal("Zoë/日本/файл.env") == "Zoë/日本/файл.env"
    assert for_terminal(42) == "42"
