"""The narrow job interface: whoever runs scans (a thread pool inside ``sentinel serve``
today, Celery workers later) takes a queued Scan row's id and nothing else; the row
holds what to scan, so a job is idempotent and can be retried or taken over."""

from __future__ import annotations

from typing import Protocol


class QueueFull(Exception):
    """No room for another job now; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, depth: int) -> None:
        super().__init__(f"the scan queue is full ({depth} waiting)")
        self.retry_after = retry_after
        self.depth = depth


class JobRunner(Protocol):
    def submit_scan(self, scan_id: str) -> None:
        """Run the queued scan ``scan_id``; raises QueueFull when there is no room."""

    def depth(self) -> int:
        """Jobs accepted and not finished (waiting or running)."""

    def shutdown(self, wait: bool = True) -> None: ...


class TargetDispatcher(Protocol):
    """Where a sweep's targets run: threads here (``sentinel.jobs.inprocess``) or one
    Celery task per target (``sentinel.jobs.celery_app``). A submission names the sweep
    and the target's key, nothing else: the store's sweep_targets row holds the rest, so
    a task can be delivered twice, retried or taken over by another worker, and
    ``sentinel.sweeps.run.run_target`` makes the second run a no-op."""

    def submit_target(self, sweep_id: str, target_key: str, kind: str) -> None:
        """Queue one target (``kind`` routes it: git, image, cluster)."""

    def shutdown(self, wait: bool = True) -> None: ...
