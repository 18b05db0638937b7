"""The outer ``docker save`` archive: an index of its files by name, and readers of one.

The archive is walked once, as a stream, keeping for each regular file and link only
where its bytes are (name -> offset and size): never every tar header, which tarfile
would keep for a million entries (905 MB), and never a file's bytes. A gzipped (or
zstd) archive is decompressed under the same limits as a layer (``Limits``: a total
and a ratio to the compressed size), so an archive that inflates without end stops
with one line; reading one of its files later decompresses again up to that file.
At most ``MAX_INDEXED`` names are kept (a docker archive has a few per layer); what is
past that is counted, not kept.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sentinel.sources.layers import (
    CHUNK,
    GZIP_MAGIC,
    ZSTD_MAGIC,
    BoundedTarInfo,
    Decompressed,
    ExtendedHeaderTooLarge,
    Limits,
    extended_too_large,
)
from sentinel.sources.oci import ImageError
from sentinel.sources.safeio import NotRegularFile, open_regular

MAX_INDEXED = 100_000  # names kept; past this, entries are counted only
MAX_NAME = 1024  # a longer name or link target is not kept (docker's are < 100 bytes)
ADVICE = (
    "give what `docker save -o FILE IMAGE` writes, an OCI layout directory or a registry reference"
)


@dataclass(frozen=True)
class Member:
    offset: int  # of the file's bytes, in the (decompressed) tar
    size: int
    linkname: str = ""  # a symlink's target, when set
    hardlink: bool = False


class ArchiveIndex:
    """Where each file of the archive at ``path`` is. ``entries`` counts every tar
    entry, ``not_indexed`` those past ``MAX_INDEXED`` or with over-long names."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.name = str(path)
        self.limits = limits
        self.members: dict[str, Member] = {}
        self.entries = 0
        self.not_indexed = 0
        with self._open() as fh:
            head = fh.read(4)
        self.compressed = head.startswith(GZIP_MAGIC) or head == ZSTD_MAGIC
        if not head:
            raise ImageError(f"{self.name}: an empty file, not an image archive; {ADVICE}")
        self._walk()

    def _open(self) -> IO[bytes]:
        try:
            return open_regular(self.path)
        except NotRegularFile as exc:
            raise ImageError(f"{self.name}: {exc.kind}, not an image archive") from None
        except OSError as exc:
            raise ImageError(f"cannot read {self.name}: {exc.strerror}") from None

    def _walk(self) -> None:
        raw = self._open()
        stream: Decompressed | None = None
        try:
            if self.compressed:
                stream = Decompressed(raw, self.limits, self.name, unit="an image archive")
                tf = tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo)  # type: ignore[call-overload]  # noqa: SIM115
            else:  # seekable: tarfile steps over each file's bytes instead of reading them
                tf = tarfile.open(fileobj=raw, mode="r:", tarinfo=BoundedTarInfo)  # noqa: SIM115
        except tarfile.ReadError:
            raw.close()
            what = "a compressed file holding no tar" if self.compressed else "not a tar file"
            raise ImageError(f"{self.name}: {what}, so not an image archive; {ADVICE}") from None
        except ExtendedHeaderTooLarge as exc:
            raw.close()
            raise extended_too_large(self.name, exc) from None
        except BaseException:
            raw.close()
            raise
        try:
            while True:
                m = tf.next()
                if m is None:
                    break
                tf.members.clear()  # what tarfile keeps of every header: not kept here
                self.entries += 1
                self._add(m)
            if stream is not None:
                stream.drain()  # to the end: the limits see the whole archive
        except ExtendedHeaderTooLarge as exc:
            raise extended_too_large(self.name, exc) from None
        except (tarfile.ReadError, EOFError) as exc:
            raise ImageError(f"{self.name}: truncated or corrupt archive ({exc})") from None
        finally:
            tf.close()
            raw.close()

    def _add(self, m: tarfile.TarInfo) -> None:
        if not (m.isreg() or m.issym() or m.islnk()) or m.type == tarfile.GNUTYPE_SPARSE:
            return  # directories and the rest: nothing manifest.json can name
        name = m.name.removeprefix("./")
        if len(self.members) >= MAX_INDEXED or len(name) > MAX_NAME or len(m.linkname) > MAX_NAME:
            self.not_indexed += 1
            return
        if m.issym() or m.islnk():
            self.members[name] = Member(0, 0, m.linkname or ".", hardlink=m.islnk())
        else:
            self.members[name] = Member(m.offset_data, m.size)

    def missing(self, name: str) -> ImageError:
        more = ""
        if self.not_indexed:
            more = (
                f" ({self.not_indexed:,} entries past the first {MAX_INDEXED:,} or with names "
                f"over {MAX_NAME} bytes were not indexed: not a docker save archive?)"
            )
        return ImageError(f"{self.name}: {name[:100]!r} is missing from the archive{more}")

    def open_member(self, m: Member) -> IO[bytes]:
        """A reader of the member's bytes (a stream: read to the end, then closed)."""
        raw = self._open()
        if not self.compressed:
            raw.seek(m.offset)
            return _Slice(raw, m.size)  # type: ignore[return-value]
        stream = Decompressed(raw, self.limits, self.name, unit="an image archive")
        left = m.offset
        while left:
            skipped = len(stream.read(min(left, CHUNK)))
            if not skipped:
                raw.close()
                raise ImageError(f"{self.name}: truncated or corrupt archive")
            left -= skipped
        return _Slice(stream, m.size, raw)  # type: ignore[return-value]


class _Slice:
    """``size`` bytes of ``src`` from where it stands."""

    def __init__(self, src: IO[bytes] | Decompressed, size: int, owner: IO[bytes] | None = None):
        self._src = src
        self._left = size
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._src.read(want)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owner is not None:
            self._owner.close()
        elif hasattr(self._src, "close"):
            self._src.close()
