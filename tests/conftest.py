"""Shared fixtures. Unit tests never touch the network: an autouse fixture refuses
any connection that is not to loopback or a Unix socket."""

from __future__ import annotations

import os
import random
import socket
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detectors.validators import make_crc32_token

pytest_plugins = [
    "tests.registry",
    "tests.storefixtures",
    "tests.motoserver",
    "tests.baoserver",
]  # registry*, db_url, store_env, store, moto, bao

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT.parent / "shared" / "schemas"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One Hyperscan cache per test session, never the user's."""
    path = tmp_path_factory.mktemp("sentinel-cache")
    old = os.environ.get("SENTINEL_CACHE_DIR")
    os.environ["SENTINEL_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SENTINEL_CACHE_DIR", None)
    else:
        os.environ["SENTINEL_CACHE_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def _sentinel_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One installation (its fingerprint key) per test session, never the user's;
    subprocesses inherit it through the environment."""
    path = tmp_path_factory.mktemp("sentinel-home")
    saved = {k: os.environ.get(k) for k in ("SENTINEL_HOME", "SENTINEL_FINGERPRINT_KEY")}
    os.environ["SENTINEL_HOME"] = str(path)
    os.environ.pop("SENTINEL_FINGERPRINT_KEY", None)
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"unit tests must not reach the network (tried {address!r})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def token(prefix: str, seed: int = 0) -> str:
    """A checksum-valid synthetic token (GitHub/npm format), built at run time so no
    literal credential-shaped string sits in the test sources."""
    rnd = random.Random(f"{prefix}-{seed}")
    body = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(30))
    return make_crc32_token(prefix, body)


def password(seed: int = 0, n: int = 18) -> str:
    rnd = random.Random(f"pw-{seed}")
    alphabet = string.ascii_letters + string.digits + "!#%"
    while True:
        pw = "".join(rnd.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in pw) and any(c.isupper() for c in pw):
            return pw


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``sentinel`` entry point in a subprocess, as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli.main", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
    )


class GitRepo:
    """A throwaway repository driven through the real git binary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Ann Author")
        self.git("config", "user.email", "ann@example.org")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        full_env = dict(os.environ)
        full_env.update(env or {})
        res = subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, env=full_env, check=True
        )
        return res.stdout.strip()

    def write(self, rel: str, content: str | bytes) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def commit(
        self,
        message: str,
        files: dict[str, str | bytes] | None = None,
        date: str | None = None,
        remove: tuple[str, ...] = (),
    ) -> str:
        for rel, content in (files or {}).items():
            self.write(rel, content)
        for rel in remove:
            self.git("rm", "-q", rel)
        self.git("add", "-A")
        env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else None
        self.git("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    def make(name: str = "repo") -> GitRepo:
        return GitRepo(tmp_path / name)

    return make
