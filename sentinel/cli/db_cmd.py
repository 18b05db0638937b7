"""``sentinel db upgrade|current``: the store's schema."""

from __future__ import annotations

import typer

app = typer.Typer(help="The findings store's schema (migrations).", no_args_is_help=True)


def _engine():  # type: ignore[no-untyped-def]
    from sentinel.store.session import make_engine

    return make_engine()


@app.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations (safe to run from several processes at once)."""
    from sqlalchemy.exc import SQLAlchemyError

    from sentinel.errors import ConfigError
    from sentinel.store import migrate
    from sentinel.store.facade import one_line
    from sentinel.store.session import database_url, describe

    engine = _engine()
    try:
        before, after = migrate.upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot migrate {describe(database_url())}: {one_line(exc)}") from None
    finally:
        engine.dispose()
    where = describe(database_url())
    if before == after:
        print(f"{where}: already at {after}")
    else:
        print(f"{where}: upgraded {before or 'empty'} -> {after}")


@app.command("current")
def current() -> None:
    """Print the schema revision of the store and whether it is the newest."""
    from sqlalchemy.exc import SQLAlchemyError

    from sentinel.errors import ConfigError
    from sentinel.store import migrate
    from sentinel.store.facade import one_line
    from sentinel.store.session import database_url, describe

    engine = _engine()
    try:
        st = migrate.status(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open {describe(database_url())}: {one_line(exc)}") from None
    finally:
        engine.dispose()
    state = "current" if st.up_to_date else f"behind head {st.head}: run sentinel db upgrade"
    print(f"{describe(database_url())}: {st.current or 'empty'} ({state})")
    if not st.up_to_date:
        raise typer.Exit(1)
