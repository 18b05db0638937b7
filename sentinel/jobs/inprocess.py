"""The embedded default: scans run on a bounded thread pool inside ``sentinel serve``
(each thread waits on a child process, so the threads cost nothing while scanning)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sentinel.jobs.base import QueueFull

if TYPE_CHECKING:
    from sentinel.jobs.scan import Outcome
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.jobs")


class InProcessRunner:
    def __init__(
        self,
        store: Store,
        settings: ServiceSettings,
        *,
        on_done: list[Callable[[Outcome], object]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.workers = settings.service.workers
        self.capacity = settings.service.workers + settings.service.queue_size
        self.on_done = list(on_done or [])
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sentinel-scan")
        self._lock = threading.Lock()
        self._pending = 0
        from sentinel.jobs.leader import holder_id
        from sentinel.jobs.recovery import RunnerLease

        # the scans this runner accepts carry its name; its lease says it is alive
        self.holder = holder_id()
        self._lease = RunnerLease(store, self.holder, settings.scheduler.lease_seconds)

    def depth(self) -> int:
        with self._lock:
            return self._pending

    def submit_scan(self, scan_id: str) -> None:
        with self._lock:
            if self._pending >= self.capacity:
                raise QueueFull(retry_after=self._retry_after(), depth=self._pending)
            self._pending += 1
        try:
            from sentinel.jobs.recovery import stamp

            self._lease.ensure_started()
            stamp(self.store, scan_id, self.holder)
            self._pool.submit(self._run, scan_id)
        except RuntimeError:  # shutting down
            with self._lock:
                self._pending -= 1
            raise QueueFull(retry_after=30, depth=self.depth()) from None
        except BaseException:  # the database refused the stamp: not accepted
            with self._lock:
                self._pending -= 1
            raise

    def _retry_after(self) -> int:
        # a rough wait: one scan slot frees up in about this long
        return max(1, min(300, 5 * (self._pending - self.workers + 1)))

    def _run(self, scan_id: str) -> None:
        from sentinel.jobs.scan import Outcome, run_scan

        try:
            outcome = run_scan(self.store, self.settings, scan_id)
        except Exception as exc:  # never lose the pool thread; the row says what happened
            log.error("scan %s crashed: %s", scan_id, type(exc).__name__)
            outcome = Outcome(scan_id, "failed", None, type(exc).__name__)
        finally:
            with self._lock:
                self._pending -= 1
        for cb in self.on_done:
            try:
                cb(outcome)
            except Exception as exc:  # an alert or a metric must never fail a scan
                log.error("after scan %s: %s failed: %s", scan_id, cb, type(exc).__name__)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        # scans still queued here are the next leader's to run again, without waiting
        # out the lease
        self._lease.stop()
