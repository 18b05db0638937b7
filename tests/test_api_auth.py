"""Auth on every route of the API's own OpenAPI document (routes added later are walked
too), audit records, problems, body limits, readiness, metrics; SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from sentinel.store.models import ApiToken, AuditRecord
from tests.apiclient import TestClient, app_for, bearer, new_token

OPEN = {"/healthz", "/readyz", "/metrics", "/v1/webhooks/github"}  # the webhook signs instead


@pytest.fixture
def opened(store_env: str):  # type: ignore[no-untyped-def]
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def client(opened):  # type: ignore[no-untyped-def]
    app = app_for(opened)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.fastapi_app = app  # type: ignore[attr-defined]
        yield c


def _operations(client: TestClient):  # type: ignore[no-untyped-def]
    doc = client.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            yield method, path, op


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    url = re.sub(r"\{[^}]+\}", "1", path)
    kw = {"json": {}} if method in ("post", "put", "patch") else {}
    return client.request(method.upper(), url, headers=headers, **kw)


def test_every_route_needs_a_valid_token_with_the_right_scope(client, opened) -> None:  # type: ignore[no-untyped-def]
    from sentinel.api.tokens import SCOPES

    ops = [(m, p) for m, p, _ in _operations(client) if p not in OPEN]
    assert len(ops) >= 4
    expired = new_token(opened, "old", ["admin"], expired=True)
    revoked = new_token(opened, "gone", ["admin"], revoked=True)
    one_scope = {sc: new_token(opened, sc, [sc]) for sc in SCOPES}
    for method, path in ops:
        where = f"{method.upper()} {path}"
        assert _call(client, method, path, {}).status_code == 401, where
        assert _call(client, method, path, bearer("snt_abc_def")).status_code == 401, where
        assert _call(client, method, path, bearer(expired)).status_code == 401, where
        assert _call(client, method, path, bearer(revoked)).status_code == 401, where
        answers = {sc: _call(client, method, path, bearer(tok)) for sc, tok in one_scope.items()}
        allowed = {sc for sc, r in answers.items() if r.status_code != 403}
        # admin holds every scope; besides it, exactly one scope (least privilege) or none
        assert "admin" in allowed and len(allowed) <= 2, (where, allowed)
        for sc, r in answers.items():
            assert r.status_code not in (401, 500), (where, sc, r.status_code, r.text)
            if sc not in allowed:
                assert r.headers["content-type"].startswith("application/problem+json")


def test_health_and_metrics_need_no_token(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    m = client.get("/metrics")
    assert (
        m.status_code == 200
        and "sentinel_findings" in m.text
        and "sentinel_scan_queue_depth" in m.text
    )


def test_readyz_says_when_migrations_are_behind(empty_db_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from sentinel.store.session import make_engine

    engine = make_engine(empty_db_url)
    fake_store = SimpleNamespace(engine=engine, sessions=None)
    from fastapi import FastAPI

    from sentinel.api.deps import install_problems
    from sentinel.api.routes import health

    app = FastAPI()
    install_problems(app)
    app.include_router(health.router)
    app.state.store = fake_store
    with TestClient(app) as c:
        r = c.get("/readyz")
    engine.dispose()
    assert r.status_code == 503 and "sentinel db upgrade" in r.json()["detail"]


def test_tokens_are_shown_once_kept_hashed_and_mutations_audited(client, opened) -> None:  # type: ignore[no-untyped-def]
    admin = new_token(opened, "admin", ["admin"])
    r = client.post(
        "/v1/tokens",
        json={"name": "ci", "scopes": ["scans:write"], "expires": "30d"},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    made = r.json()["token"]
    assert made.startswith("snt_")
    listed = client.get("/v1/tokens", headers=bearer(admin))
    assert made not in listed.text and "token_hash" not in listed.text
    with opened.sessions() as s:
        hashes = [t.token_hash for t in s.scalars(select(ApiToken))]
        assert made not in hashes and all(len(h) == 64 for h in hashes)
    tid = r.json()["id"]
    assert client.get("/v1/tokens", headers=bearer(made)).status_code == 403
    assert client.delete(f"/v1/tokens/{tid}", headers=bearer(admin)).json()["revoked_at"]
    assert client.get("/v1/tokens", headers=bearer(made)).status_code == 401
    audit = client.get("/v1/audit", headers=bearer(admin)).json()["items"]
    actions = [(a["action"], a["object_id"], a["actor"]) for a in audit]
    assert ("token.revoke", str(tid), "admin") in actions and (
        "token.create",
        str(tid),
        "admin",
    ) in actions
    assert all(a["client"] for a in audit)


def test_bad_requests_get_problems_not_tracebacks(client, opened) -> None:  # type: ignore[no-untyped-def]
    admin = new_token(opened, "admin", ["admin"])
    nf = client.get("/no/such/route")
    assert nf.status_code == 404 and nf.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert client.put("/v1/tokens", headers=bearer(admin)).status_code == 405
    secret = "ghp_" + "A" * 36
    bad = client.post(
        "/v1/tokens", json={"name": secret, "scopes": "notalist"}, headers=bearer(admin)
    )
    assert bad.status_code == 422 and secret not in bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    nonjson = client.post(
        "/v1/tokens",
        content=b"{not json",
        headers={**bearer(admin), "content-type": "application/json"},
    )
    assert nonjson.status_code == 422 and "Traceback" not in nonjson.text


def test_bodies_over_the_limit_are_refused_even_chunked(client, opened) -> None:  # type: ignore[no-untyped-def]
    admin = new_token(opened, "admin", ["admin"])
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = client.post(
        "/v1/tokens", content=big, headers={**bearer(admin), "content-type": "application/json"}
    )
    assert r.status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = client.post(
        "/v1/tokens",
        content=chunks(),
        headers={**bearer(admin), "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    with client.app.state.store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord)) == 0


def test_a_token_revoked_elsewhere_stops_working_within_the_cache_time(  # type: ignore[no-untyped-def]
    client, opened, monkeypatch
) -> None:
    import time

    from sentinel.api import deps
    from sentinel.api.tokens import revoke

    monkeypatch.setattr(deps, "AUTH_CACHE_SECONDS", 0.3)
    reader = new_token(opened, "reader", ["findings:read"])
    assert client.get("/v1/findings", headers=bearer(reader)).status_code == 200
    # revoked by another process (`sentinel tokens revoke`): this one's cache still
    # holds the verification, for at most AUTH_CACHE_SECONDS
    with opened.sessions() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "reader")).one()
        assert revoke(row)
        s.commit()
    time.sleep(0.35)
    assert client.get("/v1/findings", headers=bearer(reader)).status_code == 401
