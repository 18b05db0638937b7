"""Layers already scanned with the same rules: skipped on the next scan.

A layer is named by the digest of its blob as stored (checked on every read, so a
crafted manifest cannot borrow a clean layer's name), and an entry is valid only for the exact
detection settings it was made under (rules, allowlists, decoding depth, file size
limit), which are part of the key. A record holds what later layers and the report
need: the layer's whiteouts and, for each hit, its rule, position, keyed fingerprint
and redacted preview, never the value (a scan asked to print values, with
``--show-secrets``, reads such a layer again).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

VERSION = 1


@dataclass(frozen=True)
class CleanLayer:
    whiteouts: tuple[str, ...]
    opaque: tuple[str, ...]
    files: int
    bytes: int
    hits: tuple[dict[str, object], ...] = ()  # path, rule_id, fingerprint, redacted, position


class LayerCache:
    def __init__(self, directory: Path, settings_key: str) -> None:
        self.dir = directory / "layers"
        self.settings = settings_key

    def _path(self, digest: str) -> Path:
        key = hashlib.sha256(f"v{VERSION}|{digest}|{self.settings}".encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.json"

    def get(self, digest: str) -> CleanLayer | None:
        try:
            doc = json.loads(self._path(digest).read_text(encoding="utf-8"))
            if doc.get("digest") != digest:
                return None
            return CleanLayer(
                tuple(doc["whiteouts"]),
                tuple(doc["opaque"]),
                int(doc["files"]),
                int(doc["bytes"]),
                tuple(doc.get("hits", ())),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, digest: str, layer: CleanLayer) -> None:
        import tempfile

        path = self._path(digest)
        doc = {
            "digest": digest,
            "whiteouts": list(layer.whiteouts),
            "opaque": list(layer.opaque),
            "files": layer.files,
            "bytes": layer.bytes,
            "hits": list(layer.hits),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".layer-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs the next scan a re-read
