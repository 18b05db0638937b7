"""An installation set up to rotate AWS keys against the moto server: a service
config naming the privileged identity (by environment variable names), a Secrets
Manager store (and optionally OpenBao), and a leaked key planted and scanned into the
store. Shared by the fault-injection, end-to-end and API rotation tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.conftest import run_cli

ADMIN_ID_ENV = "SNT_TEST_AWS_ADMIN_ID"
ADMIN_SECRET_ENV = "SNT_TEST_AWS_ADMIN_SECRET"
VAULT_TOKEN_ENV = "SNT_TEST_VAULT_TOKEN"


def toml_value(v: Any) -> str:
    return json.dumps(v)  # TOML's basic strings, numbers, booleans and arrays read as JSON


def write_config(
    path: Path,
    moto: Any,
    *,
    store: str = "sm",
    bao: Any = None,
    slack_url: str | None = None,
    auto: bool = False,
    extra: str = "",
    grace: float = 0,
) -> Path:
    lines = []
    if slack_url:
        lines += ["[alerts.slack]", f"webhook_url = {toml_value(slack_url)}", "retries = 0", ""]
    lines += [
        "[rotation]",
        f"purge_grace_seconds = {grace}",
        "backoff_seconds = 0.2",
        "backoff_max_seconds = 1",
        "poll_seconds = 0.5",
        "",
        '[rotation.providers."aws-iam-access-key"]',
        f"region = {toml_value(moto.region)}",
        f"endpoint_url = {toml_value(moto.endpoint_url)}",
        f"admin_access_key_id_env = {toml_value(ADMIN_ID_ENV)}",
        f"admin_secret_access_key_env = {toml_value(ADMIN_SECRET_ENV)}",
        "test_delay_seconds = 0.1",
        "",
        "[rotation.stores.sm]",
        'kind = "aws-secretsmanager"',
        f"region = {toml_value(moto.region)}",
        f"endpoint_url = {toml_value(moto.endpoint_url)}",
        f"access_key_id_env = {toml_value(ADMIN_ID_ENV)}",
        f"secret_access_key_env = {toml_value(ADMIN_SECRET_ENV)}",
        "",
    ]
    if bao is not None:
        lines += [
            "[rotation.stores.vault]",
            'kind = "vault-kv"',
            f"url = {toml_value(bao.url)}",
            f"token_env = {toml_value(VAULT_TOKEN_ENV)}",
            "",
        ]
    path_tpl = (
        "leaked/{repo}/{identifier}" if store == "sm" else "secret/data/leaked/{repo}/{identifier}"
    )
    lines += [
        "[[rotation.targets]]",
        'rules = ["aws.*"]',
        f"store = {toml_value(store)}",
        f"path = {toml_value(path_tpl)}",
        "",
    ]
    if auto:
        lines += ["[rotation.auto]", "enabled = true", 'rules = ["aws.*"]', ""]
    path.write_text("\n".join(lines) + extra)
    return path


def env_for(moto: Any, bao: Any = None) -> dict[str, str]:
    env = {ADMIN_ID_ENV: moto.admin.access_key_id, ADMIN_SECRET_ENV: moto.admin.secret_access_key}
    if bao is not None:
        env[VAULT_TOKEN_ENV] = bao.token
    return env


@dataclass
class Planted:
    key: Any  # tests.motoserver.AwsKey
    finding_id: int  # the access key id's finding
    repo: Path


def plant_and_scan(tmp_path: Path, moto: Any, store: Any, name: str = "app") -> Planted:
    """A live key of a new IAM user committed to a file, scanned into the store."""
    from sentinel.store.models import Finding

    key = moto.throwaway_user("leak")
    repo = tmp_path / name
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "settings.py").write_text(
        f"aws_access_key_id = '{key.access_key_id}'\n"
        f"aws_secret_access_key = '{key.secret_access_key}'\n"
    )
    run_cli("scan", "path", str(repo), "--store", "-f", "json")
    with store.sessions() as s:
        fid = s.scalar(select(Finding.id).where(Finding.rule_id == "aws.access-key-id"))
    assert fid is not None
    return Planted(key, fid, repo)


def sentinel(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def sm_current(moto: Any, secret_id: str) -> dict[str, str]:
    sm = moto.client("secretsmanager")
    got = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    value: dict[str, str] = json.loads(got["SecretString"])
    return value


def refused(moto: Any, key: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        moto.caller_arn(key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("InvalidClientTokenId", "SignatureDoesNotMatch")
    return False
