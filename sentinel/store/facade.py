"""The store as the CLI, the hooks and the service open it: one engine, its sessions,
the installation's fingerprint key (checked against the one the store's findings are
under) and the encryption keyring."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sentinel.store.models import Scan, Setting, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from sentinel.fingerprint import FingerprintKey
    from sentinel.models import ScanResult
    from sentinel.store.crypto import Keyring
    from sentinel.store.ingest import IngestResult

FINGERPRINT_KEY_SETTING = "fingerprint_key_id"
T = TypeVar("T")


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    url: str
    fingerprint: FingerprintKey
    keyring: Keyring
    _loop_engine: Engine | None = field(default=None, init=False, repr=False)
    _loop_sessions: sessionmaker[Session] | None = field(default=None, init=False, repr=False)
    _loop_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def loop_session(self) -> Session:
        """A session for a read that runs on the event loop itself, start to close
        without an await in between (sentinel.api.routes.findings): its own small pool,
        so connections held by the thread-pool routes (whose sessions close through the
        loop) can never leave it waiting on a connection while it blocks the loop."""
        sessions = self._loop_sessions
        if sessions is None:
            from sentinel.store.session import make_engine, session_factory, sqlite_path

            with self._loop_lock:
                if self._loop_sessions is None:
                    # one connection in use per event loop at a time; a few loops (test
                    # clients each run one) share the pool
                    kw: dict[str, Any] = {"pool_size": 2, "max_overflow": 8}
                    if sqlite_path(self.url) is None:
                        # reads in autocommit, one snapshot per statement, and no ping
                        # per checkout: three round trips a read fewer, each a wait of
                        # the loop; a dropped connection is retried (``loop_read``);
                        # a write asks for its transaction (``writing_nowait``)
                        kw.update(isolation_level="AUTOCOMMIT", pool_pre_ping=False)
                        # and prepared: PostgreSQL took longer to plan a simple page than
                        # to run it (0.06 ms against 0.04); these statements are keyed
                        # and bounded, so generic plans serve them
                        kw["prepare"] = True
                    self._loop_engine = make_engine(self.url, **kw)
                    self._loop_sessions = session_factory(self._loop_engine)
                sessions = self._loop_sessions
        return sessions()

    def loop_read(self, read: Callable[[Session], T]) -> T:
        """``read(session)`` on a ``loop_session``; once more on a fresh connection if
        the database dropped the one it had (a restart, an idle timeout)."""
        from sqlalchemy.exc import DBAPIError

        for attempt in range(2):
            with self.loop_session() as session:
                try:
                    return read(session)
                except DBAPIError as exc:
                    if attempt or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()
        if self._loop_engine is not None:
            self._loop_engine.dispose()


def open_store(
    url: str | None = None, *, migrate_now: bool = False, keyring: Keyring | None = None
) -> Store:
    """The configured store, refusing what would split or expose its findings: a
    schema that is not current (unless ``migrate_now``), the public fingerprint key, or
    a key other than the one its findings are under."""
    from sentinel.errors import ConfigError
    from sentinel.fingerprint import require_private
    from sentinel.store import migrate
    from sentinel.store.crypto import load_keyring
    from sentinel.store.session import database_url, describe, make_engine, session_factory

    url = database_url(url)
    key = require_private()
    engine = make_engine(url)
    try:
        if migrate_now:
            migrate.upgrade(engine)
        else:
            st = _status(engine, url)
            if not st.up_to_date:
                raise ConfigError(
                    f"the store at {describe(url)} is at schema {st.current or 'none'}, "
                    f"not {st.head}",
                    "run: sentinel db upgrade",
                )
        sessions = session_factory(engine)
        _check_key(sessions, key)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, sessions, url, key, keyring or load_keyring())


def _status(engine: Engine, url: str) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from sentinel.errors import ConfigError
    from sentinel.store import migrate
    from sentinel.store.session import describe

    try:
        return migrate.status(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"cannot open the store at {describe(url)}: {one_line(exc)}") from None


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _check_key(sessions: sessionmaker[Session], key: FingerprintKey) -> None:
    from sentinel.errors import ConfigError
    from sentinel.store.session import writing

    with sessions() as s:
        row = s.get(Setting, FINGERPRINT_KEY_SETTING)
        if row is None:
            # the first writer names the key; two first scans at once must not race
            # (PostgreSQL takes no table lock here): insert-if-absent, then read back
            s.rollback()
            writing(s)
            s.execute(_insert_absent(s, FINGERPRINT_KEY_SETTING, key.id))
            s.commit()
            row = s.get(Setting, FINGERPRINT_KEY_SETTING)
            assert row is not None
        if row.value != key.id:
            raise ConfigError(
                f"this store's findings are under fingerprint key {row.value}; this "
                f"installation's key ({key.source}) is {key.id}",
                "use the service's key (SENTINEL_FINGERPRINT_KEY or _FILE) so the same "
                "secret groups into one finding",
            )


def _insert_absent(session: Session, name: str, value: str) -> Any:
    table = Setting.__table__
    if session.connection().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(name=name, value=value).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).values(name=name, value=value).on_conflict_do_nothing()


def new_scan_id() -> str:
    return uuid.uuid4().hex


def rotators_of_rules() -> dict[str, str]:
    """Rule id to rotator name, for the rules that have one (their values are kept)."""
    from detectors.ruleset import load_builtin

    return {r.id: r.rotator for r in load_builtin() if r.rotator}


def record_result(
    store: Store,
    *,
    kind: str,
    target: str,
    result: ScanResult,
    requested_by: str,
    complete: bool,
    params: dict[str, Any] | None = None,
    started: datetime | None = None,
    scan_id: str | None = None,
    before_commit: Callable[[Session, Scan, IngestResult], None] | None = None,
) -> tuple[Scan, IngestResult]:
    """One finished scan into the store: its Scan row and its occurrences.

    ``before_commit`` adds rows that must land in the same transaction (a hook event's
    record, its audit entry): if committing them fails, the scan is not stored either."""
    from sentinel.store.ingest import ingest
    from sentinel.store.session import writing

    finished = utcnow()
    with store.sessions() as s:
        writing(s)
        scan = s.get(Scan, scan_id) if scan_id else None
        if scan is None:
            scan = Scan(
                id=scan_id or new_scan_id(),
                kind=kind,
                target=target,
                params=params or {},
                requested_by=requested_by,
                created_at=started or finished,
            )
            s.add(scan)
        else:
            # the row the service queued knows the real target (a URL, not the mirror
            # the child read it from)
            kind, target = scan.kind, scan.target
        errors = list(result.stats.get("errors") or [])
        scan.status = "succeeded"
        scan.started_at = scan.started_at or started or finished
        scan.finished_at = finished
        scan.duration_seconds = (finished - scan.started_at).total_seconds()
        scan.stats = _jsonable(result.stats)
        scan.errors = [str(e) for e in errors]
        scan.exit_code = 2 if errors else (1 if result.occurrences else 0)
        s.flush()
        res = ingest(
            s,
            scan,
            result.occurrences,
            fingerprint_key_id=store.fingerprint.id,
            default_target=target,
            complete=complete and not errors,
            keyring=store.keyring,
            rotators=rotators_of_rules(),
            now=finished,
        )
        if res.plaintext_refused:
            scan.stats = {
                **scan.stats,
                "plaintext_not_kept": res.plaintext_refused,
            }
        if before_commit is not None:
            before_commit(s, scan, res)
        s.commit()
        return scan, res


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
