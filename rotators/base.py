"""What the rotation state machine talks to, as Protocols.

The machine (``rotators.machine``) drives one rotation through the steps below, in
order, each recorded before and after it runs through a :class:`RotationLog`. It
imports neither ``sentinel`` nor a database: the store implements ``RotationLog``,
and the caller hands in a :class:`Rotator` (or a :class:`Revoker`) and a
:class:`SecretStore` already built with their clients (boto3, hvac, a database
connection), so each part is tested against the real server on its own.

Steps (the AWS Secrets Manager rotation protocol, plus the revocation of the
exposed credential and the proof of it):

``create``  mint the replacement at the provider (``Rotator.create``)
``store``   write it to the secret store as a pending version (``SecretStore.stage``)
``set``     apply it where it must be applied (``Rotator.apply``: ``ALTER ROLE``)
``test``    prove it works (``Rotator.test``); a failure rolls back
``finish``  make the pending version current (``SecretStore.promote``)
``revoke``  disable the exposed credential (``Rotator.revoke``)
``verify``  prove the exposed credential no longer works (``Rotator.verify``)
``purge``   after a grace period, delete what ``revoke`` only disabled
            (``Rotator.purge``: an IAM key is deactivated, then deleted), then
            verify again

A revoke-only provider (GitHub, Slack, GitLab, Vault tokens) has no replacement
to mint: its first five steps are recorded as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

STEPS: tuple[str, ...] = ("create", "store", "set", "test", "finish", "revoke", "verify", "purge")
# the steps a revoke-only provider runs; the others are recorded as skipped
REVOKE_STEPS: tuple[str, ...] = ("revoke", "verify")

StepState = Literal["pending", "running", "done", "skipped", "failed"]
RotationStatus = Literal[
    "pending",  # recorded, not started
    "running",
    "waiting",  # a step failed in a way worth retrying, or purge waits out its grace
    "succeeded",  # replaced (or revoked), verified, purged
    "rolled_back",  # test failed: the replacement is gone, the exposed one untouched
    "failed",  # needs a person (two-key limit, verify failed, retries spent)
    "manual",  # no rotator: a remediation record, not a rotation
]


class RotationError(Exception):
    """A step could not complete. The message is one line, never a secret."""

    retryable = False


class Retryable(RotationError):
    """Transient: the secret store is down, the provider answered 5xx or throttled.
    The machine records it and the scheduler runs the step again with backoff."""

    retryable = True


class TestFailed(RotationError):
    """The replacement does not work: the machine rolls it back."""

    __test__ = False  # a name pytest would otherwise collect where a test imports it


class Blocked(RotationError):
    """The provider's state forbids going on without a person (e.g. an IAM user that
    already has two keys, neither one safe to drop)."""


class VerifyFailed(RotationError):
    """The exposed credential still works after it was revoked."""


@dataclass(frozen=True)
class Credential:
    """One credential. ``identifier`` is its public part (an access key id, a role at a
    host, a token's prefix); ``secret`` the part that must never be shown; ``extra``
    public attributes a provider needs (the IAM user, the database host)."""

    kind: str
    identifier: str
    secret: str = field(repr=False, default="")
    extra: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never the secret, whatever the caller prints
        return f"Credential(kind={self.kind!r}, identifier={self.identifier!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Plan:
    """What a rotation would do, for ``--dry-run``: nothing is touched to make it."""

    rotator: str
    mode: Literal["rotate", "revoke", "manual"]
    steps: tuple[str, ...]
    identity: str  # who the provider calls are made as (never the exposed credential)
    store: str | None = None  # the secret store's description
    path: str | None = None
    actions: tuple[str, ...] = ()  # one line per provider call, in order
    notes: tuple[str, ...] = ()


@runtime_checkable
class SecretStore(Protocol):
    """Where the replacement goes. Every method is idempotent on ``token`` (the
    rotation's own id), so a step retried after a crash writes nothing twice."""

    kind: str

    def describe(self, path: str) -> str:
        """Where ``path`` is, for a plan or a message (no secret)."""
        ...

    def identity(self) -> str:
        """Who this store authenticates as."""
        ...

    def stage(
        self, path: str, value: Mapping[str, str], *, token: str, metadata: Mapping[str, str]
    ) -> str:
        """Write ``value`` as the pending version of ``path`` (created if absent);
        returns the version's id. Calling it again with the same token returns the
        same version and writes nothing new."""
        ...

    def read_staged(self, path: str, *, token: str) -> Mapping[str, str] | None:
        """The pending version written with ``token``, or None."""
        ...

    def promote(self, path: str, *, token: str) -> None:
        """Make the pending version current, the old current kept as previous."""
        ...

    def discard(self, path: str, *, token: str) -> None:
        """Remove the pending version (a rollback); the current one is untouched."""
        ...

    def read_current(self, path: str) -> Mapping[str, str] | None:
        """The current version's value, or None if the secret does not exist."""
        ...


@runtime_checkable
class Revoker(Protocol):
    """A provider that can only disable a credential (no replacement from here)."""

    name: str
    mode: Literal["rotate", "revoke"]

    def plan(self, exposed: Credential) -> Plan:
        """What would be done; may read, never writes."""
        ...

    def revoke(self, exposed: Credential) -> bool:
        """Disable ``exposed``. True if this call changed something, False if it was
        already disabled (so a retried step revokes exactly once)."""
        ...

    def verify(self, exposed: Credential) -> None:
        """Raise :class:`VerifyFailed` if ``exposed`` still works."""
        ...


@runtime_checkable
class Rotator(Revoker, Protocol):
    """A provider that mints a replacement, then revokes the exposed credential."""

    def prepare(self, exposed: Credential) -> dict[str, Any]:
        """Read-only facts recorded before ``create`` runs (e.g. the IAM user and the
        keys it has): what a resumed ``create`` reconciles against."""
        ...

    def create(self, exposed: Credential, intent: Mapping[str, Any]) -> Credential:
        """Mint the replacement. If an earlier attempt minted one whose secret was
        lost in a crash, remove it first: a rotation never leaves two replacements."""
        ...

    def secret_value(self, new: Credential) -> dict[str, str]:
        """The fields the secret store keeps for ``new``."""
        ...

    def apply(self, exposed: Credential, new: Credential) -> None:
        """Put ``new`` in force where that is a separate act (a role's password)."""
        ...

    def test(self, new: Credential) -> None:
        """Raise :class:`TestFailed` unless ``new`` works."""
        ...

    def rollback(self, exposed: Credential, new: Credential | None) -> None:
        """Undo ``create`` and ``apply``: ``new`` gone, ``exposed`` as it was."""
        ...

    def purge(self, exposed: Credential) -> bool:
        """After the grace period, delete what ``revoke`` disabled. False if there
        is nothing more to do (already deleted, or revoke was final). A provider
        whose revoke is always final says so with a class attribute ``purges = False``
        and the machine does not wait out the grace period for it."""
        ...


@dataclass
class StepRecord:
    name: str
    state: StepState = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RotationState:
    """A rotation as the log holds it."""

    id: str
    rotator: str
    mode: Literal["rotate", "revoke", "manual"]
    exposed: Credential
    status: RotationStatus = "pending"
    store_path: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    intent: dict[str, Any] = field(default_factory=dict)
    replacement: Credential | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # finding, rule: for the store
    purge_after: datetime | None = None

    def step(self, name: str) -> StepRecord:
        return self.steps.setdefault(name, StepRecord(name))

    def done(self, name: str) -> bool:
        return self.step(name).state in ("done", "skipped")


@runtime_checkable
class RotationLog(Protocol):
    """How the machine persists a rotation. Each call is committed before it returns:
    a crash after a call never loses what it recorded."""

    def load(self, rotation_id: str) -> RotationState: ...

    def begin_step(self, rotation_id: str, step: str) -> int:
        """Record ``step`` as running (attempts + 1, started now); returns the attempt."""
        ...

    def end_step(
        self,
        rotation_id: str,
        step: str,
        *,
        state: Literal["done", "skipped"],
        detail: Mapping[str, Any],
    ) -> None: ...

    def fail_step(
        self, rotation_id: str, step: str, error: str, *, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt; ``retry_at`` when it is worth another."""
        ...

    def save_intent(self, rotation_id: str, intent: Mapping[str, Any]) -> None: ...

    def save_replacement(self, rotation_id: str, new: Credential) -> None:
        """Keep the replacement (sealed: never in clear) before anything else uses it."""
        ...

    def set_status(
        self,
        rotation_id: str,
        status: RotationStatus,
        *,
        error: str | None = None,
        purge_after: datetime | None = None,
    ) -> None: ...


class Notifier(Protocol):
    """Told when a rotation starts, succeeds, fails, rolls back or needs a person."""

    def rotation_event(self, state: RotationState, event: str, detail: str) -> None: ...
