#!/usr/bin/env python3
"""Time to containment: from the moment a scan stores a finding to the moment the
exposed key is revoked and verified, with the ``[rotation.auto]`` policy on.

    .venv/bin/python bench/containment.py [--runs 20] [--grace 0]

One real ``sentinel serve`` (SQLite store, Secrets Manager and IAM on a moto server
with IAM auth enforced). Each run makes an IAM user with a live key, writes the key
into a file, asks the service to scan it (``POST /v1/scans``), and waits for the
rotation the auto policy starts. Times are read from the store: the finding's
``first_seen`` (written in the transaction that stores it) to the ``verify`` step's
end (the exposed key deactivated and shown inactive by IAM), and to the ``purge``
step's end (deleted and refused by STS; grace period 0 here). The request-to-verify
wall time is printed too. Writes bench/results/<date>-containment.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_ID_ENV = "BENCH_AWS_ADMIN_ID"
ADMIN_SECRET_ENV = "BENCH_AWS_ADMIN_SECRET"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(work: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    import boto3
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        cwd=work,
        env=env,
        stdout=(work / "moto.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    k = iam.create_access_key(UserName="admin")["AccessKey"]
    return proc, url, {ADMIN_ID_ENV: k["AccessKeyId"], ADMIN_SECRET_ENV: k["SecretAccessKey"]}


def config(path: Path, moto_url: str, root: Path, grace: float) -> None:
    q = json.dumps
    path.write_text(
        f"""[service]
scan_roots = [{q(str(root))}]

[rotation]
purge_grace_seconds = {grace}
poll_seconds = 1

[rotation.auto]
enabled = true
rules = ["aws.*"]

[rotation.providers."aws-iam-access-key"]
region = {q(REGION)}
endpoint_url = {q(moto_url)}
admin_access_key_id_env = {q(ADMIN_ID_ENV)}
admin_secret_access_key_env = {q(ADMIN_SECRET_ENV)}

[rotation.stores.sm]
kind = "aws-secretsmanager"
region = {q(REGION)}
endpoint_url = {q(moto_url)}
access_key_id_env = {q(ADMIN_ID_ENV)}
secret_access_key_env = {q(ADMIN_SECRET_ENV)}

[[rotation.targets]]
rules = ["aws.*"]
store = "sm"
path = "leaked/{{repo}}/{{identifier}}"
"""
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--grace", type=float, default=0.0, help="purge grace period (s)")
    args = ap.parse_args()

    import boto3
    import httpx

    work = Path(tempfile.mkdtemp(prefix="sentinel-containment-"))
    root = work / "repos"
    root.mkdir()
    env = {
        **os.environ,
        "SENTINEL_HOME": str(work / "home"),
        "SENTINEL_DATABASE_URL": f"sqlite:///{work / 'sentinel.db'}",
        "SENTINEL_FINGERPRINT_KEY": "bench-containment-" + secrets.token_hex(8),
        "SENTINEL_ENCRYPTION_KEY": secrets.token_hex(32),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("SENTINEL_")})
    moto, moto_url, admin = start_moto(work)
    env.update(admin)
    cfg = work / "service.toml"
    config(cfg, moto_url, root, args.grace)
    subprocess.run(
        [sys.executable, "-m", "sentinel", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )

    from sentinel.store.facade import open_store
    from tests.apiclient import new_token
    from tests.serveproc import start_serve, stop_serve

    store = open_store()
    tok = new_token(store, "bench", ["scans:write", "findings:read", "rotations:write"])
    hdr = {"Authorization": f"Bearer {tok}"}
    log = work / "serve.log"
    serve, url = start_serve(log, "--config", str(cfg), env=env)
    iam = boto3.client(
        "iam",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=admin[ADMIN_ID_ENV],
        aws_secret_access_key=admin[ADMIN_SECRET_ENV],
    )
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.runs):
            user = f"leak-{i}-{secrets.token_hex(3)}"
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            d = root / f"app{i}"
            d.mkdir()
            (d / "settings.py").write_text(
                f"aws_access_key_id = '{key['AccessKeyId']}'\n"
                f"aws_secret_access_key = '{key['SecretAccessKey']}'\n"
            )
            t0 = time.monotonic()
            r = httpx.post(f"{url}/v1/scans", headers=hdr, json={"kind": "path", "target": str(d)})
            r.raise_for_status()
            res = wait_contained(store, key["AccessKeyId"], timeout=120)
            res["request_to_verified_s"] = round(time.monotonic() - t0, 3)
            status = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            res["exposed_left"] = [
                m["Status"] for m in status if m["AccessKeyId"] == key["AccessKeyId"]
            ]
            runs.append(res)
            print(
                f"run {i + 1:2}: stored -> revoked+verified {res['to_verified_s']:.2f} s, "
                f"-> deleted+refused {res['to_purged_s']:.2f} s"
                if res["to_purged_s"] is not None
                else f"run {i + 1:2}: stored -> revoked+verified {res['to_verified_s']:.2f} s",
                flush=True,
            )
    finally:
        stop_serve(serve)
        store.close()
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(10)
    verified = [r["to_verified_s"] for r in runs]
    purged = [r["to_purged_s"] for r in runs if r["to_purged_s"] is not None]
    summary = {
        "runs": len(runs),
        "to_verified_median_s": round(statistics.median(verified), 3),
        "to_verified_worst_s": round(max(verified), 3),
        "to_purged_median_s": round(statistics.median(purged), 3) if purged else None,
        "to_purged_worst_s": round(max(purged), 3) if purged else None,
        "request_to_verified_median_s": round(
            statistics.median(r["request_to_verified_s"] for r in runs), 3
        ),
        "all_succeeded": all(r["status"] == "succeeded" for r in runs),
    }
    print(json.dumps(summary, indent=2))
    out = ROOT / "bench" / "results" / f"{dt.date.today().isoformat()}-containment.json"
    out.write_text(
        json.dumps({"summary": summary, "runs": runs, "grace_seconds": args.grace}, indent=2) + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


def wait_contained(store: Any, key_id: str, timeout: float) -> dict[str, Any]:
    from sqlalchemy import select

    from sentinel.store.models import Finding, Rotation, RotationStep

    deadline = time.monotonic() + timeout
    while True:
        with store.sessions() as s:
            r = s.scalar(select(Rotation).where(Rotation.exposed_identifier == key_id))
            if r is not None and r.status in ("succeeded", "failed", "rolled_back", "waiting"):
                steps = {
                    st.name: st
                    for st in s.scalars(
                        select(RotationStep).where(RotationStep.rotation_id == r.id)
                    )
                }
                verify = steps.get("verify")
                if r.status != "waiting" or (verify is not None and verify.state == "done"):
                    f = s.get(Finding, r.finding_id)
                    assert f is not None
                    if verify is None or verify.finished_at is None:
                        raise SystemExit(f"rotation {r.id} ended {r.status}: {r.last_error}")
                    purge = steps.get("purge")
                    done_purge = (
                        purge.finished_at if purge is not None and purge.state == "done" else None
                    )
                    return {
                        "rotation": r.id,
                        "status": r.status,
                        "to_verified_s": round(
                            (verify.finished_at - f.first_seen).total_seconds(), 3
                        ),
                        "to_purged_s": round((done_purge - f.first_seen).total_seconds(), 3)
                        if done_purge
                        else None,
                    }
        if time.monotonic() > deadline:
            raise SystemExit(f"no containment of {key_id} within {timeout} s")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
