"""The findings and scans API assembled for tests, on a real store (``db_url``), with
real tokens in ``api_tokens`` and, for scans, the real in-process job runner."""

from __future__ import annotations

import hashlib
import secrets
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

with warnings.catch_warnings():
    # starlette asks for its "httpx2" fork; httpx (FastAPI's own companion) still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from sentinel.store.models import ApiToken


def make_app(store: Any, settings: Any = None, runner: Any = None) -> FastAPI:
    from sentinel.api.app import create_app

    return create_app(store=store, settings=settings, runner=runner)


def make_token(
    store: Any,
    name: str,
    scopes: list[str],
    *,
    expired: bool = False,
    revoked: bool = False,
) -> str:
    lookup = secrets.token_hex(6)
    token = f"snt_{lookup}_{secrets.token_urlsafe(24).replace('_', 'x')}"
    now = datetime.now(UTC)
    with store.sessions() as s:
        s.add(
            ApiToken(
                name=name,
                lookup=lookup,
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                scopes=scopes,
                expires_at=now - timedelta(days=1) if expired else now + timedelta(days=90),
                revoked_at=now if revoked else None,
            )
        )
        s.commit()
    return token


__all__ = ["TestClient", "bearer", "make_app", "make_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
