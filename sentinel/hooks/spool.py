"""The pre-receive hook's events on their way to the service: a local spool and a
detached deliverer, so a service that is down, slow or refusing never slows or fails
a push.

The hook writes each event (``sentinel.events.HookEvent``) into
``GIT_DIR/sentinel/events/`` (a temporary file renamed into place, mode 0600, named so
that names sort oldest first), starts ``python -m sentinel hook deliver-events
--git-dir DIR`` in its own session with no terminal and no inherited descriptors, and
returns. The deliverer holds an exclusive ``flock`` on the spool directory (a second
one exits at once), posts each event oldest first to ``{serviceUrl}/v1/events`` and:

    2xx, 409 (already stored)        deletes the file
    400, 413, 415, 422               the service refuses this event: moved to
                                     ``events/rejected/``, one line in the hook log
    anything else (network errors, timeouts, 3xx, 401/403/404, 408, 429, 5xx)
                                     keeps it and stops the round: the service or its
                                     configuration is at fault, not the event, so the
                                     next push's deliverer (or ``sentinel hooks
                                     deliver``) tries again

The spool is bounded (``sentinel.spoolMaxEvents``, default 10,000 events, and 100 MB):
past the bound the oldest events are kept, the new one is dropped, and the hook says
so to the pusher and in its log, with a running count.

The deliverer runs git only to read the ``sentinel.*`` configuration, through the same
overridden command line and environment as every other git call here. The token
(``sentinel.serviceTokenFile``, else ``sentinel.serviceToken``, else the
``SENTINEL_SERVICE_TOKEN`` environment variable) goes in the ``Authorization`` header
and nowhere else: not in the spool, not in the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentinel.errors import ConfigError

MAX_EVENTS = 10_000
MAX_BYTES = 100 * 1024 * 1024
MAX_EVENT_BYTES = 8 * 1024 * 1024  # a file bigger than this in the spool is not an event
TIMEOUT = 5.0  # seconds per request
LOCK_WAIT = 30.0  # how long ``sentinel hooks deliver`` waits for a running deliverer
DROPPED = "dropped.count"
REJECTED = "rejected"
# the service refuses this event itself: retrying it would fail the same way
_REJECT = frozenset({400, 413, 415, 422})
SERVICE_KEYS = (
    "sentinel.serviceUrl",
    "sentinel.serviceTokenFile",
    "sentinel.serviceToken",
    "sentinel.repositoryUrl",
    "sentinel.spoolMaxEvents",
    "sentinel.log",
)


def spool_dir(git_dir: str) -> Path:
    return Path(git_dir) / "sentinel" / "events"


def check_url(url: str) -> str:
    """``url`` without a trailing slash, if it is a plain http(s) base URL."""
    shown = url if len(url) <= 200 else url[:200] + "..."
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise ConfigError(f"sentinel.serviceUrl {shown!r} holds spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ConfigError(f"sentinel.serviceUrl {shown!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"sentinel.serviceUrl {shown!r} is not an http:// or https:// URL with a host"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "sentinel.serviceUrl must not hold credentials: put the token in the file "
            "sentinel.serviceTokenFile names"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"sentinel.serviceUrl {shown!r} must be a base URL (no ? or #)")
    return url.rstrip("/")


@dataclass
class ServiceConfig:
    url: str | None = None  # as configured (None: events are off)
    token_file: Path | None = None
    token: str | None = None  # sentinel.serviceToken (the file is the better place)
    repository_url: str | None = None
    max_events: int = MAX_EVENTS
    log: Path | None = None

    @classmethod
    def load(cls, git_dir: str, values: dict[str, str] | None = None) -> ServiceConfig:
        """The settings (``values``: ones already read by the caller, for these keys)."""
        if values is None:
            from sentinel.hooks import gitio

            values = gitio.config_values(git_dir, SERVICE_KEYS)
        cfg = cls(log=Path(git_dir) / "sentinel" / "pre-receive.log")
        cfg.url = values.get("sentinel.serviceUrl", "").strip() or None
        if values.get("sentinel.serviceTokenFile", "").strip():
            cfg.token_file = Path(values["sentinel.serviceTokenFile"].strip()).expanduser()
        cfg.token = values.get("sentinel.serviceToken", "").strip() or None
        cfg.repository_url = values.get("sentinel.repositoryUrl", "").strip() or None
        raw = values.get("sentinel.spoolMaxEvents", "").strip()
        if raw:
            cfg.max_events = int(raw) if raw.isdigit() and 0 < int(raw) <= 1_000_000 else -1
        if values.get("sentinel.log"):
            cfg.log = Path(values["sentinel.log"]).expanduser()
        return cfg

    def endpoint(self) -> str:
        if not self.url:
            raise ConfigError("sentinel.serviceUrl is not set")
        return check_url(self.url) + "/v1/events"

    def bearer(self) -> str | None:
        """The token: the file's first line, else the config key, else the environment."""
        if self.token_file is not None:
            try:
                with open(self.token_file, "rb") as fh:
                    raw = fh.read(4097)
            except OSError as exc:
                raise ConfigError(
                    f"cannot read sentinel.serviceTokenFile {str(self.token_file)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
            lines = raw.decode("utf-8", "replace").strip().splitlines()
            if len(raw) > 4096 or not lines or not lines[0].strip():
                raise ConfigError(
                    f"sentinel.serviceTokenFile {str(self.token_file)!r} does not hold a token "
                    "on its first line"
                )
            return lines[0].strip()
        return self.token or os.environ.get("SENTINEL_SERVICE_TOKEN", "").strip() or None


def log_line(path: Path | None, record: dict[str, Any]) -> None:
    """One JSON line in the hook log (best effort: a log that cannot be written must not
    stop a delivery)."""
    if path is None:
        return
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


# -- the hook's side ----------------------------------------------------------------------------


@dataclass
class Spooled:
    path: Path | None  # None: dropped, the spool is full
    pending: int  # events in the spool before this one
    dropped_total: int = 0


def _pending(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(
                (e for e in it if e.name.endswith(".json") and e.is_file(follow_symlinks=False)),
                key=lambda e: e.name,
            )
    except FileNotFoundError:
        return []


def _write_atomic(directory: Path, name: str, data: bytes) -> Path:
    tmp = directory / f".tmp-{os.getpid()}-{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        final = directory / name
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return final


def _make_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def dropped_total(directory: Path) -> int:
    try:
        return int((directory / DROPPED).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def spool(git_dir: str, body: bytes, event_id: str, max_events: int = MAX_EVENTS) -> Spooled:
    """Write one event's JSON into the spool (raises OSError when it cannot)."""
    directory = spool_dir(git_dir)
    _make_dir(directory)
    pending = _pending(directory)
    size = 0
    for e in pending:
        with contextlib.suppress(OSError):
            size += e.stat(follow_symlinks=False).st_size
    if len(pending) >= max_events or size + len(body) > MAX_BYTES:
        total = dropped_total(directory) + 1
        with contextlib.suppress(OSError):
            _write_atomic(directory, DROPPED, f"{total}\n".encode())
        return Spooled(None, len(pending), total)
    name = f"{time.time_ns():020d}-{event_id}.json"
    return Spooled(_write_atomic(directory, name, body), len(pending))


def start_deliverer(git_dir: str) -> None:
    """``python -m sentinel hook deliver-events`` in its own session, detached from the
    push: no terminal, no descriptor of git's (git waits for its hook's stderr to close),
    no variable git set for the hook (its quarantine is gone by the time it runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.Popen(
        [sys.executable, "-m", "sentinel", "hook", "deliver-events", "--git-dir", git_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        cwd=git_dir,
        env=env,
    )


# -- the deliverer --------------------------------------------------------------------------------


@dataclass
class Delivery:
    endpoint: str = ""
    delivered: list[str] = field(default_factory=list)  # event ids
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (event id, reason)
    kept: int = 0  # still in the spool
    problem: str | None = None  # why the round stopped
    busy: bool = False  # another deliverer holds the spool
    dropped_total: int = 0


@contextlib.contextmanager
def _locked(directory: Path, wait: float) -> Iterator[bool]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _NoRedirect:
    """A redirect is not followed: it would carry the bearer token to another address."""

    @staticmethod
    def opener() -> Any:
        import urllib.request

        class Handler(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kw: Any) -> None:
                return None

        return urllib.request.build_opener(Handler)


def _post(opener: Any, url: str, body: bytes, token: str | None) -> tuple[int, str]:
    """``(status, detail)``; status 0 for a network failure or timeout."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", "User-Agent": "sentinel-hook"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=TIMEOUT) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(300).decode("utf-8", "replace")
        except Exception:
            text = ""
        where = exc.headers.get("Location", "") if 300 <= exc.code < 400 else ""
        detail = f"redirected to {where}" if where else " ".join(text.split())[:200]
        return exc.code, detail
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
            return 0, f"no answer within {TIMEOUT:g} s"
        return 0, str(getattr(reason, "strerror", None) or reason)
    except Exception as exc:  # http.client's own errors (a reset, a bad status line)
        return 0, f"{type(exc).__name__}: {exc}"


def _event_id(name: str) -> str:
    return name.removesuffix(".json").rpartition("-")[2]


def _redact(text: str, token: str | None) -> str:
    from sentinel.display import for_terminal

    if token:
        text = text.replace(token, "[token]")
    return for_terminal(text)


def deliver(git_dir: str, *, wait: float = 0.0) -> Delivery:
    """Post what is in the spool, oldest first (see the module's docstring)."""
    directory = spool_dir(git_dir)
    cfg = ServiceConfig.load(git_dir)
    out = Delivery(dropped_total=dropped_total(directory))
    if not directory.is_dir():
        return out
    try:
        while True:
            with _locked(directory, wait) as got:
                if not got:
                    out.busy = True
                    out.kept = len(_pending(directory))
                    return out
                _round(directory, cfg, out)
            # an event spooled while this round held the lock: its own deliverer found
            # the lock taken and left it to this one
            out.kept = len(_pending(directory))
            if out.problem or not out.kept:
                return out
    finally:
        if out.delivered:
            log_line(
                cfg.log,
                {"outcome": "events_delivered", "delivered": len(out.delivered), "kept": out.kept},
            )


def _round(directory: Path, cfg: ServiceConfig, out: Delivery) -> None:
    pending = _pending(directory)
    if not pending:
        return
    try:
        out.endpoint = cfg.endpoint()
        token = cfg.bearer()
    except ConfigError as exc:
        out.problem = str(exc)
        log_line(cfg.log, {"outcome": "events_kept", "reason": out.problem, "kept": len(pending)})
        return
    opener = _NoRedirect.opener()
    for entry in pending:
        path = Path(entry.path)
        event_id = _event_id(entry.name)
        try:
            if entry.stat(follow_symlinks=False).st_size > MAX_EVENT_BYTES:
                raise ValueError("too large")
            body = path.read_bytes()
            json.loads(body)
        except FileNotFoundError:
            continue  # delivered by a deliverer that held the lock before this one
        except (OSError, ValueError):
            _reject(directory, path, event_id, "not a readable event file", cfg, out)
            continue
        status, detail = _post(opener, out.endpoint, body, token)
        if 200 <= status < 300 or status == 409:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            out.delivered.append(event_id)
            continue
        why = _redact(f"HTTP {status}: {detail}" if status else detail, token)
        if status in _REJECT:
            _reject(directory, path, event_id, f"the service refused it ({why})", cfg, out)
            continue
        out.problem = f"{out.endpoint}: {why}"
        log_line(
            cfg.log,
            {
                "outcome": "events_kept",
                "event": event_id,
                "reason": out.problem,
                "kept": len(_pending(directory)),
            },
        )
        return


def _reject(
    directory: Path, path: Path, event_id: str, why: str, cfg: ServiceConfig, out: Delivery
) -> None:
    target = directory / REJECTED
    _make_dir(target)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, target / path.name)
    out.rejected.append((event_id, why))
    log_line(
        cfg.log,
        {
            "outcome": "event_rejected",
            "event": event_id,
            "reason": why,
            "moved_to": str(target / path.name),
        },
    )
