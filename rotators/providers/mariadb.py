"""MariaDB (and MySQL) account passwords (rotator ``mariadb-password``, mode ``rotate``).

The exposed credential: ``identifier`` the user name, ``secret`` its exposed password,
``extra`` ``host``, ``port`` and (optionally) ``dbname`` where the account logs in, and
``account_host`` the account's host part (default ``%``: the account is
``'name'@'account_host'``).

Steps as for PostgreSQL: ``create`` mints the password here; ``apply`` runs
``ALTER USER %s@%s IDENTIFIED BY %s`` over the privileged connection, every value bound
by PyMySQL; ``test`` logs in with the new password (a TCP login matches the most
specific account for the client's host, so the plan names the account it changes);
``revoke`` returns False (``apply`` replaced the password); ``verify`` proves a login with
the exposed password is refused; ``purge`` returns False; ``rollback`` sets the exposed
password back.

Options (``build``): ``dsn`` ``mysql://user@host:port`` (no password in it) or ``host``,
``port``, ``user``, ``unix_socket``; ``password_env`` the environment variable holding
the privileged password; ``connect_timeout`` (seconds, default 10); ``login_host`` /
``login_port`` defaults for the account's own logins. Code may pass ``connect``
instead: a callable returning an autocommit PyMySQL connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import pymysql

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

NAME = "mariadb-password"
STEPS = ("create", "store", "set", "test", "finish", "revoke", "verify")

Connect = Callable[[], "pymysql.connections.Connection[Any]"]

# client and server errors that mean "not reached, or busy": worth another attempt
_TRANSIENT = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1203,  # max_user_connections
    2002,  # can't connect through the socket
    2003,  # can't connect to the server
    2005,  # unknown server host (DNS)
    2006,  # server has gone away
    2013,  # lost connection during query
}


def _code(exc: BaseException) -> int:
    args: tuple[Any, ...] = exc.args
    return args[0] if args and isinstance(args[0], int) else 0


def _reason(exc: BaseException) -> str:
    args: tuple[Any, ...] = exc.args
    text = args[1] if len(args) > 1 and isinstance(args[1], str) else type(exc).__name__
    return one_line(text)


class MariadbPassword:
    name = NAME
    mode: Literal["rotate", "revoke"] = "rotate"
    purges = False  # apply replaced the password: nothing is left to delete later

    def __init__(
        self,
        connect: Connect,
        *,
        identity: str,
        login_host: str = "127.0.0.1",
        login_port: str = "3306",
        connect_timeout: int = 10,
    ) -> None:
        self._connect = connect
        self._identity = identity
        self._login = {"host": login_host, "port": login_port}
        self._timeout = connect_timeout

    # -- helpers ----------------------------------------------------------------------

    def _admin(self) -> pymysql.connections.Connection[Any]:
        try:
            return self._connect()
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _TRANSIENT or isinstance(exc, pymysql.err.InterfaceError):
                raise Retryable(f"{NAME}: MariaDB is not reachable: {_reason(exc)}") from None
            raise RotationError(
                f"{NAME}: the privileged login was refused: {_reason(exc)}"
            ) from None

    def _where(self, cred: Credential) -> dict[str, str]:
        where = {k: extra(cred, k, v) for k, v in self._login.items()}
        where["account_host"] = extra(cred, "account_host", "%")
        if cred.extra.get("dbname"):
            where["dbname"] = cred.extra["dbname"]
        return where

    def _account(self, cred: Credential) -> str:
        return f"'{cred.identifier}'@'{self._where(cred)['account_host']}'"

    def _login_as(self, cred: Credential, password: str) -> tuple[bool, str]:
        where = self._where(cred)
        try:
            conn = pymysql.connect(
                host=where["host"],
                port=int(where["port"]),
                user=cred.identifier,
                password=password,
                database=where.get("dbname"),
                connect_timeout=self._timeout,
            )
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _TRANSIENT or isinstance(exc, pymysql.err.InterfaceError):
                raise Retryable(
                    f"{NAME}: MariaDB at {where['host']}:{where['port']} is not reachable: {_reason(exc)}"
                ) from None
            return False, _reason(exc)
        conn.close()
        return True, ""

    def _set_password(self, cred: Credential, password: str) -> None:
        account_host = self._where(cred)["account_host"]
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "ALTER USER %s@%s IDENTIFIED BY %s", (cred.identifier, account_host, password)
                )
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _TRANSIENT:
                raise Retryable(f"{NAME}: lost the connection setting a password") from None
            # the server's message names the account, never the password
            raise RotationError(
                f"{NAME}: ALTER USER {self._account(cred)} failed: {_reason(exc)}"
            ) from None
        finally:
            conn.close()

    # -- Revoker / Rotator --------------------------------------------------------------

    def plan(self, exposed: Credential) -> Plan:
        account = self._account(exposed)
        where = self._where(exposed)
        at = f"{where['host']}:{where['port']}"
        return Plan(
            rotator=NAME,
            mode="rotate",
            steps=STEPS,
            identity=self._identity,
            actions=(
                f"read mysql.user: account {account} exists",
                "mint a random 40-character password (no server call)",
                f"ALTER USER {account} IDENTIFIED BY <new password>",
                f"log in as {exposed.identifier} at {at} with the new password",
                f"log in as {exposed.identifier} at {at} with the exposed password: must be refused",
            ),
            notes=(
                "revoke has nothing separate to do: ALTER USER replaced the exposed password",
                "only this account changes: other accounts of the same name (other hosts) keep theirs",
                "sessions opened with the exposed password before the change stay open",
                "if the new login fails, the exposed password is set back (rollback)",
            ),
        )

    def prepare(self, exposed: Credential) -> dict[str, Any]:
        account_host = self._where(exposed)["account_host"]
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT plugin FROM mysql.user WHERE User = %s AND Host = %s",
                    (exposed.identifier, account_host),
                )
                row = cur.fetchone()
                cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (exposed.identifier,))
                hosts = sorted(str(r[0]) for r in cur.fetchall())
        except pymysql.err.MySQLError as exc:
            if _code(exc) in _TRANSIENT:
                raise Retryable(f"{NAME}: lost the connection reading mysql.user") from None
            raise RotationError(f"{NAME}: cannot read mysql.user: {_reason(exc)}") from None
        finally:
            conn.close()
        if row is None:
            raise Blocked(
                f"{NAME}: account {self._account(exposed)} does not exist ({self._identity})"
            )
        return {
            "user": exposed.identifier,
            "account_host": account_host,
            "plugin": str(row[0]),
            "hosts": hosts,
        }

    def create(self, exposed: Credential, intent: Mapping[str, Any]) -> Credential:
        return replacement(exposed, self._where(exposed))

    def secret_value(self, new: Credential) -> dict[str, str]:
        where = self._where(new)
        value = {"username": new.identifier, "password": new.secret}
        value.update({k: where[k] for k in ("host", "port", "dbname") if k in where})
        return value

    def apply(self, exposed: Credential, new: Credential) -> None:
        if not new.secret:
            raise RotationError(f"{NAME}: the replacement has no password")
        self._set_password(new, new.secret)

    def test(self, new: Credential) -> None:
        accepted, reason = self._login_as(new, new.secret)
        if not accepted:
            raise TestFailed(
                f"{NAME}: {new.identifier} cannot log in with the new password: {reason}"
            )

    def rollback(self, exposed: Credential, new: Credential | None) -> None:
        if not exposed.secret:
            raise Blocked(
                f"{NAME}: the exposed password of {self._account(exposed)} is not known: set it by hand"
            )
        self._set_password(exposed, exposed.secret)

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
            )

    def purge(self, exposed: Credential) -> bool:
        return False


def build(options: Mapping[str, Any]) -> MariadbPassword:
    timeout = int(options.get("connect_timeout", 10))
    connect = options.get("connect")
    host = str(options.get("host", "127.0.0.1"))
    port = int(options.get("port", 3306))
    user = str(options.get("user", "root"))
    dsn = options.get("dsn")
    if dsn:
        parts = urlsplit(str(dsn))
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError(f"{NAME}: dsn must be mysql://user@host:port")
        if parts.password is not None:
            raise ValueError(
                f"{NAME}: the dsn carries a password; name an environment variable in password_env"
            )
        host = parts.hostname or host
        port = parts.port or port
        user = unquote(parts.username) if parts.username else user
    if "password" in options:
        raise ValueError(f"{NAME}: no password in the configuration; use password_env")
    unix_socket = options.get("unix_socket")
    password_env = options.get("password_env")
    identity = str(options.get("identity", f"{user}@{unix_socket or host}:{port}"))

    if connect is None:

        def connect() -> pymysql.connections.Connection[Any]:
            pw = env_password(password_env, NAME)
            return pymysql.connect(
                host=host,
                port=port,
                user=user,
                password=pw or "",
                unix_socket=unix_socket,
                autocommit=True,
                connect_timeout=timeout,
            )

    return MariadbPassword(
        connect,
        identity=identity,
        login_host=str(options.get("login_host", host)),
        login_port=str(options.get("login_port", port)),
        connect_timeout=timeout,
    )
