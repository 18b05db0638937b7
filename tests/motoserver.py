"""A real AWS API endpoint for the tests: ``moto_server`` (moto[server], a test extra) on a
free loopback port, with IAM authentication enforced.

Fixture (session-scoped): ``moto`` yields a :class:`Moto`. A test module imports it:
``from tests.motoserver import Moto, moto  # noqa: F401`` (``pytest_plugins`` belongs to
the root conftest only, which the lead owns; adding ``"tests.motoserver"`` there would
make the import unnecessary).

How authentication is turned on: the server starts with ``INITIAL_NO_AUTH_ACTION_COUNT``
equal to the number of calls the bootstrap makes (create an ``admin`` user, give it an
inline ``"*"`` policy, mint its access key). Every later request is signed and checked
against the caller's IAM policies, so a deleted key is refused (``InvalidClientTokenId``)
and a user whose policy lacks an action is refused (``AccessDenied``).

Known limits of moto 5.2 (see DESIGN.md): a deactivated key still authenticates, so
"Inactive" is read from IAM; managed policies are not loaded (only inline policies are
used here); IAM actions are checked against resource ``"*"``.

Without ``moto_server`` the fixture skips, unless ``SENTINEL_REQUIRE_SERVICES=1`` (as in
CI), where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

REGION = "us-east-1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
ADMIN_USER = "admin"
BOOTSTRAP_CALLS = 3  # create_user, put_user_policy, create_access_key
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class AwsKey:
    """An IAM user's access key (the test's own: printed nowhere)."""

    user: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"AwsKey(user={self.user!r}, access_key_id={self.access_key_id!r})"


@dataclass(frozen=True)
class Moto:
    """A running moto server. ``admin`` may do anything; every other caller only what
    its inline policies allow."""

    endpoint_url: str
    region: str
    admin: AwsKey
    log_path: Path

    def client(self, service: str, key: AwsKey | None = None) -> Any:
        """A boto3 client for ``service`` signed with ``key`` (the admin by default)."""
        k = key or self.admin
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=k.access_key_id,
            aws_secret_access_key=k.secret_access_key,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5),
        )

    def user(self, prefix: str = "snt", policy: dict[str, Any] | None = None) -> str:
        """A new IAM user (unique name), with ``policy`` as its only inline policy."""
        iam = self.client("iam")
        name = f"{prefix}-{secrets.token_hex(4)}"
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(
                UserName=name, PolicyName="inline", PolicyDocument=json.dumps(policy)
            )
        return name

    def new_key(self, user: str) -> AwsKey:
        """Mint one more access key for ``user``."""
        k = self.client("iam").create_access_key(UserName=user)["AccessKey"]
        return AwsKey(user, k["AccessKeyId"], k["SecretAccessKey"])

    def throwaway_user(self, prefix: str = "snt", policy: dict[str, Any] | None = None) -> AwsKey:
        """A new IAM user with exactly one access key; returns that key."""
        return self.new_key(self.user(prefix, policy))

    def keys(self, user: str) -> dict[str, str]:
        """The user's access keys as IAM lists them: id -> status."""
        meta = self.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        return {m["AccessKeyId"]: m["Status"] for m in meta}

    def caller_arn(self, key: AwsKey) -> str:
        """sts:GetCallerIdentity signed with ``key`` (raises ClientError if refused)."""
        arn: str = self.client("sts", key).get_caller_identity()["Arn"]
        return arn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


def _unavailable(reason: str) -> None:
    if os.environ.get("SENTINEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required: SENTINEL_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
    except ProcessLookupError:
        pass


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited ({proc.returncode}); see {log_path}")
        try:
            # the server's own API: not an AWS action, so it uses none of the bootstrap calls
            if session.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"moto_server not ready after {READY_TIMEOUT:.0f} s; see {log_path}")


def _bootstrap(url: str) -> AwsKey:
    """The first BOOTSTRAP_CALLS calls are not authenticated: make the admin with them."""
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=Config(retries={"max_attempts": 1}),
    )
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(
        UserName=ADMIN_USER, PolicyName="allow-all", PolicyDocument=json.dumps(ALLOW_ALL)
    )
    k = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return AwsKey(ADMIN_USER, k["AccessKeyId"], k["SecretAccessKey"])


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    binary = _binary()
    if binary is None:
        _unavailable("moto_server is not installed (pip install 'moto[server]')")
    assert binary is not None
    workdir = tmp_path_factory.mktemp("moto")
    log_path = workdir / "moto_server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_CALLS)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    try:
        _wait_ready(url, proc, log_path)
        admin = _bootstrap(url)
        yield Moto(endpoint_url=url, region=REGION, admin=admin, log_path=log_path)
    finally:
        _stop(proc)
