"""Typed SQLAlchemy 2 models of the store.

Nothing here holds a plaintext secret: a Finding keeps the keyed fingerprint, the
redacted preview and, only for rules that can be rotated or revoked, the value sealed
with AES-256-GCM (``secret_sealed`` with the key's id in ``secret_key_id``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
PK = BigInteger().with_variant(Integer(), "sqlite")

FINDING_STATUSES = (
    "open",
    "ignored",
    "false_positive",
    # driven by rotation (issue #14): a replacement is being made, the exposed one revoked
    "rotating",
    "rotated",
    "revoked",
    "rotation_failed",
    "remediation_required",
)
TRIAGE_STATUSES = ("open", "ignored", "false_positive")
SCAN_STATUSES = ("queued", "running", "succeeded", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Scan(Base):
    __tablename__ = "scans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # git | path | image | k8s | hook | webhook
    target: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(String(200))  # "cli:<user>", "token:<name>", ...
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None]
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    exit_code: Mapped[int | None]
    findings_new: Mapped[int] = mapped_column(default=0)
    occurrences_new: Mapped[int] = mapped_column(default=0)
    occurrences_seen: Mapped[int] = mapped_column(default=0)
    occurrences_gone: Mapped[int] = mapped_column(default=0)
    # the job runner holding it while queued or running (its lease: "runner:<runner>")
    runner: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_scans_created", "created_at"), Index("ix_scans_status", "status"))


SOURCE_BITS = {"git": 1, "file": 2, "image": 4, "k8s": 8}


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint_key_id: Mapped[str] = mapped_column(String(12))
    rule_id: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[str] = mapped_column(String(16))
    redacted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default="open")
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    triaged_by: Mapped[str | None] = mapped_column(String(200))
    triaged_at: Mapped[datetime | None]
    triage_reason: Mapped[str | None] = mapped_column(Text)
    first_scan_id: Mapped[str | None] = mapped_column(String(32))  # the scan that found it
    rotator: Mapped[str | None] = mapped_column(String(100))
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_key_id: Mapped[str | None] = mapped_column(String(12))
    # the source kinds of its occurrences, ever (SOURCE_BITS or-ed): what the listing's
    # source filter reads instead of probing the occurrences of every finding it walks
    sources: Mapped[int] = mapped_column(default=0, server_default="0")

    occurrences: Mapped[list[Occurrence]] = relationship(
        back_populates="finding", order_by="Occurrence.id", lazy="raise"
    )

    __table_args__ = (
        Index("ix_findings_status_severity_seen", "status", "severity", "last_seen", "id"),
        # each listing filter leads an index ending in the sort key (sentinel.store.queries)
        Index("ix_findings_last_seen_id", "last_seen", "id"),
        Index("ix_findings_first_seen_id", "first_seen", "id"),
        Index("ix_findings_status_last_seen", "status", "last_seen", "id"),
        Index("ix_findings_severity_last_seen", "severity", "last_seen", "id"),
        Index("ix_findings_rule_last_seen", "rule_id", "last_seen", "id"),
        Index("ix_findings_secret_key", "secret_key_id"),
        Index("ix_findings_first_scan", "first_scan_id"),
    )


class Occurrence(Base):
    __tablename__ = "occurrences"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"))
    # sha256 over the finding and every location field: what makes ingest idempotent
    location_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # git | file | image | k8s
    target: Mapped[str] = mapped_column(Text)
    commit: Mapped[str | None] = mapped_column(String(64))
    image: Mapped[str | None] = mapped_column(Text)
    layer: Mapped[str | None] = mapped_column(String(100))
    cluster: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(String(253))
    kind: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(253))
    key: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text, default="")
    line: Mapped[int] = mapped_column(default=0)
    column: Mapped[int] = mapped_column(default=0)
    author: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    date: Mapped[str | None] = mapped_column(String(40))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_scan_id: Mapped[str | None] = mapped_column(String(32))
    gone_at: Mapped[datetime | None]

    finding: Mapped[Finding] = relationship(back_populates="occurrences", lazy="raise")

    __table_args__ = (
        Index("ix_occurrences_finding", "finding_id", "source"),
        Index("ix_occurrences_finding_id", "finding_id", "id"),
        Index("ix_occurrences_target_finding", "target", "source", "finding_id"),
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    # the token is "snt_<lookup>_<secret>": lookup finds the row, the SHA-256 of the whole
    # token is compared in constant time; the token itself is never stored
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditRecord(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    token_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(200))  # token name, or "cli:<user>"
    action: Mapped[str] = mapped_column(String(100))  # e.g. finding.triage, token.create
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(100))
    client: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_audit_at", "at"),)


class AlertDelivery(Base):
    """One alert for one finding to one destination: the unique key makes "one alert per
    new fingerprint" hold across every scan, hook and sweep."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("finding_id", "destination", name="uq_alert_finding_destination"),
        Index("ix_alert_status_next", "status", "next_attempt_at"),
    )


class HookEventRecord(Base):
    """A pre-receive hook's report: a blocked push, a break-glass bypass, a push let
    through unscanned. ``id`` is the hook's own event id, so a re-delivery is dropped."""

    __tablename__ = "hook_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    repository: Mapped[str] = mapped_column(Text)
    pusher: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scan_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        # GET /v1/events: newest first, of one kind or all (sentinel.store.events)
        Index("ix_hook_events_received", "received_at", "id"),
        Index("ix_hook_events_kind_received", "kind", "received_at", "id"),
    )


class WebhookDelivery(Base):
    """A delivery id seen on ``POST /v1/webhooks/github``: duplicates are ignored."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(50))
    repository: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    scan_id: Mapped[str | None] = mapped_column(String(32))


class Lease(Base):
    """A named lease (the scheduler's leader on SQLite): whoever holds an unexpired row
    owns the job; it renews ``expires_at`` while alive."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Small facts about the installation kept with the data (e.g. which fingerprint
    key the store's findings are under)."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


ROTATION_STATUSES = (
    "pending",
    "running",
    "waiting",
    "succeeded",
    "rolled_back",
    "failed",
    "manual",
)


class Rotation(Base):
    """One credential taken out of circulation (rotators.machine drives it): a finding
    with many occurrences, or several findings of one credential (an AWS key id and
    its secret), share one row, by ``credential_key``. ``mode`` "manual" is a
    remediation record for a credential no rotator handles."""

    __tablename__ = "rotations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # keyed hash of (rotator, the credential's identity): one rotation per credential
    credential_key: Mapped[str] = mapped_column(String(64), unique=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    managed_name: Mapped[str | None] = mapped_column(String(100))  # [[rotation.managed]]
    rotator: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))  # rotate | revoke | manual
    status: Mapped[str] = mapped_column(String(20), default="pending")
    store_name: Mapped[str | None] = mapped_column(String(100))
    store_path: Mapped[str | None] = mapped_column(Text)
    identity: Mapped[str | None] = mapped_column(Text)  # who the provider calls are made as
    exposed_identifier: Mapped[str] = mapped_column(Text)  # the public part only
    exposed_extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the exposed value when it is not a finding's own (a managed credential's current)
    exposed_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    replacement_identifier: Mapped[str | None] = mapped_column(Text)
    replacement_extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    replacement_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_key_id: Mapped[str | None] = mapped_column(String(12))  # of the sealed values
    intent: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # finding, rule: for the store
    remediation: Mapped[dict[str, Any]] = mapped_column(default=dict)  # mode manual
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    dry_run_plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    purge_after: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # the process running it now ("host:pid"), until lease_expires
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[datetime | None]

    steps: Mapped[list[RotationStep]] = relationship(
        order_by="RotationStep.position", lazy="raise", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_rotations_status_next", "status", "next_attempt_at"),
        Index("ix_rotations_created", "created_at", "id"),
        Index("ix_rotations_finding", "finding_id"),
    )


class RotationStep(Base):
    __tablename__ = "rotation_steps"

    rotation_id: Mapped[str] = mapped_column(
        ForeignKey("rotations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RotationEvent(Base):
    """Every record the machine makes (a step begun, done, failed; a status), in order:
    the history behind a rotation's steps."""

    __tablename__ = "rotation_events"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    rotation_id: Mapped[str] = mapped_column(ForeignKey("rotations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    step: Mapped[str | None] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(20))  # begin | done | skipped | failed | status
    attempt: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_rotation_events_rotation", "rotation_id", "id"),)


class RotationFinding(Base):
    """The findings one rotation covers (a finding is covered by one rotation)."""

    __tablename__ = "rotation_findings"

    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True
    )
    rotation_id: Mapped[str] = mapped_column(ForeignKey("rotations.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_rotation_findings_rotation", "rotation_id"),)


class ManagedCredential(Base):
    """A ``[[rotation.managed]]`` credential: when it was last rotated, when next due."""

    __tablename__ = "managed_credentials"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    rotator: Mapped[str] = mapped_column(String(100))
    last_rotated_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    last_rotation_id: Mapped[str | None] = mapped_column(String(36))
    rotations: Mapped[int] = mapped_column(default=0)


# APScheduler 3's SQLAlchemyJobStore table, declared as APScheduler declares it (the job
# store itself reads and writes it); here so migrations own it and the models match them
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
