"""A real ``sentinel serve`` in a child process, its stderr (the JSON log) in a file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVE = [sys.executable, "-m", "sentinel.cli.main", "serve", "--port", "0"]
_LISTENING = re.compile(r"^sentinel: listening on (http://\S+)$", re.M)


def start_serve(
    log: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``sentinel serve --port 0 ARGS`` logging to ``log`` (appended); the process
    and the URL it says it listens on (the newest such line in ``log``)."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*SERVE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = _LISTENING.findall(log.read_text(errors="replace"))
        if found:
            return proc, found[-1]
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("sentinel serve did not start:\n" + log.read_text()[-2000:])


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
