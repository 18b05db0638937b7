"""Git history: every unique blob reachable from every ref, read once, scanned once.

1. List objects. The whole history is ``git cat-file --batch-all-objects`` in
   pack order (delta locality); a narrowed range (``--branch``, ``--since``) is
   ``git rev-list --objects``.
2. Scan. The object list is cut into contiguous shards; each worker process
   streams its shard through one ``git cat-file --batch`` and scans every blob,
   commit message and tag message with the engine.
3. Attribute. While the workers run, one ``git log --raw -m`` walk over the same
   refs is written to a temporary file. Only blobs that hit are looked up in it:
   the last (oldest) entry that adds a blob names the commit, path, author and
   date that introduced it. A hit in a blob no ref reaches is dropped and counted.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.engine import EngineStats
from detectors.hsdb import HyperscanUnavailable
from sentinel.errors import CorruptRepository, NotARepository, RefNotFound, SourceError
from sentinel.models import Origin, display_path
from sentinel.sources.gitcmd import first_error_line, safe_argv, safe_env

ZERO = b"0" * 40
LOG_FORMAT = "%x1e%H%x1f%an%x1f%ae%x1f%aI"
MIN_SHARD_BYTES = (
    32 * 1024 * 1024
)  # below this a shard's cat-file start-up and cold delta cache cost more than balance gains
# git's cache of inflated delta bases, per cat-file process. Objects are asked for in
# delta-family order (see delta_order), so a chain's bases were inflated moments ago:
# a small cache then does as well as a large one, and each cat-file stays near the size
# of the pack windows it maps.
DELTA_CACHE = "16m"


@dataclass
class GitStats:
    blobs: int = 0
    commits: int = 0
    tags: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    engine: EngineStats = field(default_factory=EngineStats)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_repo(path: str) -> tuple[str, str | None]:
    """(git dir, work tree or None for a bare repository) of the repository at ``path``."""
    import git  # GitPython: repository discovery and validation

    try:
        repo = git.Repo(path, search_parent_directories=False)
    except git.NoSuchPathError:
        raise NotARepository(f"{path}: no such directory") from None
    except git.InvalidGitRepositoryError:
        raise NotARepository(
            f"{path} is not a git repository", "give the path of a clone, or use 'scan path'"
        ) from None
    except git.GitCommandError as exc:
        raise NotARepository(f"{path}: git cannot open it: {exc.stderr.strip()}") from None
    work = None if repo.bare else repo.working_tree_dir
    return repo.git_dir, str(work) if work else None


def _git(git_dir: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    """Git on the target, with its configuration's programs and output changes overridden
    (see ``gitcmd.OVERRIDES``)."""
    return subprocess.run(
        [*safe_argv(git_dir), *args], capture_output=True, check=False, env=safe_env(), **kw
    )


def resolve_ref(git_dir: str, ref: str) -> str:
    res = _git(git_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if res.returncode != 0:
        raise RefNotFound(f"no branch, tag or commit named {ref!r} in this repository")
    return res.stdout.decode().strip()


def stash_commits(git_dir: str) -> list[str]:
    """Every stash entry, not only the newest one that refs/stash points to."""
    res = _git(git_dir, "log", "-g", "--no-show-signature", "--format=%H", "refs/stash")
    if res.returncode != 0:
        return []
    return [ln for ln in res.stdout.decode().split() if ln]


def tips(git_dir: str, branch: str | None, since: str | None) -> list[str]:
    """rev-list/log arguments naming the history to scan."""
    args = [resolve_ref(git_dir, branch)] if branch else ["--all", *stash_commits(git_dir)]
    if since:
        args.append("^" + resolve_ref(git_dir, since))
    return args


_RAW_NEW = re.compile(rb":\d{6} (\d{6}) [0-9a-f]{40,64} ([0-9a-f]{40,64}) ")
_MISSING = re.compile(rb"^(\S+) missing$", re.MULTILINE)  # printed whatever the format


def list_objects(git_dir: str, revs: list[str] | None, timeout: float | None = None) -> list[bytes]:
    """Blobs, commits and tags to scan, as git lists them:
    ``b"<type> <sha> <size> <delta base or zeros>"`` lines. ``revs`` None means every
    object in the repository.

    The lines stay bytes: sqlalchemy lists 114k of them, and turning each into a tuple
    of str and int in the parent process was a fifth of a second before any worker
    could start. Workers split their own shard's lines. ``timeout`` bounds each git
    call (``subprocess.TimeoutExpired`` past it)."""
    fmt = "--batch-check=%(objecttype) %(objectname) %(objectsize) %(deltabase)"
    if revs is None:
        res = _git(git_dir, "cat-file", "--batch-all-objects", fmt, "--unordered", timeout=timeout)
    else:
        rl = _git(git_dir, "rev-list", "--objects", "--no-object-names", *revs, timeout=timeout)
        if rl.returncode != 0:
            raise CorruptRepository(f"git rev-list failed: {first_error_line(rl.stderr)}")
        if not rl.stdout.strip():
            return []
        res = _git(git_dir, "cat-file", fmt, input=rl.stdout, timeout=timeout)
    if res.returncode != 0:
        raise CorruptRepository(f"git cannot list objects: {first_error_line(res.stderr)}")
    missing = _MISSING.search(res.stdout)
    if missing is not None:
        raise CorruptRepository(f"object {missing.group(1).decode()} is missing")
    # trees are skipped: nothing to scan in them ("tag" and "tree" share a first letter)
    return [ln for ln in res.stdout.split(b"\n") if ln[:1] in (b"b", b"c") or ln[:4] == b"tag "]


def delta_order(lines: list[bytes], max_size: int) -> tuple[list[bytes], list[int], int]:
    """``(lines, sizes, too_large)``: the objects of ``list_objects`` in delta-family
    order, each one right after the object it is stored as a delta of (depth first), and
    blobs over ``max_size`` left out and counted.

    A pack holds most blobs as deltas against other versions of the same file, in chains
    up to fifty deep, and the families are spread all over it. Read in pack order,
    ``git cat-file`` inflates the same bases again and again unless its cache holds
    hundreds of MB; read in this order, the base of the next object is almost always
    the one just inflated. On sqlalchemy that takes cat-file from 4.2 s of CPU (with a
    160 MB cache) to 2.7 s (with 16 MB), for 0.2 s of ordering here."""
    kept: list[tuple[bytes, bytes, bytes, int]] = []
    too_large = 0
    for ln in lines:
        kind, sha, size_b, base = ln.split(b" ")
        size = int(size_b)
        if size > max_size and kind == b"blob":
            too_large += 1
        else:
            kept.append((sha, base, ln, size))
    present = {k[0] for k in kept}
    children: dict[bytes, list[tuple[bytes, bytes, bytes, int]]] = {}
    roots = []
    for k in kept:
        if k[1] in present:  # a delta whose base is scanned too (not a tree, not skipped)
            family = children.get(k[1])
            if family is None:
                children[k[1]] = [k]
            else:
                family.append(k)
        else:
            roots.append(k)
    ordered: list[bytes] = []
    sizes: list[int] = []
    put, put_size, kids = ordered.append, sizes.append, children.get
    for root in roots:
        if kids(root[0]) is None:  # most commits: nobody's base
            put(root[2])
            put_size(root[3])
            continue
        stack = [root]
        while stack:
            obj = stack.pop()
            put(obj[2])
            put_size(obj[3])
            below = kids(obj[0])
            if below:
                stack.extend(reversed(below))
    return ordered, sizes, too_large


def shard(lines: list[bytes], sizes: list[int], n_workers: int) -> list[tuple[list[bytes], int]]:
    """Contiguous shards (contiguous keeps delta families together), largest first: each
    takes a share of what is left, so the last ones are small and no worker sits idle
    at the end while another finishes a big shard (cost per byte varies along a pack)."""
    remaining = sum(sizes)
    shards: list[tuple[list[bytes], int]] = []
    start = 0
    acc = 0
    target = max(MIN_SHARD_BYTES, remaining / (2 * n_workers))
    for i, size in enumerate(sizes):
        acc += size
        if acc >= target:
            shards.append((lines[start : i + 1], acc))
            start = i + 1
            remaining -= acc
            acc = 0
            target = max(MIN_SHARD_BYTES, remaining / (2 * n_workers))
    if start < len(lines):
        shards.append((lines[start:], acc))
    return shards


def _widen_pipe(stream: Any) -> None:
    """A 1 MiB pipe instead of 64 KiB: git and the worker trade the CPU far less often
    (on sqlalchemy the kernel's share of reading every blob halves)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or the limit is lower: the default pipe still works


# -- worker side ------------------------------------------------------------------------------


@dataclass
class ShardResult:
    hits: dict[str, list[Any]]  # object sha -> raw hits
    meta: dict[str, tuple[str, str, str, str]]  # commit/tag sha -> (type, author, email, date)
    stats: GitStats
    error: str = ""


def _message(data: bytes) -> tuple[bytes, int]:
    """A commit or tag's message and its offset within the raw object."""
    i = data.find(b"\n\n")
    return (data[i + 2 :], i + 2) if i >= 0 else (b"", len(data))


def _person(data: bytes, field_name: bytes) -> tuple[str, str, str]:
    """(name, email, ISO date) from an ``author``/``tagger`` header line."""
    import datetime as dt

    for line in data.split(b"\n"):
        if not line:
            break
        if line.startswith(field_name + b" "):
            rest = line[len(field_name) + 1 :].decode("utf-8", "replace")
            name, _, tail = rest.partition(" <")
            email, _, when = tail.partition("> ")
            try:
                ts, tz = when.split()
                sign = -1 if tz.startswith("-") else 1
                off = dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])) * sign
                date = dt.datetime.fromtimestamp(int(ts), dt.timezone(off)).isoformat()
            except ValueError:
                date = ""
            return name, email, date
    return "", "", ""


class CatFile:
    """One ``git cat-file --batch`` per worker process, kept for all the shards it scans:
    its inflated-delta cache stays warm, and a shard costs no process start (small shards
    at the end of a scan would otherwise each pay for a new git and a cold cache)."""

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [
                *safe_argv(git_dir),
                "-c",
                f"core.deltaBaseCacheLimit={DELTA_CACHE}",
                "cat-file",
                "--batch",
            ],
            env=safe_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            bufsize=1 << 20,
        )
        assert self.proc.stdout is not None
        _widen_pipe(self.proc.stdout)

    def request(self, shas: list[bytes]) -> Any:
        """Ask for ``shas`` (written by a thread, so neither pipe can fill up and deadlock
        while the caller reads); returns the stream to read the answers from."""
        import threading

        stdin = self.proc.stdin
        assert stdin is not None and self.proc.stdout is not None

        def feed() -> None:
            try:
                stdin.write(b"".join(sha + b"\n" for sha in shas))
                stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # git died: the reader sees the stream end and reports stderr

        threading.Thread(target=feed, daemon=True).start()
        return self.proc.stdout

    def error(self) -> str:
        """Why git stopped: the first line it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._errors.seek(0)
        stderr = self._errors.read(65536)
        return first_error_line(stderr) if stderr.strip() else "git cat-file stopped early"

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._errors.close()


_CAT_FILE: CatFile | None = None


def _cat_file(git_dir: str) -> CatFile:
    global _CAT_FILE
    if _CAT_FILE is not None and (
        _CAT_FILE.git_dir != git_dir or _CAT_FILE.proc.poll() is not None
    ):
        close_cat_file()
    if _CAT_FILE is None:
        _CAT_FILE = CatFile(git_dir)
        from multiprocessing import util

        # a pool worker that exits normally ends its git too (the parent's close/join)
        util.Finalize(None, close_cat_file, exitpriority=10)
    return _CAT_FILE


def close_cat_file() -> None:
    global _CAT_FILE
    if _CAT_FILE is not None:
        _CAT_FILE.close()
        _CAT_FILE = None


def scan_shard(args: tuple[str, list[bytes]]) -> ShardResult:
    """Worker: stream one shard through this worker's ``git cat-file --batch`` and scan
    each object."""
    from sentinel.scanning import resolve, text_hits, worker_engine

    git_dir, lines = args
    objs = [ln.split(b" ", 2) for ln in lines]  # [type, sha, "size base"]
    engine = worker_engine()
    result = ShardResult({}, {}, GitStats())
    st = result.stats
    cat = _cat_file(git_dir)
    out = cat.request([o[1] for o in objs])
    done = 0
    try:
        for kind, sha_b, _ in objs:
            header = out.readline()
            if not header:
                break
            parts = header.split()
            if len(parts) != 3:  # "<sha> missing" or garbage
                st.skipped["missing_object"] += 1
                done += 1
                continue
            size = int(parts[2])
            data = out.read(size)
            out.read(1)
            if len(data) != size:
                break
            done += 1
            st.bytes += size
            if kind == b"blob":
                st.blobs += 1
                hits = text_hits(engine, data)  # binary and UTF-16 blobs too
                if hits:
                    result.hits[sha_b.decode()] = hits
            else:  # a commit or a tag: only its message is free text
                if kind == b"commit":
                    st.commits += 1
                else:
                    st.tags += 1
                msg, _ = _message(data)
                matches = engine.scan(msg)
                if matches:
                    sha = sha_b.decode()
                    result.hits[sha] = resolve(msg, matches)
                    who = _person(data, b"author" if kind == b"commit" else b"tagger")
                    result.meta[sha] = (kind.decode(), *who)
    finally:
        st.engine = engine.stats.take()
        if done < len(objs):  # git failed, or this worker did: the stream is out of step
            result.error = cat.error()
            close_cat_file()
    return result


# -- attribution --------------------------------------------------------------------------------


class Attribution:
    """The ``git log --raw`` walk, written to a temp file while the scan runs."""

    def __init__(self, git_dir: str, revs: list[str]) -> None:
        self._git_dir = git_dir
        self._tags: set[str] | None = None
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [
                *safe_argv(git_dir),
                "log",
                *revs,
                "--no-show-signature",
                "--no-mailmap",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--raw",
                "--no-abbrev",
                "--no-renames",
                "-m",
                "-z",
                f"--format={LOG_FORMAT}",
                "--",
            ],
            stdout=self._file,
            stderr=subprocess.PIPE,
            env=safe_env(),
        )
        self._map: mmap.mmap | None = None

    def wait(self) -> None:
        _, err = self._proc.communicate()
        if self._proc.returncode != 0:
            raise CorruptRepository(f"git log failed: {first_error_line(err)}")
        self._file.flush()
        if os.fstat(self._file.fileno()).st_size:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)

    def added_blobs(self) -> set[bytes]:
        """Every blob a commit of the walk adds or changes (submodule commits left out)."""
        if self._map is None:
            return set()
        return {
            m.group(2)
            for m in _RAW_NEW.finditer(self._map)
            if m.group(1) != b"160000" and m.group(2).strip(b"0")
        }

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._map is not None:
            self._map.close()
        self._file.close()

    def _header(self, pos: int) -> tuple[str, str, str, str]:
        assert self._map is not None
        start = self._map.rfind(b"\x1e", 0, pos) + 1
        end = self._map.find(b"\0", start)
        sha, name, email, date = (
            [*self._map[start:end].decode("utf-8", "replace").split("\x1f"), "", "", "", ""]
        )[:4]
        return sha, name, email, date

    def blobs(self, shas: set[str]) -> dict[str, tuple[str, str, str, str, str]]:
        """``blob`` for many blobs at once: one pass over the walk, not a search per blob."""
        if len(shas) <= 16 or self._map is None:
            found = {s: self.blob(s) for s in shas}
            return {s: v for s, v in found.items() if v is not None}
        try:
            ends = self._literal_ends(sorted(shas))
        except HyperscanUnavailable:
            return self._blobs_by_split(shas)
        out: dict[str, tuple[str, str, str, str, str]] = {}
        for sha, end in ends.items():
            found = self._entry_at(end - 40)
            if found is not None:
                out[sha] = found
        return out

    def _literal_ends(self, shas: list[str]) -> dict[str, int]:
        """Where each sha last ends as an entry's <new> blob in the walk (later records are
        older commits: the last entry adding a blob is the commit that introduced it).
        Hyperscan finds hundreds of shas in a 30 MB walk in tens of milliseconds."""
        from detectors.hsdb import import_hyperscan

        hs = import_hyperscan()
        assert self._map is not None
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(
            expressions=[s.encode() for s in shas],
            ids=list(range(len(shas))),
            elements=len(shas),
            flags=[0] * len(shas),
        )
        m = self._map
        last: dict[str, int] = {}

        def on_match(i: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            # a raw entry is ":<mode> <mode> <old> <new> <status>"; only <new> counts
            if to >= 96 and m[to - 96] == 0x3A and m[to - 89] == m[to - 82] == m[to - 41] == 0x20:
                last[shas[i]] = to

        db.scan(m, match_event_handler=on_match)
        return last

    def _entry_at(self, pos: int) -> tuple[str, str, str, str, str] | None:
        """(commit, path, author, email, date) of the raw entry whose <new> sha is at ``pos``."""
        assert self._map is not None
        path_start = self._map.find(b"\0", pos) + 1
        path_end = self._map.find(b"\0", path_start)
        if path_start <= 0 or path_end < 0:
            return None
        commit, name, email, date = self._header(pos)
        return commit, display_path(self._map[path_start:path_end]), name, email, date

    def _blobs_by_split(self, shas: set[str]) -> dict[str, tuple[str, str, str, str, str]]:
        """``blobs`` without Hyperscan: split the walk into records and check each entry."""
        assert self._map is not None
        wanted = {s.encode() for s in shas}
        out: dict[str, tuple[str, str, str, str, str]] = {}
        for record in self._map[:].split(b"\x1e"):
            head_end = record.find(b"\0")
            if head_end < 0:
                continue
            fields = record[head_end + 2 :].split(b"\0")
            header: tuple[str, str, str, str] | None = None
            for meta, path in zip(fields[0::2], fields[1::2], strict=False):
                new = meta[56:96]
                if new in wanted:
                    if header is None:
                        header = tuple(  # type: ignore[assignment]
                            [
                                *record[:head_end].decode("utf-8", "replace").split("\x1f"),
                                "",
                                "",
                                "",
                                "",
                            ][:4]
                        )
                    assert header is not None
                    # later records are older commits: the last one seen introduced the blob
                    out[new.decode()] = (header[0], display_path(path), *header[1:])
        return out

    def blob(self, sha: str) -> tuple[str, str, str, str, str] | None:
        """(commit, path, author, email, date) of the oldest commit adding blob ``sha``."""
        if self._map is None:
            return None
        needle = sha.encode()
        end = len(self._map)
        while True:
            pos = self._map.rfind(needle, 0, end)
            if pos < 0:
                return None
            entry = self._map.rfind(b":", max(0, pos - 60), pos)
            # a raw entry is ":<mode> <mode> <old> <new> <status>\0<path>\0"; only <new> counts
            if entry >= 0 and pos - entry == 56:
                return self._entry_at(pos)
            end = pos

    def reachable_commit(self, sha: str) -> bool:
        return self._map is not None and self._map.find(b"\x1e" + sha.encode()) >= 0

    def reachable_tag(self, sha: str) -> bool:
        """Whether a ref names tag object ``sha``, directly or through tags of tags (a
        deleted tag's object stays in the repository until gc, but no ref reaches it)."""
        if self._tags is None:
            self._tags = set()
            res = _git(
                self._git_dir,
                "for-each-ref",
                "--format=%(objecttype) %(objectname) %(*objecttype) %(*objectname)",
            )
            todo: list[str] = []
            for line in res.stdout.decode().splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[0] == "tag":
                    self._tags.add(parts[1])
                    if parts[2] == "tag":
                        todo.append(parts[3])
            while todo:  # a tag of a tag: rare, followed one object at a time
                t = todo.pop()
                if t in self._tags:
                    continue
                self._tags.add(t)
                head = _git(self._git_dir, "cat-file", "tag", t).stdout.split(b"\n\n", 1)[0]
                fields = dict(ln.split(b" ", 1) for ln in head.split(b"\n") if b" " in ln)
                if fields.get(b"type") == b"tag" and b"object" in fields:
                    todo.append(fields[b"object"].decode())
        return sha in self._tags


# -- orchestration --------------------------------------------------------------------------------


def scan_history(
    path: str,
    spec: Any,
    *,
    branch: str | None = None,
    since: str | None = None,
    max_size: int,
    jobs: int | None = None,
    progress: Any = None,
    on_hit: Callable[[Origin, Any], None],
) -> GitStats:
    """Scan the history of the repository at ``path``; ``on_hit(origin, raw_hit)`` per hit."""
    from sentinel import scanning

    git_dir, _work = open_repo(path)
    revs = tips(git_dir, branch, since)
    full = branch is None and since is None
    if full and _git(git_dir, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        has_refs = _git(git_dir, "for-each-ref", "--count=1").stdout.strip()
        if not has_refs:
            return GitStats()  # an empty repository: nothing committed, nothing to scan
    attribution = Attribution(git_dir, revs)
    try:
        stats = GitStats()
        shallow = Path(git_dir, "shallow")
        if shallow.is_file():
            stats.warnings.append(
                "this is a shallow clone: history before its shallow boundary is not in the "
                "repository and was not scanned (run 'git fetch --unshallow' to scan it all)"
            )
        listed = list_objects(git_dir, None if full else revs)
        lines, sizes, too_large = delta_order(listed, max_size)
        if too_large:
            stats.skipped["too_large"] += too_large
        n = scanning.workers(jobs)
        shards = shard(lines, sizes, n)
        if progress is not None:
            progress.start(sum(sizes), "bytes")
        results: list[ShardResult] = []
        tasks = [(git_dir, s) for s, _ in shards]
        shard_bytes = [b for _, b in shards]
        if n > 1 and len(shards) > 1:
            with scanning.pool(spec, n) as p:
                for r, nbytes in zip(p.imap(scan_shard, tasks), shard_bytes, strict=True):
                    results.append(r)
                    if progress is not None:
                        progress.advance(nbytes)
                p.close()  # let workers exit normally, so each ends its git cat-file
                p.join()
        else:
            scanning.init_worker(spec)
            try:
                for t, nbytes in zip(tasks, shard_bytes, strict=True):
                    results.append(scan_shard(t))
                    if progress is not None:
                        progress.advance(nbytes)
            finally:
                close_cat_file()
        for r in results:
            if r.error:
                raise CorruptRepository(f"git cannot read objects: {r.error}")
        attribution.wait()
        if full:
            _check_missing(git_dir, listed, attribution, stats)
        introduced = attribution.blobs(
            {sha for r in results for sha in r.hits if sha not in r.meta}
        )
        for r in results:
            stats.blobs += r.stats.blobs
            stats.commits += r.stats.commits
            stats.tags += r.stats.tags
            stats.bytes += r.stats.bytes
            stats.skipped.update(r.stats.skipped)
            stats.engine.merge(r.stats.engine)
            for sha, hits in r.hits.items():
                origin = _origin_for(attribution, introduced, sha, r.meta.get(sha), path)
                if origin is None:
                    stats.skipped["unreachable_hit"] += 1
                    continue
                for h in hits:
                    on_hit(origin, h)
        return stats
    except SourceError:
        raise
    except OSError as exc:
        raise CorruptRepository(f"reading the repository failed: {exc}") from None
    finally:
        attribution.close()


def _check_missing(
    git_dir: str, lines: list[bytes], attribution: Attribution, stats: GitStats
) -> None:
    """The whole-repository listing names only objects that exist: a blob a commit adds
    but the repository lacks (deleted, or never fetched in a partial clone) would be
    left out without a word. Each is counted and the scan reported as incomplete."""
    listed = {ln.split(b" ", 2)[1] for ln in lines if ln[:5] == b"blob "}
    missing = sorted(attribution.added_blobs() - listed)
    if not missing:
        return
    stats.skipped["missing_object"] += len(missing)
    partial = _git(git_dir, "config", "--get", "extensions.partialClone").stdout.strip()
    why = "a partial clone that has not fetched them" if partial else "the repository is corrupt"
    stats.errors.append(
        f"{len(missing)} blob(s) that commits add are missing (first: {missing[0].decode()}): "
        f"{why}; they were not scanned (run 'git fsck' to see what is wrong)"
    )


def _origin_for(
    attribution: Attribution,
    introduced: dict[str, tuple[str, str, str, str, str]],
    sha: str,
    meta: tuple[str, str, str, str] | None,
    repo: str,
) -> Origin | None:
    repo_name = Path(repo).resolve().name
    if meta is not None:  # a commit or tag message
        kind, name, email, date = meta
        if kind == "commit" and not attribution.reachable_commit(sha):
            return None
        if kind == "tag" and not attribution.reachable_tag(sha):
            return None
        return Origin(
            source="git",
            path=f"({kind} message)",
            commit=sha,
            author=name,
            email=email,
            date=date,
            object_type=kind,
            repository=repo_name,
        )
    found = introduced.get(sha)
    if found is None:
        return None
    commit, fpath, name, email, date = found
    return Origin(
        source="git",
        path=fpath,
        commit=commit,
        author=name,
        email=email,
        date=date,
        object_type="blob",
        repository=repo_name,
    )
