"""A database role whose password Vault's database secrets engine owns, as a static
role (rotator ``vault-database-static-role``, mode ``rotate``).

The exposed credential: ``identifier`` the database user, ``secret`` its exposed
password, ``extra`` ``role`` (the static role's name; default: the user name), and
``host``, ``port``, ``dbname`` where the user logs in (PostgreSQL).

``create`` asks Vault to rotate the static role (``POST <mount>/rotate-role/<role>``)
and reads the new password back (``GET <mount>/static-creds/<role>``); resumed after a
crash, it reads back what an earlier attempt made Vault set if Vault's
``last_vault_rotation`` moved since ``prepare``, instead of rotating again. Vault has
already put the password in force: ``apply`` has nothing to do, ``revoke`` nothing
more (returns False). ``test`` logs in with the new password; ``verify`` proves the
exposed one is refused. A failed test cannot give the old password back (Vault owns
the role): ``rollback`` raises Blocked, so the rotation is failed and people are told.

Options: those of :mod:`rotators.vaultauth` (url, auth, namespace, TLS), ``mount``
(default ``database``), ``connect_timeout`` (seconds, default 10) and
``login_host``/``login_port``/``login_dbname`` defaults for the test logins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import psycopg

from rotators.base import Blocked, Credential, Plan, RotationError, TestFailed, VerifyFailed
from rotators.vaultauth import VaultAuth, VaultSession

NAME = "vault-database-static-role"


class VaultDatabaseStaticRole:
    name = NAME
    mode: Literal["rotate", "revoke"] = "rotate"
    purges = False  # Vault replaced the password: nothing to delete later

    def __init__(
        self, session: VaultSession, *, mount: str, login: Mapping[str, str], timeout: int
    ) -> None:
        self.session = session
        self.mount = mount.strip("/")
        self.login = dict(login)
        self.timeout = timeout

    def _role(self, c: Credential) -> str:
        return c.extra.get("role") or c.identifier

    def _where(self, c: Credential) -> dict[str, str]:
        return {
            "host": c.extra.get("host") or self.login.get("host", "127.0.0.1"),
            "port": c.extra.get("port") or self.login.get("port", "5432"),
            "dbname": c.extra.get("dbname") or self.login.get("dbname", "postgres"),
        }

    def _can_login(self, c: Credential, user: str, password: str) -> bool:
        w = self._where(c)
        try:
            with psycopg.connect(
                host=w["host"],
                port=w["port"],
                dbname=w["dbname"],
                user=user,
                password=password,
                connect_timeout=self.timeout,
            ):
                return True
        except psycopg.OperationalError as exc:
            text = str(exc).lower()
            if "password authentication failed" in text or "no password" in text:
                return False
            if "connection refused" in text or "timeout" in text or "could not connect" in text:
                from rotators.base import Retryable

                raise Retryable(f"{NAME}: cannot reach {w['host']}:{w['port']}") from None
            return False

    def _static_creds(self, role: str) -> dict[str, Any]:
        data: dict[str, Any] = self.session.call(
            lambda c: c.secrets.database.get_static_credentials(role, mount_point=self.mount),
            f"read {self.mount}/static-creds/{role}",
        )["data"]
        return data

    def plan(self, exposed: Credential) -> Plan:
        role = self._role(exposed)
        w = self._where(exposed)
        return Plan(
            rotator=NAME,
            mode="rotate",
            steps=("create", "store", "set", "test", "finish", "revoke", "verify", "purge"),
            identity=self.session.identity(),
            actions=(
                f"GET {self.mount}/static-roles/{role} (the role's user must be {exposed.identifier})",
                f"POST {self.mount}/rotate-role/{role}",
                f"GET {self.mount}/static-creds/{role} (the new password)",
                f"log in to {w['host']}:{w['port']}/{w['dbname']} as {exposed.identifier} with it",
                "log in with the exposed password: must be refused",
            ),
            notes=(
                "Vault owns this password: a failed test cannot restore the old one.",
                "Sessions opened with the old password stay open until they end.",
            ),
        )

    def prepare(self, exposed: Credential) -> dict[str, Any]:
        role = self._role(exposed)
        got = self.session.call(
            lambda c: c.secrets.database.read_static_role(role, mount_point=self.mount),
            f"read {self.mount}/static-roles/{role}",
        )["data"]
        if got.get("username") != exposed.identifier:
            raise Blocked(
                f"{NAME}: static role {role} manages another user, not {exposed.identifier}"
            )
        creds = self._static_creds(role)
        return {"role": role, "last_vault_rotation": str(creds.get("last_vault_rotation", ""))}

    def create(self, exposed: Credential, intent: Mapping[str, Any]) -> Credential:
        role = str(intent.get("role") or self._role(exposed))
        before = str(intent.get("last_vault_rotation", ""))
        creds = self._static_creds(role)
        if str(creds.get("last_vault_rotation", "")) == before:
            self.session.call(
                lambda c: c.secrets.database.rotate_static_role_credentials(
                    role, mount_point=self.mount
                ),
                f"rotate {self.mount}/rotate-role/{role}",
            )
            creds = self._static_creds(role)
        if creds.get("password") == exposed.secret:
            raise RotationError(f"{NAME}: Vault still holds the exposed password for {role}")
        extra = {"role": role, **self._where(exposed)}
        return Credential(NAME, str(creds["username"]), str(creds["password"]), extra)

    def secret_value(self, new: Credential) -> dict[str, str]:
        return {"username": new.identifier, "password": new.secret}

    def apply(self, exposed: Credential, new: Credential) -> None:
        return None  # Vault set it when it rotated the role

    def test(self, new: Credential) -> None:
        if not self._can_login(new, new.identifier, new.secret):
            raise TestFailed(f"{NAME}: {new.identifier} cannot log in with the new password")

    def rollback(self, exposed: Credential, new: Credential | None) -> None:
        raise Blocked(
            f"{NAME}: Vault owns {exposed.identifier}'s password and has already replaced it; "
            "check the static role's rotation statements"
        )

    def revoke(self, exposed: Credential) -> bool:
        return False  # the rotation replaced the password at Vault

    def verify(self, exposed: Credential) -> None:
        if self._can_login(exposed, exposed.identifier, exposed.secret):
            raise VerifyFailed(
                f"{NAME}: {exposed.identifier} still logs in with the exposed password"
            )

    def purge(self, exposed: Credential) -> bool:
        return False


def build(options: Mapping[str, Any]) -> VaultDatabaseStaticRole:
    auth_options = {
        k: v
        for k, v in options.items()
        if k not in ("mount", "connect_timeout", "login_host", "login_port", "login_dbname")
    }
    login = {
        k.removeprefix("login_"): str(options[k])
        for k in ("login_host", "login_port", "login_dbname")
        if k in options
    }
    return VaultDatabaseStaticRole(
        VaultSession(VaultAuth(auth_options)),
        mount=str(options.get("mount", "database")),
        login=login,
        timeout=int(options.get("connect_timeout", 10)),
    )


__all__ = ["NAME", "VaultDatabaseStaticRole", "build"]
