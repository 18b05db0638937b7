"""Bare mirrors of remote repositories, with remembered tips.

One mirror per URL under ``[service] mirrors_dir`` (default ``$SENTINEL_HOME/mirrors``):
``<slug>-<hash>.git``, where the hash is of the normalised URL (userinfo dropped, scheme
and host lower-cased, a trailing ``/`` or ``.git`` ignored) and the slug is the URL's last
two path parts reduced to ``[A-Za-z0-9._-]``, so nothing in a URL can reach outside the
directory. Beside it: ``<name>.lock`` (a file lock: two syncs of one URL take turns) and
``<name>.tips.json`` (every ref's commit before and after the last sync, so a sweep can
scan only what changed).

The first sync is ``git init --bare`` plus the same fetch as every later one,
``git fetch --prune <url> +refs/*:refs/*``, which is what ``clone --mirror`` does, except
that the URL (and any token in it) is never written into the mirror's config, and a
fetch never reads a remote, a URL or a refspec from that config. Fetches run with
gitcmd's fetch profile (https and ssh only, no credential helper, batch-mode ssh with no
user configuration, every object fsck'd, no submodules, no hooks), a wall-clock limit and
a size cap on the mirror (git has no client-side one: the mirror's directory is watched
while git writes, and the fetch is killed past ``mirror_max_bytes``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sentinel.errors import SourceError
from sentinel.sources.gitcmd import fetch_argv, fetch_env, first_error_line, safe_argv, safe_env
from sentinel.sweeps.urls import check_git_url, redact, without_userinfo

if TYPE_CHECKING:
    from sentinel.settings import ServiceSettings

_POLL = 0.5
_STDERR_KEEP = 16 * 1024


class MirrorError(SourceError):
    """A mirror that cannot be created or brought up to date."""


@dataclass(frozen=True)
class Sync:
    """One sync's outcome: where the mirror is and its refs before and after."""

    path: Path
    url: str  # without userinfo
    before: dict[str, str]  # refname -> object id; empty for a new mirror
    after: dict[str, str]
    created: bool

    def changed(self) -> dict[str, tuple[str | None, str | None]]:
        """Refs that moved, appeared or went: refname -> (old, new)."""
        names = set(self.before) | set(self.after)
        return {
            n: (self.before.get(n), self.after.get(n))
            for n in sorted(names)
            if self.before.get(n) != self.after.get(n)
        }


def mirrors_root(settings: ServiceSettings) -> Path:
    from sentinel.fingerprint import sentinel_home

    return Path(settings.service.mirrors_dir or sentinel_home() / "mirrors")


def normalise(url: str) -> str:
    url = without_userinfo(url)
    if "://" in url:
        p = urlsplit(url)
        url = f"{p.scheme.lower()}://{p.netloc.lower()}{p.path}"
    url = url.rstrip("/")
    return url[: -len(".git")] if url.endswith(".git") else url


def mirror_name(url: str) -> str:
    norm = normalise(url)
    digest = hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]
    tail = re.split(r"[/:]", norm.split("://", 1)[-1])[-2:]
    slug = re.sub(r"[^A-Za-z0-9._-]+|\.{2,}", "-", "-".join(tail)).strip(".-")[:60] or "repo"
    return f"{slug}-{digest}"


def mirror_path(url: str, settings: ServiceSettings) -> Path:
    return mirrors_root(settings) / f"{mirror_name(url)}.git"


def sync_mirror(url: str, settings: ServiceSettings) -> Path:
    """The up-to-date bare mirror of ``url`` (created on first use)."""
    return sync(url, settings).path


def sync(url: str, settings: ServiceSettings) -> Sync:
    """Create or update the mirror of ``url`` and remember its tips; MirrorError (one
    line, no credentials) when git cannot."""
    svc = settings.service
    check_git_url(url, http_loopback=svc.git_http_loopback)
    allow_http = url.lower().startswith("http://")
    shown = without_userinfo(url)
    root = mirrors_root(settings)
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise MirrorError(f"cannot create the mirrors directory {root}: {exc.strerror}") from None
    name = mirror_name(url)
    path = root / f"{name}.git"
    deadline = time.monotonic() + svc.mirror_timeout_seconds
    with _locked(root / f"{name}.lock", deadline, shown):
        created = not (path / "HEAD").is_file()
        before: dict[str, str] = {}
        if created:
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            try:
                _git_ok(
                    [*safe_argv(None), "init", "--bare", "--quiet", "--template=", str(tmp)],
                    shown,
                    "create",
                )
                _fetch(tmp, url, shown, allow_http, deadline, svc.mirror_max_bytes)
                if path.exists():  # a half-made mirror a killed process left behind
                    shutil.rmtree(path)
                os.rename(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            before = refs(path)
            _fetch(path, url, shown, allow_http, deadline, svc.mirror_max_bytes)
        after = refs(path)
        result = Sync(path, shown, before, after, created)
        _write_tips(root / f"{name}.tips.json", result)
    return result


def remembered_tips(url: str, settings: ServiceSettings) -> Sync | None:
    """The last sync of ``url`` as remembered (None if it was never mirrored)."""
    name = mirror_name(url)
    root = mirrors_root(settings)
    try:
        doc = json.loads((root / f"{name}.tips.json").read_text("utf-8"))
        return Sync(root / f"{name}.git", doc["url"], doc["before"], doc["after"], False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refs(git_dir: Path) -> dict[str, str]:
    res = subprocess.run(
        [*safe_argv(str(git_dir)), "for-each-ref", "--format=%(objectname) %(refname)"],
        capture_output=True,
        env=safe_env(hook=False),
        check=False,
        timeout=300,
    )
    if res.returncode != 0:
        raise MirrorError(
            f"cannot list the refs of mirror {git_dir}: {first_error_line(res.stderr)}"
        )
    out: dict[str, str] = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        oid, _, ref = line.partition(" ")
        if ref:
            out[ref] = oid
    return out


@contextlib.contextmanager
def _locked(lock: Path, deadline: float, shown: str) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MirrorError(
                        f"another sync of {shown} held its mirror's lock past the time limit"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


def _git_ok(argv: list[str], shown: str, what: str) -> None:
    res = subprocess.run(
        argv, capture_output=True, env=safe_env(hook=False), check=False, timeout=60
    )
    if res.returncode != 0:
        raise MirrorError(f"cannot {what} the mirror of {shown}: {first_error_line(res.stderr)}")


def _fetch(
    git_dir: Path, url: str, shown: str, allow_http: bool, deadline: float, max_bytes: int
) -> None:
    argv = [
        *fetch_argv(str(git_dir), allow_http=allow_http),
        "fetch",
        "--prune",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "--no-auto-gc",
        "--quiet",
        "--",
        url,
        "+refs/*:refs/*",
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=fetch_env(allow_http=allow_http),
            start_new_session=True,
            close_fds=True,
        )
        why = ""
        while True:
            try:
                code = proc.wait(timeout=_POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                why = "the fetch ran past the time limit and was stopped"
            elif _size(git_dir) > max_bytes:
                why = f"the mirror grew past {max_bytes} bytes and the fetch was stopped"
            if why:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
        if not why and code != 0:
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - _STDERR_KEEP))
            why = first_error_line(err.read())
    if not why and _size(git_dir) > max_bytes:  # finished between two looks
        why = f"the mirror grew past {max_bytes} bytes"
    if why:
        from sentinel.display import for_terminal

        reason = for_terminal(redact(why).replace(url, shown))[:300]
        raise MirrorError(f"cannot fetch {shown}: {reason}")


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _write_tips(dest: Path, s: Sync) -> None:
    doc = {"url": s.url, "synced_at": time.time(), "before": s.before, "after": s.after}
    tmp = dest.with_name(dest.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, dest)
