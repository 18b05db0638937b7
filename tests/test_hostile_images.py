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
