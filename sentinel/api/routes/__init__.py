"""One router per resource; ``all_routers`` is the list the app includes."""

from __future__ import annotations

from typing import Any


def all_routers() -> list[Any]:
    from sentinel.api.routes import (
        audit,
        events,
        findings,
        health,
        rotations,
        scans,
        schedules,
        tokens,
        webhooks,
    )

    routers = [
        health.router,
        findings.router,
        rotations.router,
        scans.router,
        schedules.router,
        events.router,
        tokens.router,
        audit.router,
        webhooks.router,
    ]
    return routers
