"""The findings store through the CLI a user runs: migrations, idempotent ingest,
occurrences marked gone, triage surviving rescans, sealed values and key rotation.
Every test runs on SQLite and on PostgreSQL (tests/storefixtures.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sentinel.store import migrate
from sentinel.store.models import Finding, Occurrence, Scan
from tests.conftest import run_cli, token

HEAD = migrate.head()


def _count(store, model, *where) -> int:  # type: ignore[no-untyped-def]
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_db_current_and_upgrade(empty_db_url: str) -> None:
    env = {"SENTINEL_DATABASE_URL": empty_db_url}
    before = run_cli("db", "current", env=env)
    assert before.returncode == 1
    assert "empty" in before.stdout and "sentinel db upgrade" in before.stdout
    up = run_cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert f"upgraded empty -> {HEAD}" in up.stdout
    again = run_cli("db", "upgrade", env=env)
    assert f"already at {HEAD}" in again.stdout
    now = run_cli("db", "current", env=env)
    assert now.returncode == 0 and "(current)" in now.stdout
    if empty_db_url.startswith("postgresql"):
        assert "@" in now.stdout and "password" not in now.stdout


def test_two_processes_upgrading_at_once_do_not_race(empty_db_url: str) -> None:
    env = dict(os.environ, SENTINEL_DATABASE_URL=empty_db_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli.main", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum(f"upgraded empty -> {HEAD}" in o for o, _ in outs) == 1, outs
    assert run_cli("db", "current", env={"SENTINEL_DATABASE_URL": empty_db_url}).returncode == 0


def test_the_models_match_the_migrations(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sentinel.store.models import Base
    from sentinel.store.session import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_a_bad_database_url_is_one_line() -> None:
    r = run_cli("db", "current", env={"SENTINEL_DATABASE_URL": "mysql://x@127.0.0.1/y"})
    assert r.returncode == 2
    assert r.stderr.count("\n") <= 2 and "unsupported database" in r.stderr
    assert "Traceback" not in r.stderr


def test_scan_store_is_idempotent_and_marks_gone(store_env: str, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gh = token("ghp", 11)
    npm = token("npm", 12)
    work = tmp_path / "w"
    work.mkdir()
    (work / "a.env").write_text(f"GITHUB_TOKEN={gh}\n")
    (work / "b.env").write_text(f"GITHUB_TOKEN={gh}\nNPM_TOKEN={npm}\n")

    first = run_cli("scan", "path", str(work), "--store", "-f", "json")
    assert first.returncode == 1, first.stderr
    assert "3 new occurrence(s), 2 new finding(s), 0 gone" in first.stderr
    second = run_cli("scan", "path", str(work), "--store", "-f", "json")
    assert "0 new occurrence(s), 0 new finding(s), 0 gone" in second.stderr
    assert _count(store, Finding) == 2
    assert _count(store, Occurrence) == 3
    assert _count(store, Scan) == 2

    (work / "b.env").write_text("nothing here\n")
    third = run_cli("scan", "path", str(work), "--store", "-f", "json")
    assert "0 new occurrence(s), 0 new finding(s), 2 gone" in third.stderr
    assert _count(store, Occurrence) == 3  # marked, never deleted
    assert _count(store, Occurrence, Occurrence.gone_at.is_not(None)) == 2

    (work / "b.env").write_text(f"GITHUB_TOKEN={gh}\nNPM_TOKEN={npm}\n")
    run_cli("scan", "path", str(work), "--store", "-f", "json")
    assert _count(store, Occurrence, Occurrence.gone_at.is_not(None)) == 0
    assert _count(store, Occurrence) == 3


def test_one_secret_in_two_repositories_is_one_finding(store_env: str, store, git_repo) -> None:  # type: ignore[no-untyped-def]
    gh = token("ghp", 21)
    paths = set()
    for name in ("one", "two"):
        repo = git_repo(name)
        paths.add(str(repo.path.resolve()))
        repo.commit("add", {"deploy.sh": f"export GH={gh}\n"})
        r = run_cli("scan", "git", str(repo.path), "--store", "-f", "json")
        assert r.returncode == 1, r.stderr
    assert _count(store, Finding) == 1
    with store.sessions() as s:
        occ = list(s.scalars(select(Occurrence)))
    assert {o.target for o in occ} == paths
    assert all(o.commit and o.author == "Ann Author" and o.path == "deploy.sh" for o in occ)


def test_a_partial_history_scan_marks_nothing_gone(store_env: str, store, git_repo) -> None:  # type: ignore[no-untyped-def]
    repo = git_repo("r")
    repo.commit("one", {"a.sh": f"T={token('ghp', 31)}\n"})
    repo.git("checkout", "-q", "-b", "side")
    repo.commit("two", {"b.sh": f"T={token('ghp', 32)}\n"})
    run_cli("scan", "git", str(repo.path), "--store", "-f", "json")
    r = run_cli("scan", "git", str(repo.path), "--branch", "main", "--store", "-f", "json")
    assert ", 0 gone" in r.stderr
    assert _count(store, Occurrence, Occurrence.gone_at.is_not(None)) == 0


def test_triage_survives_a_rescan(store_env: str, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "x.env"
    f.write_text(f"GITHUB_TOKEN={token('ghp', 41)}\n")
    run_cli("scan", "path", str(f), "--store", "-f", "json")
    with store.sessions() as s:
        row = s.scalars(select(Finding)).one()
        row.status, row.triaged_by, row.triage_reason = "false_positive", "ann", "test value"
        row.triaged_at = datetime.now(UTC)
        s.commit()
    run_cli("scan", "path", str(f), "--store", "-f", "json")
    with store.sessions() as s:
        row = s.scalars(select(Finding)).one()
    assert (row.status, row.triaged_by, row.triage_reason) == (
        "false_positive",
        "ann",
        "test value",
    )
    assert row.last_seen > row.first_seen


def test_only_rotatable_values_are_kept_sealed(store_env: str, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gh = token("ghp", 51)  # github.pat-classic has a revoker
    pw = "hunter2-Very-Long-Passw0rd-xyz"
    f = tmp_path / "x.env"
    f.write_text(f"GITHUB_TOKEN={gh}\nDB_PASSWORD={pw}\n")
    run_cli("scan", "path", str(f), "--store", "-f", "json")
    with store.sessions() as s:
        rows = {r.rule_id: r for r in s.scalars(select(Finding))}
    sealed = [r for r in rows.values() if r.secret_sealed]
    assert [r.rotator for r in sealed] and all(r.secret_key_id for r in sealed)
    assert all(r.secret_sealed is None for r in rows.values() if not r.rotator)
    from sentinel.store.crypto import SealError, load_keyring

    ring = load_keyring()
    gh_row = next(r for r in sealed if r.rule_id.startswith("github"))
    assert ring.open(gh_row.secret_sealed, gh_row.fingerprint) == gh
    with pytest.raises(SealError):  # bound to its row
        ring.open(gh_row.secret_sealed, "0" * 64)
    if store_env.startswith("sqlite"):
        raw = b"".join(
            p.read_bytes() for p in Path(store_env[len("sqlite:///") :]).parent.glob("sentinel.db*")
        )
        assert gh.encode() not in raw and pw.encode() not in raw


def test_without_an_encryption_key_no_value_is_kept(
    store_env, store, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SENTINEL_ENCRYPTION_KEY")
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path / "home"))
    f = tmp_path / "x.env"
    f.write_text(f"GITHUB_TOKEN={token('ghp', 61)}\n")
    r = run_cli("scan", "path", str(f), "--store", "-f", "json")
    assert "not kept: no encryption key" in r.stderr
    assert _count(store, Finding, Finding.secret_sealed.is_not(None)) == 0


def test_keys_rotate_reseals_every_value_and_resumes(
    store_env, store, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SENTINEL_ENCRYPTION_KEY")
    keyfile = tmp_path / "enc.keys"
    monkeypatch.setenv("SENTINEL_ENCRYPTION_KEY_FILE", str(keyfile))
    keyfile.write_text(run_cli("keys", "generate").stdout)
    f = tmp_path / "x.env"
    f.write_text("".join(f"T{i}={token('ghp', 100 + i)}\n" for i in range(7)))
    run_cli("scan", "path", str(f), "--store", "-f", "json")
    from sentinel.store.crypto import load_keyring

    old = load_keyring().current
    assert _count(store, Finding, Finding.secret_key_id == old) == 7

    r = run_cli("keys", "rotate", "--batch", "3")
    assert r.returncode == 0, r.stderr
    new = load_keyring().current
    assert new != old and keyfile.stat().st_mode & 0o777 == 0o600
    assert _count(store, Finding, Finding.secret_key_id == new) == 7
    assert f"re-sealed 7 value(s) under {new}; 0 left" in r.stdout

    # stopped half way: rows still under the older key are picked up by a second run
    from sentinel.store.facade import open_store

    ring = load_keyring()
    with store.sessions() as s:
        rows = list(s.scalars(select(Finding).order_by(Finding.id).limit(4)))
        from sentinel.store.crypto import Keyring

        older = Keyring.of([ring.keys[old]], "old")  # type: ignore[index]
        for row in rows:
            plain = ring.open(row.secret_sealed, row.fingerprint)  # type: ignore[arg-type]
            row.secret_sealed, row.secret_key_id = older.seal(plain, row.fingerprint)
        s.commit()
    st = run_cli("keys", "status")
    assert f"{old}: 4 value(s) (configured)" in st.stdout
    again = run_cli("keys", "rotate", "--no-new")
    assert f"re-sealed 4 value(s) under {new}; 0 left" in again.stdout
    opened = open_store()
    try:
        with opened.sessions() as s:
            values = [
                opened.keyring.open(r.secret_sealed, r.fingerprint)
                for r in s.scalars(select(Finding))
            ]  # type: ignore[arg-type]
    finally:
        opened.close()
    assert sorted(values) == sorted(token("ghp", 100 + i) for i in range(7))


def test_store_refuses_the_public_key_and_a_foreign_key(store_env, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "x.env"
    f.write_text(f"GITHUB_TOKEN={token('ghp', 71)}\n")
    assert run_cli("scan", "path", str(f), "--store", "-f", "json").returncode == 1
    other = run_cli(
        "scan",
        "path",
        str(f),
        "--store",
        "-f",
        "json",
        env={"SENTINEL_FINGERPRINT_KEY": "some-other-installation-key"},
    )
    assert (
        other.returncode == 2 and "this store's findings are under fingerprint key" in other.stderr
    )
    from sentinel.fingerprint import PUBLIC_KEY

    public = run_cli(
        "scan",
        "path",
        str(f),
        "--store",
        "-f",
        "json",
        env={"SENTINEL_FINGERPRINT_KEY": PUBLIC_KEY.decode()},
    )
    assert public.returncode == 2 and "built-in public one" in public.stderr


def test_concurrent_stores_of_the_same_secret_make_one_finding(store_env, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "w"
    work.mkdir()
    (work / "a.env").write_text("".join(f"T{i}={token('ghp', 300 + i)}\n" for i in range(20)))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel.cli.main",
                "scan",
                "path",
                str(work),
                "--store",
                "-f",
                "json",
                "-o",
                os.devnull,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [1, 1, 1, 1], outs
    assert _count(store, Finding) == 20
    assert _count(store, Occurrence) == 20
    assert _count(store, Scan) == 4
    # each finding is new to exactly one of the four scans
    assert sum(int(e.split(" new finding")[0].rsplit(", ", 1)[1]) for _, e in outs) == 20


def test_first_scans_at_once_agree_on_the_key_without_an_error(store) -> None:  # type: ignore[no-untyped-def]
    """Regression: the first writer records which fingerprint key the store is under.
    On PostgreSQL a check-then-insert let two first scans both insert, and one died
    with a unique violation; now every opener either inserts or reads the same row."""
    import threading

    from sentinel.fingerprint import FingerprintKey
    from sentinel.store import facade
    from sentinel.store.models import Setting

    with store.sessions() as s:
        s.query(Setting).delete()
        s.commit()
    key = FingerprintKey(b"k" * 32, "test")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_open() -> None:
        barrier.wait()
        try:
            facade._check_key(store.sessions, key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_open) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _count(store, Setting) == 1
    other = FingerprintKey(b"o" * 32, "another")
    with pytest.raises(Exception, match="under fingerprint key"):
        facade._check_key(store.sessions, other)
