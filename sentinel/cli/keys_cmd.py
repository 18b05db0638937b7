"""``sentinel keys``: the encryption keys that seal the few secret values the store keeps."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Encryption keys for secret values kept in the store.", no_args_is_help=True)


@app.command("generate")
def generate() -> None:
    """Print a new random key (64 hex digits) for SENTINEL_ENCRYPTION_KEY."""
    from sentinel.store.crypto import new_key_text

    print(new_key_text())


@app.command("status")
def status() -> None:
    """Which key seals, and how many stored values are under each key."""
    from sqlalchemy import func, select

    from sentinel.store.crypto import load_keyring
    from sentinel.store.facade import open_store
    from sentinel.store.models import Finding

    ring = load_keyring()
    store = open_store(keyring=ring)
    try:
        with store.sessions() as s:
            counts = dict(
                s.execute(
                    select(Finding.secret_key_id, func.count())
                    .where(Finding.secret_sealed.is_not(None))
                    .group_by(Finding.secret_key_id)
                ).all()
            )
    finally:
        store.close()
    print(f"keys from {ring.source}; sealing with {ring.current or 'none (values are not kept)'}")
    for kid, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        known = "configured" if kid in ring.keys else "NOT CONFIGURED: these cannot be opened"
        print(f"  {kid}: {n} value(s) ({known})")


@app.command("rotate")
def rotate(
    new: Annotated[
        bool,
        typer.Option(
            "--new/--no-new",
            help="Put a freshly generated key first in the key file before re-sealing "
            "(default when keys come from a file; with SENTINEL_ENCRYPTION_KEY, list the "
            "new key first yourself and pass --no-new).",
        ),
    ] = True,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per transaction.")] = 500,
) -> None:
    """Re-seal every stored value under the current key, batch by batch; stopped at any
    point, running it again carries on where it stopped."""
    import os

    from sentinel.errors import ConfigError
    from sentinel.store import crypto
    from sentinel.store.facade import open_store
    from sentinel.store.rekey import reseal_all

    if new and not os.environ.get(crypto.ENV_KEY):
        path = crypto.key_file_path()
        crypto.add_key_to_file(path, crypto.new_key_text())
        print(f"new key added first in {path}")
    ring = crypto.load_keyring()
    if not ring.available:
        raise ConfigError(
            "no encryption key is configured",
            f"set {crypto.ENV_KEY} or create {crypto.key_file_path()} (sentinel keys generate)",
        )
    store = open_store(keyring=ring)
    try:
        done, left = reseal_all(store, batch=batch, progress=print)
    finally:
        store.close()
    print(f"re-sealed {done} value(s) under {ring.current}; {left} left")
    if left:
        raise typer.Exit(1)
