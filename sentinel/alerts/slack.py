"""Block Kit messages for new findings, and sending them through slack_sdk.

One message per new finding: severity and rule, where (target, path:line, commit,
author), the redacted preview, and links to the line on GitHub/GitLab and to the
finding in Sentinel's API. When one batch brings more than ``digest_threshold`` new
findings for a destination, that destination gets one digest instead.

Everything that comes from scanned content (paths, authors, targets, even rule text)
is escaped as Slack's mrkdwn wants (``&``, ``<``, ``>``), so a file named
``<!channel>.env`` cannot ping a channel or smuggle a link.

Sending uses slack_sdk's own retry handlers: 429 waits at least ``Retry-After``
(a wait longer than ``max_retry_after_seconds`` is left to the scheduler's retry), 5xx
and connection errors retry with doubling backoff. ``send`` never raises: it returns a
``SendResult`` whose ``error`` is one line and never contains the webhook URL or token.
slack_sdk is imported only when something is sent.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sentinel.alerts.model import Alert
from sentinel.alerts.routing import AlertsConfig, Destination, SlackConfig, route

if TYPE_CHECKING:
    from slack_sdk.http_retry import RetryHandler

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}
_FIELD_MAX = 300  # characters of one scanned-content field shown
_DIGEST_LINES = 20  # findings listed in a digest; the rest are counted


@dataclass(frozen=True, slots=True)
class Message:
    destination: Destination
    payload: dict[str, Any]  # text + blocks
    finding_ids: tuple[int, ...]
    digest: bool = False


@dataclass(frozen=True, slots=True)
class SendResult:
    destination: str
    ok: bool
    finding_ids: tuple[int, ...] = ()
    digest: bool = False
    error: str | None = None  # one line; no URL, no token
    retry_after: float | None = field(default=None)  # Slack asked us to wait this long


def escape(text: object) -> str:
    """``text`` safe inside mrkdwn: ``&``, ``<`` and ``>`` as Slack's entities, and
    cut to a readable length first (so an entity is never cut in half)."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    if len(s) > _FIELD_MAX:
        s = s[: _FIELD_MAX - 1] + "…"
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: object) -> str:
    # backticks inside inline code would end it early: show them as a look-alike
    return "`" + escape(text).replace("`", "ˋ") + "`"


def _link(url: str | None, label: str) -> str | None:
    if not url:
        return None
    # our own URLs (percent-quoted paths); a "|" or ">" would end the link syntax
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe}|{escape(label)}>"


def _where(a: Alert) -> str:
    loc = f"{a.path}:{a.line}" if a.line else a.path
    return f"{escape(a.target)} {_code(loc)}" if a.target else _code(loc)


def finding_message(a: Alert) -> dict[str, Any]:
    sev = a.severity.lower()
    header = f"{sev.upper()}: {a.rule_id}"
    fields = [
        {"type": "mrkdwn", "text": f"*Where*\n{_where(a)}"},
        {"type": "mrkdwn", "text": f"*Source*\n{escape(a.source or '-')}"},
        {"type": "mrkdwn", "text": f"*Redacted*\n{_code(a.redacted)}"},
        {"type": "mrkdwn", "text": f"*Confidence*\n{escape(a.confidence)}"},
    ]
    if a.commit:
        fields.append({"type": "mrkdwn", "text": f"*Commit*\n{_code(a.commit[:12])}"})
    if a.author:
        fields.append({"type": "mrkdwn", "text": f"*Author*\n{escape(a.author)}"})
    links = [
        x
        for x in (_link(a.web_url, "View the line"), _link(a.api_url, f"Finding #{a.finding_id}"))
        if x
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{_EMOJI.get(sev, '')} {escape(a.description or a.rule_id)}".strip(),
            },
            "fields": fields[:10],
        },
    ]
    if links:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]}
        )
    text = f"New {sev} finding: {escape(a.rule_id)} in {escape(a.path or a.target)}"
    return {"text": text, "blocks": blocks}


def digest_message(alerts: Sequence[Alert], findings_url: str | None = None) -> dict[str, Any]:
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.finding_id))
    counts = Counter(a.severity for a in alerts)
    summary = ", ".join(
        f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: SEVERITY_ORDER.get(s, 9))
    )
    lines = []
    for a in ordered[:_DIGEST_LINES]:
        ref = _link(a.api_url, f"#{a.finding_id}") or f"#{a.finding_id}"
        lines.append(f"• {ref} *{escape(a.severity)}* {escape(a.rule_id)} {_where(a)}")
    rest = len(ordered) - _DIGEST_LINES
    if rest > 0:
        lines.append(f"…and {rest} more")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{len(alerts)} new findings"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(summary)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
    ]
    link = _link(findings_url, "All open findings")
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    return {"text": f"{len(alerts)} new findings ({escape(summary)})", "blocks": blocks}


def plan(
    alerts: Iterable[Alert], cfg: AlertsConfig, findings_url: str | None = None
) -> list[Message]:
    """The messages for one batch: per destination, one per finding, or one digest when
    the batch brings more than ``digest_threshold`` there."""
    if cfg.slack is None:
        return []
    by_dest: dict[str, tuple[Destination, list[Alert]]] = {}
    for a in alerts:
        d = route(cfg, a.severity, a.source)
        if d is not None:
            by_dest.setdefault(d.name, (d, []))[1].append(a)
    return [m for d, group in by_dest.values() for m in messages_for(d, group, cfg, findings_url)]


def messages_for(
    dest: Destination, group: Sequence[Alert], cfg: AlertsConfig, findings_url: str | None = None
) -> list[Message]:
    assert cfg.slack is not None
    if len(group) > cfg.slack.digest_threshold:
        ids = tuple(a.finding_id for a in group)
        return [Message(dest, digest_message(group, findings_url), ids, digest=True)]
    return [Message(dest, finding_message(a), (a.finding_id,)) for a in group]


def _one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s[:limit]


def _handlers(cfg: SlackConfig) -> list[RetryHandler]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import (
        BackoffRetryIntervalCalculator,
    )

    cap = cfg.max_retry_after_seconds

    class BoundedRateLimit(RateLimitErrorRetryHandler):
        """slack_sdk's 429 handler (sleeps Retry-After, plus jitter), but a wait longer
        than ``cap`` is not slept here: the delivery fails now and is retried later."""

        def _can_retry(
            self, *, state: Any, request: Any, response: Any = None, error: Any = None
        ) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            return _retry_after(response.headers) <= cap

    class AnyServerError(ServerErrorRetryHandler):
        def _can_retry(
            self, *, state: Any, request: Any, response: Any = None, error: Any = None
        ) -> bool:
            return response is not None and response.status_code in (500, 502, 503, 504)

    backoff = BackoffRetryIntervalCalculator(backoff_factor=cfg.retry_backoff_seconds)
    return [
        BoundedRateLimit(max_retry_count=cfg.retries),
        AnyServerError(max_retry_count=cfg.retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(max_retry_count=cfg.retries, interval_calculator=backoff),
    ]


def _retry_after(headers: Any) -> float:
    for k, v in dict(headers or {}).items():
        if k.lower() == "retry-after":
            try:
                return float(v[0] if isinstance(v, list) else v)
            except (TypeError, ValueError, IndexError):
                return 1.0
    return 1.0


def _quiet_logger() -> logging.Logger:
    """slack_sdk logs the request URL and body at DEBUG; a webhook URL is a credential,
    so its clients get a logger that never goes below WARNING."""
    log = logging.getLogger("sentinel.alerts.slack_sdk")
    log.setLevel(logging.WARNING)
    return log


def _failed(msg: Message, err: str, retry_after: float | None = None) -> SendResult:
    return SendResult(
        msg.destination.name, False, msg.finding_ids, msg.digest, _one_line(err), retry_after
    )


def send(msg: Message, cfg: AlertsConfig) -> SendResult:
    """Send one message; never raises."""
    assert cfg.slack is not None
    dest = msg.destination
    try:
        if dest.kind == "webhook":
            return _send_webhook(msg, cfg.slack)
        return _send_chat(msg, cfg.slack)
    except Exception as exc:  # an alert never fails a scan: report it, do not raise
        text = str(exc)
        if dest.webhook_url:
            text = text.replace(dest.webhook_url, "<webhook>")
        return _failed(msg, f"{type(exc).__name__}: {text}")


def _send_webhook(msg: Message, cfg: SlackConfig) -> SendResult:
    from slack_sdk.webhook import WebhookClient

    assert msg.destination.webhook_url
    client = WebhookClient(
        msg.destination.webhook_url,
        timeout=max(1, round(cfg.timeout_seconds)),
        retry_handlers=_handlers(cfg),
        logger=_quiet_logger(),
    )
    resp = client.send_dict({**msg.payload, "unfurl_links": False, "unfurl_media": False})
    if resp.status_code == 200 and resp.body == "ok":
        return SendResult(msg.destination.name, True, msg.finding_ids, msg.digest)
    ra = _retry_after(resp.headers) if resp.status_code == 429 else None
    return _failed(msg, f"HTTP {resp.status_code}: {resp.body}", ra)


def _send_chat(msg: Message, cfg: SlackConfig) -> SendResult:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    assert cfg.token_env and msg.destination.channel
    token = os.environ.get(cfg.token_env, "").strip()
    if not token:
        return _failed(
            msg, f"environment variable {cfg.token_env} (the Slack bot token) is not set"
        )
    base = cfg.base_url or "https://slack.com/api/"
    client = WebClient(
        token=token,
        base_url=base if base.endswith("/") else base + "/",
        timeout=max(1, round(cfg.timeout_seconds)),
        retry_handlers=_handlers(cfg),
        logger=_quiet_logger(),
    )
    try:
        client.chat_postMessage(
            channel=msg.destination.channel,
            text=msg.payload["text"],
            blocks=msg.payload["blocks"],
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as exc:
        status = getattr(exc.response, "status_code", None)
        data = getattr(exc.response, "data", None)
        err = data.get("error") if isinstance(data, dict) else None
        ra = _retry_after(exc.response.headers) if status == 429 else None
        return _failed(msg, f"HTTP {status}: {err or 'error'}", ra)
    return SendResult(msg.destination.name, True, msg.finding_ids, msg.digest)


def deliver(
    alerts: Iterable[Alert], cfg: AlertsConfig, findings_url: str | None = None
) -> list[SendResult]:
    """Plan and send one batch; one result per message, never an exception."""
    return [send(m, cfg) for m in plan(alerts, cfg, findings_url)]
