"""The service's own settings: ``--config FILE``, else ``SENTINEL_SERVICE_CONFIG``, else
``$SENTINEL_HOME/service.toml``; a missing default file means all defaults.

Sections: ``[service]`` (listening, limits, what API-requested scans may read),
``[alerts.slack]`` and ``[[alerts.routes]]`` (sentinel.alerts), ``[scheduler]`` (the
leader lease, misfires), ``[[schedules]]`` (rescans of registered targets) and
``[rotation]`` (secret stores, targets, auto-rotation, managed credentials), ``[[sweeps]]``
(organisation-wide sweeps) and ``[worker]`` (in-process or Celery). Unknown keys are refused, so a typo is an error, not a
setting silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_CONFIG = "SENTINEL_SERVICE_CONFIG"
FILE_NAME = "service.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None  # how people reach the API (links in alerts)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # POST /v1/events: a blocked push's event lists every finding (the hook's spool
    # keeps events up to 8 MB; a larger cap than it gains nothing)
    max_event_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    workers: int = Field(2, ge=1, le=64)  # scans run at once inside `sentinel serve`
    # serving processes on one port (each with its own `workers` scans); the API's
    # throughput grows with them up to the machine's cores
    processes: int = Field(1, ge=1, le=64)
    # threads per serving process that run the API's routes (each waits on the database)
    api_threads: int = Field(40, ge=2, le=400)
    queue_size: int = Field(20, ge=0, le=10_000)  # scans waiting; beyond: 429
    scan_timeout_seconds: float = Field(3600, gt=0)
    scan_memory_bytes: int | None = Field(None, ge=64 * 1024 * 1024)  # RLIMIT_AS per scan
    # what API-requested scans may read: local paths only under these directories
    scan_roots: list[Path] = Field(default_factory=list)
    # image registries API-requested scans may pull from (empty: any)
    registry_allowlist: list[str] = Field(default_factory=list)
    # plain-HTTP git remotes on loopback (test setups only); otherwise https and ssh
    git_http_loopback: bool = False
    mirrors_dir: Path | None = None  # bare mirrors of webhook repositories
    mirror_timeout_seconds: float = Field(900, gt=0)  # one clone or fetch, wall clock
    mirror_max_bytes: int = Field(4 * 1024**3, ge=1024 * 1024)  # a mirror's size on disk
    # env var holding the GitHub webhook secret (X-Hub-Signature-256)
    github_webhook_secret_env: str = "SENTINEL_GITHUB_WEBHOOK_SECRET"


class Schedule(_Strict):
    """One ``[[schedules]]`` entry: a rescan of a registered target on a cron expression.
    ``kind``, ``target`` and ``options`` are what ``POST /v1/scans`` takes, checked the
    same way (sentinel.api.targets) when the service starts and again at each run."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # five crontab fields (minute hour day month weekday, 0 or 7 = Sunday), or six with a
    # leading seconds field; in `timezone` (an IANA name), UTC by default
    cron: str = Field(min_length=1, max_length=200)
    kind: Literal["git", "path", "image", "k8s"]
    target: str = Field(min_length=1, max_length=2048)
    options: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    enabled: bool = True


class SchedulerSection(_Strict):
    """``[scheduler]``: one ``sentinel serve`` per database schedules (the leader); the
    others serve the API and keep trying to take the lead."""

    enabled: bool = True  # false: this process never schedules (API only)
    # a leader that stops renewing (SQLite lease) is replaced after this long; on
    # PostgreSQL the advisory lock goes the moment the leader's connection does
    lease_seconds: float = Field(30, ge=0.5, le=3600)
    # how often the leader renews and a follower tries to take over (default lease / 3)
    heartbeat_seconds: float | None = Field(None, gt=0, le=600)
    # a run missed by up to this long (service down, leader changing) still runs, once
    misfire_grace_seconds: int = Field(300, ge=1, le=7 * 86400)

    @property
    def heartbeat(self) -> float:
        hb = self.heartbeat_seconds or self.lease_seconds / 3
        return min(hb, self.lease_seconds / 2)


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class RotationStoreConfig(_Strict):
    """``[rotation.stores.NAME]``: a secret store. ``kind`` picks the module
    (rotators.STORES); the other keys are its options (rotators.stores.<kind>.build)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: Literal["vault-kv", "aws-secretsmanager"]

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class RotationTarget(_Strict):
    """``[[rotation.targets]]``: where the replacements of matching findings go. The
    first entry whose ``rules`` and ``targets`` globs match a finding wins."""

    rules: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    targets: list[str] = Field(default_factory=lambda: ["*"], min_length=1)  # scan targets
    store: str = Field(min_length=1, max_length=100)
    # fields: {repo} (the scan target's last path part), {rule}, {finding}, {identifier}
    # (the credential's public part), {user} (an IAM user), {rotator}
    path: str = Field(min_length=1, max_length=500)


class AutoRotation(_Strict):
    """``[rotation.auto]``: rotate on detection, for chosen rules and severities."""

    enabled: bool = False
    rules: list[str] = Field(default_factory=lambda: ["*"])
    severities: list[Literal["critical", "high", "medium", "low"]] = Field(
        default_factory=lambda: ["critical", "high"]
    )


class ManagedCredentialConfig(_Strict):
    """``[[rotation.managed]]``: a credential Sentinel owns and rotates before it is
    ``max_age_days`` old. Its current value is read from ``store`` at ``path`` (where
    each rotation writes the next one); ``extra`` gives what the rotator needs beyond
    it (a database's host and port, an IAM user)."""

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    rotator: str = Field(min_length=1, max_length=100)
    store: str = Field(min_length=1, max_length=100)
    path: str = Field(min_length=1, max_length=500)
    max_age_days: float = Field(gt=0, le=3650)
    # rotate this long before the maximum age is reached
    lead_days: float = Field(1, ge=0)
    extra: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True


class RotationSection(_Strict):
    """``[rotation]``: how leaked credentials are replaced and revoked (rotators/)."""

    # per step; then the rotation is failed and people are told
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_seconds: float = Field(5, gt=0, le=3600)
    backoff_max_seconds: float = Field(900, gt=0, le=86400)
    verify_attempts: int = Field(5, ge=1, le=100)
    # an IAM key is deactivated at revoke, deleted this long after (the purge step)
    purge_grace_seconds: float = Field(86400, ge=0, le=90 * 86400)
    # how often the scheduler's leader looks for due rotations and managed credentials
    poll_seconds: float = Field(5, gt=0, le=3600)
    lease_seconds: float = Field(300, ge=5, le=86400)  # one runner per rotation at a time
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stores: dict[str, RotationStoreConfig] = Field(default_factory=dict)
    targets: list[RotationTarget] = Field(default_factory=list)
    auto: AutoRotation = Field(default_factory=AutoRotation)  # type: ignore[arg-type]
    managed: list[ManagedCredentialConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_exist(self) -> RotationSection:
        from rotators import PROVIDERS

        for name in self.providers:
            if name not in PROVIDERS:
                raise ValueError(f"providers: no rotator named {name!r}")
        for where, items in (("targets", self.targets), ("managed", self.managed)):
            for i, item in enumerate(items):
                if item.store not in self.stores:
                    raise ValueError(
                        f"{where}[{i}]: no store named {item.store!r} in [rotation.stores]"
                    )
        for m in self.managed:
            if m.rotator not in PROVIDERS:
                raise ValueError(f"managed {m.name}: no rotator named {m.rotator!r}")
        names = [m.name for m in self.managed]
        if len(names) != len(set(names)):
            raise ValueError("managed: two credentials have one name")
        return self


SWEEP_PROVIDERS = ("github", "gitlab", "local", "file", "registry", "kube")


class SweepConfig(_Strict):
    """``[[sweeps]]``: a provider that lists targets (repositories, images, clusters), its
    options (no secret inline: ``token_env`` and the like name environment variables)
    and, optionally, a cron schedule the service's scheduler runs it on."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    provider: Literal["github", "gitlab", "local", "file", "registry", "kube"]
    options: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = Field(None, min_length=1, max_length=200)
    timezone: str = "UTC"
    enabled: bool = True
    # targets of this sweep worked on at once, across all workers (API rate limits)
    max_parallel: int | None = Field(None, ge=1, le=1000)
    # a target failing with a retryable error (a fetch timing out, a 5xx) is tried again
    max_attempts: int = Field(3, ge=1, le=20)


class WorkerSection(_Strict):
    """``[worker]``: where sweep targets run. ``inprocess`` (the default): threads of the
    process that started the sweep. ``celery``: one task per target on Celery workers
    (``sentinel worker``) through the broker, routed to a queue per target kind."""

    backend: Literal["inprocess", "celery"] = "inprocess"
    threads: int = Field(2, ge=1, le=64)  # in-process: targets worked on at once
    broker_url: str = "redis://127.0.0.1:6379/0"
    broker_url_env: str | None = None  # when the URL carries a password
    queue_prefix: str = Field("sentinel", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    concurrency: int = Field(2, ge=1, le=256)  # processes per `sentinel worker`
    retry_backoff_seconds: float = Field(5, gt=0, le=3600)
    retry_backoff_max_seconds: float = Field(600, gt=0, le=86400)
    visibility_timeout_seconds: int = Field(3600, ge=10, le=7 * 86400)


class ServiceSettings(_Strict):
    service: ServiceSection = Field(default_factory=ServiceSection)  # type: ignore[arg-type]
    alerts: dict[str, Any] = Field(default_factory=dict)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)  # type: ignore[arg-type]
    schedules: list[Schedule] = Field(default_factory=list)
    rotation: RotationSection = Field(default_factory=RotationSection)  # type: ignore[arg-type]
    sweeps: list[SweepConfig] = Field(default_factory=list)
    worker: WorkerSection = Field(default_factory=WorkerSection)  # type: ignore[arg-type]
    source: str | None = None  # the file it came from

    @model_validator(mode="after")
    def _sweep_names_unique(self) -> ServiceSettings:
        names = [s.name for s in self.sweeps]
        if len(names) != len(set(names)):
            raise ValueError("sweeps: two sweeps have one name")
        return self

    model_config = ConfigDict(extra="forbid", frozen=True)


def load(path: Path | str | None = None) -> ServiceSettings:
    import tomllib

    from sentinel.errors import ConfigError
    from sentinel.fingerprint import sentinel_home
    from sentinel.sources.safeio import FileTooLarge, read_regular

    explicit = path or os.environ.get(ENV_CONFIG)
    p = Path(explicit) if explicit else sentinel_home() / FILE_NAME
    try:
        text = read_regular(p, 1024 * 1024).decode("utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"service config {p}: no such file") from None
        return ServiceSettings()
    except FileTooLarge:
        raise ConfigError(f"service config {p} is larger than 1 MB") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read service config {p}: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"service config {p}: {exc}") from None
    try:
        settings = ServiceSettings.model_validate({**doc, "source": str(p)})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"service config {p}: {where}: {err['msg']}") from None
    from sentinel.alerts import routing

    routing.parse(settings.alerts, f"service config {p}")  # a mistake there: said now
    return settings
