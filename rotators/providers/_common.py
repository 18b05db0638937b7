"""What the providers share: the new password and the public parts of a credential for the
database rotators, and reading a privileged secret from the environment."""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping

from rotators.base import Credential, RotationError

# letters, digits, '-' and '_': nothing a libpq key=value string, a URL's userinfo, a
# MariaDB option file or a shell needs to quote or escape
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_"
PASSWORD_LENGTH = 40  # 240 bits


def new_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def env_password(name: str | None, rotator: str) -> str | None:
    """The privileged password from the environment variable ``name`` (None when no
    variable is configured: trust, peer, a .pgpass file or a client certificate)."""
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise RotationError(f"{rotator}: environment variable {name} is not set")
    return value


def extra(cred: Credential, key: str, default: str) -> str:
    value = cred.extra.get(key)
    return value if value else default


def replacement(exposed: Credential, extras: Mapping[str, str]) -> Credential:
    """The exposed credential's public parts with a freshly minted password."""
    return Credential(
        kind=exposed.kind,
        identifier=exposed.identifier,
        secret=new_password(),
        extra=dict(extras),
    )


def one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:300]
