"""The scan job: run one queued Scan row to its end.

The scan itself runs in a child process, the same ``sentinel scan ... --store`` a user
runs, so hostile input that crashes a parser or eats memory takes down one child, not
the service: the child has a wall-clock limit (killed with its process group) and,
when configured, an address-space limit. The child writes its results into the row
(``--store-scan-id``); this side marks the row running, then failed if the child died
without finishing it. A target's own .sentinel.toml is never read (it could allowlist
its own secrets).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentinel.store.models import Scan, utcnow

if TYPE_CHECKING:
    from sentinel.settings import ServiceSettings
    from sentinel.store.facade import Store

ENV_RLIMIT_AS = "SENTINEL_RLIMIT_AS"
_STDERR_KEEP = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    scan_id: str
    status: str  # succeeded | failed
    exit_code: int | None
    error: str | None = None


def scan_argv(scan: Scan, settings: ServiceSettings, mirror: str | None = None) -> list[str]:
    """The ``sentinel scan`` command line for a queued row (already validated by the API
    or the scheduler's configuration)."""
    p: dict[str, Any] = scan.params or {}
    base = [sys.executable, "-m", "sentinel.cli.main", "scan"]
    tail = ["--store", "--store-scan-id", scan.id, "--format", "json", "--output", os.devnull]
    if scan.kind == "git":
        argv = [*base, "git", "--no-target-config", "--no-progress"]
        if p.get("branch"):
            argv += ["--branch", str(p["branch"])]
        if p.get("since"):
            argv += ["--since", str(p["since"])]
        return [*argv, *tail, "--", mirror or scan.target]
    if scan.kind == "path":
        targets = [t for t in scan.target.split(",") if t]
        return [*base, "path", "--no-target-config", "--no-progress", *tail, "--", *targets]
    if scan.kind == "image":
        argv = [*base, "image"]
        if p.get("platform"):
            argv += ["--platform", str(p["platform"])]
        if p.get("insecure_registry"):
            argv += ["--insecure-registry"]
        return [*argv, *tail, "--", scan.target]
    if scan.kind == "k8s":
        argv = [*base, "k8s"]
        if p.get("cluster"):
            argv += ["--cluster"]
            if p.get("kubeconfig"):
                argv += ["--kubeconfig", str(p["kubeconfig"])]
            if scan.target and scan.target != "current-context":
                argv += ["--context", scan.target]
            for ns in p.get("namespaces") or []:
                argv += ["--namespace", str(ns)]
            if p.get("include_secrets"):
                argv += ["--include-secrets"]
            return [*argv, *tail]
        targets = [t for t in scan.target.split(",") if t]
        return [*argv, *tail, "--", *targets]
    raise ValueError(f"unknown scan kind {scan.kind!r}")


def _is_remote(target: str) -> bool:
    return "://" in target or (":" in target and "@" in target.split(":", 1)[0])


def run_scan(store: Store, settings: ServiceSettings, scan_id: str) -> Outcome:
    """Run ``scan_id`` (status queued, or running after a crash) and return its outcome."""
    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        scan = s.get(Scan, scan_id)
        if scan is None:
            return Outcome(scan_id, "failed", None, "no such scan")
        if scan.status in ("succeeded", "failed"):
            return Outcome(scan_id, scan.status, scan.exit_code)  # done already: at-least-once
        scan.status = "running"
        scan.started_at = utcnow()
        s.commit()
    try:
        mirror = None
        if scan.kind == "git" and _is_remote(scan.target):
            from sentinel.sweeps.mirrors import sync_mirror

            mirror = str(sync_mirror(scan.target, settings))
        argv = scan_argv(scan, settings, mirror)
        code, err = _run_child(argv, settings)
    except Exception as exc:  # a mirror that cannot be fetched, a bad row: the scan failed
        from sentinel.display import for_terminal

        return _fail(store, scan_id, None, for_terminal(exc)[:500])
    with store.sessions() as s:
        row = s.get(Scan, scan_id)
        finished = row is not None and row.status == "succeeded"
    if finished:
        return Outcome(scan_id, "succeeded", code)
    return _fail(store, scan_id, code, err)


def _fail(store: Store, scan_id: str, code: int | None, why: str) -> Outcome:
    from sentinel.store.session import writing

    with store.sessions() as s:
        writing(s)
        row = s.get(Scan, scan_id)
        if row is not None:
            row.status = "failed"
            row.exit_code = code
            row.finished_at = utcnow()
            if row.started_at is not None:
                row.duration_seconds = (row.finished_at - row.started_at).total_seconds()
            row.errors = [*(row.errors or []), why]
            s.commit()
    return Outcome(scan_id, "failed", code, why)


def _run_child(argv: list[str], settings: ServiceSettings) -> tuple[int | None, str]:
    """(exit code, or None when killed; the last line of its stderr)."""
    env = dict(os.environ)
    if settings.service.scan_memory_bytes:
        env[ENV_RLIMIT_AS] = str(settings.service.scan_memory_bytes)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        try:
            code: int | None = proc.wait(timeout=settings.service.scan_timeout_seconds)
            why = ""
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
            why = f"the scan ran past {settings.service.scan_timeout_seconds:g} s and was stopped"
        err.seek(0, os.SEEK_END)
        size = err.tell()
        err.seek(max(0, size - _STDERR_KEEP))
        tail = err.read().decode("utf-8", "replace")
    if not why:
        lines = [ln for ln in tail.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("sentinel: error:")]
        why = (errors or lines or [f"the scan exited {code}"])[-1]
        if code is not None and code < 0:
            why = f"the scan was killed by signal {-code}"
    from sentinel.display import for_terminal

    return code, for_terminal(why)[:500]
