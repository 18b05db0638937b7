"""Slack messages about rotations: started, succeeded, failed, rolled back, revoked,
and manual remediation needed. The owner is told what was revoked and where it leaked.

A message carries only public parts (an access key id, a token's redacted preview),
never a value: ``rotators.machine`` scrubs every detail of the secrets it knows, and
everything from scanned content is escaped as mrkdwn.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sentinel.alerts.slack import Message, _code, _link, escape, send

if TYPE_CHECKING:
    from rotators.base import RotationState
    from sentinel.alerts.routing import AlertsConfig
    from sentinel.store.facade import Store

log = logging.getLogger("sentinel.alerts")

_TITLE = {
    "started": "Rotation started",
    "succeeded": "Credential replaced and revoked",
    "revoked": "Credential revoked",
    "retrying": "Rotation retrying",
    "failed": "Rotation failed: action needed",
    "rolled_back": "Rotation rolled back: action needed",
    "manual": "Manual remediation needed",
}


class SlackRotationNotifier:
    """rotators.base.Notifier over the service's [alerts.slack] destination."""

    def __init__(self, store: Store, cfg: AlertsConfig, public_url: str | None) -> None:
        self.store = store
        self.cfg = cfg
        self.public_url = public_url.rstrip("/") if public_url else None

    def _leak(self, rotation_id: str) -> tuple[str, str | None, str]:
        """(where it leaked, who committed it, severity) from the first finding."""
        from sqlalchemy import select

        from sentinel.store.models import Finding, Occurrence, RotationFinding

        with self.store.sessions() as s:
            fid = s.scalar(
                select(RotationFinding.finding_id)
                .where(RotationFinding.rotation_id == rotation_id)
                .order_by(RotationFinding.finding_id)
                .limit(1)
            )
            if fid is None:
                return "", None, "high"
            f = s.get(Finding, fid)
            o = s.scalars(
                select(Occurrence)
                .where(Occurrence.finding_id == fid)
                .order_by(Occurrence.id)
                .limit(1)
            ).first()
        sev = f.severity if f is not None else "high"
        if o is None:
            return "", None, sev
        loc = f"{o.path}:{o.line}" if o.line else o.path
        where = f"{escape(o.target)} {_code(loc)}"
        if o.commit:
            where += f" at {_code(o.commit[:12])}"
        return where, o.author, sev

    def _send(self, rotation_id: str, event: str, lines: list[str], sev: str) -> None:
        from sentinel.alerts.routing import route

        dest = route(self.cfg, sev, "rotation")
        if dest is None:
            return
        title = _TITLE.get(event, f"Rotation {event}")
        link = _link(
            f"{self.public_url}/v1/rotations/{rotation_id}" if self.public_url else None,
            f"Rotation {rotation_id[:8]}",
        )
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
        ]
        if link:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        msg = Message(dest, {"text": f"{title}: {lines[0]}"[:300], "blocks": blocks}, ())
        res = send(msg, self.cfg)
        if not res.ok:
            log.error("rotation %s: Slack message failed: %s", rotation_id, res.error)

    def rotation_event(self, state: RotationState, event: str, detail: str) -> None:
        where, author, sev = self._leak(state.id)
        if event == "succeeded" and state.mode == "revoke":
            event = "revoked"  # nothing replaced it: a revoke-only provider
        lines = [f"*{escape(state.rotator)}* {_code(state.exposed.identifier)}: {escape(detail)}"]
        if where:
            lines.append(f"*Leaked in* {where}")
        if author:
            lines.append(f"*Committed by* {escape(author)}")
        self._send(state.id, event, lines, sev)

    def manual(self, view: dict[str, Any]) -> None:
        rem = view.get("remediation") or {}
        where, author, sev = self._leak(view["id"])
        lines = [
            f"*{escape(rem.get('rule', view['rotator']))}* {_code(view['exposed'])}: "
            f"no automatic rotation ({escape(rem.get('reason', ''))})"
        ]
        if where:
            lines.append(f"*Leaked in* {where}")
        if author:
            lines.append(f"*Committed by* {escape(author)}")
        for step in rem.get("what_to_do", [])[:5]:
            lines.append(f"• {escape(step)}")
        self._send(view["id"], "manual", lines, sev)
