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


BUSY_TIMEOUT_MS = 30_000  # SQLite: how long a writer waits for the write lock


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


def make_engine(url: str | None = None, *, prepare: bool = False, **kw: Any) -> Engine:
    """The store's engine. ``prepare``: PostgreSQL prepares a statement run five times
    on a connection (psycopg's default), for an engine whose statements are all keyed
    and bounded (the event loop's reads); otherwise never."""
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
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # a writer takes the write lock at its start (see ``writing``): two writers
            # queue on busy_timeout instead of one failing with "database is locked" when
            # it upgrades a read transaction; readers begin deferred and never wait (WAL)
            opts = conn.get_execution_options()
            if not opts.get("sentinel_write"):
                conn.exec_driver_sql("BEGIN")
            elif opts.get("sentinel_nowait"):
                # ``writing_nowait``: the lock now or "database is locked" at once
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    # prepare_threshold None: psycopg would otherwise prepare a statement after five runs,
    # and PostgreSQL's generic plan for "key IN (500 parameters)" is a sequential scan
    threshold = 5 if prepare else None
    return create_engine(
        url, connect_args={"connect_timeout": 10, "prepare_threshold": threshold}, **kw
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def writing(session: Session) -> Session:
    """Mark ``session``'s transaction as one that writes; call it first thing."""
    session.connection(execution_options={"sentinel_write": True})
    return session


# how long a write waits for a lock held by another transaction before it gives up and
# goes to the thread pool (``writing_nowait``): on PostgreSQL a row lock, on SQLite the
# database's write lock (which it does not wait for at all)
NOWAIT_LOCK_TIMEOUT_MS = 20


def writing_nowait(session: Session) -> Session:
    """``writing`` for a transaction run on the event loop, which must not wait long
    for a lock: SQLite's write lock is taken now or the begin fails at once; on
    PostgreSQL a row lock waits at most NOWAIT_LOCK_TIMEOUT_MS. Both fail with an error
    ``lock_busy`` recognises; the caller then runs the write in a thread instead."""
    opts: dict[str, Any] = {"sentinel_write": True, "sentinel_nowait": True}
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        opts["isolation_level"] = "READ COMMITTED"  # the loop pool reads in autocommit
    conn = session.connection(execution_options=opts)
    if pg:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{NOWAIT_LOCK_TIMEOUT_MS}ms'")
    return session


def lock_busy(exc: BaseException) -> bool:
    """``exc`` is a lock ``writing_nowait`` did not get: SQLite's "database is locked"
    or PostgreSQL's lock_not_available (55P03)."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text
