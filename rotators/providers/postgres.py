"""PostgreSQL role passwords (rotator ``postgres-password``, mode ``rotate``).

The exposed credential: ``identifier`` the role name, ``secret`` its exposed password,
``extra`` ``host``, ``port`` and ``dbname`` where the role logs in (defaults: the
privileged connection's host and port, database ``postgres``).

Steps: ``create`` mints a random password here (no server call: the machine seals and
stores it before anything uses it); ``apply`` runs ``ALTER ROLE ... PASSWORD`` over the
privileged connection, sending the SCRAM verifier computed on this side (as psql's
``\\password`` does), so the plaintext never reaches the server's statement log;
``test`` logs in as the role with the new password; ``revoke`` has nothing left to do
(``apply`` replaced the password) and returns False; ``verify`` proves a login with
the exposed password is refused; ``purge`` returns False. ``rollback`` sets the exposed
password back.

Sessions opened with the exposed password before ``apply`` stay open: PostgreSQL
checks a password only at login. The plan says so.

Options (``build``): ``dsn`` the privileged connection (libpq key=value or URL, no
password in it), ``password_env`` the environment variable holding that password (none
for trust, peer, .pgpass or certificates), ``connect_timeout`` (seconds, default 10),
``login_host``/``login_port``/``login_dbname`` defaults for the role's own logins when
the credential's extra lacks them. Code may pass ``connect`` instead of ``dsn``: a
callable returning an autocommit psycopg connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import psycopg
from psycopg import conninfo, sql

from rotators.base import (
    Blocked,
    Credential,
    Plan,
    Retryable,
    RotationError,
    TestFailed,
    VerifyFailed,
)
from rotators.providers._common import env_password, extra, one_line, replacement

NAME = "postgres-password"
STEPS = ("create", "store", "set", "test", "finish", "revoke", "verify")

Connect = Callable[[], "psycopg.Connection[Any]"]

# FATAL answers that mean "try again later", not "this login is refused"
_TRANSIENT = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients already",
    "remaining connection slots are reserved",
)


def _login_error(exc: psycopg.OperationalError) -> tuple[bool, str]:
    """(refused, reason): refused when the server answered and turned the login down;
    otherwise the server was not reached (or is busy) and the attempt is worth retrying."""
    text = str(exc)
    reason = text.split("FATAL:", 1)[1].strip() if "FATAL:" in text else text
    reason = one_line(reason)
    if "FATAL:" not in text or any(t in text for t in _TRANSIENT):
        return False, reason
    return True, reason


class PostgresPassword:
    name = NAME
    mode: Literal["rotate", "revoke"] = "rotate"
    purges = False  # apply replaced the password: nothing is left to delete later

    def __init__(
        self,
        connect: Connect,
        *,
        identity: str,
        login_host: str = "127.0.0.1",
        login_port: str = "5432",
        login_dbname: str = "postgres",
        connect_timeout: int = 10,
    ) -> None:
        self._connect = connect
        self._identity = identity
        self._login = {"host": login_host, "port": login_port, "dbname": login_dbname}
        self._timeout = connect_timeout

    # -- helpers ----------------------------------------------------------------------

    def _admin(self) -> psycopg.Connection[Any]:
        try:
            return self._connect()
        except psycopg.OperationalError as exc:
            refused, reason = _login_error(exc)
            if refused:
                raise RotationError(f"{NAME}: the privileged login was refused: {reason}") from None
            raise Retryable(f"{NAME}: PostgreSQL is not reachable: {reason}") from None

    def _where(self, cred: Credential) -> dict[str, str]:
        return {k: extra(cred, k, v) for k, v in self._login.items()}

    def _login_as(self, cred: Credential, password: str) -> tuple[bool, str]:
        """(accepted, reason) for a login as ``cred``'s role with ``password``."""
        where = self._where(cred)
        try:
            conn = psycopg.connect(
                host=where["host"],
                port=where["port"],
                dbname=where["dbname"],
                user=cred.identifier,
                password=password,
                connect_timeout=self._timeout,
            )
        except psycopg.OperationalError as exc:
            refused, reason = _login_error(exc)
            if not refused:
                raise Retryable(
                    f"{NAME}: PostgreSQL at {where['host']}:{where['port']} is not reachable: {reason}"
                ) from None
            return False, reason
        conn.close()
        return True, ""

    def _set_password(self, role: str, password: str) -> None:
        with self._admin() as conn:
            try:
                verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), None)
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(verifier.decode())
                    )
                )
            except psycopg.OperationalError as exc:
                raise Retryable(f"{NAME}: lost the connection setting {role}'s password") from exc
            except psycopg.Error as exc:
                msg = exc.diag.message_primary or type(exc).__name__
                raise RotationError(f"{NAME}: ALTER ROLE {role} failed: {one_line(msg)}") from None

    # -- Revoker / Rotator --------------------------------------------------------------

    def plan(self, exposed: Credential) -> Plan:
        role = exposed.identifier
        where = self._where(exposed)
        at = f"{where['host']}:{where['port']}/{where['dbname']}"
        return Plan(
            rotator=NAME,
            mode="rotate",
            steps=STEPS,
            identity=self._identity,
            actions=(
                f"read pg_roles: role {role} exists",
                "mint a random 40-character password (no server call)",
                f"ALTER ROLE {role} PASSWORD <SCRAM verifier of the new password>",
                f"log in as {role} at {at} with the new password",
                f"log in as {role} at {at} with the exposed password: must be refused",
            ),
            notes=(
                "revoke has nothing separate to do: the ALTER ROLE replaced the exposed password",
                "sessions opened with the exposed password before the change stay open",
                "if the new login fails, the exposed password is set back (rollback)",
            ),
        )

    def prepare(self, exposed: Credential) -> dict[str, Any]:
        with self._admin() as conn:
            row = conn.execute(
                "SELECT rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = %s",
                (exposed.identifier,),
            ).fetchone()
        if row is None:
            raise Blocked(f"{NAME}: role {exposed.identifier} does not exist ({self._identity})")
        return {
            "role": exposed.identifier,
            "can_login": bool(row[0]),
            "valid_until": row[1].isoformat() if row[1] is not None else None,
        }

    def create(self, exposed: Credential, intent: Mapping[str, Any]) -> Credential:
        # nothing exists at the server until apply: a lost password needs no cleanup
        return replacement(exposed, self._where(exposed))

    def secret_value(self, new: Credential) -> dict[str, str]:
        where = self._where(new)
        return {"username": new.identifier, "password": new.secret, **where}

    def apply(self, exposed: Credential, new: Credential) -> None:
        if not new.secret:
            raise RotationError(f"{NAME}: the replacement has no password")
        self._set_password(new.identifier, new.secret)

    def test(self, new: Credential) -> None:
        accepted, reason = self._login_as(new, new.secret)
        if not accepted:
            raise TestFailed(
                f"{NAME}: {new.identifier} cannot log in with the new password: {reason}"
            )

    def rollback(self, exposed: Credential, new: Credential | None) -> None:
        if not exposed.secret:
            raise Blocked(
                f"{NAME}: the exposed password of {exposed.identifier} is not known: set it by hand"
            )
        self._set_password(exposed.identifier, exposed.secret)

    def revoke(self, exposed: Credential) -> bool:
        return False  # apply replaced the password: there is no separate act

    def verify(self, exposed: Credential) -> None:
        if not exposed.secret:
            raise Blocked(
                f"{NAME}: the exposed password is not known, so its refusal cannot be shown"
            )
        accepted, _ = self._login_as(exposed, exposed.secret)
        if accepted:
            raise VerifyFailed(
                f"{NAME}: {exposed.identifier} still logs in with the exposed password"
                " (does pg_hba.conf trust this host?)"
            )

    def purge(self, exposed: Credential) -> bool:
        return False


def build(options: Mapping[str, Any]) -> PostgresPassword:
    timeout = int(options.get("connect_timeout", 10))
    connect = options.get("connect")
    dsn = options.get("dsn")
    if connect is None and not dsn:
        raise ValueError(f"{NAME}: set dsn (the privileged connection) or pass connect")
    if "password" in options:
        raise ValueError(f"{NAME}: no password in the configuration; use password_env")
    params: dict[str, Any] = conninfo.conninfo_to_dict(str(dsn)) if dsn else {}
    if "password" in params:
        raise ValueError(
            f"{NAME}: the dsn carries a password; name an environment variable in password_env"
        )
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    identity = (
        f"{params.get('user') or 'postgres'}@{host}:{port}" if dsn else "the given connection"
    )
    identity = str(options.get("identity", identity))
    password_env = options.get("password_env")

    if connect is None:

        def connect() -> psycopg.Connection[Any]:
            extra_kw: dict[str, Any] = {}
            pw = env_password(password_env, NAME)
            if pw is not None:
                extra_kw["password"] = pw
            return psycopg.connect(str(dsn), autocommit=True, connect_timeout=timeout, **extra_kw)

    return PostgresPassword(
        connect,
        identity=identity,
        login_host=str(
            options.get("login_host", host if not host.startswith("/") else "127.0.0.1")
        ),
        login_port=str(options.get("login_port", port)),
        login_dbname=str(options.get("login_dbname", "postgres")),
        connect_timeout=timeout,
    )
