"""GitLab personal, project and group access tokens (revoker ``gitlab-token``, mode
``revoke``), through the personal access tokens API's ``self`` endpoints (GitLab 15.0+).

``revoke`` asks ``GET /api/v4/personal_access_tokens/self`` with the exposed token
(``PRIVATE-TOKEN`` header): 401 means it no longer works and nothing more is sent
(False, so a retried step revokes once); 200 names the token (id, name, user) for the
record. Then ``DELETE /api/v4/personal_access_tokens/self`` with the same token: 204,
revoked (True).

Why ``self`` and not ``DELETE /personal_access_tokens/:id`` with an administrator's
token: GitLab lets any token, whatever its scopes, read and revoke itself, so nothing
of ours is needed; an administrator token would be a far more dangerous secret for
Sentinel to hold than the leaked one, and on gitlab.com nobody has one. ``self`` also
revokes exactly the token presented, with no id to look up in between.

``verify`` asks ``GET .../self`` again and expects 401.

Options (``build``): ``url`` the instance (default ``https://gitlab.com``; a
self-managed instance's own URL), ``timeout``, ``ca_bundle``, ``trust_env``. Code may
pass ``client`` (an ``httpx.Client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from rotators.base import Blocked, Credential, Plan, RotationError, VerifyFailed
from rotators.providers._http import Http, base_url

NAME = "gitlab-token"
DEFAULT_URL = "https://gitlab.com"
SELF = "api/v4/personal_access_tokens/self"


class GitlabToken:
    name = NAME
    mode: Literal["rotate", "revoke"] = "revoke"

    def __init__(self, http: Http, *, url: str = DEFAULT_URL) -> None:
        self._http = http
        self._base = base_url(url, NAME)

    def _self(self, method: str, exposed: Credential) -> httpx.Response:
        if not exposed.secret:
            raise RotationError(f"{NAME}: the exposed token is not known")
        return self._http.request(
            method,
            self._base + SELF,
            what=f"{method} /personal_access_tokens/self",
            headers={"PRIVATE-TOKEN": exposed.secret, "Accept": "application/json"},
        )

    def plan(self, exposed: Credential) -> Plan:
        return Plan(
            rotator=NAME,
            mode="revoke",
            steps=("revoke", "verify"),
            identity="the exposed token itself (a token may revoke itself, whatever its scopes)",
            actions=(
                f"GET {self._base}{SELF} with the exposed token: does it still work, which token is it?",
                f"DELETE {self._base}{SELF} with the exposed token",
                f"GET {self._base}{SELF} with the exposed token: must answer 401",
            ),
            notes=("needs GitLab 15.0 or later (the self endpoints)",),
        )

    def revoke(self, exposed: Credential) -> bool:
        resp = self._self("GET", exposed)
        if resp.status_code == 401:
            return False
        if resp.status_code == 404:
            raise RotationError(
                f"{NAME}: GET /personal_access_tokens/self answered 404 (GitLab older than 15.0?)"
            )
        if resp.status_code != 200:
            raise RotationError(
                f"{NAME}: GET /personal_access_tokens/self answered {resp.status_code}"
            )
        resp = self._self("DELETE", exposed)
        if resp.status_code == 204:
            return True
        if resp.status_code == 401:  # revoked in between, by someone else
            return False
        if resp.status_code == 403:
            raise Blocked(f"{NAME}: GitLab does not let this token revoke itself (403)")
        raise RotationError(
            f"{NAME}: DELETE /personal_access_tokens/self answered {resp.status_code}"
        )

    def verify(self, exposed: Credential) -> None:
        resp = self._self("GET", exposed)
        if resp.status_code == 401:
            return
        if resp.status_code in (200, 403):  # 403: authenticated, only not allowed
            raise VerifyFailed(f"{NAME}: GitLab still accepts the exposed token")
        raise RotationError(f"{NAME}: GET /personal_access_tokens/self answered {resp.status_code}")


def build(options: Mapping[str, Any]) -> GitlabToken:
    http = Http(NAME, options, options.get("client"))
    return GitlabToken(http, url=str(options.get("url", DEFAULT_URL)))
