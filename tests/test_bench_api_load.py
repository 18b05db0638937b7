"""bench/api_load.py's seed: what the load test runs against is a store the service
reads as its own (migrated, under the bench's fingerprint key), with the spread the
load's filters and triage rely on, and a rerun starts from the seeded statuses.
Runs on SQLite and on PostgreSQL (tests/storefixtures.py); nothing here is timed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_api_load", ROOT / "bench" / "api_load.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_api_load"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_seeded_store_serves_every_filter_and_resets_triage(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.store import queries
    from sentinel.store.facade import open_store
    from sentinel.store.session import writing

    bench = _bench()
    monkeypatch.setenv("SENTINEL_FINGERPRINT_KEY", bench.FP_KEY)
    n_occ, _ = bench.seed(empty_db_url, 600, "test-digest")
    assert bench._is_seeded(bench._sqla(empty_db_url), "test-digest")
    c = bench.counts(empty_db_url)
    assert c["findings"] == 600 and c["occurrences"] == n_occ
    assert 4 * 600 < n_occ < 6 * 600  # five places per finding on average

    store = open_store(empty_db_url)  # current schema, the same fingerprint key
    try:
        with store.sessions() as s:
            statuses = {f.status for f in queries.list_findings(s, limit=500).items}
            assert {"open", "ignored", "false_positive", "rotated"} <= statuses
            for flt in (
                queries.FindingFilter(source="git"),
                queries.FindingFilter(source="image"),
                queries.FindingFilter(source="k8s"),
                queries.FindingFilter(target=bench.repo(31)),
                queries.FindingFilter(rule=bench.top_rules(empty_db_url, 1)[0]),
            ):
                assert queries.list_findings(s, flt).items, flt
            page = queries.list_findings(s, limit=50)
            assert page.next_cursor and queries.list_findings(s, cursor=page.next_cursor).items
            # ids the Lua script triages (id % 100 < 95) are in a triage status
            assert all(
                (f.status in queries.TRIAGE_STATUSES) == (f.id % 100 < 95)
                for f in queries.list_findings(s, limit=500).items
            )
        with store.sessions() as s:
            writing(s)
            queries.triage(s, 1, "false_positive", reason="load", who="token:bench")
            queries.triage(s, 85, "open", reason=None, who="token:bench")
            s.commit()
    finally:
        store.close()

    assert bench.reset_triage(empty_db_url) >= 2
    store = open_store(empty_db_url)
    try:
        with store.sessions() as s:
            one, other = queries.get_finding(s, 1), queries.get_finding(s, 85)
            assert (one.status, one.triaged_by) == ("open", None)
            assert (other.status, other.triaged_by) == ("ignored", "seed")
    finally:
        store.close()
