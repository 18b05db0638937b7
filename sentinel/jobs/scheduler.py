"""Scheduled rescans: ``[[schedules]]`` run on APScheduler 3 with its job store in the
service's own database (``apscheduler_jobs``, made by migration 0002).

Only the leader (sentinel.jobs.leader) runs a scheduler. On taking the lead it syncs the
configured schedules into the job store: a new schedule is added, a changed cron
expression or time zone reschedules, a schedule removed from the file (or disabled) is
removed; an unchanged one keeps its stored next run time, so a restart neither skips
nor repeats a run. Runs missed while no one led (the service down, a leader changing)
are coalesced into one run if they are at most ``misfire_grace_seconds`` late.

A run makes a queued Scan row (``requested_by = "schedule:NAME"``) and submits it to
the job runner, exactly as ``POST /v1/scans`` does, target checks included. When the
runner's queue is full the row is dropped and a one-off retry job is stored for when
the runner said to come back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger
    from sqlalchemy.orm import Session

    from sentinel.jobs.base import JobRunner
    from sentinel.settings import Schedule, ServiceSettings
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.scheduler")

JOB_PREFIX = "schedule:"
RETRY_SUFFIX = ":retry"
JOBS_TABLE = "apscheduler_jobs"
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def job_id(name: str) -> str:
    return f"{JOB_PREFIX}{name}"


def requested_by(name: str) -> str:
    return f"schedule:{name}"


# -- cron expressions ----------------------------------------------------------------


def _weekday_field(field: str) -> str:
    """A crontab weekday field in APScheduler 3's terms: crontab counts 0 (or 7) as
    Sunday, APScheduler 3 counts 0 as Monday, so numbers become names."""
    out = []
    for part in field.split(","):
        rng, _, step_s = part.partition("/")
        if part == "*" or (rng != "*" and not any(c.isdigit() for c in rng)):
            out.append(part)  # *, names, name ranges: the same in both
            continue
        step = int(step_s) if step_s.isdigit() else 1
        if step_s and not step_s.isdigit():
            raise ValueError(f"bad weekday step {step_s!r}")
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, _, b = rng.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise ValueError(f"bad weekday range {rng!r}")
            lo, hi = int(a), int(b)
        elif rng.isdigit():
            lo = int(rng)
            hi = 6 if step_s else lo
        else:
            raise ValueError(f"bad weekday {rng!r}")
        if not (0 <= lo <= 7 and 0 <= hi <= 7) or lo > hi or step < 1:
            raise ValueError(f"weekday {part!r} is out of range (0-7, 0 and 7 are Sunday)")
        out.extend(_WEEKDAYS[d % 7] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(out))


def parse_cron(expr: str, timezone: str = "UTC") -> CronTrigger:
    """A trigger for a crontab expression: five fields (minute hour day month weekday)
    or six with a leading seconds field. ValueError with a one-line reason."""
    from zoneinfo import ZoneInfoNotFoundError

    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"{len(fields)} field(s); a cron expression has 5 (minute hour day month "
            "weekday) or 6 (seconds first)"
        )
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, dow = fields[-5:]
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekday_field(dow),
            timezone=timezone,
        )
    except ZoneInfoNotFoundError:
        raise ValueError(f"unknown time zone {timezone!r}") from None
    except (ValueError, TypeError, KeyError) as exc:
        text = str(exc).strip()
        raise ValueError(text.splitlines()[0] if text else "invalid") from None


def check_schedules(settings: ServiceSettings) -> None:
    """Refuse, with one line, a configuration whose schedules cannot run: a bad cron
    expression or time zone, a duplicate name, a target the API would refuse."""
    from sentinel.api.targets import TargetRefused, check_scan
    from sentinel.errors import ConfigError

    where = f"service config {settings.source}" if settings.source else "service config"
    seen: set[str] = set()
    for sch in settings.schedules:
        if sch.name in seen:
            raise ConfigError(f"{where}: schedules: the name {sch.name!r} is used twice")
        seen.add(sch.name)
        try:
            parse_cron(sch.cron, sch.timezone)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: schedule {sch.name!r}: bad cron expression {sch.cron!r}: {exc}"
            ) from None
        if not sch.enabled:
            continue
        try:
            check_scan(sch.kind, sch.target, sch.options, settings.service)
        except TargetRefused as exc:
            raise ConfigError(f"{where}: schedule {sch.name!r}: target refused: {exc}") from None


def find(settings: ServiceSettings, name: str) -> Schedule | None:
    return next((s for s in settings.schedules if s.name == name), None)


# -- one run -------------------------------------------------------------------------


def queue_scan(store: Store, settings: ServiceSettings, runner: JobRunner, sch: Schedule) -> str:
    """Queue and submit one scan of ``sch``; its id. Raises TargetRefused (a failed
    row is recorded, so the schedule's last scan says why) or QueueFull (no row left)."""
    from sentinel.api.targets import TargetRefused, check_scan
    from sentinel.jobs.base import QueueFull
    from sentinel.store.facade import new_scan_id
    from sentinel.store.models import Scan, utcnow
    from sentinel.store.session import writing

    sid = new_scan_id()
    try:
        checked = check_scan(sch.kind, sch.target, sch.options, settings.service)
    except TargetRefused as exc:
        now = utcnow()
        with store.sessions() as s:
            writing(s)
            s.add(
                Scan(
                    id=sid,
                    kind=sch.kind,
                    target=sch.target,
                    params={},
                    requested_by=requested_by(sch.name),
                    status="failed",
                    created_at=now,
                    finished_at=now,
                    errors=[f"target refused: {exc}"],
                )
            )
            s.commit()
        raise
    with store.sessions() as s:
        writing(s)
        s.add(
            Scan(
                id=sid,
                kind=checked.kind,
                target=checked.target,
                params=checked.params,
                requested_by=requested_by(sch.name),
                status="queued",
            )
        )
        s.commit()
    try:
        runner.submit_scan(sid)
    except QueueFull:
        with store.sessions() as s:
            writing(s)
            row = s.get(Scan, sid)
            if row is not None and row.status == "queued":
                s.delete(row)
            s.commit()
        raise
    return sid


_active: Scheduler | None = None
_active_lock = threading.Lock()


def fire(name: str) -> None:
    """The job APScheduler runs (stored by reference, with the schedule's name only)."""
    with _active_lock:
        sch = _active
    if sch is None:
        log.warning("schedule %s is due but no scheduler runs here", name)
        return
    sch.run(name)


# -- the scheduler -------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    added: list[str]
    changed: list[str]
    removed: list[str]
    kept: list[str]


class Scheduler:
    """The leader's APScheduler: started on election, shut down when the lead is lost."""

    def __init__(
        self,
        store: Store,
        settings: ServiceSettings,
        runner: JobRunner,
        leader_jobs: Sequence[LeaderJob] = (),
    ) -> None:
        self.store = store
        self.settings = settings
        self.runner = runner
        self.leader_jobs = list(leader_jobs)
        self._aps: Any = None  # a LeaderScheduler while leading
        self._leader_store_of: Any = None  # the LeaderScheduler given a "leader" store

    @property
    def running(self) -> bool:
        return self._aps is not None

    def start(self) -> SyncResult:
        global _active
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        from sentinel.jobs.aps import LeaderScheduler
        from sentinel.store.session import make_engine

        # an engine of its own: the job store disposes of its engine when it shuts down
        aps = LeaderScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(
                    engine=make_engine(self.store.url), tablename=JOBS_TABLE
                )
            },
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.settings.scheduler.misfire_grace_seconds,
            },
            timezone=UTC,
        )
        aps.add_listener(self._event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        with _active_lock:
            _active = self
        aps.start(paused=True)
        self._aps = aps
        try:
            result = self.sync()
        except BaseException:
            self.stop()
            raise
        self._start_recovery(aps)
        self._start_leader_jobs(aps)
        aps.resume()
        log.info(
            "scheduler started: %d schedule(s) (%d added, %d changed, %d removed)",
            len(result.added) + len(result.changed) + len(result.kept),
            len(result.added),
            len(result.changed),
            len(result.removed),
        )
        return result

    def _leader_store(self, aps: Any) -> str:
        """The in-memory job store of the leader's own periodic jobs (they are this
        leader's, not schedules: nothing of them is kept in the database)."""
        from apscheduler.jobstores.memory import MemoryJobStore

        if aps is not self._leader_store_of:
            self._leader_store_of = aps
            # APScheduler logs every run of every job at info; these run every few
            # seconds and log what they did themselves ("recovery: ...", "alerts: ..."),
            # and each schedule's run logs its scan ("schedule NAME: queued scan ID")
            logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
            aps.add_jobstore(MemoryJobStore(), "leader")
        return "leader"

    def _start_leader_jobs(self, aps: Any) -> None:
        for job in self.leader_jobs:
            aps.add_job(
                _guarded(job),
                trigger="interval",
                seconds=job.seconds,
                id=f"sentinel-{job.name}",
                jobstore=self._leader_store(aps),
                next_run_time=datetime.now(UTC),
                coalesce=True,
                max_instances=1,
            )

    def _start_recovery(self, aps: Any) -> None:
        """Scans a dead process left unfinished go to this process's runner: now, and
        every heartbeat while leading."""
        if not isinstance(getattr(self.runner, "holder", None), str):
            return  # a runner that does not stamp its scans cannot be told from the dead
        self._leader_store(aps)
        aps.add_job(
            self.recover,
            trigger="interval",
            seconds=self.settings.scheduler.heartbeat,
            id="sentinel-recover-scans",
            jobstore="leader",
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
        )

    def recover(self) -> list[str]:
        from sentinel.jobs.recovery import requeue_orphans

        return requeue_orphans(
            self.store,
            self.runner,  # type: ignore[arg-type]
            self.settings.scheduler.lease_seconds,
        )

    def stop(self) -> None:
        global _active
        aps, self._aps = self._aps, None
        with _active_lock:
            if _active is self:
                _active = None
        if aps is not None:
            try:
                aps.shutdown(wait=False)
            except Exception as exc:  # already stopped, or its store is gone
                log.warning("scheduler shutdown: %s", type(exc).__name__)

    def sync(self) -> SyncResult:
        """Make the job store hold exactly the configured, enabled schedules."""
        assert self._aps is not None
        aps = self._aps
        grace = self.settings.scheduler.misfire_grace_seconds
        wanted = {s.name: s for s in self.settings.schedules if s.enabled}
        added, changed, removed, kept = [], [], [], []
        for job in aps.get_jobs():
            if not job.id.startswith(JOB_PREFIX):
                continue  # another module's job (alert retries): not ours to remove
            name = job.id[len(JOB_PREFIX) :].removesuffix(RETRY_SUFFIX)
            if name not in wanted:
                aps.remove_job(job.id)
                if not job.id.endswith(RETRY_SUFFIX):
                    removed.append(name)
        for name, sch in wanted.items():
            trigger = parse_cron(sch.cron, sch.timezone)
            job = aps.get_job(job_id(name))
            if job is None:
                aps.add_job(
                    "sentinel.jobs.scheduler:fire",
                    trigger=trigger,
                    args=[name],
                    id=job_id(name),
                    name=name,
                    misfire_grace_time=grace,
                    coalesce=True,
                    max_instances=1,
                )
                added.append(name)
                continue
            if repr(job.trigger) != repr(trigger):
                aps.reschedule_job(job.id, trigger=trigger)
                changed.append(name)
            else:
                kept.append(name)
            if job.misfire_grace_time != grace:
                aps.modify_job(job.id, misfire_grace_time=grace)
        return SyncResult(added, changed, removed, kept)

    def run(self, name: str) -> str | None:
        """One run of schedule ``name`` now: the scan id, or None (logged) when it could
        not be queued."""
        from sentinel.api.targets import TargetRefused
        from sentinel.jobs.base import QueueFull

        sch = find(self.settings, name)
        if sch is None or not sch.enabled:
            log.warning("schedule %s is not configured here; run skipped", name)
            return None
        try:
            sid = queue_scan(self.store, self.settings, self.runner, sch)
        except TargetRefused as exc:
            log.error("schedule %s: target refused: %s", name, exc)
            return None
        except QueueFull as exc:
            self._retry(name, exc.retry_after)
            return None
        log.info("schedule %s: queued scan %s", name, sid)
        return sid

    def _retry(self, name: str, after: int) -> None:
        aps = self._aps
        if aps is None:
            log.warning("schedule %s: the scan queue is full; scheduler stopped, no retry", name)
            return
        when = datetime.now(UTC) + timedelta(seconds=after)
        aps.add_job(
            "sentinel.jobs.scheduler:fire",
            trigger="date",
            run_date=when,
            args=[name],
            id=job_id(name) + RETRY_SUFFIX,
            name=f"{name} (retry)",
            replace_existing=True,
            misfire_grace_time=self.settings.scheduler.misfire_grace_seconds,
        )
        log.warning("schedule %s: the scan queue is full; retrying in %d s", name, after)

    def _event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MISSED

        name = str(event.job_id)[len(JOB_PREFIX) :]
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "schedule %s: the run due at %s was missed by more than %d s; skipped",
                name,
                event.scheduled_run_time,
                self.settings.scheduler.misfire_grace_seconds,
            )
        else:
            log.error("schedule %s: run failed: %s", name, type(event.exception).__name__)


# -- what the CLI and the API show ---------------------------------------------------


@dataclass(frozen=True)
class ScheduleView:
    name: str
    cron: str
    timezone: str
    kind: str
    target: str
    enabled: bool
    next_run: datetime | None
    last_scan_id: str | None
    last_scan_status: str | None
    last_scan_at: datetime | None


def views(session: Session, settings: ServiceSettings) -> list[ScheduleView]:
    """Each configured schedule with its stored next run time and its latest scan."""
    from sqlalchemy import select

    from sentinel.store.models import Scan, apscheduler_jobs

    ids = [job_id(s.name) for s in settings.schedules]
    next_runs: dict[str, float | None] = {}
    if ids:
        for jid, nrt in session.execute(
            select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time).where(
                apscheduler_jobs.c.id.in_(ids)
            )
        ):
            next_runs[jid] = nrt
    out = []
    for sch in settings.schedules:
        last = session.scalars(
            select(Scan)
            .where(Scan.requested_by == requested_by(sch.name))
            .order_by(Scan.created_at.desc())
            .limit(1)
        ).first()
        nrt = next_runs.get(job_id(sch.name))
        out.append(
            ScheduleView(
                name=sch.name,
                cron=sch.cron,
                timezone=sch.timezone,
                kind=sch.kind,
                target=sch.target,
                enabled=sch.enabled,
                next_run=datetime.fromtimestamp(nrt, UTC) if nrt is not None else None,
                last_scan_id=last.id if last else None,
                last_scan_status=last.status if last else None,
                last_scan_at=last.created_at if last else None,
            )
        )
    return out


@dataclass(frozen=True)
class LeaderJob:
    """Periodic work the leader's scheduler runs every ``seconds`` while it leads (the
    alert retry): on one process of the service, not on each."""

    name: str
    run: Callable[[], object]
    seconds: float


def _guarded(job: LeaderJob) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception as exc:  # the next round tries again; the job stays scheduled
            log.error("%s: round failed: %s", job.name, type(exc).__name__)

    return run


def start_leading(
    store: Store,
    settings: ServiceSettings,
    runner: JobRunner,
    leader_jobs: Sequence[LeaderJob] = (),
) -> list[Callable[[], object]]:
    """Contend for the lead and schedule while holding it; the functions that stop it.
    ``[scheduler] enabled = false`` makes this process a follower for good."""
    from sentinel.jobs.leader import Leadership, holder_id, lock_for

    if not settings.scheduler.enabled:
        log.info("scheduler disabled in this process ([scheduler] enabled = false)")
        for job in leader_jobs:
            log.info("%s: left to the process that leads the scheduler", job.name)
        return []
    sched = Scheduler(store, settings, runner, leader_jobs)
    holder = holder_id()
    lock = lock_for(store.engine, store.url, settings.scheduler.lease_seconds, holder)
    lead = Leadership(lock, settings.scheduler.heartbeat, sched.start, sched.stop, holder=holder)
    lead.start()
    return [lead.stop]
