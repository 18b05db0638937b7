"""A triage runs on the event loop when the lock it needs is free, and in a thread when
another transaction holds it: it then waits for the lock and succeeds, while the same
serving process goes on answering reads. Against a real ``sentinel serve``, on SQLite
(the database's write lock) and PostgreSQL (the finding's row lock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from sentinel.store.models import AuditRecord, Finding
from tests.apiclient import bearer, new_token
from tests.conftest import run_cli, token
from tests.serveproc import start_serve, stop_serve


@pytest.mark.integration
def test_triage_waits_out_a_held_lock_without_stalling_reads(
    store_env: str, tmp_path: Path
) -> None:
    from sentinel.store.facade import open_store

    work = tmp_path / "w"
    work.mkdir()
    (work / "a.env").write_text(f"GITHUB_TOKEN={token('ghp', 5)}\n")
    store = open_store(migrate_now=True)
    try:
        assert run_cli("scan", "path", str(work), "--store").returncode == 1
        headers = bearer(new_token(store, "triager", ["findings:read", "findings:write"]))
        with store.sessions() as s:
            fid = s.scalars(select(Finding.id)).one()
        proc, url = start_serve(tmp_path / "serve.log")
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
                # free lock: answered at once
                r = c.patch(f"/v1/findings/{fid}", json={"status": "ignored", "reason": "a"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "ignored"

                holder = store.engine.connect()
                if store.engine.dialect.name == "sqlite":
                    holder = holder.execution_options(sentinel_write=True)
                    holder.begin()  # BEGIN IMMEDIATE: the write lock
                else:
                    holder.begin()
                    holder.execute(
                        text("SELECT 1 FROM findings WHERE id = :i FOR UPDATE"), {"i": fid}
                    )
                answer: dict[str, Any] = {}

                def triage() -> None:
                    with httpx.Client(base_url=url, headers=headers, timeout=30) as c2:
                        answer["r"] = c2.patch(
                            f"/v1/findings/{fid}", json={"status": "false_positive", "reason": "b"}
                        )
                        answer["at"] = time.monotonic()

                t = threading.Thread(target=triage)
                t.start()
                time.sleep(0.5)
                # the triage waits for the lock; the process still answers reads
                t0 = time.monotonic()
                for _ in range(5):
                    assert c.get(f"/v1/findings/{fid}").status_code == 200
                assert time.monotonic() - t0 < 5
                assert "r" not in answer  # still waiting: the lock is held
                released = time.monotonic()
                holder.rollback()
                holder.close()
                t.join(30)
                assert answer["r"].status_code == 200, answer["r"].text
                assert answer["r"].json()["status"] == "false_positive"
                assert answer["at"] >= released
        finally:
            stop_serve(proc)
        with store.sessions() as s:
            f = s.get(Finding, fid)
            assert f is not None and f.status == "false_positive" and f.triage_reason == "b"
            audits = s.scalars(select(AuditRecord).where(AuditRecord.action == "finding.triage"))
            assert [a.detail["to"] for a in audits] == ["ignored", "false_positive"]
    finally:
        store.close()
