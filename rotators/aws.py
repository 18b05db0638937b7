"""What the AWS store and the IAM rotator share: clients built from a TOML table, and
botocore's errors mapped onto the rotation's.

Credentials never sit in the configuration: a table names a profile (``profile``) or
the environment variables that hold the key (``access_key_id_env``,
``secret_access_key_env``, optionally ``session_token_env``); with neither, boto3's own
chain is used (environment, shared files, instance role).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from rotators.base import Retryable, RotationError

# error codes AWS uses for "slow down" and "try again later"
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "InternalFailure",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceFailure",
    }
)

CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


def _str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RotationError(f"option {key} must be a string")
    return value


class AwsAuth:
    """Where a client's credentials come from, and how to say so without a secret."""

    def __init__(self, options: Mapping[str, Any], *, prefix: str = "") -> None:
        self.region = _str(options, "region") or os.environ.get("AWS_DEFAULT_REGION")
        if not self.region:
            raise RotationError("option region is required")
        self.endpoint_url = _str(options, "endpoint_url")
        self.profile = _str(options, f"{prefix}profile")
        self.key_env = _str(options, f"{prefix}access_key_id_env")
        self.secret_env = _str(options, f"{prefix}secret_access_key_env")
        self.token_env = _str(options, f"{prefix}session_token_env")
        if bool(self.key_env) != bool(self.secret_env):
            raise RotationError(
                f"options {prefix}access_key_id_env and {prefix}secret_access_key_env go together"
            )
        if self.profile and self.key_env:
            raise RotationError(f"give {prefix}profile or {prefix}access_key_id_env, not both")
        if any(f"{prefix}{k}" in options for k in ("access_key_id", "secret_access_key")):
            raise RotationError(
                "credentials do not go in the configuration: name the environment "
                f"variables that hold them ({prefix}access_key_id_env, {prefix}secret_access_key_env)"
            )

    def describe(self) -> str:
        if self.profile:
            source = f"profile {self.profile}"
        elif self.key_env:
            source = f"key from ${self.key_env}"
        else:
            source = "default credential chain"
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"aws {self.region} ({source}){where}"

    def session(self) -> boto3.session.Session:
        if self.profile:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        if self.key_env and self.secret_env:
            key = os.environ.get(self.key_env)
            secret = os.environ.get(self.secret_env)
            if not key or not secret:
                raise RotationError(
                    f"environment variables {self.key_env} and {self.secret_env} must be set"
                )
            token = os.environ.get(self.token_env) if self.token_env else None
            return boto3.session.Session(
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                aws_session_token=token,
                region_name=self.region,
            )
        return boto3.session.Session(region_name=self.region)

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)

    def client_for_key(self, service: str, access_key_id: str, secret_access_key: str) -> Any:
        """A client signed with a given key (the replacement, or the exposed one when
        proving it is refused), at the same endpoint and region."""
        return boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=self.region,
        ).client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def translate(exc: Exception, what: str) -> RotationError:
    """A botocore error as the rotation's: throttling, 5xx and connection failures are
    :class:`Retryable`; everything else a one-line :class:`RotationError`."""
    if isinstance(exc, RotationError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "")) or "error"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = _one_line(str(err.get("Message", "")))
        if code in RETRYABLE_CODES or status >= 500 or (code.isdigit() and int(code) >= 500):
            return Retryable(f"{what}: {code} (HTTP {status}), will retry")
        return RotationError(f"{what}: {code}: {message}" if message else f"{what}: {code}")
    if isinstance(
        exc,
        botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | botocore.exceptions.ConnectionClosedError,
    ):
        return Retryable(f"{what}: {type(exc).__name__}: {_one_line(str(exc))}")
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.ProfileNotFound
    ):
        return RotationError(f"{what}: {_one_line(str(exc))}")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return RotationError(f"{what}: {type(exc).__name__}: {_one_line(str(exc))}")
    return RotationError(f"{what}: {type(exc).__name__}")


__all__ = ["AwsAuth", "error_code", "translate"]
