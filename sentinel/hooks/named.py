"""``sentinel hook pre-commit FILE...``: the files it is given, scanned whole.

The pre-commit framework passes the hook file names: at commit time the staged files
(their work tree copies, which the framework makes match the index by stashing what
is not staged), with ``pre-commit run --all-files`` every tracked file. Each is read
as ``sentinel scan path`` reads it and every secret in it counts, not only those on
lines a commit adds: run over a whole repository in CI, a key committed long ago must
fail the run. Known ones are accepted with the baseline or ``sentinel:allow``.

Without file names (git running the hook itself) the staged diff is judged instead,
see ``sentinel.hooks.precommit``.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sentinel.hooks.filereads import read_bounded
from sentinel.hooks.scan import HookScanner, Oversize, Verdicts, split_unsure
from sentinel.models import Origin, display_path
from sentinel.sources.safeio import NotRegularFile


@dataclass
class Named(Verdicts):
    """Verdicts on named files, plus the files that could not be read (one line each)."""

    problems: list[str] = field(default_factory=list)


def relative(name: str, top: str | None) -> str:
    """``name`` (as given, relative to the current directory) relative to the work
    tree's top, where allowlists, the baseline and the config's own files are rooted."""
    if top is None:
        return name
    full = os.path.abspath(name)
    rel = os.path.relpath(full, top)
    return name if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _why(exc: OSError) -> str:
    if isinstance(exc, NotRegularFile):
        return exc.kind + ", not a regular file"
    return exc.strerror or str(exc)


def scan_named(names: Sequence[str], top: str | None, scanner: HookScanner) -> Named:
    """Every named file's secrets, all of them judged as new. A symlink is not read (git
    records where it points, not what is there): counted as ``symlink``. A file that
    cannot be read (missing, a FIFO, no permission) is named in ``problems``."""
    v = Named()
    for name in dict.fromkeys(names):
        shown = display_path(relative(name, top))
        try:
            if os.path.islink(name):
                v.skipped["symlink"] += 1
                continue
            got = read_bounded(name, scanner.max_size)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a symlink since the check
                v.skipped["symlink"] += 1
                continue
            v.skipped["unreadable"] += 1
            v.problems.append(f"cannot read {shown}: {_why(exc)} (not scanned)")
            continue
        v.scanned += 1
        origin = Origin(source="file", path=shown)
        found = scanner.scan(got.data, origin)
        if not got.whole:
            found += scanner.scan(got.tail, origin, got.tail_line, got.tail_offset)
            v.oversize.append(Oversize(shown, got.size, got.scanned))
        v.blocking.extend(found)
    v.skipped.update(scanner.collector.suppressed)
    v.blocking, v.unsure = split_unsure(v.blocking, scanner.block_confidence)
    return v


def report_named(v: Named, out: TextIO, baseline: Path | None) -> None:
    from sentinel.display import for_terminal
    from sentinel.hooks.precommit import _line, _ways_out

    for problem in v.problems:
        out.write(f"sentinel: error: {for_terminal(problem)}\n")
    if v.blocking:
        n = len(v.blocking)
        out.write(
            ("\n" if v.problems else "")
            + f"sentinel: blocked: {n} secret{'s' if n > 1 else ''} in the files checked\n\n"
        )
        for occ in v.blocking:
            out.write(_line(occ, f"{occ.origin.path}:{occ.line}") + "\n")
    if v.unsure:
        out.write(
            ("\n" if v.blocking or v.problems else "")
            + f"sentinel: warning: {len(v.unsure)} possible secret(s) in the files checked "
            "(low confidence, not blocking; check them):\n"
        )
        for occ in v.unsure:
            out.write(_line(occ, f"{occ.origin.path}:{occ.line}") + "\n")
    if v.blocking:
        _ways_out(out, baseline, v.blocking, "the file (and from the history, if it was committed)")


def pre_commit_files(names: Sequence[str], out: TextIO = sys.stderr) -> int:
    """Exit 1 when a named file holds a secret (or one over max_file_size with
    ``oversize = block``), 2 when one could not be read, else 0."""
    from sentinel.hooks import gitio
    from sentinel.hooks.precommit import _project, report_oversize
    from sentinel.hooks.scan import oversize_mode

    repo = gitio.locate()
    scanner, baseline = _project(repo)
    v = scan_named(names, repo.top, scanner)
    mode = scanner.oversize
    if v.oversize:
        setting = gitio.config_values(repo.git_dir, ["sentinel.oversize"])
        mode = oversize_mode(scanner.oversize, setting.get("sentinel.oversize"))
    report_oversize(v, out, scanner.max_size, mode)
    report_named(v, out, baseline)
    if v.blocking or (v.oversize and mode == "block"):
        return 1
    return 2 if v.problems else 0
