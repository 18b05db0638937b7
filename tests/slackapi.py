"""A local stand-in for Slack that answers as Slack documents, and records every
request it receives (so a test can read each payload, its headers and when it came).

- Incoming webhooks, ``POST /services/<id>``: 200 ``ok``; 400 ``invalid_payload`` when
  the body is not JSON or has neither ``text`` nor ``blocks``; 404 ``no_service`` for an
  unknown hook.
- Web API, ``POST /api/chat.postMessage`` with ``Authorization: Bearer <token>``:
  HTTP 200 with ``{"ok": false, "error": "not_authed" | "invalid_auth" |
  "channel_not_found" | "no_text"}``, or ``{"ok": true, "channel": ..., "ts": ...}``.
- ``fail_next(n, 429, retry_after=1)`` answers the next n requests with 429 and a
  ``Retry-After`` header (``ratelimited`` for the Web API); ``fail_next(n, 500)`` with a
  server error.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    status: int = 0  # what we answered

    @property
    def payload(self) -> dict[str, Any]:
        ctype = self.headers.get("content-type", "")
        if "json" in ctype:
            data: dict[str, Any] = json.loads(self.body)
            return data
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class _Failure:
    status: int
    retry_after: int | None


@dataclass
class SlackStandIn:
    hooks: set[str] = field(default_factory=lambda: {"T000/B000/hook-default"})
    tokens: set[str] = field(default_factory=lambda: {"xoxb-test-token"})
    channels: dict[str, str] = field(default_factory=lambda: {"#security": "C0SECURITY"})
    requests: list[Request] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def api_base(self) -> str:
        return self.base + "/api/"

    def webhook_url(self, hook: str = "T000/B000/hook-default") -> str:
        return f"{self.base}/services/{hook}"

    def add_channel(self, name: str) -> None:
        self.channels[name] = "C" + name.strip("#").upper()[:10]

    def fail_next(self, n: int, status: int, retry_after: int | None = None) -> None:
        with self._lock:
            self._failures.extend(_Failure(status, retry_after) for _ in range(n))

    def payloads(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.requests if r.status == 200]

    def start(self) -> SlackStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with stand_in._lock:
                    stand_in.requests.append(req)
                    failure = stand_in._failures.pop(0) if stand_in._failures else None
                if failure is not None:
                    api = self.path.startswith("/api/")
                    text = (
                        json.dumps({"ok": False, "error": "ratelimited"})
                        if api and failure.status == 429
                        else ("too_many_requests" if failure.status == 429 else "server_error")
                    )
                    headers = {}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = str(failure.retry_after)
                    self._answer(req, failure.status, text, headers)
                elif self.path.startswith("/services/"):
                    self._webhook(req)
                elif self.path == "/api/chat.postMessage":
                    self._chat(req)
                else:
                    self._answer(req, 404, "not_found")

            def _webhook(self, req: Request) -> None:
                if req.path.removeprefix("/services/") not in stand_in.hooks:
                    return self._answer(req, 404, "no_service")
                try:
                    data = json.loads(req.body)
                except ValueError:
                    return self._answer(req, 400, "invalid_payload")
                if not isinstance(data, dict) or not (data.get("text") or data.get("blocks")):
                    return self._answer(req, 400, "invalid_payload")
                return self._answer(req, 200, "ok")

            def _chat(self, req: Request) -> None:
                auth = req.headers.get("authorization", "")
                try:
                    data = req.payload
                except ValueError:
                    data = {}
                if not auth.startswith("Bearer "):
                    out: dict[str, Any] = {"ok": False, "error": "not_authed"}
                elif auth.removeprefix("Bearer ") not in stand_in.tokens:
                    out = {"ok": False, "error": "invalid_auth"}
                elif data.get("channel") not in stand_in.channels:
                    out = {"ok": False, "error": "channel_not_found"}
                elif not (data.get("text") or data.get("blocks")):
                    out = {"ok": False, "error": "no_text"}
                else:
                    ts = f"{time.time():.6f}"
                    out = {
                        "ok": True,
                        "channel": stand_in.channels[data["channel"]],
                        "ts": ts,
                        "message": {"text": data.get("text", ""), "ts": ts},
                    }
                self._answer(req, 200, json.dumps(out), {}, "application/json; charset=utf-8")

            def _answer(
                self,
                req: Request,
                status: int,
                text: str,
                headers: dict[str, str] | None = None,
                ctype: str = "text/html",
            ) -> None:
                req.status = status
                raw = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
