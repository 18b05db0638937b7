"""GitHub tokens (revoker ``github-token``, mode ``revoke``), through GitHub's credential
revocation API: ``POST /credentials/revoke`` with ``{"credentials": [token]}``.

The API is meant for tokens the caller does not own: GitHub revokes them and tells
their owners; a revoked token cannot be reactivated. On github.com the call must be
unauthenticated (an authenticated one is answered 403) and is limited to 60 an hour;
GitHub Enterprise Server takes it authenticated at ``https://HOST/api/v3``. It answers
202 Accepted, nothing about the token itself, so ``revoke`` first asks
``GET /user`` with the exposed token: 401 means it no longer works and nothing is sent
(False), so a retried step revokes once. ``verify`` asks ``GET /user`` again and
expects 401; the revocation is accepted before it is in force, and the machine retries
``verify`` on VerifyFailed.

Options (``build``): ``api_url`` (default ``https://api.github.com``; GHES
``https://HOST/api/v3``), ``token_env`` the environment variable with a token to
authenticate the revocation (GHES only; leave unset for github.com), ``timeout``,
``ca_bundle``, ``trust_env``. Code may pass ``client`` (an ``httpx.Client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from rotators.base import Credential, Plan, RotationError, VerifyFailed
from rotators.providers._common import env_password
from rotators.providers._http import Http, ProviderBusy, base_url, busy

NAME = "github-token"
DEFAULT_API = "https://api.github.com"
HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "sentinel-secrets",
}


def _rate_limited(resp: httpx.Response) -> bool:
    if resp.status_code == 429:
        return True
    return resp.status_code == 403 and (
        resp.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in resp.headers
    )


class GithubToken:
    name = NAME
    mode: Literal["rotate", "revoke"] = "revoke"

    def __init__(
        self, http: Http, *, api_url: str = DEFAULT_API, token_env: str | None = None
    ) -> None:
        self._http = http
        self._api = base_url(api_url, NAME)
        self._token_env = token_env

    def _works(self, exposed: Credential) -> bool:
        """Whether GitHub still accepts ``exposed`` (GET /user with it)."""
        if not exposed.secret:
            raise RotationError(f"{NAME}: the exposed token is not known")
        resp = self._http.request(
            "GET",
            self._api + "user",
            what="GET /user",
            headers={**HEADERS, "Authorization": f"Bearer {exposed.secret}"},
        )
        if resp.status_code == 401:
            return False
        if _rate_limited(resp):
            raise busy(NAME, "GET /user", resp)
        # 200, or a 403 that is not a rate limit: GitHub took the token
        return True

    def plan(self, exposed: Credential) -> Plan:
        who = (
            f"the token in ${self._token_env}"
            if self._token_env
            else "anonymous (the revocation API takes no authentication on github.com)"
        )
        return Plan(
            rotator=NAME,
            mode="revoke",
            steps=("revoke", "verify"),
            identity=who,
            actions=(
                f"GET {self._api}user with the exposed token: does it still work?",
                f'POST {self._api}credentials/revoke {{"credentials": [<exposed token>]}}',
                f"GET {self._api}user with the exposed token: must answer 401",
            ),
            notes=(
                "GitHub notifies the token's owner of the revocation",
                "a revoked token cannot be reactivated: its owner makes a new one",
                "github.com allows 60 revocation requests an hour",
            ),
        )

    def revoke(self, exposed: Credential) -> bool:
        if not self._works(exposed):
            return False
        headers = dict(HEADERS)
        auth = env_password(self._token_env, NAME)
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        what = "POST /credentials/revoke"
        resp = self._http.request(
            "POST",
            self._api + "credentials/revoke",
            what=what,
            headers=headers,
            json={"credentials": [exposed.secret]},
        )
        if resp.status_code in (200, 202):
            return True
        if _rate_limited(resp):
            raise busy(NAME, what, resp)
        if resp.status_code == 422:
            # "Validation failed, or the endpoint has been spammed": the token was just
            # accepted by GET /user, so this is the hourly limit
            raise ProviderBusy(f"{NAME}: {what} answered 422 (validation failed or rate limited)")
        if resp.status_code == 403:
            raise RotationError(
                f"{NAME}: {what} answered 403 (github.com refuses authenticated calls: unset token_env)"
            )
        raise RotationError(f"{NAME}: {what} answered {resp.status_code}")

    def verify(self, exposed: Credential) -> None:
        if self._works(exposed):
            raise VerifyFailed(f"{NAME}: GitHub still accepts the exposed token (GET /user)")


def build(options: Mapping[str, Any]) -> GithubToken:
    http = Http(NAME, options, options.get("client"))
    token_env = options.get("token_env")
    return GithubToken(
        http,
        api_url=str(options.get("api_url", DEFAULT_API)),
        token_env=str(token_env) if token_env else None,
    )
