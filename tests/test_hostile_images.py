"""Images that someone hostile (or careless) made: FIFOs inside an OCI layout, archives
and layers of a million entries, a gzipped archive that inflates without end, JSON nested
a hundred thousand deep or of the wrong shape, oversize documents from a file or a
registry. Each runs the real CLI in a subprocess with a timeout, so a hang fails instead
of blocking the suite; each ends with one line of error or a report that counts what it
skipped, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import imagebuild as ib
from tests.conftest import token

pytestmark = pytest.mark.integration

TIMEOUT = 60


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sentinel.cli.main", "scan", "image", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)


def report(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sentinel: error:"), err
    assert "\\n" not in err, err  # not several lines folded into one
    for n in needles:
        assert n in err, err
    return err


def leak_image(seed: int, **kwargs: Any) -> ib.Image:
    layer = ib.Layer([ib.Entry("app/.env", f"GITHUB_TOKEN={token('ghp', seed)}\n".encode())])
    return ib.build_image([layer], **kwargs)


# -- FIFOs in an OCI layout ---------------------------------------------------------------------


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_a_fifo_blob_in_a_layout_is_refused_not_waited_on(tmp_path: Path, which: str) -> None:
    path = tmp_path / "layout"
    image = leak_image(400)
    ib.write_oci_layout(path, image)
    digest = {
        "layer": image.layer_digests[0],
        "config": image.config_digest,
        "manifest": image.manifest_digest,
    }[which]
    blob = path / "blobs" / "sha256" / digest.split(":")[1]
    blob.unlink()
    os.mkfifo(blob)  # before: open() waited for a writer, for ever
    one_line_error(cli(str(path), "--no-cache", "-f", "json"), "a FIFO, not a file")


def test_a_fifo_index_json_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "layout"
    ib.write_oci_layout(path, leak_image(401))
    (path / "index.json").unlink()
    os.mkfifo(path / "index.json")
    one_line_error(cli(str(path), "-f", "json"), "index.json")


# -- a million entries --------------------------------------------------------------------------

MANY = 200_000


@pytest.fixture(scope="module")
def warm_rules(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One scan first, so that the measured ones load the compiled rule database from
    the session's cache instead of compiling it (which alone peaks near 100 MiB)."""
    path = tmp_path_factory.mktemp("warm") / "layout"
    ib.write_oci_layout(path, leak_image(409))
    report(cli(str(path), "--no-cache", "-f", "json"))


def run_measured(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """The CLI in a child process, and the child's peak resident memory in KiB."""
    probe = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'sentinel.cli.main', 'scan', 'image', "
        "*json.loads(sys.argv[1])], capture_output=True, text=True)\n"
        "print(json.dumps([p.returncode, p.stdout, p.stderr, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    rc, out, err, maxrss = json.loads(res.stdout)
    return subprocess.CompletedProcess(args, rc, out, err), maxrss


# the CLI alone (rules, the compiled database loaded from the cache) peaks near 55 MiB;
# tarfile's list of 200,000 headers added ~130 MiB to that before
MEMORY_BOUND_KIB = 120 * 1024


@pytest.mark.usefixtures("warm_rules")
def test_a_layer_of_200k_entries_is_walked_in_bounded_memory(tmp_path: Path) -> None:
    leak = f"GITHUB_TOKEN={token('ghp', 410)}\n".encode()
    tar = ib.many_entries_tar(MANY, tail=[ib.Entry("app/.env", leak)])
    blob = ib.compress(tar, "gzip")
    image = ib.build_image_from_blobs([blob], diff_ids=[ib.sha256_digest(tar)])
    ib.write_oci_layout(tmp_path / "layout", image)
    del tar, blob
    res, maxrss = run_measured(str(tmp_path / "layout"), "--no-cache", "-j", "1", "-f", "json")
    doc = report(res)
    assert maxrss < MEMORY_BOUND_KIB, f"peak {maxrss // 1024} MiB"
    assert res.returncode == 1
    assert [f["path"] for f in doc["findings"]] == ["app/.env"]  # after 200,000 entries
    assert doc["stats"]["files_scanned"] == MANY + 1


def _archive_with_junk(tmp_path: Path, seed: int, junk_first: bool) -> Path:
    small = tmp_path / "small.tar"
    ib.write_docker_archive(small, leak_image(seed), flavour="oci", layers="as-is")
    entries = ib.archive_entries(small)
    if junk_first:
        tar = ib.many_entries_tar(MANY, prefix="junk/", tail=entries)
    else:
        tar = ib.many_entries_tar(MANY, prefix="junk/", head=entries)
    path = tmp_path / "image.tar.gz"
    path.write_bytes(ib.compress(tar, "gzip"))
    return path


@pytest.mark.usefixtures("warm_rules")
def test_an_archive_of_200k_entries_is_indexed_in_bounded_memory(tmp_path: Path) -> None:
    path = _archive_with_junk(tmp_path, 411, junk_first=False)
    res, maxrss = run_measured(str(path), "--no-cache", "-j", "1", "-f", "json")
    doc = report(res)
    assert maxrss < MEMORY_BOUND_KIB, f"peak {maxrss // 1024} MiB"
    assert res.returncode == 1
    assert [f["path"] for f in doc["findings"]] == ["app/.env"]
    # the first 100,000 names are kept, the rest counted
    assert doc["stats"]["skipped"]["archive_entry_not_indexed"] > MANY - 100_000


def test_an_archive_whose_files_come_after_100k_others_is_one_line(tmp_path: Path) -> None:
    path = _archive_with_junk(tmp_path, 412, junk_first=True)
    one_line_error(cli(str(path), "--no-cache", "-f", "json"), "not indexed")


# -- a gzipped archive that inflates without end ------------------------------------------------


def test_a_gzipped_archive_bomb_stops_at_the_ratio_limit(tmp_path: Path) -> None:
    path = tmp_path / "image.tar.gz"
    path.write_bytes(ib.bomb_layer(ib.GIB))  # ~1 MB that inflates to 1 GiB: past 100:1
    err = one_line_error(cli(str(path), "-f", "json"), "decompression bomb", "more than 100:1")
    assert "decompression stopped at 25" in err  # at the 256 MiB floor, not at 1 GiB


def test_a_gzipped_archive_is_held_to_max_layer_size(tmp_path: Path) -> None:
    path = tmp_path / "image.tar.gz"
    path.write_bytes(ib.bomb_layer(100 * 1024**2))
    res = cli(str(path), "--max-layer-size", "32MB", "-f", "json")
    one_line_error(res, "over the 32 MiB limit for an image archive (--max-layer-size)")


# -- what a person reads ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\x89PNG not a tar at all " * 300])
def test_an_empty_or_garbage_archive_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "image.tar"
    path.write_bytes(content)
    err = one_line_error(cli(str(path), "-f", "json"), "not an image archive")
    assert "docker save -o" in err  # what to give instead
    assert "method gz" not in err  # not tarfile's list of every decompressor it tried


def test_a_cut_gzip_archive_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "image.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08")
    one_line_error(cli(str(path), "-f", "json"), "truncated")


def test_an_oversize_manifest_json_says_too_large(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    doc = b"[" + b" " * (17 * 1024**2) + b"]"  # valid JSON, over the 16 MiB limit
    path.write_bytes(ib.layer_tar([ib.Entry("manifest.json", doc)]))
    err = one_line_error(cli(str(path), "-f", "json"), "manifest.json is 17 MiB, too large")
    assert "not valid JSON" not in err
