"""Client-side hooks: ``pre-commit`` (what is staged) and ``commit-msg`` (the message).

pre-commit scans the index version of every added, copied, modified or renamed file,
never the working tree: what is staged is what the commit will hold. Only a secret on
a line the commit adds blocks it; one already in a touched file, outside the changed
lines, is reported as a warning, so an old leak does not stop every later edit of
that file (it belongs to the history scan and the baseline).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from sentinel.errors import CorruptRepository, SourceError
from sentinel.hooks import gitio
from sentinel.hooks.scan import (
    HookScanner,
    Oversize,
    Verdicts,
    describe_oversize,
    oversize_mode,
    split_unsure,
)
from sentinel.models import Occurrence, Origin, display_path

BASELINE_FILE = ".sentinel-baseline.json"
SKIP_MODES = {b"160000": "submodule", b"120000": "symlink"}


def _project(repo: gitio.Repo) -> tuple[HookScanner, Path | None]:
    from sentinel import config as config_mod

    top = Path(repo.top) if repo.top else None
    cfg = config_mod.discover(top) if top else config_mod.Config()
    baseline = top / BASELINE_FILE if top and (top / BASELINE_FILE).is_file() else None
    return HookScanner(cfg, baseline), baseline


def staged(
    repo: gitio.Repo,
    scanner: HookScanner,
    diff: subprocess.Popen[bytes] | None = None,
    cat: subprocess.Popen[bytes] | None = None,
) -> Verdicts:
    """Scan what ``git commit`` would record now. ``diff`` and ``cat``: the processes
    of ``start_staged_reads()``, when the caller started them early; finished here
    either way."""
    v = Verdicts()
    if diff is None or cat is None:
        from sentinel.hooks import start_staged_reads

        diff, cat = start_staged_reads(repo.top)
    res = diff
    out, err = res.communicate()
    if res.returncode != 0:
        raise CorruptRepository(f"git cannot list staged changes: {gitio.first_error_line(err)}")
    entries: list[tuple[bytes, bytes]] = []  # (blob sha, path)
    raw_end = out.find(b"\ndiff --git ")  # the raw list only: the patch can be huge
    for line in out[: raw_end if raw_end >= 0 else len(out)].split(b"\n"):
        if not line.startswith(b":"):
            if line.startswith(b"diff --git "):
                break  # the raw list is over; the patch follows
            continue
        meta, _, names = line.partition(b"\t")
        parts = meta[1:].split(b" ")
        if len(parts) < 5 or parts[4][:1] not in b"ACMRT":
            continue  # a deletion, or a line this parser does not know
        paths = names.split(b"\t")
        path = gitio.unquote_path(paths[-1])  # a rename or copy names the new path last
        if parts[1] in SKIP_MODES:
            v.skipped[SKIP_MODES[parts[1]]] += 1
            continue
        entries.append((parts[3], path))
    if not entries:
        if cat is not None:
            cat.communicate()
        return v
    added = gitio.added_lines(out)
    blobs = gitio.read_blobs(repo.git_dir, [sha for sha, _ in entries], scanner.max_size, proc=cat)
    big: list[tuple[bytes, bytes]] = []
    for (sha, path), blob in zip(entries, blobs, strict=True):
        if blob.data is None:
            if blob.skipped == "too_large":
                big.append((sha, path))
            else:
                v.skipped[blob.skipped] += 1
            continue
        v.scanned += 1
        _judge(v, added.get(path), scanner.scan(blob.data, _origin(path)))
    # a file over max_file_size: its first and last parts, never all of it in memory
    edges = gitio.read_edges(repo.git_dir, [sha for sha, _ in big], scanner.max_size // 2)
    for (_, path), edge in zip(big, edges, strict=True):
        if edge is None:
            v.skipped["missing_object"] += 1
            continue
        v.scanned += 1
        origin = _origin(path)
        found = scanner.scan(edge.head, origin)
        found += scanner.scan(edge.tail, origin, edge.tail_line, edge.tail_offset)
        _judge(v, added.get(path), found)
        v.oversize.append(Oversize(origin.path, edge.size, len(edge.head) + len(edge.tail)))
    v.skipped.update(scanner.collector.suppressed)
    v.blocking, v.unsure = split_unsure(v.blocking, scanner.block_confidence)
    return v


def _origin(path: bytes) -> Origin:
    return Origin(source="git", path=display_path(path), object_type="blob")


def _judge(v: Verdicts, lines: gitio.Added | None, found: list[Occurrence]) -> None:
    """A secret on a line the commit adds blocks it; one elsewhere in the file warns."""
    for occ in found:
        if lines is not None and lines.touches(occ.line, occ.end_line):
            v.blocking.append(occ)
        else:
            v.warnings.append(occ)


def message_text(data: bytes, comment_char: bytes) -> bytes:
    """The part of a commit message file that can be published: everything above the
    ``git commit -v`` scissors line (below it is the staged diff, the pre-commit hook's
    business). Comment lines are scanned too: with ``-m`` or ``-F`` git keeps them."""
    out = []
    for line in data.split(b"\n"):
        if line.startswith(comment_char + b" -") and b" >8 " in line:
            break
        out.append(line)
    return b"\n".join(out)


def _comment_char(repo: gitio.Repo) -> bytes:
    res = gitio.git(repo.git_dir, "config", "--get", "core.commentChar")
    value = res.stdout.strip()
    return value[:1] if value and value != b"auto" else b"#"


# -- reporting ----------------------------------------------------------------------------------


def _line(occ: Occurrence, where: str) -> str:
    """One finding, escaped for the terminal: the path, the preview and (custom rules')
    descriptions come from someone's tree."""
    from sentinel.display import for_terminal

    return (
        f"  {for_terminal(where)}  {for_terminal(occ.rule_id)}  {for_terminal(occ.redacted)}\n"
        f"      {for_terminal(occ.description)}"
    )


def _ways_out(out: TextIO, baseline: Path | None, occs: list[Occurrence], what: str) -> None:
    from sentinel.display import for_terminal
    from sentinel.hooks.command import sentinel_command

    seen: dict[str, Occurrence] = {}
    for o in occs:
        seen.setdefault(o.baseline_fingerprint or o.fingerprint, o)
    cmd = sentinel_command()  # the baseline goes to the work tree's top, from any directory
    adds = "".join(
        f"       {cmd} baseline add {fp}  # {for_terminal(o.rule_id)} {for_terminal(o.redacted)}\n"
        for fp, o in seen.items()
    )
    out.write(
        "\nThree ways out:\n"
        f"  1. Remove it from {for_terminal(what)},\n"
        "     and rotate it if it was ever pushed, shared or pasted anywhere.\n"
        "  2. Not a secret (a test value, a false positive)? Add a 'sentinel:allow'\n"
        "     comment on that line.\n"
        "  3. A known secret you accept? Add it to the baseline (the file holds keyed\n"
        f"     fingerprints, never the value; commit {baseline.name if baseline else BASELINE_FILE} too):\n"
        + adds
    )


def report_oversize(v: Verdicts, out: TextIO, max_size: int, mode: str) -> None:
    """Loud, whichever the mode: a file the hook could not read whole is never quiet."""
    if not v.oversize:
        return
    if mode == "block":
        n = len(v.oversize)
        out.write(
            f"sentinel: commit blocked: {n} staged file{'s' if n > 1 else ''} over max_file_size "
            "(sentinel.oversize = block):\n"
        )
        for o in v.oversize:
            out.write(f"  {describe_oversize(o, max_size)}\n")
        out.write(
            "  Keep files this large out of the repository (git LFS, an artifact store), or\n"
            "  raise max_file_size in .sentinel.toml.\n\n"
        )
        return
    for o in v.oversize:
        out.write(f"sentinel: WARNING: {describe_oversize(o, max_size)}\n")
    out.write(
        "  (not blocking; 'git config sentinel.oversize block' or oversize = \"block\" in\n"
        "  .sentinel.toml refuses such files instead)\n\n"
    )


def report_staged(v: Verdicts, out: TextIO, baseline: Path | None) -> None:
    if v.blocking:
        n = len(v.blocking)
        out.write(
            f"sentinel: commit blocked: {n} secret{'s' if n > 1 else ''} in the lines this commit adds\n\n"
        )
        for occ in v.blocking:
            out.write(_line(occ, f"{occ.origin.path}:{occ.line}") + "\n")
    if v.unsure:
        out.write(
            ("\n" if v.blocking else "")
            + f"sentinel: warning: {len(v.unsure)} possible secret(s) in the lines this commit adds "
            "(low confidence, not blocking; check them before you push):\n"
        )
        for occ in v.unsure:
            out.write(_line(occ, f"{occ.origin.path}:{occ.line}") + "\n")
    if v.warnings:
        out.write(
            ("\n" if v.blocking or v.unsure else "")
            + f"sentinel: warning: {len(v.warnings)} secret(s) already in the staged files, "
            "outside the lines this commit changes (not blocking; rotate them and clean the history):\n"
        )
        for occ in v.warnings:
            out.write(_line(occ, f"{occ.origin.path}:{occ.line}") + "\n")
    if v.blocking:
        _ways_out(out, baseline, v.blocking, "the file and 'git add' it again")


def pre_commit(
    out: TextIO = sys.stderr,
    diff: subprocess.Popen[bytes] | None = None,
    cat: subprocess.Popen[bytes] | None = None,
) -> int:
    try:
        repo = gitio.locate()
    except SourceError:
        for p in (diff, cat):
            if p is not None:
                p.kill()
                p.communicate()
        raise
    if repo.top is None:
        for p in (diff, cat):
            if p is not None:
                p.kill()
                p.communicate()
        return 0  # a bare repository has no index to commit from
    scanner, baseline = _project(repo)
    v = staged(repo, scanner, diff, cat)
    mode = scanner.oversize
    if v.oversize:  # git config, read only when it matters (a hook pays for every process)
        setting = gitio.config_values(repo.git_dir, ["sentinel.oversize"])
        mode = oversize_mode(scanner.oversize, setting.get("sentinel.oversize"))
    report_oversize(v, out, scanner.max_size, mode)
    report_staged(v, out, baseline)
    return 1 if v.blocking or (v.oversize and mode == "block") else 0


def commit_msg(message_file: str, out: TextIO = sys.stderr) -> int:
    from sentinel.display import for_terminal
    from sentinel.hooks.filereads import read_bounded
    from sentinel.sources.safeio import NotRegularFile

    repo = gitio.locate()
    path = Path(message_file)
    if not path.is_absolute() and repo.top and not path.exists():
        path = Path(repo.top) / path
    scanner, baseline = _project(repo)
    try:
        # never blocks on a FIFO; a file over max_file_size is read by its two ends
        got = read_bounded(str(path), scanner.max_size, follow_symlinks=True)
    except OSError as exc:
        why = f"{exc.kind}, not a regular file" if isinstance(exc, NotRegularFile) else exc.strerror
        raise SourceError(f"cannot read the commit message {message_file}: {why}") from None
    origin = Origin(source="git", path="(commit message)", object_type="commit")
    comment = _comment_char(repo)
    text = message_text(got.data, comment)
    found = scanner.scan(text, origin)
    if not got.whole:
        if len(text) == len(got.data):  # no scissors line in the head: the tail is message
            found += scanner.scan(
                message_text(got.tail, comment), origin, got.tail_line, got.tail_offset
            )
        shown = for_terminal(message_file)
        out.write(
            f"sentinel: WARNING: the commit message {shown} is {got.size} bytes, over "
            f"max_file_size ({scanner.max_size}): only its first and last "
            f"{scanner.max_size // 2} bytes were scanned, {got.size - got.scanned} bytes in "
            "the middle were NOT\n"
        )
    found, unsure = split_unsure(found, scanner.block_confidence)
    for occ in unsure:
        out.write(
            "sentinel: warning: possible secret in the commit message (low confidence, not "
            "blocking):\n" + _line(occ, f"message line {occ.line}") + "\n"
        )
    if not found:
        return 0
    out.write(f"sentinel: commit blocked: {len(found)} secret(s) in the commit message\n\n")
    for occ in found:
        out.write(_line(occ, f"message line {occ.line}") + "\n")
    saved = os.path.relpath(path, repo.top) if repo.top else str(path)
    _ways_out(out, baseline, found, f"the message (saved in {saved}: git commit -e -F {saved})")
    return 1
