"""Where the store lives and how to connect to it.

``SENTINEL_DATABASE_URL`` names the database (``postgresql://...`` is taken through
psycopg 3); without it the store is ``$SENTINEL_HOME/sentinel.db``, a SQLite file in WAL
mode (readers never wait for the writer; nothing to install).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

ENV_URL = "SENTINEL_DATABASE_URL"
SQLITE_NAME = "sentinel.db"


def database_url(url: str | None = None) -> str:
    """The configured database URL, normalised for SQLAlchemy."""
    from sentinel.errors import ConfigError
    from sentinel.fingerprint import sentinel_home

    raw = url or os.environ.get(ENV_URL)
    if not raw:
        return f"sqlite:///{sentinel_home() / SQLITE_NAME}"
    raw = raw.strip()
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    if raw.startswith(("postgresql+psycopg://", "sqlite:///", "sqlite://")):
        return raw
    scheme = raw.split(":", 1)[0] if ":" in raw else raw[:20]
    raise ConfigError(
        f"{ENV_URL}: unsupported database {scheme!r}",
        "use postgresql://user@host/dbname or sqlite:///path/to/sentinel.db",
    )


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str | None = None, **kw: Any) -> Engine:
    from sqlalchemy import create_engine, event

    url = database_url(url)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # the store holds fingerprints and sealed secrets: only its owner reads it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # let SQLAlchemy, not pysqlite, decide when a transaction starts
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # a writer takes the write lock at its start (see ``writing``): two writers
            # queue on busy_timeout instead of one failing with "database is locked" when
            # it upgrades a read transaction; readers begin deferred and never wait (WAL)
            if conn.get_execution_options().get("sentinel_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    # prepare_threshold None: psycopg would otherwise prepare a statement after five runs,
    # and PostgreSQL's generic plan for "key IN (500 parameters)" is a sequential scan
    return create_engine(url, connect_args={"connect_timeout": 10, "prepare_threshold": None}, **kw)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def writing(session: Session) -> Session:
    """Mark ``session``'s transaction as one that writes; call it first thing."""
    session.connection(execution_options={"sentinel_write": True})
    return session
