"""Files and directories: walk, honour .gitignore, skip what should not be scanned.

Every skip is counted with its reason (``too_large``, ``symlink``, ``unreadable``,
``excluded``), so a report says what was not looked at. Binary and UTF-16 files are
scanned too (``scanning.text_hits``), and counted in the engine's ``scanned_as``.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from detectors.engine import EngineStats
from sentinel.errors import SourceError
from sentinel.sources.safeio import open_regular, read_regular

MAX_IGNORE_FILE = 1024 * 1024  # a .gitignore larger than this is not honoured (counted)


@dataclass
class WalkStats:
    files: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    engine: EngineStats = field(default_factory=EngineStats)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileItem:
    path: str  # absolute or as given
    display: str  # path shown in reports
    rel: str  # path relative to the scanned root, for globs
    size: int


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _read_ignore(path: Path, stats: WalkStats | None = None) -> pathspec.GitIgnoreSpec | None:
    """The ignore file's patterns; a FIFO, device or oversize file in its place is not
    read (counted as ``ignore_file_unusable``: what it would have hidden is scanned)."""
    try:
        data = read_regular(path, MAX_IGNORE_FILE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if stats is not None and not isinstance(exc, (NotADirectoryError, PermissionError)):
            stats.skipped["ignore_file_unusable"] += 1
        return None
    return _spec(data.decode("utf-8", errors="replace").splitlines())


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:  # PermissionError in a directory without execute permission too
        return False


class IgnoreStack:
    """The .gitignore files in force for a directory, outermost first; a deeper file
    overrides a shallower one, as in git."""

    def __init__(self, stats: WalkStats | None = None) -> None:
        self.specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
        self.stats = stats

    def push(self, directory: Path) -> int:
        added = 0
        for name in (".gitignore",):
            spec = _read_ignore(directory / name, self.stats)
            if spec is not None:
                self.specs.append((directory, spec))
                added += 1
        git = directory / ".git"
        if _is_dir(git):
            spec = _read_ignore(git / "info" / "exclude", self.stats)
            if spec is not None:
                self.specs.append((directory, spec))
                added += 1
        return added

    def pop(self, n: int) -> None:
        for _ in range(n):
            self.specs.pop()

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for base, spec in self.specs:
            try:
                rel = path.relative_to(base).as_posix()
            except ValueError:
                continue
            res = spec.check_file(rel + "/" if is_dir else rel)
            if res.include is not None:
                verdict = bool(res.include)
        return verdict


def walk(
    roots: list[str],
    *,
    use_ignore: bool = True,
    max_size: int,
    exclude: pathspec.GitIgnoreSpec | None = None,
    stats: WalkStats,
) -> Iterator[FileItem]:
    """Files under ``roots`` worth scanning, in a stable order. A root is followed
    through a symlink (as ``find -H`` does: it was named on purpose); symlinks met
    inside the walk are not. A root that cannot be read is an error in ``stats``
    (the other roots are still scanned)."""
    for root in roots:
        p = Path(root)
        try:
            st = p.stat()  # an explicit argument is followed through a symlink
        except OSError as exc:
            _root_error(root, exc, len(roots), stats)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(p, use_ignore, max_size, exclude, stats)
            continue
        if stat.S_ISREG(st.st_mode):
            try:
                open_regular(p).close()
            except OSError as exc:
                _root_error(root, exc, len(roots), stats)
                continue
        item = _consider(p, p.name, root, st, max_size, exclude, stats)
        if item:
            yield item


def _root_error(root: str, exc: OSError, n_roots: int, stats: WalkStats) -> None:
    """One argument that cannot be read: the error when it is the only one, else an
    error in the report (the others are scanned, the exit code is 2)."""
    msg = f"cannot read {root}: {_reason(exc, Path(root))}"
    if n_roots == 1:
        raise SourceError(msg)
    stats.errors.append(msg)


def _is_link(p: Path) -> bool:
    try:
        return stat.S_ISLNK(p.lstat().st_mode)
    except OSError:
        return False


def _reason(exc: OSError, path: Path) -> str:
    """A short reason, with what to do, for an argument that cannot be scanned."""
    import errno

    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        dangling = _is_link(path)
        return "a dangling symlink" if dangling else "no such file or directory"
    if exc.errno == errno.EACCES:
        return "permission denied (scan as a user who can read it)"
    return str(exc.strerror or exc)


def _consider(
    p: Path,
    rel: str,
    display: str,
    st: os.stat_result,
    max_size: int,
    exclude: pathspec.GitIgnoreSpec | None,
    stats: WalkStats,
) -> FileItem | None:
    if stat.S_ISLNK(st.st_mode):
        stats.skipped["symlink"] += 1
        return None
    if not stat.S_ISREG(st.st_mode):
        stats.skipped["not_regular"] += 1
        return None
    if exclude is not None and exclude.match_file(rel):
        stats.skipped["excluded"] += 1
        return None
    if st.st_size > max_size:
        stats.skipped["too_large"] += 1
        return None
    if st.st_size == 0:
        stats.skipped["empty"] += 1
        return None
    return FileItem(str(p), display, rel, st.st_size)


def _walk_dir(
    top: Path,
    use_ignore: bool,
    max_size: int,
    exclude: pathspec.GitIgnoreSpec | None,
    stats: WalkStats,
) -> Iterator[FileItem]:
    """Depth first with an explicit stack (any depth, no recursion limit), in name
    order. A directory that cannot be listed, or whose path is too long for the
    system, is counted as ``unreadable``."""
    ignores = IgnoreStack(stats)
    prefix = "" if str(top) == "." else top.as_posix().rstrip("/") + "/"
    # (directory, its path relative to top, entries left to visit, ignore specs pushed)
    stack: list[tuple[Path, str, list[os.DirEntry[str]], int]] = []

    def enter(d: Path, rel: str) -> None:
        pushed = ignores.push(d) if use_ignore else 0
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            stats.skipped["unreadable"] += 1
            entries = []
        stack.append((d, rel, entries, pushed))

    enter(top, "")
    while stack:
        _, drel, entries, pushed = stack[-1]
        if not entries:
            stack.pop()
            ignores.pop(pushed)
            continue
        e = entries.pop()
        p = Path(e.path)
        rel = f"{drel}/{e.name}" if drel else e.name
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            stats.skipped["unreadable"] += 1
            continue
        if stat.S_ISDIR(st.st_mode):
            if e.name == ".git":
                continue
            if use_ignore and ignores.ignored(p, True):
                continue
            if exclude is not None and exclude.match_file(rel + "/"):
                stats.skipped["excluded"] += 1
                continue
            enter(p, rel)
            continue
        if use_ignore and ignores.ignored(p, False):
            continue
        item = _consider(p, rel, prefix + rel, st, max_size, exclude, stats)
        if item:
            yield item


def read_file(item: FileItem, stats: WalkStats) -> bytes | None:
    """The file's bytes, or None (counted) when it is unreadable."""
    try:
        # a file swapped for a FIFO or device since the walk is refused, not waited on
        with open_regular(item.path) as fh:
            data = fh.read(item.size + 1)
    except OSError:
        stats.skipped["unreadable"] += 1
        return None
    return data


# -- scanning -------------------------------------------------------------------------------

PARALLEL_MIN_BYTES = 4 * 1024 * 1024  # below this a pool costs more than it saves
BATCH_BYTES = 2 * 1024 * 1024


def _scan_batch(items: list[FileItem]) -> tuple[list[tuple[str, str, list[Any]]], WalkStats]:
    """Worker: read and scan a batch of files; returns raw hits per displayed path."""
    from sentinel.scanning import text_hits, worker_engine

    engine = worker_engine()
    stats = WalkStats()
    out: list[tuple[str, str, list[Any]]] = []
    for item in items:
        data = read_file(item, stats)
        if data is None:
            continue
        stats.files += 1
        stats.bytes += len(data)
        hits = text_hits(engine, data)
        if hits:
            out.append((item.display, item.rel, hits))
    stats.engine = engine.stats.take()
    return out, stats


def _batches(items: list[FileItem]) -> Iterator[list[FileItem]]:
    batch: list[FileItem] = []
    size = 0
    for it in items:
        batch.append(it)
        size += it.size
        if size >= BATCH_BYTES or len(batch) >= 256:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def scan_paths(
    roots: list[str],
    spec: Any,
    *,
    use_ignore: bool = True,
    max_size: int,
    exclude: pathspec.GitIgnoreSpec | None = None,
    jobs: int | None = None,
    progress: Any = None,
) -> tuple[list[tuple[str, str, list[Any]]], WalkStats]:
    """Scan files under ``roots``; both cores when there is enough to do."""
    from sentinel import scanning

    stats = WalkStats()
    items = list(
        walk(roots, use_ignore=use_ignore, max_size=max_size, exclude=exclude, stats=stats)
    )
    total = sum(i.size for i in items)
    if progress is not None:
        progress.start(total, "files")
    n = scanning.workers(jobs)
    results: list[tuple[str, str, list[Any]]] = []

    def merge(part: tuple[list[tuple[str, str, list[Any]]], WalkStats], size: int) -> None:
        hits, st = part
        results.extend(hits)
        stats.files += st.files
        stats.bytes += st.bytes
        stats.skipped.update(st.skipped)
        stats.engine.merge(st.engine)
        stats.errors.extend(st.errors)
        if progress is not None:
            progress.advance(size)

    batches = list(_batches(items))
    if n > 1 and total >= PARALLEL_MIN_BYTES and len(batches) > 1:
        with scanning.pool(spec, n) as p:
            for part, size in zip(
                p.imap(_scan_batch, batches), (sum(i.size for i in b) for b in batches), strict=True
            ):
                merge(part, size)
    else:
        scanning.init_worker(spec)
        for b in batches:
            merge(_scan_batch(b), sum(i.size for i in b))
    return results, stats
