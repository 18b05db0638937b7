"""The rotation state machine: steps in order, each recorded before and after it runs.

``Machine.run(rotation_id)`` loads the rotation from its :class:`RotationLog`, skips
the steps already recorded as done, and runs the rest. It is safe to call again at any
time, after any crash: each step is idempotent, and what a step produced (the intent
read before ``create``, the replacement itself, sealed by the log) is recorded before
the next one starts.

Invariants (each has its own test in tests/test_rotation_machine.py):

- one replacement per rotation: ``create`` reuses a recorded replacement, and a
  provider's ``create`` removes one minted by an attempt whose result was lost;
- ``revoke`` never runs before ``store`` and ``test`` are done (checked here, not only
  implied by the order);
- the exposed credential is revoked once: a retried ``revoke`` finds it disabled;
- a failed ``test`` discards the pending version, rolls the replacement back, leaves
  the exposed credential as it was, and tells the notifier;
- transient failures (:class:`Retryable`) are recorded with the time of the next
  attempt (exponential backoff); the scheduler runs the rotation again then. When the
  attempts are spent, or the failure needs a person, the rotation is ``failed`` and
  the notifier is told: never a half-done state left silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rotators import failpoints
from rotators.base import (
    REVOKE_STEPS,
    STEPS,
    Blocked,
    Credential,
    Notifier,
    Plan,
    Retryable,
    RotationError,
    RotationLog,
    RotationState,
    Rotator,
    SecretStore,
    TestFailed,
    VerifyFailed,
)

log = logging.getLogger("rotators.machine")

TERMINAL = frozenset({"succeeded", "rolled_back", "failed", "manual"})


@dataclass(frozen=True)
class Policy:
    """Retries and the grace period of ``purge``."""

    max_attempts: int = 8  # per step
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 900.0
    verify_attempts: int = 5  # a revoked credential can take a moment to stop working
    purge_grace_seconds: float = 0.0

    def retry_at(self, attempt: int, now: datetime) -> datetime:
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempt - 1))
        return now + timedelta(seconds=delay)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def scrub(message: str, *secrets: str) -> str:
    """One line, at most 300 characters, with every known secret cut out."""
    line = " ".join(message.split())
    for s in secrets:
        if s and len(s) >= 4:
            line = line.replace(s, "[REDACTED]")
    return line[:300]


class StepRefused(RotationError):
    """An invariant forbids running a step now (a bug elsewhere, never the provider)."""


class Machine:
    def __init__(
        self,
        log_: RotationLog,
        provider: Any,  # a Rotator, or a Revoker for mode "revoke"
        store: SecretStore | None = None,
        notifier: Notifier | None = None,
        *,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.log = log_
        self.provider = provider
        self.store = store
        self.notifier = notifier
        self.policy = policy or Policy()
        self.clock = clock

    # -- the plan ---------------------------------------------------------------------

    def plan(self, state: RotationState) -> Plan:
        p: Plan = self.provider.plan(state.exposed)
        if state.mode == "rotate" and self.store is not None and state.store_path:
            return Plan(
                rotator=p.rotator,
                mode=p.mode,
                steps=p.steps,
                identity=p.identity,
                store=self.store.describe(state.store_path),
                path=state.store_path,
                actions=p.actions,
                notes=p.notes,
            )
        return p

    # -- running ----------------------------------------------------------------------

    def run(self, rotation_id: str) -> RotationState:
        state = self.log.load(rotation_id)
        if state.status in TERMINAL:
            return state
        if state.mode == "rotate" and self.store is None:
            raise StepRefused("a rotation needs a secret store and none was given")
        if state.status == "pending":
            self._tell(state, "started", f"rotation of {state.exposed.identifier} started")
        self.log.set_status(rotation_id, "running")
        for step in STEPS:
            state = self.log.load(rotation_id)
            if state.done(step):
                continue
            if not self._applies(state, step):
                self.log.end_step(
                    rotation_id, step, state="skipped", detail={"reason": self._skip_reason(state)}
                )
                continue
            if step == "purge" and not self._purge_due(state):
                return self.log.load(rotation_id)
            self._guard(state, step)
            attempt = self.log.begin_step(rotation_id, step)
            failpoints.hit("before", step)
            try:
                detail = self._do(state, step)
            except TestFailed as exc:
                return self._rolled_back(state, step, exc)
            except (Retryable, VerifyFailed) as exc:
                limit = (
                    self.policy.verify_attempts
                    if isinstance(exc, VerifyFailed)
                    else self.policy.max_attempts
                )
                return self._retry_or_fail(state, step, attempt, exc, limit)
            except RotationError as exc:
                return self._failed(state, step, exc)
            except Exception as exc:  # a provider's unexpected error: worth a retry
                err = RotationError(f"{type(exc).__name__}: {exc}")
                return self._retry_or_fail(state, step, attempt, err, self.policy.max_attempts)
            failpoints.hit("after", step)
            self.log.end_step(rotation_id, step, state="done", detail=detail)
        self.log.set_status(rotation_id, "succeeded")
        state = self.log.load(rotation_id)
        self._tell(state, "succeeded", self._summary(state))
        return state

    def _applies(self, state: RotationState, step: str) -> bool:
        if state.mode == "revoke":
            return step in REVOKE_STEPS
        return True

    def _skip_reason(self, state: RotationState) -> str:
        return "revoke-only provider: no replacement is minted from here"

    def _purge_due(self, state: RotationState) -> bool:
        """Purge waits out the grace period; the first time here sets its end."""
        now = self.clock()
        due = state.purge_after
        if due is None:
            # a provider whose revoke is final (a replaced password) has nothing to
            # delete later: its purge runs at once
            grace = self.policy.purge_grace_seconds if getattr(self.provider, "purges", True) else 0
            due = now + timedelta(seconds=grace)
            if due > now:
                self.log.set_status(state.id, "waiting", purge_after=due)
                self._tell(
                    state,
                    "revoked",
                    f"{state.exposed.identifier} revoked and verified; deleted after {due:%Y-%m-%d %H:%M} UTC",
                )
                return False
            self.log.set_status(state.id, "running", purge_after=due)
            return True
        if due > now:
            self.log.set_status(state.id, "waiting", purge_after=due)
            return False
        return True

    def _guard(self, state: RotationState, step: str) -> None:
        if state.mode != "rotate":
            return
        order = STEPS.index(step)
        missing = [s for s in STEPS[:order] if not state.done(s)]
        if missing:
            raise StepRefused(f"step {step} before {', '.join(missing)}")
        if step in ("revoke", "verify", "purge") and not (
            state.done("store") and state.done("test")
        ):
            raise StepRefused(f"{step} refused: the replacement is not stored and tested")

    def _do(self, state: RotationState, step: str) -> dict[str, Any]:
        p = self.provider
        exposed = state.exposed
        if step == "create":
            return self._create(state)
        if step == "revoke":
            performed = bool(p.revoke(exposed))
            return {"performed": performed}
        if step == "verify":
            p.verify(exposed)
            return {"refused": True}
        if step == "purge":
            performed = bool(p.purge(exposed)) if hasattr(p, "purge") else False
            if performed or state.mode == "rotate":
                p.verify(exposed)
            return {"performed": performed}
        new = state.replacement
        if new is None:
            raise StepRefused(f"step {step}: no replacement recorded")
        assert self.store is not None and state.store_path is not None
        rotator: Rotator = p
        path = state.store_path
        if step == "store":
            value = rotator.secret_value(new)
            version = self.store.stage(path, value, token=state.id, metadata=state.metadata)
            return {"version": version, "location": self.store.describe(path)}
        if step == "set":
            rotator.apply(exposed, new)
            return {}
        if step == "test":
            staged = self.store.read_staged(path, token=state.id)
            if staged != rotator.secret_value(new):
                raise TestFailed("the pending version in the store does not hold the replacement")
            rotator.test(new)
            return {"works": True}
        if step == "finish":
            self.store.promote(path, token=state.id)
            current = self.store.read_current(path)
            if current != rotator.secret_value(new):
                raise Retryable("the store's current version is not the replacement yet")
            return {"current": True}
        raise StepRefused(f"unknown step {step}")

    def _create(self, state: RotationState) -> dict[str, Any]:
        if state.mode != "rotate":
            return {}
        rotator: Rotator = self.provider
        if state.replacement is not None:  # recorded by an attempt that then crashed
            return {"identifier": state.replacement.identifier, "reused": True}
        intent: Mapping[str, Any] = state.intent
        if not intent:
            intent = rotator.prepare(state.exposed)
            self.log.save_intent(state.id, intent)
        new = rotator.create(state.exposed, intent)
        failpoints.hit("minted", "create")
        self.log.save_replacement(state.id, new)
        return {"identifier": new.identifier}

    # -- outcomes ---------------------------------------------------------------------

    def _secrets(self, state: RotationState) -> tuple[str, ...]:
        out = [state.exposed.secret]
        if state.replacement is not None:
            out.append(state.replacement.secret)
        return tuple(out)

    def _rolled_back(self, state: RotationState, step: str, exc: RotationError) -> RotationState:
        msg = scrub(str(exc), *self._secrets(state))
        self.log.fail_step(state.id, step, msg, retry_at=None)
        errors: list[str] = []
        if self.store is not None and state.store_path is not None:
            try:
                self.store.discard(state.store_path, token=state.id)
            except Exception as e:
                errors.append(f"discard: {scrub(str(e), *self._secrets(state))}")
        try:
            self.provider.rollback(state.exposed, state.replacement)
        except Exception as e:
            errors.append(f"rollback: {scrub(str(e), *self._secrets(state))}")
        if errors:  # the pending version or the replacement may still be there
            err = f"test failed ({msg}); the rollback did not complete: {'; '.join(errors)}"
            self.log.set_status(state.id, "failed", error=err[:500])
            state = self.log.load(state.id)
            self._tell(state, "failed", err)
            return state
        self.log.set_status(state.id, "rolled_back", error=msg)
        state = self.log.load(state.id)
        self._tell(
            state,
            "rolled_back",
            f"the replacement did not work ({msg}); it was rolled back and "
            f"{state.exposed.identifier} is untouched",
        )
        return state

    def _retry_or_fail(
        self, state: RotationState, step: str, attempt: int, exc: RotationError, limit: int
    ) -> RotationState:
        msg = scrub(str(exc), *self._secrets(state))
        if attempt >= limit:
            return self._failed(state, step, RotationError(f"{msg} (after {attempt} attempts)"))
        when = self.policy.retry_at(attempt, self.clock())
        asked = getattr(exc, "retry_after", None)  # the provider's Retry-After, if longer
        if isinstance(asked, int | float) and asked > 0:
            when = max(when, self.clock() + timedelta(seconds=min(asked, 3600)))
        self.log.fail_step(state.id, step, msg, retry_at=when)
        self.log.set_status(state.id, "waiting", error=msg)
        log.warning(
            "rotation %s: step %s attempt %d failed (%s); retry at %s",
            state.id,
            step,
            attempt,
            msg,
            when.isoformat(timespec="seconds"),
        )
        if attempt == 1:
            self._tell(state, "retrying", f"step {step} failed ({msg}); retrying with backoff")
        return self.log.load(state.id)

    def _failed(self, state: RotationState, step: str, exc: RotationError) -> RotationState:
        msg = scrub(str(exc), *self._secrets(state))
        self.log.fail_step(state.id, step, msg, retry_at=None)
        self.log.set_status(state.id, "failed", error=f"{step}: {msg}")
        state = self.log.load(state.id)
        what = "needs a person" if isinstance(exc, Blocked) else "failed"
        self._tell(state, "failed", f"step {step} {what}: {msg}")
        return state

    def _summary(self, state: RotationState) -> str:
        if state.mode == "revoke":
            return f"{state.exposed.identifier} revoked and verified refused"
        new = state.replacement.identifier if state.replacement else "?"
        return (
            f"{state.exposed.identifier} replaced by {new} (current in the store), "
            "revoked and verified refused"
        )

    def _tell(self, state: RotationState, event: str, detail: str) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.rotation_event(state, event, scrub(detail, *self._secrets(state)))
        except Exception as exc:  # telling people must not break the rotation
            log.error("rotation %s: notifier failed: %s", state.id, type(exc).__name__)


__all__ = ["TERMINAL", "Credential", "Machine", "Policy", "StepRefused", "scrub"]
