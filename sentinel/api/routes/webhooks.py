"""``POST /v1/webhooks/github``: GitHub push events become scans of the pushed range.

GitHub cannot send a bearer token, so the request is authenticated by its
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body under the secret in the env var
``[service] github_webhook_secret_env`` names, compared in constant time). Events:
``ping`` 200; ``push`` handled; anything else 202 ignored. Each push delivery id is
recorded (``WebhookDelivery``, primary key) in the same transaction as its Scan row and
audit record, so a redelivery of the same id is answered "duplicate" however many
arrive at once. A push that finds the scan queue full is 429 with ``Retry-After`` and
its delivery row is removed again, so GitHub's redelivery is accepted later.

What a push scans (in the repository's bare mirror, see sentinel.sweeps.mirrors):
- ``deleted`` or an all-zero ``after``: nothing (202, ignored);
- a new ref (all-zero ``before``): what it adds relative to the repository's default
  branch (``--branch after --since refs/heads/<default>``), or the whole branch when the
  push creates the default branch itself;
- otherwise the pushed range, ``--branch after --since before``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["webhooks"])

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ZERO = re.compile(r"^0+$")
_REF = re.compile(r"^refs/[A-Za-z0-9._/+-]{1,250}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/+-]{1,250}$")
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")


def problem(status: int, title: str, detail: str = "", **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers or None
    )


class _Refused(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def _body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > limit):
        return None
    buf = bytearray()
    async for part in request.stream():
        buf += part
        if len(buf) > limit:
            return None
    return bytes(buf)


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    want = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want.encode("ascii"), header.strip().encode("utf-8", "replace"))


@router.post(
    "/v1/webhooks/github",
    status_code=202,
    summary="GitHub push webhook (HMAC-signed, no bearer token)",
    responses={
        200: {"description": "ping, or a duplicate delivery"},
        401: {"description": "missing or invalid X-Hub-Signature-256"},
        413: {"description": "body too large"},
        422: {"description": "payload refused"},
        429: {"description": "scan queue full; retry after Retry-After seconds"},
        503: {"description": "webhook not configured"},
    },
)
async def github_webhook(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    svc = settings.service
    secret = os.environ.get(svc.github_webhook_secret_env, "")
    if not secret:
        return problem(
            503, "webhook not configured", f"set {svc.github_webhook_secret_env} to the secret"
        )
    body = await _body(request, svc.max_body_bytes)
    if body is None:
        return problem(413, "body too large", f"at most {svc.max_body_bytes} bytes")
    if not signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
        return problem(401, "invalid signature", "X-Hub-Signature-256 is missing or wrong")
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    if event == "ping":
        return JSONResponse({"status": "pong"}, status_code=200)
    if event != "push":
        return JSONResponse({"status": "ignored", "event": event[:50]}, status_code=202)
    if not _DELIVERY.match(delivery):
        return problem(422, "payload refused", "X-GitHub-Delivery is missing or malformed")
    try:
        doc = json.loads(body)
        push = _parse_push(doc, svc)
    except (ValueError, UnicodeDecodeError):
        return problem(422, "payload refused", "the body is not JSON")
    except _Refused as exc:
        return problem(422, "payload refused", exc.detail)
    client = request.client.host if request.client else None
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_accept, request, delivery, push, client)


def _parse_push(doc: Any, svc: Any) -> dict[str, Any]:
    from sentinel.api.targets import TargetRefused, check_git

    if not isinstance(doc, dict) or not isinstance(doc.get("repository"), dict):
        raise _Refused("a push payload needs a repository object")
    repo = doc["repository"]
    url = repo.get("clone_url")
    if not isinstance(url, str):
        raise _Refused("repository.clone_url is missing")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme != "https" and not (scheme == "http" and svc.git_http_loopback):
        raise _Refused("repository.clone_url must be an https:// URL")
    try:
        url = check_git(url, svc)
    except TargetRefused as exc:
        raise _Refused(f"repository.clone_url: {exc}") from None
    before, after, ref = doc.get("before"), doc.get("after"), doc.get("ref")
    for name, v in (("before", before), ("after", after)):
        if not isinstance(v, str) or not _SHA.match(v):
            raise _Refused(f"{name} is not a commit id")
    if not isinstance(ref, str) or not _REF.match(ref) or ".." in ref:
        raise _Refused("ref is not a git ref name")
    default = repo.get("default_branch")
    if default is not None and (
        not isinstance(default, str) or not _BRANCH.match(default) or ".." in default
    ):
        raise _Refused("repository.default_branch is not a branch name")
    return {
        "url": url,
        "before": before,
        "after": after,
        "ref": ref,
        "deleted": bool(doc.get("deleted")) or bool(_ZERO.match(str(after))),
        "created": bool(_ZERO.match(str(before))),
        "default": default,
        "name": str(repo.get("full_name") or "")[:200],
    }


def _scan_params(push: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"branch": push["after"], "ref": push["ref"]}
    if not push["created"]:
        params["since"] = push["before"]
    elif push["default"] and push["ref"] != f"refs/heads/{push['default']}":
        params["since"] = f"refs/heads/{push['default']}"
    return params


def _accept(
    request: Request, delivery: str, push: dict[str, Any], client: str | None
) -> JSONResponse:
    from sqlalchemy.exc import IntegrityError

    from sentinel.jobs.base import QueueFull
    from sentinel.store.facade import new_scan_id
    from sentinel.store.models import AuditRecord, Scan, WebhookDelivery
    from sentinel.store.session import writing

    store = request.app.state.store
    scan_id = None if push["deleted"] else new_scan_id()
    with store.sessions() as s:
        writing(s)
        s.add(
            WebhookDelivery(
                delivery_id=delivery,
                provider="github",
                event="push",
                repository=push["url"],
                scan_id=scan_id,
            )
        )
        if scan_id is not None:
            params = _scan_params(push)
            s.add(
                Scan(
                    id=scan_id,
                    kind="git",
                    target=push["url"],
                    params=params,
                    requested_by=f"webhook:github:{delivery}",
                )
            )
            s.add(
                AuditRecord(
                    actor="webhook:github",
                    action="webhook.push",
                    object_type="scan",
                    object_id=scan_id,
                    client=client,
                    detail={
                        "delivery": delivery,
                        "repository": push["url"],
                        "ref": push["ref"],
                        "before": push["before"],
                        "after": push["after"],
                    },
                )
            )
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            seen = s.get(WebhookDelivery, delivery)
            return JSONResponse(
                {"status": "duplicate", "delivery": delivery, "scan_id": seen and seen.scan_id},
                status_code=200,
            )
    if scan_id is None:
        return JSONResponse(
            {"status": "ignored", "reason": "the ref was deleted", "delivery": delivery},
            status_code=202,
        )
    try:
        request.app.state.jobs.submit_scan(scan_id)
    except QueueFull as exc:
        _forget(store, delivery, scan_id)
        return problem(429, "scan queue full", str(exc), **{"Retry-After": str(exc.retry_after)})
    return JSONResponse(
        {"status": "queued", "scan_id": scan_id, "delivery": delivery}, status_code=202
    )


def _forget(store: Any, delivery: str, scan_id: str) -> None:
    """Undo a delivery the queue had no room for, so its redelivery is taken."""
    from sqlalchemy import delete

    from sentinel.store.models import AuditRecord, Scan, WebhookDelivery
    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        s.execute(delete(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery))
        s.execute(delete(Scan).where(Scan.id == scan_id))
        s.execute(
            delete(AuditRecord).where(
                AuditRecord.object_type == "scan", AuditRecord.object_id == scan_id
            )
        )
        s.commit()
