"""Which Slack destination gets an alert.

``[alerts.slack]`` names the default destination: an incoming webhook (``webhook_url``),
or a bot token (the name of the environment variable holding it, ``token_env``) and a
``channel``. Each ``[[alerts.routes]]`` matches on ``severities`` and/or ``sources`` and
sends to its own ``channel`` (through the bot token) or ``webhook_url``; the first route
that matches wins, and an alert no route matches goes to the default.

A destination's ``name`` is stable across restarts and config reloads (the store keys
"already alerted" on it): ``channel:#sec``, or ``webhook:`` and 12 hex digits of the
URL's SHA-256 (the URL itself is a credential and is never stored or shown).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sentinel.errors import ConfigError

Severity = Literal["critical", "high", "medium", "low", "info"]
Source = Literal["git", "file", "image", "k8s"]
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _check_url(url: str) -> str:
    """https, or plain http to loopback only (a test stand-in): a webhook URL and a
    bot token are credentials and must not cross a network in clear."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("not a URL") from None
    if not parts.hostname:
        raise ValueError("not a URL with a host")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url
    raise ValueError("must be an https:// URL (plain http only to loopback)")


def _check_channel(v: str | None) -> str | None:
    if v is not None and not _CHANNEL.match(v):
        raise ValueError("must be a channel name like #security or an id like C0123ABCD")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Strict):
    webhook_url: str | None = None
    token_env: str | None = None  # environment variable holding a bot token (xoxb-...)
    channel: str | None = None
    base_url: str | None = None  # Slack Web API base (tests: a local stand-in)
    api_base_url: str | None = (
        None  # Sentinel's API as people reach it; default [service].public_url
    )
    digest_threshold: int = Field(10, ge=1)  # more new findings than this per batch: a digest
    timeout_seconds: float = Field(10, gt=0, le=120)
    retries: int = Field(3, ge=0, le=10)  # per kind: 429, 5xx, connection errors
    retry_backoff_seconds: float = Field(0.5, ge=0, le=60)  # 5xx / connection: doubling
    max_retry_after_seconds: float = Field(60, ge=0, le=3600)  # a longer 429 wait: retried later
    # a delivery still failing after a send's own retries is tried again later
    # (sentinel.alerts.dispatch): after redeliver_after_seconds, doubling up to
    # redeliver_max_seconds, never before Slack's Retry-After; given up after max_attempts
    max_attempts: int = Field(8, ge=1, le=100)
    redeliver_after_seconds: float = Field(60, ge=0, le=86400)
    redeliver_max_seconds: float = Field(3600, ge=0, le=7 * 86400)
    poll_seconds: float = Field(30, ge=0.1, le=3600)  # how often `sentinel serve` looks
    # findings stored without the service (`sentinel scan --store`) alert when it next
    # runs if first seen within this many hours (older ones: history, not news)
    catch_up_hours: float = Field(168, ge=0)

    @field_validator("webhook_url", "base_url", "api_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @field_validator("token_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV.match(v):
            raise ValueError("must be the name of an environment variable, not a token")
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        return _check_channel(v)

    @model_validator(mode="after")
    def _default(self) -> SlackConfig:
        if self.webhook_url and (self.channel or self.token_env):
            raise ValueError("give webhook_url, or token_env with channel, not both")
        if not self.webhook_url and not (self.token_env and self.channel):
            raise ValueError("needs webhook_url, or token_env and channel")
        return self


class Route(_Strict):
    severities: list[Severity] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    channel: str | None = None
    webhook_url: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        return _check_channel(v)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @model_validator(mode="after")
    def _shape(self) -> Route:
        if not self.severities and not self.sources:
            raise ValueError("a route needs severities and/or sources to match")
        if bool(self.channel) == bool(self.webhook_url):
            raise ValueError("a route sends to a channel or a webhook_url (one of them)")
        return self


class AlertsConfig(_Strict):
    slack: SlackConfig | None = None
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes(self) -> AlertsConfig:
        if self.routes and self.slack is None:
            raise ValueError("routes need an [alerts.slack] section")
        if self.slack is not None and not self.slack.token_env:
            for r in self.routes:
                if r.channel:
                    raise ValueError(f"route to {r.channel} needs [alerts.slack] token_env")
        return self

    @property
    def enabled(self) -> bool:
        return self.slack is not None


@dataclass(frozen=True, slots=True)
class Destination:
    name: str  # stable: what AlertDelivery rows are keyed on
    kind: Literal["webhook", "channel"]
    webhook_url: str | None = field(default=None, repr=False)  # a credential
    channel: str | None = None


def webhook_name(url: str) -> str:
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:12]


def _dest(webhook_url: str | None, channel: str | None) -> Destination:
    if webhook_url:
        return Destination(webhook_name(webhook_url), "webhook", webhook_url=webhook_url)
    assert channel
    return Destination(f"channel:{channel}", "channel", channel=channel)


def parse(alerts: dict[str, Any], where: str = "service config") -> AlertsConfig:
    """``ServiceSettings.alerts`` validated; a mistake is a one-line ConfigError."""
    try:
        return AlertsConfig.model_validate(alerts)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in ("alerts", *err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {loc}: {msg}") from None


def default_destination(cfg: AlertsConfig) -> Destination | None:
    if cfg.slack is None:
        return None
    return _dest(cfg.slack.webhook_url, cfg.slack.channel)


def route(cfg: AlertsConfig, severity: str, source: str) -> Destination | None:
    """The destination for an alert of ``severity`` from ``source`` (None: alerts off)."""
    if cfg.slack is None:
        return None
    for r in cfg.routes:
        if r.severities and severity not in r.severities:
            continue
        if r.sources and source not in r.sources:
            continue
        return _dest(r.webhook_url, r.channel)
    return default_destination(cfg)


def destinations(cfg: AlertsConfig) -> dict[str, Destination]:
    """Every destination the config names, by name (to resend a stored delivery)."""
    out: dict[str, Destination] = {}
    d = default_destination(cfg)
    if d is not None:
        out[d.name] = d
    for r in cfg.routes:
        d = _dest(r.webhook_url, r.channel)
        out.setdefault(d.name, d)
    return out
