"""API tokens: made once, shown once, kept as a SHA-256 hash; scoped, expiring,
revocable."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sentinel.store.models import ApiToken, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SCOPES = ("findings:read", "findings:write", "scans:write", "rotations:write", "admin")


class TokenError(ValueError):
    pass


def parse_scopes(text: str | list[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = sorted({s.strip() for s in items if s.strip()})
    if not scopes:
        raise TokenError("give at least one scope: " + ", ".join(SCOPES))
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise TokenError(f"unknown scope {bad[0]!r}; scopes are: {', '.join(SCOPES)}")
    return scopes


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """``90d``, ``12h``, ``30m`` or ``never``."""
    if text is None or text.strip().lower() == "never":
        return None
    m = re.fullmatch(r"\s*(\d{1,5})\s*([dhm])\s*", text.lower())
    if not m:
        raise TokenError(
            f"--expires {text!r}: use a number of days, hours or minutes (90d, 12h, 30m) or never"
        )
    n, unit = int(m.group(1)), m.group(2)
    if n == 0:
        raise TokenError("--expires must be more than zero")
    delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]
    return (now or utcnow()) + delta


@dataclass(frozen=True)
class Made:
    row: ApiToken
    token: str  # shown once


def make(
    session: Session, name: str, scopes: list[str], expires_at: datetime | None, created_by: str
) -> Made:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise TokenError("a token name is 1 to 100 printable characters")
    lookup = secrets.token_hex(6)
    token = f"snt_{lookup}_{secrets.token_urlsafe(30).replace('_', 'x')}"
    row = ApiToken(
        name=name,
        lookup=lookup,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        scopes=parse_scopes(scopes),
        expires_at=expires_at,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return Made(row, token)


def find(session: Session, ref: str) -> ApiToken | None:
    """A token by id or by name (the newest unrevoked one of that name)."""
    from sqlalchemy import select

    if ref.isdigit():
        return session.get(ApiToken, int(ref))
    return session.scalars(
        select(ApiToken)
        .where(ApiToken.name == ref, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.id.desc())
    ).first()


def revoke(row: ApiToken) -> bool:
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
