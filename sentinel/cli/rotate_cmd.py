"""``sentinel rotate FINDING_ID``, ``sentinel rotations list|show|retry|run-due`` and
``sentinel rotators list``: take a leaked credential out of circulation from here.

``rotate`` runs the rotation in this process and waits: exit 0 when the credential is
replaced (or revoked) and verified, 1 when it is not done (it failed, was rolled back,
waits for a retry, or needs a person: the output says which), 2 on an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sentinel.jobs.rotation import Rotations

app = typer.Typer(help="Rotations: their steps, retries and state.", no_args_is_help=True)
rotators_app = typer.Typer(
    help="Which rules rotate, revoke or need a person.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Service config (default $SENTINEL_HOME/service.toml).", readable=False
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="text or json.")]


def _open(config: Path | None) -> tuple[Any, Rotations]:
    from sentinel import settings as settings_mod
    from sentinel.jobs.rotation import for_service
    from sentinel.store.facade import open_store

    settings = settings_mod.load(config)
    store = open_store()
    return store, for_service(store, settings)


def _when(dt: object) -> str:
    from datetime import datetime

    if not isinstance(dt, datetime):
        return "-"
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def _dump(obj: Any) -> str:
    return json.dumps(
        obj, default=lambda o: _when(o) if hasattr(o, "isoformat") else str(o), indent=2
    )


def _print_view(v: dict[str, Any]) -> None:
    from sentinel.display import for_terminal

    head = f"rotation {v['id']}  {v['rotator']} ({v['mode']})  {v['status']}"
    print(for_terminal(head))
    print(
        for_terminal(
            f"  credential   {v['exposed']}"
            + (f" -> {v['replacement']}" if v["replacement"] else "")
        )
    )
    if v.get("store"):
        print(for_terminal(f"  store        {v['store']} {v['path']}"))
    print(f"  findings     {', '.join(str(f) for f in v['findings'])}")
    for st in v["steps"]:
        line = f"  {st['name']:<8} {st['state']:<8} attempts {st['attempts']}"
        if st["finished_at"]:
            line += f"  {_when(st['finished_at'])}"
        if st["last_error"]:
            line += f"  last error: {st['last_error']}"
        print(for_terminal(line))
    if v["status"] == "waiting" and v["next_attempt_at"]:
        what = "purge (delete) after its grace period" if v.get("purge_after") else "next attempt"
        print(f"  {what}: {_when(v['next_attempt_at'])} (run by the service's scheduler)")
    if v["last_error"] and v["status"] != "succeeded":
        print(for_terminal(f"  error        {v['last_error']}"))
    rem = v.get("remediation")
    if rem:
        print(for_terminal(f"  manual remediation: {rem.get('reason')}"))
        for step in rem.get("what_to_do", []):
            print(for_terminal(f"    - {step}"))
        for w in rem.get("where", [])[:10]:
            loc = f"{w.get('target')} {w.get('path')}:{w.get('line')}"
            if w.get("commit"):
                loc += f" @ {str(w['commit'])[:12]}"
            print(for_terminal(f"    at {loc}"))
        if rem.get("committed_by"):
            print(for_terminal(f"    committed by {', '.join(rem['committed_by'])}"))


def _done(v: dict[str, Any]) -> bool:
    if v["status"] == "succeeded":
        return True
    # revoked and verified; only the deletion after the grace period is left
    return v["status"] == "waiting" and v.get("purge_after") is not None


def rotate(
    finding_id: Annotated[int, typer.Argument(help="The finding to rotate (its credential).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; touch nothing.")
    ] = False,
    config: ConfigOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Replace the finding's credential, store the replacement, revoke the exposed one
    and prove both; resumes a rotation already under way."""
    from sentinel.errors import ConfigError
    from sentinel.jobs.rotation import NotFound

    store, rot = _open(config)
    try:
        try:
            if dry_run:
                plan = rot.plan(finding_id)
                if fmt == "json":
                    print(_dump({"plan": plan}))
                else:
                    _print_plan(plan)
                return
            out = rot.request(finding_id, "cli")
            v = rot.run(out.rotation_id, now_regardless=True)
        except NotFound as exc:
            raise ConfigError(str(exc)) from None
    finally:
        store.close()
    if fmt == "json":
        print(_dump(v))
    else:
        _print_view(v)
    if not _done(v):
        raise typer.Exit(1)


def _print_plan(p: dict[str, Any]) -> None:
    from sentinel.display import for_terminal

    print(
        for_terminal(
            f"plan for finding {p['finding_id']}: {p['rotator']} ({p['mode']}), nothing touched"
        )
    )
    print(
        for_terminal(
            f"  credential  {p['exposed']}  (findings {', '.join(str(f) for f in p['findings'])})"
        )
    )
    if p["mode"] == "manual":
        rem = p.get("remediation") or {}
        print(for_terminal(f"  no automatic rotation: {rem.get('reason')}"))
        return
    print(for_terminal(f"  identity    {p.get('identity')}"))
    if p.get("store"):
        print(for_terminal(f"  store       {p['store']} ({p['store_kind']}) {p['location']}"))
        print(for_terminal(f"  store as    {p.get('store_identity')}"))
    print(f"  steps       {' -> '.join(p['steps'])}")
    for a in p.get("actions", []):
        print(for_terminal(f"    - {a}"))
    for n in p.get("notes", []):
        print(for_terminal(f"  note: {n}"))
    if p.get("existing_rotation"):
        print(f"  a rotation exists already: {p['existing_rotation']} (rotate resumes it)")


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Rotations, newest first."""
    from sentinel.display import for_terminal
    from sentinel.store.rotations import listing

    store, _rot = _open(config)
    try:
        rows = listing(store, status=status, limit=200)
    finally:
        store.close()
    if fmt == "json":
        print(_dump({"items": rows}))
        return
    if not rows:
        print("no rotations")
        return
    for v in rows:
        step = next((s["name"] for s in v["steps"] if s["state"] not in ("done", "skipped")), "-")
        print(
            for_terminal(
                f"{v['id']}  {v['status']:<11} {v['rotator']:<22} {v['exposed']:<24} "
                f"step {step:<7} {_when(v['updated_at'])}"
            )
        )


@app.command("show")
def show(
    rotation_id: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """One rotation: every step's state, attempts, times and last error."""
    from sentinel.errors import ConfigError
    from sentinel.store.rotations import events, view

    store, _rot = _open(config)
    try:
        v = view(store, rotation_id)
        if v is None:
            raise ConfigError(f"no rotation {rotation_id}")
        v["events"] = events(store, rotation_id)
    finally:
        store.close()
    if fmt == "json":
        print(_dump(v))
    else:
        _print_view(v)


@app.command("retry")
def retry(
    rotation_id: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
) -> None:
    """Run a failed or rolled-back rotation again (from its failed step; from the start
    after a rollback), here, now."""
    from sentinel.errors import ConfigError

    store, rot = _open(config)
    try:
        if not rot.retry(rotation_id, "cli"):
            raise ConfigError(f"rotation {rotation_id} is not failed or rolled back")
        v = rot.run(rotation_id, now_regardless=True)
    finally:
        store.close()
    _print_view(v)
    if not _done(v):
        raise typer.Exit(1)


@app.command("run-due")
def run_due(config: ConfigOpt = None) -> None:
    """One round of what the service's scheduler does: due retries, purges, managed
    credentials coming due (for a cron job where no service runs)."""
    store, rot = _open(config)
    try:
        ran = rot.tick()
    finally:
        store.close()
    print(f"ran {len(ran)} rotation(s)")


@app.command("managed")
def managed(config: ConfigOpt = None, fmt: FormatOpt = "text") -> None:
    """The [[rotation.managed]] credentials: last rotated, next due."""
    from sentinel.display import for_terminal

    store, rot = _open(config)
    try:
        rows = rot.managed_views()
    finally:
        store.close()
    if fmt == "json":
        print(_dump({"items": rows}))
        return
    if not rows:
        print("no [[rotation.managed]] credentials configured")
        return
    for m in rows:
        nxt = _when(m["next_due_at"]) if m["next_due_at"] else "now"
        print(
            for_terminal(
                f"{m['name']:<24} {m['rotator']:<22} last {_when(m['last_rotated_at'])}  next due {nxt}"
            )
        )


@rotators_app.command("list")
def rotators_list(config: ConfigOpt = None, fmt: FormatOpt = "text") -> None:
    """Each rule: the rotator it names and what that does (rotate, revoke, manual)."""
    from detectors.ruleset import load_builtin
    from rotators import PROVIDERS
    from sentinel import settings as settings_mod
    from sentinel.jobs.rotation import mode_of

    settings = settings_mod.load(config)
    rows = []
    for r in sorted(load_builtin(), key=lambda r: r.id):
        name = r.rotator
        if name and name in PROVIDERS:
            mode = mode_of(name)
            configured = name in settings.rotation.providers or mode == "revoke"
        else:
            mode, configured = "manual", True
        rows.append({"rule": r.id, "rotator": name, "mode": mode, "configured": configured})
    if fmt == "json":
        print(_dump({"items": rows}))
        return
    for row in rows:
        note = "" if row["configured"] else "  (not configured: [rotation.providers])"
        print(f"{row['rule']:<40} {row['mode']:<7} {row['rotator'] or '-'}{note}")
    counts = {m: sum(1 for r in rows if r["mode"] == m) for m in ("rotate", "revoke", "manual")}
    print(
        f"{counts['rotate']} rules rotate, {counts['revoke']} only revoke, {counts['manual']} need manual remediation",
        file=sys.stderr,
    )
