"""Container images: every file of every layer, deleted ones included, and the config.

A target is a ``docker save`` archive (``.tar``, optionally gzipped), an OCI image
layout directory, or a registry reference pulled over the distribution API. An
index (multi-platform image) is scanned platform by platform, all of them unless one
is asked for. Each layer is streamed once: decompressed on the fly, its tar walked,
files handed in batches to the worker pool; every blob's digest is checked as it is
read (a mismatch rejects the image). A file that a later layer whiteouts is still in
the image for anyone who pulls it: its findings carry ``deleted_in_layer``.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from detectors.engine import EngineStats
from sentinel.models import Origin
from sentinel.sources import boundedjson, oci
from sentinel.sources.archive import ADVICE, Member
from sentinel.sources.layer_cache import CleanLayer, LayerCache
from sentinel.sources.layers import Decompressed, Limits, items
from sentinel.sources.oci import Descriptor, ImageError

BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 4096  # and at most this many files a batch (a layer of tiny files)
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class ImageStats:
    images: int = 0
    layers: int = 0
    layers_cached: int = 0
    files: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    engine: EngineStats = field(default_factory=EngineStats)


# -- targets ------------------------------------------------------------------------------------


class Target:
    """Where the image's JSON documents and blobs come from."""

    name: str

    def root(self) -> tuple[bytes, str, str | None]:
        """(top manifest or index, its media type, its digest if known)."""
        raise NotImplementedError

    def blob(self, desc: Descriptor) -> IO[bytes]:
        raise NotImplementedError

    def manifest(self, desc: Descriptor) -> bytes:
        return oci.read_verified(self.blob(desc), desc, f"{self.name}: manifest {desc.digest[:19]}")

    def close(self) -> None:
        pass


class LayoutTarget(Target):
    """An OCI image layout directory: ``index.json`` and ``blobs/<alg>/<hex>``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        if not (path / "index.json").exists():
            raise ImageError(f"{path}: not an OCI image layout (no index.json)")

    def root(self) -> tuple[bytes, str, str | None]:
        from sentinel.sources.safeio import FileTooLarge, read_regular

        try:
            data = read_regular(self.path / "index.json", oci.MAX_JSON)
        except FileTooLarge:
            raise ImageError(
                f"{self.path}/index.json is larger than {oci.MAX_JSON // 1024**2} MiB: "
                "too large for an image index"
            ) from None
        except OSError as exc:
            raise ImageError(f"{self.path}/index.json: {exc.strerror}") from None
        return data, oci.OCI_INDEX, None

    def blob(self, desc: Descriptor) -> IO[bytes]:
        alg, _, hexd = oci.check_digest(desc.digest, self.name).partition(":")
        path = self.path / "blobs" / alg / hexd
        from sentinel.sources.safeio import NotRegularFile, open_regular

        try:
            return open_regular(path)  # a FIFO in the layout is refused, not waited on
        except NotRegularFile as exc:
            raise ImageError(
                f"{self.name}: blob {desc.digest[:19]}… is {exc.kind}, not a file (rejected)"
            ) from None
        except OSError:
            raise ImageError(
                f"{self.name}: blob {desc.digest[:19]}… is missing from the layout"
            ) from None


class ArchiveTarget(Target):
    """A ``docker save`` archive: ``manifest.json`` naming the config and layer files
    (classic ``<id>/layer.tar`` or, since Docker 25, an OCI layout's ``blobs/``)."""

    def __init__(self, path: Path, limits: Limits) -> None:
        from sentinel.sources.archive import ArchiveIndex

        self.path = path
        self.name = str(path)
        self.index = ArchiveIndex(path, limits)
        self.members = self.index.members
        self._synthetic: dict[str, tuple[str, int]] = {}

    def _resolve(self, name: str) -> Member | None:
        m = self.members.get(name) or self.members.get(posixpath.normpath(name))
        for _ in range(8):  # docker save writes a repeated layer as a symlink to the first
            if m is None or not m.linkname:
                break
            base = "" if m.hardlink else posixpath.dirname(name)
            name = posixpath.normpath(posixpath.join(base, m.linkname))
            m = self.members.get(name)
        return m

    def _member(self, name: str) -> IO[bytes]:
        m = self._resolve(name)
        if m is None or m.linkname:
            raise self.index.missing(name)
        return self.index.open_member(m)

    def root(self) -> tuple[bytes, str, str | None]:
        if "manifest.json" not in self.members:
            if "index.json" in self.members:
                raise ImageError(
                    f"{self.name}: an OCI layout packed as a tar without manifest.json; "
                    "unpack it and scan the directory"
                )
            if self.index.not_indexed:
                raise self.index.missing("manifest.json")
            raise ImageError(f"{self.name}: not a docker save archive (no manifest.json); {ADVICE}")
        size = self.members["manifest.json"].size
        if size > oci.MAX_JSON:
            raise ImageError(
                f"{self.name}: manifest.json is {size / 1024**2:,.0f} MiB, too large for an image "
                f"archive's (at most {oci.MAX_JSON // 1024**2} MiB); {ADVICE}"
            )
        with self._member("manifest.json") as fh:
            data = fh.read(oci.MAX_JSON + 1)
        try:
            entries = boundedjson.loads(
                data, what=f"{self.name}: manifest.json", max_bytes=oci.MAX_JSON
            )
        except boundedjson.JSONRefused as exc:
            raise oci.BadDocument(str(exc)) from None
        if not isinstance(entries, list) or not entries:
            raise ImageError(f"{self.name}: manifest.json lists no image")
        # one synthetic index over the archive's images; descriptors stand for files
        manifests = []
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
                raise ImageError(f"{self.name}: manifest.json entry {n} is malformed")
            key = f"sha256:{n:064x}"
            self._synthetic[key] = (str(entry.get("Config", "")), n)
            tags = entry.get("RepoTags")
            tag = tags[0] if isinstance(tags, list) and tags and isinstance(tags[0], str) else ""
            manifests.append(
                {
                    "mediaType": oci.OCI_MANIFEST,
                    "digest": key,
                    "size": 0,
                    "annotations": {"org.opencontainers.image.ref.name": tag},
                }
            )
        self._entries = entries
        return json.dumps({"manifests": manifests}).encode(), oci.OCI_INDEX, None

    def manifest(self, desc: Descriptor) -> bytes:
        config_path, n = self._synthetic[desc.digest]
        entry = self._entries[n]
        config_digest = self._digest_from_path(config_path)
        with self._member(config_path) as fh:
            config_data = fh.read(oci.MAX_JSON + 1)
        if len(config_data) > oci.MAX_JSON:
            raise ImageError(f"{self.name}: {config_path} is too large for an image config")
        actual = oci.digest_of(config_data)
        if config_digest and config_digest != actual:
            raise ImageError(f"{self.name}: {config_path} does not match its digest (rejected)")
        bad: oci.BadDocument | None = None
        try:
            config = oci.load_json(config_data, f"{self.name}: {config_path}")
        except oci.BadDocument as exc:
            # layers named by digest need no config: scan_images reads it again, says
            # so, and scans them; a classic layer needs its diff_id from the config
            bad, config = exc, {}
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list):
            diff_ids = []
        layers = []
        for i, layer_path in enumerate(entry["Layers"]):
            digest = self._digest_from_path(str(layer_path))
            if digest is None:  # classic layout: <id>/layer.tar, uncompressed: its diff_id
                if bad is not None:
                    raise bad
                if i >= len(diff_ids):
                    raise ImageError(f"{self.name}: layer {i} has no diff_id in the config")
                digest = oci.check_digest(diff_ids[i], f"{self.name}: config")
            member = self._resolve(str(layer_path))
            size = member.size if member is not None else -1
            layers.append(
                {"mediaType": TAR_LAYER, "digest": digest, "size": size, "x-path": str(layer_path)}
            )
        return json.dumps(
            {
                "mediaType": oci.OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": actual,
                    "size": len(config_data),
                },
                "layers": layers,
                "x-paths": [str(p) for p in entry["Layers"]],
                "x-config": config_path,
            }
        ).encode()

    @staticmethod
    def _digest_from_path(path: str) -> str | None:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "blobs":
            return oci.check_digest(f"{parts[1]}:{parts[2]}", path)
        base = parts[-1]
        if base.endswith(".json") and len(base) == 69:  # <hex>.json: the config's digest
            return oci.check_digest(f"sha256:{base[:-5]}", path)
        return None

    def blob(self, desc: Descriptor) -> IO[bytes]:
        path = desc.annotations.get("x-path")
        if path is None:
            alg, _, hexd = desc.digest.partition(":")
            path = f"blobs/{alg}/{hexd}"
        return self._member(path)


class RegistryTarget(Target):
    def __init__(self, text: str, insecure: bool, timeout: float) -> None:
        from sentinel.sources.registry import RegistryClient, parse_reference

        self.ref = parse_reference(text)
        self.name = str(self.ref)
        self.client = RegistryClient(self.ref, insecure=insecure, timeout=timeout)

    def root(self) -> tuple[bytes, str, str | None]:
        data, media_type = self.client.manifest(self.ref.reference)
        if (
            self.ref.digest
            and oci.digest_of(data, self.ref.digest.split(":")[0]) != self.ref.digest
        ):
            raise ImageError(
                f"{self.name}: the manifest does not match the digest asked for (rejected)"
            )
        return data, media_type, self.ref.digest

    def manifest(self, desc: Descriptor) -> bytes:
        data, _ = self.client.manifest(desc.digest)
        if oci.digest_of(data, desc.digest.split(":")[0]) != desc.digest:
            raise ImageError(
                f"{self.name}: manifest {desc.digest[:19]}… does not match its digest (rejected)"
            )
        return data

    def blob(self, desc: Descriptor) -> IO[bytes]:
        return self.client.blob(desc)


def open_target(
    text: str, limits: Limits, *, insecure: bool = False, timeout: float = 30.0
) -> Target:
    path = Path(text)
    if path.is_dir():
        return LayoutTarget(path)
    if path.is_file():
        return ArchiveTarget(path, limits)
    if path.exists():
        raise ImageError(f"{text}: neither an image archive nor an OCI layout directory")
    if text.endswith((".tar", ".tar.gz", ".tgz")) or text.startswith(("/", "./", "../")):
        raise ImageError(f"{text}: no such file")
    return RegistryTarget(text, insecure, timeout)


# -- scanning -----------------------------------------------------------------------------------


@dataclass
class _Hit:
    layer: int
    path: str
    raw: Any


@dataclass(frozen=True)
class ImageSpec:
    """One image to scan: its name (with platform, for an index) and manifest."""

    name: str
    platform: str
    manifest: oci.Manifest


def images(
    target: Target, platform: str | None, errors: list[str] | None = None
) -> Iterator[ImageSpec]:
    """Every image the target holds (every platform of an index, nested indexes
    followed), or only those of ``platform``. An image of an index whose manifest or
    config is too large, too deep or not JSON (``BadDocument``) is named in ``errors``
    and skipped; the others are still yielded. Without ``errors`` it raises."""
    errors = [] if errors is None else errors
    before = len(errors)
    body, media_type, _ = target.root()
    top = f"{target.name}/index.json" if isinstance(target, LayoutTarget) else target.name
    doc = oci.load_json(body, f"{top}: manifest" if top == target.name else top)
    seen: set[str] = set()
    if oci.kind_of(doc, media_type) == "manifest":
        single = _manifest_spec(target, target.name, "", doc, platform, seen, errors)
        if single is None:
            if len(errors) > before:
                return
            have = ", ".join(sorted(p for p in seen if p)) or "unnamed"
            raise ImageError(f"{target.name}: no {platform} image (it is {have})")
        yield single
        return
    found = 0
    for spec in _walk_index(target, doc, target.name, platform, seen, 0, errors):
        if spec is not None:
            found += 1
            yield spec
    if not found and len(errors) == before:
        if platform:
            have = ", ".join(sorted(p for p in seen if p)) or "none named"
            raise ImageError(f"{target.name}: no {platform} image (it has: {have})")
        raise ImageError(f"{target.name}: the index lists no image")


def _walk_index(
    target: Target,
    doc: dict[str, Any],
    name: str,
    platform: str | None,
    seen: set[str],
    depth: int,
    errors: list[str],
) -> Iterator[ImageSpec | None]:
    if depth > 4:
        raise ImageError(f"{target.name}: indexes nested more than 4 deep")
    for d in oci.parse_index(doc, name):
        if oci.is_attestation(d):
            continue
        if d.platform:
            seen.add(oci.platform_name(d.platform))
            if platform and not oci.platform_matches(d.platform, platform):
                continue
        ref_name = d.annotations.get("org.opencontainers.image.ref.name", "")
        label = name if not ref_name or ref_name in name else f"{name} ({ref_name})"
        try:
            data = target.manifest(d)
            sub = oci.load_json(data, f"{target.name}: manifest {d.digest[:19]}")
        except oci.BadDocument as exc:
            errors.append(f"{exc}; that image was not scanned")
            continue
        if oci.kind_of(sub, d.media_type) == "index":
            yield from _walk_index(target, sub, label, platform, seen, depth + 1, errors)
            continue
        yield _manifest_spec(
            target, label, oci.platform_name(d.platform), sub, platform, seen, errors
        )


def _manifest_spec(
    target: Target,
    name: str,
    platform_label: str,
    doc: dict[str, Any],
    platform: str | None,
    seen: set[str],
    errors: list[str],
) -> ImageSpec | None:
    manifest = oci.parse_manifest(doc, name)
    if isinstance(target, ArchiveTarget):
        # the synthetic manifest carries the path of each file in the archive
        paths = doc.get("x-paths", [])
        c = manifest.config
        manifest = oci.Manifest(
            Descriptor(c.media_type, c.digest, c.size, None, {"x-path": doc["x-config"]}),
            tuple(
                Descriptor(d2.media_type, d2.digest, d2.size, None, {"x-path": p})
                for d2, p in zip(manifest.layers, paths, strict=False)
            ),
        )
    if platform and not platform_label:
        # no platform in the index entry: the config says what the image is for
        try:
            config = oci.load_json(
                oci.read_verified(target.blob(manifest.config), manifest.config, f"{name}: config"),
                f"{name}: config",
            )
        except oci.BadDocument as exc:
            errors.append(f"{exc}; its platform is unknown, so it was not scanned")
            return None
        p = {
            k: config[k]
            for k in ("os", "architecture", "variant")
            if isinstance(config.get(k), str) and config[k]
        }
        seen.add(oci.platform_name(p))
        if not oci.platform_matches(p, platform):
            return None
    return ImageSpec(name, platform_label, manifest)


def _history_for_layers(config: dict[str, Any], n_layers: int, hits: list[Any]) -> list[str]:
    """The ``created_by`` of the history entry that made each layer (entries marked
    ``empty_layer`` made none), as reports show it: every span in which the scan of
    ``config:history`` found a secret (``hits``, positions in the text that
    ``config_documents`` yields, one entry per line) is redacted."""
    spans: dict[int, list[Any]] = {}
    for h in hits:
        spans.setdefault(h.line - 1, []).append(h)
    out = []
    history = config.get("history")
    for j, h in enumerate(history if isinstance(history, list) else []):
        if isinstance(h, dict) and not h.get("empty_layer"):
            out.append(_redact_spans(_history_line(h), spans.get(j, [])))
    return (out + [""] * n_layers)[:n_layers]


def _redact_spans(text: str, hits: list[Any]) -> str:
    """``text`` with each hit's span replaced by its redacted preview. A secret found
    inside an encoded run (``echo <base64> | base64 -d``) has the whole run as its span,
    so the encoding that hid it is redacted too, not only a plaintext copy."""
    from sentinel.fingerprint import redact

    cuts = []
    for h in hits:
        start = h.column - 1
        end = h.end_column - 1 if h.end_line == h.line else len(text)
        shown = redact(h.secret) if h.secret else str(getattr(h, "redacted", "********"))
        if h.decoded:
            shown = f"<{h.decoded}: {shown}>"
        cuts.append((start, max(end, start), shown))
    for start, end, shown in sorted(cuts, reverse=True):
        text = text[:start] + shown + text[end:]
    for h in hits:  # and any other plaintext copy on the line
        if h.secret and h.secret in text:
            text = text.replace(h.secret, redact(h.secret))
    return text


def config_documents(
    config: dict[str, Any], problems: list[str] | None = None
) -> Iterator[tuple[str, bytes]]:
    """(path shown in reports, text) for every part of the config a secret hides in.

    A part of another shape than the spec's (``config`` a list, ``Env`` an object,
    ``created_by`` a list ...) is still scanned: all the text in it, one value a line;
    ``problems`` gets one sentence for each such part."""
    problems = [] if problems is None else problems
    c = config.get("config") or config.get("container_config") or {}
    if not isinstance(c, dict):
        problems.append(f"config is {_shape(c)}, not an object")
        yield "config:config", _text(c).encode()
        c = {}
    env = c.get("Env") or []
    if env:
        if not _strings(env):
            problems.append(f"Env is {_shape(env)}, not a list of strings")
        yield "config:Env", _text(env).encode()
    labels = c.get("Labels") or {}
    if labels:
        if isinstance(labels, dict):
            if not all(isinstance(v, str) for v in labels.values()):
                problems.append("Labels has values that are not strings")
            text = "\n".join(f"{k}={_text(v, ' ')}" for k, v in labels.items())
        else:
            problems.append(f"Labels is {_shape(labels)}, not an object")
            text = _text(labels)
        yield "config:Labels", text.encode()
    for key in ("Entrypoint", "Cmd"):
        v = c.get(key)
        if v:
            if not (isinstance(v, str) or _strings(v)):
                problems.append(f"{key} is {_shape(v)}, not a list of strings")
            yield f"config:{key}", _text(v, " ").encode()
    history = config.get("history") or []
    if history:
        if not isinstance(history, list):
            problems.append(f"history is {_shape(history)}, not a list")
            # one line, as a list of one entry would be: no line is any layer's
            yield "config:history", _text(history, " ").encode()
        else:
            odd = [
                j
                for j, h in enumerate(history)
                if not isinstance(h, dict) or not isinstance(h.get("created_by") or "", str)
            ]
            if odd:
                problems.append(
                    f"{len(odd):,} history entr{'y' if len(odd) == 1 else 'ies'} "
                    f"(the first: {odd[0]}) not an object with a string created_by"
                )
            yield "config:history", "\n".join(_history_line(h) for h in history).encode()


def _history_line(h: Any) -> str:
    """One history entry as one line of ``config:history``: its ``created_by``; all the
    text of an entry or a ``created_by`` of another shape."""
    if isinstance(h, dict):
        h = h.get("created_by", "")
    return _text(h, " ").replace("\n", " ")


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(e, str) for e in v)


def _shape(v: Any) -> str:
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return "a string"
    return "a number" if isinstance(v, (int, float)) and not isinstance(v, bool) else "a scalar"


def _text(v: Any, sep: str = "\n") -> str:
    """Every string, key and number in ``v``, ``sep`` between values (the document's
    nesting is bounded by ``boundedjson``, so this recursion is too)."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return sep.join(f"{k}={_text(x, ' ')}" for k, x in v.items())
    if isinstance(v, list):
        return sep.join(_text(x, " ") for x in v)
    return "" if v is None else str(v)


class _Pool:
    """File batches to scan, in this process or in workers, with a bounded number in
    flight (memory stays flat whatever the layer size)."""

    def __init__(self, spec: Any, jobs: int | None) -> None:
        from sentinel import scanning

        self.n = scanning.workers(jobs)
        self.pool = scanning.pool(spec, self.n) if self.n > 1 else None
        if self.pool is None:
            scanning.init_worker(spec)
        self.inflight: list[Any] = []
        self.done: list[tuple[tuple[int, str], list[Any]]] = []
        self.engine = EngineStats()  # the workers' engine stats, merged

    def _collect(self, part: tuple[list[tuple[tuple[int, str], list[Any]]], EngineStats]) -> None:
        self.done.extend(part[0])
        self.engine.merge(part[1])

    def submit(self, batch: list[tuple[tuple[int, str], bytes]]) -> None:
        if self.pool is None:
            self._collect(scan_batch(batch))
            return
        while len(self.inflight) >= 2 * self.n:
            self._collect(self.inflight.pop(0).get())
        self.inflight.append(self.pool.apply_async(scan_batch, (batch,)))

    def finish(self) -> list[tuple[tuple[int, str], list[Any]]]:
        while self.inflight:
            self._collect(self.inflight.pop(0).get())
        out, self.done = self.done, []
        return out

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            if ok:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()


def scan_batch(
    batch: list[tuple[tuple[int, str], bytes]],
) -> tuple[list[tuple[tuple[int, str], list[Any]]], EngineStats]:
    """Worker: scan each file of a batch; the raw hits per (layer, path), and the
    engine's stats for the batch."""
    from sentinel.scanning import text_hits, worker_engine

    engine = worker_engine()
    out = []
    for key, data in batch:
        hits = text_hits(engine, data)
        if hits:
            out.append((key, hits))
    return out, engine.stats.take()


def scan_images(
    target_text: str,
    spec: Any,
    *,
    platform: str | None,
    insecure: bool,
    limits: Limits,
    cache: LayerCache | None,
    jobs: int | None,
    timeout: float,
    on_hit: Callable[[Origin, Any], None],
    need_values: bool = False,
) -> ImageStats:
    """``need_values``: the caller prints secret values, which the layer cache does not
    hold: layers with findings are read again."""
    from sentinel.scanning import KnownHit, text_hits

    stats = ImageStats()
    target = open_target(target_text, limits, insecure=insecure, timeout=timeout)
    if isinstance(target, ArchiveTarget) and target.index.not_indexed:
        stats.skipped["archive_entry_not_indexed"] += target.index.not_indexed
    pool: _Pool | None = None
    ok = False
    try:
        engine = spec.build()  # the config is a few KB: scanned here
        for img in images(target, platform, stats.errors):
            stats.images += 1
            label = f"{img.name} [{img.platform}]" if img.platform else img.name
            config_data = oci.read_verified(
                target.blob(img.manifest.config), img.manifest.config, f"{label}: config"
            )
            try:
                config = oci.load_json(config_data, f"{label}: config")
            except oci.BadDocument as exc:
                # the layers do not need it: they are still scanned
                stats.errors.append(f"{exc}; the layers were scanned without it")
                config = {}
            # config first: Env, Labels, Cmd/Entrypoint, history
            secrets_in_history: list[Any] = []
            problems: list[str] = []
            for path, text in config_documents(config, problems):
                for h in text_hits(engine, text):
                    if path == "config:history":
                        secrets_in_history.append(h)
                    on_hit(Origin(source="image", path=path, image=label, object_type="config"), h)
            if problems:
                stats.errors.append(f"{label}: config: {'; '.join(problems)} (scanned as text)")
            created_by = _history_for_layers(config, len(img.manifest.layers), secrets_in_history)
            layer_hits: list[_Hit] = []
            removals: list[tuple[int, tuple[str, ...], tuple[str, ...]]] = []
            for i, desc in enumerate(img.manifest.layers):
                stats.layers += 1
                what = f"{label}: layer {i + 1} ({desc.digest[:19]}…)"
                # keyed by the blob's own digest, which every read verifies: an image
                # cannot claim a clean layer's name for different bytes
                cached = cache.get(desc.digest) if cache is not None else None
                if cached is not None and not (need_values and cached.hits):
                    stats.layers_cached += 1
                    removals.append((i, cached.whiteouts, cached.opaque))
                    by_path: dict[str, list[Any]] = {}
                    for h in cached.hits:
                        by_path.setdefault(str(h["path"]), []).append(
                            KnownHit(**{k: v for k, v in h.items() if k != "path"})  # type: ignore[arg-type]
                        )
                    layer_hits.extend(_Hit(i, p, hs) for p, hs in by_path.items())
                    continue
                if pool is None:
                    pool = _Pool(spec, jobs)
                cut = pool.engine.incomplete()
                found, clean = _scan_layer(target, desc, what, limits, pool, stats, i)
                removals.append((i, clean.whiteouts, clean.opaque))
                layer_hits.extend(found)
                # a layer a cap cut short is not remembered: its next scan says so again
                if cache is not None and pool.engine.incomplete() == cut:
                    cache.put(desc.digest, _with_known_hits(clean, found, spec.fingerprint_key))
            for hit in layer_hits:
                desc = img.manifest.layers[hit.layer]
                deleted = _deleted_by(hit.path, hit.layer, removals)
                origin = Origin(
                    source="image",
                    path=hit.path,
                    image=label,
                    layer=desc.digest,
                    layer_index=hit.layer + 1,
                    created_by=created_by[hit.layer][:300] or None,
                    deleted_in_layer=(
                        img.manifest.layers[deleted].digest if deleted is not None else None
                    ),
                    deleted_in_layer_index=deleted + 1 if deleted is not None else None,
                    object_type="file",
                )
                for raw in hit.raw:
                    on_hit(origin, raw)
        ok = True
        config_stats = engine.stats.take()
        config_stats.scanned_as = {}  # config documents are not files
        stats.engine.merge(config_stats)
        if pool is not None:
            stats.engine.merge(pool.engine)
        return stats
    finally:
        if pool is not None:
            pool.close(ok)
        target.close()


def _scan_layer(
    target: Target,
    desc: Descriptor,
    what: str,
    limits: Limits,
    pool: _Pool,
    stats: ImageStats,
    index: int,
) -> tuple[list[_Hit], CleanLayer]:
    raw = target.blob(desc)
    whiteouts: list[str] = []
    opaque: list[str] = []
    files = nbytes = n_unsafe = 0
    unsafe: list[str] = []
    try:
        stream = Decompressed(oci.Verified(raw, desc.digest, desc.size, what), limits, what)
        batch: list[tuple[tuple[int, str], bytes]] = []
        size = 0
        for item in items(stream, limits, what):
            if item.kind == "file":
                files += 1
                nbytes += item.size
                if not item.size:
                    continue  # an empty file holds no secret
                batch.append(((index, item.path), item.data))
                size += item.size
                if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                    pool.submit(batch)
                    batch, size = [], 0
            elif item.kind == "whiteout":
                whiteouts.append(item.path)
            elif item.kind == "opaque":
                opaque.append(item.path)
            elif item.kind == "large":
                stats.skipped["too_large"] += 1
            elif item.kind == "unsafe":
                stats.skipped["unsafe_path"] += 1
                n_unsafe += 1
                if len(unsafe) < 3:  # examples for the message; the count says the rest
                    unsafe.append(f"{item.path} ({item.why})")
            elif item.kind == "link":
                stats.skipped["link"] += 1
        if batch:
            pool.submit(batch)
        results = pool.finish()
    finally:
        raw.close()
    if unsafe:
        stats.errors.append(
            f"{what}: {n_unsafe:,} entr{'y' if n_unsafe == 1 else 'ies'} with unsafe paths "
            f"skipped (a crafted layer?): {', '.join(unsafe)}{' …' if n_unsafe > 3 else ''}"
        )
    stats.files += files
    stats.bytes += nbytes
    found = [_Hit(layer, path, hits) for (layer, path), hits in results]
    return found, CleanLayer(tuple(whiteouts), tuple(opaque), files, nbytes)


def _with_known_hits(layer: CleanLayer, found: list[_Hit], key: bytes) -> CleanLayer:
    """The layer's cache record: each hit by fingerprint and preview, never its value."""
    from dataclasses import replace

    from sentinel.fingerprint import fingerprint, redact

    hits = tuple(
        {
            "path": h.path,
            "rule_id": r.rule_id,
            "fingerprint": fingerprint(r.secret.encode(), key),
            "redacted": r.redacted or redact(r.secret),
            "line": r.line,
            "column": r.column,
            "end_line": r.end_line,
            "end_column": r.end_column,
            "entropy": r.entropy,
            "decoded": r.decoded,
            "offset": r.offset,
            "end_offset": r.end_offset,
        }
        for h in found
        for r in h.raw
    )
    return replace(layer, hits=hits)


def _deleted_by(
    path: str, layer: int, removals: list[tuple[int, tuple[str, ...], tuple[str, ...]]]
) -> int | None:
    """The first layer above ``layer`` that whiteouts ``path`` (or a directory holding
    it), or makes a directory holding it opaque."""
    for i, whiteouts, opaque in removals:
        if i <= layer:
            continue
        for w in whiteouts:
            if path == w or path.startswith(w + "/"):
                return i
        for d in opaque:
            if d == "" or path.startswith(d + "/"):
                return i
    return None
