"""Images that someone hostile (or careless) made: FIFOs inside an OCI layout, archives
and layers of a million entries, a gzipped archive that inflates without end, JSON nested
a hundred thousand deep or of the wrong shape, oversize documents from a file or a
registry. Each runs the real CLI in a subprocess with a timeout, so a hang fails instead
of blocking the suite; each ends with one line of error or a report that counts what it
skipped, never a traceback.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
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


# -- JSON nested a hundred thousand deep ---------------------------------------------------------

DEEP = 100_000


def test_a_deep_manifest_json_in_an_archive_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    path.write_bytes(ib.layer_tar([ib.Entry("manifest.json", ib.nested(DEEP))]))
    # before: RecursionError out of json.loads, reported as an internal error
    one_line_error(cli(str(path), "-f", "json"), "manifest.json is nested more than 64 deep")


def test_a_deep_index_json_in_a_layout_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "layout"
    ib.write_oci_layout(path, leak_image(420))
    (path / "index.json").write_bytes(b'{"manifests": ' + ib.nested(DEEP) + b"}")
    one_line_error(cli(str(path), "--no-cache", "-f", "json"), "index.json", "nested more than")


def _errors(res: subprocess.CompletedProcess[str]) -> list[str]:
    """The report's errors, each also one line on stderr; exit 2."""
    doc = report(res)
    assert res.returncode == 2, (res.returncode, res.stderr)
    errors: list[str] = doc["stats"]["errors"]
    assert res.stderr.strip().splitlines() == [f"sentinel: error: {e}" for e in errors]
    return errors


def test_a_deep_manifest_in_an_index_skips_that_image_only(tmp_path: Path) -> None:
    good = leak_image(421, architecture="amd64")
    bad = ib.with_manifest(leak_image(422, architecture="arm64"), ib.nested(DEEP))
    index = ib.build_index([(good, {"os": "linux", "architecture": "amd64"}), (bad, {})])
    ib.write_oci_layout(tmp_path / "layout", index, images=[good, bad])
    res = cli(str(tmp_path / "layout"), "--no-cache", "-f", "json")
    [error] = _errors(res)
    assert f"manifest {bad.manifest_digest[:19]} is nested more than 64 deep" in error, error
    assert "that image was not scanned" in error
    doc = report(res)
    assert doc["stats"]["images_scanned"] == 1
    assert [f["path"] for f in doc["findings"]] == ["app/.env"]  # the good image's


def test_a_deep_config_blob_in_a_layout_still_has_its_layers_scanned(tmp_path: Path) -> None:
    image = ib.with_config(leak_image(423), b'{"config": ' + ib.nested(DEEP) + b"}")
    ib.write_oci_layout(tmp_path / "layout", image)
    res = cli(str(tmp_path / "layout"), "--no-cache", "-f", "json")
    [error] = _errors(res)
    assert "config is nested more than 64 deep" in error, error
    assert "the layers were scanned without it" in error
    assert [f["path"] for f in report(res)["findings"]] == ["app/.env"]


def _archive(path: Path, images: list[tuple[str, bytes, bytes]]) -> None:
    """A docker save archive by hand: per image (config file name, config bytes, one
    uncompressed layer tar, stored under ``blobs/sha256/`` by its digest)."""
    entries = []
    manifest = []
    for n, (config_name, config, layer) in enumerate(images):
        layer_path = f"blobs/sha256/{ib.sha256_digest(layer).split(':')[1]}"
        entries += [ib.Entry(config_name, config), ib.Entry(layer_path, layer)]
        manifest.append({"Config": config_name, "RepoTags": [f"t/{n}:1"], "Layers": [layer_path]})
    entries.insert(0, ib.Entry("manifest.json", json.dumps(manifest).encode()))
    path.write_bytes(ib.layer_tar(entries))


def test_a_deep_config_in_an_archive_leaves_the_other_images_scanned(tmp_path: Path) -> None:
    layers = [
        ib.layer_tar([ib.Entry(f"app{n}/.env", f"GITHUB_TOKEN={token('ghp', 424 + n)}\n".encode())])
        for n in range(2)
    ]
    good_config = json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": [ib.sha256_digest(layers[0])]}}
    ).encode()
    _archive(
        tmp_path / "image.tar",
        [("good.json", good_config, layers[0]), ("bad.json", ib.nested(DEEP), layers[1])],
    )
    res = cli(str(tmp_path / "image.tar"), "--no-cache", "-f", "json")
    [error] = _errors(res)
    assert "image.tar (t/1:1): config is nested more than 64 deep" in error, error
    doc = report(res)
    assert doc["stats"]["images_scanned"] == 2
    assert sorted(f["path"] for f in doc["findings"]) == ["app0/.env", "app1/.env"]


# -- a config of the wrong shape -----------------------------------------------------------------


def _shaped(seed: int, place: str, secret: str) -> bytes:
    """An image config with ``secret`` in a part of the wrong shape."""
    run: Any = {"Env": ["PATH=/usr/bin"]}
    history: Any = [{"created_by": "/bin/sh -c #(nop) ADD file"}]
    if place == "config-list":
        run = [f"GITHUB_TOKEN={secret}"]
    elif place == "env-object":
        run["Env"] = {"GITHUB_TOKEN": secret}
    elif place == "labels-list":
        run["Labels"] = [f"token={secret}"]
    elif place == "cmd-object":
        run["Cmd"] = {"sh": ["-c", f"GITHUB_TOKEN={secret} ./run"]}
    elif place == "history-object":
        history = {"created_by": f"/bin/sh -c GITHUB_TOKEN={secret} make"}
    elif place == "created-by-list":
        history = [{"created_by": ["/bin/sh", "-c", f"GITHUB_TOKEN={secret} make"]}]
    return json.dumps(
        {"architecture": "amd64", "os": "linux", "config": run, "history": history}
    ).encode()


@pytest.mark.parametrize(
    ("place", "path", "says"),
    [
        ("config-list", "config:config", "config is a list, not an object"),
        ("env-object", "config:Env", "Env is an object, not a list of strings"),
        ("labels-list", "config:Labels", "Labels is a list, not an object"),
        ("cmd-object", "config:Cmd", "Cmd is an object, not a list of strings"),
        ("history-object", "config:history", "history is an object, not a list"),
        ("created-by-list", "config:history", "not an object with a string created_by"),
    ],
)
def test_a_config_part_of_the_wrong_shape_is_scanned_as_text(
    tmp_path: Path, place: str, path: str, says: str
) -> None:
    secret = token("ghp", 430)
    image = ib.with_config(leak_image(431), _shaped(431, place, secret))
    ib.write_oci_layout(tmp_path / "layout", image)
    # before: config-list crashed (AttributeError); Env's values, a Labels list and a
    # history object were not scanned; the others were scanned without a word
    res = cli(str(tmp_path / "layout"), "--no-cache", "-f", "json")
    [error] = _errors(res)
    assert says in error and "(scanned as text)" in error, error
    paths = sorted(f["path"] for f in report(res)["findings"])
    assert paths == sorted([path, "app/.env"]), paths


# -- registry answers --------------------------------------------------------------------------


def test_a_deep_config_from_a_registry_still_has_its_layers_scanned(registry: Any) -> None:
    from tests.registry import push_blob, push_manifest

    image = ib.with_config(leak_image(441), b'{"history": ' + ib.nested(DEEP) + b"}")
    for data in image.blobs().values():
        push_blob(registry, "team/deep", data)
    push_manifest(registry, "team/deep", "1", image.manifest, image.manifest_media_type)
    res = cli(f"{registry.host}/team/deep:1", "--insecure-registry", "--no-cache", "-f", "json")
    [error] = _errors(res)
    assert "config is nested more than 64 deep" in error, error
    assert [f["path"] for f in report(res)["findings"]] == ["app/.env"]


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A registry that asks for a bearer token, then answers hostile bodies: ``mode``
    says which (``token-big``, ``token-deep``, ``manifest-unsized``, ``manifest-sized``)."""

    mode = ""

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self, data: bytes, sized: bool, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if sized:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()  # unsized: HTTP/1.0, the body ends when the connection does
        with contextlib.suppress(OSError):  # the client hung up once it had enough
            self.wfile.write(data)

    def do_GET(self) -> None:
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            if self.mode == "token-big":
                self._body(json.dumps({"token": "t" * (2 * 1024**2)}).encode(), sized=False)
            elif self.mode == "token-deep":
                self._body(b'{"token": ' + ib.nested(DEEP) + b"}", sized=True)
            else:
                self._body(b'{"token": "ok"}', sized=True)
            return
        if self.headers.get("Authorization") != "Bearer ok":
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate", f'Bearer realm="http://{host}/token",service="hostile"'
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # distribution itself refuses to store a manifest over 4 MiB: only a hostile
        # server sends one, with its size said or not
        body = b'{"schemaVersion": 2' + b" " * (5 * 1024**2) + b"}"
        self._body(body, sized=self.mode == "manifest-sized", content_type=ib.OCI_MANIFEST)


@pytest.fixture
def hostile() -> Any:
    handler = type("H", (_Hostile,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("token-big", "the answer is too large (more than 1 MiB)"),
        ("token-deep", "the answer is nested more than 64 deep"),
        ("manifest-unsized", "too large (more than 4 MiB)"),
        ("manifest-sized", "too large (5,242,900 bytes; at most 4 MiB)"),
    ],
)
def test_hostile_registry_answers_are_bounded(hostile: Any, mode: str, says: str) -> None:
    host, handler = hostile
    handler.mode = mode
    one_line_error(cli(f"{host}/team/app:1", "--insecure-registry", "-f", "json"), says)
