"""Alerts off the caller's thread, for ``sentinel serve``.

``Alerter.submit(scan_id)`` queues a stored scan for ``dispatch_scan`` and returns at
once (an API request or a scan worker never waits on Slack); one daemon thread drains
the bounded queue. ``tick`` runs ``retry_due`` and ``pending_findings``: the leader's
scheduler runs it every ``poll_seconds`` (sentinel.service_hooks). Anything lost here (a full queue, a process killed
mid-send) is caught up from the store: a finding without a delivery by
``pending_findings``, a claimed delivery whose sender died by ``retry_due``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sentinel.alerts.dispatch import Tally, dispatch_scan, pending_findings, retry_due

if TYPE_CHECKING:
    from sentinel.alerts.routing import AlertsConfig
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.alerts")

OnTally = Callable[[Tally], object]


class Alerter:
    def __init__(
        self,
        store: Store,
        cfg: AlertsConfig,
        public_url: str | None,
        on_tally: OnTally | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.public_url = public_url
        self.on_tally = on_tally
        self._queue: queue.Queue[str] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, scan_id: str) -> None:
        """Queue ``scan_id`` for alerting; never blocks, never raises."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="sentinel-alerts-dispatch", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(scan_id)
        except queue.Full:
            log.warning("alerts: queue full; scan %s is alerted by the next catch-up", scan_id)

    def _work(self) -> None:
        while True:
            scan_id = self._queue.get()
            try:
                tally = dispatch_scan(self.store, self.cfg, scan_id, self.public_url)
                if self.on_tally is not None:
                    self.on_tally(tally)
            except Exception as exc:  # the store is down, say: the catch-up retries
                log.error("alerts for scan %s failed: %s", scan_id, type(exc).__name__)


def tick(
    store: Store, cfg: AlertsConfig, public_url: str | None, on_tally: OnTally | None = None
) -> Tally:
    """One round of background work: due retries, then findings with no delivery."""
    tally = retry_due(store, cfg, public_url=public_url)
    tally += pending_findings(store, cfg, public_url)
    if on_tally is not None:
        on_tally(tally)
    return tally
