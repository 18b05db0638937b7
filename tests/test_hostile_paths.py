"""Scanned trees and arguments that someone hostile (or careless) made: FIFOs where
files should be, directories without permissions, a thousand levels of nesting,
symlink loops, oversize ignore and config files, and what the report file's mode is.
Each runs the real CLI in a subprocess with a timeout, so a hang fails instead of
blocking the suite; none may end without a report or with more than one line of error.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, token

TIMEOUT = 60


def cli(
    *args: str, cwd: Path | None = None, input: bytes | None = None, as_user: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess that cannot hang the suite. ``as_user``: run it without
    root's power to read anything (a user namespace maps us to uid 1000 with no
    capabilities in the real one), so permission bits apply as to an ordinary user."""
    cmd = [sys.executable, "-m", "sentinel.cli.main", *args]
    if as_user:
        cmd = ["unshare", "--user", "--map-user=1000", *cmd]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, input=input, timeout=TIMEOUT)
    return subprocess.CompletedProcess(
        res.args, res.returncode, res.stdout.decode(), res.stderr.decode()
    )


def report(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sentinel: error:"), err
    for n in needles:
        assert n in err, err
    return err


def secrets(doc: dict[str, Any]) -> set[str]:
    return {f["secret"] for f in doc["findings"]}


def _can_drop_root() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        res = subprocess.run(
            ["unshare", "--user", "--map-user=1000", "true"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


needs_permissions = pytest.mark.skipif(
    os.geteuid() == 0 and not _can_drop_root(),
    reason="running as root and unshare --user is not available: permission bits do not apply",
)


def as_user() -> bool:
    """Whether to drop root for a permission test (an ordinary user needs nothing)."""
    return os.geteuid() == 0


# -- FIFOs and special files ---------------------------------------------------------------------


def test_a_file_swapped_for_a_fifo_after_the_walk_is_refused_not_waited_on(tmp_path: Path) -> None:
    # the walk saw a regular file; by the time it is read it is a FIFO with no writer
    code = f"""
import os, sys
from sentinel.sources.files import FileItem, WalkStats, read_file
p = {str(tmp_path / "swapped.env")!r}
os.mkfifo(p)
stats = WalkStats()
print(read_file(FileItem(p, "swapped.env", "swapped.env", 40), stats), dict(stats.skipped))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "None {'unreadable': 1}"


def test_fifo_gitignore_and_info_exclude_do_not_hang(tmp_path: Path) -> None:
    secret = token("ghp", 1201)
    (tmp_path / "a.env").write_text(f"T={secret}\n")
    os.mkfifo(tmp_path / ".gitignore")
    (tmp_path / ".git" / "info").mkdir(parents=True)
    os.mkfifo(tmp_path / ".git" / "info" / "exclude")
    doc = report(cli("scan", "path", str(tmp_path), "-f", "json", "--show-secrets"))
    assert secrets(doc) == {secret}
    assert doc["stats"]["skipped"]["ignore_file_unusable"] == 2


def test_oversize_gitignore_is_not_honoured_and_is_counted(tmp_path: Path) -> None:
    secret = token("ghp", 1202)
    (tmp_path / "a.env").write_text(f"T={secret}\n")
    # two megabytes of patterns ending with one that would hide the secret
    (tmp_path / ".gitignore").write_text("#" * (2 * 1024 * 1024) + "\na.env\n")
    doc = report(cli("scan", "path", str(tmp_path), "-f", "json", "--show-secrets"))
    assert secrets(doc) == {secret}
    assert doc["stats"]["skipped"]["ignore_file_unusable"] == 1


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_hostile_sentinel_toml_in_the_scanned_tree_is_one_line(tmp_path: Path, kind: str) -> None:
    (tmp_path / "a.env").write_text(f"T={token('ghp', 1203)}\n")
    conf = tmp_path / ".sentinel.toml"
    if kind == "fifo":
        os.mkfifo(conf)
    else:
        conf.write_text("# padding\n" * 300_000)
    res = cli("scan", "path", str(tmp_path), "-f", "json")
    one_line_error(res, ".sentinel.toml", "a FIFO" if kind == "fifo" else "larger than")


@pytest.mark.parametrize("option", ["--baseline", "--rules", "--config"])
def test_a_fifo_given_as_a_settings_file_is_one_line(tmp_path: Path, option: str) -> None:
    (tmp_path / "a.env").write_text(f"T={token('ghp', 1204)}\n")
    fifo = tmp_path / "settings"
    os.mkfifo(fifo)
    res = cli("scan", "path", str(tmp_path / "a.env"), option, str(fifo), "-f", "json")
    one_line_error(res, "a FIFO")


# -- crashes on trees ----------------------------------------------------------------------------


def _write_deep(top: Path, depth: int, content: str, name: str = "d") -> None:
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        leaf = os.open("leaf.env", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, content.encode())
        os.close(leaf)
    finally:
        os.close(fd)


def _remove_deep(top: Path, name: str) -> None:
    """Remove a ``_write_deep`` tree one level at a time: shutil.rmtree (pytest's clean-up
    of old temporary directories) recurses and fails on it."""
    chain = top / name
    while chain.is_dir():
        inner = chain / name
        if inner.is_dir():
            inner.rename(top / f"{name}.next")
        for entry in chain.iterdir():
            entry.unlink()
        chain.rmdir()
        if (top / f"{name}.next").is_dir():
            (top / f"{name}.next").rename(chain)


@pytest.fixture(autouse=True)
def _flatten_deep_trees(tmp_path: Path) -> Iterator[None]:
    yield
    for name in ("d", "x" * 4):
        _remove_deep(tmp_path, name)


def test_a_thousand_nested_directories_are_walked(tmp_path: Path) -> None:
    deep, shallow = token("ghp", 1205), token("ghp", 1206)
    _write_deep(tmp_path, 1200, f"T={deep}\n")
    (tmp_path / "top.env").write_text(f"T={shallow}\n")
    doc = report(cli("scan", "path", str(tmp_path), "-f", "json", "--show-secrets"))
    assert secrets(doc) == {deep, shallow}


def test_paths_longer_than_path_max_are_counted_not_fatal(tmp_path: Path) -> None:
    shallow = token("ghp", 1207)
    (tmp_path / "top.env").write_text(f"T={shallow}\n")
    _write_deep(tmp_path, 1100, f"T={token('ghp', 1208)}\n", name="x" * 4)  # > 4096 bytes
    doc = report(cli("scan", "path", str(tmp_path), "-f", "json", "--show-secrets"))
    assert shallow in secrets(doc)
    assert doc["stats"]["skipped"]["unreadable"] >= 1


def test_k8s_manifest_tree_a_thousand_deep(tmp_path: Path) -> None:
    _write_deep(tmp_path, 1100, "")
    (tmp_path / "cm.yaml").write_text("kind: ConfigMap\nmetadata: {name: a}\ndata: {x: y}\n")
    doc = report(cli("scan", "k8s", str(tmp_path), "-f", "json"))
    assert doc["stats"]["objects_scanned"] == 1


def test_k8s_fifo_in_a_manifest_tree_and_as_an_argument(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("kind: ConfigMap\nmetadata: {name: a}\ndata: {x: y}\n")
    os.mkfifo(tmp_path / "pipe.yaml")
    doc = report(cli("scan", "k8s", str(tmp_path), "-f", "json"))
    assert doc["stats"]["objects_scanned"] == 1
    res = cli("scan", "k8s", str(tmp_path / "pipe.yaml"), "-f", "json")
    assert res.returncode == 2
    assert "a FIFO" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_k8s_stdin_is_capped(tmp_path: Path) -> None:
    body = b"kind: ConfigMap\nmetadata: {name: a}\ndata: {x: y}\n" + b"#" * (65 * 1024 * 1024)
    res = cli("scan", "k8s", "-", "-f", "json", input=body)
    assert res.returncode == 2, res.stderr
    assert "stdin: more than 64 MiB" in res.stderr
    report(res)


@needs_permissions
def test_directory_without_execute_permission_is_counted(tmp_path: Path) -> None:
    secret = token("ghp", 1209)
    (tmp_path / "ok.env").write_text(f"T={secret}\n")
    locked = tmp_path / "locked"
    (locked / ".git").mkdir(parents=True)
    (locked / "hidden.env").write_text("x\n")
    locked.chmod(0o600)  # listable, not searchable: stat of locked/.git fails
    try:
        res = cli("scan", "path", str(tmp_path), "-f", "json", "--show-secrets", as_user=as_user())
    finally:
        locked.chmod(0o755)
    doc = report(res)
    assert secrets(doc) == {secret}
    assert doc["stats"]["skipped"]["unreadable"] >= 1


# -- arguments -----------------------------------------------------------------------------------


def test_a_file_symlink_given_as_an_argument_is_scanned(tmp_path: Path) -> None:
    secret = token("ghp", 1210)
    (tmp_path / "real.env").write_text(f"T={secret}\n")
    (tmp_path / "link.env").symlink_to(tmp_path / "real.env")
    res = cli("scan", "path", str(tmp_path / "link.env"), "-f", "json", "--show-secrets")
    assert res.returncode == 1, res.stderr
    assert secrets(report(res)) == {secret}


def test_a_symlink_loop_argument_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    one_line_error(cli("scan", "path", str(tmp_path / "a"), "-f", "json"), "symlink loop")


def test_a_bad_argument_among_good_ones_still_writes_the_report(tmp_path: Path) -> None:
    secret = token("ghp", 1211)
    (tmp_path / "ok.env").write_text(f"T={secret}\n")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    res = cli(
        "scan", "path", str(tmp_path / "ok.env"), str(tmp_path / "loop"), "-f", "json",
        "--show-secrets",
    )  # fmt: skip
    assert res.returncode == 2
    assert secrets(report(res)) == {secret}
    assert "loop: a symlink loop" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@needs_permissions
def test_an_unreadable_file_argument_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "locked.env"
    f.write_text(f"T={token('ghp', 1212)}\n")
    f.chmod(0)
    try:
        res = cli("scan", "path", str(f), "-f", "json", as_user=as_user())
    finally:
        f.chmod(0o600)
    one_line_error(res, "locked.env", "permission denied")
    assert "Usage:" not in res.stderr


def test_version() -> None:
    res = cli("--version")
    assert res.returncode == 0, res.stderr
    from importlib.metadata import version

    assert res.stdout.strip() == f"sentinel {version('sentinel-secrets')}"


# -- the report file -----------------------------------------------------------------------------


@pytest.mark.parametrize("show", [True, False])
def test_report_file_is_private(tmp_path: Path, show: bool) -> None:
    secret = token("ghp", 1213)
    (tmp_path / "a.env").write_text(f"T={secret}\n")
    out = tmp_path / "report.json"
    out.write_text("old\n")
    out.chmod(0o644)  # an existing looser file is replaced, not reused
    args = ["scan", "path", str(tmp_path / "a.env"), "-f", "json", "-o", str(out)]
    old_umask = os.umask(0o022)
    try:
        res = run_cli(*args, *(["--show-secrets"] if show else []))
    finally:
        os.umask(old_umask)
    assert res.returncode == 1, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text())
    assert (doc["findings"][0].get("secret") == secret) is show
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []
