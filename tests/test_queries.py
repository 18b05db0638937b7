"""The store's listing queries on SQLite and PostgreSQL: filters, keyset pages that
stay exact while rows arrive, triage rules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from sentinel.store import queries as Q
from sentinel.store.ingest import note_sources
from sentinel.store.models import SOURCE_BITS, Finding, Occurrence

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def _add(store, n: int, start: int = 0, **kw) -> list[int]:  # type: ignore[no-untyped-def]
    sev = ["critical", "high", "medium", "low"]
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "fingerprint": hashlib.sha256(f"f{i}".encode()).hexdigest(),
                "fingerprint_key_id": "k",
                "rule_id": kw.get("rule", ["aws.key", "aws.secret", "github.pat"][i % 3]),
                "description": "",
                "severity": kw.get("severity", sev[i % 4]),
                "confidence": "medium",
                "redacted": "ab********",
                "status": kw.get("status", "open"),
                # many equal timestamps: the id must break ties
                "first_seen": BASE + timedelta(minutes=i // 3),
                "last_seen": kw.get("last_seen", BASE + timedelta(minutes=i // 3)),
            }
        )
    with store.sessions() as s:
        s.execute(insert(Finding), rows)
        s.commit()
        fps = [r["fingerprint"] for r in rows]
        return [f.id for f in s.query(Finding).filter(Finding.fingerprint.in_(fps))]


def _occ(store, fid: int, source: str, target: str, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    with store.sessions() as s:
        for i in range(n):
            s.add(
                Occurrence(
                    finding_id=fid,
                    location_key=hashlib.sha256(f"{fid}{source}{target}{i}".encode()).hexdigest(),
                    source=source,
                    target=target,
                    path=f"p{i}",
                    line=i,
                )
            )
        note_sources(s, {fid: SOURCE_BITS[source]})  # as ingest does
        s.commit()


def _walk(store, flt=None, **kw) -> list[int]:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    cursor = None
    while True:
        with store.sessions() as s:
            page = Q.list_findings(s, flt, cursor=cursor, **kw)
        seen += [f.id for f in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize(
    ("sort", "order"),
    [("last_seen", "desc"), ("first_seen", "asc"), ("severity", "desc"), ("severity", "asc")],
)
def test_every_sort_walks_every_row_once_in_order(store, sort: str, order: str) -> None:  # type: ignore[no-untyped-def]
    ids = _add(store, 37)
    seen = _walk(store, sort=sort, order=order, limit=5)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    with store.sessions() as s:
        rows = {f.id: f for f in s.query(Finding)}
    rank = {v: i for i, v in enumerate(reversed(Q.SEVERITIES))}
    if sort == "severity":
        key = [(rank[rows[i].severity], rows[i].last_seen, i) for i in seen]
    else:
        key = [(getattr(rows[i], sort), i) for i in seen]
    assert key == sorted(key, reverse=order == "desc")


def test_rows_inserted_between_pages_shift_nothing(store) -> None:  # type: ignore[no-untyped-def]
    ids = _add(store, 30)
    seen: list[int] = []
    cursor = None
    batch = 100
    while True:
        with store.sessions() as s:
            page = Q.list_findings(s, cursor=cursor, limit=7)
        seen += [f.id for f in page.items]
        # newer rows, and rows as old as the oldest: neither repeats nor hides a row
        _add(store, 2, start=batch, last_seen=datetime.now(UTC))
        _add(store, 1, start=batch + 2, last_seen=BASE - timedelta(days=1))
        batch += 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)


def test_filters(store) -> None:  # type: ignore[no-untyped-def]
    ids = _add(store, 12)
    _occ(store, ids[0], "image", "registry.example.com/app:1")
    _occ(store, ids[1], "git", "https://example.com/r.git", n=3)
    _occ(store, ids[2], "git", "https://example.com/other.git")

    def of(**kw) -> set[int]:  # type: ignore[no-untyped-def]
        return set(_walk(store, Q.FindingFilter(**kw), limit=500))

    assert of(source="image") == {ids[0]}
    assert of(source="git") == {ids[1], ids[2]}
    assert of(target="https://example.com/r.git") == {ids[1]}
    assert of(target="https://example.com/r.git", source="image") == set()
    assert len(of(rule="aws.*")) == 8 and len(of(rule="aws.key")) == 4
    assert of(rule="aws") == set() and len(of(rule="a*")) == 8
    assert len(of(severity="critical")) == 3
    assert len(of(q="GITHUB")) == 4
    assert of(q="%") == set() and of(rule="aws_*") == set()
    assert len(of(since=BASE + timedelta(minutes=3))) == 3
    with pytest.raises(Q.QueryError, match="status"):
        of(status="nope")
    with pytest.raises(Q.QueryError, match="cursor"), store.sessions() as s:
        Q.list_findings(s, cursor="garbage")
    with store.sessions() as s:
        p = Q.list_findings(s, limit=2)
        assert p.next_cursor
        with pytest.raises(Q.QueryError, match="cursor"):
            Q.list_findings(s, sort="first_seen", cursor=p.next_cursor)


def test_occurrence_pages(store) -> None:  # type: ignore[no-untyped-def]
    (fid,) = _add(store, 1)
    _occ(store, fid, "git", "t", n=25)
    got, cursor = [], None
    with store.sessions() as s:
        while True:
            page = Q.occurrences_of(s, fid, limit=10, cursor=cursor)
            got += [o.id for o in page.items]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert len(got) == 25 == len(set(got)) and got == sorted(got)
        assert Q.finding_row(s, fid).occurrences_total == 25


def test_triage_rules(store) -> None:  # type: ignore[no-untyped-def]
    (fid,) = _add(store, 1)
    (rot,) = _add(store, 1, start=50, status="rotated")
    with store.sessions() as s:
        with pytest.raises(Q.QueryError, match="reason"):
            Q.triage(s, fid, "ignored", reason="  ", who="t")
        t = Q.triage(s, fid, "false_positive", reason="test fixture", who="token:ci")
        s.commit()
        assert t.previous == "open" and t.finding.status == "false_positive"
        assert t.finding.triaged_by == "token:ci" and t.finding.triaged_at is not None
        t = Q.triage(s, fid, "open", reason=None, who="token:ci")
        s.commit()
        assert t.finding.status == "open" and t.finding.triage_reason is None
        with pytest.raises(Q.Conflict, match="rotated"):
            Q.triage(s, rot, "ignored", reason="x", who="t")
        with pytest.raises(Q.NotFound):
            Q.triage(s, 999999, "open", reason=None, who="t")


def test_migration_0007_fills_sources_from_the_occurrences(empty_db_url: str) -> None:
    """A store from before findings.sources: the upgrade fills each finding's kinds from
    its occurrences (gone ones too), and the source filter finds them."""
    from sqlalchemy import text

    from sentinel.store import migrate
    from sentinel.store.session import make_engine, session_factory

    engine = make_engine(empty_db_url)
    try:
        migrate.upgrade(engine, "0006")
        with engine.begin() as c:
            for i in range(3):
                c.execute(
                    text(
                        "INSERT INTO findings (id, fingerprint, fingerprint_key_id, rule_id, "
                        "description, severity, confidence, redacted, status, first_seen, "
                        "last_seen) VALUES (:i, :fp, 'k', 'aws.key', '', 'high', 'high', "
                        "'ab**', 'open', :t, :t)"
                    ),
                    {"i": i + 1, "fp": f"{i:064d}", "t": BASE},
                )
            places = [(1, "git", None), (1, "k8s", BASE), (2, "image", None)]
            for n, (fid, source, gone) in enumerate(places):
                c.execute(
                    text(
                        "INSERT INTO occurrences (finding_id, location_key, source, target, "
                        'path, line, "column", first_seen, last_seen, gone_at) VALUES '
                        "(:f, :k, :s, 't', 'p', 1, 1, :t, :t, :g)"
                    ),
                    {"f": fid, "k": f"{n:064d}", "s": source, "t": BASE, "g": gone},
                )
        migrate.upgrade(engine)
        with engine.connect() as c:
            got = dict(c.execute(text("SELECT id, sources FROM findings")).all())
        assert got == {1: 1 | 8, 2: 4, 3: 0}
        with session_factory(engine)() as s:
            ids = {r.id for r in Q.list_findings(s, Q.FindingFilter(source="k8s")).items}
            assert ids == {1}
            ids = {r.id for r in Q.list_findings(s, Q.FindingFilter(source="file")).items}
            assert ids == set()
    finally:
        engine.dispose()
