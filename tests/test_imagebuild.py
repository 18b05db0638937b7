"""The pure-Python image builder the image tests rely on: every digest, diff_id and
path it writes must be what the OCI spec and ``docker save`` say, or the image tests
prove nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests import imagebuild as ib
from tests.conftest import token

MB = 1024 * 1024


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return tar.getmembers()


def read_tar(path: Path) -> dict[str, tarfile.TarInfo | bytes]:
    """name -> bytes for files, the TarInfo for anything else."""
    out: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(path) as tar:  # also opens a gzipped archive
        for m in tar:
            f = tar.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f else m
    return out


def file_of(files: dict[str, tarfile.TarInfo | bytes], name: str) -> bytes:
    data = files[name]
    assert isinstance(data, bytes), f"{name} is not a regular file"
    return data


def mixed_image(media: str = "oci") -> ib.Image:
    return ib.build_image(
        [
            ib.Layer(
                [
                    ib.Entry("etc", kind="dir"),
                    ib.Entry("etc/app.env", f"TOKEN={token('ghp', 1)}\n".encode()),
                    ib.Entry("etc/secret", b"s\n", mode=0o600),
                    ib.Entry("cache", kind="dir"),
                    ib.Entry("cache/a", b"a"),
                ],
                compression="gzip",
                created_by="COPY etc /etc",
            ),
            ib.Layer(
                [
                    ib.Entry("etc/secret", kind="whiteout"),
                    ib.Entry("cache", kind="opaque"),
                    ib.Entry("bin", kind="dir"),
                    ib.Entry("bin/sh", kind="symlink", target="busybox"),
                    ib.Entry("bin/busybox", b"\x7fELF", mode=0o755),
                    ib.Entry("bin/ash", kind="hardlink", target="bin/busybox"),
                ],
                compression="zstd",
                created_by="RUN rm /etc/secret",
            ),
            ib.Layer(
                [ib.Entry("VERSION", b"1\n")], compression="none", created_by="COPY VERSION /"
            ),
        ],
        env=["PATH=/bin", f"API_TOKEN={token('ghp', 2)}"],
        cmd=["/bin/sh"],
        entrypoint=["/bin/busybox"],
        labels={"team": "core"},
        working_dir="/srv",
        extra_history=[
            {"created_by": "ARG VERSION=1", "after_layer": -1},
            {"created_by": "ENV A=1", "after_layer": 0},
            {"created_by": "CMD ['/bin/sh']"},
        ],
        media=media,
    )


# -- digests, diff_ids, media types ---------------------------------------------------------------


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_every_digest_matches_its_content(media: str) -> None:
    image = mixed_image(media)
    for digest, data in image.blobs().items():
        assert sha(data) == digest
    assert sha(image.manifest) == image.manifest_digest
    assert set(image.blobs()) == {image.config_digest, *image.layer_digests}
    doc = image.manifest_doc
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == image.manifest_media_type
    assert doc["config"] == {
        "mediaType": image.config_media_type,
        "digest": image.config_digest,
        "size": len(image.config),
    }
    assert doc["layers"] == [
        {"mediaType": mt, "digest": d, "size": len(b)}
        for mt, d, b in zip(image.layer_media_types, image.layer_digests, image.layers, strict=True)
    ]


def test_media_types_follow_the_spec() -> None:
    oci, docker = mixed_image("oci"), mixed_image("docker")
    assert oci.manifest_media_type == "application/vnd.oci.image.manifest.v1+json"
    assert oci.config_media_type == "application/vnd.oci.image.config.v1+json"
    assert oci.layer_media_types == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar",
    ]
    assert docker.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert docker.config_media_type == "application/vnd.docker.container.image.v1+json"
    assert docker.layer_media_types[0] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert docker.layer_media_types[2] == "application/vnd.docker.image.rootfs.diff.tar"
    assert oci.config == docker.config  # the config does not depend on the manifest format
    assert oci.layers == docker.layers


def test_diff_ids_are_the_sha256_of_the_uncompressed_tars() -> None:
    image = mixed_image()
    assert image.layers[0][:2] == b"\x1f\x8b"
    assert image.layers[1][:4] == b"\x28\xb5\x2f\xfd"
    raw = [
        gzip.decompress(image.layers[0]),
        zstandard.ZstdDecompressor().decompress(image.layers[1]),
        image.layers[2],
    ]
    assert image.diff_ids == [sha(t) for t in raw]
    assert image.config_doc["rootfs"] == {"type": "layers", "diff_ids": image.diff_ids}
    for t in raw:
        members(t)  # each is a readable tar
    assert image.layer_digests[2] == image.diff_ids[2]  # uncompressed: digest == diff_id
    assert image.layer_digests[0] != image.diff_ids[0]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layers_decompress_back_to_the_same_tar(compression: str) -> None:
    entries = [ib.Entry(f"d/f{i}.txt", f"line {i}\n".encode() * 500) for i in range(20)]
    plain, _ = ib.build_layer(ib.Layer(entries, compression="none"))
    blob, diff_id = ib.build_layer(ib.Layer(entries, compression=compression))
    assert len(blob) < len(plain) / 5
    if compression == "gzip":
        assert gzip.decompress(blob) == plain
    else:
        assert zstandard.ZstdDecompressor().decompress(blob) == plain
    assert ib.decompress(blob) == plain  # the chunked reader agrees
    assert diff_id == sha(plain)


def test_output_is_deterministic() -> None:
    a, b = mixed_image(), mixed_image()
    assert a.manifest_digest == b.manifest_digest
    assert a.layers == b.layers
    header = a.layers[0][:10]
    assert header[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert not header[3] & 0x08  # no file name in the gzip header


def test_multi_member_gzip_is_read_whole() -> None:
    tar = ib.layer_tar([ib.Entry("a", b"x" * 3000), ib.Entry("b", b"y" * 3000)])
    two = gzip.compress(tar[:5000], mtime=0) + gzip.compress(tar[5000:], mtime=0)
    assert ib.decompress(two) == tar


# -- layer tar contents -----------------------------------------------------------------------------


def test_entries_are_written_in_order_with_whiteouts_and_fixed_metadata() -> None:
    image = mixed_image()
    first = members(ib.decompress(image.layers[0]))
    assert [m.name for m in first] == ["etc", "etc/app.env", "etc/secret", "cache", "cache/a"]
    second = members(ib.decompress(image.layers[1]))
    by_name = {m.name: m for m in second}
    assert [m.name for m in second] == [
        "etc/.wh.secret",
        "cache/.wh..wh..opq",
        "bin",
        "bin/sh",
        "bin/busybox",
        "bin/ash",
    ]
    for name in ("etc/.wh.secret", "cache/.wh..wh..opq"):
        assert by_name[name].isreg() and by_name[name].size == 0
    assert by_name["bin"].isdir() and by_name["bin"].mode == 0o755
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "busybox"
    assert by_name["bin/ash"].islnk() and by_name["bin/ash"].linkname == "bin/busybox"
    assert by_name["bin/busybox"].mode == 0o755
    assert {m.name: m.mode for m in first}["etc/secret"] == 0o600
    for m in first + second:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_whiteout_and_opaque_names() -> None:
    assert ib.Entry("a/b/c", kind="whiteout").member_name == "a/b/.wh.c"
    assert ib.Entry("top", kind="whiteout").member_name == ".wh.top"
    assert ib.Entry("a/b/", kind="whiteout").member_name == "a/.wh.b"
    assert ib.Entry("a/b", kind="opaque").member_name == "a/b/.wh..wh..opq"
    with pytest.raises(ValueError):
        ib.Entry("x", kind="fifo")
    with pytest.raises(ValueError):
        ib.Entry("x", kind="symlink")


# -- config and history -----------------------------------------------------------------------------


def test_config_holds_runtime_settings_and_history_in_build_order() -> None:
    image = mixed_image()
    cfg = image.config_doc
    assert (cfg["architecture"], cfg["os"]) == ("amd64", "linux")
    assert "variant" not in cfg
    assert cfg["config"] == {
        "Env": ["PATH=/bin", f"API_TOKEN={token('ghp', 2)}"],
        "Entrypoint": ["/bin/busybox"],
        "Cmd": ["/bin/sh"],
        "WorkingDir": "/srv",
        "Labels": {"team": "core"},
    }
    steps = [(h["created_by"], h.get("empty_layer", False)) for h in cfg["history"]]
    assert steps == [
        ("ARG VERSION=1", True),
        ("COPY etc /etc", False),
        ("ENV A=1", True),
        ("RUN rm /etc/secret", False),
        ("COPY VERSION /", False),
        ("CMD ['/bin/sh']", True),
    ]
    assert all(h["created"] == "1970-01-01T00:00:00Z" for h in cfg["history"])
    assert all("after_layer" not in h for h in cfg["history"])
    non_empty = [h for h in cfg["history"] if not h.get("empty_layer")]
    assert len(non_empty) == len(cfg["rootfs"]["diff_ids"])


def test_platform_and_annotations() -> None:
    image = ib.build_image(
        [ib.Layer([ib.Entry("a", b"1")])],
        architecture="arm",
        variant="v7",
        annotations={"org.opencontainers.image.source": "https://example.org/app"},
    )
    assert (image.config_doc["architecture"], image.config_doc["variant"]) == ("arm", "v7")
    assert image.manifest_doc["annotations"] == {
        "org.opencontainers.image.source": "https://example.org/app"
    }
    with pytest.raises(ValueError):
        ib.build_image([], extra_history=[{"created_by": "x", "after_layer": 3}])
    with pytest.raises(ValueError):
        ib.build_image([], media="podman")


# -- index ------------------------------------------------------------------------------------------


def test_index_lists_each_manifest_with_its_platform() -> None:
    amd = ib.build_image([ib.Layer([ib.Entry("amd", b"1")])])
    arm = ib.build_image([ib.Layer([ib.Entry("arm", b"2")])], architecture="arm64", variant="v8")
    body, digest = ib.build_index(
        [
            (amd, {"architecture": "amd64", "os": "linux"}),
            (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
            (amd, {}),
        ],
        descriptor_annotations=[None, None, {"vnd.docker.reference.type": "attestation-manifest"}],
    )
    assert sha(body) == digest
    doc = json.loads(body)
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    first, second, third = doc["manifests"]
    assert first == {
        "mediaType": amd.manifest_media_type,
        "digest": amd.manifest_digest,
        "size": len(amd.manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    assert second["platform"]["variant"] == "v8" and second["digest"] == arm.manifest_digest
    assert "platform" not in third
    assert third["annotations"] == {"vnd.docker.reference.type": "attestation-manifest"}
    body, _ = ib.build_index([(amd, {"architecture": "amd64", "os": "linux"})], media="docker")
    assert json.loads(body)["mediaType"] == (
        "application/vnd.docker.distribution.manifest.list.v2+json"
    )


# -- OCI image layout -------------------------------------------------------------------------------


def check_layout_blobs(path: Path) -> None:
    for blob in (path / "blobs" / "sha256").iterdir():
        assert sha(blob.read_bytes()) == "sha256:" + blob.name


def test_layout_index_points_at_the_manifest_and_every_blob_is_there(tmp_path: Path) -> None:
    image = mixed_image()
    ib.write_oci_layout(tmp_path, image, ref_name="v1")
    assert json.loads((tmp_path / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    [desc] = index["manifests"]
    assert desc["digest"] == image.manifest_digest
    assert desc["mediaType"] == image.manifest_media_type
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    blobs = tmp_path / "blobs" / "sha256"
    manifest = (blobs / image.manifest_digest[7:]).read_bytes()
    assert len(manifest) == desc["size"]
    doc = json.loads(manifest)
    for d in [doc["config"], *doc["layers"]]:
        data = (blobs / d["digest"][7:]).read_bytes()
        assert len(data) == d["size"] and sha(data) == d["digest"]
    check_layout_blobs(tmp_path)
    assert len(list(blobs.iterdir())) == 5  # manifest, config, three layers


def test_layout_without_a_ref_name(tmp_path: Path) -> None:
    ib.write_oci_layout(tmp_path, mixed_image(), ref_name=None)
    [desc] = json.loads((tmp_path / "index.json").read_bytes())["manifests"]
    assert "annotations" not in desc


@pytest.mark.parametrize("nested", [True, False])
def test_layout_of_a_multi_platform_index(tmp_path: Path, nested: bool) -> None:
    amd = ib.build_image([ib.Layer([ib.Entry("amd", b"1")])])
    arm = ib.build_image([ib.Layer([ib.Entry("arm", b"2")])], architecture="arm64")
    body, digest = ib.build_index(
        [
            (amd, {"architecture": "amd64", "os": "linux"}),
            (arm, {"architecture": "arm64", "os": "linux"}),
        ]
    )
    ib.write_oci_layout(tmp_path, (body, digest), images=[amd, arm], nested=nested)
    top = json.loads((tmp_path / "index.json").read_bytes())
    blobs = tmp_path / "blobs" / "sha256"
    if nested:
        [desc] = top["manifests"]
        assert desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert desc["digest"] == digest
        assert (blobs / digest[7:]).read_bytes() == body
    else:
        assert (tmp_path / "index.json").read_bytes() == body
    for image in (amd, arm):
        assert (blobs / image.manifest_digest[7:]).read_bytes() == image.manifest
        for d, data in image.blobs().items():
            assert (blobs / d[7:]).read_bytes() == data
    check_layout_blobs(tmp_path)
    ib.write_oci_layout(tmp_path / "body", body, images=[amd, arm], nested=nested)  # body only
    assert (tmp_path / "body" / "index.json").read_bytes() == (tmp_path / "index.json").read_bytes()
    with pytest.raises(ValueError):
        ib.write_oci_layout(tmp_path / "bad", (body + b" ", digest), images=[amd, arm])


# -- docker save archives ---------------------------------------------------------------------------


def check_docker_archive(path: Path) -> tuple[dict[str, Any], dict[str, tarfile.TarInfo | bytes]]:
    """manifest.json names files that are there; layer files hash to the config's diff_ids."""
    files = read_tar(path)
    raw = files["manifest.json"]
    assert isinstance(raw, bytes) and raw.endswith(b"]\n")
    [entry] = json.loads(raw)
    config = files[entry["Config"]]
    assert isinstance(config, bytes)
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert len(entry["Layers"]) == len(diff_ids)
    for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
        data = files[name]
        if isinstance(data, tarfile.TarInfo):  # a repeated layer: a symlink to the first copy
            assert data.issym()
            data = files[posixpath.normpath(posixpath.join(posixpath.dirname(name), data.linkname))]
        assert isinstance(data, bytes)
        assert sha(ib.decompress(data)) == diff_id
    return entry, files


def test_classic_docker_archive(tmp_path: Path) -> None:
    image = mixed_image()
    path = tmp_path / "app.tar"
    ib.write_docker_archive(path, image, repo_tag="team/app:2.1")
    entry, files = check_docker_archive(path)
    assert entry["Config"] == image.config_digest[7:] + ".json"
    assert files[entry["Config"]] == image.config
    assert entry["RepoTags"] == ["team/app:2.1"]
    ids = [name.split("/")[0] for name in entry["Layers"]]
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids) and len(set(ids)) == 3
    for i, layer_name in enumerate(entry["Layers"]):
        data = files[layer_name]
        assert isinstance(data, bytes)
        assert sha(data) == image.diff_ids[i]  # stored uncompressed, as docker save does
        assert files[f"{ids[i]}/VERSION"] == b"1.0"
        v1 = json.loads(file_of(files, f"{ids[i]}/json"))
        assert v1["id"] == ids[i]
        assert v1.get("parent", "") == (ids[i - 1] if i else "")
    repositories = files["repositories"]
    assert isinstance(repositories, bytes)
    assert json.loads(repositories) == {"team/app": {"2.1": ids[-1]}}
    assert "index.json" not in files and "oci-layout" not in files


def test_classic_archive_links_a_repeated_layer_to_its_first_copy(tmp_path: Path) -> None:
    empty = ib.Layer([], compression="gzip")
    image = ib.build_image([empty, ib.Layer([ib.Entry("a", b"1")]), empty])
    assert image.diff_ids[0] == image.diff_ids[2]
    path = tmp_path / "app.tar"
    ib.write_docker_archive(path, image)
    entry, files = check_docker_archive(path)
    link = files[entry["Layers"][2]]
    assert isinstance(link, tarfile.TarInfo) and link.issym()
    assert link.linkname == "../" + entry["Layers"][0]


def test_oci_flavour_docker_archive(tmp_path: Path) -> None:
    image = mixed_image()
    path = tmp_path / "app.tar"
    ib.write_docker_archive(path, image, flavour="oci")
    entry, files = check_docker_archive(path)
    assert entry["Config"] == "blobs/sha256/" + image.config_digest[7:]
    assert entry["Layers"] == ["blobs/sha256/" + d[7:] for d in image.diff_ids]  # uncompressed
    for name, data in files.items():
        if name.startswith("blobs/sha256/") and isinstance(data, bytes):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    assert files["oci-layout"] == b'{"imageLayoutVersion": "1.0.0"}'
    index = json.loads(file_of(files, "index.json"))
    [desc] = index["manifests"]
    assert desc["annotations"] == {
        "io.containerd.image.name": "docker.io/test/app:1.0",
        "org.opencontainers.image.ref.name": "1.0",
    }
    manifest = files["blobs/sha256/" + desc["digest"][7:]]
    assert isinstance(manifest, bytes) and sha(manifest) == desc["digest"]
    doc = json.loads(manifest)
    assert doc["config"]["digest"] == image.config_digest
    assert [d["digest"] for d in doc["layers"]] == image.diff_ids
    assert {d["mediaType"] for d in doc["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    assert json.loads(file_of(files, "repositories")) == {
        "test/app": {"1.0": image.diff_ids[-1][7:]}
    }


def test_oci_flavour_with_blobs_as_built_and_gzipped_archive(tmp_path: Path) -> None:
    image = mixed_image()
    path = tmp_path / "app.tar.gz"
    ib.write_docker_archive(
        path, image, flavour="oci", layers="as-is", gzip_archive=True, repo_tag="app"
    )
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    entry, files = check_docker_archive(path)
    assert entry["Layers"] == ["blobs/sha256/" + d[7:] for d in image.layer_digests]
    assert entry["RepoTags"] == ["app"]
    [desc] = json.loads(file_of(files, "index.json"))["manifests"]
    assert desc["digest"] == image.manifest_digest
    assert desc["annotations"]["io.containerd.image.name"] == "docker.io/library/app:latest"


def test_untagged_archive(tmp_path: Path) -> None:
    path = tmp_path / "app.tar"
    ib.write_docker_archive(path, mixed_image(), repo_tag=None)
    entry, files = check_docker_archive(path)
    assert entry["RepoTags"] is None
    assert "repositories" not in files


# -- bad input --------------------------------------------------------------------------------------


def test_unsafe_layer_keeps_its_escaping_names() -> None:
    tar = members(ib.decompress(ib.unsafe_layer()))
    assert [(m.name, m.type, m.linkname) for m in tar] == [
        ("../../etc/evil", tarfile.REGTYPE, ""),
        ("/abs/path", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "../../../../etc/passwd"),
        ("hard", tarfile.LNKTYPE, "../../outside"),
    ]
    assert ib.traversal_layer("zstd")[:4] == b"\x28\xb5\x2f\xfd"


def test_bomb_layer_is_small_on_disk_and_inflates_to_the_size_asked() -> None:
    blob = ib.bomb_layer(ib.GIB)
    assert len(blob) < 10 * MB
    # read only the start: a tar header for one file of exactly 1 GiB, then zeros
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    head = d.decompress(blob, 64 * 1024)
    info = tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    assert (info.name, info.size) == ("bomb.bin", ib.GIB)
    assert head[512:] == bytes(len(head) - 512)
    zstd = ib.bomb_layer(ib.GIB, compression="zstd")
    assert len(zstd) < 1 * MB


def test_bomb_layer_is_a_valid_stream_whose_diff_id_is_known() -> None:
    size = 20 * MB + 123
    fast = ib.bomb_layer(size, chunk=MB)
    assert fast == ib.bomb_layer(size, chunk=MB, fast=False)
    tar = gzip.decompress(fast)  # CRC and length in the trailer are right
    [m] = members(tar)
    assert (m.name, m.size) == ("bomb.bin", size)
    assert ib.bomb_diff_id(size) == sha(tar)
    z = ib.bomb_layer(size, compression="zstd", chunk=MB)
    assert zstandard.ZstdDecompressor().decompress(z) == tar
    image = ib.build_image_from_blobs([fast])
    assert image.diff_ids == [sha(tar)]
    assert image.layer_media_types == ["application/vnd.oci.image.layer.v1.tar+gzip"]


def test_truncated_layer_fails_to_decompress() -> None:
    layer = ib.Layer([ib.Entry("d", kind="dir"), ib.Entry("d/blob.bin", bytes(range(256)) * 100)])
    full, _ = ib.build_layer(layer)
    blob = ib.truncated_layer()
    assert len(blob) > 64 * 1024  # cut inside the 256 KiB of incompressible content
    with pytest.raises(EOFError):
        gzip.decompress(blob)
    with pytest.raises(EOFError):
        ib.decompress(blob)
    cut = ib.truncated_layer(layer, keep=0.5)
    assert full.startswith(cut) and len(cut) == len(full) // 2


def test_raw_blob_images() -> None:
    unsafe = ib.unsafe_layer()
    plain = ib.layer_tar([ib.Entry("x", b"1")])
    image = ib.build_image_from_blobs([unsafe, plain, ib.unsafe_layer("zstd")])
    assert image.layers[0] == unsafe
    assert image.diff_ids == [sha(ib.decompress(unsafe)), sha(plain), sha(ib.decompress(unsafe))]
    assert image.layer_media_types == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ]
    truncated = ib.truncated_layer()
    image = ib.build_image_from_blobs([truncated], diff_ids=["sha256:" + "ab" * 32])
    assert image.diff_ids == ["sha256:" + "ab" * 32]
    assert image.layer_digests == [sha(truncated)]
    image = ib.build_image_from_blobs([truncated])  # a diff_id of what did decompress
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.diff_ids[0])


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_layout_with_a_missing_blob(tmp_path: Path, which: str) -> None:
    image = mixed_image()
    digest = ib.missing_blob_layout(tmp_path, image, which=which)
    assert (
        digest
        == {
            "layer": image.layer_digests[0],
            "config": image.config_digest,
            "manifest": image.manifest_digest,
        }[which]
    )
    assert not (tmp_path / "blobs" / "sha256" / digest[7:]).exists()
    assert digest in (tmp_path / "index.json").read_text() + image.manifest.decode()
    check_layout_blobs(tmp_path)  # everything else is intact


def test_layout_with_a_blob_that_does_not_match_its_digest(tmp_path: Path) -> None:
    image = mixed_image()
    digest = ib.corrupt_blob_layout(tmp_path / "a", image, index=1)
    blob = tmp_path / "a" / "blobs" / "sha256" / digest[7:]
    assert digest == image.layer_digests[1]
    assert blob.stat().st_size == len(image.layers[1])  # same size: only the digest tells
    assert sha(blob.read_bytes()) != digest
    other, _ = ib.build_layer(ib.Layer([ib.Entry("swapped", b"evil")]))
    digest = ib.corrupt_blob_layout(tmp_path / "b", image, which="config", replacement=other)
    assert (tmp_path / "b" / "blobs" / "sha256" / digest[7:]).read_bytes() == other


@pytest.mark.parametrize("flavour", ["classic", "oci"])
@pytest.mark.parametrize("which", ["layer", "config"])
def test_archive_with_a_missing_file(tmp_path: Path, flavour: str, which: str) -> None:
    path = tmp_path / "app.tar"
    name = ib.missing_blob_archive(path, mixed_image(), flavour=flavour, which=which)
    files = read_tar(path)
    [entry] = json.loads(file_of(files, "manifest.json"))
    assert name == (entry["Config"] if which == "config" else entry["Layers"][0])
    assert name not in files


@pytest.mark.parametrize("flavour", ["classic", "oci"])
def test_archive_with_a_layer_that_does_not_match(tmp_path: Path, flavour: str) -> None:
    image = mixed_image()
    path = tmp_path / "app.tar"
    name = ib.corrupt_blob_archive(path, image, flavour=flavour, layers="uncompressed")
    files = read_tar(path)
    data = files[name]
    assert isinstance(data, bytes)
    assert len(data) == len(ib.decompress(image.layers[0]))
    assert sha(data) != image.diff_ids[0]
    if flavour == "oci":
        assert sha(data) != "sha256:" + name.rsplit("/", 1)[1]


def test_fake_credentials_are_made_at_run_time() -> None:
    key = ib.fake_aws_key_id(1)
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key)
    assert key == ib.fake_aws_key_id(1) != ib.fake_aws_key_id(2)
    assert len(ib.fake_aws_secret(1)) == 40
    source = Path(ib.__file__).read_text() + Path(__file__).read_text()
    assert key not in source
    creds = ib.decompress(ib.sample_image().layers[1])
    assert key.encode() in creds
