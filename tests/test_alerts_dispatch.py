"""Alert dispatch from the store to a local Slack stand-in, on SQLite and PostgreSQL:
one message per new finding, none for a rescan or a triaged finding, once under
concurrent dispatch, retried later with backoff (and never before Retry-After), given up
and counted, CLI-stored findings caught up, no plaintext anywhere, and end to end
through `sentinel serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sentinel.alerts import routing
from sentinel.alerts.dispatch import Tally, dispatch_scan, pending_findings, retry_due
from sentinel.store.models import AlertDelivery, Finding, utcnow
from tests.apiapp import bearer, make_token
from tests.conftest import run_cli, token
from tests.slackapi import SlackStandIn


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    s = SlackStandIn().start()
    yield s
    s.stop()


def cfg_for(slack: SlackStandIn, hook: str = "T000/B000/hook-default", **extra: Any) -> Any:
    return routing.parse({"slack": {"webhook_url": slack.webhook_url(hook), "retries": 0, **extra}})


def stored_scan(
    opened: Any, secrets: list[str], target: str = "/srv/app", severities: list[str] | None = None
) -> str:
    """A scan of ``secrets`` (one file each) recorded the way every ingest path does."""
    from sentinel.fingerprint import fingerprint, redact
    from sentinel.models import Occurrence, Origin, ScanResult
    from sentinel.store.facade import record_result

    occs = [
        Occurrence(
            rule_id="github.pat",
            description="GitHub personal access token",
            severity=(severities or ["high"] * len(secrets))[i],
            confidence="high",
            fingerprint=fingerprint(s.encode(), opened.fingerprint.key),
            redacted=redact(s),
            origin=Origin(source="file", path=f"conf/{i}.env", author="Ann Author"),
            line=3,
            column=14,
            end_line=3,
            end_column=54,
            entropy=4.8,
            secret=s,
        )
        for i, s in enumerate(secrets)
    ]
    scan, _ = record_result(
        opened,
        kind="path",
        target=target,
        result=ScanResult(occs, {}),
        requested_by="test",
        complete=False,
    )
    return scan.id


def deliveries(opened: Any) -> list[AlertDelivery]:
    with opened.sessions() as s:
        return list(s.scalars(select(AlertDelivery).order_by(AlertDelivery.id)))


def no_plaintext(slack: SlackStandIn, opened: Any, secrets: list[str]) -> None:
    assert slack.requests
    rows = [
        json.dumps([d.destination, d.status, d.last_error]).encode() for d in deliveries(opened)
    ]
    for sec in secrets:
        for blob in [r.body for r in slack.requests] + rows:
            assert sec.encode() not in blob
            assert sec[4:24].encode() not in blob


def test_one_message_per_new_finding_and_a_rescan_sends_nothing(
    opened: Any, slack: SlackStandIn
) -> None:
    cfg = cfg_for(slack)
    a, b, c = token("ghp", 501), token("ghp", 502), token("ghp", 503)
    first = stored_scan(opened, [a, b])
    assert dispatch_scan(opened, cfg, first, "https://sentinel.example.org") == Tally(sent=2)
    payloads = slack.payloads()
    assert len(payloads) == 2
    text = json.dumps(payloads)
    assert "conf/0.env:3" in text and "conf/1.env:3" in text and "Ann Author" in text
    assert "https://sentinel.example.org/v1/findings/" in text
    assert [d.status for d in deliveries(opened)] == ["sent", "sent"]
    assert all(d.sent_at is not None and d.attempts == 1 for d in deliveries(opened))
    # the same scan dispatched again, and a rescan of the same secrets: nothing new
    assert dispatch_scan(opened, cfg, first) == Tally()
    again = stored_scan(opened, [a, b])
    assert dispatch_scan(opened, cfg, again) == Tally()
    assert pending_findings(opened, cfg) == Tally()
    # a rescan that also brings a new secret alerts that one only
    third = stored_scan(opened, [a, b, c])
    assert dispatch_scan(opened, cfg, third) == Tally(sent=1)
    assert len(slack.payloads()) == 3
    no_plaintext(slack, opened, [a, b, c])


def test_triaged_findings_never_alert(opened: Any, slack: SlackStandIn) -> None:
    from sentinel.store import queries

    cfg = cfg_for(slack)
    secrets = [token("ghp", 511), token("ghp", 512), token("ghp", 513)]
    sid = stored_scan(opened, secrets)
    with opened.sessions() as s:
        ids = list(s.scalars(select(Finding.id).order_by(Finding.id)))
        queries.triage(s, ids[0], "ignored", reason="test fixture", who="test")
        queries.triage(s, ids[1], "false_positive", reason="not a token", who="test")
        s.commit()
    assert dispatch_scan(opened, cfg, sid) == Tally(sent=1)
    assert pending_findings(opened, cfg) == Tally()
    assert [d.finding_id for d in deliveries(opened)] == [ids[2]]


def test_more_new_findings_than_the_threshold_are_one_digest(
    opened: Any, slack: SlackStandIn
) -> None:
    cfg = cfg_for(slack, digest_threshold=3)
    secrets = [token("ghp", 520 + i) for i in range(5)]
    sid = stored_scan(opened, secrets)
    assert dispatch_scan(opened, cfg, sid, "https://sentinel.example.org") == Tally(sent=5)
    [payload] = slack.payloads()
    assert payload["blocks"][0]["text"]["text"] == "5 new findings"
    assert "https://sentinel.example.org/v1/findings?status=open" in json.dumps(payload)
    assert [d.status for d in deliveries(opened)] == ["sent"] * 5
    no_plaintext(slack, opened, secrets)


def test_concurrent_dispatches_of_one_scan_send_each_finding_once(
    opened: Any, slack: SlackStandIn, store_env: str
) -> None:
    from sentinel.store.facade import open_store

    cfg = cfg_for(slack)
    secrets = [token("ghp", 530 + i) for i in range(6)]
    sid = stored_scan(opened, secrets)
    # four "processes": each its own engine and connections, started together
    stores = [open_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    tallies: list[Tally] = []

    def run(st: Any) -> None:
        barrier.wait()
        tallies.append(dispatch_scan(st, cfg, sid))

    threads = [threading.Thread(target=run, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for st in stores:
        st.close()
    assert len(tallies) == 4 and sum(t.sent for t in tallies) == 6
    texts = sorted(p["text"] for p in slack.payloads())
    assert texts == [f"New high finding: github.pat in conf/{i}.env" for i in range(6)]


def test_a_5xx_is_retried_later_with_backoff(opened: Any, slack: SlackStandIn) -> None:
    cfg = cfg_for(slack, redeliver_after_seconds=60, redeliver_max_seconds=600)
    sid = stored_scan(opened, [token("ghp", 541)])
    t0 = utcnow()
    slack.fail_next(2, 500)
    assert dispatch_scan(opened, cfg, sid, now=t0) == Tally(failed=1)
    [d] = deliveries(opened)
    assert (d.status, d.attempts, d.last_error) == ("retry", 1, "HTTP 500: server_error")
    assert d.next_attempt_at == t0 + timedelta(seconds=60)
    # not before it is due
    assert retry_due(opened, cfg, t0 + timedelta(seconds=59)) == Tally()
    t1 = t0 + timedelta(seconds=60)
    assert retry_due(opened, cfg, t1) == Tally(failed=1)  # the second 500
    [d] = deliveries(opened)
    assert d.attempts == 2 and d.next_attempt_at == t1 + timedelta(seconds=120)  # doubled
    assert retry_due(opened, cfg, t1 + timedelta(seconds=119)) == Tally()
    assert retry_due(opened, cfg, t1 + timedelta(seconds=120)) == Tally(sent=1)
    [d] = deliveries(opened)
    assert (d.status, d.attempts, d.next_attempt_at) == ("sent", 3, None)
    assert [r.status for r in slack.requests] == [500, 500, 200]
    assert retry_due(opened, cfg, t1 + timedelta(days=1)) == Tally()


def test_a_429_retry_after_is_honoured_by_the_retry(opened: Any, slack: SlackStandIn) -> None:
    # a wait longer than a send may sleep is left to the later retry, which keeps it
    cfg = cfg_for(slack, max_retry_after_seconds=1, redeliver_after_seconds=30)
    sid = stored_scan(opened, [token("ghp", 551)])
    t0 = utcnow()
    slack.fail_next(1, 429, retry_after=900)
    assert dispatch_scan(opened, cfg, sid, now=t0) == Tally(failed=1)
    [d] = deliveries(opened)
    assert d.status == "retry" and "429" in (d.last_error or "")
    assert d.next_attempt_at == t0 + timedelta(seconds=900)
    assert retry_due(opened, cfg, t0 + timedelta(seconds=899)) == Tally()
    assert retry_due(opened, cfg, t0 + timedelta(seconds=900)) == Tally(sent=1)
    assert len(slack.payloads()) == 1


def test_a_permanent_failure_is_given_up_and_counted(opened: Any, slack: SlackStandIn) -> None:
    from sentinel.api.metrics import Metrics

    metrics = Metrics(opened)
    cfg = cfg_for(slack, hook="T9/B9/revoked", max_attempts=3, redeliver_after_seconds=10)
    sid = stored_scan(opened, [token("ghp", 561)])
    t = utcnow()
    metrics.alerts_done(dispatch_scan(opened, cfg, sid, now=t))
    for _ in range(5):
        t += timedelta(hours=1)
        metrics.alerts_done(retry_due(opened, cfg, t))
    [d] = deliveries(opened)
    assert (d.status, d.attempts, d.next_attempt_at) == ("failed", 3, None)
    assert d.last_error == "HTTP 404: no_service" and "revoked" not in d.last_error
    assert len(slack.requests) == 3  # three attempts, then no more
    body = metrics.render()[0].decode()
    assert 'sentinel_alerts_total{outcome="failed"} 2.0' in body
    assert 'sentinel_alerts_total{outcome="gave_up"} 1.0' in body
    assert 'sentinel_alerts_total{outcome="sent"} 0.0' in body
    assert 'sentinel_alert_deliveries{status="failed"} 1.0' in body


def test_a_delivery_triaged_before_its_retry_is_not_sent(opened: Any, slack: SlackStandIn) -> None:
    from sentinel.store import queries

    cfg = cfg_for(slack)
    sid = stored_scan(opened, [token("ghp", 571)])
    t0 = utcnow()
    slack.fail_next(1, 500)
    assert dispatch_scan(opened, cfg, sid, now=t0) == Tally(failed=1)
    with opened.sessions() as s:
        fid = s.scalars(select(Finding.id)).one()
        queries.triage(s, fid, "ignored", reason="test key", who="test")
        s.commit()
    assert retry_due(opened, cfg, t0 + timedelta(hours=1)) == Tally()
    [d] = deliveries(opened)
    assert d.status == "skipped" and len(slack.requests) == 1


def test_routes_to_a_bot_channel_and_a_webhook_and_retries_each_where_it_belongs(
    opened: Any, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_TEST_SLACK_TOKEN", "xoxb-test-token")
    slack.hooks.add("T000/B000/hook-critical")
    cfg = routing.parse(
        {
            "slack": {
                "token_env": "SENTINEL_TEST_SLACK_TOKEN",
                "channel": "#security",
                "base_url": slack.api_base,
                "retries": 0,
            },
            "routes": [
                {
                    "severities": ["critical"],
                    "webhook_url": slack.webhook_url("T000/B000/hook-critical"),
                }
            ],
        }
    )
    sid = stored_scan(
        opened, [token("ghp", 611), token("ghp", 612)], severities=["critical", "high"]
    )
    t0 = utcnow()
    slack.fail_next(1, 500)
    assert dispatch_scan(opened, cfg, sid, now=t0) == Tally(sent=1, failed=1)
    assert retry_due(opened, cfg, t0 + timedelta(minutes=5)) == Tally(sent=1)
    ok = [r for r in slack.requests if r.status == 200]
    chats = [r for r in ok if r.path == "/api/chat.postMessage"]
    hooks = [r for r in ok if r.path == "/services/T000/B000/hook-critical"]
    assert len(chats) == 1 and len(hooks) == 1 and len(ok) == 2
    assert chats[0].payload["channel"] == "#security" and "HIGH" in json.dumps(chats[0].payload)
    assert "CRITICAL" in json.dumps(hooks[0].payload)
    assert sorted(d.destination for d in deliveries(opened)) == sorted(
        ["channel:#security", routing.webhook_name(slack.webhook_url("T000/B000/hook-critical"))]
    )


def test_a_claim_whose_sender_died_is_sent_after_its_lease(
    opened: Any, slack: SlackStandIn
) -> None:
    from sentinel.alerts import dispatch

    cfg = cfg_for(slack)
    sid = stored_scan(opened, [token("ghp", 621)])
    with opened.sessions() as s:
        fid = s.scalars(select(Finding.id).where(Finding.first_scan_id == sid)).one()
    t0 = utcnow()
    lease = t0 + dispatch._lease(cfg)
    # what a process killed between claiming and sending leaves behind
    dest = routing.default_destination(cfg)
    assert dest is not None
    assert dispatch._claim(opened, [(fid, dest.name)], lease)
    assert dispatch_scan(opened, cfg, sid) == Tally()  # claimed: not this call's to send
    assert retry_due(opened, cfg, t0 + timedelta(seconds=30)) == Tally()  # still its own
    assert retry_due(opened, cfg, lease) == Tally(sent=1)
    assert len(slack.payloads()) == 1


def test_a_destination_dropped_from_the_config_is_given_up(
    opened: Any, slack: SlackStandIn
) -> None:
    sid = stored_scan(opened, [token("ghp", 631)])
    t0 = utcnow()
    slack.fail_next(1, 503)
    assert dispatch_scan(opened, cfg_for(slack), sid, now=t0) == Tally(failed=1)
    slack.hooks.add("T1/B1/new-hook")
    moved = cfg_for(slack, hook="T1/B1/new-hook")
    assert retry_due(opened, moved, t0 + timedelta(hours=1)) == Tally(gave_up=1)
    [d] = deliveries(opened)
    assert d.status == "failed" and d.last_error == "the destination is no longer configured"


def test_findings_stored_by_the_cli_are_picked_up(
    opened: Any, slack: SlackStandIn, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    gh = token("ghp", 581)
    (work / "deploy.env").write_text(f"GITHUB_TOKEN={gh}\n")
    out = run_cli("scan", "path", str(work), "--store", "-f", "json")
    assert out.returncode == 1, out.stderr
    cfg = cfg_for(slack)
    assert pending_findings(opened, cfg) == Tally(sent=1)
    assert pending_findings(opened, cfg) == Tally()
    [payload] = slack.payloads()
    assert "deploy.env" in json.dumps(payload)
    no_plaintext(slack, opened, [gh])
    # history from before the catch-up window is not news
    old = cfg_for(slack, catch_up_hours=1)
    (work / "more.env").write_text(f"GITHUB_TOKEN={token('ghp', 582)}\n")
    assert run_cli("scan", "path", str(work), "--store").returncode == 1
    assert pending_findings(opened, old, now=utcnow() + timedelta(hours=2)) == Tally()
    assert pending_findings(opened, old) == Tally(sent=1)


def test_no_alerts_section_dispatches_nothing(opened: Any) -> None:
    cfg = routing.parse({})
    sid = stored_scan(opened, [token("ghp", 591)])
    assert dispatch_scan(opened, cfg, sid) == Tally()
    assert pending_findings(opened, cfg) == Tally() and retry_due(opened, cfg) == Tally()
    assert deliveries(opened) == []


def test_serve_refuses_a_mistaken_alerts_section(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text('[alerts.slack]\nchannel = "#security"\n')
    out = run_cli("serve", "--config", str(config))
    assert out.returncode == 2
    assert "alerts.slack: needs webhook_url, or token_env and channel" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") <= 1


@pytest.mark.integration
def test_a_scan_run_by_the_service_alerts_its_new_finding(
    opened: Any, slack: SlackStandIn, tmp_path: Path
) -> None:
    from sentinel.jobs.inprocess import InProcessRunner
    from sentinel.service_hooks import after_scan_hooks
    from sentinel.settings import ServiceSection, ServiceSettings
    from tests.apiapp import TestClient, make_app

    root = tmp_path / "roots"
    (root / "app").mkdir(parents=True)
    gh = token("ghp", 641)
    (root / "app" / "deploy.env").write_text(f"GITHUB_TOKEN={gh}\n")
    settings = ServiceSettings(
        service=ServiceSection(scan_roots=[root]),
        alerts={"slack": {"webhook_url": slack.webhook_url()}},
    )
    runner = InProcessRunner(opened, settings)
    runner.on_done.extend(after_scan_hooks(opened, settings))
    ci = bearer(make_token(opened, "ci", ["scans:write"]))
    try:
        with TestClient(make_app(opened, settings, runner)) as client:
            body = {"kind": "path", "target": str(root / "app")}
            r = client.post("/v1/scans", headers=ci, json=body)
            assert r.status_code == 202, r.text
            _until(lambda: len(slack.payloads()) == 1, 120)
            assert "deploy.env" in json.dumps(slack.payloads()[0])
    finally:
        runner.shutdown()
    no_plaintext(slack, opened, [gh])


def test_a_blocked_push_alerts_once_with_a_link_to_the_commit(
    opened: Any, slack: SlackStandIn
) -> None:
    from sentinel.events import EventFinding, HookEvent, RefUpdate
    from sentinel.fingerprint import fingerprint, redact
    from sentinel.service_hooks import after_ingest_hooks
    from sentinel.settings import ServiceSection, ServiceSettings
    from tests.apiapp import TestClient, make_app

    secret, sha = token("ghp", 651), "b" * 40
    settings = ServiceSettings(
        service=ServiceSection(public_url="https://sentinel.example.org"),
        alerts={"slack": {"webhook_url": slack.webhook_url()}},
    )
    hook = bearer(make_token(opened, "git-server", ["scans:write"]))

    def event() -> HookEvent:
        return HookEvent(
            kind="push_blocked",
            repository="https://github.com/acme/app.git",
            pusher="alice",
            cause="secrets",
            reason="1 secret(s) in the pushed commits",
            updates=[RefUpdate(ref="refs/heads/main", old="0" * 40, new=sha)],
            findings=[
                EventFinding(
                    rule_id="github.pat-classic",
                    fingerprint=fingerprint(secret.encode(), opened.fingerprint.key),
                    redacted=redact(secret),
                    path="app/settings.py",
                    line=3,
                    commit=sha,
                    author="Ann Author",
                    severity="high",
                    confidence="high",
                )
            ],
            fingerprint_key=opened.fingerprint.id,
        )

    app = make_app(opened, settings)
    app.state.on_ingest.extend(after_ingest_hooks(opened, settings))
    answers = []
    with TestClient(app) as client:
        for _ in range(2):  # the push tried again: the same secret, a new event
            r = client.post(
                "/v1/events",
                content=event().body(),
                headers={**hook, "Content-Type": "application/json"},
            )
            assert r.status_code == 201, r.text
            answers.append(r.json())
            _until(lambda: len(deliveries(opened)) == 1 and deliveries(opened)[0].status == "sent")
    assert [a["findings_new"] for a in answers] == [1, 0]
    cfg = routing.parse(settings.alerts)
    assert dispatch_scan(opened, cfg, answers[1]["scan_id"]) == Tally()
    [payload] = slack.payloads()
    text = json.dumps(payload)
    assert f"https://github.com/acme/app/blob/{sha}/app/settings.py#L3" in text
    assert "Ann Author" in text and "github.pat-classic" in text
    no_plaintext(slack, opened, [secret])


class _Serve:
    """`sentinel serve` in a subprocess on a free port; its stderr collected."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel.cli.main",
                "serve",
                "--port",
                "0",
                "--config",
                str(config),
            ],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._seen = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"sentinel: listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                self._seen.set()

    def __enter__(self) -> str:
        if not self._seen.wait(60) or self.url is None:
            self.proc.kill()
            raise AssertionError("sentinel serve did not start:\n" + "".join(self.lines))
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _until(what: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.1)
    raise AssertionError("gave up waiting")


@pytest.mark.integration
def test_sentinel_serve_alerts_cli_stored_and_reported_scans(
    opened: Any, slack: SlackStandIn, tmp_path: Path
) -> None:
    import httpx

    work = tmp_path / "work"
    work.mkdir()
    cli_secret, reported = token("ghp", 601), token("ghp", 602)
    (work / "ci.env").write_text(f"GITHUB_TOKEN={cli_secret}\n")
    assert run_cli("scan", "path", str(work), "--store").returncode == 1
    config = tmp_path / "service.toml"
    config.write_text(
        '[service]\npublic_url = "https://sentinel.example.org"\n'
        f'[alerts.slack]\nwebhook_url = "{slack.webhook_url()}"\npoll_seconds = 0.2\n'
    )
    ci = bearer(make_token(opened, "ci", ["scans:write"]))
    served = _Serve(config)
    with served as url:
        # the finding the CLI stored while no service ran
        _until(lambda: len(slack.payloads()) == 1)
        assert "ci.env" in json.dumps(slack.payloads()[0])
        body = {
            "kind": "path",
            "target": "/ci/work",
            "complete": True,
            "findings": [
                {
                    "rule_id": "github.pat",
                    "severity": "high",
                    "confidence": "high",
                    "fingerprint": "0" * 64,
                    "redacted": "ghp_****",
                    "source": "file",
                    "path": "reported.env",
                    "line": 1,
                    "secret": reported,
                }
            ],
        }
        r = httpx.post(f"{url}/v1/scans/reports", headers=ci, json=body, timeout=30)
        assert r.status_code == 201, r.text
        _until(lambda: len(slack.payloads()) == 2)
        second = json.dumps(slack.payloads()[1])
        assert "reported.env" in second and "https://sentinel.example.org/v1/findings/" in second
        # reported again: an occurrence already known, no second alert
        r = httpx.post(f"{url}/v1/scans/reports", headers=ci, json=body, timeout=30)
        assert r.status_code == 201 and r.json()["findings_new"] == 0
        _until(
            lambda: (
                'sentinel_alerts_total{outcome="sent"} 2.0'
                in httpx.get(f"{url}/metrics", timeout=30).text
            )
        )
    assert len(slack.payloads()) == 2
    no_plaintext(slack, opened, [cli_secret, reported])
    logs = "".join(served.lines)
    assert "alerts: 1 sent" in logs
    assert slack.webhook_url() not in logs and "hook-default" not in logs
    assert cli_secret not in logs and reported not in logs


@pytest.mark.integration
def test_sentinel_serve_retries_a_failed_delivery_on_its_scheduler(
    opened: Any, slack: SlackStandIn, tmp_path: Path
) -> None:
    """Slack failing longer than a send's own retries: the delivery is recorded for
    later, and the leader's scheduler sends it when it is due, once."""
    work = tmp_path / "work"
    work.mkdir()
    secret = token("ghp", 611)
    (work / "ci.env").write_text(f"GITHUB_TOKEN={secret}\n")
    config = tmp_path / "service.toml"
    config.write_text(
        f'[alerts.slack]\nwebhook_url = "{slack.webhook_url()}"\npoll_seconds = 0.2\n'
        "retries = 1\nretry_backoff_seconds = 0\nredeliver_after_seconds = 1\n"
    )
    slack.fail_next(3, 500)  # the first send and its one retry fail, then one more
    served = _Serve(config)
    with served:
        assert run_cli("scan", "path", str(work), "--store").returncode == 1
        _until(lambda: [d.status for d in deliveries(opened)] == ["sent"], seconds=60)
        [d] = deliveries(opened)
        # a first attempt of two requests, recorded as a retry; a second, by the job
        assert d.attempts == 2
    assert [r.status for r in slack.requests] == [500, 500, 500, 200]
    assert len(slack.payloads()) == 1
    logs = "".join(served.lines)
    assert "alerts: the scheduler retries and catches up every 0.2s" in logs
    assert "this process leads" in logs
    no_plaintext(slack, opened, [secret])
