"""``POST /v1/webhooks/github`` end to end: a signed push payload shaped as GitHub
documents it, for a repository served by a real smart-HTTP git server on loopback;
the scan runs in the service's job runner against the bare mirror, on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from sentinel.settings import ServiceSection, ServiceSettings
from sentinel.store.models import AuditRecord, Occurrence, Scan, WebhookDelivery
from tests.conftest import GitRepo, token
from tests.githttp import GitHTTPServer

SECRET = "webhook-test-secret-" + uuid.uuid4().hex
ZERO = "0" * 40


class _FullRunner:
    """A job runner with no room (what InProcessRunner raises when its queue is full)."""

    def submit_scan(self, scan_id: str) -> None:
        from sentinel.jobs.base import QueueFull

        raise QueueFull(retry_after=7, depth=22)

    def depth(self) -> int:
        return 22

    def shutdown(self, wait: bool = True) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    root = tmp_path / "served"
    root.mkdir()
    srv = GitHTTPServer(root)
    yield srv
    srv.close()


@pytest.fixture
def service(store_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from sentinel.api.routes.webhooks import router
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.store.facade import open_store

    monkeypatch.setenv("SENTINEL_GITHUB_WEBHOOK_SECRET", SECRET)
    settings = ServiceSettings(
        service=ServiceSection(mirrors_dir=tmp_path / "mirrors", git_http_loopback=True)  # type: ignore[call-arg]
    )
    store = open_store()
    app = FastAPI()
    app.include_router(router)
    app.state.settings = settings
    app.state.store = store
    app.state.jobs = InProcessRunner(store, settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        client.app_state = app.state  # type: ignore[attr-defined]
        yield client
    srv.should_exit = True
    th.join(10)
    app.state.jobs.shutdown()
    store.close()


def push_payload(url: str, before: str, after: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    """A push event body with the fields GitHub documents (trimmed to what matters)."""
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO,
        "deleted": after == ZERO,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/app/compare/{before[:12]}...{after[:12]}",
        "commits": [],
        "head_commit": None,
        "repository": {
            "id": 1296269,
            "name": "app",
            "full_name": "acme/app",
            "private": False,
            "html_url": "https://github.com/acme/app",
            "clone_url": url,
            "git_url": "git://github.com/acme/app.git",
            "ssh_url": "git@github.com:acme/app.git",
            "default_branch": "main",
        },
        "pusher": {"name": "ann", "email": "ann@example.org"},
        "sender": {"login": "ann", "id": 1},
    }


def send(
    client: httpx.Client,
    payload: Any,
    *,
    event: str = "push",
    delivery: str | None = None,
    secret: str = SECRET,
    signature: str | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = signature or "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sig,
        "User-Agent": "GitHub-Hookshot/abc123",
    }
    return client.post("/v1/webhooks/github", content=body, headers=headers)


def wait(store: Any, sid: str, timeout: float = 120) -> Scan:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.sessions() as s:
            row = s.get(Scan, sid)
            if row is not None and row.status in ("succeeded", "failed"):
                s.expunge(row)
                return row
        time.sleep(0.2)
    raise AssertionError(f"scan {sid} did not finish")


def _repo(tmp_path: Path, server: GitHTTPServer) -> tuple[GitRepo, str, str, str, str, str]:
    work = GitRepo(tmp_path / "work")
    old_secret = token("ghp", 11)
    base = work.commit("old", {"deploy.sh": f"export GH={old_secret}\n"})
    url = server.publish(work.path, "app")
    new_secret = token("ghp", 12)
    work.commit("one", {"ci.env": f"NPM={token('npm', 3)}\n"})
    head = work.commit("two", {"ci.sh": f"GH={new_secret}\n"})
    server.push(work.path, "app", "main")
    return work, url, base, head, old_secret, new_secret


def test_a_signed_push_scans_only_the_pushed_range(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    _, url, base, head, old_secret, new_secret = _repo(tmp_path, server)
    delivery = str(uuid.uuid4())
    res = send(service, push_payload(url, base, head), delivery=delivery)
    assert res.status_code == 202, res.text
    sid = res.json()["scan_id"]
    store = service.app_state.store  # type: ignore[attr-defined]
    row = wait(store, sid)
    assert row.status == "succeeded", row.errors
    assert row.kind == "git" and row.target == url
    assert row.requested_by == f"webhook:github:{delivery}"
    assert row.params["branch"] == head and row.params["since"] == base
    with store.sessions() as s:
        occ = list(s.scalars(select(Occurrence).where(Occurrence.last_scan_id == sid)))
        paths = sorted(o.path for o in occ)
        assert paths == ["ci.env", "ci.sh"]  # deploy.sh, before `before`, is not re-reported
        audit = s.scalars(select(AuditRecord).where(AuditRecord.object_id == sid)).one()
        assert audit.action == "webhook.push" and audit.detail["delivery"] == delivery
        dl = s.get(WebhookDelivery, delivery)
        assert dl is not None and dl.scan_id == sid
    assert old_secret not in res.text and new_secret not in res.text


def test_a_new_branch_scans_what_it_adds_to_the_default_branch(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    work, url, _base, _head, _old, _new = _repo(tmp_path, server)
    work.git("checkout", "-q", "-b", "feature")
    tip = work.commit("feature", {"f.env": f"GH={token('ghp', 13)}\n"})
    server.push(work.path, "app", "feature")
    res = send(service, push_payload(url, ZERO, tip, ref="refs/heads/feature"))
    assert res.status_code == 202, res.text
    store = service.app_state.store  # type: ignore[attr-defined]
    row = wait(store, res.json()["scan_id"])
    assert row.status == "succeeded", row.errors
    assert row.params["since"] == "refs/heads/main"
    with store.sessions() as s:
        occ = list(s.scalars(select(Occurrence).where(Occurrence.last_scan_id == row.id)))
        assert [o.path for o in occ] == ["f.env"]


def test_bad_or_missing_signature_is_401_and_scans_nothing(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    _, url, base, head, *_ = _repo(tmp_path, server)
    payload = push_payload(url, base, head)
    for res in (
        send(service, payload, secret="not-the-secret"),
        send(service, payload, signature="sha256=" + "0" * 64),
        send(service, payload, signature="sha1=abc"),
    ):
        assert res.status_code == 401
        assert res.headers["content-type"].startswith("application/problem+json")
        assert res.json()["title"] == "invalid signature"
    body = json.dumps(payload).encode()
    res = service.post("/v1/webhooks/github", content=body, headers={"X-GitHub-Event": "push"})
    assert res.status_code == 401
    store = service.app_state.store  # type: ignore[attr-defined]
    with store.sessions() as s:
        assert s.scalars(select(Scan)).first() is None
    assert server.log == []


def test_without_a_secret_the_webhook_says_it_is_not_configured(
    service: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTINEL_GITHUB_WEBHOOK_SECRET")
    res = send(service, {"zen": "x"}, event="ping")
    assert res.status_code == 503 and res.json()["title"] == "webhook not configured"


def test_ping_other_events_and_deleted_refs(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    _, url, _base, head, *_ = _repo(tmp_path, server)
    assert send(service, {"zen": "Keep it logically awesome."}, event="ping").status_code == 200
    res = send(service, {"action": "opened"}, event="issues")
    assert res.status_code == 202 and res.json()["status"] == "ignored"
    res = send(service, push_payload(url, head, ZERO))
    assert res.status_code == 202 and res.json()["status"] == "ignored"
    store = service.app_state.store  # type: ignore[attr-defined]
    with store.sessions() as s:
        assert s.scalars(select(Scan)).first() is None


def test_a_duplicate_delivery_is_ignored(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    _, url, base, head, *_ = _repo(tmp_path, server)
    delivery = str(uuid.uuid4())
    first = send(service, push_payload(url, base, head), delivery=delivery)
    assert first.status_code == 202
    again = send(service, push_payload(url, base, head), delivery=delivery)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["scan_id"] == first.json()["scan_id"]
    store = service.app_state.store  # type: ignore[attr-defined]
    wait(store, first.json()["scan_id"])
    with store.sessions() as s:
        assert len(list(s.scalars(select(Scan)))) == 1


def test_duplicates_arriving_at_once_make_one_scan(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, url, base, head, *_ = _repo(tmp_path, server)
    delivery = str(uuid.uuid4())
    with ThreadPoolExecutor(6) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    send(service, push_payload(url, base, head), delivery=delivery).status_code
                ),
                range(6),
            )
        )
    assert sorted(codes) == [200] * 5 + [202]
    store = service.app_state.store  # type: ignore[attr-defined]
    with store.sessions() as s:
        rows = list(s.scalars(select(Scan)))
        assert len(rows) == 1
    wait(store, rows[0].id)


def test_a_full_queue_is_429_and_the_redelivery_is_taken(
    service: httpx.Client, tmp_path: Path, server: GitHTTPServer
) -> None:
    _, url, base, head, *_ = _repo(tmp_path, server)
    state = service.app_state  # type: ignore[attr-defined]
    real = state.jobs
    state.jobs = _FullRunner()
    delivery = str(uuid.uuid4())
    res = send(service, push_payload(url, base, head), delivery=delivery)
    assert res.status_code == 429 and res.headers["retry-after"] == "7"
    with state.store.sessions() as s:
        assert s.get(WebhookDelivery, delivery) is None
        assert s.scalars(select(Scan)).first() is None
    state.jobs = real
    res = send(service, push_payload(url, base, head), delivery=delivery)
    assert res.status_code == 202, res.text
    assert wait(state.store, res.json()["scan_id"]).status == "succeeded"


@pytest.mark.parametrize(
    ("clone_url", "says"),
    [
        ("file:///etc/passwd", "https"),
        ("ext::sh -c id", "https"),
        ("git@github.com:acme/app.git", "https"),
        ("ssh://git@github.com/acme/app.git", "https"),
        ("https://user:pw@github.com/acme/app.git", "credentials"),
        ("https://-oProxyCommand=id/app.git", "host"),
        ("http://example.org/app.git", "loopback"),
    ],
)
def test_a_clone_url_that_is_not_plain_https_is_refused(
    service: httpx.Client, clone_url: str, says: str
) -> None:
    res = send(service, push_payload(clone_url, "a" * 40, "b" * 40))
    assert res.status_code == 422, res.text
    assert says in res.json()["detail"]
    assert "pw" not in res.text


def test_malformed_payloads_and_oversize_bodies(service: httpx.Client) -> None:
    assert send(service, b"{not json").status_code == 422
    assert send(service, [1, 2]).status_code == 422
    bad = push_payload("https://github.com/acme/app.git", "a" * 40, "--upload-pack=id")
    assert send(service, bad).status_code == 422
    big = json.dumps({"pad": "x" * (2 * 1024 * 1024)}).encode()
    res = send(service, big)
    assert res.status_code == 413
