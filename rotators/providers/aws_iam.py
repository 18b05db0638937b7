"""AWS IAM access keys: mint a replacement, deactivate the exposed key, delete it later.

Every IAM call is made by a separate privileged identity (``iam``: a client built from
the configured admin credentials), never by the exposed key. What that identity needs is
shipped beside this module as ``aws_iam_policy.json``.

The exposed :class:`Credential`: ``identifier`` the access key id, ``secret`` its secret
access key when the finding holds it (else ""), ``extra["user"]`` the IAM user if known.

IAM allows two keys per user. ``create`` makes room only by dropping a key that is
neither the exposed one, nor active within ``recent_use_days`` (last used, or created
when never used), nor minted by this rotation; otherwise it raises :class:`Blocked`.
A key the user holds that was not in the intent (what ``prepare`` listed) was minted by
an earlier attempt whose secret was lost: ``create`` deletes it before minting, so the
user never holds two replacements.

moto (the tests' endpoint) still accepts a deactivated key, so "Inactive" is read from
IAM; "deleted" is proven by sts refusing the key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Literal

import botocore.exceptions

from rotators.aws import AwsAuth, error_code, translate
from rotators.base import (
    STEPS,
    Blocked,
    Credential,
    Plan,
    RotationError,
    TestFailed,
    VerifyFailed,
)

_BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
# what sts answers for a key that does not exist (deleted) or a secret that does not match
REFUSED_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "UnrecognizedClientException"}
)

KeyClient = Callable[[str, str, str], Any]  # (service, access key id, secret) -> boto3 client


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed: datetime = datetime.fromisoformat(value)
    return parsed


class AwsIamAccessKey:
    """A :class:`rotators.base.Rotator` for IAM user access keys."""

    name = "aws-iam-access-key"
    mode: Literal["rotate", "revoke"] = "rotate"

    def __init__(
        self,
        iam: Any,
        key_client: KeyClient,
        *,
        sts: Any = None,
        description: str = "aws",
        recent_use_days: float = 30,
        test_attempts: int = 6,
        test_delay: float = 2.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.iam = iam
        self.key_client = key_client
        self.sts = sts  # the privileged identity's, for plan()
        self.description = description
        self.recent_use_days = recent_use_days
        self.test_attempts = max(1, test_attempts)
        self.test_delay = test_delay
        self.clock = clock
        self._users: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _BOTO_ERRORS as exc:
            raise translate(exc, what) from None

    def _user_of(self, exposed: Credential) -> str | None:
        """The IAM user that owns the key, or None if IAM does not know the key."""
        key_id = exposed.identifier
        if key_id in self._users:
            return self._users[key_id]
        try:
            resp = self.iam.get_access_key_last_used(AccessKeyId=key_id)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "NoSuchEntity":
                user = exposed.extra.get("user")
                return user or None
            raise translate(exc, f"iam:GetAccessKeyLastUsed {key_id}") from None
        user = str(resp["UserName"])
        self._users[key_id] = user
        return user

    def _keys(self, user: str) -> list[dict[str, Any]]:
        """The user's keys: id, status, created, last_used (ISO 8601 or None)."""
        resp = self._call(
            f"iam:ListAccessKeys {user}", lambda: self.iam.list_access_keys(UserName=user)
        )
        out: list[dict[str, Any]] = []
        for meta in resp.get("AccessKeyMetadata", []):
            key_id = str(meta["AccessKeyId"])
            try:
                used = self.iam.get_access_key_last_used(AccessKeyId=key_id)
            except _BOTO_ERRORS as exc:
                if error_code(exc) == "NoSuchEntity":  # deleted between the two calls
                    continue
                raise translate(exc, f"iam:GetAccessKeyLastUsed {key_id}") from None
            out.append(
                {
                    "id": key_id,
                    "status": str(meta.get("Status", "")),
                    "created": _iso(meta.get("CreateDate")),
                    "last_used": _iso(used.get("AccessKeyLastUsed", {}).get("LastUsedDate")),
                }
            )
        return out

    def _status(self, exposed: Credential) -> str | None:
        """'Active', 'Inactive', or None if the key is gone."""
        user = self._user_of(exposed)
        if user is None:
            return None
        try:
            resp = self.iam.list_access_keys(UserName=user)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "NoSuchEntity":  # the user itself is gone
                return None
            raise translate(exc, f"iam:ListAccessKeys {user}") from None
        for meta in resp.get("AccessKeyMetadata", []):
            if meta["AccessKeyId"] == exposed.identifier:
                return str(meta["Status"])
        return None

    def _recent(self, key: Mapping[str, Any]) -> bool:
        last = _parse(key.get("last_used")) or _parse(key.get("created"))
        if last is None:
            return True  # nothing known: never assume it is safe to drop
        return self.clock() - last < timedelta(days=self.recent_use_days)

    def _delete(self, user: str, key_id: str) -> bool:
        try:
            self.iam.delete_access_key(UserName=user, AccessKeyId=key_id)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise translate(exc, f"iam:DeleteAccessKey {key_id}") from None
        return True

    def _admin_identity(self) -> str:
        if self.sts is not None:
            try:
                return str(self.sts.get_caller_identity()["Arn"])
            except _BOTO_ERRORS:
                pass
        return self.description

    # -- the Rotator protocol ---------------------------------------------------------

    def prepare(self, exposed: Credential) -> dict[str, Any]:
        user = self._user_of(exposed)
        if user is None:
            raise Blocked(
                f"access key {exposed.identifier} is not known to IAM in this account "
                "(already deleted, or another account): nothing to rotate from here"
            )
        keys = self._keys(user)
        if exposed.identifier not in {k["id"] for k in keys}:
            raise Blocked(
                f"access key {exposed.identifier} is not among IAM user {user}'s keys: "
                "nothing to rotate from here"
            )
        resp = self._call(f"iam:GetUser {user}", lambda: self.iam.get_user(UserName=user))
        return {
            "user": user,
            "user_arn": str(resp["User"]["Arn"]),
            "exposed": exposed.identifier,
            "keys": keys,
            "prepared_at": _iso(self.clock()),
        }

    def _droppable(
        self, keys: list[dict[str, Any]], exposed: Credential, known: set[str]
    ) -> list[dict[str, Any]]:
        return [
            k
            for k in keys
            if k["id"] != exposed.identifier and k["id"] in known and not self._recent(k)
        ]

    def create(self, exposed: Credential, intent: Mapping[str, Any]) -> Credential:
        user = str(intent["user"])
        known = {str(k["id"]) for k in intent.get("keys", [])}
        keys = self._keys(user)
        orphans = [k["id"] for k in keys if k["id"] not in known and k["id"] != exposed.identifier]
        for key_id in orphans:  # minted by an attempt whose secret was lost
            self._delete(user, key_id)
        keys = [k for k in keys if k["id"] not in orphans]
        dropped: list[str] = []
        if len(keys) >= 2:
            candidates = self._droppable(keys, exposed, known)
            if not candidates:
                others = ", ".join(k["id"] for k in keys if k["id"] != exposed.identifier)
                raise Blocked(
                    f"IAM user {user} already has two access keys and the other one "
                    f"({others}) was used or created within {self.recent_use_days:g} days: "
                    "delete one by hand, then retry"
                )
            oldest = min(candidates, key=lambda k: k.get("last_used") or k.get("created") or "")
            self._delete(user, oldest["id"])
            dropped.append(oldest["id"])
        try:
            resp = self.iam.create_access_key(UserName=user)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "LimitExceeded":
                raise Blocked(
                    f"IAM user {user} reached its two access keys while this rotation ran: "
                    "retry once one is deleted"
                ) from None
            raise translate(exc, f"iam:CreateAccessKey {user}") from None
        key = resp["AccessKey"]
        extra = {"user": user}
        if dropped:
            extra["dropped_unused"] = ",".join(dropped)
        if orphans:
            extra["dropped_orphans"] = ",".join(orphans)
        return Credential(
            kind=exposed.kind,
            identifier=str(key["AccessKeyId"]),
            secret=str(key["SecretAccessKey"]),
            extra=extra,
        )

    def secret_value(self, new: Credential) -> dict[str, str]:
        return {"aws_access_key_id": new.identifier, "aws_secret_access_key": new.secret}

    def apply(self, exposed: Credential, new: Credential) -> None:
        return None  # an access key works from the moment it is created

    def test(self, new: Credential) -> None:
        if not new.secret:
            raise TestFailed(f"no secret recorded for the new key {new.identifier}")
        user = new.extra.get("user", "")
        resp = self._call(f"iam:GetUser {user}", lambda: self.iam.get_user(UserName=user))
        want = str(resp["User"]["Arn"])
        sts = self.key_client("sts", new.identifier, new.secret)
        code = ""
        for attempt in range(self.test_attempts):
            if attempt:
                time.sleep(self.test_delay)  # a new key can take seconds to be accepted
            try:
                got = str(sts.get_caller_identity()["Arn"])
            except _BOTO_ERRORS as exc:
                code = error_code(exc)
                if code in REFUSED_CODES:
                    continue
                raise translate(exc, "sts:GetCallerIdentity with the new key") from None
            if got != want:
                raise TestFailed(f"the new key {new.identifier} signs as {got}, not {want}")
            return
        raise TestFailed(
            f"the new key {new.identifier} is refused by sts ({code}) "
            f"after {self.test_attempts} attempts"
        )

    def rollback(self, exposed: Credential, new: Credential | None) -> None:
        if new is None:
            return
        if new.identifier == exposed.identifier:
            raise RotationError("rollback refused: the replacement is the exposed key")
        user = new.extra.get("user") or self._user_of(new)
        if user:
            self._delete(user, new.identifier)

    def revoke(self, exposed: Credential) -> bool:
        status = self._status(exposed)
        if status != "Active":
            return False
        user = self._user_of(exposed)
        try:
            self.iam.update_access_key(
                UserName=user, AccessKeyId=exposed.identifier, Status="Inactive"
            )
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise translate(exc, f"iam:UpdateAccessKey {exposed.identifier}") from None
        return True

    def verify(self, exposed: Credential) -> None:
        status = self._status(exposed)
        if status == "Active":
            raise VerifyFailed(f"access key {exposed.identifier} is still Active in IAM")
        if status is not None or not exposed.secret:
            return  # Inactive, as IAM says; or gone, with no secret to try
        sts = self.key_client("sts", exposed.identifier, exposed.secret)
        try:
            sts.get_caller_identity()
        except _BOTO_ERRORS as exc:
            if error_code(exc) in REFUSED_CODES:
                return
            raise translate(exc, "sts:GetCallerIdentity with the exposed key") from None
        raise VerifyFailed(f"access key {exposed.identifier} is deleted yet sts still accepts it")

    def purge(self, exposed: Credential) -> bool:
        if self._status(exposed) is None:
            return False
        user = self._user_of(exposed)
        return bool(user) and self._delete(str(user), exposed.identifier)

    def plan(self, exposed: Credential) -> Plan:
        key_id = exposed.identifier
        notes: list[str] = []
        user: str | None = None
        keys: list[dict[str, Any]] = []
        try:
            user = self._user_of(exposed)
            if user is not None:
                keys = self._keys(user)
        except RotationError as exc:
            notes.append(f"could not read IAM: {exc}")
        u = user or "?"
        actions = [f"iam:GetAccessKeyLastUsed {key_id} (its user: {u})"]
        actions.append(f"iam:ListAccessKeys {u} ({len(keys)} key(s) now)")
        if user is None and not notes:
            notes.append(f"IAM does not know {key_id}: the rotation would stop as blocked")
        others = [k for k in keys if k["id"] != key_id]
        if len(keys) >= 2:
            candidates = self._droppable(keys, exposed, {k["id"] for k in keys})
            if candidates:
                actions.append(
                    f"iam:DeleteAccessKey {candidates[0]['id']} "
                    f"(unused for {self.recent_use_days:g} days, to make room)"
                )
            else:
                notes.append(
                    f"{u} has two keys and {', '.join(k['id'] for k in others)} was used "
                    f"within {self.recent_use_days:g} days: the rotation would stop as blocked"
                )
        actions += [
            f"iam:CreateAccessKey {u}",
            f"sts:GetCallerIdentity with the new key (expect {u})",
            f"iam:UpdateAccessKey {key_id} Status=Inactive",
            f"iam:ListAccessKeys {u} (expect {key_id} Inactive)",
            f"iam:DeleteAccessKey {key_id} (purge, after the grace period)",
        ]
        if exposed.secret:
            actions.append("sts:GetCallerIdentity with the exposed key (expect it refused)")
        return Plan(
            rotator=self.name,
            mode="rotate",
            steps=STEPS,
            identity=self._admin_identity(),
            actions=tuple(actions),
            notes=tuple(notes),
        )


def policy_document() -> dict[str, Any]:
    """The least-privilege IAM policy the privileged identity needs (aws_iam_policy.json).
    sts:GetCallerIdentity is not in it: AWS never requires a permission for that call."""
    text = resources.files("rotators.providers").joinpath("aws_iam_policy.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def build(options: Mapping[str, Any]) -> AwsIamAccessKey:
    """Options: ``region`` (required unless AWS_DEFAULT_REGION is set), ``endpoint_url``,
    the privileged identity as ``admin_profile`` or ``admin_access_key_id_env`` +
    ``admin_secret_access_key_env`` (+ ``admin_session_token_env``), ``recent_use_days``
    (default 30), ``test_attempts`` (6) and ``test_delay_seconds`` (2)."""
    auth = AwsAuth(options, prefix="admin_")
    try:
        days = float(options.get("recent_use_days", 30))
        attempts = int(options.get("test_attempts", 6))
        delay = float(options.get("test_delay_seconds", 2.0))
    except (TypeError, ValueError):
        raise RotationError(
            "recent_use_days, test_attempts and test_delay_seconds must be numbers"
        ) from None
    if days < 0 or attempts < 1 or delay < 0:
        raise RotationError("recent_use_days, test_delay_seconds >= 0 and test_attempts >= 1")
    return AwsIamAccessKey(
        auth.client("iam"),
        auth.client_for_key,
        sts=auth.client("sts"),
        description=auth.describe(),
        recent_use_days=days,
        test_attempts=attempts,
        test_delay=delay,
    )


__all__ = ["AwsIamAccessKey", "build", "policy_document"]
