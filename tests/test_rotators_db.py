"""The database role rotators against the real local servers: PostgreSQL (127.0.0.1:5432,
password logins made real by tests/pgauth.py) and MariaDB (127.0.0.1:3306, root without
a password). Each test makes its own throwaway role or account and drops it.

The step sequence is driven here in the order the machine runs it (prepare, create,
set, test, revoke, verify, purge); what a user would notice is checked by logging in."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pymysql
import pytest
from psycopg import sql

from rotators import provider_module
from rotators.base import (
    Blocked,
    Credential,
    Retryable,
    RotationError,
    Rotator,
    VerifyFailed,
)
from rotators.base import (
    TestFailed as ReplacementFailed,  # pytest would collect a class named Test*
)
from rotators.providers import mariadb, postgres
from tests import pgauth

pytestmark = pytest.mark.integration


def _unavailable(why: str) -> None:
    if os.environ.get("SENTINEL_REQUIRE_SERVICES") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg_role() -> Iterator[pgauth.PgRole]:
    try:
        with psycopg.connect(pgauth.ADMIN_DSN, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {type(exc).__name__}")
    with pgauth.throwaway_role() as role:
        yield role


def _pg_admin(statement: sql.Composable) -> None:
    with psycopg.connect(pgauth.ADMIN_DSN, autocommit=True) as conn:
        conn.execute(statement)


def _pg_exposed(role: pgauth.PgRole) -> Credential:
    return Credential(
        kind="postgres-password",
        identifier=role.name,
        secret=role.password,
        extra={"host": role.host, "port": str(role.port), "dbname": role.dbname},
    )


def _pg_rotator() -> postgres.PostgresPassword:
    built = provider_module("postgres-password").build({"dsn": pgauth.ADMIN_DSN})
    assert isinstance(built, postgres.PostgresPassword)
    return built


def test_postgres_full_sequence_new_password_works_old_refused(pg_role: pgauth.PgRole) -> None:
    rot = _pg_rotator()
    assert isinstance(rot, Rotator)
    exposed = _pg_exposed(pg_role)

    facts = rot.prepare(exposed)
    assert facts["role"] == pg_role.name and facts["can_login"] is True
    new = rot.create(exposed, facts)
    assert new.identifier == pg_role.name and len(new.secret) >= 32 and new.secret != exposed.secret
    assert rot.secret_value(new) == {
        "username": pg_role.name,
        "password": new.secret,
        "host": "127.0.0.1",
        "port": "5432",
        "dbname": "postgres",
    }
    # create touched nothing: the exposed password still logs in, the new one does not
    assert pgauth.can_login(pg_role, exposed.secret)
    assert not pgauth.can_login(pg_role, new.secret)

    rot.apply(exposed, new)
    rot.test(new)
    assert rot.revoke(exposed) is False  # apply already replaced it
    rot.verify(exposed)
    assert rot.purge(exposed) is False

    assert pgauth.can_login(pg_role, new.secret)
    assert not pgauth.can_login(pg_role, exposed.secret)
    # the server keeps a SCRAM verifier, never the plaintext
    with psycopg.connect(pgauth.ADMIN_DSN) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (pg_role.name,)
        ).fetchone()
    assert row is not None and row[0].startswith("SCRAM-SHA-256$") and new.secret not in row[0]


def test_postgres_verify_fails_while_the_exposed_password_still_works(
    pg_role: pgauth.PgRole,
) -> None:
    rot = _pg_rotator()
    with pytest.raises(VerifyFailed) as err:
        rot.verify(_pg_exposed(pg_role))
    assert pg_role.password not in str(err.value)


def test_postgres_test_failure_then_rollback_restores_the_exposed_password(
    pg_role: pgauth.PgRole,
) -> None:
    rot = _pg_rotator()
    exposed = _pg_exposed(pg_role)
    new = rot.create(exposed, rot.prepare(exposed))
    _pg_admin(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(pg_role.name)))
    rot.apply(exposed, new)
    with pytest.raises(ReplacementFailed) as err:
        rot.test(new)
    assert "not permitted to log in" in str(err.value)
    rot.rollback(exposed, new)

    _pg_admin(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(pg_role.name)))
    assert pgauth.can_login(pg_role, exposed.secret)
    assert not pgauth.can_login(pg_role, new.secret)
    for text in (str(err.value), repr(new), repr(exposed)):
        assert new.secret not in text and exposed.secret not in text


def test_postgres_missing_role_and_unknown_exposed_password_need_a_person(
    pg_role: pgauth.PgRole,
) -> None:
    rot = _pg_rotator()
    ghost = Credential("postgres-password", "snt_rot_absent_" + secrets.token_hex(3), "x")
    with pytest.raises(Blocked, match="does not exist"):
        rot.prepare(ghost)
    unknown = Credential("postgres-password", pg_role.name, "", {"host": "127.0.0.1"})
    with pytest.raises(Blocked):
        rot.rollback(unknown, None)
    assert pgauth.can_login(pg_role, pg_role.password)  # nothing was changed


def test_postgres_unreachable_server_is_retryable(pg_role: pgauth.PgRole) -> None:
    port = _closed_port()
    rot = postgres.build({"dsn": f"host=127.0.0.1 port={port} user=postgres dbname=postgres"})
    exposed = _pg_exposed(pg_role)
    with pytest.raises(Retryable):
        rot.prepare(exposed)
    with pytest.raises(Retryable):
        rot.apply(exposed, rot.create(exposed, {}))
    moved = Credential(exposed.kind, exposed.identifier, exposed.secret, {"port": str(port)})
    with pytest.raises(Retryable):
        _pg_rotator().test(moved)
    with pytest.raises(Retryable):
        _pg_rotator().verify(moved)
    assert pgauth.can_login(pg_role, pg_role.password)


def test_postgres_config_never_carries_the_privileged_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="password_env"):
        postgres.build({"dsn": pgauth.ADMIN_DSN + " password=hunter2hunter2"})
    with pytest.raises(ValueError, match="password_env"):
        postgres.build({"dsn": "postgresql://postgres:hunter2hunter2@127.0.0.1/postgres"})
    # the variable is read when a connection is made; unset, the step fails in one line
    rot = postgres.build({"dsn": pgauth.ADMIN_DSN, "password_env": "SNT_TEST_PG_ADMIN_PW"})
    monkeypatch.delenv("SNT_TEST_PG_ADMIN_PW", raising=False)
    with pytest.raises(RotationError, match="SNT_TEST_PG_ADMIN_PW is not set"):
        rot.prepare(Credential("postgres-password", "postgres"))
    plan = rot.plan(Credential("postgres-password", "app", "s3cret-value-here"))
    assert plan.identity == "postgres@127.0.0.1:5432" and plan.mode == "rotate"
    assert any(a.startswith("ALTER ROLE app") for a in plan.actions)
    assert "s3cret-value-here" not in repr(plan)


# -- MariaDB -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MyAccount:
    user: str
    password: str
    account_host: str = "%"


def _my_admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def _my_exec(statement: str, args: tuple[str, ...] = ()) -> None:
    conn = _my_admin()
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
    finally:
        conn.close()


def _my_can_login(user: str, password: str) -> bool:
    try:
        pymysql.connect(
            host="127.0.0.1", port=3306, user=user, password=password, connect_timeout=5
        ).close()
    except pymysql.err.OperationalError:
        return False
    return True


@pytest.fixture
def my_user() -> Iterator[str]:
    """A fresh user name; every account made under it is dropped afterwards."""
    try:
        _my_admin().close()
    except Exception as exc:
        _unavailable(f"MariaDB at 127.0.0.1:3306 is not reachable: {type(exc).__name__}")
    name = f"snt_rot_{secrets.token_hex(4)}"
    yield name
    conn = _my_admin()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (name,))
            for (host,) in cur.fetchall():
                cur.execute("DROP USER %s@%s", (name, host))
    finally:
        conn.close()


def _my_account(user: str, host: str = "%") -> MyAccount:
    acct = MyAccount(user, secrets.token_urlsafe(18), host)
    _my_exec("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, acct.password))
    return acct


def _my_exposed(acct: MyAccount) -> Credential:
    return Credential(
        kind="mariadb-password",
        identifier=acct.user,
        secret=acct.password,
        extra={"host": "127.0.0.1", "port": "3306", "account_host": acct.account_host},
    )


def _my_rotator() -> mariadb.MariadbPassword:
    built = provider_module("mariadb-password").build({"host": "127.0.0.1", "user": "root"})
    assert isinstance(built, mariadb.MariadbPassword)
    return built


def test_mariadb_full_sequence_new_password_works_old_refused(my_user: str) -> None:
    acct = _my_account(my_user)
    rot = _my_rotator()
    assert isinstance(rot, Rotator)
    exposed = _my_exposed(acct)

    facts = rot.prepare(exposed)
    assert facts["account_host"] == "%" and facts["hosts"] == ["%"]
    new = rot.create(exposed, facts)
    assert len(new.secret) >= 32 and new.secret != exposed.secret
    assert rot.secret_value(new) == {
        "username": my_user,
        "password": new.secret,
        "host": "127.0.0.1",
        "port": "3306",
    }
    assert _my_can_login(my_user, exposed.secret) and not _my_can_login(my_user, new.secret)

    rot.apply(exposed, new)
    rot.test(new)
    assert rot.revoke(exposed) is False
    rot.verify(exposed)
    assert rot.purge(exposed) is False

    assert _my_can_login(my_user, new.secret)
    assert not _my_can_login(my_user, exposed.secret)


def test_mariadb_verify_fails_while_the_exposed_password_still_works(my_user: str) -> None:
    acct = _my_account(my_user)
    with pytest.raises(VerifyFailed) as err:
        _my_rotator().verify(_my_exposed(acct))
    assert acct.password not in str(err.value)


def test_mariadb_test_failure_then_rollback_restores_the_exposed_password(my_user: str) -> None:
    acct = _my_account(my_user)
    rot = _my_rotator()
    exposed = _my_exposed(acct)
    new = rot.create(exposed, rot.prepare(exposed))
    _my_exec("ALTER USER %s@%s ACCOUNT LOCK", (my_user, "%"))
    rot.apply(exposed, new)
    with pytest.raises(ReplacementFailed) as err:
        rot.test(new)
    assert "locked" in str(err.value)
    rot.rollback(exposed, new)

    _my_exec("ALTER USER %s@%s ACCOUNT UNLOCK", (my_user, "%"))
    assert _my_can_login(my_user, exposed.secret)
    assert not _my_can_login(my_user, new.secret)
    assert new.secret not in str(err.value) and exposed.secret not in str(err.value)


def test_mariadb_a_more_specific_account_is_not_reported_rotated(my_user: str) -> None:
    """A TCP login from 127.0.0.1 matches 'u'@'127.0.0.1' before 'u'@'%': rotating the
    '%' account leaves the login the application makes unchanged, so test fails and the
    rollback leaves both accounts as they were. Naming the account host rotates it."""
    wide = _my_account(my_user, "%")
    _my_exec("DROP USER %s@%s", (my_user, "%"))
    narrow = _my_account(my_user, "127.0.0.1")
    _my_exec("CREATE USER %s@%s IDENTIFIED BY %s", (my_user, "%", wide.password))
    rot = _my_rotator()

    exposed = _my_exposed(wide)  # account_host '%'
    assert rot.prepare(exposed)["hosts"] == ["%", "127.0.0.1"]
    new = rot.create(exposed, {})
    rot.apply(exposed, new)
    with pytest.raises(ReplacementFailed):
        rot.test(new)
    rot.rollback(exposed, new)
    assert _my_can_login(my_user, narrow.password)

    exposed = _my_exposed(narrow)
    new = rot.create(exposed, rot.prepare(exposed))
    rot.apply(exposed, new)
    rot.test(new)
    rot.verify(exposed)
    assert _my_can_login(my_user, new.secret) and not _my_can_login(my_user, narrow.password)


def test_mariadb_missing_account_unknown_password_and_unreachable_server(my_user: str) -> None:
    rot = _my_rotator()
    with pytest.raises(Blocked, match="does not exist"):
        rot.prepare(Credential("mariadb-password", my_user, "x"))
    acct = _my_account(my_user)
    with pytest.raises(Blocked):
        rot.rollback(Credential("mariadb-password", my_user, ""), None)

    port = _closed_port()
    down = mariadb.build({"dsn": f"mysql://root@127.0.0.1:{port}"})
    exposed = _my_exposed(acct)
    with pytest.raises(Retryable):
        down.prepare(exposed)
    with pytest.raises(Retryable):
        down.apply(exposed, down.create(exposed, {}))
    moved = Credential(exposed.kind, exposed.identifier, exposed.secret, {"port": str(port)})
    with pytest.raises(Retryable):
        rot.verify(moved)
    assert _my_can_login(my_user, acct.password)


def test_mariadb_config_never_carries_the_privileged_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="password_env"):
        mariadb.build({"dsn": "mysql://root:hunter2@127.0.0.1:3306"})
    with pytest.raises(ValueError, match="password_env"):
        mariadb.build({"host": "127.0.0.1", "password": "hunter2"})
    monkeypatch.setenv("SNT_TEST_MY_ADMIN_PW", "")  # root's password here is empty
    rot = mariadb.build(
        {"dsn": "mysql://root@127.0.0.1:3306", "password_env": "SNT_TEST_MY_ADMIN_PW"}
    )
    with pytest.raises(Blocked):  # reached the server: the account is simply absent
        rot.prepare(Credential("mariadb-password", "snt_rot_absent_" + secrets.token_hex(3)))
    plan = rot.plan(Credential("mariadb-password", "app", "s3cret-value-here"))
    assert plan.identity == "root@127.0.0.1:3306"
    assert "ALTER USER 'app'@'%' IDENTIFIED BY <new password>" in plan.actions
    assert "s3cret-value-here" not in repr(plan)
