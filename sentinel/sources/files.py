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


@dataclass
class WalkStats:
    files: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    engine: EngineStats = field(default_factory=EngineStats)


@dataclass(frozen=True, slots=True)
class FileItem:
    path: str  # absolute or as given
    display: str  # path shown in reports
    rel: str  # path relative to the scanned root, for globs
    size: int


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _read_ignore(path: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        return _spec(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return None


class IgnoreStack:
    """The .gitignore files in force for a directory, outermost first; a deeper file
    overrides a shallower one, as in git."""

    def __init__(self) -> None:
        self.specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []

    def push(self, directory: Path) -> int:
        added = 0
        for name in (".gitignore",):
            spec = _read_ignore(directory / name)
            if spec is not None:
                self.specs.append((directory, spec))
                added += 1
        git = directory / ".git"
        if git.is_dir():
            spec = _read_ignore(git / "info" / "exclude")
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
    """Files under ``roots`` worth scanning, in a stable order."""
    for root in roots:
        p = Path(root)
        try:
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode) and p.is_dir():
                # a directory named on the command line is walked even through a symlink
                # (as find -H does); symlinks met inside the walk are still not followed
                st = p.stat()
        except OSError as exc:
            raise SourceError(f"cannot read {root}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(p, use_ignore, max_size, exclude, stats)
        else:
            item = _consider(p, p.name, root, st, max_size, exclude, stats)
            if item:
                yield item


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
    ignores = IgnoreStack()

    def rec(d: Path) -> Iterator[FileItem]:
        pushed = ignores.push(d) if use_ignore else 0
        try:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                stats.skipped["unreadable"] += 1
                return
            for e in entries:
                p = Path(e.path)
                rel = p.relative_to(top).as_posix()
                display = rel if str(top) == "." else f"{top.as_posix().rstrip('/')}/{rel}"
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
                    yield from rec(p)
                    continue
                if use_ignore and ignores.ignored(p, False):
                    continue
                item = _consider(p, rel, display, st, max_size, exclude, stats)
                if item:
                    yield item
        finally:
            ignores.pop(pushed)

    yield from rec(top)


def read_file(item: FileItem, stats: WalkStats) -> bytes | None:
    """The file's bytes, or None (counted) when it is unreadable."""
    try:
        with open(item.path, "rb") as fh:
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
