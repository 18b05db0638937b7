"""``sentinel serve --processes 2``: two serving processes on one port behave as one
service: one scheduler leader, scans from either stored once, /metrics the same sum
whichever process answers, and SIGTERM stops them all. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apiclient import bearer, new_token
from tests.conftest import token
from tests.serveproc import SERVE, start_serve, stop_serve


def _servers(pid: int) -> list[int]:
    """The serving processes under ``pid`` (not multiprocessing's resource tracker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(x) for x in out.split()]
    return [k for k in kids if b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.integration
def test_two_processes_serve_as_one(store_env: str, tmp_path: Path) -> None:
    from sentinel.store.facade import open_store

    roots = tmp_path / "roots"
    (roots / "app").mkdir(parents=True)
    (roots / "app" / "ci.env").write_text(f"GITHUB_TOKEN={token('ghp', 77)}\n")
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nscan_roots = ["{roots}"]\nworkers = 1\n')
    store = open_store(migrate_now=True)
    try:
        headers = bearer(new_token(store, "ci", ["scans:write", "findings:read"]))
    finally:
        store.close()
    log = tmp_path / "serve.log"
    proc, url = start_serve(log, "--processes", "2", "--config", str(config))
    deadline = time.monotonic() + 60
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            while log.read_text().count("Application startup complete") < 2:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            workers = _servers(proc.pid)
            assert len(workers) == 2, workers
            ids = []
            for _ in range(4):  # some land on each process
                r = c.post("/v1/scans", json={"kind": "path", "target": str(roots / "app")})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            for sid in ids:
                while (status := c.get(f"/v1/scans/{sid}").json()["status"]) not in (
                    "succeeded",
                    "failed",
                ):
                    assert time.monotonic() < deadline + 120, status
                    time.sleep(0.2)
                assert status == "succeeded"
            # one finding, one occurrence, however many processes scanned it
            page: Any = c.get("/v1/findings").json()
            assert len(page["items"]) == 1
            detail = c.get(f"/v1/findings/{page['items'][0]['id']}").json()
            assert detail["occurrences_total"] == 1

            # every scrape sums both processes' counters, whichever one answers (a
            # scan's row says it succeeded a moment before its runner counts it)
            def succeeded() -> str:
                text = c.get("/metrics").text
                m = re.search(r'^sentinel_scans_total\{outcome="succeeded"\} (\S+)$', text, re.M)
                return m.group(1) if m else "none"

            while succeeded() != "4.0":
                assert time.monotonic() < deadline + 180, succeeded()
                time.sleep(0.2)
            scrapes = {succeeded() for _ in range(8)}
            assert scrapes == {"4.0"}, scrapes
    finally:
        stop_serve(proc, timeout=60)
    text = log.read_text()
    assert text.count("this process leads") == 1, text[-3000:]
    assert proc.returncode == 0, text[-2000:]
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert "Traceback" not in text


def _connections(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            if local_port == port and f[3] == "01" and f[9] in inodes:
                held += 1
    return held


@pytest.mark.integration
def test_processes_take_turns_with_a_burst_of_connections(store_env: str, tmp_path: Path) -> None:
    """40 clients connecting at once are shared out between the two processes (a socket
    each, SO_REUSEPORT), not all taken by whichever woke first, as on one shared socket
    (asyncio accepts a whole backlog per wake-up)."""
    import socket

    from sentinel.store.facade import open_store

    open_store(migrate_now=True).close()
    log = tmp_path / "serve.log"
    proc, url = start_serve(log, "--processes", "2")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + 60
    conns: list[socket.socket] = []
    try:
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        workers = _servers(proc.pid)
        assert len(workers) == 2, workers
        conns = [socket.create_connection((host, int(port)), timeout=30) for _ in range(40)]
        for c in conns:  # every one accepted and answered, kept open
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            assert c.recv(4096).startswith(b"HTTP/1.1 200"), log.read_text()[-2000:]
        held = [_connections(pid, int(port)) for pid in workers]
        assert sum(held) == 40, held
        assert min(held) >= 10, held
    finally:
        for c in conns:
            c.close()
        stop_serve(proc, timeout=60)
    assert proc.returncode == 0


def test_a_port_in_use_is_one_line_and_exit_2(store_env: str, tmp_path: Path) -> None:
    import socket

    from sentinel.store.facade import open_store

    open_store(migrate_now=True).close()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*SERVE[:-2], "--host", "127.0.0.1", "--port", str(port), "--processes", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert out.returncode == 2, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
