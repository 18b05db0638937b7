"""Canary secrets through every way into the service (the CLI with --store and with
--report-to, POST /v1/scans, a report that fails validation, a push blocked by the
pre-receive hook and reported as an event, a GitHub push webhook), alerted to a Slack
stand-in, then a search of everything the service wrote or said for them: its JSON log,
the hook's files, every API answer, every Slack payload, and the database's own bytes
(the SQLite files; `pg_dump` of PostgreSQL). Zero hits, in clear, base64 or
percent-encoded; and the canaries must have been found, alerted and (for rotatable
rules) kept sealed, so the search cannot pass by finding nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sentinel.store.models import Finding
from tests.apiclient import new_token
from tests.conftest import GitRepo, run_cli, token
from tests.githttp import GitHTTPServer
from tests.serveproc import start_serve, stop_serve
from tests.slackapi import SlackStandIn


def _aws_pair(seed: int) -> tuple[str, str]:
    rnd = random.Random(f"aws-{seed}")
    kid = "AKIA" + "".join(rnd.choice(string.ascii_uppercase + "234567") for _ in range(16))
    secret = "".join(rnd.choice(string.ascii_letters + string.digits + "+/") for _ in range(40))
    return kid, secret


def _slack_bot(seed: int) -> str:
    rnd = random.Random(f"xoxb-{seed}")
    digits = "".join(rnd.choice(string.digits) for _ in range(12))
    more = "".join(rnd.choice(string.digits) for _ in range(13))
    tail = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(24))
    return f"xoxb-{digits}-{more}-{tail}"


def _password(seed: int) -> str:
    rnd = random.Random(f"canary-pw-{seed}")
    return (
        "Cn" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(20)) + "9x"
    )


class Canaries:
    """One set of secrets per way in, so a hit says which path leaked."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def make(self, path: str, seed: int) -> dict[str, str]:
        kid, secret = _aws_pair(seed)
        vals = {
            "gh": token("ghp", 9000 + seed),
            "aws_id": kid,
            "aws_secret": secret,
            "slack": _slack_bot(seed),
            "pw": _password(seed),
        }
        self.by_path[path] = list(vals.values())
        return vals

    def needles(self) -> dict[str, str]:
        """Each value, and its base64 and percent-encoded forms, to the path it came in by."""
        out: dict[str, str] = {}
        for path, vals in self.by_path.items():
            for v in vals:
                for form in (v, base64.b64encode(v.encode()).decode(), urllib.parse.quote(v)):
                    out[form] = f"{path}: {v[:6]}..."
        return out


def _files(vals: dict[str, str]) -> dict[str, str]:
    return {
        "deploy.env": (
            f"GITHUB_TOKEN={vals['gh']}\n"
            f"AWS_ACCESS_KEY_ID={vals['aws_id']}\n"
            f"AWS_SECRET_ACCESS_KEY={vals['aws_secret']}\n"
        ),
        "slack.yaml": f"slack:\n  bot_token: {vals['slack']}\n",
        "db.properties": f"db.password={vals['pw']}\n",
    }


def _write(d: Path, vals: dict[str, str]) -> Path:
    d.mkdir(parents=True)
    for name, text in _files(vals).items():
        (d / name).write_text(text)
    return d


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log


WEBHOOK_SECRET = "canary-webhook-secret-" + os.urandom(8).hex()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def served(store_env: str, tmp_path: Path, slack: SlackStandIn) -> Iterator[Served]:
    root = tmp_path / "roots"
    root.mkdir()
    cfg = tmp_path / "service.toml"
    cfg.write_text(
        "[service]\n"
        f'scan_roots = ["{root}"]\n'
        "workers = 1\n"
        f'mirrors_dir = "{tmp_path / "mirrors"}"\n'
        "git_http_loopback = true\n"
        'public_url = "https://sentinel.example.org"\n'
        "[alerts.slack]\n"
        f'webhook_url = "{slack.webhook_url()}"\n'
        "poll_seconds = 0.2\n"
    )
    log = tmp_path / "serve.log"
    proc, url = start_serve(
        log,
        "--config",
        str(cfg),
        env={
            "SENTINEL_HOME": str(tmp_path / "home"),
            "SENTINEL_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
    )
    try:
        yield Served(proc, url, log)
    finally:
        stop_serve(proc, timeout=20)


def _wait_scan(client: httpx.Client, sid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        r = client.get(f"/v1/scans/{sid}")
        if r.json()["status"] in ("succeeded", "failed"):
            return r.json()  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError(f"scan {sid} did not finish")


def _blocked_push(tmp_path: Path, url: str, token_value: str, vals: dict[str, str]) -> list[str]:
    """Push canaries to a bare repository whose pre-receive hook reports to ``url``;
    what the pusher saw."""
    from tests.test_hooks_server import Server, push

    bare = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    assert run_cli("hooks", "install", "--repo", str(bare)).returncode == 0
    server = Server(bare)
    token_file = tmp_path / "service.token"
    token_file.write_text(token_value + "\n")
    token_file.chmod(0o600)
    server.config("sentinel.serviceTokenFile", str(token_file))
    server.config("sentinel.repositoryUrl", "https://git.example.org/team/canary.git")
    server.config("sentinel.serviceUrl", url)
    dev = GitRepo(tmp_path / "dev")
    dev.commit("init", {"README.md": "hello\n"})
    dev.git("remote", "add", "origin", f"file://{bare}")
    assert push(dev, "main").returncode == 0
    dev.commit("leak", _files(vals))
    res = push(dev, "main")
    assert res.returncode != 0 and "push rejected" in res.stderr, res.stderr
    return [res.stdout, res.stderr]


def _github_push(
    tmp_path: Path, git_http: GitHTTPServer, client: httpx.Client, vals: dict[str, str]
) -> str:
    """A signed push webhook for a repository holding canaries; the scan's id."""
    work = GitRepo(tmp_path / "gh-work")
    base = work.commit("init", {"README.md": "hello\n"})
    clone_url = git_http.publish(work.path, "canary")
    head = work.commit("leak", _files(vals))
    git_http.push(work.path, "canary", "main")
    payload = {
        "ref": "refs/heads/main",
        "before": base,
        "after": head,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {
            "full_name": "acme/canary",
            "html_url": "https://github.com/acme/canary",
            "clone_url": clone_url,
            "default_branch": "main",
        },
        "pusher": {"name": "ann", "email": "ann@example.org"},
    }
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = client.post(
        "/v1/webhooks/github",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sig,
        },
    )
    assert r.status_code == 202, r.text
    return str(r.json()["scan_id"])


def _until_alerts_settle(client: httpx.Client) -> None:
    """Until the outbox (read from /metrics) holds nothing to send and six were sent."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = client.get("/metrics").text
        by_status = {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r'^sentinel_alert_deliveries\{status="(\w+)"\} (\S+)$', metrics, re.M
            )
        }
        waiting = by_status.get("pending", 0) + by_status.get("retry", 0)
        if by_status.get("sent", 0) >= 6 and waiting == 0:
            return
        time.sleep(0.3)
    raise AssertionError("alerts did not settle:\n" + client.get("/metrics").text[-3000:])


def _db_bytes(db_url: str) -> bytes:
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())
    plain = db_url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(["pg_dump", "--no-owner", plain], capture_output=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-500:]
    assert b"CREATE TABLE" in dump.stdout and b"COPY public.findings" in dump.stdout
    return dump.stdout


@pytest.mark.integration
def test_no_canary_reaches_a_log_an_answer_or_the_database(
    served: Served, slack: SlackStandIn, store_env: str, tmp_path: Path
) -> None:
    from sentinel.store.facade import open_store

    canaries = Canaries()
    answers: list[str] = []
    store = open_store()
    try:
        admin = new_token(store, "canary-admin", ["admin"])
        writer = new_token(store, "canary-ci", ["scans:write"])
    finally:
        store.close()
    headers = {"Authorization": f"Bearer {admin}"}

    # 1. the CLI straight into the store
    cli_dir = _write(tmp_path / "cli", canaries.make("scan --store", 1))
    out = run_cli("scan", "path", str(cli_dir), "--store", "-f", "json")
    assert out.returncode == 1, out.stderr
    answers += [out.stdout, out.stderr]

    # 2. the CLI reporting to the running service
    rep_dir = _write(tmp_path / "report", canaries.make("--report-to", 2))
    out = run_cli(
        "scan", "path", str(rep_dir), "--report-to", served.url, "-f", "json",
        env={"SENTINEL_TOKEN": writer},
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    answers += [out.stdout, out.stderr]

    with httpx.Client(base_url=served.url, headers=headers, timeout=60) as client:
        # 3. a scan the service runs
        api_dir = _write(tmp_path / "roots" / "api", canaries.make("POST /v1/scans", 3))
        r = client.post("/v1/scans", json={"kind": "path", "target": str(api_dir)})
        assert r.status_code == 202, r.text
        answers.append(r.text)
        done = _wait_scan(client, r.json()["id"])
        assert done["status"] == "succeeded", done

        # 4. a report whose body fails validation: the answer names the field, not the value
        bad = client.post(
            "/v1/scans/reports",
            json={
                "kind": "path",
                "target": "x",
                "findings": [{"secret": canaries.by_path["POST /v1/scans"][0], "line": "NaN"}],
            },
        )
        assert bad.status_code == 422
        answers.append(bad.text)

        # 5. a push the pre-receive hook blocks, reported to the service as an event
        answers += _blocked_push(tmp_path, served.url, writer, canaries.make("pre-receive", 5))
        deadline = time.monotonic() + 60
        while not client.get("/v1/events").json()["items"]:
            assert time.monotonic() < deadline, "the hook's event never arrived"
            time.sleep(0.2)

        # 6. a GitHub push webhook: the service mirrors the repository and scans the push
        git_http = GitHTTPServer(tmp_path / "served")
        try:
            sid = _github_push(tmp_path, git_http, client, canaries.make("webhook", 6))
            done = _wait_scan(client, sid)
        finally:
            git_http.close()
        assert done["status"] == "succeeded", done

        # every alert sent: one per new finding (or a digest), none still pending
        _until_alerts_settle(client)

        # every read a user can make
        events = client.get("/v1/events").json()
        answers.append(json.dumps(events))
        for e in events["items"]:
            answers.append(client.get(f"/v1/events/{e['id']}").text)
        page = client.get("/v1/findings", params={"limit": 500}).json()
        answers.append(json.dumps(page))
        for f in page["items"]:
            answers.append(client.get(f"/v1/findings/{f['id']}").text)
        for path in ("/v1/scans", "/v1/audit", "/metrics", "/v1/tokens", "/v1/schedules"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
            answers.append(r.text)

    # the canaries were found, and the rotatable ones kept sealed
    store = open_store()
    try:
        with store.sessions() as s:
            rules = set(s.scalars(select(Finding.rule_id)))
            sealed = s.scalar(select(func.count()).where(Finding.secret_sealed.is_not(None)))
    finally:
        store.close()
    assert any(r.startswith("github.") for r in rules), rules
    assert any(r.startswith("aws.") for r in rules), rules
    assert any(r.startswith("slack.") for r in rules), rules
    assert (sealed or 0) >= 6, sealed  # gh, aws and slack values of at least two ways in
    assert len(page["items"]) >= 9, [f["rule_id"] for f in page["items"]]

    stop_serve(served.proc, timeout=20)
    log = served.log.read_text()
    assert len(slack.requests) >= 6, len(slack.requests)  # each way in alerted
    assert '"message": "request"' in log  # the log was written, so searching it means something
    haystacks = {
        "the service log": log.encode(),
        "the pre-receive hook's files": b"".join(
            f.read_bytes() for f in (tmp_path / "server.git" / "sentinel").rglob("*") if f.is_file()
        ),
        "API and CLI answers": "\n".join(answers).encode(),
        "Slack payloads": "\n".join(r.body.decode() for r in slack.requests).encode(),
        "the database": _db_bytes(store_env),
    }
    hits = [
        f"{what} holds a canary from {where}"
        for needle, where in canaries.needles().items()
        for what, hay in haystacks.items()
        if needle.encode() in hay
    ]
    assert hits == []
