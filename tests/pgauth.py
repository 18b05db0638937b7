"""Password logins on this machine's PostgreSQL, for the role-password rotators' tests.

PostgreSQL here trusts every loopback login, so a wrong password would be accepted
and "the old password is refused" could not be shown. Members of the group role
``sentinel_pw_auth`` are made to log in with a password (scram-sha-256) by a line
put ahead of the trust lines in pg_hba.conf; every other role keeps trust, so the
rest of the suite is unchanged. Idempotent: the line and the group are added once.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
GROUP = "sentinel_pw_auth"
HBA_LINE = f"host all +{GROUP} 127.0.0.1/32 scram-sha-256"


def ensure_password_logins() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GROUP,)).fetchone() is None:
            with suppress(psycopg.errors.DuplicateObject):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(GROUP)))
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
        text = hba.read_text()
        if HBA_LINE not in text.splitlines():
            with hba.open("w") as fh:  # in place: the file keeps its owner and mode
                fh.write(f"# sentinel tests: members of {GROUP} log in with a password\n")
                fh.write(HBA_LINE + "\n" + text)
        conn.execute("SELECT pg_reload_conf()")


@dataclass(frozen=True)
class PgRole:
    name: str
    password: str
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = "postgres"

    def dsn(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} user={self.name} password={pw}"
        )


def can_login(role: PgRole, password: str) -> bool:
    try:
        with psycopg.connect(role.dsn(password), connect_timeout=5):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def throwaway_role(prefix: str = "snt_rot") -> Iterator[PgRole]:
    """A login role that must log in with its password; dropped afterwards."""
    ensure_password_logins()
    role = PgRole(f"{prefix}_{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(role.name), sql.Literal(role.password), sql.Identifier(GROUP)
            )
        )
    try:
        yield role
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role.name,),
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))
