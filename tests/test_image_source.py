"""Container images through the real CLI: one image built in Python, scanned as a
docker archive (both flavours), as an OCI layout and pulled from a real registry
(anonymous, basic auth, bearer tokens), with the same findings every way; deleted
files, the config, multi-arch indexes, the layer cache, and every kind of bad input."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import imagebuild as ib
from tests.conftest import password, run_cli, token
from tests.registry import Registry, push_blob, push_manifest

pytestmark = pytest.mark.integration


def aws_pair(seed: int) -> tuple[str, str]:
    """A well-formed AWS access key id and secret key, made at run time."""
    rnd = random.Random(f"aws-{seed}")
    key_id = "AKIA" + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    secret = "".join(rnd.choice(alphabet) for _ in range(40))
    return key_id, secret


KEY_ID, KEY_SECRET = aws_pair(1)
ENV_TOKEN = token("ghp", 300)
BUILD_PASSWORD = password(301)


def leaky_layers() -> list[ib.Layer]:
    creds = (
        f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {KEY_SECRET}\n"
    ).encode()
    return [
        ib.Layer(
            [
                ib.Entry("app", kind="dir", mode=0o755),
                ib.Entry("app/main.py", b"print('hello')\n"),
                ib.Entry("root/.aws", kind="dir", mode=0o700),
                ib.Entry("root/.aws/credentials", creds, mode=0o600),
            ],
            compression="gzip",
            created_by="COPY . /",
        ),
        ib.Layer(
            [ib.Entry("root/.aws/credentials", kind="whiteout")],
            compression="zstd",
            created_by="RUN rm /root/.aws/credentials",
        ),
        ib.Layer(
            [ib.Entry("app/VERSION", b"1.2.3\n")],
            compression="gzip",
            created_by="COPY VERSION /app",
        ),
    ]


def leaky_image(media: str = "oci") -> ib.Image:
    return ib.build_image(
        leaky_layers(),
        env=["PATH=/usr/local/bin:/usr/bin", f"GITHUB_TOKEN={ENV_TOKEN}"],
        cmd=["python", "/app/main.py"],
        labels={"maintainer": "team@example.org"},
        extra_history=[
            {
                "created_by": f"|1 DB_PASSWORD={BUILD_PASSWORD} /bin/sh -c ./configure",
                "empty_layer": True,
            }
        ],
        media=media,
    )


def scan(
    target: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    res = run_cli("scan", "image", target, "-f", "json", *extra, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    doc = json.loads(res.stdout) if res.stdout.strip() else {}
    return res.returncode, doc, res.stderr


def summary(doc: dict[str, Any]) -> set[tuple[Any, ...]]:
    """What must be the same however the image was reached."""
    return {
        (
            f["rule_id"],
            f["fingerprint"],
            f["path"],
            f["line"],
            f.get("layer_index"),
            f.get("deleted_in_layer_index"),
            f.get("created_by"),
        )
        for f in doc["findings"]
    }


def push_image(reg: Registry, repository: str, tag: str, image: ib.Image) -> None:
    for data in image.blobs().values():
        push_blob(reg, repository, data)
    push_manifest(reg, repository, tag, image.manifest, image.manifest_media_type)


def registry_env(reg: Registry) -> dict[str, str]:
    if reg.username is None:
        return {}
    return {
        "SENTINEL_REGISTRY_USERNAME": reg.username,
        "SENTINEL_REGISTRY_PASSWORD": reg.password or "",
    }


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty layer cache (the Hyperscan cache is shared)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


# -- the same findings every way ----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ref") / "layout"
    ib.write_oci_layout(path, leaky_image())
    rc, doc, err = scan(str(path), "--no-cache", "--show-secrets")
    assert rc == 1, err
    return doc


def test_layout_findings_name_the_layer_the_deletion_and_the_config(
    reference_doc: dict[str, Any],
) -> None:
    by_path: dict[str, list[dict[str, Any]]] = {}
    for f in reference_doc["findings"]:
        by_path.setdefault(f["path"], []).append(f)
    creds = by_path["root/.aws/credentials"]
    assert {f["secret"] for f in creds} >= {KEY_ID, KEY_SECRET}
    for f in creds:
        assert f["source"] == "image"
        assert f["layer_index"] == 1
        assert f["layer"].startswith("sha256:")
        assert f["deleted_in_layer_index"] == 2  # deleted, but still in the image
        assert f["deleted_in_layer"].startswith("sha256:")
        assert f["created_by"] == "COPY . /"
    [env] = by_path["config:Env"]
    assert env["secret"] == ENV_TOKEN
    assert env["line"] == 2
    [hist] = by_path["config:history"]
    assert hist["secret"] == BUILD_PASSWORD
    assert reference_doc["stats"]["layers_scanned"] == 3
    assert reference_doc["stats"]["files_scanned"] == 3  # main.py, credentials, VERSION


@pytest.mark.parametrize(
    "form", ["archive-classic", "archive-oci", "archive-gzip", "layout-docker-media"]
)
def test_every_local_form_gives_the_same_findings(
    form: str, tmp_path: Path, reference_doc: dict[str, Any]
) -> None:
    if form == "layout-docker-media":
        target = tmp_path / "layout"
        ib.write_oci_layout(target, leaky_image(media="docker"))
    else:
        target = tmp_path / "app.tar"
        ib.write_docker_archive(
            target,
            leaky_image(),
            flavour="oci" if form == "archive-oci" else "classic",
            gzip_archive=form == "archive-gzip",
        )
    rc, doc, err = scan(str(target), "--no-cache")
    assert rc == 1, err
    assert summary(doc) == summary(reference_doc)


def test_classic_archive_with_a_repeated_layer(tmp_path: Path) -> None:
    """docker save stores a layer that appears twice once, and links to it."""
    same = ib.Layer([ib.Entry("etc/token.env", f"T={token('ghp', 305)}\n".encode())])
    image = ib.build_image([same, ib.Layer([ib.Entry("x.txt", b"x\n")]), same])
    path = tmp_path / "rep.tar"
    ib.write_docker_archive(path, image, flavour="classic")
    rc, doc, err = scan(str(path), "--no-cache")
    assert rc == 1, err
    assert sorted(f["layer_index"] for f in doc["findings"]) == [1, 3]


@pytest.mark.parametrize("mode", ["registry", "registry_basic", "registry_token"])
def test_registry_pull_gives_the_same_findings(
    mode: str, request: pytest.FixtureRequest, reference_doc: dict[str, Any]
) -> None:
    reg: Registry = request.getfixturevalue(mode)
    repo = f"team/app-{mode.replace('_', '-')}"
    image = leaky_image()
    push_image(reg, repo, "1.2", image)
    ref = f"{reg.host}/{repo}:1.2"
    rc, doc, err = scan(ref, "--no-cache", "--insecure-registry", env=registry_env(reg))
    assert rc == 1, err
    assert summary(doc) == summary(reference_doc)
    assert {f["image"] for f in doc["findings"]} == {ref}
    # by digest too
    rc, doc, err = scan(
        f"{reg.host}/{repo}@{image.manifest_digest}", "--insecure-registry", env=registry_env(reg)
    )
    assert rc == 1, err
    assert summary(doc) == summary(reference_doc)


def test_multi_arch_index_from_the_registry(registry_token: Registry) -> None:
    amd = ib.build_image([ib.Layer([ib.Entry("amd.env", f"T={token('ghp', 312)}\n".encode())])])
    arm = ib.build_image(
        [ib.Layer([ib.Entry("arm.env", f"T={token('ghp', 313)}\n".encode())])],
        architecture="arm64",
    )
    repo = "team/multi"
    for image in (amd, arm):
        push_image(registry_token, repo, image.manifest_digest, image)
    body, _ = ib.build_index(
        [
            (amd, {"architecture": "amd64", "os": "linux"}),
            (arm, {"architecture": "arm64", "os": "linux"}),
        ]
    )
    push_manifest(registry_token, repo, "2.0", body, "application/vnd.oci.image.index.v1+json")
    ref = f"{registry_token.host}/{repo}:2.0"
    env = registry_env(registry_token)
    rc, doc, err = scan(ref, "--insecure-registry", env=env)
    assert rc == 1, err
    assert {(f["path"], f["image"]) for f in doc["findings"]} == {
        ("amd.env", f"{ref} [linux/amd64]"),
        ("arm.env", f"{ref} [linux/arm64]"),
    }
    rc, doc, err = scan(ref, "--insecure-registry", "--platform", "linux/amd64", env=env)
    assert rc == 1, err
    assert [f["path"] for f in doc["findings"]] == ["amd.env"]


def test_credentials_from_docker_config(registry_basic: Registry, tmp_path: Path) -> None:
    push_image(registry_basic, "team/private", "1", leaky_image())
    ref = f"{registry_basic.host}/team/private:1"
    rc, _, err = scan(ref, "--insecure-registry", env={"DOCKER_CONFIG": str(tmp_path / "none")})
    assert rc == 2
    assert "authentication required" in err
    cfg = tmp_path / "docker"
    cfg.mkdir()
    import base64

    auth = base64.b64encode(
        f"{registry_basic.username}:{registry_basic.password}".encode()
    ).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
    rc, doc, err = scan(ref, "--insecure-registry", env={"DOCKER_CONFIG": str(cfg)})
    assert rc == 1, err
    assert doc["findings"]


def test_wrong_token_credentials_are_refused(registry_token: Registry) -> None:
    push_image(registry_token, "team/tok", "1", leaky_image())
    rc, _, err = scan(
        f"{registry_token.host}/team/tok:1",
        "--insecure-registry",
        env={"SENTINEL_REGISTRY_USERNAME": "mallory", "SENTINEL_REGISTRY_PASSWORD": "nope"},
    )
    assert rc == 2
    assert "token server refused" in err


def test_unknown_tag_is_a_404_error(registry: Registry) -> None:
    rc, _, err = scan(f"{registry.host}/team/nothing:9", "--insecure-registry")
    assert rc == 2
    assert "not found (404)" in err
    assert len(err.strip().splitlines()) == 1


# -- what the report says -------------------------------------------------------------------------


def test_table_says_the_deleted_secret_is_still_in_the_image(tmp_path: Path) -> None:
    path = tmp_path / "layout"
    ib.write_oci_layout(path, leaky_image())
    res = run_cli("scan", "image", str(path), "-f", "table")
    assert res.returncode == 1
    assert "deleted in layer 2 but still in the image" in res.stdout
    assert KEY_SECRET not in res.stdout
    assert BUILD_PASSWORD not in res.stdout + res.stderr


def test_secret_in_history_is_redacted_wherever_history_is_shown(tmp_path: Path) -> None:
    secret = password(302)
    layers = [
        ib.Layer(
            [ib.Entry("a.env", f"TOKEN={token('ghp', 303)}\n".encode())],
            created_by=f"RUN echo DB_PASSWORD={secret} > /a.env",
        )
    ]
    path = tmp_path / "layout"
    ib.write_oci_layout(path, ib.build_image(layers))
    rc, doc, err = scan(str(path))
    assert rc == 1, err
    text = json.dumps(doc)
    assert secret not in text
    [layer_hit] = [f for f in doc["findings"] if f["path"] == "a.env"]
    assert layer_hit["created_by"].startswith("RUN echo DB_PASSWORD=")


def test_multi_arch_index_every_platform_or_the_one_asked_for(tmp_path: Path) -> None:
    amd = ib.build_image([ib.Layer([ib.Entry("amd.env", f"T={token('ghp', 310)}\n".encode())])])
    arm = ib.build_image(
        [ib.Layer([ib.Entry("arm.env", f"T={token('ghp', 311)}\n".encode())])],
        architecture="arm64",
        variant="v8",
    )
    index = ib.build_index(
        [
            (amd, {"architecture": "amd64", "os": "linux"}),
            (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ]
    )
    path = tmp_path / "layout"
    ib.write_oci_layout(path, index, images=[amd, arm])
    rc, doc, err = scan(str(path))
    assert rc == 1, err
    assert {f["path"] for f in doc["findings"]} == {"amd.env", "arm.env"}
    assert doc["stats"]["images_scanned"] == 2
    rc, doc, err = scan(str(path), "--platform", "linux/arm64")
    assert {f["path"] for f in doc["findings"]} == {"arm.env"}
    rc, _, err = scan(str(path), "--platform", "linux/s390x")
    assert rc == 2
    assert "no linux/s390x image" in err
    assert "linux/amd64" in err and "linux/arm64/v8" in err


# -- the layer cache -------------------------------------------------------------------------------


def test_images_sharing_a_base_scan_it_once(tmp_path: Path) -> None:
    base = [
        ib.Layer([ib.Entry(f"usr/lib/mod{i}.py", f"X = {i}\n".encode() * 200) for i in range(50)]),
        ib.Layer([ib.Entry("etc/app.conf", b"level = info\n")]),
    ]
    docs = []
    for n in range(3):
        top = ib.Layer([ib.Entry(f"srv/{n}.txt", f"service {n}\n".encode())])
        layers = [*base, top]
        if n == 2:
            layers.append(ib.Layer([ib.Entry("srv/leak.env", f"T={token('ghp', 320)}\n".encode())]))
        path = tmp_path / f"img{n}"
        ib.write_oci_layout(path, ib.build_image(layers))
        rc, doc, err = scan(str(path))
        assert rc in (0, 1), err
        docs.append(doc)
    assert docs[0]["stats"]["layers_scanned"] == 3
    assert docs[0]["stats"]["layers_cached"] == 0
    assert docs[1]["stats"]["layers_cached"] == 2  # the shared base
    assert docs[1]["stats"]["layers_scanned"] == 1
    assert [f["path"] for f in docs[2]["findings"]] == ["srv/leak.env"]
    # again: every layer from the cache, the same findings, fingerprints and previews
    rc, doc, _ = scan(str(tmp_path / "img2"))
    assert rc == 1
    assert doc["stats"]["layers_scanned"] == 0
    assert doc["stats"]["layers_cached"] == 4
    assert summary(doc) == summary(docs[2])
    # the cache never holds the value: printing values reads the layer again
    cache_files = list((Path(os.environ["SENTINEL_CACHE_DIR"]) / "layers").rglob("*.json"))
    assert cache_files
    assert not any(token("ghp", 320) in p.read_text() for p in cache_files)
    rc, doc, _ = scan(str(tmp_path / "img2"), "--show-secrets")
    assert doc["stats"]["layers_scanned"] == 1
    assert [f["secret"] for f in doc["findings"]] == [token("ghp", 320)]


# -- bad input ---------------------------------------------------------------------------------


def test_unsafe_paths_are_skipped_reported_and_exit_2(tmp_path: Path) -> None:
    leak = ib.Layer([ib.Entry("ok.env", f"T={token('ghp', 330)}\n".encode())])
    image = ib.build_image_from_blobs([ib.unsafe_layer(), ib.build_layer(leak)[0]])
    path = tmp_path / "layout"
    ib.write_oci_layout(path, image)
    res = run_cli("scan", "image", str(path), "-f", "json")
    assert res.returncode == 2
    assert "unsafe paths skipped" in res.stderr
    assert "Traceback" not in res.stderr
    doc = json.loads(res.stdout)  # the report is still written: the rest was scanned
    assert [f["path"] for f in doc["findings"]] == ["ok.env"]
    assert doc["stats"]["skipped"]["unsafe_path"] >= 3


def test_decompression_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "layout"
    image = ib.build_image_from_blobs([ib.bomb_layer(1024**3)])
    ib.write_oci_layout(path, image)
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'sentinel.cli.main', 'scan', 'image', "
        f"{str(path)!r}, '--no-cache', '-f', 'json'], capture_output=True, text=True)\n"
        "print(p.returncode)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(p.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    rc, maxrss_kib = (int(x) for x in res.stdout.split())
    assert rc == 2
    assert "decompression bomb" in res.stderr
    assert "Traceback" not in res.stderr
    assert maxrss_kib < 400 * 1024  # a 1 GiB inflate never sits in memory


@pytest.mark.parametrize("damage", ["truncated", "mismatch", "missing"])
def test_damaged_blobs_are_rejected(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "layout"
    image = leaky_image()
    ib.write_oci_layout(path, image)
    layer = image.layer_digests[0]
    blob = path / "blobs" / "sha256" / layer.split(":")[1]
    if damage == "truncated":
        blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
        needle = "truncated"
    elif damage == "mismatch":
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        needle = ""
    else:
        blob.unlink()
        needle = "missing"
    rc, _, err = scan(str(path), "--no-cache")
    assert rc == 2
    assert err.startswith("sentinel: error:")
    assert needle in err
    if damage == "mismatch":
        assert "digest" in err or "corrupt" in err


def test_not_an_image(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    rc, _, err = scan(str(junk))
    assert rc == 2 and "not an image archive" in err
    empty = tmp_path / "dir"
    empty.mkdir()
    rc, _, err = scan(str(empty))
    assert rc == 2 and "not an OCI image layout" in err
    (tmp_path / "gz.tar.gz").write_bytes(gzip.compress(b"\0" * 10))
    rc, _, err = scan(str(tmp_path / "gz.tar.gz"))
    assert rc == 2


class _Flaky(http.server.BaseHTTPRequestHandler):
    mode = "500"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.mode == "hang":
            threading.Event().wait(5)
            return
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("H", (_Flaky,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_registry_500_is_retried_then_an_error(flaky: tuple[str, type[_Flaky]]) -> None:
    host, handler = flaky
    rc, _, err = scan(f"{host}/team/app:1", "--insecure-registry")
    assert rc == 2
    assert "answered 500" in err
    assert handler.hits == 4  # the first try and three retries


def test_registry_that_hangs_times_out(flaky: tuple[str, type[_Flaky]]) -> None:
    host, handler = flaky
    handler.mode = "hang"
    rc, _, err = scan(f"{host}/team/app:1", "--insecure-registry", "--timeout", "1")
    assert rc == 2
    assert "no answer within 1 s" in err
