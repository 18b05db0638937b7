"""APScheduler 3 as the leader runs it (imported only when a scheduler starts)."""

from __future__ import annotations

from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING


class LeaderScheduler(BackgroundScheduler):  # type: ignore[misc]
    """A BackgroundScheduler that touches no job unless it is running.

    APScheduler 3's loop looks for due jobs once more after ``shutdown()`` wakes it; a
    due job would then be run by a process that no longer leads, or (its executor
    already shut down) skipped with its next run time moved on, and that run lost.
    """

    def _process_jobs(self) -> Any:
        if self.state != STATE_RUNNING:
            return None
        return super()._process_jobs()
