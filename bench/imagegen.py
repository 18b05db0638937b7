#!/usr/bin/env python3
"""Build large container images for the image-scan benchmarks, from files on this machine.

    python3 bench/imagegen.py OUT_DIR [--max-mb 450] [--shared 10] [--compression gzip]

writes into OUT_DIR:

  big.tar             one image as ``docker save`` (default: Docker 25+ format, gzip
                      layers; --big-flavour classic for ``<id>/layer.tar``) with five layers:
                        1  /usr/lib/python3* and /usr/share/doc
                        2  /usr/share/locale
                        3  the sqlalchemy checkout (bench/work/sqlalchemy, without .git/)
                        4  a small layer with planted fake credentials
                        5  a layer whose whiteout deletes one of them again
  shared-0.tar ...    images that share layers 1-3 byte for byte and each add one small
  shared-9.tar        distinct top layer (a layer cache should scan the base once).
                      Default: Docker 25+ ``docker save`` with the layers as built
                      (gzip; what Docker's containerd image store exports), so the ten
                      archives cost ~10x the compressed base, not 10x the raw one.

Files are streamed into each layer tar, through the compressor into a temp file, with
the diff_id (sha256 of the tar) and the digest (sha256 of the blob) hashed on the way:
no layer is ever held in memory. Output is deterministic for the same input files
(mtimes 0, uid/gid 0, sorted walk). Unreadable files, special files and symlinks that
point outside their source tree are skipped (and counted). The planted credentials are
made at run time (no credential-shaped literal in this file).

Stdlib only (``zstandard`` too with ``--compression zstd``); imports nothing from Sentinel.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import hashlib
import io
import json
import os
import posixpath
import random
import shutil
import stat
import string
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

BENCH = Path(__file__).resolve().parent
SQLALCHEMY = BENCH / "work" / "sqlalchemy"
MB = 1024 * 1024
EPOCH = "1970-01-01T00:00:00Z"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_SUFFIX = {"gzip": "+gzip", "zstd": "+zstd", "none": ""}
LAYOUT_FILE = b'{"imageLayoutVersion": "1.0.0"}'


# -- sources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A directory tree copied into the image at ``dest`` (a path without leading "/")."""

    root: Path
    dest: str
    exclude: tuple[str, ...] = ()  # directory names left out anywhere in the tree


@dataclass(frozen=True)
class LayerSpec:
    name: str
    sources: tuple[Source, ...]
    share: float  # of the --max-mb budget
    created_by: str


def default_layers(sqlalchemy: Path) -> list[LayerSpec]:
    pythons = tuple(
        Source(Path(p), p.lstrip("/"), ("__pycache__",))
        for p in sorted(glob.glob("/usr/lib/python3*"))
        if Path(p).is_dir()
    )
    specs = [
        LayerSpec(
            "python+doc",
            (*pythons, Source(Path("/usr/share/doc"), "usr/share/doc")),
            0.50,
            "COPY /usr/lib/python3* /usr/share/doc /usr/",
        ),
        LayerSpec(
            "locale",
            (Source(Path("/usr/share/locale"), "usr/share/locale"),),
            0.36,
            "RUN apt-get install -y locales-all",
        ),
    ]
    if sqlalchemy.is_dir():
        specs.append(
            LayerSpec(
                "app",
                (Source(sqlalchemy, "app/sqlalchemy", (".git",)),),
                0.14,
                "COPY . /app/sqlalchemy",
            )
        )
    return specs


@dataclass
class Counts:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


# -- streaming a layer --------------------------------------------------------------------------


class HashingWriter:
    """Passes bytes on to ``raw`` while hashing and counting them."""

    def __init__(self, raw: IO[bytes] | Any) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


@dataclass
class BuiltLayer:
    """A layer blob in a temp file, with what a manifest and a config need."""

    path: Path  # the blob as stored (compressed per ``compression``)
    compression: str
    digest: str  # sha256 of the blob
    size: int
    diff_id: str  # sha256 of the uncompressed tar
    tar_size: int
    created_by: str
    counts: Counts

    @property
    def media_type(self) -> str:
        return OCI_LAYER + MEDIA_SUFFIX[self.compression]

    def open_tar(self) -> IO[bytes]:
        """The uncompressed tar, streamed."""
        if self.compression == "gzip":
            return cast(IO[bytes], gzip.open(self.path, "rb"))
        if self.compression == "zstd":
            import zstandard

            raw = self.path.open("rb")
            return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
        return self.path.open("rb")


@contextlib.contextmanager
def layer_writer(
    path: Path, compression: str, level: int
) -> Iterator[tuple[tarfile.TarFile, HashingWriter, HashingWriter]]:
    """A tar stream whose bytes go, hashed, through the compressor into ``path``; yields
    the tar and the two hashers (of the blob as stored, and of the plain tar)."""
    with path.open("wb") as raw:
        stored = HashingWriter(raw)
        comp: contextlib.AbstractContextManager[Any]
        if compression == "gzip":
            sink = cast(IO[bytes], stored)
            comp = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=level)
        elif compression == "zstd":
            import zstandard

            zc = zstandard.ZstdCompressor(level=level)
            comp = zc.stream_writer(cast(IO[bytes], stored), closefd=False)
        else:
            comp = contextlib.nullcontext(stored)
        with comp as compressor:
            plain = HashingWriter(compressor)
            fileobj = cast(IO[bytes], plain)
            with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                yield tar, stored, plain


def _info(name: str, st: os.stat_result | None, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = stat.S_IMODE(st.st_mode) if st else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _parents(dest: str, done: set[str]) -> Iterator[str]:
    parts = dest.split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d not in done:
            done.add(d)
            yield d


def add_tree(
    tar: tarfile.TarFile, src: Source, budget: int, counts: Counts, seen: set[str]
) -> bool:
    """Copy ``src`` into ``tar``; False once ``budget`` bytes of file content are used up."""
    for d in _parents(src.dest, seen):
        tar.addfile(_info(d, None, tarfile.DIRTYPE))
        counts.dirs += 1
    for dirpath, dirnames, filenames in os.walk(src.root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in src.exclude)
        rel = os.path.relpath(dirpath, src.root)
        base = src.dest if rel == "." else posixpath.join(src.dest, *Path(rel).parts)
        try:
            st = os.lstat(dirpath)
        except OSError:
            counts.skip("unreadable")
            continue
        if base not in seen:
            seen.add(base)
            tar.addfile(_info(base, st, tarfile.DIRTYPE))
            counts.dirs += 1
        # a symlink to a directory is listed among dirnames by os.walk: handle it as a link
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links]
        for name in sorted([*filenames, *links]):
            full = os.path.join(dirpath, name)
            member = posixpath.join(base, name)
            try:
                st = os.lstat(full)
            except OSError:
                counts.skip("unreadable")
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                inside = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
                if target.startswith("/") or not (
                    inside == src.dest or inside.startswith(src.dest + "/")
                ):
                    counts.skip("symlink pointing outside")
                    continue
                info = _info(member, st, tarfile.SYMTYPE)
                info.linkname = target
                tar.addfile(info)
                counts.symlinks += 1
            elif stat.S_ISREG(st.st_mode):
                if counts.bytes + st.st_size > budget:
                    return False
                try:
                    f = open(full, "rb")  # noqa: SIM115 (closed below)
                except OSError:
                    counts.skip("unreadable")
                    continue
                with f:
                    size = os.fstat(f.fileno()).st_size
                    tar.addfile(_info(member, st, tarfile.REGTYPE, size), f)
                counts.files += 1
                counts.bytes += size
            else:
                counts.skip("special file")
    return True


def build_layer(
    tmp: Path,
    name: str,
    created_by: str,
    compression: str,
    level: int,
    fill: Any,
) -> BuiltLayer:
    """``fill(tar, counts)`` writes the members; the rest is streaming and hashing."""
    suffix = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}[compression]
    path = tmp / (name + suffix)
    counts = Counts()
    with layer_writer(path, compression, level) as (tar, stored, plain):
        fill(tar, counts)
    return BuiltLayer(
        path=path,
        compression=compression,
        digest=stored.digest,
        size=stored.size,
        diff_id=plain.digest,
        tar_size=plain.size,
        created_by=created_by,
        counts=counts,
    )


def tree_layer(tmp: Path, spec: LayerSpec, budget: int, compression: str, level: int) -> BuiltLayer:
    def fill(tar: tarfile.TarFile, counts: Counts) -> None:
        seen: set[str] = set()
        for src in spec.sources:
            if not src.root.is_dir():
                counts.skip("source missing")
                continue
            if not add_tree(tar, src, budget, counts, seen):
                counts.skip("budget reached")
                break

    return build_layer(tmp, spec.name, spec.created_by, compression, level, fill)


def small_layer(
    tmp: Path,
    name: str,
    created_by: str,
    files: list[tuple[str, bytes | None]],
    compression: str,
    level: int,
) -> BuiltLayer:
    """Files (``None`` content: a directory) in the order given."""

    def fill(tar: tarfile.TarFile, counts: Counts) -> None:
        for member, data in files:
            if data is None:
                tar.addfile(_info(member, None, tarfile.DIRTYPE))
                counts.dirs += 1
            else:
                tar.addfile(_info(member, None, tarfile.REGTYPE, len(data)), io.BytesIO(data))
                counts.files += 1
                counts.bytes += len(data)

    return build_layer(tmp, name, created_by, compression, level, fill)


# -- planted credentials (made at run time) ----------------------------------------------------------

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def fake_aws_key_id(seed: int) -> str:
    rnd = random.Random(seed)
    return "AKIA" + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def fake_aws_secret(seed: int) -> str:
    rnd = random.Random(f"secret-{seed}")
    return "".join(rnd.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def fake_github_token(seed: int) -> str:
    """``ghp_`` + 30 base62 + base62(crc32) in 6: checksum-valid, never a live token."""
    rnd = random.Random(f"ghp-{seed}")
    body = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(30))
    n, tail = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        tail = BASE62[r] + tail
    return f"ghp_{body}{tail.rjust(6, '0')}"


# -- images and archives -------------------------------------------------------------------------


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    layers: list[BuiltLayer]
    config: bytes
    manifest: bytes

    @property
    def config_digest(self) -> str:
        return _sha(self.config)


def make_image(layers: list[BuiltLayer], extra_history: list[dict[str, Any]], tag: str) -> Image:
    history: list[dict[str, Any]] = [
        {"created": EPOCH, "created_by": layer.created_by} for layer in layers
    ]
    history += [{"created": EPOCH, **h, "empty_layer": True} for h in extra_history]
    config = _json(
        {
            "created": EPOCH,
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
                "Cmd": ["python3"],
                "WorkingDir": "/app",
                "Labels": {"org.opencontainers.image.title": tag},
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": history,
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha(config), "size": len(config)},
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
    )
    return Image(layers, config, manifest)


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = _info(name, None, tarfile.REGTYPE, len(data))
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _tar_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, None, tarfile.DIRTYPE))


def write_classic(path: Path, image: Image, repo_tag: str) -> None:
    """``docker save`` before Docker 25: ``<v1 id>/{VERSION,json,layer.tar}``,
    ``<config hex>.json``, ``manifest.json``, ``repositories``; layers uncompressed."""
    name, _, tag = repo_tag.rpartition(":")
    ids: list[str] = []
    chain, parent = "", ""
    for layer in image.layers:
        chain = layer.diff_id if not chain else _sha(f"{chain} {layer.diff_id}".encode())
        v1 = {
            "created": EPOCH,
            "layer_id": chain,
            **({"parent": "sha256:" + parent} if parent else {}),
        }
        parent = hashlib.sha256(json.dumps(v1, sort_keys=True).encode()).hexdigest()
        ids.append(parent)
    config_name = image.config_digest[7:] + ".json"
    members: list[tuple[str, Any]] = []
    first: dict[str, str] = {}
    for n, (v1_id, layer) in enumerate(zip(ids, image.layers, strict=True)):
        v1_json = {
            "id": v1_id,
            **({"parent": ids[n - 1]} if n else {}),
            "created": EPOCH,
            "os": "linux",
        }
        members += [
            (f"{v1_id}/", None),
            (f"{v1_id}/VERSION", b"1.0"),
            (f"{v1_id}/json", _json(v1_json)),
            (f"{v1_id}/layer.tar", layer),
        ]
    manifest_json = [
        {"Config": config_name, "RepoTags": [repo_tag], "Layers": [f"{i}/layer.tar" for i in ids]}
    ]
    members += [
        (config_name, image.config),
        ("manifest.json", _json(manifest_json) + b"\n"),
        ("repositories", _json({name: {tag: ids[-1]}}) + b"\n"),
    ]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, content in sorted(members, key=lambda m: m[0]):
            if content is None:
                _tar_dir(tar, member.rstrip("/"))
            elif isinstance(content, bytes):
                _tar_bytes(tar, member, content)
            elif content.diff_id in first:  # docker links a repeated layer to its first copy
                info = _info(member, None, tarfile.SYMTYPE)
                info.linkname = "../" + first[content.diff_id]
                tar.addfile(info)
            else:
                first[content.diff_id] = member
                with content.open_tar() as f:
                    tar.addfile(_info(member, None, tarfile.REGTYPE, content.tar_size), f)


def write_oci_flavour(path: Path, image: Image, repo_tag: str) -> None:
    """``docker save`` from Docker 25+ with the containerd image store: an OCI layout in
    the tar (blobs as built) plus ``manifest.json`` pointing into ``blobs/sha256``."""
    name, _, tag = repo_tag.rpartition(":")
    blob = "blobs/sha256/"
    manifest_digest = _sha(image.manifest)
    head, slash, _ = name.partition("/")
    if slash and ("." in head or ":" in head or head == "localhost"):
        qualified = name
    else:
        qualified = "docker.io/" + (name if slash else "library/" + name)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(image.manifest),
                "annotations": {
                    "io.containerd.image.name": f"{qualified}:{tag}",
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    manifest_json = [
        {
            "Config": blob + image.config_digest[7:],
            "RepoTags": [repo_tag],
            "Layers": [blob + layer.digest[7:] for layer in image.layers],
        }
    ]
    members: dict[str, Any] = {
        blob + image.config_digest[7:]: image.config,
        blob + manifest_digest[7:]: image.manifest,
        "index.json": _json(index),
        "manifest.json": _json(manifest_json) + b"\n",
        "oci-layout": LAYOUT_FILE,
        "repositories": _json({name: {tag: image.layers[-1].diff_id[7:]}}) + b"\n",
    }
    for layer in image.layers:
        members.setdefault(blob + layer.digest[7:], layer)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _tar_dir(tar, "blobs")
        _tar_dir(tar, "blobs/sha256")
        for member in sorted(members):
            content = members[member]
            if isinstance(content, bytes):
                _tar_bytes(tar, member, content)
            else:
                with content.path.open("rb") as f:
                    tar.addfile(_info(member, None, tarfile.REGTYPE, content.size), f)


# -- the command --------------------------------------------------------------------------------


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def say(msg: str) -> None:
    print(msg, flush=True)


def describe(layer: BuiltLayer) -> str:
    c = layer.counts
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(c.skipped.items()))
    return (
        f"{layer.digest[:19]}  tar {human(layer.tar_size):>9}  stored {human(layer.size):>9}"
        f"  {c.files} files, {c.dirs} dirs, {c.symlinks} symlinks"
        + (f"  (skipped: {skipped})" if skipped else "")
        + f"  <- {layer.created_by}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--max-mb", type=float, default=450, help="file bytes read in all (default 450)")
    p.add_argument("--shared", type=int, default=10, help="number of shared-N.tar (default 10)")
    p.add_argument("--shared-flavour", choices=("oci", "classic"), default="oci")
    p.add_argument(
        "--big-flavour",
        choices=("oci", "classic"),
        default="oci",
        help="docker save format of big.tar (default oci: what Docker 25+ writes; "
        "Kingfisher 2.14 reads only that one)",
    )
    p.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip")
    p.add_argument("--level", type=int, default=None, help="gzip 1-9 (6), zstd 1-22 (3)")
    p.add_argument("--sqlalchemy", type=Path, default=SQLALCHEMY)
    p.add_argument("--tag", default="bench/big:1.0")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.max_mb > 600:
        sys.exit("imagegen: --max-mb above 600 is not what this benchmark is for")
    level = args.level if args.level is not None else (3 if args.compression == "zstd" else 6)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    budget = int(args.max_mb * MB)
    # temp blobs (~budget compressed) + big.tar (~budget) + shared archives
    per_shared = (
        budget if args.shared_flavour == "classic" or args.compression == "none" else budget // 2
    )
    need = budget // 2 + budget + args.shared * per_shared + 256 * MB
    free = shutil.disk_usage(out).free
    say(f"{out}: {human(free)} free, this run needs at most ~{human(need)}")
    if free < need:
        sys.exit(f"imagegen: not enough disk space in {out}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".imagegen-", dir=out) as tmp_name:
        tmp = Path(tmp_name)
        base: list[BuiltLayer] = []
        for spec in default_layers(args.sqlalchemy):
            t = time.monotonic()
            layer = tree_layer(tmp, spec, int(budget * spec.share), args.compression, level)
            base.append(layer)
            say(
                f"layer {len(base)} {spec.name:<11} {describe(layer)}  [{time.monotonic() - t:.1f} s]"
            )

        key_id, secret = fake_aws_key_id(7), fake_aws_secret(7)
        creds = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
        planted = small_layer(
            tmp,
            "planted",
            "COPY config/ /app/config/",
            [
                ("app", None),
                ("app/config", None),
                ("app/config/credentials", creds.encode()),
                ("app/config/settings.env", f"GITHUB_TOKEN={fake_github_token(7)}\n".encode()),
            ],
            args.compression,
            level,
        )
        removal = small_layer(
            tmp,
            "whiteout",
            "RUN rm /app/config/credentials",
            [("app/config/.wh.credentials", b"")],
            args.compression,
            level,
        )
        say(f"layer {len(base) + 1} {'planted':<11} {describe(planted)}")
        say(f"layer {len(base) + 2} {'whiteout':<11} {describe(removal)}")
        big = make_image(
            [*base, planted, removal], [{"created_by": "ENV APP_ENV=production"}], args.tag
        )
        t = time.monotonic()
        if args.big_flavour == "classic":
            write_classic(out / "big.tar", big, args.tag)
        else:
            write_oci_flavour(out / "big.tar", big, args.tag)
        total_tar = sum(layer.tar_size for layer in big.layers)
        say(
            f"wrote {out / 'big.tar'}  {human((out / 'big.tar').stat().st_size)}"
            f"  ({len(big.layers)} layers, {human(total_tar)} uncompressed;"
            f" {args.big_flavour} docker save)  [{time.monotonic() - t:.1f} s]"
        )

        for n in range(args.shared):
            top = small_layer(
                tmp,
                f"top-{n}",
                f"COPY instance-{n}.json /app/",
                [(f"app/instance-{n}.json", _json({"instance": n, "replicas": n % 3 + 1}) + b"\n")],
                args.compression,
                level,
            )
            image = make_image([*base, top], [], f"bench/shared:{n}")
            target = out / f"shared-{n}.tar"
            t = time.monotonic()
            if args.shared_flavour == "classic":
                write_classic(target, image, f"bench/shared:{n}")
            else:
                write_oci_flavour(target, image, f"bench/shared:{n}")
            say(
                f"wrote {target}  {human(target.stat().st_size)}  (top layer {top.digest[:19]};"
                f" {args.shared_flavour} docker save)  [{time.monotonic() - t:.1f} s]"
            )
    say(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
