"""The pre-receive hook reports blocked, bypassed and unscanned pushes to the service:
a real bare repository with the hook installed, pushed to over git's local transport,
and a local HTTP server standing in for the service's ``POST /v1/events`` (up, down,
slow, refusing). Delivery is asynchronous, so tests poll with a deadline."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token
from tests.test_hooks_server import Server, push

pytestmark = pytest.mark.integration

BEARER = "svc-" + "7f3a9c" * 6  # the service token the hook's deliverer must send


class FakeService:
    """``POST /v1/events`` as the service answers it: 201 for a new event id, 409 for
    one it already stored; ``mode`` makes it slow (30 s before answering), fail (500)
    or refuse (422)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []  # every request, as received
        self.stored: dict[str, dict[str, Any]] = {}
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "raw": body}
                )
                if owner.mode == "slow":
                    owner.release.wait(30)
                status = {"ok": 201, "slow": 201, "fail": 500, "refuse": 422}[owner.mode]
                if status == 201 and self.path == "/v1/events":
                    event = json.loads(body)
                    if event["id"] in owner.stored:
                        status = 409
                    else:
                        owner.stored[event["id"]] = event
                elif self.path != "/v1/events":
                    status = 404
                reply = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return list(self.stored.values())

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def service() -> Iterator[FakeService]:
    svc = FakeService()
    yield svc
    svc.close()


def dead_url() -> str:
    """An address where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def wait_for(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def server(tmp_path: Path) -> Server:
    path = tmp_path / "server.git"
    import subprocess

    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    res = run_cli("hooks", "install", "--repo", str(path))
    assert res.returncode == 0, res.stderr
    srv = Server(path)
    token_file = tmp_path / "service.token"
    token_file.write_text(BEARER + "\n")
    token_file.chmod(0o600)
    srv.config("sentinel.serviceTokenFile", str(token_file))
    return srv


@pytest.fixture
def dev(git_repo: Callable[..., GitRepo], server: Server) -> GitRepo:
    repo = git_repo("dev")
    repo.commit("init", {"README.md": "hello\n"})
    repo.git("remote", "add", "origin", f"file://{server.path}")
    res = push(repo, "main")
    assert res.returncode == 0, res.stderr
    return repo


def spooled(server: Server) -> list[Path]:
    return sorted((server.path / "sentinel" / "events").glob("*.json"))


def leak(dev: GitRepo, seed: int) -> tuple[str, str]:
    secret = token("ghp", seed)
    sha = dev.commit(f"leak {seed}", {f"app/s{seed}.py": f"TOKEN = '{secret}'\n"})
    return secret, sha


def timed_push(dev: GitRepo, *args: str) -> tuple[float, Any]:
    started = time.monotonic()
    res = push(dev, *args)
    return time.monotonic() - started, res


def test_blocked_push_reports_fingerprint_and_preview_never_the_secret(
    dev: GitRepo, server: Server, service: FakeService
) -> None:
    server.config("sentinel.serviceUrl", service.url + "/")
    server.config("sentinel.repositoryUrl", "https://git.example.org/team/app.git")
    secret, sha = leak(dev, 301)

    res = push(dev, "main")
    assert res.returncode != 0
    assert "push rejected: 1 secret" in res.stderr
    [event] = wait_for(service.events)
    assert event["version"] == 1
    assert event["kind"] == "push_blocked"
    assert event["cause"] == "secrets"
    assert len(event["id"]) == 32
    assert event["repository"] == "https://git.example.org/team/app.git"
    assert event["at"].endswith("Z") or event["at"].endswith("+00:00")
    assert event["updates"] == [{"ref": "refs/heads/main", "old": server.ref("main"), "new": sha}]
    [logged] = [e for e in server.log() if e.get("outcome") == "rejected"]
    [finding] = event["findings"]
    assert finding == logged["findings"][0]
    assert finding["fingerprint"] == logged["findings"][0]["fingerprint"]
    assert finding["redacted"].startswith(secret[:4]) and "*" in finding["redacted"]
    assert finding["commit"] == sha and finding["path"] == "app/s301.py"
    assert finding["author"] == "Ann Author"
    assert logged["event"]["id"] == event["id"]
    [request] = service.requests
    assert request["path"] == "/v1/events"
    assert request["headers"]["Authorization"] == f"Bearer {BEARER}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert secret.encode() not in request["raw"]
    # delivered: the spool is empty, and the token is nowhere but the header
    wait_for(lambda: not spooled(server))
    wait_for(lambda: any(e.get("outcome") == "events_delivered" for e in server.log()))
    log_text = (server.path / "sentinel" / "pre-receive.log").read_text()
    assert BEARER not in log_text and secret not in log_text
    assert BEARER not in res.stderr


def test_bypass_and_fail_open_pushes_are_reported(
    dev: GitRepo, server: Server, service: FakeService
) -> None:
    server.config("sentinel.serviceUrl", service.url)
    server.config("receive.advertisePushOptions", "true")
    server.config("sentinel.allowSkip", "true")
    secret, _ = leak(dev, 302)
    res = push(dev, "-o", "sentinel.skip=incident 42", "main")
    assert res.returncode == 0, res.stderr
    [bypass] = wait_for(service.events)
    assert bypass["kind"] == "push_bypassed"
    assert bypass["cause"] == "break_glass"
    assert bypass["reason"] == "incident 42"
    assert bypass["pusher"]
    assert bypass["updates"][0]["new"] == dev.git("rev-parse", "HEAD")

    server.config("sentinel.timeBudget", "0.001")
    server.config("sentinel.onTimeout", "fail_open")
    dev.commit("more", {"more.py": "x = 1\n"})
    res = push(dev, "main")
    assert res.returncode == 0, res.stderr
    assert "accepted unscanned" in res.stderr
    events = wait_for(lambda: len(service.events()) == 2 and service.events())
    unscanned = events[1]
    assert unscanned["kind"] == "push_unscanned"
    assert unscanned["cause"] == "time_budget"
    assert "time budget" in unscanned["reason"]
    assert unscanned["updates"][0]["new"] == dev.git("rev-parse", "HEAD")
    # the same push is still queued for a full scan, as before
    assert (server.path / "sentinel" / "unscanned.jsonl").read_text().count("\n") == 2
    assert secret not in json.dumps(service.events())


def test_service_down_costs_the_push_nothing_and_the_event_waits_in_the_spool(
    dev: GitRepo, server: Server, service: FakeService
) -> None:
    leak(dev, 303)
    plain_time, plain = timed_push(dev, "main")  # no service configured
    assert plain.returncode != 0

    server.config("sentinel.serviceUrl", dead_url())
    down_time, down = timed_push(dev, "main")
    assert down.returncode == plain.returncode
    assert "push rejected: 1 secret" in down.stderr
    assert "warning" not in down.stderr
    assert down_time < plain_time + 1.5, (plain_time, down_time)
    [event_file] = spooled(server)
    assert stat.S_IMODE(event_file.stat().st_mode) == 0o600
    kept = wait_for(lambda: [e for e in server.log() if e.get("outcome") == "events_kept"])
    assert "127.0.0.1" in kept[0]["reason"]
    assert spooled(server) == [event_file]
    event_id = json.loads(event_file.read_bytes())["id"]

    # later, from cron: the service is back
    server.config("sentinel.serviceUrl", service.url)
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 0, res.stderr
    assert f"events: 1 delivered to {service.url}/v1/events" in res.stderr
    [event] = service.events()
    assert event["id"] == event_id
    assert not spooled(server)
    # delivered once: nothing is sent again
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 0, res.stderr
    assert "events: 0 delivered" in res.stderr
    assert len(service.requests) == 1


def test_a_slow_service_does_not_hold_the_push(
    dev: GitRepo, server: Server, service: FakeService
) -> None:
    leak(dev, 304)
    plain_time, plain = timed_push(dev, "main")
    server.config("sentinel.serviceUrl", service.url)
    service.mode = "slow"  # 30 s before it answers
    slow_time, slow = timed_push(dev, "main")
    assert slow.returncode == plain.returncode != 0
    assert slow.stderr.count("push rejected") == 1
    # the deliverer's 5 s timeout is not the push's to wait for
    assert slow_time < plain_time + 1.5, (plain_time, slow_time)
    wait_for(lambda: service.requests)
    kept = wait_for(
        lambda: [e for e in server.log() if e.get("outcome") == "events_kept"], timeout=20
    )
    assert "no answer within 5 s" in kept[0]["reason"]
    assert len(spooled(server)) == 1

    # the next push's deliverer sends the waiting event and its own, oldest first
    service.mode = "ok"
    dev.commit("again", {"again.py": f"KEY = '{token('ghp', 305)}'\n"})
    assert push(dev, "main").returncode != 0
    events = wait_for(lambda: len(service.events()) == 2 and service.events())
    assert events[0]["at"] < events[1]["at"]
    assert events[1]["findings"][0]["path"] == "again.py"
    wait_for(lambda: not spooled(server))


def test_refusals_and_failures(dev: GitRepo, server: Server, service: FakeService) -> None:
    server.config("sentinel.serviceUrl", service.url)
    service.mode = "fail"  # 500: kept for later
    leak(dev, 306)
    assert push(dev, "main").returncode != 0
    wait_for(lambda: [e for e in server.log() if e.get("outcome") == "events_kept"])
    assert len(spooled(server)) == 1
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 1
    assert "events: 1 kept in the spool" in res.stderr
    assert "HTTP 500" in res.stderr

    service.mode = "refuse"  # 422: the event itself is refused, set aside, not lost
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 0, res.stderr
    assert "refused: the service refused it (HTTP 422" in res.stderr
    assert not spooled(server)
    [rejected] = list((server.path / "sentinel" / "events" / "rejected").glob("*.json"))
    assert json.loads(rejected.read_bytes())["kind"] == "push_blocked"
    [line] = [e for e in server.log() if e.get("outcome") == "event_rejected"]
    assert "HTTP 422" in line["reason"]
    assert line["moved_to"] == str(rejected)

    # a re-delivery the service already has (its answer was lost): 409, dropped
    service.mode = "ok"
    event = json.loads(rejected.read_bytes())
    service.stored[event["id"]] = event
    rejected.rename(server.path / "sentinel" / "events" / rejected.name)
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 0, res.stderr
    assert "events: 1 delivered" in res.stderr
    assert not spooled(server)
    assert len(service.stored) == 1


def test_one_deliverer_at_a_time(dev: GitRepo, server: Server, service: FakeService) -> None:
    server.config("sentinel.serviceUrl", dead_url())
    leak(dev, 307)
    assert push(dev, "main").returncode != 0
    wait_for(lambda: [e for e in server.log() if e.get("outcome") == "events_kept"])
    server.config("sentinel.serviceUrl", service.url)
    spool = server.path / "sentinel" / "events"
    fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a deliverer at work
        started = time.monotonic()
        res = run_cli("hook", "deliver-events", "--git-dir", str(server.path))
        assert time.monotonic() - started < 5
        assert res.returncode == 0
        assert service.requests == [] and len(spooled(server)) == 1
    finally:
        os.close(fd)
    res = run_cli("hook", "deliver-events", "--git-dir", str(server.path))
    assert res.returncode == 0
    assert len(service.events()) == 1 and not spooled(server)


def test_the_spool_is_bounded(dev: GitRepo, server: Server) -> None:
    server.config("sentinel.serviceUrl", dead_url())
    server.config("sentinel.spoolMaxEvents", "2")
    for seed in (308, 309):
        leak(dev, seed)
        assert push(dev, "main").returncode != 0
    first_two = spooled(server)
    assert len(first_two) == 2
    leak(dev, 310)
    res = push(dev, "main")
    assert res.returncode != 0
    assert "push rejected: 1 secret" not in res.stderr  # three commits, three secrets
    assert "push rejected: 3 secrets" in res.stderr
    assert "the event spool is full (2 events waiting" in res.stderr
    assert "1 dropped so far" in res.stderr
    assert spooled(server) == first_two  # the oldest are kept
    entry = [e for e in server.log() if e.get("outcome") == "rejected"][-1]
    assert entry["event"]["dropped"] is True and entry["event"]["dropped_total"] == 1
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 1
    assert "events: 2 kept in the spool" in res.stderr
    assert "1 dropped so far" in res.stderr


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/", "127.0.0.1:80"],
)
def test_only_http_service_urls(dev: GitRepo, server: Server, url: str) -> None:
    server.config("sentinel.serviceUrl", url)
    leak(dev, 311)
    res = push(dev, "main")
    assert res.returncode != 0
    assert "push rejected: 1 secret" in res.stderr
    assert "sentinel.serviceUrl" in res.stderr and "is kept in" in res.stderr
    assert "pw@" not in res.stderr
    assert len(spooled(server)) == 1
    res = run_cli("hooks", "deliver", "--repo", str(server.path))
    assert res.returncode == 1
    assert "events: 1 kept in the spool: sentinel.serviceUrl" in res.stderr
    assert "Traceback" not in res.stderr


def test_token_from_the_environment(dev: GitRepo, server: Server, service: FakeService) -> None:
    server.git("config", "--unset", "sentinel.serviceTokenFile")
    server.config("sentinel.serviceUrl", dead_url())
    leak(dev, 312)
    assert push(dev, "main").returncode != 0
    wait_for(lambda: [e for e in server.log() if e.get("outcome") == "events_kept"])
    server.config("sentinel.serviceUrl", service.url)
    res = run_cli(
        "hooks", "deliver", "--repo", str(server.path), env={"SENTINEL_SERVICE_TOKEN": "t-env-1"}
    )
    assert res.returncode == 0, res.stderr
    assert service.requests[-1]["headers"]["Authorization"] == "Bearer t-env-1"


def test_deliver_needs_a_repository(tmp_path: Path) -> None:
    res = run_cli("hooks", "deliver", "--repo", str(tmp_path / "nope.git"))
    assert res.returncode == 2
    assert res.stderr.startswith("sentinel: error:") and "Traceback" not in res.stderr
