"""What ``sentinel serve`` runs besides the API: work after each scan (alerts) and
background jobs (the scheduler, as leader). Each piece is optional and comes from its
own module; this file only wires them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.serve")


def after_scan_hooks(store: Store, settings: ServiceSettings) -> list[Callable[[Any], object]]:
    return []


def start_background(
    store: Store, settings: ServiceSettings, runner: Any
) -> list[Callable[[], object]]:
    """Start background work; returns the functions that stop it."""
    from sentinel.jobs.scheduler import start_leading

    return [*start_leading(store, settings, runner)]
