"""What a request may be before any route sees it: a body cap counted on the bytes as
they arrive (a chunked body has no Content-Length to trust), answered with a 413
problem; and a path and query free of control characters and valid UTF-8 (400)."""

from __future__ import annotations

import json
from typing import Any


class BodyTooLarge(Exception):
    """Raised from ``receive``; an HTTPException (see ``too_large``) so FastAPI's body
    parsing passes it through to the problem handlers instead of a 400."""


def too_large(limit: int) -> Exception:
    from fastapi import HTTPException

    class _TooLarge(HTTPException, BodyTooLarge):
        pass

    return _TooLarge(413, "Payload too large")


class BodyLimit:
    """``max_bytes`` for every body, or ``per_path[path]`` for a route that takes larger
    ones (a hook event may hold thousands of findings)."""

    def __init__(self, app: Any, max_bytes: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.default)
        await _Limited(self.app, limit)(scope, receive, send)


class _Limited:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _reject(send, self.max_bytes)
                    return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large(self.max_bytes)
            return msg

        async def tracked(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _reject(send, self.max_bytes)


async def _reject(send: Any, limit: int) -> None:
    await _problem(send, 413, "Payload too large", f"the request body is over {limit} bytes")


def _bad_url(scope: Any) -> str | None:
    """Why a request's path or query cannot be served, or None. A NUL or other control
    character, or bytes that are not UTF-8, never name anything here, and PostgreSQL
    refuses NUL in text: turned away at the door, they never reach a query."""
    from urllib.parse import unquote_to_bytes

    path: str = scope.get("path", "")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        return "the path holds a control character"
    raw = scope.get("raw_path")
    parts = [unquote_to_bytes(raw)] if isinstance(raw, bytes) else []
    parts.append(unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" ")))
    for part in parts:
        if any(b < 32 or b == 127 for b in part):
            return "the path or query holds a control character"
        try:
            part.decode("utf-8")
        except UnicodeDecodeError:
            return "the path or query is not UTF-8"
    return None


class UrlGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            why = _bad_url(scope)
            if why is not None:
                await _problem(send, 400, "Bad request", why)
                return
        await self.app(scope, receive, send)


async def _problem(send: Any, status: int, title: str, detail: str) -> None:
    body = json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
