"""OCI and Docker image metadata: descriptors, manifests, indexes, configs, digests.

Facts from the OCI image spec (v1.1) and Docker's image manifest v2 schema 2: an
index lists manifests (one per platform); a manifest names a config blob and layer
blobs by digest; the config holds the runtime settings (Env, Cmd, Labels ...), the
uncompressed layer digests (``rootfs.diff_ids``) and the build history. Every blob is
addressed by the digest of its bytes, and a reader that does not check it trusts
whoever served the blob: ``Verified`` checks as it streams.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import IO, Any

from sentinel.errors import SourceError
from sentinel.sources import boundedjson

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_JSON = 16 * 1024 * 1024  # a manifest, index or config larger than this is refused

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


class ImageError(SourceError):
    """An image that cannot be read, or should not be trusted."""


class BadDocument(ImageError):
    """One JSON document of an image (a manifest, an index, a config) that is too large,
    too deep, not JSON or not an object: that image is skipped or scanned without it,
    and the others are still scanned."""


def check_digest(digest: str, where: str = "") -> str:
    """``digest`` if it is a well-formed sha256/sha512 digest (it becomes a file name in
    a layout and a URL path in a registry: nothing else may pass)."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ImageError(f"{where or 'image'}: {str(digest)[:80]!r} is not a valid digest")
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, where: str) -> Descriptor:
        if not isinstance(raw, dict):
            raise ImageError(f"{where}: a descriptor is not an object")
        size = raw.get("size", -1)
        if not isinstance(size, int) or size < -1:
            raise ImageError(f"{where}: descriptor size {size!r} is not a size")
        platform = raw.get("platform")
        annotations = raw.get("annotations")
        return cls(
            media_type=str(raw.get("mediaType", "")),
            digest=check_digest(raw.get("digest", ""), where),
            size=size,
            platform=platform if isinstance(platform, dict) else None,
            # only text: an annotation of another shape is nothing a reader uses
            annotations=(
                {k: v for k, v in annotations.items() if isinstance(v, str)}
                if isinstance(annotations, dict)
                else {}
            ),
        )


def platform_name(p: dict[str, Any] | None) -> str:
    if not p:
        return ""
    name = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return f"{name}/{p['variant']}" if p.get("variant") else name


def platform_matches(p: dict[str, Any] | None, wanted: str) -> bool:
    """``wanted`` is ``os/arch[/variant]`` as on the docker command line."""
    parts = wanted.strip().lower().split("/")
    if not p or len(parts) < 2:
        return False
    if (
        str(p.get("os", "")).lower() != parts[0]
        or str(p.get("architecture", "")).lower() != parts[1]
    ):
        return False
    return len(parts) < 3 or str(p.get("variant", "")).lower() == parts[2]


def load_json(data: bytes, what: str, max_bytes: int = MAX_JSON) -> dict[str, Any]:
    """A manifest, index or config: a JSON object of at most ``max_bytes``, nested at
    most ``boundedjson``'s default depth, else ``BadDocument``."""
    try:
        doc = boundedjson.loads(data, what=what, max_bytes=max_bytes)
    except boundedjson.JSONRefused as exc:
        raise BadDocument(str(exc)) from None
    if not isinstance(doc, dict):
        raise BadDocument(f"{what} is not a JSON object")
    return doc


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]


def kind_of(doc: dict[str, Any], media_type: str = "") -> str:
    """``index`` or ``manifest`` (the media type can be in the document, in the
    response header, or only implied by its fields)."""
    mt = str(doc.get("mediaType") or media_type)
    if mt in INDEX_TYPES or (not mt and "manifests" in doc):
        return "index"
    if mt in MANIFEST_TYPES or (not mt and "layers" in doc and "config" in doc):
        return "manifest"
    if doc.get("schemaVersion") == 1:
        raise ImageError("a schema 1 image manifest: deprecated and unsigned, not supported")
    raise ImageError(f"unsupported manifest media type {mt!r}")


def parse_index(doc: dict[str, Any], where: str) -> list[Descriptor]:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"{where}: the index has no manifests list")
    return [Descriptor.parse(e, where) for e in entries]


def parse_manifest(doc: dict[str, Any], where: str) -> Manifest:
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"{where}: the manifest has no layers list")
    return Manifest(
        Descriptor.parse(doc.get("config"), where),
        tuple(Descriptor.parse(layer, where) for layer in layers),
    )


def is_attestation(desc: Descriptor) -> bool:
    """BuildKit stores provenance/SBOM manifests in the index as platform unknown/unknown."""
    p = desc.platform or {}
    return (
        p.get("os") == "unknown"
        or desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
    )


class Verified:
    """A read-only stream that hashes what passes through it and, at the end, raises
    if the bytes do not match ``digest`` (and ``size``, when known). Whoever reads to
    the end has read exactly the blob the manifest named, or gets an error."""

    def __init__(self, raw: IO[bytes], digest: str, size: int, what: str) -> None:
        algorithm, _, self._hex = digest.partition(":")
        self._raw = raw
        self._hash = hashlib.new(algorithm)
        self._size = size
        self._seen = 0
        self._what = what
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n) if n is not None and n >= 0 else self._raw.read()
        if data:
            self._seen += len(data)
            self._hash.update(data)
            if self._size >= 0 and self._seen > self._size:
                raise ImageError(
                    f"{self._what}: more bytes than the {self._size} its manifest says"
                )
        elif n != 0:
            self.finish()
        return data

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._size >= 0 and self._seen != self._size:
            raise ImageError(
                f"{self._what}: truncated ({self._seen} of {self._size} bytes)"
                if self._seen < self._size
                else f"{self._what}: {self._seen} bytes, not the {self._size} its manifest says"
            )
        if self._hash.hexdigest() != self._hex:
            raise ImageError(f"{self._what}: content does not match its digest (rejected)")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


def read_verified(raw: IO[bytes], desc: Descriptor, what: str, cap: int = MAX_JSON) -> bytes:
    if desc.size > cap:
        raise ImageError(f"{what} is {desc.size} bytes: larger than any real one")
    v = Verified(raw, desc.digest, desc.size, what)
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = v.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise ImageError(f"{what} is larger than {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)
