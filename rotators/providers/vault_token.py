"""Vault / OpenBao tokens (revoker ``vault-token``, mode ``revoke``).

The exposed credential's ``secret`` is the token. ``revoke`` asks the server to revoke
it, with its children (``auth/token/revoke``), through a privileged session of its own
(``[rotation.providers."vault-token"]``, the options of :mod:`rotators.vaultauth`),
after a ``auth/token/lookup`` of the exposed token says it still exists: an unknown or
already revoked token returns False and nothing is revoked twice. With only ``url``
in the options (no privileged identity), ``revoke-self`` made with the exposed token
is used instead (the server lets any token revoke itself), and the plan says so. The
privileged way is preferred where one is configured: it does not depend on the leaked
token's own path through namespaces and it is audited as Sentinel's identity.

``verify``: a ``lookup-self`` made with the exposed token must be refused (403).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from rotators.base import Credential, Plan, RotationError, VerifyFailed
from rotators.vaultauth import VaultAuth, VaultSession, guard

NAME = "vault-token"


def _gone(exc: BaseException) -> bool:
    """The server's answer to a token it does not know (revoked, expired, never)."""
    text = " ".join(str(e) for e in (getattr(exc, "errors", None) or [exc])).lower()
    return "bad token" in text or "invalid token" in text or "permission denied" in text


class VaultToken:
    name = NAME
    mode: Literal["rotate", "revoke"] = "revoke"

    def __init__(self, session: VaultSession | None, url: str, exposed_client: Any) -> None:
        self.session = session  # None: revoke-self with the exposed token
        self.url = url
        self._exposed_client = exposed_client  # (token) -> an hvac client holding it

    def plan(self, exposed: Credential) -> Plan:
        actions: tuple[str, ...]
        if self.session is not None:
            identity = self.session.identity()
            actions = (
                f"POST {self.url}/v1/auth/token/lookup (the exposed token {exposed.identifier})",
                "POST /v1/auth/token/revoke (it and its child tokens)",
                "POST /v1/auth/token/lookup-self with the exposed token: must be refused",
            )
        else:
            identity = "the exposed token itself (revoke-self)"
            actions = (
                f"POST {self.url}/v1/auth/token/revoke-self with the exposed token",
                "POST /v1/auth/token/lookup-self with it: must be refused",
            )
        return Plan(
            rotator=NAME,
            mode="revoke",
            steps=("revoke", "verify"),
            identity=identity,
            actions=actions,
            notes=("No replacement is minted here: whoever used the token needs a new one.",),
        )

    def revoke(self, exposed: Credential) -> bool:
        import hvac.exceptions as hx

        token = exposed.secret
        if not token:
            raise RotationError("vault-token: the exposed token's value is not known")
        if self.session is None:
            client = self._exposed_client(token)
            try:
                guard(
                    lambda: client.auth.token.revoke_self(),
                    "revoke-self",
                    reraise=(hx.Forbidden, hx.InvalidRequest),
                )
            except (hx.Forbidden, hx.InvalidRequest) as exc:
                if _gone(exc):
                    return False
                raise RotationError("vault-token: revoke-self refused") from None
            return True
        session = self.session
        client = session.client
        try:
            # guard, not session.call: a 403 here is the answer about the exposed token
            guard(
                lambda: client.auth.token.lookup(token=token),
                "token lookup",
                reraise=(hx.Forbidden, hx.InvalidRequest),
            )
        except (hx.Forbidden, hx.InvalidRequest) as exc:
            if _gone(exc):
                return False
            raise RotationError(
                "vault-token: the privileged token may not look tokens up"
            ) from None
        session.call(lambda c: c.auth.token.revoke(token=token), "token revoke")
        return True

    def verify(self, exposed: Credential) -> None:
        import hvac.exceptions as hx

        client = self._exposed_client(exposed.secret)
        try:
            guard(
                lambda: client.auth.token.lookup_self(),
                "lookup-self",
                reraise=(hx.Forbidden, hx.InvalidRequest),
            )
        except (hx.Forbidden, hx.InvalidRequest):
            return
        raise VerifyFailed(f"vault-token: {exposed.identifier} still works (lookup-self answered)")


def build(options: Mapping[str, Any]) -> VaultToken:
    """Options: those of :mod:`rotators.vaultauth` for the privileged session; with
    ``url`` only (no ``token_env``/``token_file``/``auth``), revoke-self is used."""
    url = options.get("url")
    if not url:
        raise ValueError(f"{NAME}: set url (the Vault or OpenBao server)")
    privileged = any(
        k in options for k in ("auth", "token_env", "token_file", "role_id", "role_id_env")
    )
    session = VaultSession(VaultAuth(options)) if privileged else None
    auth = session.auth if session is not None else None

    def exposed_client(token: str) -> Any:
        import hvac

        if auth is not None:
            return auth.new_client(token)
        ns = options.get("namespace")
        return hvac.Client(url=str(url), token=token, namespace=str(ns) if ns else None, timeout=30)

    return VaultToken(session, str(url).rstrip("/"), exposed_client)


__all__ = ["NAME", "VaultToken", "build"]
