"""Slack alerts against a local stand-in that answers as Slack's documented APIs do:
message content, routing, digests, retries on 429 and 5xx, failures reported (never
raised), hostile scanned content escaped, and no plaintext in any payload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sentinel.alerts import routing
from sentinel.alerts.model import Alert, from_store, web_url
from sentinel.alerts.slack import deliver, finding_message, plan
from sentinel.errors import ConfigError
from sentinel.fingerprint import redact
from sentinel.store.models import Finding, Occurrence
from tests.conftest import token
from tests.slackapi import SlackStandIn

TOKEN_ENV = "SENTINEL_TEST_SLACK_TOKEN"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    s = SlackStandIn().start()
    yield s
    s.stop()


def webhook_cfg(slack: SlackStandIn, **extra: Any) -> routing.AlertsConfig:
    return routing.parse({"slack": {"webhook_url": slack.webhook_url(), **extra}})


def bot_cfg(slack: SlackStandIn, routes: list[dict[str, Any]] | None = None, **extra: Any):
    return routing.parse(
        {
            "slack": {
                "token_env": TOKEN_ENV,
                "channel": "#security",
                "base_url": slack.api_base,
                "retry_backoff_seconds": 0.05,
                **extra,
            },
            "routes": routes or [],
        }
    )


def alert(n: int = 1, **kw: Any) -> Alert:
    base: dict[str, Any] = {
        "finding_id": n,
        "fingerprint": f"{n:064x}",
        "rule_id": "github.pat",
        "description": "GitHub personal access token",
        "severity": "high",
        "confidence": "high",
        "source": "git",
        "target": "https://github.com/acme/api",
        "path": "config/settings.py",
        "line": 12,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "author": "Ann Author",
        "redacted": "ghp_********",
        "web_url": None,
        "api_url": f"https://sentinel.example.org/v1/findings/{n}",
    }
    base.update(kw)
    if base["web_url"] is None:
        base["web_url"] = web_url(base["target"], base["commit"], base["path"], base["line"])
    return Alert(**base)


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_a_finding_message_says_what_where_who_and_links(slack: SlackStandIn) -> None:
    [res] = deliver([alert(7)], webhook_cfg(slack))
    assert res.ok and res.error is None and res.finding_ids == (7,)
    [payload] = slack.payloads()
    text = all_text(payload)
    assert payload["blocks"][0]["text"]["text"] == "HIGH: github.pat"
    for want in (
        "config/settings.py:12",
        "https://github.com/acme/api",
        "0123456789ab",
        "Ann Author",
        "ghp_********",
        "https://github.com/acme/api/blob/0123456789abcdef0123456789abcdef01234567/config/settings.py#L12",
        "https://sentinel.example.org/v1/findings/7",
    ):
        assert want in text, want
    assert payload["unfurl_links"] is False


def test_web_urls_for_github_and_gitlab_only() -> None:
    c = "ab" * 20
    assert web_url("https://gitlab.com/g/sub/r.git", c, "a b.py", 3) == (
        f"https://gitlab.com/g/sub/r/-/blob/{c}/a%20b.py#L3"
    )
    assert web_url("https://user:tok@github.com/o/r", c, "x", 1) == (
        f"https://github.com/o/r/blob/{c}/x#L1"
    )
    assert web_url("http://github.com/o/r", c, "x", 1) is None
    assert web_url("https://example.org/o/r", c, "x", 1) is None
    assert web_url("/srv/repos/r", c, "x", 1) is None
    assert web_url("https://github.com/o/r", None, "x", 1) is None


def test_canary_plaintext_never_reaches_a_payload(slack: SlackStandIn) -> None:
    canary = token("ghp_", 1313)
    finding = Finding(
        id=42,
        fingerprint="f" * 64,
        rule_id="github.pat",
        description="GitHub personal access token",
        severity="critical",
        confidence="high",
        redacted=redact(canary),
        secret_sealed=b"sealed-bytes",
    )
    occ = Occurrence(
        source="git",
        target="https://x-access-token:" + canary + "@github.com/acme/api.git",
        commit="c" * 40,
        path="deploy/.env",
        line=3,
        author="Ann Author",
    )
    a = from_store(finding, occ, "https://sentinel.example.org")
    assert canary not in repr(a)
    cfg = webhook_cfg(slack, digest_threshold=1)
    deliver([a], cfg)  # one message
    deliver([a, alert(2)], cfg)  # and a digest
    assert len(slack.requests) == 2
    for r in slack.requests:
        assert canary.encode() not in r.body
        assert canary[4:20].encode() not in r.body
    assert "github.com/acme/api" in all_text(slack.payloads()[0])


def test_hostile_path_and_author_cannot_ping_or_link(slack: SlackStandIn) -> None:
    evil = alert(
        3,
        path="<!channel> <https://evil.example|click me> & co`.env",
        author="<!here> <@U123>",
        target="<!everyone>",
    )
    cfg = webhook_cfg(slack, digest_threshold=1)
    deliver([evil], cfg)
    deliver([evil, alert(4)], cfg)  # the digest lists it too
    for payload in slack.payloads():
        text = all_text(payload)
        for bad in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil"):
            assert bad not in text
        assert "&lt;!channel&gt;" in text
        assert "&amp; co" in text


def test_routes_by_severity_and_source_first_match_wins(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "xoxb-test-token")
    slack.add_channel("#sec-critical")
    slack.add_channel("#images")
    slack.hooks.add("T000/B000/hook-k8s")
    cfg = bot_cfg(
        slack,
        routes=[
            {"severities": ["critical"], "channel": "#sec-critical"},
            {"sources": ["image"], "channel": "#images"},
            {
                "sources": ["k8s"],
                "severities": ["high"],
                "webhook_url": slack.webhook_url("T000/B000/hook-k8s"),
            },
        ],
    )
    alerts = [
        alert(1, severity="critical", source="image"),  # first route, not the second
        alert(2, severity="high", source="image"),
        alert(3, severity="high", source="k8s"),
        alert(4, severity="medium", source="k8s"),  # no route: the default
    ]
    results = deliver(alerts, cfg)
    assert all(r.ok for r in results), results
    where = {r.finding_ids[0]: r.destination for r in results}
    assert where[1] == "channel:#sec-critical"
    assert where[2] == "channel:#images"
    assert where[3] == routing.webhook_name(slack.webhook_url("T000/B000/hook-k8s"))
    assert where[4] == "channel:#security"
    chats = [r for r in slack.requests if r.path == "/api/chat.postMessage"]
    assert {r.payload["channel"] for r in chats} == {"#sec-critical", "#images", "#security"}
    assert all(r.headers["authorization"] == "Bearer xoxb-test-token" for r in chats)
    # names are stable and carry no credential
    assert "hook-k8s" not in where[3]


def test_more_than_threshold_in_one_batch_is_one_digest(slack: SlackStandIn) -> None:
    cfg = webhook_cfg(slack, digest_threshold=3)
    many = [alert(i, severity="critical" if i == 5 else "medium") for i in range(1, 6)]
    [res] = deliver(many, cfg)
    assert res.ok and res.digest and set(res.finding_ids) == {1, 2, 3, 4, 5}
    [payload] = slack.payloads()
    text = all_text(payload)
    assert payload["blocks"][0]["text"]["text"] == "5 new findings"
    assert "1 critical, 4 medium" in text
    assert text.index("|#5>") < text.index("|#1>")  # critical first
    # at the threshold: one message each
    slack.requests.clear()
    assert len(deliver(many[:3], cfg)) == 3 and len(slack.payloads()) == 3


def test_429_is_retried_no_earlier_than_retry_after(slack: SlackStandIn) -> None:
    slack.fail_next(1, 429, retry_after=1)
    [res] = deliver([alert()], webhook_cfg(slack))
    assert res.ok, res
    first, second = slack.requests
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0


def test_429_on_the_web_api_too(slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "xoxb-test-token")
    slack.fail_next(1, 429, retry_after=1)
    [res] = deliver([alert()], bot_cfg(slack))
    assert res.ok, res
    assert slack.requests[1].at - slack.requests[0].at >= 1.0


def test_a_long_retry_after_is_left_for_later_not_slept(slack: SlackStandIn) -> None:
    slack.fail_next(1, 429, retry_after=120)
    t0 = time.monotonic()
    [res] = deliver([alert()], webhook_cfg(slack, max_retry_after_seconds=5))
    assert time.monotonic() - t0 < 5
    assert not res.ok and res.retry_after == 120 and "429" in (res.error or "")


def test_5xx_is_retried_with_backoff(slack: SlackStandIn) -> None:
    slack.fail_next(2, 500)
    [res] = deliver([alert()], webhook_cfg(slack, retry_backoff_seconds=0.05))
    assert res.ok
    assert [r.status for r in slack.requests] == [500, 500, 200]


def test_permanent_failures_are_reported_not_raised(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # unknown webhook
    cfg = routing.parse({"slack": {"webhook_url": slack.webhook_url("T9/B9/revoked")}})
    [res] = deliver([alert()], cfg)
    assert not res.ok and res.error == "HTTP 404: no_service"
    assert "revoked" not in res.error and "T9" not in res.destination
    # 5xx beyond the retries
    slack.fail_next(2, 503)  # the try and its one retry
    [res] = deliver([alert()], webhook_cfg(slack, retries=1, retry_backoff_seconds=0.01))
    assert not res.ok and "503" in (res.error or "")
    # bad token, unknown channel, no token at all
    monkeypatch.setenv(TOKEN_ENV, "xoxb-wrong")
    [res] = deliver([alert()], bot_cfg(slack))
    assert not res.ok and "invalid_auth" in (res.error or "") and "xoxb" not in (res.error or "")
    monkeypatch.setenv(TOKEN_ENV, "xoxb-test-token")
    [res] = deliver([alert()], bot_cfg(slack, channel="#nowhere"))
    assert not res.ok and "channel_not_found" in (res.error or "")
    monkeypatch.delenv(TOKEN_ENV)
    [res] = deliver([alert()], bot_cfg(slack))
    assert not res.ok and TOKEN_ENV in (res.error or "")
    # nothing listening
    port = slack.base.rsplit(":", 1)[1]
    slack.stop()
    dead = routing.parse(
        {"slack": {"webhook_url": f"http://127.0.0.1:{port}/services/x", "retries": 0}}
    )
    [res] = deliver([alert()], dead)
    assert not res.ok and res.error and "\n" not in res.error and "/services/x" not in res.error


def test_no_alerts_section_sends_nothing() -> None:
    cfg = routing.parse({})
    assert not cfg.enabled and plan([alert()], cfg) == [] and deliver([alert()], cfg) == []


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"slack": {}}, "alerts.slack: needs webhook_url, or token_env and channel"),
        (
            {"slack": {"webhook_url": "http://hooks.slack.com/services/x"}},
            "alerts.slack.webhook_url: must be an https:// URL (plain http only to loopback)",
        ),
        (
            {"slack": {"token_env": "xoxb-123-abc", "channel": "#s"}},
            "alerts.slack.token_env: must be the name of an environment variable, not a token",
        ),
        (
            {
                "slack": {"webhook_url": "https://h.example/x"},
                "routes": [{"channel": "#a", "severities": ["high"]}],
            },
            "alerts: route to #a needs [alerts.slack] token_env",
        ),
        (
            {
                "slack": {"webhook_url": "https://h.example/x"},
                "routes": [{"webhook_url": "https://h.example/y"}],
            },
            "alerts.routes.0: a route needs severities and/or sources to match",
        ),
        (
            {
                "slack": {"webhook_url": "https://h.example/x"},
                "routes": [{"severities": ["urgent"], "webhook_url": "https://h.example/y"}],
            },
            "alerts.routes.0.severities.0: Input should be 'critical', 'high', 'medium', 'low' or 'info'",
        ),
        (
            {"slack": {"webhook_url": "https://h.example/x", "digest": 3}},
            "alerts.slack.digest: Extra inputs are not permitted",
        ),
    ],
)
def test_config_mistakes_are_one_line_errors(alerts: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        routing.parse(alerts, "service.toml")
    assert str(exc.value) == f"service.toml: {message}"


def test_finding_message_fits_block_kit_limits() -> None:
    msg = finding_message(alert(path="a/" * 2000, author="x" * 5000))
    for block in msg["blocks"]:
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
    assert len(msg["blocks"][0]["text"]["text"]) <= 150
