"""Local stand-ins for the revocation APIs of GitHub, Slack and GitLab, answering as each
provider documents, on 127.0.0.1 at a free port (a threaded http.server).

Each keeps the tokens it knows (``valid``; ``revoked`` once revoked), records every
request (``calls``: method, path, lower-cased headers, body, the status and body answered) and
can fail the next requests: ``fail_next(n, 503)`` answers n requests with a server
error, ``fail_next(n, 429, retry_after=7)`` with a rate limit and ``Retry-After``.
Use as a context manager, or ``start()``/``stop()``.

- :class:`GithubStandIn`: ``GET /user`` (``Authorization: Bearer|token <t>``): 200 with
  the user for a valid token, 401 ``Bad credentials`` otherwise. ``POST
  /credentials/revoke`` with ``{"credentials": [...]}`` (1 to 1000 strings, else 422):
  202, every known token in the list revoked. github.com mode answers an authenticated
  call 403; ``enterprise=True`` serves under ``/api/v3`` and wants a token of
  ``admin_tokens`` (401 without). ``lag=n``: a revoked token still answers 200 on the
  next n ``GET /user`` (GitHub accepts the revocation before it is in force).
- :class:`SlackStandIn`: ``POST /api/auth.revoke`` and ``/api/auth.test``, the token in
  ``Authorization: Bearer`` or a ``token`` form field. HTTP 200 with ``{"ok": true,
  "revoked": true}`` (``test=1``: ``revoked: false``, nothing revoked); ``{"ok": false,
  "error": "not_authed" | "invalid_auth" | "token_revoked"}``. A 429 carries
  ``ratelimited``.
- :class:`GitlabStandIn`: ``GET`` and ``DELETE {prefix}/api/v4/personal_access_tokens/self``
  with ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``): 200 with the token's record,
  204 when revoked, 401 ``{"message": "401 Unauthorized"}`` for an unknown or revoked
  token. ``prefix`` models a self-managed instance under a relative URL.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the stand-in answered
    answer: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(data).encode(),
    )


class StandIn:
    """The server, the token book, the request record and the injected failures."""

    def __init__(self, valid: set[str] | None = None) -> None:
        self.valid: set[str] = set(valid or ())
        self.revoked: set[str] = set()
        self.calls: list[Call] = []
        self._failures: list[tuple[int, int | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def fail_next(self, n: int, status: int = 503, retry_after: int | None = None) -> None:
        with self._lock:
            self._failures.extend((status, retry_after) for _ in range(n))

    def add(self, token: str) -> None:
        with self._lock:
            self.valid.add(token)

    def works(self, token: str) -> bool:
        return token in self.valid

    def _revoke(self, token: str) -> bool:
        if token in self.valid:
            self.valid.discard(token)
            self.revoked.add(token)
            return True
        return False

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- serving ----------------------------------------------------------------------

    def handle(self, call: Call) -> Answer:
        raise NotImplementedError

    def failure(self, status: int, retry_after: int | None) -> Answer:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return _json(status, {"message": "stand-in failure"}, headers)

    def _answer(self, call: Call) -> Answer:
        with self._lock:
            self.calls.append(call)
            failure = self._failures.pop(0) if self._failures else None
            answer = self.failure(*failure) if failure is not None else self.handle(call)
            call.status, call.answer = answer[0], answer[2]
        return answer

    def start(self) -> StandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = Call(
                    method=self.command,
                    path=urlsplit(self.path).path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                query = urlsplit(self.path).query
                if query:  # query arguments count as form fields (Slack takes both)
                    call.body = body + (b"&" if body else b"") + query.encode()
                status, headers, payload = stand_in._answer(call)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tokens in paths
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bearer(call: Call) -> str | None:
    auth = call.headers.get("authorization", "")
    for scheme in ("Bearer ", "bearer ", "token "):
        if auth.startswith(scheme):
            return auth[len(scheme) :].strip()
    return None


class GithubStandIn(StandIn):
    def __init__(
        self,
        valid: set[str] | None = None,
        *,
        enterprise: bool = False,
        admin_tokens: set[str] | None = None,
        lag: int = 0,
    ) -> None:
        super().__init__(valid)
        self.enterprise = enterprise
        self.prefix = "/api/v3" if enterprise else ""
        self.admin_tokens = set(admin_tokens or ())
        self.lag = lag
        self._lagging: dict[str, int] = {}

    @property
    def api_url(self) -> str:
        return self.base + self.prefix

    def failure(self, status: int, retry_after: int | None) -> Answer:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status in (403, 429):
            headers["x-ratelimit-remaining"] = "0"
            return _json(status, {"message": "API rate limit exceeded"}, headers)
        return _json(status, {"message": "Server Error"}, headers)

    def handle(self, call: Call) -> Answer:
        path = call.path.removeprefix(self.prefix) if self.prefix else call.path
        if self.prefix and not call.path.startswith(self.prefix + "/"):
            return _json(404, {"message": "Not Found"})
        if call.method == "GET" and path == "/user":
            token = _bearer(call)
            if token is not None and token in self._lagging and self._lagging[token] > 0:
                self._lagging[token] -= 1
                return _json(200, {"login": "octocat", "id": 1})
            if token is not None and self.works(token):
                return _json(200, {"login": "octocat", "id": 1})
            return _json(
                401,
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
        if call.method == "POST" and path == "/credentials/revoke":
            auth = _bearer(call)
            if not self.enterprise and auth is not None:
                return _json(403, {"message": "Authenticated requests are not allowed"})
            if self.enterprise and auth not in self.admin_tokens:
                return _json(401, {"message": "Requires authentication"})
            try:
                creds = json.loads(call.body)["credentials"]
            except (ValueError, KeyError, TypeError):
                creds = None
            if (
                not isinstance(creds, list)
                or not 1 <= len(creds) <= 1000
                or not all(isinstance(c, str) for c in creds)
            ):
                return _json(422, {"message": "Validation Failed"})
            for token in creds:
                if self._revoke(token) and self.lag:
                    self._lagging[token] = self.lag
            return _json(202, {})
        return _json(404, {"message": "Not Found"})


class SlackStandIn(StandIn):
    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def failure(self, status: int, retry_after: int | None) -> Answer:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 429:
            return _json(429, {"ok": False, "error": "ratelimited"}, headers)
        return status, {"Content-Type": "text/plain", **headers}, b"upstream error"

    def handle(self, call: Call) -> Answer:
        if call.method not in ("GET", "POST") or call.path not in (
            "/api/auth.revoke",
            "/api/auth.test",
        ):
            return _json(404, {"ok": False, "error": "unknown_method"})
        form = call.form() if call.body else {}
        token = _bearer(call) or form.get("token")
        if not token:
            return _json(200, {"ok": False, "error": "not_authed"})
        if token in self.revoked:
            return _json(200, {"ok": False, "error": "token_revoked"})
        if not self.works(token):
            return _json(200, {"ok": False, "error": "invalid_auth"})
        if call.path == "/api/auth.test":
            return _json(
                200,
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": "Example",
                    "user": "sentinel-bot",
                    "team_id": "T0EXAMPLE",
                    "user_id": "U0EXAMPLE",
                },
            )
        if form.get("test") in ("1", "true"):
            return _json(200, {"ok": True, "revoked": False})
        self._revoke(token)
        return _json(200, {"ok": True, "revoked": True})


class GitlabStandIn(StandIn):
    def __init__(self, valid: set[str] | None = None, *, prefix: str = "") -> None:
        super().__init__(valid)
        self.prefix = prefix.rstrip("/")
        self._ids: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.base + self.prefix

    @property
    def self_path(self) -> str:
        return self.prefix + "/api/v4/personal_access_tokens/self"

    def _record(self, token: str) -> dict[str, Any]:
        tid = self._ids.setdefault(token, len(self._ids) + 1)
        return {
            "id": tid,
            "name": f"token-{tid}",
            "revoked": token in self.revoked,
            "created_at": "2026-01-01T00:00:00.000Z",
            "scopes": ["read_repository"],
            "user_id": 42,
            "last_used_at": None,
            "active": token in self.valid,
            "expires_at": None,
        }

    def handle(self, call: Call) -> Answer:
        if call.path != self.self_path or call.method not in ("GET", "DELETE"):
            return _json(404, {"message": "404 Not Found"})
        token = call.headers.get("private-token") or _bearer(call)
        if not token or not self.works(token):
            return _json(401, {"message": "401 Unauthorized"})
        if call.method == "GET":
            return _json(200, self._record(token))
        self._revoke(token)
        return 204, {}, b""
