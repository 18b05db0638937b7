"""GET/PATCH /v1/findings against the real app and real databases (SQLite and
PostgreSQL): filters, pages walked exactly once while rows arrive, triage with audit
that survives a rescan, and 401/403/404/409/422 problems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from sentinel.store.models import AuditRecord, Finding
from tests.apiapp import TestClient, bearer, make_app, make_token
from tests.conftest import run_cli, token


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def client(opened: Any) -> Iterator[TestClient]:
    with TestClient(make_app(opened)) as c:
        yield c


def _scan(path: Path) -> None:
    out = run_cli("scan", "path", str(path), "--store", "-f", "json")
    assert out.returncode == 1, out.stderr


def _secrets(tmp_path: Path, n: int, start: int = 0) -> Path:
    work = tmp_path / f"w{start}"
    work.mkdir()
    for i in range(start, start + n):
        (work / f"f{i}.env").write_text(f"GITHUB_TOKEN={token('ghp', i)}\n")
    return work


def test_list_filter_and_walk_pages_while_rows_arrive(
    client: TestClient, opened: Any, tmp_path: Path
) -> None:
    reader = bearer(make_token(opened, "reader", ["findings:read"]))
    _scan(_secrets(tmp_path, 12))
    r = client.get("/v1/findings", headers=reader, params={"limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5 and body["next_cursor"]
    item = body["items"][0]
    assert item["redacted"].startswith("ghp_") and len(item["fingerprint"]) == 64
    assert "secret" not in item and "secret_sealed" not in item
    seen: list[int] = [i["id"] for i in body["items"]]
    cursor = body["next_cursor"]
    extra = 100
    while cursor:
        _scan(_secrets(tmp_path, 2, start=extra))  # new findings between pages
        extra += 2
        page = client.get("/v1/findings", headers=reader, params={"limit": 5, "cursor": cursor})
        assert page.status_code == 200, page.text
        seen += [i["id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert len(seen) == len(set(seen)) == 12

    # filters
    def ids(**params: Any) -> set[int]:
        r = client.get("/v1/findings", headers=reader, params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    total = ids()
    assert len(total) == 12 + (extra - 100)
    assert ids(source="file") == total and ids(source="git") == set()
    assert ids(rule="github*") == total and ids(rule="aws*") == set()
    assert ids(status="open") == total and ids(severity="low") == set()
    assert ids(q="ghp_") == total
    target = str((tmp_path / "w0").resolve())
    assert len(ids(target=target)) == 12
    assert ids(since="2999-01-01T00:00:00Z") == set()
    assert len(ids(sort="severity")) == len(total)


def test_one_finding_with_occurrences(client: TestClient, opened: Any, tmp_path: Path) -> None:
    reader = bearer(make_token(opened, "reader", ["findings:read"]))
    work = tmp_path / "w"
    work.mkdir()
    gh = token("ghp", 3)
    for i in range(5):
        (work / f"f{i}.env").write_text(f"GITHUB_TOKEN={gh}\n")
    _scan(work)
    fid = client.get("/v1/findings", headers=reader).json()["items"][0]["id"]
    r = client.get(f"/v1/findings/{fid}", headers=reader, params={"occurrences_limit": 2})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["occurrences_total"] == 5 and d["occurrences_present"] == 5
    assert len(d["occurrences"]) == 2 and d["occurrences_next_cursor"]
    assert (
        d["occurrences"][0]["path"].endswith("f0.env") and d["occurrences"][0]["source"] == "file"
    )
    got = [o["id"] for o in d["occurrences"]]
    cur = d["occurrences_next_cursor"]
    while cur:
        page = client.get(
            f"/v1/findings/{fid}",
            headers=reader,
            params={"occurrences_limit": 2, "occurrences_cursor": cur},
        ).json()
        got += [o["id"] for o in page["occurrences"]]
        cur = page["occurrences_next_cursor"]
    assert len(got) == len(set(got)) == 5
    assert gh not in r.text
    missing = client.get("/v1/findings/999999", headers=reader)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "999999" in missing.json()["detail"]


def test_answers_are_exactly_the_documented_models(
    client: TestClient, opened: Any, tmp_path: Path
) -> None:
    """The reads write JSON straight from rows: each answer must be what its response
    model would write (same fields, same time format), gone occurrences included."""
    from sentinel.api.routes.findings import FindingDetail, FindingPage

    reader = bearer(make_token(opened, "reader", ["findings:read"]))
    work = _secrets(tmp_path, 3)
    _scan(work)
    (work / "f0.env").unlink()
    _scan(work)  # f0's occurrence is now gone, with when
    page = client.get("/v1/findings", headers=reader).json()
    assert len(page["items"]) == 3
    assert FindingPage.model_validate(page).model_dump(mode="json") == page
    assert page["items"][0]["last_seen"].endswith("Z")
    details = [client.get(f"/v1/findings/{i['id']}", headers=reader).json() for i in page["items"]]
    for d in details:
        assert FindingDetail.model_validate(d).model_dump(mode="json") == d
    gone = [o for d in details for o in d["occurrences"] if o["gone_at"]]
    assert len(gone) == 1 and gone[0]["path"].endswith("f0.env")
    assert sorted(d["occurrences_present"] for d in details) == [0, 1, 1]


def test_triage_is_audited_and_survives_a_rescan(
    client: TestClient, opened: Any, tmp_path: Path
) -> None:
    writer = bearer(make_token(opened, "triager", ["findings:read", "findings:write"]))
    work = _secrets(tmp_path, 1)
    _scan(work)
    fid = client.get("/v1/findings", headers=writer).json()["items"][0]["id"]
    no_reason = client.patch(f"/v1/findings/{fid}", headers=writer, json={"status": "ignored"})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    r = client.patch(
        f"/v1/findings/{fid}",
        headers=writer,
        json={"status": "false_positive", "reason": "a test fixture"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "false_positive" and r.json()["triaged_by"] == "token:triager"
    _scan(work)
    after = client.get(f"/v1/findings/{fid}", headers=writer).json()
    assert after["status"] == "false_positive" and after["triage_reason"] == "a test fixture"
    with opened.sessions() as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "finding.triage")).one()
        assert rec.actor == "triager" and rec.object_id == str(fid) and rec.client
        assert rec.detail == {"from": "open", "to": "false_positive", "reason": "a test fixture"}
    reopened = client.patch(f"/v1/findings/{fid}", headers=writer, json={"status": "open"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    # rotation owns these states: 409
    with opened.sessions() as s:
        s.execute(update(Finding).where(Finding.id == fid).values(status="rotating"))
        s.commit()
    conflict = client.patch(
        f"/v1/findings/{fid}", headers=writer, json={"status": "ignored", "reason": "x"}
    )
    assert conflict.status_code == 409 and "rotating" in conflict.json()["detail"]
    assert (
        client.patch("/v1/findings/999999", headers=writer, json={"status": "open"}).status_code
        == 404
    )
    bad = client.patch(f"/v1/findings/{fid}", headers=writer, json={"status": "rotated"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("status")


def test_auth_and_bad_requests_are_problems(client: TestClient, opened: Any) -> None:
    assert client.get("/v1/findings").status_code == 401
    expired = make_token(opened, "old", ["findings:read"], expired=True)
    revoked = make_token(opened, "gone", ["findings:read"], revoked=True)
    assert client.get("/v1/findings", headers=bearer(expired)).status_code == 401
    assert client.get("/v1/findings", headers=bearer(revoked)).status_code == 401
    assert client.get("/v1/findings", headers=bearer("snt_nope_nope")).status_code == 401
    scans_only = bearer(make_token(opened, "ci", ["scans:write"]))
    r = client.get("/v1/findings", headers=scans_only)
    assert r.status_code == 403 and "findings:read" in r.json()["detail"]
    reader = bearer(make_token(opened, "reader", ["findings:read"]))
    assert (
        client.patch("/v1/findings/1", headers=reader, json={"status": "open"}).status_code == 403
    )
    for params in ({"limit": 0}, {"limit": 501}, {"status": "nope"}, {"cursor": "garbage"}):
        r = client.get("/v1/findings", headers=reader, params=params)
        assert r.status_code == 422, params
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "\n" not in r.json()["detail"]


def test_reads_survive_the_database_dropping_their_connection(
    client: TestClient, opened: Any, tmp_path: Path
) -> None:
    """The loop's reads skip the ping per checkout on PostgreSQL: a connection the
    server dropped (a restart, an idle timeout) is found when a read fails and that
    read is run again on a new one, so the client sees no error."""
    if opened.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL server dropping connections")
    reader = bearer(make_token(opened, "reader", ["findings:read"]))
    _scan(_secrets(tmp_path, 2))
    fid = client.get("/v1/findings", headers=reader).json()["items"][0]["id"]
    with opened.engine.connect() as c:
        killed = c.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert killed >= 1  # the loop pool's connection among them
    r = client.get("/v1/findings", headers=reader)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    assert client.get(f"/v1/findings/{fid}", headers=reader).status_code == 200
