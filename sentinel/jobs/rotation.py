"""Rotations as the service and the CLI run them: from a finding to the state machine.

``Rotations(store, settings)`` resolves a finding to the credential it exposes (an AWS
access key id with its secret found beside it; a token), picks the rotator the finding's
rule names and the secret store ``[[rotation.targets]]`` sends it to, records one
rotation per credential (sentinel.store.rotations), and runs it through
``rotators.machine.Machine`` under a lease, so one process at a time drives it. A
credential no rotator can handle gets a manual-remediation record and an alert.

The scheduler's leader runs ``tick()`` every ``[rotation] poll_seconds``: due retries
(their backoff is kept on the rotation's row, so it survives restarts), purges whose
grace period is over, rotations a dead process left running, and managed credentials
coming due.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from rotators.base import Credential, Plan, RotationState
from sentinel.errors import ConfigError
from sentinel.store.models import utcnow

if TYPE_CHECKING:
    from sentinel.settings import ManagedCredentialConfig, RotationSection, ServiceSettings
    from sentinel.store.facade import Store
    from sentinel.store.models import Finding
    from sentinel.store.rotations import NewRotation

log = logging.getLogger("sentinel.rotation")

AWS_KEY_ID = re.compile(r"^(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}$")
AWS_SECRET = re.compile(r"^[A-Za-z0-9/+]{40}$")
SIBLING_LINES = 10  # an AWS key id and its secret: this many lines apart at most


# rotations this process is running now, whichever Rotations object runs them: the
# lease's holder is the process, so two threads of one process (the API's kick and the
# leader's tick) must not both take one
_running: set[str] = set()
_running_lock = threading.Lock()


class NotFound(Exception):
    pass


class Refused(Exception):
    """A request that cannot be honoured as asked (one line, for a 409 or an exit 2)."""


@dataclass(frozen=True)
class Outcome:
    rotation_id: str
    created: bool
    view: dict[str, Any]


def mode_of(rotator: str) -> str:
    """``rotate`` or ``revoke`` (rotators.MODES; no module is imported)."""
    from rotators import MODES

    return MODES.get(rotator, "rotate")


class Rotations:
    def __init__(
        self,
        store: Store,
        settings: ServiceSettings,
        *,
        alerts: Any = None,  # sentinel.alerts.routing.AlertsConfig, when Slack is on
        public_url: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.cfg: RotationSection = settings.rotation
        self.alerts = alerts
        self.public_url = public_url
        self._holder: str | None = None
        self._kick_lock = threading.Lock()

    @property
    def holder(self) -> str:
        from sentinel.store.rotations import holder_id

        if self._holder is None:
            self._holder = holder_id()
        return self._holder

    # -- building the parts ---------------------------------------------------------

    def provider(self, name: str) -> Any:
        from rotators import PROVIDERS, provider_module

        if name not in PROVIDERS:
            raise ConfigError(f"no rotator named {name!r}")
        try:
            return provider_module(name).build(self.cfg.providers.get(name, {}))
        except ConfigError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"[rotation.providers.{name}]: {exc}") from None

    def secret_store(self, name: str) -> Any:
        from rotators import store_module

        sc = self.cfg.stores.get(name)
        if sc is None:
            raise ConfigError(f"no store named {name!r} in [rotation.stores]")
        try:
            return store_module(sc.kind).build(sc.options())
        except ConfigError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"[rotation.stores.{name}]: {exc}") from None

    def notifier(self) -> Any:
        if self.alerts is None:
            return None
        from sentinel.alerts.rotation import SlackRotationNotifier

        return SlackRotationNotifier(self.store, self.alerts, self.public_url)

    def machine(self, state_rotator: str, store_name: str | None) -> Any:
        from rotators.machine import Machine, Policy
        from sentinel.store.rotations import SqlRotationLog

        c = self.cfg
        policy = Policy(
            max_attempts=c.max_attempts,
            backoff_seconds=c.backoff_seconds,
            backoff_max_seconds=c.backoff_max_seconds,
            verify_attempts=c.verify_attempts,
            purge_grace_seconds=c.purge_grace_seconds,
        )
        return Machine(
            SqlRotationLog(self.store),
            self.provider(state_rotator),
            self.secret_store(store_name) if store_name else None,
            self.notifier(),
            policy=policy,
        )

    # -- from a finding to a rotation --------------------------------------------------

    def resolve(self, finding_id: int, requested_by: str) -> NewRotation:
        """What rotating ``finding_id`` means: the credential, its rotator, where the
        replacement goes; a manual-remediation record when nothing can rotate it."""
        from sentinel.store.models import Finding

        with self.store.sessions() as s:
            f = s.get(Finding, finding_id)
            if f is None:
                raise NotFound(f"no finding {finding_id}")
            occ = _occurrences(s, f.id)
            siblings = _siblings(s, f) if f.rotator == "aws-iam-access-key" else []
            value = self._value(f)
            sib_values = [(g, self._value(g)) for g in siblings]
        from rotators import PROVIDERS

        rotator = f.rotator
        if not rotator or rotator not in PROVIDERS:
            why = (
                f"rule {f.rule_id} names no rotator"
                if not rotator
                else f"no rotator named {rotator!r} is available"
            )
            return self._manual(f, occ, why, requested_by)
        if value is None:
            return self._manual(
                f,
                occ,
                "the store does not hold this finding's value (no encryption key when it was found)",
                requested_by,
            )
        mode = mode_of(rotator)
        finding_ids = [f.id]
        if rotator == "aws-iam-access-key":
            key_id, secret = _aws_pair(value, sib_values)
            if key_id is None:
                return self._manual(
                    f, occ, "no AWS access key id was found beside this secret", requested_by
                )
            exposed = Credential(rotator, key_id, secret or "", {})
            identity_key = key_id
            finding_ids += [g.id for g, v in sib_values if v in (key_id, secret)]
        else:
            exposed = Credential(rotator, f.redacted, value, {})
            identity_key = value
        meta = {
            "sentinel-finding": str(f.id),
            "sentinel-rule": f.rule_id,
        }
        from sentinel.store.rotations import NewRotation

        if mode == "revoke":
            return NewRotation(
                rotator=rotator,
                mode="revoke",
                identity_key=identity_key,
                exposed=exposed,
                finding_ids=sorted(set(finding_ids)),
                finding_id=f.id,
                meta=meta,
                requested_by=requested_by,
            )
        target = self._target(f.rule_id, [o["target"] for o in occ])
        if target is None:
            return self._manual(
                f,
                occ,
                "no [[rotation.targets]] entry says which secret store the replacement goes to",
                requested_by,
            )
        path = self._path(target.path, f, occ, exposed)
        return NewRotation(
            rotator=rotator,
            mode="rotate",
            identity_key=identity_key,
            exposed=exposed,
            finding_ids=sorted(set(finding_ids)),
            finding_id=f.id,
            store_name=target.store,
            store_path=path,
            meta=meta,
            requested_by=requested_by,
        )

    def _value(self, f: Finding) -> str | None:
        if f.secret_sealed is None:
            return None
        from sentinel.store.crypto import SealError

        try:
            return self.store.keyring.open(f.secret_sealed, f.fingerprint)
        except SealError:
            return None

    def _target(self, rule_id: str, targets: Sequence[str]) -> Any:
        for t in self.cfg.targets:
            if not any(fnmatch.fnmatchcase(rule_id, pat) for pat in t.rules):
                continue
            if t.targets == ["*"] or any(
                fnmatch.fnmatchcase(tgt, pat) for pat in t.targets for tgt in targets
            ):
                return t
        return None

    def _path(
        self, template: str, f: Finding, occ: Sequence[dict[str, Any]], exposed: Credential
    ) -> str:
        target = occ[0]["target"] if occ else ""
        repo = PurePosixPath(target.rstrip("/")).name.removesuffix(".git") or "unknown"
        fields = {
            "repo": _safe(repo),
            "rule": _safe(f.rule_id),
            "finding": str(f.id),
            "identifier": _safe(exposed.identifier),
            "rotator": f.rotator or "",
        }
        try:
            return template.format_map(fields)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"[[rotation.targets]] path {template!r}: unknown field {exc}; "
                f"known: {', '.join(sorted(fields))}"
            ) from None

    def _manual(
        self, f: Finding, occ: Sequence[dict[str, Any]], why: str, requested_by: str
    ) -> NewRotation:
        from sentinel.store.rotations import NewRotation

        where = [
            {
                k: o.get(k)
                for k in (
                    "source",
                    "target",
                    "path",
                    "line",
                    "commit",
                    "image",
                    "layer",
                    "namespace",
                    "kind",
                    "name",
                )
            }
            for o in occ[:20]
        ]
        authors = sorted(
            {
                f"{o['author']} <{o['email']}>" if o.get("email") else o["author"]
                for o in occ
                if o.get("author")
            }
        )
        remediation = {
            "reason": why,
            "rule": f.rule_id,
            "description": f.description,
            "what_to_do": [
                f"Revoke this credential ({f.redacted}) at the provider that issued it and issue a new one.",
                "Put the new one in your secret manager; never in code or configuration.",
                "Find what used the old one (the places below) and move it to the new one.",
                "Remove the value from the history if the repository is shared, then rescan.",
                f"Mark the finding resolved: PATCH /v1/findings/{f.id}.",
            ],
            "where": where,
            "occurrences": len(occ),
            "committed_by": authors[:20],
        }
        return NewRotation(
            rotator=f.rotator or "manual",
            mode="manual",
            identity_key=f"finding:{f.id}",
            exposed=Credential(f.rotator or "manual", f.redacted, "", {}),
            finding_ids=[f.id],
            finding_id=f.id,
            remediation=remediation,
            requested_by=requested_by,
        )

    # -- the plan -----------------------------------------------------------------------

    def plan(self, finding_id: int) -> dict[str, Any]:
        """What ``rotate`` would do, touching nothing (``--dry-run``, ``dry_run``)."""
        req = self.resolve(finding_id, "dry-run")
        out: dict[str, Any] = {
            "finding_id": finding_id,
            "rotator": req.rotator,
            "mode": req.mode,
            "exposed": req.exposed.identifier,
            "findings": list(req.finding_ids),
        }
        if req.mode == "manual":
            out["remediation"] = req.remediation
            out["steps"] = []
            return out
        from rotators.base import REVOKE_STEPS, STEPS

        p: Plan = self.provider(req.rotator).plan(req.exposed)
        out.update(
            steps=list(REVOKE_STEPS if req.mode == "revoke" else STEPS),
            identity=p.identity,
            actions=list(p.actions),
            notes=list(p.notes),
        )
        if req.store_name:
            st = self.secret_store(req.store_name)
            out.update(
                store=req.store_name,
                store_kind=st.kind,
                path=req.store_path,
                location=st.describe(req.store_path),
                store_identity=st.identity(),
            )
        from sentinel.store.rotations import rotation_of_finding

        out["existing_rotation"] = rotation_of_finding(self.store, finding_id)
        return out

    # -- requesting and running -----------------------------------------------------

    def request(self, finding_id: int, requested_by: str) -> Outcome:
        """One rotation for the finding's credential (the existing one if there is)."""
        from sentinel.store.rotations import create_or_get, rotation_of_finding, view

        existing = rotation_of_finding(self.store, finding_id)
        if existing is not None:
            v = view(self.store, existing)
            assert v is not None
            return Outcome(existing, False, v)
        req = self.resolve(finding_id, requested_by)
        rid, created = create_or_get(self.store, req)
        v = view(self.store, rid)
        assert v is not None
        if created and req.mode == "manual":
            self._tell_manual(rid, v)
        return Outcome(rid, created, v)

    def _tell_manual(self, rid: str, v: dict[str, Any]) -> None:
        n = self.notifier()
        if n is None:
            return
        try:
            n.manual(v)
        except Exception as exc:
            log.error(
                "rotation %s: the manual-remediation alert failed: %s", rid, type(exc).__name__
            )

    def run(self, rotation_id: str, *, now_regardless: bool = False) -> dict[str, Any]:
        """Drive the rotation as far as it goes now; its view afterwards. Another
        process holding it: left to that one (the view says where it is)."""
        from sentinel.store.rotations import view

        v = view(self.store, rotation_id)
        if v is None:
            raise NotFound(f"no rotation {rotation_id}")
        if v["mode"] == "manual" or v["status"] in ("succeeded", "rolled_back", "failed"):
            return v
        if (
            not now_regardless
            and v["next_attempt_at"] is not None
            and v["next_attempt_at"] > utcnow()
        ):
            return v
        with _running_lock:
            if rotation_id in _running:
                return v  # another thread of this process runs it
            _running.add(rotation_id)
        try:
            return self._run_claimed(rotation_id, v)
        finally:
            with _running_lock:
                _running.discard(rotation_id)

    def _run_claimed(self, rotation_id: str, v: dict[str, Any]) -> dict[str, Any]:
        from sentinel.store.rotations import claim, release, view

        if not claim(self.store, rotation_id, self.holder, self.cfg.lease_seconds):
            log.info("rotation %s: held by another runner", rotation_id)
            return v
        try:
            m = self.machine(v["rotator"], v["store"])
            state: RotationState = m.run(rotation_id)
            log.info("rotation %s: %s", rotation_id, state.status)
        except ConfigError as exc:
            self._config_failure(rotation_id, str(exc))
        finally:
            release(self.store, rotation_id, self.holder)
        out = view(self.store, rotation_id)
        assert out is not None
        return out

    def _config_failure(self, rotation_id: str, message: str) -> None:
        from sentinel.store.rotations import SqlRotationLog

        lg = SqlRotationLog(self.store)
        lg.set_status(rotation_id, "failed", error=f"configuration: {message}"[:500])
        state = lg.load(rotation_id)
        n = self.notifier()
        if n is not None:
            n.rotation_event(state, "failed", f"cannot run: {message}")

    def retry(self, rotation_id: str, requested_by: str) -> bool:
        from sentinel.store.rotations import reset_for_retry

        return reset_for_retry(self.store, rotation_id, requested_by)

    # -- background ---------------------------------------------------------------------

    def tick(self) -> list[str]:
        """The leader's round: managed credentials due, then every due rotation."""
        from sentinel.store.rotations import due

        self.managed_round()
        ran = []
        for rid in due(self.store):
            try:
                self.run(rid)
                ran.append(rid)
            except Exception as exc:  # one rotation's trouble never stops the others
                log.error("rotation %s: run failed: %s", rid, type(exc).__name__)
        return ran

    def kick(self, rotation_ids: Sequence[str]) -> threading.Thread:
        """Run these now in a thread (auto-rotation right after a scan)."""

        def work() -> None:
            for rid in rotation_ids:
                try:
                    self.run(rid)
                except Exception as exc:
                    log.error("rotation %s: run failed: %s", rid, type(exc).__name__)

        t = threading.Thread(target=work, name="sentinel-rotation", daemon=True)
        t.start()
        return t

    def auto_for_scan(self, scan_id: str) -> list[str]:
        """``[rotation.auto]``: a rotation (or a remediation record) for each new
        finding of ``scan_id`` its rules and severities select."""
        from sqlalchemy import select

        from sentinel.store.models import Finding

        auto = self.cfg.auto
        if not auto.enabled:
            return []
        with self.store.sessions() as s:
            rows = list(
                s.execute(
                    select(Finding.id, Finding.rule_id, Finding.severity, Finding.status).where(
                        Finding.first_scan_id == scan_id
                    )
                )
            )
        ids = []
        for fid, rule, severity, status in rows:
            if status != "open" or severity not in auto.severities:
                continue
            if not any(fnmatch.fnmatchcase(rule, p) for p in auto.rules):
                continue
            try:
                out = self.request(fid, "auto")
            except (NotFound, ConfigError) as exc:
                log.error("auto-rotation of finding %s: %s", fid, exc)
                continue
            if out.view["mode"] != "manual" and out.rotation_id not in ids:
                ids.append(out.rotation_id)
        return ids

    # -- managed credentials ------------------------------------------------------------

    def managed_round(self, now: datetime | None = None) -> list[str]:
        """Start a rotation for each managed credential that is due."""
        from sqlalchemy import select

        from sentinel.store.models import ManagedCredential
        from sentinel.store.session import writing

        now = now or utcnow()
        started = []
        for m in self.cfg.managed:
            if not m.enabled:
                continue
            with self.store.sessions() as s:
                writing(s)
                row = s.get(ManagedCredential, m.name)
                if row is None:
                    row = ManagedCredential(name=m.name, rotator=m.rotator, rotations=0)
                    s.add(row)
                    s.flush()
                due_at = _due(row.last_rotated_at, m)
                row.next_due_at = due_at
                s.commit()
                last = row.last_rotation_id
            if due_at is not None and due_at > now:
                continue
            if last is not None:
                from sentinel.store.models import Rotation

                with self.store.sessions() as s:
                    st = s.scalar(select(Rotation.status).where(Rotation.id == last))
                if st in ("pending", "running", "waiting"):
                    continue
            try:
                rid = self.start_managed(m, now)
            except Exception as exc:
                log.error("managed credential %s: %s", m.name, exc)
                continue
            if rid:
                started.append(rid)
        return started

    def start_managed(self, m: ManagedCredentialConfig, now: datetime) -> str | None:
        """A rotation of managed credential ``m`` (its current value read from its
        store); the rotation id, recorded on the managed row."""
        from sentinel.store.models import ManagedCredential
        from sentinel.store.rotations import NewRotation, create_or_get
        from sentinel.store.session import writing

        current = self.secret_store(m.store).read_current(m.path)
        if not current:
            raise ConfigError(
                f"{m.store} holds nothing at {m.path}: seed it with the current credential"
            )
        exposed = credential_from_value(m.rotator, current, m.extra)
        mode = mode_of(m.rotator)
        with self.store.sessions() as s:
            row = s.get(ManagedCredential, m.name)
            n = row.rotations if row else 0
        req = NewRotation(
            rotator=m.rotator,
            mode="revoke" if mode == "revoke" else "rotate",
            identity_key=f"managed:{m.name}:{n}:{exposed.identifier}",
            exposed=exposed,
            finding_ids=[],
            store_name=m.store,
            store_path=m.path,
            meta={"sentinel-managed": m.name},
            requested_by="schedule:managed",
            managed_name=m.name,
        )
        rid, _created = create_or_get(self.store, req)
        with self.store.sessions() as s:
            writing(s)
            row = s.get(ManagedCredential, m.name)
            if row is not None:
                row.last_rotation_id = rid
            s.commit()
        log.info("managed credential %s: rotation %s started", m.name, rid)
        return rid

    def managed_views(self) -> list[dict[str, Any]]:
        from sentinel.store.models import ManagedCredential

        out = []
        with self.store.sessions() as s:
            for m in self.cfg.managed:
                row = s.get(ManagedCredential, m.name)
                last = row.last_rotated_at if row else None
                out.append(
                    {
                        "name": m.name,
                        "rotator": m.rotator,
                        "store": m.store,
                        "path": m.path,
                        "max_age_days": m.max_age_days,
                        "last_rotated_at": last,
                        "next_due_at": _due(last, m),
                        "last_rotation_id": row.last_rotation_id if row else None,
                        "rotations": row.rotations if row else 0,
                    }
                )
        return out


def _due(last: datetime | None, m: ManagedCredentialConfig) -> datetime | None:
    """None: due now (never rotated by Sentinel)."""
    if last is None:
        return None
    return last + timedelta(days=m.max_age_days - m.lead_days)


def credential_from_value(
    rotator: str, value: dict[str, str] | Any, extra: dict[str, str]
) -> Credential:
    """A managed credential's current value (as its store holds it) as a Credential."""
    v = dict(value)
    pairs = {
        "aws-iam-access-key": ("aws_access_key_id", "aws_secret_access_key"),
        "postgres-password": ("username", "password"),
        "mariadb-password": ("username", "password"),
        "vault-database-static-role": ("username", "password"),
    }
    ident_key, secret_key = pairs.get(rotator, ("identifier", "secret"))
    if ident_key not in v or secret_key not in v:
        raise ConfigError(
            f"the stored value of a {rotator} credential needs the fields {ident_key} and {secret_key}"
        )
    ex = {k: str(x) for k, x in v.items() if k not in (ident_key, secret_key)}
    ex.update(extra)
    return Credential(rotator, str(v[ident_key]), str(v[secret_key]), ex)


def _safe(text: str) -> str:
    """A path segment from scanned content: nothing that climbs or nests."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return out[:100] or "unknown"


def _occurrences(s: Any, finding_id: int, limit: int = 200) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from sentinel.store.models import Occurrence

    rows = s.scalars(
        select(Occurrence)
        .where(Occurrence.finding_id == finding_id)
        .order_by(Occurrence.id)
        .limit(limit)
    )
    cols = (
        "source",
        "target",
        "path",
        "line",
        "commit",
        "image",
        "layer",
        "cluster",
        "namespace",
        "kind",
        "name",
        "key",
        "author",
        "email",
        "date",
    )
    return [{c: getattr(o, c) for c in cols} for o in rows]


def _siblings(s: Any, f: Finding) -> list[Finding]:
    """Findings of the same rotator at the same place (an AWS key id and its secret a
    few lines apart in one file of one commit)."""
    from sqlalchemy import and_, func, select
    from sqlalchemy.orm import aliased

    from sentinel.store.models import Finding, Occurrence

    o1 = aliased(Occurrence)
    o2 = aliased(Occurrence)
    q = (
        select(Finding)
        .join(o2, o2.finding_id == Finding.id)
        .join(
            o1,
            and_(
                o1.finding_id == f.id,
                o1.target == o2.target,
                o1.path == o2.path,
                func.coalesce(o1.commit, "") == func.coalesce(o2.commit, ""),
                func.coalesce(o1.layer, "") == func.coalesce(o2.layer, ""),
                func.abs(o1.line - o2.line) <= SIBLING_LINES,
            ),
        )
        .where(Finding.id != f.id, Finding.rotator == f.rotator)
        .distinct()
        .limit(20)
    )
    return list(s.scalars(q))


def _aws_pair(
    value: str, siblings: Sequence[tuple[Any, str | None]]
) -> tuple[str | None, str | None]:
    """(access key id, secret access key) from a finding's value and its siblings'."""
    key_id = value if AWS_KEY_ID.match(value) else None
    secret = value if AWS_SECRET.match(value) else None
    for _g, v in siblings:
        if v is None:
            continue
        if key_id is None and AWS_KEY_ID.match(v):
            key_id = v
        elif secret is None and AWS_SECRET.match(v):
            secret = v
    return key_id, secret


def leader_job(rot: Rotations) -> Any:
    from sentinel.jobs.scheduler import LeaderJob

    return LeaderJob("rotations", rot.tick, rot.cfg.poll_seconds)


def on_scan(rot: Rotations) -> Callable[[str], object]:
    """After a scan is stored: the auto policy's rotations, run at once."""

    def hook(scan_id: str) -> None:
        ids = rot.auto_for_scan(scan_id)
        if ids:
            rot.kick(ids)

    return hook


def for_service(store: Store, settings: ServiceSettings) -> Rotations:
    """Rotations with Slack told, when ``[alerts.slack]`` is configured."""
    from sentinel.alerts import routing

    cfg = routing.parse(settings.alerts, f"service config {settings.source or '(defaults)'}")
    alerts = cfg if cfg.slack is not None else None
    public = (
        cfg.slack.api_base_url if cfg.slack is not None else None
    ) or settings.service.public_url
    return Rotations(store, settings, alerts=alerts, public_url=public)
