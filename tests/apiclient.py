"""The real app on a real store for API tests, and tokens made as `sentinel tokens
create` makes them."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def app_for(store: Any, settings: Any = None, runner: Any = None) -> Any:
    from sentinel.api.app import create_app

    return create_app(store, settings, runner)


def new_token(
    store: Any, name: str, scopes: list[str], *, expired: bool = False, revoked: bool = False
) -> str:
    from sentinel.api import tokens
    from sentinel.store.models import utcnow

    with store.sessions() as s:
        exp = utcnow() + (timedelta(seconds=-5) if expired else timedelta(days=1))
        made = tokens.make(s, name, scopes, exp, "test")
        if revoked:
            tokens.revoke(made.row)
        s.commit()
        return made.token


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


__all__ = ["TestClient", "app_for", "bearer", "new_token"]
