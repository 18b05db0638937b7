"""Re-sealing stored values under the current key, resumably: each batch is its own
transaction and a row's key id says whether it still needs doing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel.store.facade import Store


def reseal_all(
    store: Store, *, batch: int = 500, progress: Callable[[str], object] | None = None
) -> tuple[int, int]:
    """(values re-sealed, values that could not be opened and were left as they are)."""
    from sqlalchemy import func, select

    from sentinel.store.crypto import SealError
    from sentinel.store.models import Finding
    from sentinel.store.session import writing

    ring = store.keyring
    current = ring.current
    assert current is not None
    done = 0
    stuck: set[int] = set()
    while True:
        with store.sessions() as s:
            writing(s)
            q = (
                select(Finding)
                .where(
                    Finding.secret_sealed.is_not(None),
                    (Finding.secret_key_id != current) | Finding.secret_key_id.is_(None),
                )
                .order_by(Finding.id)
                .limit(batch)
            )
            if stuck:
                q = q.where(Finding.id.not_in(stuck))
            rows = list(s.scalars(q))
            if not rows:
                break
            for f in rows:
                assert f.secret_sealed is not None
                try:
                    plain = ring.open(f.secret_sealed, f.fingerprint)
                except SealError:
                    stuck.add(f.id)
                    continue
                f.secret_sealed, f.secret_key_id = ring.seal(plain, f.fingerprint)
                done += 1
            s.commit()
        if progress is not None:
            progress(f"re-sealed {done} so far")
    done += _reseal_rotations(store, batch)
    with store.sessions() as s:
        left = s.scalar(
            select(func.count())
            .select_from(Finding)
            .where(Finding.secret_sealed.is_not(None), Finding.secret_key_id != current)
        )
    return done, int(left or 0)


def _reseal_rotations(store: Store, batch: int) -> int:
    """A rotation's exposed value and replacement, re-sealed under the current key
    (bound to the rotation, as sentinel.store.rotations seals them)."""
    from sqlalchemy import select

    from sentinel.store.crypto import SealError
    from sentinel.store.models import Rotation
    from sentinel.store.session import writing

    ring = store.keyring
    current = ring.current
    done = 0
    stuck: set[str] = set()
    while True:
        with store.sessions() as s:
            writing(s)
            q = (
                select(Rotation)
                .where(Rotation.secret_key_id.is_not(None), Rotation.secret_key_id != current)
                .order_by(Rotation.id)
                .limit(batch)
            )
            if stuck:
                q = q.where(Rotation.id.not_in(stuck))
            rows = list(s.scalars(q))
            if not rows:
                return done
            for r in rows:
                try:
                    for col, role in (
                        ("exposed_sealed", "exposed"),
                        ("replacement_sealed", "replacement"),
                    ):
                        sealed = getattr(r, col)
                        if sealed is not None:
                            bound = f"rotation:{r.id}:{role}"
                            plain = ring.open(sealed, bound)
                            setattr(r, col, ring.seal(plain, bound)[0])
                except SealError:
                    stuck.add(r.id)
                    continue
                r.secret_key_id = current
                done += 1
            s.commit()
