"""Databases for store and service tests: every test that takes ``db_url`` runs twice,
on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth).

The test session migrates one template database per backend; each test gets its own
copy (PostgreSQL ``CREATE DATABASE ... TEMPLATE``, a file copy for SQLite) and it is
dropped afterwards. ``empty_db_url`` is an unmigrated database, for migration tests.
Without PostgreSQL the PostgreSQL half skips, saying why, unless
``SENTINEL_REQUIRE_SERVICES=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_HOST = os.environ.get("SENTINEL_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("SENTINEL_TEST_PG_USER", "postgres")
PG_ADMIN = f"host={PG_HOST} port=5432 user={PG_USER} dbname=postgres connect_timeout=5"
BACKENDS = ["sqlite", "postgresql"]


def pg_url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:5432/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def _pg_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to reach it is a reason to skip
        return f"PostgreSQL at {PG_HOST}:5432 is not reachable: {type(exc).__name__}"
    return None


def _need_pg() -> None:
    why = _pg_unavailable()
    if why is None:
        return
    if os.environ.get("SENTINEL_REQUIRE_SERVICES") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _migrate(url: str) -> None:
    from sentinel.store import migrate
    from sentinel.store.session import make_engine

    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    made: dict[str, str] = {}
    yield made
    if "postgresql" in made:
        _admin(f'DROP DATABASE IF EXISTS "{made["postgresql"]}" WITH (FORCE)')


def _template(backend: str, templates: dict[str, str], tmp: pytest.TempPathFactory) -> str:
    if backend in templates:
        return templates[backend]
    if backend == "sqlite":
        path = tmp.mktemp("db-template") / "sentinel.db"
        _migrate(f"sqlite:///{path}")
        templates[backend] = str(path)
    else:
        name = f"sentinel_tmpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _admin(f'CREATE DATABASE "{name}"')
        _migrate(pg_url(name))
        templates[backend] = name
    return templates[backend]


def _fresh(backend: str, tmp_path: Path, template: str | None) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "db" / "sentinel.db"
        path.parent.mkdir()
        if template:
            shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    name = f"sentinel_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield pg_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    _templates: dict[str, str],
) -> Iterator[str]:
    """A migrated, empty store of its own (one run per backend)."""
    if request.param == "postgresql":
        _need_pg()
    template = _template(request.param, _templates, tmp_path_factory)
    yield from _fresh(request.param, tmp_path, template)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (one run per backend)."""
    if request.param == "postgresql":
        _need_pg()
    yield from _fresh(request.param, tmp_path, None)


@pytest.fixture
def store_env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The environment of an installation using ``db_url``: a private fingerprint key
    and an encryption key, inherited by subprocesses (the CLI, ``sentinel serve``)."""
    monkeypatch.setenv("SENTINEL_DATABASE_URL", db_url)
    monkeypatch.setenv("SENTINEL_FINGERPRINT_KEY", "test-installation-key-" + uuid.uuid4().hex)
    monkeypatch.setenv("SENTINEL_ENCRYPTION_KEY", os.urandom(32).hex())
    return db_url


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    """An engine and session factory on ``db_url``: ``store.engine``, ``store.sessions``."""
    from types import SimpleNamespace

    from sentinel.store.session import make_engine, session_factory

    engine = make_engine(db_url)
    yield SimpleNamespace(engine=engine, sessions=session_factory(engine), url=db_url)
    engine.dispose()
