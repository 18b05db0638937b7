"""Rotations in the store: the state machine's RotationLog over SQLAlchemy, one rotation
per credential, the runner's lease, and what the API and the CLI read.

Every method of :class:`SqlRotationLog` is its own committed transaction, so a process
killed right after one returns has lost nothing it recorded. The exposed value and the
replacement are sealed with the store's keyring (AES-GCM, bound to the rotation's id
and role): the database never holds either in clear.
"""

from __future__ import annotations

import hmac
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Literal

from rotators.base import STEPS, Credential, RotationState, RotationStatus, StepRecord
from sentinel.store.models import (
    Finding,
    ManagedCredential,
    Rotation,
    RotationEvent,
    RotationFinding,
    RotationStep,
    utcnow,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sentinel.store.facade import Store

# what a rotation's status makes of the findings it covers
FINDING_STATUS_OF: dict[tuple[str, str], str] = {
    ("rotate", "running"): "rotating",
    ("rotate", "waiting"): "rotating",
    ("rotate", "succeeded"): "rotated",
    ("revoke", "running"): "rotating",
    ("revoke", "waiting"): "rotating",
    ("revoke", "succeeded"): "revoked",
    ("rotate", "failed"): "rotation_failed",
    ("revoke", "failed"): "rotation_failed",
    ("rotate", "rolled_back"): "rotation_failed",
    ("manual", "manual"): "remediation_required",
}
TERMINAL = ("succeeded", "rolled_back", "failed", "manual")


def credential_key(store: Store, rotator: str, identity: str) -> str:
    """Keyed, so the column says nothing of a credential to whoever reads the table."""
    msg = f"sentinel-rotation\0{rotator}\0{identity}".encode()
    return hmac.new(store.fingerprint.key, msg, sha256).hexdigest()


def new_rotation_id() -> str:
    return str(uuid.uuid4())  # 36 characters: a valid Secrets Manager ClientRequestToken


def _bound(rotation_id: str, role: str) -> str:
    return f"rotation:{rotation_id}:{role}"


class SqlRotationLog:
    """rotators.base.RotationLog on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ------------------------------------------------------------------------

    def load(self, rotation_id: str) -> RotationState:
        from sqlalchemy import select

        with self.store.sessions() as s:
            r = s.get(Rotation, rotation_id)
            if r is None:
                raise KeyError(f"no rotation {rotation_id}")
            steps = {
                st.name: StepRecord(
                    name=st.name,
                    state=st.state,  # type: ignore[arg-type]
                    attempts=st.attempts,
                    started_at=st.started_at,
                    finished_at=st.finished_at,
                    last_error=st.last_error,
                    detail=dict(st.detail or {}),
                )
                for st in s.scalars(select(RotationStep).where(RotationStep.rotation_id == r.id))
            }
            exposed = Credential(
                kind=r.rotator,
                identifier=r.exposed_identifier,
                secret=self._open(r.exposed_sealed, r.id, "exposed"),
                extra={k: str(v) for k, v in (r.exposed_extra or {}).items()},
            )
            replacement = None
            if r.replacement_identifier is not None:
                replacement = Credential(
                    kind=r.rotator,
                    identifier=r.replacement_identifier,
                    secret=self._open(r.replacement_sealed, r.id, "replacement"),
                    extra={k: str(v) for k, v in (r.replacement_extra or {}).items()},
                )
            return RotationState(
                id=r.id,
                rotator=r.rotator,
                mode=r.mode,  # type: ignore[arg-type]
                exposed=exposed,
                status=r.status,  # type: ignore[arg-type]
                store_path=r.store_path,
                steps=steps,
                intent=dict(r.intent or {}),
                replacement=replacement,
                metadata={k: str(v) for k, v in (r.meta or {}).items()},
                purge_after=r.purge_after,
            )

    def _open(self, sealed: bytes | None, rotation_id: str, role: str) -> str:
        if sealed is None:
            return ""
        return self.store.keyring.open(sealed, _bound(rotation_id, role))

    # -- writing ------------------------------------------------------------------------

    def _write(self) -> Session:
        from sentinel.store.session import writing

        return writing(self.store.sessions())

    def _step(self, s: Session, rotation_id: str, name: str) -> RotationStep:
        st = s.get(RotationStep, (rotation_id, name))
        if st is None:
            st = RotationStep(
                rotation_id=rotation_id,
                name=name,
                position=STEPS.index(name) if name in STEPS else len(STEPS),
                state="pending",
                attempts=0,
                detail={},
            )
            s.add(st)
        return st

    def _event(
        self,
        s: Session,
        rotation_id: str,
        event: str,
        *,
        step: str | None = None,
        attempt: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        s.add(
            RotationEvent(
                rotation_id=rotation_id,
                at=utcnow(),
                step=step,
                event=event,
                attempt=attempt,
                detail=dict(detail or {}),
            )
        )

    def begin_step(self, rotation_id: str, step: str) -> int:
        now = utcnow()
        with self._write() as s:
            st = self._step(s, rotation_id, step)
            st.state = "running"
            st.attempts = (st.attempts or 0) + 1
            st.started_at = now
            st.finished_at = None
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.updated_at = now
            r.started_at = r.started_at or now
            self._event(s, rotation_id, "begin", step=step, attempt=st.attempts)
            attempt = st.attempts
            s.commit()
            return attempt

    def end_step(
        self,
        rotation_id: str,
        step: str,
        *,
        state: Literal["done", "skipped"],
        detail: Mapping[str, Any],
    ) -> None:
        now = utcnow()
        with self._write() as s:
            st = self._step(s, rotation_id, step)
            st.state = state
            st.finished_at = now
            st.detail = dict(detail)
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.updated_at = now
            self._event(s, rotation_id, state, step=step, attempt=st.attempts, detail=detail)
            s.commit()

    def fail_step(
        self, rotation_id: str, step: str, error: str, *, retry_at: datetime | None
    ) -> None:
        now = utcnow()
        with self._write() as s:
            st = self._step(s, rotation_id, step)
            st.state = "failed"
            st.finished_at = now
            st.last_error = error
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.updated_at = now
            r.last_error = f"{step}: {error}"
            r.next_attempt_at = retry_at
            self._event(
                s,
                rotation_id,
                "failed",
                step=step,
                attempt=st.attempts,
                detail={"error": error, "retry_at": retry_at.isoformat() if retry_at else None},
            )
            s.commit()

    def save_intent(self, rotation_id: str, intent: Mapping[str, Any]) -> None:
        with self._write() as s:
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.intent = _jsonable(intent)
            s.commit()

    def save_replacement(self, rotation_id: str, new: Credential) -> None:
        sealed = None
        key_id = None
        if new.secret:
            sealed, key_id = self.store.keyring.seal(new.secret, _bound(rotation_id, "replacement"))
        with self._write() as s:
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.replacement_identifier = new.identifier
            r.replacement_extra = dict(new.extra)
            r.replacement_sealed = sealed
            if key_id is not None:
                if r.exposed_sealed is not None and r.secret_key_id != key_id:
                    # one key id per row: the exposed value moves to the current key too
                    bound = _bound(rotation_id, "exposed")
                    plain = self.store.keyring.open(r.exposed_sealed, bound)
                    r.exposed_sealed = self.store.keyring.seal(plain, bound)[0]
                r.secret_key_id = key_id
            self._event(
                s, rotation_id, "minted", step="create", detail={"identifier": new.identifier}
            )
            s.commit()

    def set_status(
        self,
        rotation_id: str,
        status: RotationStatus,
        *,
        error: str | None = None,
        purge_after: datetime | None = None,
    ) -> None:
        now = utcnow()
        with self._write() as s:
            r = s.get(Rotation, rotation_id)
            assert r is not None
            r.status = status
            r.updated_at = now
            if error is not None:
                r.last_error = error
            if purge_after is not None:
                r.purge_after = purge_after
            if status == "running":
                r.next_attempt_at = None
            elif status == "waiting" and purge_after is not None:
                r.next_attempt_at = purge_after
            if status in TERMINAL:
                r.finished_at = now
                r.next_attempt_at = None
                r.lease_holder = None
                r.lease_expires = None
            if status == "succeeded":
                r.last_error = None
            self._event(s, rotation_id, "status", detail={"status": status, "error": error})
            self._findings_follow(s, r)
            if r.managed_name and status == "succeeded":
                m = s.get(ManagedCredential, r.managed_name)
                if m is not None:
                    m.last_rotated_at = now
                    m.last_rotation_id = r.id
                    m.rotations = (m.rotations or 0) + 1
            s.commit()

    def _findings_follow(self, s: Session, r: Rotation) -> None:
        from sqlalchemy import select, update

        new = FINDING_STATUS_OF.get((r.mode, r.status))
        if new is None:
            return
        ids = select(RotationFinding.finding_id).where(RotationFinding.rotation_id == r.id)
        s.execute(
            update(Finding)
            .where(Finding.id.in_(ids), Finding.status.not_in(("ignored", "false_positive")))
            .values(status=new),
            execution_options={"synchronize_session": False},
        )


# -- one rotation per credential -------------------------------------------------------


@dataclass(frozen=True)
class NewRotation:
    """What a request makes, before the insert decides whether it is the first."""

    rotator: str
    mode: Literal["rotate", "revoke", "manual"]
    identity_key: str  # what makes two requests the same credential
    exposed: Credential
    finding_ids: Sequence[int]
    finding_id: int | None = None
    store_name: str | None = None
    store_path: str | None = None
    identity: str | None = None
    meta: Mapping[str, str] | None = None
    remediation: Mapping[str, Any] | None = None
    requested_by: str = ""
    managed_name: str | None = None


def create_or_get(store: Store, req: NewRotation) -> tuple[str, bool]:
    """The rotation of ``req``'s credential: (id, True) if this call made it, (id of the
    one already there, False) otherwise. Safe against concurrent callers on SQLite and
    PostgreSQL: the unique credential key decides, and the loser reads the winner."""
    from sqlalchemy import select

    key = credential_key(store, req.rotator, req.identity_key)
    rid = new_rotation_id()
    sealed = key_id = None
    if req.exposed.secret:
        sealed, key_id = store.keyring.seal(req.exposed.secret, _bound(rid, "exposed"))
    now = utcnow()
    status = "manual" if req.mode == "manual" else "pending"
    row = {
        "id": rid,
        "credential_key": key,
        "finding_id": req.finding_id,
        "managed_name": req.managed_name,
        "rotator": req.rotator,
        "mode": req.mode,
        "status": status,
        "store_name": req.store_name,
        "store_path": req.store_path,
        "identity": req.identity,
        "exposed_identifier": req.exposed.identifier,
        "exposed_extra": dict(req.exposed.extra),
        "exposed_sealed": sealed,
        "replacement_identifier": None,
        "replacement_extra": {},
        "replacement_sealed": None,
        "secret_key_id": key_id,
        "intent": {},
        "meta": {**dict(req.meta or {}), "sentinel-rotation": rid},
        "remediation": _jsonable(req.remediation or {}),
        "requested_by": req.requested_by,
        "dry_run_plan": {},
        "created_at": now,
        "updated_at": now,
        "finished_at": now if status == "manual" else None,
        "next_attempt_at": now if status == "pending" else None,
    }
    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        created = _insert_absent(s, Rotation, row, "credential_key")
        got = s.scalar(select(Rotation.id).where(Rotation.credential_key == key))
        assert got is not None
        for fid in req.finding_ids:
            _insert_absent(
                s, RotationFinding, {"finding_id": fid, "rotation_id": got}, "finding_id"
            )
        if created:
            s.add(
                RotationEvent(
                    rotation_id=got,
                    at=now,
                    event="status",
                    detail={"status": status, "requested_by": req.requested_by},
                )
            )
            r = s.get(Rotation, got)
            assert r is not None
            if status == "manual":
                SqlRotationLog(store)._findings_follow(s, r)
        s.commit()
        return got, bool(created)


def _insert_absent(s: Session, model: Any, row: dict[str, Any], unique: str) -> bool:
    """Insert ``row`` unless one with its ``unique`` value exists: True if inserted."""
    table = model.__table__
    if s.connection().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).values(**row).on_conflict_do_nothing(index_elements=[unique])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**row).on_conflict_do_nothing(index_elements=[unique])
    return s.execute(stmt.returning(table.c[unique])).first() is not None


def rotation_of_finding(store: Store, finding_id: int) -> str | None:
    from sqlalchemy import select

    with store.sessions() as s:
        return s.scalar(
            select(RotationFinding.rotation_id).where(RotationFinding.finding_id == finding_id)
        )


def reset_for_retry(store: Store, rotation_id: str, requested_by: str) -> bool:
    """A failed or rolled-back rotation made pending again (from its failed step; from
    the start after a rollback, as the replacement is gone). False if it is not one."""
    from sqlalchemy import delete

    from sentinel.store.session import writing

    now = utcnow()
    with store.sessions() as s:
        writing(s)
        r = s.get(Rotation, rotation_id, with_for_update=True)
        if r is None or r.status not in ("failed", "rolled_back"):
            return False
        if r.status == "rolled_back":
            s.execute(delete(RotationStep).where(RotationStep.rotation_id == r.id))
            r.replacement_identifier = None
            r.replacement_sealed = None
            r.replacement_extra = {}
            r.intent = {}
        r.status = "pending"
        r.next_attempt_at = now
        r.finished_at = None
        r.updated_at = now
        s.add(
            RotationEvent(
                rotation_id=r.id,
                at=now,
                event="status",
                detail={"status": "pending", "retry_by": requested_by},
            )
        )
        s.commit()
        return True


# -- the runner's lease ------------------------------------------------------------------


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_dead(holder: str) -> bool:
    """A holder on this host whose process is gone (killed): its lease is void now."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(store: Store, rotation_id: str, holder: str, lease_seconds: float) -> bool:
    """Take the rotation to run it: one runner at a time, across processes and hosts."""
    from sqlalchemy import or_, select, update

    from sentinel.store.session import writing

    now = utcnow()
    with store.sessions() as s:
        writing(s)
        current = s.scalar(select(Rotation.lease_holder).where(Rotation.id == rotation_id))
        cond = [
            Rotation.lease_holder.is_(None),
            Rotation.lease_expires < now,
            Rotation.lease_holder == holder,
        ]
        if current is not None and current != holder and _holder_dead(current):
            cond.append(Rotation.lease_holder == current)
        res = s.execute(
            update(Rotation)
            .where(Rotation.id == rotation_id, or_(*cond))
            .values(lease_holder=holder, lease_expires=now + timedelta(seconds=lease_seconds)),
            execution_options={"synchronize_session": False},
        )
        s.commit()
        return bool(res.rowcount)  # type: ignore[attr-defined]


def release(store: Store, rotation_id: str, holder: str) -> None:
    from sqlalchemy import update

    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        s.execute(
            update(Rotation)
            .where(Rotation.id == rotation_id, Rotation.lease_holder == holder)
            .values(lease_holder=None, lease_expires=None),
            execution_options={"synchronize_session": False},
        )
        s.commit()


def due(store: Store, now: datetime | None = None, limit: int = 50) -> list[str]:
    """Rotations to run now: pending or waiting with their next attempt due, or left
    running by a process that died (``claim`` decides whether a lease still holds)."""
    from sqlalchemy import or_, select

    now = now or utcnow()
    with store.sessions() as s:
        return list(
            s.scalars(
                select(Rotation.id)
                .where(
                    Rotation.status.in_(("pending", "waiting", "running")),
                    or_(Rotation.next_attempt_at.is_(None), Rotation.next_attempt_at <= now),
                )
                .order_by(Rotation.next_attempt_at, Rotation.created_at)
                .limit(limit)
            )
        )


# -- views ------------------------------------------------------------------------------


def view(store: Store, rotation_id: str) -> dict[str, Any] | None:
    """A rotation as the API shows it: every step's state, no secret."""
    from sqlalchemy import select

    with store.sessions() as s:
        r = s.get(Rotation, rotation_id)
        if r is None:
            return None
        steps = {
            st.name: st
            for st in s.scalars(select(RotationStep).where(RotationStep.rotation_id == r.id))
        }
        findings = list(
            s.scalars(
                select(RotationFinding.finding_id)
                .where(RotationFinding.rotation_id == r.id)
                .order_by(RotationFinding.finding_id)
            )
        )
        return _view(r, steps, findings)


def _view(
    r: Rotation, steps: Mapping[str, RotationStep], findings: Iterable[int]
) -> dict[str, Any]:
    from rotators.base import REVOKE_STEPS

    names = () if r.mode == "manual" else STEPS
    out_steps = []
    for name in names:
        st = steps.get(name)
        out_steps.append(
            {
                "name": name,
                "state": st.state
                if st
                else ("skipped" if r.mode == "revoke" and name not in REVOKE_STEPS else "pending"),
                "attempts": st.attempts if st else 0,
                "started_at": st.started_at if st else None,
                "finished_at": st.finished_at if st else None,
                "last_error": st.last_error if st else None,
                "detail": dict(st.detail or {}) if st else {},
            }
        )
    return {
        "id": r.id,
        "finding_id": r.finding_id,
        "findings": list(findings),
        "managed": r.managed_name,
        "rotator": r.rotator,
        "mode": r.mode,
        "status": r.status,
        "store": r.store_name,
        "path": r.store_path,
        "identity": r.identity,
        "exposed": r.exposed_identifier,
        "replacement": r.replacement_identifier,
        "requested_by": r.requested_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "next_attempt_at": r.next_attempt_at,
        "purge_after": r.purge_after,
        "last_error": r.last_error,
        "remediation": dict(r.remediation or {}) or None,
        "steps": out_steps,
    }


def listing(
    store: Store, *, status: str | None = None, limit: int = 50, before: str | None = None
) -> list[dict[str, Any]]:
    """Newest first; ``before`` a rotation id (the page's cursor)."""
    from sqlalchemy import select, tuple_

    with store.sessions() as s:
        q = select(Rotation).order_by(Rotation.created_at.desc(), Rotation.id.desc()).limit(limit)
        if status:
            q = q.where(Rotation.status == status)
        if before:
            b = s.get(Rotation, before)
            if b is not None:
                q = q.where(tuple_(Rotation.created_at, Rotation.id) < (b.created_at, b.id))
        rows = list(s.scalars(q))
        ids = [r.id for r in rows]
        steps: dict[str, dict[str, RotationStep]] = {i: {} for i in ids}
        fmap: dict[str, list[int]] = {i: [] for i in ids}
        if ids:
            for st in s.scalars(select(RotationStep).where(RotationStep.rotation_id.in_(ids))):
                steps[st.rotation_id][st.name] = st
            for rf in s.scalars(
                select(RotationFinding).where(RotationFinding.rotation_id.in_(ids))
            ):
                fmap[rf.rotation_id].append(rf.finding_id)
        return [_view(r, steps[r.id], sorted(fmap[r.id])) for r in rows]


def events(store: Store, rotation_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with store.sessions() as s:
        return [
            {"at": e.at, "step": e.step, "event": e.event, "attempt": e.attempt, "detail": e.detail}
            for e in s.scalars(
                select(RotationEvent)
                .where(RotationEvent.rotation_id == rotation_id)
                .order_by(RotationEvent.id)
            )
        ]


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
