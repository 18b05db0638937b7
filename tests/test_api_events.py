"""POST/GET /v1/events: what the pre-receive hook reports, against the real app on real
databases (SQLite and PostgreSQL). The end-to-end test pushes to a real bare repository
whose hook delivers to the real app on a loopback port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from sentinel.events import EventFinding, HookEvent, RefUpdate
from sentinel.fingerprint import fingerprint, redact
from sentinel.store.models import AuditRecord, Base, Finding, HookEventRecord, Occurrence, Scan
from tests.apiclient import TestClient, app_for, bearer, new_token
from tests.conftest import token

REPO = "https://git.example.org/team/app.git"
SHA = "a" * 40


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def client(opened: Any) -> Iterator[TestClient]:
    app = app_for(opened)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def hook(opened: Any) -> dict[str, str]:
    return bearer(new_token(opened, "git-server", ["scans:write"]))


@pytest.fixture
def reader(opened: Any) -> dict[str, str]:
    return bearer(new_token(opened, "reader", ["findings:read"]))


def finding(store: Any, secret: str, **kw: Any) -> EventFinding:
    fields: dict[str, Any] = {
        "rule_id": "github.pat-classic",
        "fingerprint": fingerprint(secret.encode(), store.fingerprint.key),
        "redacted": redact(secret),
        "path": "app/settings.py",
        "line": 3,
        "column": 9,
        "commit": SHA,
        "author": "Ann Author",
        "email": "ann@example.org",
        "date": "2026-12-01T10:00:00+00:00",
        "severity": "high",
        "confidence": "high",
        **kw,
    }
    return EventFinding(**fields)


def blocked(store: Any, *secrets: str, **kw: Any) -> HookEvent:
    fields: dict[str, Any] = {
        "kind": "push_blocked",
        "repository": REPO,
        "pusher": "alice",
        "cause": "secrets",
        "reason": f"{len(secrets)} secret(s) in the pushed commits",
        "updates": [RefUpdate(ref="refs/heads/main", old="0" * 40, new=SHA)],
        "findings": [finding(store, s) for s in secrets],
        "fingerprint_key": store.fingerprint.id,
        **kw,
    }
    return HookEvent(**fields)


def post(client: TestClient, headers: dict[str, str], event: HookEvent) -> Any:
    return client.post(
        "/v1/events",
        content=event.body(),
        headers={**headers, "Content-Type": "application/json"},
    )


def count(store: Any, model: Any) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def every_row(store: Any) -> str:
    """Every row of every table, as text (what a dump of the database would hold)."""
    out = []
    with store.sessions() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_a_blocked_push_is_stored_once_and_its_finding_groups_with_scans(
    client: TestClient, opened: Any, hook: dict[str, str], reader: dict[str, str]
) -> None:
    secret = token("ghp", 501)
    ingested: list[str] = []
    client.app.state.on_ingest.append(ingested.append)  # type: ignore[attr-defined]
    event = blocked(opened, secret)

    r = post(client, hook, event)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/events/{event.id}"
    got = r.json()
    assert got["verdict"] == "blocked" and got["kind"] == "push_blocked"
    assert got["repository"] == REPO and got["pusher"] == "alice"
    assert got["refs"] == [{"ref": "refs/heads/main", "old": "0" * 40, "new": SHA}]
    assert got["received_by"] == "token:git-server"
    assert got["findings_stored"] is True and got["findings_new"] == 1
    [f] = got["findings"]
    assert f["redacted"] == redact(secret) and f["finding_id"]
    assert ingested == [got["scan_id"]]

    # the finding, its occurrence and the scan that says which push carried it
    detail = client.get(f"/v1/findings/{f['finding_id']}", headers=reader).json()
    assert detail["rule_id"] == "github.pat-classic" and detail["severity"] == "high"
    [occ] = detail["occurrences"]
    assert occ["source"] == "git" and occ["target"] == REPO and occ["commit"] == SHA
    assert occ["path"] == "app/settings.py" and occ["line"] == 3
    assert occ["last_scan_id"] == got["scan_id"]
    scan = client.get(f"/v1/scans/{got['scan_id']}", headers=reader).json()
    assert scan["kind"] == "hook" and scan["target"] == REPO
    assert scan["params"]["event"] == event.id and scan["params"]["verdict"] == "blocked"
    assert scan["params"]["refs"] == ["refs/heads/main"]

    # the spool's retry after a lost answer: nothing new, the same answer
    again = post(client, hook, event)
    assert again.status_code == 200, again.text
    assert again.json() == got
    assert ingested == [got["scan_id"]]
    assert count(opened, HookEventRecord) == 1 and count(opened, Scan) == 1
    assert count(opened, Occurrence) == 1 and count(opened, Finding) == 1
    with opened.sessions() as s:
        audits = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "event.store")))
    assert [(a.object_id, a.actor) for a in audits] == [(event.id, "git-server")]
    assert audits[0].detail["verdict"] == "blocked"

    # a CLI scan that reports the same secret: the same finding, not a second one
    report = {
        "kind": "path",
        "target": "/ci/work",
        "findings": [
            {
                "rule_id": "github.pat-classic",
                "severity": "high",
                "confidence": "high",
                "source": "file",
                "path": "ci.env",
                "line": 1,
                "secret": secret,
            }
        ],
    }
    rep = client.post("/v1/scans/reports", headers=hook, json=report)
    assert rep.status_code == 201 and rep.json()["findings_new"] == 0, rep.text
    assert count(opened, Finding) == 1 and count(opened, Occurrence) == 2

    for text_ in (r.text, again.text, json.dumps(detail), json.dumps(scan), every_row(opened)):
        assert secret not in text_


def test_bypassed_and_unscanned_pushes_are_recorded_and_listed(
    client: TestClient, opened: Any, hook: dict[str, str], reader: dict[str, str]
) -> None:
    ingested: list[str] = []
    client.app.state.on_ingest.append(ingested.append)  # type: ignore[attr-defined]
    bypass = HookEvent(
        kind="push_bypassed",
        repository=REPO,
        pusher="bob",
        cause="break_glass",
        reason="incident 42",
        updates=[RefUpdate(ref="refs/heads/hotfix", old="1" * 40, new="2" * 40)],
    )
    unscanned = HookEvent(
        kind="push_unscanned",
        repository="/srv/git/other.git",
        pusher="carol",
        cause="time_budget",
        reason="the 4.5 s time budget ran out",
    )
    stop = blocked(opened, token("ghp", 502))
    for ev in (bypass, unscanned, stop):
        assert post(client, hook, ev).status_code == 201
    r = client.get(f"/v1/events/{bypass.id}", headers=reader)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["verdict"] == "bypassed" and got["reason"] == "incident 42"
    assert got["pusher"] == "bob" and got["refs"][0]["ref"] == "refs/heads/hotfix"
    assert got["findings"] == [] and got["scan_id"] is None
    assert len(ingested) == 1  # only the event that stored findings

    page = client.get("/v1/events", headers=reader).json()
    assert [e["id"] for e in page["items"]] == [stop.id, unscanned.id, bypass.id]
    assert page["next_cursor"] is None
    only = client.get("/v1/events", params={"verdict": "bypassed"}, headers=reader).json()
    assert [e["id"] for e in only["items"]] == [bypass.id]
    allowed = client.get("/v1/events", params={"verdict": "allowed"}, headers=reader).json()
    assert [e["verdict"] for e in allowed["items"]] == ["allowed"]
    there = client.get("/v1/events", params={"repository": REPO}, headers=reader).json()
    assert {e["id"] for e in there["items"]} == {stop.id, bypass.id}

    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        p = client.get("/v1/events", params=params, headers=reader).json()
        walked += [e["id"] for e in p["items"]]
        cursor = p["next_cursor"]
        if not cursor:
            break
    assert walked == [stop.id, unscanned.id, bypass.id]

    assert client.get("/v1/events", params={"cursor": "bogus"}, headers=reader).status_code == 422
    assert client.get("/v1/events", params={"verdict": "x"}, headers=reader).status_code == 422
    missing = client.get("/v1/events/" + "f" * 32, headers=reader)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    # reading events is not storing them, and the other way round
    assert post(client, reader, bypass).status_code == 403
    assert client.get("/v1/events", headers=hook).status_code == 403


def test_findings_under_another_key_are_recorded_not_ingested(
    client: TestClient, opened: Any, hook: dict[str, str]
) -> None:
    event = blocked(opened, token("ghp", 503), fingerprint_key="0123456789ab")
    r = post(client, hook, event)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["verdict"] == "blocked" and got["findings_stored"] is False
    assert "0123456789ab" in got["findings_not_stored"]
    assert got["findings"][0]["finding_id"] is None and got["scan_id"] is None
    assert count(opened, Finding) == 0 and count(opened, HookEventRecord) == 1
    unnamed = blocked(opened, token("ghp", 504), fingerprint_key=None)
    assert post(client, hook, unnamed).json()["findings_stored"] is False
    assert count(opened, Finding) == 0


def test_a_preview_holding_the_value_is_redacted_again(
    client: TestClient, opened: Any, hook: dict[str, str], reader: dict[str, str]
) -> None:
    secret = token("ghp", 505)
    event = blocked(opened, secret)
    event.findings[0] = finding(opened, secret, redacted=secret)  # a careless client
    r = post(client, hook, event)
    assert r.status_code == 201, r.text
    assert r.json()["findings"][0]["redacted"] == redact(secret)
    listed = client.get("/v1/events", headers=reader).text
    findings = client.get("/v1/findings", headers=reader).text
    for text_ in (r.text, listed, findings, every_row(opened)):
        assert secret not in text_
    pem = "-----BEGIN RSA PRIVATE KEY----- ****"
    ok = blocked(opened, token("ghp", 506))
    ok.findings[0] = finding(opened, token("ghp", 506), redacted=pem)
    assert post(client, hook, ok).json()["findings"][0]["redacted"] == pem


def _raw(client: TestClient, headers: dict[str, str], body: bytes) -> Any:
    return client.post(
        "/v1/events", content=body, headers={**headers, "Content-Type": "application/json"}
    )


def test_bad_events_are_422_problems_never_500(
    client: TestClient, opened: Any, hook: dict[str, str]
) -> None:
    secret = token("ghp", 507)
    good = json.loads(blocked(opened, secret).body())

    def with_(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    def with_finding(**changes: Any) -> bytes:
        return with_(findings=[{**good["findings"][0], **changes}])

    bad = {
        "not json": b"{",
        "not utf-8": b'{"kind": "\xff"}',
        "nested too deep": b"[" * 100_000 + b"]" * 100_000,
        "a list": b"[]",
        "empty": b"{}",
        "unknown kind": with_(kind="push_accepted"),
        "a value in the finding": with_finding(secret=secret),
        "a value beside the event": with_(secret=secret),
        "bad id": with_(id="../../etc"),
        "bad fingerprint": with_finding(fingerprint="z" * 64),
        "short fingerprint": with_finding(fingerprint="ab"),
        "NUL in a path": with_finding(path="a\x00b"),
        "unpaired surrogate": with_(pusher="\ud800"),
        "control in repository": with_(repository="a\nb"),
        "empty repository": with_(repository=" "),
        "control in ref": with_(updates=[{"ref": "a\tb", "old": "0" * 40, "new": SHA}]),
        "bad oid": with_(updates=[{"ref": "refs/heads/x", "old": "0", "new": SHA}]),
        "huge line": with_finding(line=2**40),
        "negative line": with_finding(line=-1),
        "line as the value": with_finding(line=secret),
        "time out of range": with_(at="0001-01-01T00:00:00+05:00"),
        "implausible time": with_(at="1900-01-01T00:00:00Z"),
        "bad key id": with_(fingerprint_key="KEY"),
        "wrong version": with_(version=2),
    }
    for what, body in bad.items():
        r = _raw(client, hook, body)
        assert r.status_code == 422, (what, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/problem+json"), what
        assert secret not in r.text and "Traceback" not in r.text, what
    assert count(opened, HookEventRecord) == 0 and count(opened, AuditRecord) == 0
    # odd but storable: a long pusher and date are kept as far as the store holds them
    odd = with_(pusher="p" * 500, findings=[{**good["findings"][0], "date": "d" * 100}])
    r = _raw(client, hook, odd)
    assert r.status_code == 201, r.text
    assert r.json()["pusher"] == "p" * 500


def test_events_have_a_larger_body_cap_than_other_routes(
    opened: Any, hook: dict[str, str], reader: dict[str, str]
) -> None:
    from sentinel.settings import ServiceSection, ServiceSettings

    settings = ServiceSettings(
        service=ServiceSection(max_body_bytes=64 * 1024, max_event_bytes=2 * 1024 * 1024)
    )
    many = blocked(opened, *[token("ghp", 600 + i) for i in range(3000)])
    assert 64 * 1024 < len(many.body()) < 2 * 1024 * 1024
    with TestClient(app_for(opened, settings), raise_server_exceptions=False) as c:
        r = post(c, hook, many)
        assert r.status_code == 201, r.text[:300]
        assert len(r.json()["findings"]) == 3000 and r.json()["findings_new"] == 3000
        # the other routes keep the general cap
        big = {"kind": "path", "target": "/x", "params": {"pad": "x" * (100 * 1024)}}
        assert c.post("/v1/scans/reports", headers=hook, json=big).status_code == 413
        huge = blocked(opened, *[token("ghp", 4000 + i) for i in range(6000)])
        assert len(huge.body()) > 2 * 1024 * 1024
        r = post(c, hook, huge)
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")
    assert count(opened, HookEventRecord) == 1


def test_two_deliveries_at_once_store_one_event(
    opened: Any, hook: dict[str, str], reader: dict[str, str]
) -> None:
    app = app_for(opened)
    event = blocked(opened, token("ghp", 508), token("ghp", 509))
    answers: list[Any] = []
    start = threading.Barrier(4)

    def deliver() -> None:
        with TestClient(app, raise_server_exceptions=False) as c:
            start.wait()
            answers.append(post(c, hook, event))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 200, 201], [a.text[:200] for a in answers]
    assert count(opened, HookEventRecord) == 1 and count(opened, Scan) == 1
    assert count(opened, Finding) == 2 and count(opened, Occurrence) == 2
    with opened.sessions() as s:
        n = s.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "event.store")
        )
    assert n == 1
    ids = {tuple(f["finding_id"] for f in a.json()["findings"]) for a in answers}
    assert len(ids) == 1


# -- end to end: a real pre-receive hook delivering to the real service -----------------------


class _Served:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _database_bytes(store: Any) -> bytes:
    """The SQLite file and its WAL as bytes, or a text dump of every PostgreSQL table."""
    from sentinel.store.session import sqlite_path

    path = sqlite_path(store.url)
    if path is None:
        with store.sessions() as s:
            names = [t.name for t in Base.metadata.sorted_tables]
            rows = [str(r) for n in names for r in s.execute(text(f'SELECT t::text FROM "{n}" t'))]
        return "\n".join(rows).encode()
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@pytest.mark.integration
def test_a_pre_receive_hook_delivers_a_blocked_push_to_the_service(
    opened: Any, tmp_path: Path, git_repo: Any, reader: dict[str, str]
) -> None:
    import subprocess

    from tests.conftest import run_cli
    from tests.test_hooks_server import Server, push

    bare = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    assert run_cli("hooks", "install", "--repo", str(bare)).returncode == 0
    server = Server(bare)
    token_file = tmp_path / "service.token"
    token_file.write_text(new_token(opened, "git-server", ["scans:write"]) + "\n")
    token_file.chmod(0o600)
    server.config("sentinel.serviceTokenFile", str(token_file))
    server.config("sentinel.repositoryUrl", REPO)
    dev = git_repo("dev")
    dev.commit("init", {"README.md": "hello\n"})
    dev.git("remote", "add", "origin", f"file://{bare}")
    assert push(dev, "main").returncode == 0
    secret = token("ghp", 510)
    sha = dev.commit("leak", {"app/s.py": f"TOKEN = '{secret}'\n"})

    app = app_for(opened)
    with _Served(app) as url, TestClient(app) as api:
        server.config("sentinel.serviceUrl", url)
        res = push(dev, "main")
        assert res.returncode != 0 and "push rejected" in res.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = api.get("/v1/events", headers=reader).json()
            if page["items"]:
                break
            time.sleep(0.1)
        [event] = page["items"]
        assert event["verdict"] == "blocked" and event["repository"] == REPO
        assert event["refs"] == [{"ref": "refs/heads/main", "old": server.ref("main"), "new": sha}]
        assert event["findings_stored"] is True, event["findings_not_stored"]
        [f] = event["findings"]
        assert f["commit"] == sha and f["path"] == "app/s.py"
        detail = api.get(f"/v1/findings/{f['finding_id']}", headers=reader)
        assert detail.status_code == 200
        assert detail.json()["fingerprint"] == fingerprint(secret.encode(), opened.fingerprint.key)
        assert detail.json()["occurrences"][0]["last_scan_id"] == event["scan_id"]
        listed = api.get("/v1/findings", headers=reader).text
    assert not list((bare / "sentinel" / "events").glob("*.json"))  # delivered
    for shown in (json.dumps(page), detail.text, listed):
        assert secret not in shown
    assert secret.encode() not in _database_bytes(opened)
