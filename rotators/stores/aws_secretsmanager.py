"""AWS Secrets Manager as the rotation's secret store, through boto3.

Sentinel drives Secrets Manager's rotation protocol itself (never ``RotateSecret``,
which would need a Lambda): the replacement is written as a version whose id is the
rotation's token and that carries the staging label ``AWSPENDING``; ``promote`` moves
``AWSCURRENT`` onto it (Secrets Manager then puts ``AWSPREVIOUS`` on the old current
one) and takes ``AWSPENDING`` off. Every read names a staging label.

A secret that does not exist yet is created with the first value (tagged with the
finding, the rule and the rotation). Secrets Manager makes a secret's first version
``AWSCURRENT`` at once, whatever is asked, so a new secret's pending value is current
from the start; ``AWSPENDING`` is put on it too, and the protocol runs unchanged.

The value is a JSON object of strings (``{"aws_access_key_id": ..., ...}``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import botocore.exceptions

from rotators.aws import AwsAuth, error_code, translate
from rotators.base import RotationError

PENDING = "AWSPENDING"
CURRENT = "AWSCURRENT"
TAG_PREFIX = "sentinel:"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9-]{32,64}$")
_TAG_BAD = re.compile(r"[^\w .:/=+\-@]")
_NS = uuid.UUID("6f0d5d3e-6a43-4b53-9a57-3c0e2f1d5a11")

T = TypeVar("T")
_BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def version_id(token: str) -> str:
    """The version id a rotation's token maps to: the token itself when Secrets Manager
    accepts it as a ClientRequestToken (32 to 64 characters), else a UUID derived from it."""
    if _TOKEN_RE.match(token):
        return token
    return str(uuid.uuid5(_NS, token))


def _tag(key: str, value: str) -> dict[str, str]:
    return {
        "Key": _TAG_BAD.sub("_", f"{TAG_PREFIX}{key}")[:128],
        "Value": _TAG_BAD.sub("_", value)[:256],
    }


class SecretsManagerStore:
    """A :class:`rotators.base.SecretStore` on one account and region. ``client`` is a
    boto3 ``secretsmanager`` client; ``sts`` (optional) one with the same credentials,
    for :meth:`identity`."""

    kind = "aws-secretsmanager"

    def __init__(
        self,
        client: Any,
        *,
        sts: Any = None,
        description: str = "aws-secretsmanager",
        kms_key_id: str | None = None,
    ) -> None:
        self.client = client
        self.sts = sts
        self.description = description
        self.kms_key_id = kms_key_id

    # -- describing -------------------------------------------------------------------

    def describe(self, path: str) -> str:
        if path.startswith("arn:"):
            return f"aws-secretsmanager {path}"
        region = getattr(getattr(self.client, "meta", None), "region_name", None) or "?"
        return f"aws-secretsmanager {region}:{path}"

    def identity(self) -> str:
        if self.sts is not None:
            try:
                arn: str = self.sts.get_caller_identity()["Arn"]
                return arn
            except _BOTO_ERRORS:
                pass
        return self.description

    # -- the protocol -----------------------------------------------------------------

    def stage(
        self, path: str, value: Mapping[str, str], *, token: str, metadata: Mapping[str, str]
    ) -> str:
        vid = version_id(token)
        body = _encode(value)
        stages = self._stages(path)
        if stages is None:
            if self._create(path, body, vid, token, metadata):
                self._label_pending(path, vid, None)
                return vid
            stages = self._stages(path)  # created meanwhile by someone else
            if stages is None:
                raise RotationError(f"{self.describe(path)}: exists and does not exist")
        if vid in stages:  # a retry: that version is written already, write nothing
            written = self._read(path, vid, stages[vid])
            if written != dict(value):
                raise RotationError(
                    f"{self.describe(path)}: version {vid} already holds another value"
                )
            if CURRENT not in stages[vid] and PENDING not in stages[vid]:
                self._label_pending(path, vid, _holder(stages, PENDING))
            elif CURRENT in stages[vid] and PENDING not in stages[vid] and len(stages) == 1:
                self._label_pending(path, vid, None)  # created, then the label was lost
            return vid
        self._call(
            "put_secret_value",
            path,
            lambda: self.client.put_secret_value(
                SecretId=path,
                ClientRequestToken=vid,
                SecretString=body,
                VersionStages=[PENDING],
            ),
        )
        return vid

    def read_staged(self, path: str, *, token: str) -> Mapping[str, str] | None:
        vid = version_id(token)
        stages = self._stages(path)
        if stages is None or PENDING not in stages.get(vid, []):
            return None
        return self._read(path, vid, [PENDING])

    def promote(self, path: str, *, token: str) -> None:
        vid = version_id(token)
        stages = self._stages(path)
        if stages is None or vid not in stages:
            raise RotationError(f"{self.describe(path)}: no version {vid} to promote")
        if CURRENT not in stages[vid]:
            current = _holder(stages, CURRENT)
            kwargs: dict[str, str] = {"MoveToVersionId": vid}
            if current is not None:
                kwargs["RemoveFromVersionId"] = current
            self._call(
                "update_secret_version_stage",
                path,
                lambda: self.client.update_secret_version_stage(
                    SecretId=path, VersionStage=CURRENT, **kwargs
                ),
            )
        if PENDING in stages[vid]:
            self._unlabel_pending(path, vid)

    def discard(self, path: str, *, token: str) -> None:
        vid = version_id(token)
        stages = self._stages(path)
        if stages is None or PENDING not in stages.get(vid, []):
            return
        self._unlabel_pending(path, vid)

    def read_current(self, path: str) -> Mapping[str, str] | None:
        try:
            resp = self.client.get_secret_value(SecretId=path, VersionStage=CURRENT)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise translate(exc, f"get_secret_value {self.describe(path)}") from None
        return _decode(resp.get("SecretString"), self.describe(path))

    # -- helpers ----------------------------------------------------------------------

    def _call(self, op: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _BOTO_ERRORS as exc:
            raise translate(exc, f"{op} {self.describe(path)}") from None

    def _stages(self, path: str) -> dict[str, list[str]] | None:
        """Version id -> staging labels, or None if the secret does not exist."""
        try:
            resp = self.client.describe_secret(SecretId=path)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise translate(exc, f"describe_secret {self.describe(path)}") from None
        if resp.get("DeletedDate"):
            raise RotationError(f"{self.describe(path)}: scheduled for deletion; restore it first")
        raw = resp.get("VersionIdsToStages") or {}
        return {str(k): [str(s) for s in v] for k, v in raw.items()}

    def _read(self, path: str, vid: str, labels: list[str]) -> dict[str, str]:
        kwargs: dict[str, str] = {"VersionId": vid}
        if labels:
            kwargs["VersionStage"] = PENDING if PENDING in labels else labels[0]
        resp = self._call(
            "get_secret_value",
            path,
            lambda: self.client.get_secret_value(SecretId=path, **kwargs),
        )
        return _decode(resp.get("SecretString"), self.describe(path))

    def _create(
        self, path: str, body: str, vid: str, token: str, metadata: Mapping[str, str]
    ) -> bool:
        """Create the secret with its first version; False if it exists already."""
        tags = [_tag(k, v) for k, v in sorted(metadata.items())]
        tags.append(_tag("rotation", token))
        kwargs: dict[str, Any] = {
            "Name": path,
            "ClientRequestToken": vid,  # a retried create is a no-op
            "SecretString": body,
            "Description": "Written by Sentinel's credential rotation",
            "Tags": tags,
        }
        if self.kms_key_id:
            kwargs["KmsKeyId"] = self.kms_key_id
        try:
            self.client.create_secret(**kwargs)
        except _BOTO_ERRORS as exc:
            if error_code(exc) == "ResourceExistsException":
                return False
            raise translate(exc, f"create_secret {self.describe(path)}") from None
        return True

    def _label_pending(self, path: str, vid: str, holder: str | None) -> None:
        kwargs: dict[str, str] = {"MoveToVersionId": vid}
        if holder is not None and holder != vid:
            kwargs["RemoveFromVersionId"] = holder
        self._call(
            "update_secret_version_stage",
            path,
            lambda: self.client.update_secret_version_stage(
                SecretId=path, VersionStage=PENDING, **kwargs
            ),
        )

    def _unlabel_pending(self, path: str, vid: str) -> None:
        self._call(
            "update_secret_version_stage",
            path,
            lambda: self.client.update_secret_version_stage(
                SecretId=path, VersionStage=PENDING, RemoveFromVersionId=vid
            ),
        )


def _holder(stages: Mapping[str, list[str]], label: str) -> str | None:
    for vid, labels in stages.items():
        if label in labels:
            return vid
    return None


def _encode(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _decode(text: str | None, where: str) -> dict[str, str]:
    try:
        data = json.loads(text or "")
    except ValueError:
        raise RotationError(f"{where}: the value is not a JSON object") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise RotationError(f"{where}: the value is not a JSON object of strings")
    return data


def build(options: Mapping[str, Any]) -> SecretsManagerStore:
    """Options: ``region`` (required unless AWS_DEFAULT_REGION is set), ``endpoint_url``,
    ``profile`` or ``access_key_id_env`` + ``secret_access_key_env`` (+
    ``session_token_env``), ``kms_key_id``."""
    auth = AwsAuth(options)
    kms = options.get("kms_key_id")
    return SecretsManagerStore(
        auth.client("secretsmanager"),
        sts=auth.client("sts"),
        description=auth.describe(),
        kms_key_id=str(kms) if kms else None,
    )


__all__ = ["SecretsManagerStore", "build", "version_id"]
