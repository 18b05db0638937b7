"""What a pre-receive hook reports to the service: one ``HookEvent`` per blocked push,
break-glass bypass or push let through unscanned.

The hook writes it to its spool and a detached deliverer posts it to
``{sentinel.serviceUrl}/v1/events`` (``sentinel.hooks.events``); the service's route
reads the same model. ``id`` is made once, by the hook, so a delivery the service has
already stored (a retry after a lost answer) is recognised and dropped.

No web framework here: the hook imports this module, the service's route too.
Findings are the hook's own log records (``prereceive._finding_record``): rule,
fingerprint, redacted preview and where; never a secret's value.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KINDS = ("push_blocked", "push_bypassed", "push_unscanned")
Kind = Literal["push_blocked", "push_bypassed", "push_unscanned"]
_OID = r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$"


class RefUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(max_length=4096)
    old: str = Field(pattern=_OID)
    new: str = Field(pattern=_OID)


class EventFinding(BaseModel):
    """One place a secret was found, as the hook logs it: no value, only its
    fingerprint and a redacted preview."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(max_length=200)
    fingerprint: str = Field(max_length=200)
    redacted: str = Field(max_length=400)
    path: str = Field(max_length=4096)
    line: int = Field(ge=0)
    column: int | None = Field(default=None, ge=0)
    commit: str | None = Field(default=None, max_length=64)
    author: str | None = Field(default=None, max_length=500)
    email: str | None = Field(default=None, max_length=500)
    date: str | None = Field(default=None, max_length=100)
    severity: str | None = Field(default=None, max_length=20)
    confidence: str | None = Field(default=None, max_length=20)


class HookEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    kind: Kind
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    repository: str = Field(max_length=4096)
    pusher: str = Field(max_length=500)
    # push_blocked: "secrets" | "oversize" | "time_budget" | "error" | "internal_error";
    # push_bypassed: "break_glass"; push_unscanned: "time_budget" | "error" | "internal_error"
    cause: str = Field(max_length=50)
    reason: str = Field(default="", max_length=2000)
    updates: list[RefUpdate] = Field(default_factory=list, max_length=10_000)
    findings: list[EventFinding] = Field(default_factory=list, max_length=10_000)
    # the id (``sentinel.fingerprint.key_id``) of the key the findings' fingerprints are
    # under: the service groups them with its own findings only when it is its key
    fingerprint_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{12}$")
    sentinel_version: str = Field(default="unknown", max_length=100)

    def body(self) -> bytes:
        """The JSON the deliverer posts (``at`` in ISO 8601, UTC)."""
        return self.model_dump_json().encode()


def sentinel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sentinel-secrets")
    except PackageNotFoundError:
        return "unknown"
