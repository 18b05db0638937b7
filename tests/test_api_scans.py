"""POST/GET /v1/scans and POST /v1/scans/reports against the real app, real databases
(SQLite and PostgreSQL), the real in-process job runner and, for --report-to, a real
HTTP server on loopback that the real CLI posts to."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.fingerprint import fingerprint
from sentinel.store.models import AuditRecord, Finding, Scan
from tests.apiapp import TestClient, bearer, make_app, make_token
from tests.conftest import run_cli, token


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _settings(root: Path, **kw: Any) -> Any:
    from sentinel.settings import ServiceSection, ServiceSettings

    return ServiceSettings(service=ServiceSection(scan_roots=[root], **kw))


@pytest.fixture
def served(opened: Any, tmp_path: Path) -> Iterator[tuple[TestClient, Any, Path]]:
    from sentinel.jobs.inprocess import InProcessRunner

    root = tmp_path / "roots"
    root.mkdir()
    settings = _settings(root)
    runner = InProcessRunner(opened, settings)
    with TestClient(make_app(opened, settings, runner)) as c:
        yield c, runner, root
    runner.shutdown()


def _wait(client: TestClient, headers: dict[str, str], sid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = client.get(f"/v1/scans/{sid}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("succeeded", "failed"):
            return r.json()  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"scan {sid} did not finish")


def test_a_git_repository_under_a_scan_root_is_scanned(
    served: tuple[TestClient, Any, Path], opened: Any, git_repo: Any
) -> None:
    client, _runner, root = served
    ci = bearer(make_token(opened, "ci", ["scans:write", "findings:read"]))
    repo = git_repo("roots/app")
    assert repo.path.parent == root
    gh = token("ghp", 21)
    repo.commit("add", {"deploy.sh": f"export GH={gh}\n"})
    r = client.post("/v1/scans", headers=ci, json={"kind": "git", "target": str(repo.path)})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert r.headers["Location"] == f"/v1/scans/{sid}" and r.json()["status"] == "queued"
    done = _wait(client, ci, sid)
    assert done["status"] == "succeeded", done["errors"]
    assert done["findings_new"] == 1 and done["requested_by"] == "token:ci"
    found = client.get("/v1/findings", headers=ci, params={"source": "git"}).json()["items"]
    assert [f["first_scan_id"] for f in found] == [sid]
    listed = client.get("/v1/scans", headers=ci).json()
    assert [s["id"] for s in listed["items"]] == [sid]
    assert gh not in r.text + str(done) + str(found)
    with opened.sessions() as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "scan.create")).one()
        assert rec.object_id == sid and rec.actor == "ci"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "git", "target": "file:///etc"}, "file://"),
        ({"kind": "git", "target": "ext::sh -c id"}, "transport helper"),
        ({"kind": "git", "target": "--upload-pack=id"}, "starts with '-'"),
        ({"kind": "git", "target": "https://u:p@example.com/r.git"}, "credentials"),
        ({"kind": "path", "target": "/etc"}, "outside the scan roots"),
        ({"kind": "git", "target": "https://e.com/r.git", "options": {"platform": "x/y"}}, "apply"),
    ],
)
def test_refused_targets_are_422_problems(
    served: tuple[TestClient, Any, Path], opened: Any, body: dict[str, Any], says: str
) -> None:
    client, _runner, _root = served
    ci = bearer(make_token(opened, "ci", ["scans:write"]))
    r = client.post("/v1/scans", headers=ci, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["detail"] and "\n" not in r.json()["detail"]
    with opened.sessions() as s:
        assert s.scalars(select(Scan)).first() is None


def test_a_full_queue_is_429_with_retry_after(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.inprocess import InProcessRunner

    root = tmp_path / "roots"
    (root / "p").mkdir(parents=True)
    (root / "p" / "a.txt").write_text("nothing\n")
    settings = _settings(root, workers=1, queue_size=0)
    runner = InProcessRunner(opened, settings)
    ci = bearer(make_token(opened, "ci", ["scans:write", "findings:read"]))
    body = {"kind": "path", "target": str(root / "p")}
    with TestClient(make_app(opened, settings, runner)) as client:
        first = client.post("/v1/scans", headers=ci, json=body)
        second = client.post("/v1/scans", headers=ci, json=body)
        assert first.status_code == 202, first.text
        assert second.status_code == 429, second.text
        assert int(second.headers["Retry-After"]) >= 1
        assert "queue is full" in second.json()["detail"]
        assert _wait(client, ci, first.json()["id"])["status"] == "succeeded"
        # the refused scan left no queued row behind
        assert [s["id"] for s in client.get("/v1/scans", headers=ci).json()["items"]] == [
            first.json()["id"]
        ]
    runner.shutdown()


def test_scans_list_pages_and_404(served: tuple[TestClient, Any, Path], opened: Any) -> None:
    from sentinel.store.facade import new_scan_id

    client, _runner, _root = served
    reader = bearer(make_token(opened, "r", ["findings:read"]))
    with opened.sessions() as s:
        for _ in range(7):
            s.add(Scan(id=new_scan_id(), kind="path", target="/x", requested_by="t"))
        s.commit()
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/scans", headers=reader, params=params).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    assert client.get("/v1/scans/nope", headers=reader).status_code == 404
    assert client.post("/v1/scans", headers=reader, json={}).status_code == 403


def test_a_report_is_refingerprinted_under_the_service_key(
    served: tuple[TestClient, Any, Path], opened: Any
) -> None:
    client, _runner, _root = served
    ci = bearer(make_token(opened, "ci", ["scans:write"]))
    gh = token("ghp", 33)
    occ = {
        "rule_id": "github.pat",
        "severity": "high",
        "confidence": "high",
        "fingerprint": "0" * 64,
        "redacted": gh,  # a careless reporter: not trusted, made again
        "source": "file",
        "path": "a.env",
        "line": 1,
        "secret": gh,
    }
    body = {"kind": "path", "target": "/ci/work", "complete": True, "findings": [occ]}
    r = client.post("/v1/scans/reports", headers=ci, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["findings_new"] == 1 and r.json()["occurrences_new"] == 1
    assert gh not in r.text
    with opened.sessions() as s:
        f = s.scalars(select(Finding)).one()
        assert f.fingerprint == fingerprint(gh.encode(), opened.fingerprint.key)
        assert gh not in f.redacted
    again = client.post("/v1/scans/reports", headers=ci, json=body)
    assert again.json()["findings_new"] == 0 and again.json()["occurrences_seen"] == 1
    # a body that fails validation says where, never echoing the value
    bad = client.post(
        "/v1/scans/reports", headers=ci, json={**body, "findings": [{**occ, "line": gh}]}
    )
    assert bad.status_code == 422 and gh not in bad.text and "line" in bad.json()["detail"]
    assert client.post("/v1/scans/reports", headers=ci, content=b"{").status_code == 422


class _Server:
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


@pytest.mark.integration
def test_cli_report_to_a_running_service(opened: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    gh = token("ghp", 44)
    (work / "ci.env").write_text(f"GITHUB_TOKEN={gh}\n")
    tok = make_token(opened, "ci", ["scans:write"])
    with _Server(make_app(opened)) as url:
        # the CLI runs under a key of its own; the service fingerprints under its key
        env = {"SENTINEL_TOKEN": tok, "SENTINEL_FINGERPRINT_KEY": "cli-" + uuid.uuid4().hex}
        out = run_cli("scan", "path", str(work), "--report-to", url, "-f", "json", env=env)
    assert out.returncode == 1, out.stderr
    assert "reported scan" in out.stderr and gh not in out.stderr
    with opened.sessions() as s:
        f = s.scalars(select(Finding)).one()
        scan = s.scalars(select(Scan)).one()
    assert f.fingerprint == fingerprint(gh.encode(), opened.fingerprint.key)
    assert scan.id in out.stderr and scan.requested_by == "token:ci"
    assert f.rule_id.startswith("github")
