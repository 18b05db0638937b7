"""Every operation of the API's own OpenAPI document, fed schemathesis-generated input
(valid and invalid: wrong types, missing fields, odd strings, huge numbers), with an
admin token: never a 500, every error an RFC 9457 problem, every success shaped as the
document says. SQLite and PostgreSQL.

Operations added later are walked too: the list comes from the running app."""

from __future__ import annotations

from typing import Any

import pytest

from tests.apiclient import TestClient, app_for, bearer, new_token

schemathesis = pytest.importorskip("schemathesis")

# examples per operation and per generation mode: enough to hit the odd types and
# boundaries of each parameter, few enough to keep the suite quick on two databases
EXAMPLES = 25


@pytest.fixture
def opened(store_env: str):  # type: ignore[no-untyped-def]
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()  # a schema the loader cannot read is itself a failure
        ops.append(op)
    return ops


def _is_problem(resp: Any) -> bool:
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    doc = resp.json()
    return isinstance(doc, dict) and doc.get("status") == resp.status_code and "title" in doc


def test_no_generated_request_makes_a_server_error(opened) -> None:  # type: ignore[no-untyped-def]
    app = app_for(opened)
    ops = _operations(app)
    assert len(ops) >= 8, [o.label for o in ops]
    failures: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for op in ops:
            _fuzz(op, opened, client, failures)
    assert failures == [], "\n".join(failures[:20])


def _fuzz(op: Any, opened: Any, client: Any, failures: list[str]) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import response_schema_conformance

    strategy = st.one_of(
        op.as_strategy(generation_mode=GenerationMode.POSITIVE),
        op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        # a fresh admin token per request: a generated DELETE /v1/tokens/{id}
        # may revoke the one it came with
        tok = new_token(opened, "fuzz", ["admin"])
        kwargs = case.as_transport_kwargs(headers=bearer(tok))
        resp = client.request(
            kwargs["method"],
            kwargs["url"].replace("http://localhost", ""),
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            content=_content(kwargs),
        )
        where = f"{op.label}: {kwargs['method']} {kwargs['url']} -> {resp.status_code}"
        if resp.status_code >= 500 and resp.status_code != 503:
            failures.append(f"{where}: {resp.text[:200]}")
        elif resp.status_code >= 400 and not _is_problem(resp):
            failures.append(f"{where}: not a problem document: {resp.text[:200]}")
        elif resp.status_code < 300:
            try:  # a success answers in the shape the document promises
                case.validate_response(resp, checks=[response_schema_conformance])
            except Exception as exc:
                failures.append(f"{where}: {str(exc).strip().splitlines()[0][:200]}")

    run()


def _content(kwargs: dict[str, Any]) -> bytes | None:
    import json

    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data") or kwargs.get("content")
    if isinstance(data, str):
        return data.encode()
    return data  # type: ignore[no-any-return]


HOSTILE_PARAMS = [
    "0",
    "-1",
    str(2**63),
    "99999999999999999999999999",
    "1e308",
    "NaN",
    "abc",
    "%00",
    "%F0%28%8C%BC",  # invalid UTF-8
    "..%2F..%2Fetc%2Fpasswd",
    "x" * 5000,
]


def test_hostile_path_and_query_values_get_a_problem_not_a_crash(opened) -> None:  # type: ignore[no-untyped-def]
    """Deterministic boundaries the random walk may miss: every path parameter and every
    query parameter of every operation, given each hostile value."""
    import re

    app = app_for(opened)
    failures: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        doc = client.get("/openapi.json").json()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                queries = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
                for value in HOSTILE_PARAMS:
                    tok = new_token(opened, "probe", ["admin"])
                    url = re.sub(r"\{[^}]+\}", value, path)
                    calls = [(url, {})] + [
                        (re.sub(r"\{[^}]+\}", "1", path), {q: value}) for q in queries
                    ]
                    for u, params in calls:
                        kw: dict[str, Any] = (
                            {"json": {}} if method != "get" and method != "delete" else {}
                        )
                        resp = client.request(
                            method.upper(), u, params=params, headers=bearer(tok), **kw
                        )
                        where = f"{method.upper()} {u} {params} -> {resp.status_code}"
                        if resp.status_code >= 500 and resp.status_code != 503:
                            failures.append(where)
                        elif resp.status_code >= 400 and not _is_problem(resp):
                            failures.append(f"{where}: not a problem: {resp.text[:100]}")
    assert failures == [], "\n".join(failures[:20])
