"""Scans a dead process left unfinished are queued again, once, on a live runner.

Every job runner holds a lease row ``runner:<holder>`` that it renews while it lives,
and stamps the scans it accepts with its holder (``scans.runner``). The scheduler's
leader looks, when elected and then every heartbeat, for queued or running scans
whose runner's lease has lapsed (its process died, or stopped with work in its
queue), or that no runner ever took (the process died between storing the row and
handing it over), and hands them to its own runner. Ingest is idempotent, so a scan
that was half stored is stored once; ``run_scan`` skips one that finished meanwhile.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sentinel.jobs.base import QueueFull

if TYPE_CHECKING:
    from sentinel.jobs.leader import LeaseLock
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.jobs")

LEASE_PREFIX = "runner:"


class HoldingRunner(Protocol):
    """A runner that stamps each scan it accepts with ``holder`` (see ``stamp``)."""

    holder: str

    def submit_scan(self, scan_id: str) -> None: ...


class RunnerLease:
    """The ``runner:<holder>`` lease, renewed on a daemon thread until ``stop()``."""

    def __init__(self, store: Store, holder: str, lease_seconds: float) -> None:
        from sentinel.jobs.leader import LeaseLock

        self.lease_seconds = lease_seconds
        self._lock: LeaseLock = LeaseLock(
            store.engine, lease_seconds, holder, name=LEASE_PREFIX + holder
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def ensure_started(self) -> None:
        """Take the lease now (so the scans stamped next are covered) and keep it."""
        with self._start_lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._lock.acquire()
            self._thread = threading.Thread(
                target=self._loop, name="sentinel-runner-lease", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        every = max(0.2, self.lease_seconds / 3)
        while not self._stop.wait(every):
            try:
                if not self._lock.renew():
                    # lapsed (the database was away longer than the lease): take it again;
                    # the leader may have queued our scans elsewhere meanwhile, which
                    # run_scan and idempotent ingest make harmless
                    self._lock.acquire()
            except Exception as exc:  # the lease must outlive any one failure
                log.warning("runner lease: %s", type(exc).__name__)

    def stop(self) -> None:
        """Stop renewing and give the lease up, so the leader need not wait it out."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
            self._lock.release()


def stamp(store: Store, scan_id: str, holder: str) -> None:
    """Record that ``holder``'s runner holds ``scan_id`` (if it is still unfinished)."""
    from sqlalchemy import update

    from sentinel.store.models import Scan
    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        s.execute(
            update(Scan)
            .where(Scan.id == scan_id, Scan.status.in_(("queued", "running")))
            .values(runner=holder)
        )
        s.commit()


def orphans(store: Store, lease_seconds: float) -> list[str]:
    """Ids of unfinished scans no live runner holds, oldest first."""
    from sqlalchemy import or_, select

    from sentinel.store.models import Lease, Scan, utcnow

    now = utcnow()
    live = (
        select(Lease.name)
        .where(Lease.name == LEASE_PREFIX + Scan.runner, Lease.expires_at > now)
        .exists()
    )
    with store.sessions() as s:
        return list(
            s.scalars(
                select(Scan.id)
                .where(
                    Scan.status.in_(("queued", "running")),
                    or_(
                        # stored, then never handed to a runner (give the request time)
                        (Scan.runner.is_(None))
                        & (Scan.created_at < now - timedelta(seconds=lease_seconds)),
                        Scan.runner.is_not(None) & ~live,
                    ),
                )
                .order_by(Scan.created_at, Scan.id)
            )
        )


def requeue_orphans(store: Store, runner: HoldingRunner, lease_seconds: float) -> list[str]:
    """Hand every orphaned scan to ``runner``; the ids handed over. A full queue leaves
    the rest for the next pass."""
    from sqlalchemy import update

    from sentinel.store.models import Scan
    from sentinel.store.session import writing

    taken: list[str] = []
    for sid in orphans(store, lease_seconds):
        with store.sessions() as s:
            writing(s)
            # what it is until the runner starts it; its runner stays the dead one until
            # a live runner stamps it, so a refusal below leaves it for the next pass
            s.execute(
                update(Scan)
                .where(Scan.id == sid, Scan.status.in_(("queued", "running")))
                .values(status="queued")
            )
            s.commit()
        try:
            runner.submit_scan(sid)
        except QueueFull:
            log.warning("recovery: the scan queue is full; %s waits for the next pass", sid)
            break
        taken.append(sid)
    if taken:
        log.info("recovery: %d unfinished scan(s) queued again: %s", len(taken), ", ".join(taken))
    return taken
