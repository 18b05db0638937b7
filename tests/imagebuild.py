"""Build OCI and Docker images in pure Python, for tests: no Docker engine, no registry.

What is built follows the OCI image spec (v1.1) and Docker's own formats:

* a layer is a tar (``application/vnd.oci.image.layer.v1.tar``, ``+gzip``, ``+zstd``; or
  Docker's ``application/vnd.docker.image.rootfs.diff.tar.gzip``); its **diff_id** is the
  sha256 of the uncompressed tar, its **digest** the sha256 of the blob as stored;
* whiteouts: ``<dir>/.wh.<name>`` deletes ``<dir>/<name>`` from the layers below and
  ``<dir>/.wh..wh..opq`` hides everything the layers below put in ``<dir>``;
* the config holds ``architecture``, ``os``, ``config`` (Env, Cmd, ...), ``rootfs.diff_ids``
  and ``history`` (one entry per layer, plus ``empty_layer`` entries such as ENV/ARG steps);
* an OCI image layout is a directory with ``oci-layout``, ``index.json`` and
  ``blobs/sha256/<hex>``;
* ``docker save`` writes a tar with ``manifest.json``. The *classic* flavour (Docker < 25)
  has ``<v1 id>/layer.tar`` (uncompressed; a repeated layer is a symlink
  ``../<first id>/layer.tar``), ``<v1 id>/json``, ``<v1 id>/VERSION`` and ``<config hex>.json``;
  the *oci* flavour (Docker >= 25) is an OCI layout inside the tar plus a ``manifest.json``
  whose paths point into ``blobs/sha256/``.

Everything is deterministic: mtimes 0, uid/gid 0, no user names, gzip without a name and
with mtime 0, entries in the order given; the same call gives the same digests.

The helpers at the end build bad input on purpose (path traversal, decompression bombs,
truncated and mismatched blobs, missing blobs) for the scanner's error-path tests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import posixpath
import random
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import zstandard

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

# (media, compression) -> layer media type. Docker's schema 2 has no zstd type of its own;
# ``...diff.tar.zstd`` is the one containerd uses for it.
LAYER_MEDIA_TYPES: dict[tuple[str, str], str] = {
    ("oci", "none"): OCI_LAYER,
    ("oci", "gzip"): OCI_LAYER + "+gzip",
    ("oci", "zstd"): OCI_LAYER + "+zstd",
    ("docker", "none"): DOCKER_LAYER,
    ("docker", "gzip"): DOCKER_LAYER + ".gzip",
    ("docker", "zstd"): DOCKER_LAYER + ".zstd",
}
COMPRESSIONS = ("gzip", "zstd", "none")
KINDS = ("file", "dir", "symlink", "hardlink", "whiteout", "opaque")

EPOCH = "1970-01-01T00:00:00Z"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"
OCI_LAYOUT_FILE = b'{"imageLayoutVersion": "1.0.0"}'  # as Docker writes it
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GIB = 1024**3
_SPOOL = 64 * 1024 * 1024  # uncompressed layers above this go to a temp file, not memory

_DEFAULT_MODES = {
    "file": 0o644,
    "dir": 0o755,
    "symlink": 0o777,
    "hardlink": 0o644,
    "whiteout": 0o644,
    "opaque": 0o644,
}


# -- the model ------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One tar member of a layer. ``path`` is written as given (no normalisation), so a
    test can write ``../x`` or ``/abs`` on purpose. For ``whiteout`` the member written is
    ``<dirname>/.wh.<basename>``; for ``opaque`` it is ``<path>/.wh..wh..opq``."""

    path: str
    data: bytes = b""
    kind: str = "file"  # file | dir | symlink | hardlink | whiteout | opaque
    target: str = ""  # for symlink / hardlink
    mode: int | None = None  # None: 0o644 for files, 0o755 for dirs, 0o777 for symlinks

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown entry kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.kind in ("symlink", "hardlink") and not self.target:
            raise ValueError(f"{self.kind} {self.path!r} needs a target")

    @property
    def member_name(self) -> str:
        """The name this entry has in the tar."""
        if self.kind == "whiteout":
            head, tail = posixpath.split(self.path.rstrip("/"))
            return posixpath.join(head, WHITEOUT_PREFIX + tail)
        if self.kind == "opaque":
            return posixpath.join(self.path.rstrip("/"), OPAQUE_MARKER)
        return self.path


@dataclass
class Layer:
    """A layer from ``entries``, or, when ``blob`` is set, that blob exactly as given (it
    may be broken on purpose: ``entries`` are then ignored and ``compression`` only picks
    the media type). A raw blob's diff_id is ``diff_id`` if given, else computed by
    decompressing it (for a blob that does not decompress: the sha256 of what came out
    before the error)."""

    entries: list[Entry] = field(default_factory=list)
    compression: str = "gzip"  # gzip | zstd | none
    created_by: str = ""  # the history entry that made this layer
    blob: bytes | None = None
    diff_id: str | None = None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {self.compression!r}")


@dataclass
class Image:
    """A built image: every document and blob as bytes, with their digests."""

    config: bytes
    config_digest: str
    layers: list[bytes]  # blobs as stored (compressed)
    layer_digests: list[str]
    diff_ids: list[str]
    layer_media_types: list[str]
    manifest: bytes
    manifest_digest: str
    manifest_media_type: str
    config_media_type: str = OCI_CONFIG
    media: str = "oci"

    def blobs(self) -> dict[str, bytes]:
        """digest -> bytes for the config and every layer (not the manifest)."""
        out = {self.config_digest: self.config}
        out.update(zip(self.layer_digests, self.layers, strict=True))
        return out

    @property
    def config_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.config)
        return doc

    @property
    def manifest_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.manifest)
        return doc

    def descriptor(
        self, platform: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The descriptor of this image's manifest, as an index lists it."""
        desc: dict[str, Any] = {
            "mediaType": self.manifest_media_type,
            "digest": self.manifest_digest,
            "size": len(self.manifest),
        }
        if platform:
            desc["platform"] = dict(platform)
        if annotations:
            desc["annotations"] = dict(annotations)
        return desc


# -- small pieces -----------------------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    algorithm, _, hexd = digest.partition(":")
    if algorithm != "sha256" or len(hexd) != 64:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexd


def _json(doc: Any) -> bytes:
    """Compact JSON, keys in the order given (what Go's encoder writes for a struct)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _tarinfo(name: str, *, kind: str = "file", size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
    }[kind]
    info.size = size if kind == "file" else 0
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """The uncompressed tar of ``entries``, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            kind = "file" if e.kind in ("whiteout", "opaque") else e.kind
            data = e.data if e.kind == "file" else b""
            mode = e.mode if e.mode is not None else _DEFAULT_MODES[e.kind]
            info = _tarinfo(e.member_name, kind=kind, size=len(data), mode=mode)
            if e.kind in ("symlink", "hardlink"):
                info.linkname = e.target
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
            gz.write(data)
        return buf.getvalue()
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


def detect_compression(blob: bytes) -> str:
    if blob.startswith(GZIP_MAGIC):
        return "gzip"
    if blob.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def iter_decompressed(blob: bytes, compression: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The uncompressed bytes of ``blob`` in chunks (never all at once); raises on a
    broken stream (``zlib.error``, ``EOFError``, ``zstandard.ZstdError``)."""
    if compression == "none":
        for i in range(0, len(blob), chunk):
            yield blob[i : i + chunk]
        return
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(blob), read_across_frames=True
        )
        with reader:
            while part := reader.read(chunk):
                yield part
        return
    if compression != "gzip":
        raise ValueError(f"unknown compression {compression!r}")
    start = 0
    while start < len(blob):  # a gzip file may hold several members, one after another
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pos = start
        while not d.eof:
            if pos >= len(blob):
                raise EOFError("gzip stream ends before its end-of-stream marker")
            buf = blob[pos : pos + chunk]
            pos += len(buf)
            while True:
                out = d.decompress(buf, chunk)
                if out:
                    yield out
                buf = d.unconsumed_tail
                if d.eof or (not buf and len(out) < chunk):
                    break
        start = pos - len(d.unused_data)
        if not blob.startswith(GZIP_MAGIC, start):
            return  # what follows the last member (zero padding) is not data


def decompress(blob: bytes, compression: str | None = None) -> bytes:
    """The whole uncompressed layer tar (for tests on small layers)."""
    return b"".join(iter_decompressed(blob, compression or detect_compression(blob)))


def _diff_id_of(blob: bytes, compression: str) -> str:
    h = hashlib.sha256()
    with contextlib.suppress(zlib.error, EOFError, zstandard.ZstdError):
        for part in iter_decompressed(blob, compression):
            h.update(part)
    return "sha256:" + h.hexdigest()


def build_layer(layer: Layer) -> tuple[bytes, str]:
    """``(blob as stored, diff_id)``."""
    if layer.blob is not None:
        return layer.blob, layer.diff_id or _diff_id_of(layer.blob, layer.compression)
    tar = layer_tar(layer.entries)
    return compress(tar, layer.compression), sha256_digest(tar)


# -- images and indexes ----------------------------------------------------------------------------


def _history(layers: Sequence[Layer], extra: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per layer, with the ``extra`` ones (``empty_layer: true``) placed after the
    layer named by their ``after_layer`` key (0-based; -1 = before the first layer; absent
    = after the last one)."""
    placed: dict[int, list[dict[str, Any]]] = {}
    for raw in extra:
        entry = {"created": EPOCH, **raw}
        after = entry.pop("after_layer", len(layers) - 1)
        if not isinstance(after, int) or not -1 <= after < max(len(layers), 1):
            raise ValueError(f"after_layer {after!r} is not a layer index")
        entry["empty_layer"] = True
        placed.setdefault(after, []).append(entry)
    history = list(placed.get(-1, []))
    for i, layer in enumerate(layers):
        history.append({"created": EPOCH, "created_by": layer.created_by})
        history.extend(placed.get(i, []))
    if not layers:
        history.extend(placed.get(0, []))
    return history


def build_image(
    layers: Sequence[Layer],
    *,
    env: Sequence[str] = (),
    cmd: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    labels: dict[str, str] | None = None,
    working_dir: str = "",
    extra_history: Sequence[dict[str, Any]] = (),
    architecture: str = "amd64",
    os: str = "linux",
    variant: str | None = None,
    media: str = "oci",
    annotations: dict[str, str] | None = None,
) -> Image:
    """An image of ``layers`` (bottom first). ``media`` is ``oci`` (OCI media types) or
    ``docker`` (Docker schema 2). ``extra_history`` entries are marked ``empty_layer``
    (see ``_history`` for where they go). ``annotations`` go on the manifest."""
    if media not in ("oci", "docker"):
        raise ValueError(f"media must be 'oci' or 'docker', not {media!r}")
    blobs: list[bytes] = []
    diff_ids: list[str] = []
    for layer in layers:
        blob, diff_id = build_layer(layer)
        blobs.append(blob)
        diff_ids.append(diff_id)
    run_config: dict[str, Any] = {"Env": list(env)}
    if entrypoint is not None:
        run_config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        run_config["Cmd"] = list(cmd)
    if working_dir:
        run_config["WorkingDir"] = working_dir
    if labels is not None:
        run_config["Labels"] = dict(labels)
    config_doc: dict[str, Any] = {"created": EPOCH, "architecture": architecture}
    if variant:
        config_doc["variant"] = variant
    config_doc["os"] = os
    config_doc["config"] = run_config
    config_doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config_doc["history"] = _history(layers, extra_history)
    return _assemble(
        _json(config_doc),
        blobs,
        diff_ids,
        [LAYER_MEDIA_TYPES[media, layer.compression] for layer in layers],
        media,
        annotations,
    )


def build_image_from_blobs(
    blobs: Sequence[bytes],
    *,
    diff_ids: Sequence[str | None] = (),
    compression: str | None = None,
    **kwargs: Any,
) -> Image:
    """An image whose layers are these blobs exactly as given (a bomb, a truncated or
    hand-made tar ...). The compression of each is told from its magic bytes unless given;
    ``kwargs`` go to ``build_image``."""
    ids = list(diff_ids) + [None] * (len(blobs) - len(diff_ids))
    layers = [
        Layer(
            compression=compression or detect_compression(blob),
            blob=blob,
            diff_id=diff_id,
            created_by=f"raw layer {n}",
        )
        for n, (blob, diff_id) in enumerate(zip(blobs, ids, strict=True))
    ]
    return build_image(layers, **kwargs)


def _assemble(
    config: bytes,
    blobs: list[bytes],
    diff_ids: list[str],
    media_types: list[str],
    media: str,
    annotations: dict[str, str] | None = None,
) -> Image:
    config_media_type = OCI_CONFIG if media == "oci" else DOCKER_CONFIG
    manifest_media_type = OCI_MANIFEST if media == "oci" else DOCKER_MANIFEST
    config_digest = sha256_digest(config)
    layer_digests = [sha256_digest(b) for b in blobs]
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_media_type,
        "config": {"mediaType": config_media_type, "digest": config_digest, "size": len(config)},
        "layers": [
            {"mediaType": mt, "digest": d, "size": len(b)}
            for mt, d, b in zip(media_types, layer_digests, blobs, strict=True)
        ],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    manifest = _json(manifest_doc)
    return Image(
        config=config,
        config_digest=config_digest,
        layers=blobs,
        layer_digests=layer_digests,
        diff_ids=diff_ids,
        layer_media_types=media_types,
        manifest=manifest,
        manifest_digest=sha256_digest(manifest),
        manifest_media_type=manifest_media_type,
        config_media_type=config_media_type,
        media=media,
    )


def with_config(image: Image, config: bytes) -> Image:
    """``image`` with ``config`` as its config blob, byte for byte (a hostile one: nested
    too deep, of the wrong shape ...), and a manifest that names it."""
    return _assemble(config, image.layers, image.diff_ids, image.layer_media_types, image.media)


def with_manifest(image: Image, manifest: bytes) -> Image:
    """``image`` with ``manifest`` (any bytes) as its manifest, blobs unchanged."""
    return replace(image, manifest=manifest, manifest_digest=sha256_digest(manifest))


def nested(depth: int, inner: bytes = b"0") -> bytes:
    """JSON ``inner`` inside ``depth`` levels of lists: ``[[[...0...]]]``."""
    return b"[" * depth + inner + b"]" * depth


def build_index(
    images: Sequence[tuple[Image, dict[str, Any]]],
    *,
    media: str = "oci",
    annotations: dict[str, str] | None = None,
    descriptor_annotations: Sequence[dict[str, str] | None] = (),
) -> tuple[bytes, str]:
    """An image index (``media="docker"``: a Docker manifest list) over ``images``, each
    with its platform (``{"architecture": "amd64", "os": "linux", "variant": ...}``; an
    empty dict leaves the platform out). ``descriptor_annotations[i]`` goes on the i-th
    entry (e.g. ``{"vnd.docker.reference.type": "attestation-manifest"}``). Returns
    ``(body, digest)``."""
    notes = list(descriptor_annotations) + [None] * (len(images) - len(descriptor_annotations))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX if media == "oci" else DOCKER_LIST,
        "manifests": [
            image.descriptor(platform, note)
            for (image, platform), note in zip(images, notes, strict=True)
        ],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    body = _json(doc)
    return body, sha256_digest(body)


# -- OCI image layout ------------------------------------------------------------------------------


def write_oci_layout(
    path: Path,
    image_or_index: Image | tuple[bytes, str] | bytes,
    *,
    ref_name: str | None = "latest",
    images: Sequence[Image] = (),
    nested: bool = True,
) -> None:
    """An OCI image layout at ``path``: ``oci-layout``, ``blobs/sha256/<hex>`` and
    ``index.json``.

    With an ``Image``, ``index.json`` lists its manifest (annotated with ``ref_name``).
    With an index (``(body, digest)`` from ``build_index``, or just the body), its images
    must be passed in ``images``; the index is stored as a blob and ``index.json`` points
    at it (``nested``, what ``buildx --output type=oci`` writes), or, with
    ``nested=False``, ``index.json`` *is* that index. Blobs of ``images`` are always
    written (extra images are allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_bytes(OCI_LAYOUT_FILE)
    blob_dir = path / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    everything = list(images)
    annotations = {REF_NAME: ref_name} if ref_name else None
    if isinstance(image_or_index, Image):
        everything.insert(0, image_or_index)
        top: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [image_or_index.descriptor(annotations=annotations)],
        }
        index_json = _json(top)
    else:
        if isinstance(image_or_index, bytes):
            body, digest = image_or_index, sha256_digest(image_or_index)
        else:
            body, digest = image_or_index
        if sha256_digest(body) != digest:
            raise ValueError("the index body does not match its digest")
        if nested:
            (blob_dir / _hex(digest)).write_bytes(body)
            media_type = json.loads(body).get("mediaType") or OCI_INDEX
            desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
            if annotations:
                desc["annotations"] = annotations
            index_json = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]})
        else:
            index_json = body
    for image in everything:
        (blob_dir / _hex(image.manifest_digest)).write_bytes(image.manifest)
        for digest, data in image.blobs().items():
            (blob_dir / _hex(digest)).write_bytes(data)
    (path / "index.json").write_bytes(index_json)


# -- docker save archives -------------------------------------------------------------------------


@dataclass
class _Member:
    name: str
    data: bytes | None = None
    file: IO[bytes] | None = None
    size: int = 0
    linkname: str = ""  # a symlink when set


def _split_tag(repo_tag: str) -> tuple[str, str]:
    name, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return repo_tag, "latest"
    return name, tag


def _qualified(name: str) -> str:
    """``test/app`` -> ``docker.io/test/app``; ``app`` -> ``docker.io/library/app``."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return name
    return "docker.io/" + (name if sep else "library/" + name)


def _chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    chain: list[str] = []
    for d in diff_ids:
        chain.append(d if not chain else sha256_digest(f"{chain[-1]} {d}".encode()))
    return chain


def _v1_jsons(image: Image) -> list[tuple[str, bytes]]:
    """``(v1 id hex, legacy v1 json)`` per layer, as ``docker save`` derives them: the id
    is the sha256 of the legacy json with ``layer_id`` (the chain id) and ``parent``."""
    cfg = image.config_doc
    out: list[tuple[str, bytes]] = []
    parent = ""
    for n, chain_id in enumerate(_chain_ids(image.diff_ids)):
        v1: dict[str, Any] = {"created": EPOCH, "container_config": {"Cmd": None, "Env": None}}
        if n == len(image.diff_ids) - 1:
            v1 = {
                "created": cfg.get("created", EPOCH),
                "container_config": {"Cmd": None, "Env": None},
                "config": cfg.get("config", {}),
                "architecture": cfg.get("architecture", ""),
                "os": cfg.get("os", ""),
            }
        keyed = dict(v1, layer_id=chain_id)
        if parent:
            keyed["parent"] = "sha256:" + parent
        v1_id = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()
        doc = {"id": v1_id, **({"parent": parent} if parent else {}), **v1}
        doc["os"] = cfg.get("os", "")
        out.append((v1_id, _json(doc)))
        parent = v1_id
    return out


def _uncompressed(blob: bytes, compression: str, stack: contextlib.ExitStack) -> _Member:
    """The decompressed layer, in memory or (when large) a temp file; never all in RAM."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (closed by stack)
    stack.callback(spool.close)
    size = 0
    try:
        for part in iter_decompressed(blob, compression):
            spool.write(part)
            size += len(part)
    except (zlib.error, EOFError, zstandard.ZstdError) as exc:
        raise ValueError(
            f"a layer does not decompress ({exc}); write it with layers='as-is'"
        ) from None
    spool.seek(0)
    return _Member("", file=spool, size=size)


def _file_digest(member: _Member) -> str:
    if member.data is not None:
        return sha256_digest(member.data)
    assert member.file is not None
    h = hashlib.sha256()
    member.file.seek(0)
    while part := member.file.read(1 << 20):
        h.update(part)
    member.file.seek(0)
    return "sha256:" + h.hexdigest()


def _docker_members(
    image: Image,
    repo_tag: str | None,
    flavour: str,
    layers: str,
    stack: contextlib.ExitStack,
) -> tuple[dict[str, _Member], dict[str, Any]]:
    """Every file of the archive by name, and its ``manifest.json`` entry."""
    if flavour not in ("classic", "oci"):
        raise ValueError(f"flavour must be 'classic' or 'oci', not {flavour!r}")
    if layers not in ("uncompressed", "as-is"):
        raise ValueError(f"layers must be 'uncompressed' or 'as-is', not {layers!r}")
    compressions = [_compression_of(mt) for mt in image.layer_media_types]
    contents: list[_Member] = []
    for blob, comp in zip(image.layers, compressions, strict=True):
        if layers == "as-is" or comp == "none":
            contents.append(_Member("", data=blob, size=len(blob)))
        else:
            contents.append(_uncompressed(blob, comp, stack))
    members: dict[str, _Member] = {}

    def add(name: str, data: bytes) -> None:
        members[name] = _Member(name, data=data, size=len(data))

    repo_tags = [repo_tag] if repo_tag else None
    v1 = _v1_jsons(image)
    if flavour == "classic":
        layer_paths: list[str] = []
        first_path: dict[str, str] = {}
        for (v1_id, v1_json), content, diff_id in zip(v1, contents, image.diff_ids, strict=True):
            add(f"{v1_id}/VERSION", b"1.0")
            add(f"{v1_id}/json", v1_json)
            name = f"{v1_id}/layer.tar"
            if diff_id in first_path:  # docker links a repeated layer to the first copy
                members[name] = _Member(name, linkname=f"../{first_path[diff_id]}")
            else:
                first_path[diff_id] = name
                content.name = name
                members[name] = content
            layer_paths.append(name)
        config_name = _hex(image.config_digest) + ".json"
        add(config_name, image.config)
        entry: dict[str, Any] = {
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_paths,
        }
        top_id = v1[-1][0] if v1 else ""
    else:
        blob_names: list[str] = []
        descriptors: list[dict[str, Any]] = []
        for (_, v1_json), content, media_type in zip(
            v1, contents, image.layer_media_types, strict=True
        ):
            if layers == "uncompressed":  # Docker 25's graphdriver export keeps these too
                add(f"blobs/sha256/{_hex(sha256_digest(v1_json))}", v1_json)
            digest = _file_digest(content)
            name = f"blobs/sha256/{_hex(digest)}"
            content.name = name
            members.setdefault(name, content)
            blob_names.append(name)
            mt = media_type if layers == "as-is" else OCI_LAYER
            descriptors.append({"mediaType": mt, "digest": digest, "size": content.size})
        config_name = f"blobs/sha256/{_hex(image.config_digest)}"
        add(config_name, image.config)
        if layers == "as-is":
            manifest, manifest_digest, manifest_mt = (
                image.manifest,
                image.manifest_digest,
                image.manifest_media_type,
            )
        else:
            manifest = _json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": image.config_digest,
                        "size": len(image.config),
                    },
                    "layers": descriptors,
                }
            )
            manifest_digest, manifest_mt = sha256_digest(manifest), OCI_MANIFEST
        add(f"blobs/sha256/{_hex(manifest_digest)}", manifest)
        desc: dict[str, Any] = {
            "mediaType": manifest_mt,
            "digest": manifest_digest,
            "size": len(manifest),
        }
        if repo_tag:
            name_part, tag = _split_tag(repo_tag)
            desc["annotations"] = {
                CONTAINERD_IMAGE_NAME: f"{_qualified(name_part)}:{tag}",
                REF_NAME: tag,
            }
        add("index.json", _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}))
        add("oci-layout", OCI_LAYOUT_FILE)
        entry = {"Config": config_name, "RepoTags": repo_tags, "Layers": blob_names}
        top_id = _hex(image.diff_ids[-1]) if image.diff_ids else ""
    if repo_tag and top_id:
        name_part, tag = _split_tag(repo_tag)
        add("repositories", _json({name_part: {tag: top_id}}) + b"\n")
    return members, entry


def _compression_of(media_type: str) -> str:
    if media_type.endswith(("gzip", "+gzip")):
        return "gzip"
    if media_type.endswith(("zstd", "+zstd")):
        return "zstd"
    return "none"


def _write_tar(path: Path, members: dict[str, _Member], gzip_archive: bool) -> None:
    """The archive: parent directories first, then names in sorted order (as docker's
    ``archive.Tar`` walks its temp dir), mtime 0."""
    names = set(members)
    dirs = {posixpath.dirname(n) for n in names} - {""}
    for d in list(dirs):
        while d := posixpath.dirname(d):
            dirs.add(d)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("wb"))
        out: IO[bytes] | gzip.GzipFile = raw
        if gzip_archive:
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
            out = stack.enter_context(gz)
        tar = stack.enter_context(tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT))
        for name in sorted(names | dirs):
            if name in dirs and name not in members:
                tar.addfile(_tarinfo(name, kind="dir", mode=0o755))
                continue
            m = members[name]
            if m.linkname:
                info = _tarinfo(name, kind="symlink", mode=0o777)
                info.linkname = m.linkname
                tar.addfile(info)
            elif m.data is not None:
                tar.addfile(_tarinfo(name, size=len(m.data)), io.BytesIO(m.data))
            else:
                assert m.file is not None
                m.file.seek(0)
                tar.addfile(_tarinfo(name, size=m.size), m.file)


def write_docker_archive(
    path: Path,
    image: Image,
    *,
    repo_tag: str | None = "test/app:1.0",
    flavour: str = "classic",
    gzip_archive: bool = False,
    layers: str = "uncompressed",
) -> None:
    """What ``docker save`` writes (``flavour="classic"``: Docker < 25; ``"oci"``: Docker
    25+, an OCI layout inside the tar plus ``manifest.json`` pointing into ``blobs/``).

    ``layers="uncompressed"`` stores layer tars uncompressed as ``docker save`` does (in the
    oci flavour with a new manifest: media type ``...layer.v1.tar``, digest = diff_id);
    ``"as-is"`` stores the blobs as built (what Docker's containerd image store exports;
    also the way to put a bomb or a truncated blob into an archive). ``gzip_archive``
    gzips the whole tar (``docker save | gzip``). ``repo_tag=None``: untagged
    (``RepoTags: null``)."""
    _write_docker(path, image, repo_tag, flavour, gzip_archive, layers, drop=(), replace={})


def _write_docker(
    path: Path,
    image: Image,
    repo_tag: str | None,
    flavour: str,
    gzip_archive: bool,
    layers: str,
    *,
    drop: Iterable[str],
    replace: dict[str, bytes],
) -> None:
    with contextlib.ExitStack() as stack:
        members, entry = _docker_members(image, repo_tag, flavour, layers, stack)
        manifest_json = _json([entry]) + b"\n"  # Go's json.Encoder ends with a newline
        members["manifest.json"] = _Member("manifest.json", manifest_json, size=len(manifest_json))
        for name in drop:
            members.pop(name)
        for name, data in replace.items():
            members[name] = _Member(name, data=data, size=len(data))
        _write_tar(path, members, gzip_archive)


def _archive_entry(image: Image, flavour: str, layers: str) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        return _docker_members(image, "test/app:1.0", flavour, layers, stack)[1]


# -- fake credentials and a sample image ------------------------------------------------------------


def fake_aws_key_id(seed: int = 1) -> str:
    """An AWS-style access key id, made at run time (no literal in the sources)."""
    rnd = random.Random(seed)
    return "AKIA" + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def fake_aws_secret(seed: int = 1) -> str:
    rnd = random.Random(f"secret-{seed}")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"
    return "".join(rnd.choice(alphabet) for _ in range(40))


def sample_layers(seed: int = 1, compression: str = "gzip") -> list[Layer]:
    """Three layers: a base, one that adds AWS credentials, one that whites them out."""
    creds = (
        f"[default]\naws_access_key_id = {fake_aws_key_id(seed)}\n"
        f"aws_secret_access_key = {fake_aws_secret(seed)}\n"
    ).encode()
    return [
        Layer(
            [
                Entry("etc", kind="dir"),
                Entry("etc/os-release", b'NAME="Test Linux"\nID=test\n'),
                Entry("usr", kind="dir"),
                Entry("usr/bin", kind="dir"),
                Entry("usr/bin/app", b"#!/bin/sh\necho hello\n", mode=0o755),
                Entry("usr/bin/sh", kind="symlink", target="/bin/busybox"),
            ],
            compression=compression,
            created_by="ADD rootfs.tar /",
        ),
        Layer(
            [
                Entry("root", kind="dir", mode=0o700),
                Entry("root/.aws", kind="dir", mode=0o700),
                Entry("root/.aws/credentials", creds, mode=0o600),
            ],
            compression=compression,
            created_by="COPY credentials /root/.aws/credentials",
        ),
        Layer(
            [Entry("root/.aws/credentials", kind="whiteout")],
            compression=compression,
            created_by="RUN rm /root/.aws/credentials",
        ),
    ]


def sample_image(seed: int = 1, *, media: str = "oci", compression: str = "gzip") -> Image:
    return build_image(
        sample_layers(seed, compression),
        env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        cmd=["/usr/bin/app"],
        labels={"org.opencontainers.image.title": "sample"},
        extra_history=[{"created_by": "ENV APP_ENV=test", "after_layer": 0}],
        media=media,
    )


# -- bad input --------------------------------------------------------------------------------------


def unsafe_layer(compression: str = "gzip") -> bytes:
    """A layer blob whose members try to escape the root: ``../../etc/evil``,
    ``/abs/path``, a symlink ``link -> ../../../../etc/passwd`` and a hardlink
    ``hard -> ../../outside``."""
    tar = layer_tar(
        [
            Entry("../../etc/evil", b"written outside the root\n"),
            Entry("/abs/path", b"absolute member name\n"),
            Entry("link", kind="symlink", target="../../../../etc/passwd"),
            Entry("hard", kind="hardlink", target="../../outside"),
        ]
    )
    return compress(tar, compression)


traversal_layer = unsafe_layer


def _tar_body(entries: Iterable[Entry]) -> bytes:
    """The tar of ``entries`` without its end-of-archive blocks (more entries may follow)."""
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    for e in entries:
        kind = "file" if e.kind in ("whiteout", "opaque") else e.kind
        data = e.data if e.kind == "file" else b""
        mode = e.mode if e.mode is not None else _DEFAULT_MODES[e.kind]
        info = _tarinfo(e.member_name, kind=kind, size=len(data), mode=mode)
        if e.kind in ("symlink", "hardlink"):
            info.linkname = e.target
        tar.addfile(info, io.BytesIO(data) if data else None)
    body = buf.getvalue()[: tar.offset]
    tar.close()
    return body


def many_entries_tar(
    n: int, *, prefix: str = "e/", head: Sequence[Entry] = (), tail: Sequence[Entry] = ()
) -> bytes:
    """An uncompressed tar of ``head``, then ``n`` empty files ``<prefix>0000000`` ...,
    then ``tail``. The empty entries are ustar headers written directly (tarfile takes
    ~20 µs an entry): 200,000 in about a second, 512 bytes each."""
    template = bytearray(_tarinfo("x").tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
    template[148:156] = b" " * 8  # the checksum field counts as spaces
    base_sum = sum(template) - ord("x")
    template[0:1] = b"\0"
    out = bytearray(_tar_body(head))
    for i in range(n):
        name = f"{prefix}{i:07d}".encode()
        header = bytearray(template)
        header[0 : len(name)] = name
        header[148:156] = b"%06o\0 " % (base_sum + sum(name))
        out += header
    return bytes(out) + layer_tar(tail)  # layer_tar ends with the end-of-archive blocks


def archive_entries(path: Path) -> list[Entry]:
    """The files, directories and symlinks of a tar (a docker archive) as entries."""
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            if m.issym():
                out.append(Entry(m.name, kind="symlink", target=m.linkname))
            elif m.isdir():
                out.append(Entry(m.name, kind="dir"))
            else:
                fh = tar.extractfile(m)
                out.append(Entry(m.name, fh.read() if fh is not None else b""))
    return out


def _bomb_parts(inflated_size: int, path: str) -> tuple[bytes, bytes]:
    """The tar around the zeros: the member's header and what follows its data (padding
    to 512 and the two zero blocks that end a tar)."""
    info = _tarinfo(path, size=inflated_size)
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return header, bytes((-inflated_size) % 512 + 1024)


def bomb_layer(
    inflated_size: int = 4 * GIB,
    *,
    path: str = "bomb.bin",
    compression: str = "gzip",
    chunk: int = 8 * 1024 * 1024,
    fast: bool = True,
) -> bytes:
    """A small layer blob that inflates to a tar with one file of ``inflated_size`` zero
    bytes (~1 MB of gzip per GiB; zstd is smaller still). Built by streaming zeros through
    the compressor ``chunk`` bytes at a time, never holding the inflated data.

    gzip with ``fast``: each chunk is deflated after a full flush, so every chunk's output
    is the same bytes; they are computed once and repeated (checked against a second
    chunk), and the CRC is still computed over all the zeros. The result is byte-identical
    to ``fast=False``, which deflates every chunk."""
    header, trailer = _bomb_parts(inflated_size, path)
    full, rest = divmod(inflated_size, chunk)
    zeros = bytes(chunk)
    if compression == "zstd":
        out = io.BytesIO()
        zc = zstandard.ZstdCompressor(level=3).compressobj(
            size=len(header) + inflated_size + len(trailer)
        )
        out.write(zc.compress(header))
        for _ in range(full):
            out.write(zc.compress(zeros))
        out.write(zc.compress(bytes(rest) + trailer))
        out.write(zc.flush())
        return out.getvalue()
    if compression != "gzip":
        raise ValueError("a bomb is gzip or zstd")
    # gzip member: header (no name, mtime 0, XFL 2 = best, OS 255 = unknown), raw deflate, trailer
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts.append(co.compress(header) + co.flush(zlib.Z_FULL_FLUSH))
    remaining = full
    if fast and full >= 2:
        first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
        second = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
        # after a full flush deflate starts afresh, so each chunk of zeros gives the same bytes
        parts += [first * full] if first == second else [first, second]
        remaining = 0 if first == second else full - 2
    for _ in range(remaining):
        parts.append(co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH))
    crc = zlib.crc32(header)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    tail = bytes(rest) + trailer
    parts.append(co.compress(tail) + co.flush(zlib.Z_FINISH))
    crc = zlib.crc32(tail, crc)
    total = len(header) + inflated_size + len(trailer)
    parts.append(struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
    return b"".join(parts)


def bomb_diff_id(inflated_size: int = 4 * GIB, *, path: str = "bomb.bin") -> str:
    """The diff_id of ``bomb_layer(inflated_size, path=path)`` without inflating it."""
    header, trailer = _bomb_parts(inflated_size, path)
    h = hashlib.sha256(header)
    zeros = bytes(8 * 1024 * 1024)
    full, rest = divmod(inflated_size, len(zeros))
    for _ in range(full):
        h.update(zeros)
    h.update(bytes(rest) + trailer)
    return "sha256:" + h.hexdigest()


def truncated_layer(layer: Layer | None = None, *, keep: float = 0.5) -> bytes:
    """A valid layer blob cut short (the first ``keep`` of its bytes). The default layer
    holds 256 KiB of incompressible data, so the cut lands inside a file's content."""
    if layer is None:
        data = random.Random(7).randbytes(256 * 1024)
        layer = Layer([Entry("data", kind="dir"), Entry("data/blob.bin", data)])
    blob, _ = build_layer(layer)
    return blob[: int(len(blob) * keep)]


def _blob_of(image: Image, which: str, index: int) -> str:
    if which == "layer":
        return image.layer_digests[index]
    if which == "config":
        return image.config_digest
    if which == "manifest":
        return image.manifest_digest
    raise ValueError(f"which must be 'layer', 'config' or 'manifest', not {which!r}")


def missing_blob_layout(
    path: Path, image: Image | None = None, *, which: str = "layer", index: int = 0
) -> str:
    """An OCI layout whose manifest names a blob that is not there; returns its digest."""
    image = image or sample_image()
    write_oci_layout(path, image)
    digest = _blob_of(image, which, index)
    (path / "blobs" / "sha256" / _hex(digest)).unlink()
    return digest


def corrupt_blob_layout(
    path: Path,
    image: Image | None = None,
    *,
    which: str = "layer",
    index: int = 0,
    replacement: bytes | None = None,
) -> str:
    """An OCI layout in which one blob's bytes do not match its digest: written, then the
    blob file overwritten, by default with the same bytes but one flipped in the middle
    (same size, so only the digest check can tell), or with ``replacement``. Returns the
    digest the manifest (or index) names."""
    image = image or sample_image()
    write_oci_layout(path, image)
    digest = _blob_of(image, which, index)
    blob = path / "blobs" / "sha256" / _hex(digest)
    if replacement is None:
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        replacement = bytes(data)
    blob.write_bytes(replacement)
    return digest


def missing_blob_archive(
    path: Path,
    image: Image | None = None,
    *,
    flavour: str = "classic",
    which: str = "layer",
    index: int = 0,
    layers: str = "as-is",
) -> str:
    """A ``docker save`` archive whose ``manifest.json`` names a file (a layer, or the
    config) that is not in the tar. Returns that name."""
    image = image or sample_image()
    if which not in ("layer", "config"):
        raise ValueError(f"which must be 'layer' or 'config', not {which!r}")
    entry = _archive_entry(image, flavour, layers)
    name = str(entry["Config"] if which == "config" else entry["Layers"][index])
    _write_docker(path, image, "test/app:1.0", flavour, False, layers, drop=[name], replace={})
    return name


def corrupt_blob_archive(
    path: Path,
    image: Image | None = None,
    *,
    flavour: str = "oci",
    index: int = 0,
    replacement: bytes | None = None,
    layers: str = "as-is",
) -> str:
    """A ``docker save`` archive whose layer file's bytes match neither the digest in its
    name (oci flavour) nor the diff_id in the config: by default one byte is flipped.
    Returns the member's name."""
    image = image or sample_image()
    with contextlib.ExitStack() as stack:
        members, entry = _docker_members(image, "test/app:1.0", flavour, layers, stack)
        name = str(entry["Layers"][index])
        m = members[name]
        if replacement is None:
            if m.data is None:
                assert m.file is not None
                m.file.seek(0)
                data = bytearray(m.file.read())
            else:
                data = bytearray(m.data)
            data[len(data) // 2] ^= 0xFF
            replacement = bytes(data)
    _write_docker(
        path, image, "test/app:1.0", flavour, False, layers, drop=(), replace={name: replacement}
    )
    return name
