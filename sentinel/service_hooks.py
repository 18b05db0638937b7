"""What ``sentinel serve`` runs besides the API: work after each scan (alerts) and
background jobs (the scheduler, as leader). Each piece is optional and comes from its
own module; this file only wires them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentinel.alerts.background import OnTally
    from sentinel.alerts.routing import AlertsConfig
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.serve")


def _alerts(settings: ServiceSettings) -> tuple[AlertsConfig, str | None] | None:
    """The [alerts] config when alerts are on, and the API's URL for links in them."""
    from sentinel.alerts import routing

    cfg = routing.parse(settings.alerts, f"service config {settings.source or '(defaults)'}")
    if cfg.slack is None:
        return None
    return cfg, cfg.slack.api_base_url or settings.service.public_url


def _on_tally(metrics: Any) -> OnTally | None:
    return getattr(metrics, "alerts_done", None) if metrics is not None else None


def after_scan_hooks(
    store: Store, settings: ServiceSettings, metrics: Any = None
) -> list[Callable[[Any], object]]:
    """Called by the job runner with each scan's Outcome: alert its new findings, and
    rotate those the ``[rotation.auto]`` policy selects."""
    hooks: list[Callable[[Any], object]] = []
    on = _alerts(settings)
    if on is not None:
        from sentinel.alerts.background import Alerter

        alerter = Alerter(store, on[0], on[1], _on_tally(metrics))
        hooks.append(lambda outcome: alerter.submit(outcome.scan_id))
    auto = _auto_rotation(store, settings)
    if auto is not None:
        hooks.append(lambda outcome: auto(outcome.scan_id))
    return hooks


def _auto_rotation(store: Store, settings: ServiceSettings) -> Callable[[str], object] | None:
    if not settings.rotation.auto.enabled:
        return None
    from sentinel.jobs.rotation import for_service, on_scan

    return on_scan(for_service(store, settings))


def after_ingest_hooks(
    store: Store, settings: ServiceSettings, metrics: Any = None
) -> list[Callable[[str], object]]:
    """For ``app.state.on_ingest``: called with a scan id stored in-process (a reported
    scan, a hook event); queues its alerts (and auto-rotations) and returns at once."""
    hooks: list[Callable[[str], object]] = []
    on = _alerts(settings)
    if on is not None:
        from sentinel.alerts.background import Alerter

        hooks.append(Alerter(store, on[0], on[1], _on_tally(metrics)).submit)
    auto = _auto_rotation(store, settings)
    if auto is not None:
        hooks.append(auto)
    return hooks


def start_background(
    store: Store, settings: ServiceSettings, runner: Any, metrics: Any = None
) -> list[Callable[[], object]]:
    """Start background work; returns the functions that stop it."""
    from sentinel.jobs.scheduler import LeaderJob, start_leading

    jobs: list[LeaderJob] = []
    on = _alerts(settings)
    if on is not None:
        from sentinel.alerts.background import tick

        cfg, public_url = on
        assert cfg.slack is not None
        # a job of the leader's scheduler: due retries and findings with no delivery,
        # on one process of the service (each delivery is claimed in the database
        # before it is sent, so a second service never sends one twice either)
        tally = _on_tally(metrics)
        jobs.append(
            LeaderJob(
                "alerts-retry",
                lambda: tick(store, cfg, public_url, tally),
                cfg.slack.poll_seconds,
            )
        )
        log.info("alerts: the scheduler retries and catches up every %ss", cfg.slack.poll_seconds)
    from sentinel.jobs.rotation import for_service, leader_job

    # due rotation retries, purges after their grace, rotations a dead process left,
    # managed credentials coming due: on the leader, every [rotation] poll_seconds
    jobs.append(leader_job(for_service(store, settings)))
    return [*start_leading(store, settings, runner, jobs)]
