"""``sentinel tokens create|list|revoke``: API tokens, made against the store directly
(an operator on the service's machine)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

app = typer.Typer(help="API tokens (bearer tokens with scopes).", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it, e.g. ci.")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: findings:read, findings:write, scans:write, rotations:write, admin.",
        ),
    ],
    expires: Annotated[str, typer.Option("--expires", help="90d, 12h, 30m or never.")] = "90d",
) -> None:
    """Make a token and print it once (stdout, alone on its line); only its hash is kept."""
    import sys

    from sentinel.api import tokens
    from sentinel.errors import ConfigError
    from sentinel.store.facade import open_store
    from sentinel.store.models import AuditRecord
    from sentinel.store.session import writing

    try:
        sc = tokens.parse_scopes(scopes)
        exp = tokens.parse_expiry(expires)
    except tokens.TokenError as exc:
        raise ConfigError(str(exc)) from None
    store = open_store()
    try:
        with store.sessions() as s:
            writing(s)
            actor = f"cli:{getpass.getuser()}"
            try:
                made = tokens.make(s, name, sc, exp, actor)
            except tokens.TokenError as exc:
                raise ConfigError(str(exc)) from None
            s.add(
                AuditRecord(
                    token_id=None,
                    actor=actor,
                    action="token.create",
                    object_type="token",
                    object_id=str(made.row.id),
                    client="cli",
                    detail={"name": name, "scopes": sc},
                )
            )
            s.commit()
            tid = made.row.id
    finally:
        store.close()
    when = exp.isoformat(timespec="seconds") if exp else "never"
    print(
        f"sentinel: token {tid} {name!r} ({', '.join(sc)}), expires {when}; shown once:",
        file=sys.stderr,
    )
    print(made.token)


@app.command("list")
def list_() -> None:
    """Tokens with their scopes and state (never the tokens themselves)."""
    from sqlalchemy import select

    from sentinel.store.facade import open_store
    from sentinel.store.models import ApiToken, utcnow

    store = open_store()
    try:
        with store.sessions() as s:
            rows = s.scalars(select(ApiToken).order_by(ApiToken.id)).all()
    finally:
        store.close()
    now = utcnow()
    for r in rows:
        state = (
            "revoked"
            if r.revoked_at
            else "expired"
            if r.expires_at and r.expires_at <= now
            else "active"
        )
        exp = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never"
        print(f"{r.id}\t{r.name}\t{','.join(r.scopes)}\t{state}\texpires {exp}")


@app.command("revoke")
def revoke(ref: Annotated[str, typer.Argument(help="Token id or name.")]) -> None:
    """Revoke a token at once (every later request with it is refused)."""
    from sentinel.api import tokens
    from sentinel.errors import ConfigError
    from sentinel.store.facade import open_store
    from sentinel.store.models import AuditRecord
    from sentinel.store.session import writing

    store = open_store()
    try:
        with store.sessions() as s:
            writing(s)
            row = tokens.find(s, ref)
            if row is None:
                raise ConfigError(f"no active token {ref!r}")
            if tokens.revoke(row):
                s.add(
                    AuditRecord(
                        token_id=None,
                        actor=f"cli:{getpass.getuser()}",
                        action="token.revoke",
                        object_type="token",
                        object_id=str(row.id),
                        client="cli",
                        detail={"name": row.name},
                    )
                )
            s.commit()
            print(f"revoked token {row.id} {row.name!r}")
    finally:
        store.close()
