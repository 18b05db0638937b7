"""Slack tokens (revoker ``slack-token``, mode ``revoke``), through the Web API's
``auth.revoke``, called with the exposed token itself (``Authorization: Bearer``, as
Slack recommends; no ``test`` argument, so the revocation is real).

Slack answers HTTP 200 with ``{"ok": true, "revoked": true}`` when it revoked, and
``{"ok": false, "error": ...}`` otherwise: ``invalid_auth``, ``token_revoked``,
``token_expired`` or ``account_inactive`` mean the token no longer works, so ``revoke``
returns False (a retried step revokes once). ``ratelimited`` comes as HTTP 429 with
Retry-After. ``verify`` calls ``auth.test`` with the token and expects one of those
errors. Note Slack also answers ``invalid_auth`` to a valid token used from an IP
address the workspace does not allow: ``verify`` then passes though the token works
elsewhere. The plan says so.

Revoking a bot token deactivates the bot user and its channel memberships; it does not
uninstall the app.

Options (``build``): ``api_url`` (default ``https://slack.com/api/``), ``timeout``,
``ca_bundle``, ``trust_env``. Code may pass ``client`` (an ``httpx.Client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from rotators.base import Credential, Plan, RotationError, VerifyFailed
from rotators.providers._http import Http, ProviderBusy, base_url

NAME = "slack-token"
DEFAULT_API = "https://slack.com/api/"

# the token no longer authenticates
DEAD = frozenset({"invalid_auth", "token_revoked", "token_expired", "account_inactive"})
# Slack's own trouble: worth another attempt
TRANSIENT = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "org_login_required",
        "team_added_to_org",
    }
)


class SlackToken:
    name = NAME
    mode: Literal["rotate", "revoke"] = "revoke"

    def __init__(self, http: Http, *, api_url: str = DEFAULT_API) -> None:
        self._http = http
        self._api = base_url(api_url, NAME)

    def _call(self, method: str, exposed: Credential) -> dict[str, Any]:
        if not exposed.secret:
            raise RotationError(f"{NAME}: the exposed token is not known")
        resp = self._http.request(
            "POST",
            self._api + method,
            what=method,
            headers={
                "Authorization": f"Bearer {exposed.secret}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            content=b"",
        )
        if resp.status_code != 200:
            raise RotationError(f"{NAME}: {method} answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise RotationError(f"{NAME}: {method} answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise RotationError(f"{NAME}: {method} answered something that is not an object")
        return data

    @staticmethod
    def _error(method: str, data: Mapping[str, Any]) -> RotationError:
        error = str(data.get("error", "unknown"))[:80]
        if error in TRANSIENT:
            return ProviderBusy(f"{NAME}: {method} answered {error}")
        return RotationError(f"{NAME}: {method} answered {error}")

    def plan(self, exposed: Credential) -> Plan:
        return Plan(
            rotator=NAME,
            mode="revoke",
            steps=("revoke", "verify"),
            identity="the exposed token itself (auth.revoke takes the token it revokes)",
            actions=(
                f"POST {self._api}auth.revoke with the exposed token",
                f"POST {self._api}auth.test with the exposed token: must answer invalid_auth or token_revoked",
            ),
            notes=(
                "revoking a bot token deactivates the bot user; the app stays installed",
                "invalid_auth is also Slack's answer from an IP address the workspace does not allow",
            ),
        )

    def revoke(self, exposed: Credential) -> bool:
        data = self._call("auth.revoke", exposed)
        if data.get("ok") is True:
            if data.get("revoked") is True:
                return True
            raise RotationError(f"{NAME}: auth.revoke answered ok but did not revoke")
        if data.get("error") in DEAD:
            return False
        raise self._error("auth.revoke", data)

    def verify(self, exposed: Credential) -> None:
        data = self._call("auth.test", exposed)
        if data.get("ok") is True:
            raise VerifyFailed(f"{NAME}: Slack still accepts the exposed token (auth.test)")
        if data.get("error") in DEAD:
            return
        raise self._error("auth.test", data)


def build(options: Mapping[str, Any]) -> SlackToken:
    http = Http(NAME, options, options.get("client"))
    return SlackToken(http, api_url=str(options.get("api_url", DEFAULT_API)))
