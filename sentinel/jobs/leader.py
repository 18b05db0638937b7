"""Who schedules: one ``sentinel serve`` per database holds the lead, the others wait.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a
  connection of its own. It lasts as long as that connection: a leader that dies (even
  by SIGKILL) loses it as soon as the server sees the connection close, and a follower
  takes it at its next try.
- SQLite: a row in ``leases`` (holder, expires_at) that the leader renews every
  heartbeat. A follower takes the row over once ``expires_at`` has passed; a leader
  whose renewal finds another holder, or that could not renew before its own expiry,
  has lost the lead.

``Leadership`` runs the loop on a daemon thread and calls ``on_elected`` /
``on_lost``; both are called from that thread only, never at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("sentinel.scheduler")

LEASE_NAME = "scheduler"
# pg_try_advisory_lock(bigint): a fixed key, "sentinel" folded into 63 bits
ADVISORY_KEY = int.from_bytes(b"sentinel", "big") & 0x7FFF_FFFF_FFFF_FFFF


def holder_id() -> str:
    """This process, as it appears in the lease row and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lock(Protocol):
    def acquire(self) -> bool:
        """Take the lead if it is free; True when this process holds it afterwards."""

    def renew(self) -> bool:
        """Keep the lead; False when it is lost."""

    def release(self) -> None: ...


class AdvisoryLock:
    """PostgreSQL: an advisory lock on a dedicated autocommit connection."""

    def __init__(self, url: str, key: int = ADVISORY_KEY, connect_timeout: float = 10) -> None:
        self.url = url
        self.key = key
        self.connect_timeout = connect_timeout
        self._conn: Any = None

    def _conninfo(self) -> str:
        from sqlalchemy.engine import make_url

        u = make_url(self.url).set(drivername="postgresql")
        return u.render_as_string(hide_password=False)

    def acquire(self) -> bool:
        import psycopg

        self._close()
        try:
            conn = psycopg.connect(
                self._conninfo(),
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout)),
                # a half-open connection (network gone) is noticed, not waited on forever
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                application_name="sentinel-scheduler",
            )
        except psycopg.Error as exc:
            log.warning("scheduler lock: cannot connect: %s", type(exc).__name__)
            return False
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as exc:
            log.warning("scheduler lock: %s", type(exc).__name__)
            conn.close()
            return False
        if not (row and row[0]):
            conn.close()
            return False
        self._conn = conn
        return True

    def renew(self) -> bool:
        import psycopg

        if self._conn is None:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted"
            ).fetchone()
        except psycopg.Error:
            self._close()
            return False
        if not (row and row[0]):
            self._close()
            return False
        return True

    def release(self) -> None:
        import psycopg

        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # closing a broken connection: nothing left to do if it fails
            with contextlib.suppress(Exception):
                conn.close()


class LeaseLock:
    """SQLite (and any database): the ``leases`` row, renewed by heartbeat."""

    def __init__(
        self, engine: Engine, lease_seconds: float, holder: str, name: str = LEASE_NAME
    ) -> None:
        from sentinel.store.session import session_factory

        self.sessions = session_factory(engine)
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = holder
        self.name = name
        self._expires: float | None = None  # monotonic deadline of what we hold

    def acquire(self) -> bool:
        return self._take(takeover=True)

    def renew(self) -> bool:
        if self._expires is not None and time.monotonic() >= self._expires:
            # could not renew in time: someone may hold it now, so act as if they do
            self._expires = None
            return False
        ok = self._take(takeover=False)
        if not ok:
            self._expires = None
        return ok

    def _take(self, *, takeover: bool) -> bool:
        from sqlalchemy.exc import SQLAlchemyError

        from sentinel.store.models import Lease, utcnow
        from sentinel.store.session import writing

        started = time.monotonic()
        try:
            with self.sessions() as s:
                writing(s)
                now = utcnow()
                row = s.get(Lease, self.name)
                if row is None:
                    s.add(
                        Lease(
                            name=self.name,
                            holder=self.holder,
                            expires_at=now + self.lease,
                            acquired_at=now,
                        )
                    )
                elif row.holder == self.holder:
                    row.expires_at = now + self.lease
                elif takeover and row.expires_at <= now:
                    log.info("scheduler lease of %s expired; taking it over", row.holder)
                    row.holder = self.holder
                    row.expires_at = now + self.lease
                    row.acquired_at = now
                else:
                    return False
                s.commit()
        except SQLAlchemyError as exc:
            log.warning("scheduler lease: %s", type(exc).__name__)
            return False
        self._expires = started + self.lease.total_seconds()
        return True

    def release(self) -> None:
        from sqlalchemy import delete
        from sqlalchemy.exc import SQLAlchemyError

        from sentinel.store.models import Lease
        from sentinel.store.session import writing

        self._expires = None
        try:
            with self.sessions() as s:
                writing(s)
                s.execute(delete(Lease).where(Lease.name == self.name, Lease.holder == self.holder))
                s.commit()
        except SQLAlchemyError as exc:
            log.warning("scheduler lease: release failed: %s", type(exc).__name__)


def lock_for(engine: Engine, url: str, lease_seconds: float, holder: str) -> Lock:
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(url)
    return LeaseLock(engine, lease_seconds, holder)


class Leadership:
    """Try for the lead every ``heartbeat`` seconds; hold it by renewing as often."""

    def __init__(
        self,
        lock: Lock,
        heartbeat: float,
        on_elected: Callable[[], object],
        on_lost: Callable[[], object],
        holder: str = "",
    ) -> None:
        self.lock = lock
        self.heartbeat = heartbeat
        self.on_elected = on_elected
        self.on_lost = on_lost
        self.holder = holder
        self.leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sentinel-leader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # the loop must outlive any one failure
                log.error("scheduler leadership: %s", type(exc).__name__)
                if self.leading:
                    self._lose()
            self._stop.wait(self.heartbeat)

    def _step(self) -> None:
        if self.leading:
            if not self.lock.renew():
                log.warning("scheduler: lost the lead (%s); scheduling stopped", self.holder)
                self._lose()
            return
        if self.lock.acquire():
            self.leading = True
            log.info("scheduler: this process leads (%s)", self.holder)
            try:
                self.on_elected()
            except Exception:
                self._lose()
                self.lock.release()
                raise

    def _lose(self) -> None:
        self.leading = False
        self.on_lost()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.heartbeat * 2))
        if self.leading:
            self._lose()
            self.lock.release()
