"""Hostile and awkward input through the real CLI: huge files, huge lines, broken
encodings, binaries, ignore files, symlinks, special files and paths that are not there.
Nothing here may crash, hang, blow up memory, or skip something without counting it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token

MB = 1024 * 1024


def scan_path(*args: str, expect: int | None = None) -> dict[str, Any]:
    """``sentinel scan path ARGS --format json --show-secrets``; the parsed report."""
    res = run_cli("scan", "path", *args, "--format", "json", "--show-secrets")
    assert res.returncode in (0, 1), res.stderr
    assert "Traceback" not in res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    assert res.returncode == (1 if doc["findings"] else 0)
    if expect is not None:
        assert res.returncode == expect, (res.stdout, res.stderr)
    return doc


def find(doc: dict[str, Any], secret: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f.get("secret") == secret]


def skipped(doc: dict[str, Any], reason: str) -> int:
    return int(doc["stats"]["skipped"].get(reason, 0))


def assert_one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sentinel: error:"), err
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in err, err
    assert res.stdout.strip() == ""


def run_measured(*args: str, timeout: float = 120) -> tuple[int, str, str, int]:
    """Run the CLI; (exit code, stdout, stderr, peak RSS in bytes of it and its children).

    The CLI is started by a small probe process, which reports its children's peak.
    Measuring a child of this test process directly would report this process's own
    peak instead: Linux carries the parent's high-water RSS into a vfork()ed child
    across exec, so late in a long test session the number was pytest's, not the CLI's.
    """
    probe = (
        "import json, resource, subprocess, sys\n"
        "try:\n"
        "    p = subprocess.run([sys.executable, '-m', 'sentinel.cli.main', "
        "*json.loads(sys.argv[1])], capture_output=True, text=True, timeout=float(sys.argv[2]))\n"
        "    rc, out, err = p.returncode, p.stdout, p.stderr\n"
        "except subprocess.TimeoutExpired:\n"
        "    rc, out, err = -9, '', 'timed out'\n"
        "print(json.dumps([rc, out, err, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    assert res.returncode == 0, res.stderr
    rc, out, err, maxrss = json.loads(res.stdout)
    return rc, out, err, maxrss * (1 if sys.platform == "darwin" else 1024)


# -- size limits -------------------------------------------------------------------------------


def test_huge_file_is_skipped_and_counted(tmp_path: Path) -> None:
    big_secret, small_secret = token("ghp", 1), token("ghp", 2)
    big = tmp_path / "dump.sql"
    with open(big, "wb") as fh:
        fh.write(f"-- TOKEN={big_secret}\n".encode())
        fh.truncate(200 * MB)  # sparse: costs no disk
    assert big.stat().st_size == 200 * MB
    (tmp_path / "small.env").write_text(f"TOKEN={small_secret}\n")

    doc = scan_path(str(tmp_path), expect=1)
    assert find(doc, small_secret)
    assert not find(doc, big_secret)
    assert skipped(doc, "too_large") == 1
    assert doc["stats"]["files_scanned"] == 1
    assert doc["stats"]["bytes_scanned"] < MB


def test_max_file_size_option_skips_and_counts(tmp_path: Path) -> None:
    over, under = token("ghp", 3), token("ghp", 4)
    (tmp_path / "over.env").write_text("# padding\n" * 200 + f"TOKEN={over}\n")  # ~2 KB
    (tmp_path / "under.env").write_text(f"TOKEN={under}\n")
    assert (tmp_path / "over.env").stat().st_size > 1024

    doc = scan_path(str(tmp_path), "--max-file-size", "1KB", expect=1)
    assert find(doc, under)
    assert not find(doc, over)
    assert skipped(doc, "too_large") == 1

    doc = scan_path(str(tmp_path), expect=1)  # the default limit lets both through
    assert find(doc, over) and find(doc, under)
    assert skipped(doc, "too_large") == 0


@pytest.mark.integration
def test_max_file_size_applies_to_git_blobs(tmp_path: Path) -> None:
    over, under = token("ghp", 5), token("ghp", 6)
    repo = GitRepo(tmp_path / "repo")
    repo.commit("add", {"big.env": "# pad\n" * 400 + f"T={over}\n", "small.env": f"T={under}\n"})
    repo.commit("touch", {"other.txt": "x\n"})  # the big blob is still one blob

    res = run_cli(
        "scan",
        "git",
        str(repo.path),
        "--max-file-size",
        "1KB",
        "--format",
        "json",
        "--show-secrets",
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert find(doc, under)
    assert not find(doc, over)
    assert skipped(doc, "too_large") == 1


def test_ten_megabyte_single_line_in_bounded_memory(tmp_path: Path) -> None:
    secret = token("ghp", 7)
    prefix = ("lorem ipsum dolor sit amet " * 400_000)[: 10_000_000 - 100] + " token="
    path = tmp_path / "minified.js"
    path.write_text(prefix + secret + " tail\n")
    assert 9_900_000 < path.stat().st_size < 10 * MB  # under the default 10MB limit

    rc, out, err, peak = run_measured(
        "scan", "path", str(path), "--format", "json", "--show-secrets", timeout=120
    )
    assert rc == 1, err
    [f] = find(json.loads(out), secret)
    assert f["line"] == 1
    assert f["column"] == len(prefix) + 1
    assert peak < 400 * MB, f"peak RSS {peak / MB:.0f} MB"


# -- encodings and binaries --------------------------------------------------------------------


def test_invalid_utf8_around_a_secret(tmp_path: Path) -> None:
    secret = token("ghp", 8)
    junk = b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc"
    (tmp_path / "latin1.cfg").write_bytes(
        junk + b"\n" + b"caf\xe9 TOKEN=" + secret.encode() + b" \xff\xc0\n" + junk + b"\n"
    )
    doc = scan_path(str(tmp_path), expect=1)
    [f] = find(doc, secret)
    assert f["line"] == 2
    assert doc["stats"]["files_scanned"] == 1


def test_binaries_are_scanned_for_provider_tokens_and_counted(tmp_path: Path) -> None:
    hidden, late_nul = token("ghp", 9), token("ghp", 10)
    with open(tmp_path / "zeros.bin", "wb") as fh:
        fh.truncate(MB)  # NUL-filled
    (tmp_path / "image.png").write_bytes(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"x" * 100 + b" TOKEN=" + hidden.encode() + b"\n"
    )
    # git's heuristic only looks at the first 8000 bytes: a later NUL leaves it text
    (tmp_path / "text-with-late-nul.txt").write_bytes(
        b"a\n" * 4500 + b"\0\n" + f"TOKEN={late_nul}\n".encode()
    )

    doc = scan_path(str(tmp_path), expect=1)
    [f] = find(doc, hidden)  # a binary's printable runs, strict rules only
    head = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"x" * 100 + b" TOKEN="
    assert f["offset"] == len(head)
    assert f["decoded"] == "binary-strings"
    assert skipped(doc, "binary") == 0
    assert doc["stats"]["scanned_as"] == {"binary-strings": 2, "text": 1}
    [f] = find(doc, late_nul)
    assert f["line"] == 4502
    assert doc["stats"]["files_scanned"] == 3


def test_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    secret = token("ghp", 11)
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.env"), "wb") as fh:
        fh.write(f"T={secret}\n".encode())
    res = subprocess.run(
        [sys.executable, "-m", "sentinel.cli.main", "scan", "path", str(tmp_path)],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "TMPDIR": str(tmp_path)},  # crash log
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout.decode("utf-8"))
    assert len(doc["findings"]) == 1


# -- ignore files ------------------------------------------------------------------------------


def test_gitignore_is_honoured_and_no_ignore_overrides_it(tmp_path: Path) -> None:
    ignored, tracked = token("ghp", 20), token("ghp", 21)
    (tmp_path / ".gitignore").write_text("# local secrets\n*.env\nbuild/\n")
    (tmp_path / "local.env").write_text(f"T={ignored}\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.txt").write_text(f"T={ignored}\n")
    (tmp_path / "app.py").write_text(f'T = "{tracked}"\n')

    doc = scan_path(str(tmp_path), expect=1)
    assert find(doc, tracked)
    assert not find(doc, ignored)

    doc = scan_path(str(tmp_path), "--no-ignore", expect=1)
    assert {f["path"].rsplit("/", 1)[-1] for f in find(doc, ignored)} == {"local.env", "out.txt"}


def test_nested_gitignore_negation(tmp_path: Path) -> None:
    dropped, kept, elsewhere = token("ghp", 22), token("ghp", 23), token("ghp", 24)
    (tmp_path / ".gitignore").write_text("*.env\n")
    sub = tmp_path / "config"
    sub.mkdir()
    (sub / ".gitignore").write_text("!keep.env\n")
    (sub / "keep.env").write_text(f"T={kept}\n")
    (sub / "drop.env").write_text(f"T={dropped}\n")
    (tmp_path / "keep.env").write_text(f"T={elsewhere}\n")  # the negation is config/ only

    doc = scan_path(str(tmp_path), expect=1)
    [f] = find(doc, kept)
    assert f["path"].endswith("config/keep.env")
    assert not find(doc, dropped)
    assert not find(doc, elsewhere)


# -- links, special files, permissions, missing paths -----------------------------------------


def test_symlinks_inside_a_walk_are_not_followed(tmp_path: Path) -> None:
    secret = token("ghp", 30)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text(f"T={secret}\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "README.md").write_text("hello\n")
    (root / "linked.env").symlink_to(outside / "secret.env")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "dangling.env").symlink_to(tmp_path / "nowhere")

    doc = scan_path(str(root), expect=0)
    assert doc["findings"] == []
    assert skipped(doc, "symlink") == 3
    assert doc["stats"]["files_scanned"] == 1


def test_a_symlinked_directory_named_on_the_command_line_is_walked(tmp_path: Path) -> None:
    secret = token("ghp", 31)
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.env").write_text(f"T={secret}\n")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)

    doc = scan_path(str(link), expect=1)
    [f] = find(doc, secret)
    assert f["path"] == f"{link}/a.env"


def test_fifo_is_skipped_without_hanging(tmp_path: Path) -> None:
    secret = token("ghp", 32)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.env").write_text(f"T={secret}\n")
    res = subprocess.run(
        [sys.executable, "-m", "sentinel.cli.main", "scan", "path", str(tmp_path), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["findings"]) == 1
    assert skipped(doc, "not_regular") == 1


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not stop root from reading the file",
)
def test_unreadable_file_is_counted(tmp_path: Path) -> None:
    secret = token("ghp", 33)
    locked = tmp_path / "locked.env"
    locked.write_text(f"T={secret}\n")
    locked.chmod(0)
    try:
        doc = scan_path(str(tmp_path), expect=0)
    finally:
        locked.chmod(0o600)
    assert doc["findings"] == []
    assert skipped(doc, "unreadable") == 1


def test_nonexistent_path_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "place"
    res = run_cli("scan", "path", str(missing), "--format", "json")
    assert_one_line_error(res, str(missing))
