"""Prometheus metrics, in a registry of the app's own (never the process-global one):
counters and a histogram fed as scans end, and gauges read from the store at scrape
time (findings by severity and status, alert deliveries, queue depth)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentinel.alerts.dispatch import Tally
    from sentinel.jobs.scan import Outcome
    from sentinel.store.facade import Store


class Metrics:
    def __init__(self, store: Store, runner: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.store = store
        self.runner = runner
        self.scans = Counter(
            "sentinel_scans",
            "Scans run by the service, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "sentinel_scan_duration_seconds",
            "Wall time of scans run by the service",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
            registry=self.registry,
        )
        self.alerts = Counter(
            "sentinel_alerts",
            "Alert deliveries attempted by this process, by outcome "
            "(sent; failed: to be retried; gave_up: failed for good)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("sent", "failed", "gave_up"):
            self.alerts.labels(outcome=outcome)
        self.registry.register(_StoreCollector(self))
        self._shared: Any = None

    def alerts_done(self, tally: Tally) -> None:
        for outcome, n in (
            ("sent", tally.sent),
            ("failed", tally.failed),
            ("gave_up", tally.gave_up),
        ):
            if n:
                self.alerts.labels(outcome=outcome).inc(n)

    def scan_done(self, outcome: Outcome) -> None:
        from sentinel.store.models import Scan

        self.scans.labels(outcome=outcome.status).inc()
        with self.store.sessions() as s:
            row = s.get(Scan, outcome.scan_id)
            if row is not None and row.duration_seconds is not None:
                self.duration.observe(row.duration_seconds)

    def render(self) -> tuple[bytes, str]:
        import os

        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # `serve --processes N`: every process's counters, summed from their files
            if self._shared is None:
                from prometheus_client import CollectorRegistry
                from prometheus_client.multiprocess import MultiProcessCollector

                shared = CollectorRegistry(auto_describe=True)
                MultiProcessCollector(shared)
                shared.register(_StoreCollector(self, queue_from_store=True))
                self._shared = shared
            return generate_latest(self._shared), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StoreCollector:
    def __init__(self, m: Metrics, queue_from_store: bool = False) -> None:
        self.m = m
        # with several processes, each runner knows only its own queue: count the
        # store's unfinished scans instead
        self.queue_from_store = queue_from_store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        from sentinel.store.models import AlertDelivery, Finding, Scan

        findings = GaugeMetricFamily(
            "sentinel_findings",
            "Findings in the store, by severity and status",
            labels=["severity", "status"],
        )
        alerts = GaugeMetricFamily(
            "sentinel_alert_deliveries",
            "Alert deliveries in the store, by status (pending, retry, sent, failed, skipped)",
            labels=["status"],
        )
        queue = GaugeMetricFamily("sentinel_scan_queue_depth", "Scans accepted and not finished")
        with self.m.store.sessions() as s:
            for sev, status, n in s.execute(
                select(Finding.severity, Finding.status, func.count()).group_by(
                    Finding.severity, Finding.status
                )
            ):
                findings.add_metric([sev, status], n)
            for status, n in s.execute(
                select(AlertDelivery.status, func.count()).group_by(AlertDelivery.status)
            ):
                alerts.add_metric([status], n)
            unfinished = (
                s.scalar(select(func.count()).where(Scan.status.in_(("queued", "running"))))
                if self.queue_from_store
                else None
            )
        runner = self.m.runner
        if unfinished is not None:
            queue.add_metric([], unfinished)
        else:
            queue.add_metric([], runner.depth() if runner is not None else 0)
        yield findings
        yield alerts
        yield queue
