"""Server-side hook: ``pre-receive`` scans exactly what a push introduces.

git runs it in the receiving repository with one ``<old> <new> <ref>`` line per
updated ref on stdin, before any ref moves. The pushed objects sit in a quarantine
directory that git names in the environment (GIT_QUARANTINE_PATH and friends); every
git command run from here inherits it, so objects that are not yet accepted are
found. Only objects not reachable from an existing ref are scanned
(``rev-list NEW... --not --all``), with the history scan's own machinery: one
``cat-file`` stream per worker, each blob once, attribution by one ``git log --raw``.

Server settings are git config keys (``git config --system`` for a whole host, or in
the repository), so an admin sets them where git already reads its own:

    sentinel.timeBudget   seconds (default 4.5: hosts such as GitHub Enterprise kill a
                          hook at 5 s)
    sentinel.onTimeout    fail_closed (default: reject) | fail_open (accept, record the
                          push as unscanned, queue a scan of the pushed range). The same
                          choice applies when the hook cannot work at all (bad input, a
                          corrupt or shallow repository).
    sentinel.allowSkip    true to honour ``git push -o sentinel.skip="reason"``
                          (needs receive.advertisePushOptions=true); off by default
    sentinel.baseline     a baseline file on the server whose secrets do not block
    sentinel.config       a .sentinel.toml on the server (allowlists, custom rules)
    sentinel.log          where outcomes are logged, JSON lines (default:
                          GIT_DIR/sentinel/pre-receive.log)
    sentinel.oversize     warn (default) | block: a pushed blob over max_file_size has
                          only its first and last parts scanned; warn says so (to the
                          pusher and in the log), block rejects the push. Overrides
                          ``oversize`` in the sentinel.config file.
    sentinel.serviceUrl   the Sentinel service (http:// or https://): each blocked push,
                          break-glass bypass and push let through unscanned is reported
                          to it as an event, through a local spool and a detached
                          deliverer (``sentinel.hooks.spool``), never slowing the push
    sentinel.serviceTokenFile  a file holding the bearer token for it (else
                          sentinel.serviceToken, else $SENTINEL_SERVICE_TOKEN)
    sentinel.repositoryUrl how events name this repository (default: its path here)
    sentinel.spoolMaxEvents  events kept while the service cannot be reached (10000)

The project's own .sentinel.toml and baseline inside the pushed tree are not used:
a pusher must not be able to approve their own push.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sentinel.display import for_terminal
from sentinel.errors import ConfigError, SentinelError, SourceError
from sentinel.hooks import gitio, spool
from sentinel.models import Occurrence, Origin

_OID = re.compile(rb"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
FAIL_MODES = ("fail_closed", "fail_open")
DEFAULT_BUDGET = 4.5
# Below this many bytes the push is scanned in this process: starting workers costs
# more than it saves. Above it, one worker per core, as a history scan.
POOL_BYTES = 8 * 1024 * 1024
# In this process the deadline is checked between shards of this size (~40 ms each).
SMALL_SHARD_BYTES = 1024 * 1024


class HookInputError(SentinelError):
    pass


class BudgetExceeded(SentinelError):
    pass


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def deleted(self) -> bool:
        return self.new.encode() in gitio.ZERO_OIDS

    @property
    def created(self) -> bool:
        return self.old.encode() in gitio.ZERO_OIDS


def parse_updates(data: bytes) -> list[Update]:
    """The ``<old> <new> <ref>`` lines git writes to the hook's stdin."""
    updates = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        parts = line.split(b" ", 2)
        if len(parts) != 3 or not _OID.match(parts[0]) or not _OID.match(parts[1]) or not parts[2]:
            shown = line[:80].decode("utf-8", "replace")
            raise HookInputError(
                f"line {n} of the hook's input is not '<old-sha> <new-sha> <ref>': {shown!r}"
            )
        updates.append(
            Update(parts[0].decode(), parts[1].decode(), parts[2].decode("utf-8", "replace"))
        )
    return updates


@dataclass
class ServerConfig:
    time_budget: float = DEFAULT_BUDGET
    on_timeout: str = "fail_closed"
    allow_skip: bool = False
    baseline: Path | None = None
    config: Path | None = None
    log: Path | None = None
    oversize: str | None = None  # None: the sentinel.config file's (default warn)
    service: Any = None  # spool.ServiceConfig: where events go (url None: nowhere)

    @classmethod
    def load(cls, git_dir: str) -> ServerConfig:
        values = gitio.config_values(
            git_dir,
            [
                "sentinel.timeBudget",
                "sentinel.onTimeout",
                "sentinel.allowSkip",
                "sentinel.baseline",
                "sentinel.config",
                "sentinel.log",
                "sentinel.oversize",
                *spool.SERVICE_KEYS,
            ],
        )
        cfg = cls(log=Path(git_dir) / "sentinel" / "pre-receive.log")
        cfg.service = spool.ServiceConfig.load(git_dir, values)
        if "sentinel.timeBudget" in values:
            try:
                cfg.time_budget = float(values["sentinel.timeBudget"])
            except ValueError:
                cfg.time_budget = -1
            if not 0 < cfg.time_budget < 3600:
                raise ConfigError(
                    f"sentinel.timeBudget {values['sentinel.timeBudget']!r} is not a number of "
                    "seconds between 0 and 3600"
                )
        if "sentinel.onTimeout" in values:
            mode = values["sentinel.onTimeout"].strip().lower().replace("-", "_")
            if mode not in FAIL_MODES:
                raise ConfigError(
                    f"sentinel.onTimeout {values['sentinel.onTimeout']!r} is not fail_closed or fail_open"
                )
            cfg.on_timeout = mode
        if "sentinel.allowSkip" in values:
            cfg.allow_skip = values["sentinel.allowSkip"].strip().lower() in (
                "true",
                "yes",
                "on",
                "1",
            )
        for key, attr in (("sentinel.baseline", "baseline"), ("sentinel.config", "config")):
            if values.get(key):
                setattr(cfg, attr, Path(values[key]).expanduser())
        if values.get("sentinel.log"):
            cfg.log = Path(values["sentinel.log"]).expanduser()
        if "sentinel.oversize" in values:
            from sentinel.hooks.scan import oversize_mode

            cfg.oversize = oversize_mode("warn", values["sentinel.oversize"])
        return cfg


PUSHER_VARS = ("GL_USERNAME", "GITEA_PUSHER_NAME", "GITHUB_USER_LOGIN", "REMOTE_USER")


def pusher(env: Mapping[str, str]) -> str:
    """Who is pushing, as the hosting software tells its hooks; else the account the
    hook runs as (from the password database when USER and LOGNAME are unset, as they
    are under many daemons), never a bare "unknown" while the uid has a name."""
    for var in (*PUSHER_VARS, "USER", "LOGNAME"):
        if env.get(var):
            return env[var]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def push_options(env: Mapping[str, str]) -> list[str]:
    try:
        count = int(env.get("GIT_PUSH_OPTION_COUNT", "0"))
    except ValueError:
        return []
    return [env.get(f"GIT_PUSH_OPTION_{i}", "") for i in range(max(0, min(count, 100)))]


def skip_reason(options: list[str]) -> str | None:
    """The reason given with ``-o sentinel.skip=REASON`` (``""`` when none was), or None."""
    for opt in options:
        name, eq, value = opt.partition("=")
        if name.strip() == "sentinel.skip":
            return value.strip().strip("\"'") if eq else ""
    return None


# -- scanning ----------------------------------------------------------------------------------


@dataclass
class PushScan:
    blocking: list[Occurrence] = field(default_factory=list)
    warnings: list[Occurrence] = field(default_factory=list)
    unsure: list[Occurrence] = field(default_factory=list)  # new, below block_confidence
    oversize: list[Any] = field(default_factory=list)  # scan.Oversize: only partly scanned
    oversize_mode: str = "warn"
    max_file_size: int = 0
    commits: int = 0
    blobs: int = 0
    bytes: int = 0


class _Deadline:
    def __init__(self, budget: float, started: float) -> None:
        self.at = started + budget
        self.budget = budget

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, doing: str) -> None:
        if self.left() <= 0:
            raise BudgetExceeded(f"the {self.budget:g} s time budget ran out while {doing}")


def _git_in_time(git_dir: str, deadline: _Deadline, doing: str, *args: str, **kw: Any) -> Any:
    left = deadline.left()
    if left <= 0:
        deadline.check(doing)
    try:
        return gitio.git(git_dir, *args, timeout=left, **kw)
    except subprocess.TimeoutExpired:
        raise BudgetExceeded(
            f"the {deadline.budget:g} s time budget ran out while {doing}"
        ) from None


def scan_push(
    repo: gitio.Repo, updates: list[Update], cfg: ServerConfig, deadline: _Deadline
) -> PushScan:
    from sentinel import baseline as baseline_mod
    from sentinel import config as config_mod
    from sentinel import scanning
    from sentinel.fingerprint import fingerprint_key
    from sentinel.scanner import Collector, ScanOptions, build_ruleset, engine_spec
    from sentinel.sources import git as gs

    git_dir = repo.git_dir
    result = PushScan()
    tips = sorted({u.new for u in updates if not u.deleted})
    if not tips:
        return result
    # every pushed tip must exist (in the quarantine or the repository)
    check = _git_in_time(
        git_dir,
        deadline,
        "checking the pushed objects",
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        input="".join(t + "\n" for t in tips).encode(),
    )
    for line in check.stdout.decode().splitlines():
        if line.endswith(" missing"):
            raise SourceError(f"pushed object {line.split()[0]} is not in the repository")
    revs = [*tips, "--not", "--all"]
    # the history scan's own listing, over what no existing ref reaches
    deadline.check("listing the pushed objects")
    try:
        lines = gs.list_objects(git_dir, revs, timeout=deadline.left())
    except subprocess.TimeoutExpired:
        raise BudgetExceeded(
            f"the {deadline.budget:g} s time budget ran out while listing the pushed objects"
        ) from None
    if not lines:
        return result  # a deletion, a new name for existing commits, a rewind

    config = config_mod.load(cfg.config) if cfg.config else config_mod.Config()
    key = fingerprint_key()
    opts = ScanOptions(
        config=config,
        baseline=baseline_mod.load(cfg.baseline, key) if cfg.baseline else None,
    )
    ruleset = build_ruleset(opts)
    spec = engine_spec(opts, ruleset)
    collector = Collector(opts, scanning.OccurrenceFactory(ruleset, key), dedupe_history=False)
    ordered, sizes, _too_large = gs.delta_order(lines, config.max_file_size)
    big = _oversize_blobs(lines, config.max_file_size)
    result.max_file_size = config.max_file_size
    result.oversize_mode = cfg.oversize or config.oversize
    total = sum(sizes)
    attribution = gs.Attribution(git_dir, revs)
    try:
        shard_results = _scan_objects(git_dir, spec, ordered, sizes, total, deadline)
        scanned: dict[str, int] = {}
        if big:
            edges, scanned = _scan_edges(git_dir, spec, big, config.max_file_size, deadline)
            shard_results.append(edges)
        for r in shard_results:
            if r.error:
                raise SourceError(f"git cannot read the pushed objects: {r.error}")
            result.commits += r.stats.commits
            result.blobs += r.stats.blobs
            result.bytes += r.stats.bytes
        hit_blobs = {sha for r in shard_results for sha in r.hits if sha not in r.meta}
        if not any(r.hits for r in shard_results) and not big:
            return result
        deadline.check("attributing findings to commits")
        attribution.wait()
        introduced = attribution.blobs(hit_blobs | set(big))
        if big:
            from sentinel.hooks.scan import Oversize

            for sha, size in big.items():
                where = introduced.get(sha)
                path = f"{where[1]} (in {where[0][:12]})" if where else f"blob {sha}"
                result.oversize.append(Oversize(path, size, scanned.get(sha, 0)))
        added = _AddedLines(git_dir, deadline)
        for r in shard_results:
            for sha, hits in r.hits.items():
                meta = r.meta.get(sha)
                if meta is not None:  # a commit or tag message: all of it is new
                    kind, name, email, date = meta
                    origin = Origin(
                        source="git",
                        path=f"({kind} message)",
                        commit=sha,
                        author=name,
                        email=email,
                        date=date,
                        object_type=kind,
                    )
                    for h in hits:
                        occ = collector.add(origin, h)
                        if occ is not None:
                            result.blocking.append(occ)
                    continue
                found = introduced.get(sha)
                commit, path, name, email, date = found or ("", "(unknown path)", "", "", "")
                origin = Origin(
                    source="git",
                    path=path,
                    commit=commit or None,
                    author=name,
                    email=email,
                    date=date,
                    object_type="blob",
                )
                for h in hits:
                    occ = collector.add(origin, h)
                    if occ is None:
                        continue
                    # a blob too large to diff in the time budget: what was found in
                    # its scanned parts blocks
                    if (
                        found is None
                        or sha in big
                        or added.adds(commit, path, occ.line, occ.end_line)
                    ):
                        result.blocking.append(occ)
                    else:
                        result.warnings.append(occ)
    finally:
        attribution.close()
    from sentinel.hooks.scan import split_unsure

    result.blocking, result.unsure = split_unsure(result.blocking, config.block_confidence)
    return result


def _scan_objects(
    git_dir: str,
    spec: Any,
    lines: list[bytes],
    sizes: list[int],
    total: int,
    deadline: _Deadline,
) -> list[Any]:
    from sentinel import scanning
    from sentinel.sources import git as gs

    n = scanning.workers(None)
    if n > 1 and total > POOL_BYTES:
        import multiprocessing as mp

        shards = gs.shard(lines, sizes, n)
        results = []
        with scanning.pool(spec, n) as p:
            it = p.imap(gs.scan_shard, [(git_dir, s) for s, _ in shards])
            for _ in shards:
                left = deadline.left()
                if left <= 0:
                    deadline.check("scanning the pushed objects")
                try:
                    results.append(it.next(timeout=left))
                except (mp.TimeoutError, TimeoutError):
                    # the pool raises multiprocessing's own TimeoutError, which is not
                    # the built-in one: catching only the built-in crashed the hook
                    p.terminate()
                    raise BudgetExceeded(
                        f"the {deadline.budget:g} s time budget ran out while scanning "
                        f"{total / 1e6:.1f} MB of pushed objects"
                    ) from None
            p.close()
            p.join()
        return results
    scanning.init_worker(spec)
    results = []
    try:
        start, acc = 0, 0
        for i, size in enumerate(sizes):
            acc += size
            if acc >= SMALL_SHARD_BYTES or i == len(sizes) - 1:
                deadline.check(f"scanning {total / 1e6:.1f} MB of pushed objects")
                results.append(gs.scan_shard((git_dir, lines[start : i + 1])))
                start, acc = i + 1, 0
    finally:
        gs.close_cat_file()
    return results


def _oversize_blobs(lines: list[bytes], max_size: int) -> dict[str, int]:
    """``{sha: size}`` of the listed blobs over ``max_size`` (``delta_order`` leaves
    them out of the scan; the hook still reads their first and last parts)."""
    big = {}
    for ln in lines:
        if ln.startswith(b"blob "):
            _, sha, size, _ = ln.split(b" ")
            if int(size) > max_size:
                big[sha.decode()] = int(size)
    return big


def _scan_edges(
    git_dir: str, spec: Any, big: dict[str, int], max_size: int, deadline: _Deadline
) -> tuple[Any, dict[str, int]]:
    """A ``ShardResult`` (and the bytes scanned of each blob) for the blobs over ``max_size``: the first and last
    ``max_size / 2`` bytes of each, streamed (never the whole blob in memory), with
    the tail's lines and byte offsets shifted to where they are in the blob."""
    from sentinel import scanning
    from sentinel.hooks.scan import shifted
    from sentinel.sources import git as gs

    doing = "reading the first and last parts of blobs over max_file_size"
    deadline.check(doing)
    try:
        edges = gitio.read_edges(
            git_dir, [s.encode() for s in big], max_size // 2, timeout=deadline.left()
        )
    except subprocess.TimeoutExpired:
        raise BudgetExceeded(
            f"the {deadline.budget:g} s time budget ran out while {doing}"
        ) from None
    try:
        engine = scanning.worker_engine()
    except RuntimeError:  # the pool scanned the rest: this process has no engine yet
        scanning.init_worker(spec)
        engine = scanning.worker_engine()
    result = gs.ShardResult({}, {}, gs.GitStats())
    scanned: dict[str, int] = {}
    for edge in edges:
        if edge is None:
            result.error = "a blob over max_file_size cannot be read"
            break
        deadline.check(doing)
        hits = list(scanning.text_hits(engine, edge.head))
        hits += [
            shifted(h, edge.tail_line, edge.tail_offset)
            for h in scanning.text_hits(engine, edge.tail)
        ]
        scanned[edge.sha.decode()] = len(edge.head) + len(edge.tail)
        result.stats.blobs += 1
        result.stats.bytes += len(edge.head) + len(edge.tail)
        if hits:
            result.hits[edge.sha.decode()] = hits
    return result, scanned


class _AddedLines:
    """Whether a commit adds a given line of a file, against every one of its parents
    (a merge adds a line only if no parent had it): a secret that was already in the
    file before this push is a warning, not a reason to refuse the push."""

    def __init__(self, git_dir: str, deadline: _Deadline) -> None:
        self.git_dir = git_dir
        self.deadline = deadline
        self._diffs: dict[tuple[str, str], dict[bytes, gitio.Added]] = {}

    def adds(self, commit: str, path: str, first: int, last: int) -> bool:
        res = _git_in_time(
            self.git_dir,
            self.deadline,
            "reading commit parents",
            "rev-list",
            "--parents",
            "-n1",
            commit,
        )
        parents = res.stdout.decode().split()[1:]
        if not parents:
            return True  # a root commit adds every line it has
        raw_path = path.encode("utf-8", "surrogateescape")
        for parent in parents:
            diff = self._diffs.get((parent, commit))
            if diff is None:
                patch = _git_in_time(
                    self.git_dir,
                    self.deadline,
                    "diffing a commit against its parent",
                    "-c",
                    "core.quotePath=false",
                    "diff",
                    "-U0",
                    "-M",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "--src-prefix=a/",
                    "--dst-prefix=b/",
                    parent,
                    commit,
                )
                diff = self._diffs[(parent, commit)] = gitio.added_lines(patch.stdout)
            lines = diff.get(raw_path)
            if lines is None or not lines.touches(first, last):
                return False
        return True


# -- the hook ------------------------------------------------------------------------------------


class AuditLog:
    """One JSON line per push: who, what, the outcome and why. Never a secret's value."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> str | None:
        if self.path is None:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            return f"cannot write the log {self.path}: {exc.strerror or exc}"
        return None


def _queue_unscanned(git_dir: str, record: dict[str, Any]) -> str | None:
    """Record a push accepted without a scan, for a full scan of its range later."""
    path = Path(git_dir) / "sentinel" / "unscanned.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError as exc:
        return f"cannot queue the unscanned push in {path}: {exc.strerror or exc}"
    return None


def _finding_record(o: Occurrence) -> dict[str, Any]:
    """How the log and the service's events name a finding: never its value."""
    return {
        "rule_id": o.rule_id,
        "severity": o.severity,
        "confidence": o.confidence,
        "fingerprint": o.fingerprint,
        "redacted": o.redacted,
        "commit": o.origin.commit,
        "path": o.origin.path,
        "line": o.line,
        "column": o.column,
        "author": o.origin.author,
        "email": o.origin.email,
        "date": o.origin.date,
    }


def _report(
    repo: gitio.Repo,
    cfg: ServerConfig,
    record: dict[str, Any],
    out: TextIO,
    kind: str,
    cause: str,
    reason: str,
    updates: list[Update] | None,
    findings: list[dict[str, Any]] | None = None,
) -> None:
    """Spool an event for the service and start its deliverer, when sentinel.serviceUrl
    is set. Whatever goes wrong here is a warning: reporting never fails a push."""
    service = cfg.service
    if service is None or not service.url:
        return
    try:
        from sentinel.events import HookEvent, sentinel_version
        from sentinel.fingerprint import installation_key

        event = HookEvent(
            kind=kind,  # type: ignore[arg-type]
            repository=service.repository_url or repo.git_dir,
            pusher=str(record.get("pusher", ""))[:500],
            cause=cause,
            reason=reason[:2000],
            updates=[vars(u) for u in updates or []],
            findings=findings or [],
            # the key scan_push fingerprinted with (only asked for when it was used)
            fingerprint_key=installation_key().id if findings else None,
            sentinel_version=sentinel_version(),
        )
        note: dict[str, Any] = {"id": event.id, "kind": kind}
        record["event"] = note
        try:
            spool.check_url(service.url)
        except SentinelError as exc:
            out.write(
                f"sentinel: warning: {for_terminal(exc)}; this push's event is kept in "
                f"{spool.spool_dir(repo.git_dir)} until it is fixed\n"
            )
        if service.max_events < 0:
            out.write(
                "sentinel: warning: sentinel.spoolMaxEvents is not a whole number from 1 to "
                f"1000000; {spool.MAX_EVENTS} it is\n"
            )
            service.max_events = spool.MAX_EVENTS
        kept = spool.spool(repo.git_dir, event.body(), event.id, service.max_events)
        if kept.path is None:
            note.update(dropped=True, dropped_total=kept.dropped_total, spooled=kept.pending)
            out.write(
                f"sentinel: warning: the event spool is full ({kept.pending} events waiting "
                f"in {spool.spool_dir(repo.git_dir)}); this push's event was dropped "
                f"({kept.dropped_total} dropped so far). Is the Sentinel service reachable? "
                "'sentinel hooks deliver --repo' sends what is waiting.\n"
            )
            return
        note["spooled"] = True
        spool.start_deliverer(repo.git_dir)
    except Exception as exc:  # a full disk, a bug: the push's outcome stands
        problem = f"cannot report this push to the Sentinel service: {type(exc).__name__}: {exc}"
        record.setdefault("event", {})["problem"] = problem
        out.write(f"sentinel: warning: {for_terminal(problem)}\n")


def _describe(o: Occurrence) -> str:
    commit = (o.origin.commit or "?")[:12]
    # the path and preview come from the pushed tree: escaped, so a name cannot hide a
    # finding behind terminal escapes in the pusher's terminal
    return for_terminal(f"  {commit}  {o.origin.path}:{o.line}  {o.rule_id}  {o.redacted}")


def pre_receive(
    stdin: bytes,
    out: TextIO = sys.stderr,
    env: Mapping[str, str] = os.environ,
) -> int:
    started = time.monotonic()
    repo = gitio.locate()
    cfg = ServerConfig.load(repo.git_dir)  # a bad setting is an error (exit 2: rejected)
    log = AuditLog(cfg.log)
    who = pusher(env)
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pusher": who,
        "repository": repo.git_dir,
    }

    def finish(outcome: str, rc: int, **extra: Any) -> int:
        record.update(outcome=outcome, seconds=round(time.monotonic() - started, 3), **extra)
        problem = log.write(record)
        if problem:
            out.write(f"sentinel: warning: {for_terminal(problem)}\n")
        return rc

    def report(
        kind: str,
        cause: str,
        why: str,
        pushed: list[Update] | None,
        findings: list[dict[str, Any]] | None = None,
    ) -> None:
        _report(repo, cfg, record, out, kind, cause, why, pushed, findings)

    def queue(cause: str, why: str, queued_updates: list[Update] | None) -> None:
        queued = {
            **record,
            "cause": cause,
            "reason": why,
            "updates": [vars(u) for u in queued_updates or []],
        }
        problem = _queue_unscanned(repo.git_dir, queued)
        if problem:
            out.write(f"sentinel: warning: {for_terminal(problem)}\n")

    def failed(why: str, unscanned_updates: list[Update] | None, cause: str = "error") -> int:
        """The push could not be scanned (``cause``: time_budget, error, internal_error):
        the configured fail mode decides, and either way the log says why."""
        shown = for_terminal(why)
        if cfg.on_timeout == "fail_open":
            out.write(
                f"sentinel: warning: {shown}; the push is accepted unscanned (fail_open) and a "
                "full scan of it is queued\n"
            )
            queue(cause, why, unscanned_updates)
            report("push_unscanned", cause, why, unscanned_updates)
            return finish("unscanned", 0, reason=why, cause=cause, queued=True)
        hint = (
            "  Push fewer commits at a time, or ask the server's admin (sentinel.timeBudget,\n"
            "  sentinel.onTimeout).\n"
            if cause == "time_budget"
            else "  This is a problem on the server, not in your commits: tell its admin, and\n"
            "  push again once it is fixed.\n"
        )
        out.write(
            f"sentinel: push rejected: {shown}, so it could not be checked for secrets (fail_closed).\n"
            + hint
        )
        report("push_blocked", cause, why, unscanned_updates)
        return finish("rejected_unscanned", 1, reason=why, cause=cause)

    try:
        updates = parse_updates(stdin)
    except HookInputError as exc:
        return failed(str(exc), None)
    record["updates"] = [vars(u) for u in updates]

    reason = skip_reason(push_options(env))
    if reason is not None:
        if not cfg.allow_skip:
            out.write(
                "sentinel: the sentinel.skip push option is not enabled on this server; "
                "scanning as usual\n"
            )
        elif not reason:
            out.write(
                'sentinel: sentinel.skip needs a reason (git push -o sentinel.skip="why"); '
                "scanning as usual\n"
            )
        else:
            out.write(
                f"sentinel: scan skipped by {for_terminal(who)} (break-glass: "
                f"{for_terminal(reason)!r}); this push is logged and queued for a full scan\n"
            )
            # accepted unscanned like fail_open, so it must reach the same queue: the
            # secrets a break-glass push may carry are found later, not never
            queue("break_glass", reason, updates)
            report("push_bypassed", "break_glass", reason, updates)
            return finish("skipped", 0, reason=reason, cause="break_glass", queued=True)

    deadline = _Deadline(cfg.time_budget, started)
    try:
        scan = scan_push(repo, updates, cfg, deadline)
    except BudgetExceeded as exc:
        return failed(str(exc), updates, cause="time_budget")
    except SentinelError as exc:
        return failed(str(exc), updates)
    except Exception as exc:  # a bug must not bypass the fail mode either
        from sentinel.cli.main import _crash_log

        path = _crash_log()
        return failed(
            f"internal error: {type(exc).__name__} (details in {path})", updates, "internal_error"
        )
    counts: dict[str, Any] = {"commits": scan.commits, "blobs": scan.blobs, "bytes": scan.bytes}
    if scan.warnings:
        out.write(
            f"sentinel: warning: {len(scan.warnings)} secret(s) that were already in these files "
            "before this push (not blocking; they need rotating and cleaning up):\n"
        )
        for o in scan.warnings:
            out.write(_describe(o) + "\n")
    if scan.unsure:
        out.write(
            f"sentinel: warning: {len(scan.unsure)} possible secret(s) in the pushed commits "
            "(low confidence, not blocking):\n"
        )
        for o in scan.unsure:
            out.write(_describe(o) + "\n")
    warned = [_finding_record(o) for o in (*scan.unsure, *scan.warnings)]
    if scan.oversize:
        from sentinel.hooks.scan import describe_oversize

        counts["oversize"] = [o.record() for o in scan.oversize]
        lines = [f"  {describe_oversize(o, scan.max_file_size)}\n" for o in scan.oversize]
        if scan.oversize_mode == "block":
            out.write(
                f"sentinel: push rejected: {len(scan.oversize)} pushed file(s) over max_file_size "
                "(sentinel.oversize = block on this server):\n"
                + "".join(lines)
                + "  Keep files this large out of the repository (git LFS, an artifact store).\n"
            )
            if not scan.blocking:
                report(
                    "push_blocked",
                    "oversize",
                    f"{len(scan.oversize)} pushed file(s) over max_file_size "
                    "(sentinel.oversize = block)",
                    updates,
                )
                return finish("rejected", 1, **counts, reason="oversize", warnings=warned)
        else:
            out.write(
                "sentinel: WARNING: pushed file(s) over max_file_size, only partly scanned "
                "(not blocking):\n" + "".join(lines)
            )
    if not scan.blocking:
        return finish("accepted", 0, **counts, warnings=warned)
    n = len(scan.blocking)
    out.write(f"sentinel: push rejected: {n} secret{'s' if n > 1 else ''} in the pushed commits\n")
    for o in scan.blocking:
        out.write(_describe(o) + "\n")
    out.write(
        "How to fix: rewrite the commits that add them, so that no pushed commit holds the\n"
        "secret (removing it in a later commit is not enough: history keeps it):\n"
        "  git rebase -i <commit>^   (mark the commit 'edit', remove the secret, amend, continue)\n"
        "  git commit --amend        (when it is in the last commit)\n"
        "Then rotate the secret: it has left your machine. A false positive can be marked\n"
        "with a 'sentinel:allow' comment on its line. Your repository's baseline does not\n"
        "apply here; the server's admin can set one (sentinel.baseline).\n"
    )
    findings = [_finding_record(o) for o in scan.blocking]
    report(
        "push_blocked",
        "secrets",
        f"{n} secret{'s' if n > 1 else ''} in the pushed commits",
        updates,
        findings,
    )
    return finish("rejected", 1, **counts, findings=findings, warnings=warned)
