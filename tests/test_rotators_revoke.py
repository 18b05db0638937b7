"""The revoke-only providers (GitHub, Slack, GitLab) against local stand-ins that answer
as each provider documents (tests/revokeapis.py). Every token is made at run time."""

from __future__ import annotations

import secrets
import socket
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rotators import provider_module
from rotators.base import Credential, Retryable, Revoker, RotationError, VerifyFailed
from rotators.providers import github, gitlab, slack
from rotators.providers._http import ProviderBusy
from tests.conftest import token as gh_token
from tests.revokeapis import GithubStandIn, GitlabStandIn, SlackStandIn, StandIn

ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _slack_token() -> str:
    digits = string.digits
    return f"xoxb-{_rand(12, digits)}-{_rand(12, digits)}-{_rand(24)}"


def _gitlab_token() -> str:
    return "glpat-" + _rand(20, ALNUM + "-_")


@dataclass
class Case:
    """One provider: its stand-in, how to build the revoker against it, a fresh token."""

    name: str
    stand_in: StandIn
    build: Callable[[str], Revoker]  # api base -> revoker
    api: Callable[[], str]
    new_token: Callable[[], str]
    revoke_path: str  # the call that revokes, (method, path)
    revoke_method: str

    def revoker(self) -> Revoker:
        return self.build(self.api())

    def exposed(self) -> Credential:
        value = self.new_token()
        self.stand_in.add(value)
        return Credential(kind=self.name, identifier=value[:8], secret=value)

    def revocations(self) -> int:
        return len(
            [
                c
                for c in self.stand_in.calls_to(self.revoke_method, self.revoke_path)
                if c.status in (202, 204) or b'"revoked": true' in c.answer
            ]
        )


def _github() -> Case:
    s = GithubStandIn()
    return Case(
        "github-token",
        s,
        lambda api: provider_module("github-token").build({"api_url": api}),
        lambda: s.api_url,
        lambda: gh_token("ghp_", secrets.randbelow(10**9)),
        "/credentials/revoke",
        "POST",
    )


def _slack() -> Case:
    s = SlackStandIn()
    return Case(
        "slack-token",
        s,
        lambda api: provider_module("slack-token").build({"api_url": api}),
        lambda: s.api_url,
        _slack_token,
        "/api/auth.revoke",
        "POST",
    )


def _gitlab() -> Case:
    s = GitlabStandIn(prefix="/gitlab")  # a self-managed instance under a relative URL
    return Case(
        "gitlab-token",
        s,
        lambda url: provider_module("gitlab-token").build({"url": url}),
        lambda: s.url,
        _gitlab_token,
        "/gitlab/api/v4/personal_access_tokens/self",
        "DELETE",
    )


@pytest.fixture(params=[_github, _slack, _gitlab], ids=["github", "slack", "gitlab"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    c: Case = request.param()
    with c.stand_in:
        yield c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _messages(*excs: BaseException) -> str:
    return "\n".join(str(e) for e in excs)


# -- behaviour common to the three ---------------------------------------------------------


def test_revoke_once_then_already_revoked_and_verify_refused(case: Case) -> None:
    rev = case.revoker()
    assert isinstance(rev, Revoker) and rev.mode == "revoke" and rev.name == case.name
    exposed = case.exposed()
    other = case.exposed()

    with pytest.raises(VerifyFailed) as still:
        rev.verify(exposed)  # before revoke: the provider still takes it
    assert rev.revoke(exposed) is True
    rev.verify(exposed)
    assert rev.revoke(exposed) is False  # a retried step revokes nothing more
    rev.verify(exposed)

    assert case.revocations() == 1
    assert not case.stand_in.works(exposed.secret)
    assert case.stand_in.works(other.secret)  # only the exposed token
    assert exposed.secret not in str(still.value)


def test_unknown_token_is_already_invalid(case: Case) -> None:
    rev = case.revoker()
    ghost = Credential(case.name, "ghost", case.new_token())  # never issued
    assert rev.revoke(ghost) is False
    rev.verify(ghost)
    assert case.revocations() == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable_and_the_retry_revokes(case: Case, status: int) -> None:
    rev = case.revoker()
    exposed = case.exposed()
    case.stand_in.fail_next(1, status)
    with pytest.raises(Retryable) as err:
        rev.revoke(exposed)
    assert str(status) in str(err.value)
    assert case.stand_in.works(exposed.secret)  # nothing was revoked by the failed attempt
    assert rev.revoke(exposed) is True
    rev.verify(exposed)
    assert exposed.secret not in str(err.value)


def test_rate_limit_carries_retry_after(case: Case) -> None:
    rev = case.revoker()
    exposed = case.exposed()
    case.stand_in.fail_next(1, 429, retry_after=7)
    with pytest.raises(ProviderBusy) as err:
        rev.revoke(exposed)
    assert err.value.retry_after == 7.0
    assert "retry after 7s" in str(err.value)
    assert err.value.retryable is True
    case.stand_in.fail_next(1, 503)
    with pytest.raises(Retryable):
        rev.verify(exposed)
    assert rev.revoke(exposed) is True


def test_unreachable_provider_is_retryable(case: Case) -> None:
    rev = case.build(f"http://127.0.0.1:{_closed_port()}/")
    exposed = case.exposed()
    with pytest.raises(Retryable) as a:
        rev.revoke(exposed)
    with pytest.raises(Retryable) as b:
        rev.verify(exposed)
    assert exposed.secret not in _messages(a.value, b.value)


def test_only_https_or_loopback_http(case: Case) -> None:
    for url in ("http://example.com/api/", "ftp://127.0.0.1/", "https://user:pw@example.com/"):
        with pytest.raises(ValueError):
            case.build(url)
    case.build("https://example.com/api/")  # builds; nothing is called


def test_plan_names_the_calls_never_the_token(case: Case) -> None:
    rev = case.revoker()
    exposed = case.exposed()
    plan = rev.plan(exposed)
    assert plan.mode == "revoke" and plan.steps == ("revoke", "verify")
    assert plan.actions and plan.identity
    assert exposed.secret not in repr(plan)
    assert case.stand_in.calls == []  # a plan touches nothing


# -- GitHub ---------------------------------------------------------------------------------


def test_github_revocation_request_is_unauthenticated_and_lists_the_token() -> None:
    with GithubStandIn() as s:
        value = gh_token("ghp_", 11)
        s.add(value)
        rev = github.build({"api_url": s.api_url})
        assert rev.revoke(Credential("github-token", "ghp_", value)) is True
        (call,) = s.calls_to("POST", "/credentials/revoke")
        assert call.json() == {"credentials": [value]}
        assert "authorization" not in call.headers  # github.com answers 403 otherwise
        assert call.headers["accept"] == "application/vnd.github+json"
        assert "owner" in " ".join(rev.plan(Credential("github-token", "ghp_", value)).notes)


def test_github_enterprise_server_takes_the_configured_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = gh_token("ghp_", 12)
    with GithubStandIn(enterprise=True, admin_tokens={admin}) as s:
        exposed_value = gh_token("ghp_", 13)
        s.add(exposed_value)
        exposed = Credential("github-token", "ghp_", exposed_value)
        monkeypatch.setenv("SNT_TEST_GHES_TOKEN", admin)
        rev = github.build({"api_url": s.api_url, "token_env": "SNT_TEST_GHES_TOKEN"})
        assert rev.revoke(exposed) is True
        rev.verify(exposed)
        (call,) = s.calls_to("POST", "/api/v3/credentials/revoke")
        assert call.headers["authorization"] == f"Bearer {admin}"

        # without the token GHES refuses: a one-line error, neither token in it
        s.add(exposed_value)
        s.revoked.discard(exposed_value)
        with pytest.raises(RotationError) as err:
            github.build({"api_url": s.api_url}).revoke(exposed)
        assert "401" in str(err.value)
        assert admin not in str(err.value) and exposed_value not in str(err.value)


def test_github_refuses_an_authenticated_call_on_github_com(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with GithubStandIn() as s:
        value = gh_token("ghp_", 14)
        s.add(value)
        monkeypatch.setenv("SNT_TEST_GH_TOKEN", gh_token("ghp_", 15))
        rev = github.build({"api_url": s.api_url, "token_env": "SNT_TEST_GH_TOKEN"})
        with pytest.raises(RotationError, match="unset token_env"):
            rev.revoke(Credential("github-token", "ghp_", value))
        assert s.works(value)


def test_github_revocation_not_yet_in_force_fails_verify_until_it_is() -> None:
    """GitHub answers 202 before the revocation takes effect: verify says so (the machine
    retries it), and passes once GitHub refuses the token."""
    with GithubStandIn(lag=1) as s:
        value = gh_token("ghp_", 16)
        s.add(value)
        rev = github.build({"api_url": s.api_url})
        exposed = Credential("github-token", "ghp_", value)
        assert rev.revoke(exposed) is True
        with pytest.raises(VerifyFailed):
            rev.verify(exposed)
        rev.verify(exposed)


def test_github_rate_limit_as_403_with_exhausted_quota_is_retryable() -> None:
    with GithubStandIn() as s:
        value = gh_token("ghp_", 17)
        s.add(value)
        rev = github.build({"api_url": s.api_url})
        s.fail_next(1, 403, retry_after=30)
        with pytest.raises(ProviderBusy) as err:
            rev.revoke(Credential("github-token", "ghp_", value))
        assert err.value.retry_after == 30.0


# -- Slack ----------------------------------------------------------------------------------


def test_slack_revoke_uses_the_token_itself_without_test_mode() -> None:
    with SlackStandIn() as s:
        value = _slack_token()
        s.add(value)
        rev = slack.build({"api_url": s.api_url})
        exposed = Credential("slack-token", "xoxb-", value)
        assert rev.revoke(exposed) is True
        (call,) = s.calls_to("POST", "/api/auth.revoke")
        assert call.headers["authorization"] == f"Bearer {value}"
        assert "test" not in call.form()
        assert value not in call.body.decode()  # in the header only
        rev.verify(exposed)
        (check,) = s.calls_to("POST", "/api/auth.test")
        assert check.status == 200 and value in s.revoked


# -- GitLab ---------------------------------------------------------------------------------


def test_gitlab_reads_self_then_deletes_self_with_the_token() -> None:
    with GitlabStandIn() as s:
        value = _gitlab_token()
        s.add(value)
        rev = gitlab.build({"url": s.url})
        assert rev.revoke(Credential("gitlab-token", "glpat-", value)) is True
        methods = [(c.method, c.path, c.status) for c in s.calls]
        assert methods == [
            ("GET", "/api/v4/personal_access_tokens/self", 200),
            ("DELETE", "/api/v4/personal_access_tokens/self", 204),
        ]
        assert all(c.headers["private-token"] == value for c in s.calls)


def test_gitlab_already_revoked_sends_no_delete() -> None:
    with GitlabStandIn() as s:
        value = _gitlab_token()
        s.add(value)
        s._revoke(value)
        rev = gitlab.build({"url": s.url})
        assert rev.revoke(Credential("gitlab-token", "glpat-", value)) is False
        assert s.calls_to("DELETE", s.self_path) == []


def _options_build(name: str, options: dict[str, Any]) -> Revoker:
    built: Revoker = provider_module(name).build(options)
    return built


def test_registry_builds_each_with_its_default_base() -> None:
    assert (
        "api.github.com"
        in _options_build("github-token", {}).plan(Credential("github-token", "x", "y")).actions[1]
    )
    assert (
        "slack.com/api/auth.revoke"
        in _options_build("slack-token", {}).plan(Credential("slack-token", "x", "y")).actions[0]
    )
    assert (
        "gitlab.com/api/v4/"
        in _options_build("gitlab-token", {}).plan(Credential("gitlab-token", "x", "y")).actions[1]
    )
