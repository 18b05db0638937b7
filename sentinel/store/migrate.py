"""Schema migrations (Alembic), applied under a lock so that two processes starting at
once do not race: PostgreSQL's advisory lock, or an exclusive lock on a file beside the
SQLite database."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x53454E54  # "SENT"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str:
    """The newest revision this installation ships. Read once per process: reading the
    migrations directory was most of a GET /readyz (14 ms of CPU)."""
    from alembic.script import ScriptDirectory

    h = ScriptDirectory.from_config(_config()).get_current_head()
    assert h is not None
    return h


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class Status:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def status(engine: Engine) -> Status:
    return Status(current(engine), head())


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the installation-wide migration lock."""
    from sentinel.store.session import sqlite_path

    path = sqlite_path(str(engine.url))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_ID})")
            conn.commit()
            try:
                yield conn
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_ID})")
                conn.commit()
        return
    lock_file = (path.parent / (path.name + ".migrate.lock")) if path else None
    fd = -1
    if lock_file is not None:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with migration_lock(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if conn.in_transaction():
            conn.commit()
        command.upgrade(_config(conn), revision)
        if conn.in_transaction():
            conn.commit()
        after = MigrationContext.configure(conn).get_current_revision()
        if conn.in_transaction():
            conn.commit()
    return before, after or ""
