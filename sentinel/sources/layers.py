"""Reading one image layer as a stream: decompress (gzip, zstd or none, told apart by
their magic bytes), walk the tar, yield what each entry is. Nothing is extracted to
disk and no layer is held in memory: a file is read only up to the size limit, and
the decompressed stream is capped both in total and in its ratio to the compressed
bytes, so a decompression bomb stops early with a clear error.

Whiteouts (OCI image spec, "Representing Changes"): ``.wh.<name>`` deletes ``<name>``
from the layers below; ``.wh..wh..opq`` in a directory hides everything the layers
below put in it.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from sentinel.sources.oci import ImageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_file: int  # bytes of one file read for scanning; larger ones are skipped
    max_layer: int = 16 * 1024**3  # decompressed bytes of one layer
    max_ratio: int = 100  # decompressed : compressed, checked past ``ratio_floor``
    ratio_floor: int = 256 * 1024**2


@dataclass(frozen=True)
class Item:
    kind: str  # file | large | whiteout | opaque | unsafe | link | other
    path: str  # normalised, relative to the image root, no leading "/"
    data: bytes = b""
    size: int = 0
    why: str = ""


class _Counting:
    """The compressed side: counts what the decompressor has consumed."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data


class _Prefixed:
    """Bytes already read (the magic number), then the rest of the stream."""

    def __init__(self, head: bytes, src: _Counting) -> None:
        self._head = head
        self._src = src

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                data, self._head = self._head, b""
            else:
                data, self._head = self._head[:n], self._head[n:]
            return data
        return self._src.read(n if n >= 0 else CHUNK)


class Decompressed:
    """A file-like object over the decompressed layer, enforcing ``Limits``."""

    def __init__(self, raw: IO[bytes], limits: Limits, what: str, unit: str = "one layer") -> None:
        self._src = _Counting(raw)
        self._limits = limits
        self._what = what
        self._unit = unit  # what the size limit is for, as the error says it
        self._out = 0
        self._buf = b""
        self._pos = 0  # how much of ``_buf`` has been read
        self._eof = False
        head = self._src.read(4)
        self._trailing = False  # past the compressed stream: bytes are read, not used
        self._zstd = None
        self._z = None
        if head.startswith(GZIP_MAGIC):
            self._z = zlib.decompressobj(wbits=31)
            self._mode = "gzip"
        elif head == ZSTD_MAGIC:
            import zstandard

            self._mode = "zstd"
            # a reader bounds each read's output (a decompressobj would inflate a whole
            # input chunk at once: gigabytes for a bomb)
            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                _Prefixed(head, self._src), read_across_frames=True
            )
        else:
            self._mode = "none"
        self._pending = head if self._mode != "zstd" else b""

    @property
    def decompressed(self) -> int:
        return self._out

    def _fill(self, want: int) -> None:
        """At least ``want`` unread bytes in the buffer, unless the stream ends first.
        Read bytes are dropped here, once per refill, not on every read (tarfile reads
        10 KiB at a time: slicing a 1 MiB buffer on each read copied 50 bytes per byte)."""
        if self._pos:
            self._buf = self._buf[self._pos :]
            self._pos = 0
        while len(self._buf) < want and not self._eof:
            out = self._next()
            if out is None:
                self._eof = True
                break
            self._out += len(out)
            self._check()
            self._buf = self._buf + out if self._buf else out

    def _next(self) -> bytes | None:
        """At most CHUNK more decompressed bytes; None at the end of the stream."""
        if self._zstd is not None:
            try:
                out = self._zstd.read(CHUNK)
            except ImageError:
                raise
            except Exception as exc:  # zstandard.ZstdError
                raise ImageError(f"{self._what}: corrupt zstd data ({exc})") from None
            return out or None
        z = self._z
        if z is not None and z.unconsumed_tail:
            raw = z.unconsumed_tail
        else:
            raw = self._pending or self._src.read(64 * 1024)
            self._pending = b""
        if not raw:
            if z is not None and not self._trailing and not z.eof:
                raise ImageError(f"{self._what}: truncated (the gzip stream ends early)")
            return None
        if self._trailing:
            return b""
        if z is None:
            return raw
        try:
            out = z.decompress(raw, CHUNK)  # never more than CHUNK bytes from one call
        except zlib.error as exc:
            raise ImageError(f"{self._what}: corrupt gzip data ({exc})") from None
        if z.eof and z.unused_data:
            rest = z.unused_data
            if rest.startswith(GZIP_MAGIC):
                # concatenated gzip members are legal: go on with the next one
                self._z = zlib.decompressobj(wbits=31)
                self._pending = rest
            else:
                self._trailing = True  # padding after the stream
        return out

    def _check(self) -> None:
        lim = self._limits
        if self._out > lim.max_layer:
            raise ImageError(
                f"{self._what}: decompression stopped at {self._out / 1024**2:,.0f} MiB, over the "
                f"{lim.max_layer / 1024**2:,.0f} MiB limit for {self._unit} (--max-layer-size)"
            )
        if (
            self._mode != "none"
            and self._out > lim.ratio_floor
            and self._out > lim.max_ratio * max(self._src.count, 1)
        ):
            raise ImageError(
                f"{self._what}: decompression stopped at {self._out / 1024**2:,.0f} MiB from "
                f"{self._src.count / 1024**2:,.1f} MiB compressed, more than {lim.max_ratio}:1 "
                "(a decompression bomb?)"
            )

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos :]]
            self._buf, self._pos = b"", 0
            while not self._eof:
                self._fill(CHUNK)
                parts.append(self._buf)
                self._buf = b""
            return b"".join(parts)
        if len(self._buf) - self._pos < n:
            self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def safe_path(name: str) -> str | None:
    """The entry's path inside the image root, or None if it tries to leave it."""
    if name.startswith("/"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".":
        return ""
    if norm.startswith("../") or norm == "..":
        return None
    return norm


def _escapes(path: str, target: str) -> bool:
    """Whether a hardlink target (relative to the root) or a relative symlink target
    (relative to the link's directory) points outside the image root."""
    if target.startswith("/"):
        return False  # absolute link targets resolve inside the container's root
    base = posixpath.dirname(path)
    joined = posixpath.normpath(posixpath.join(base, target))
    return joined == ".." or joined.startswith("../")


class ExtendedHeaderTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose extensions (pax records, GNU long names and link targets) are
    at most ``MAX_EXTENDED`` bytes: tarfile reads one whole into memory, so a crafted
    entry "naming" a 2 GiB link target would cost 2 GiB."""

    def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_EXTENDED:
            raise ExtendedHeaderTooLarge(self.size)
        return super()._proc_member(tarfile)  # type: ignore[misc, no-any-return]


MAX_EXTENDED = 1024 * 1024
_EXTENDED = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


def extended_too_large(what: str, exc: ExtendedHeaderTooLarge) -> ImageError:
    return ImageError(
        f"{what}: a tar entry's extended header (long name, link target or pax "
        f"records) is {exc.size:,} bytes, over the {MAX_EXTENDED // 1024:,} KiB limit (rejected)"
    )


def items(stream: Decompressed, limits: Limits, what: str) -> Iterator[Item]:
    """Every entry of the layer tar, in order."""
    try:
        tf = tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo)  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.ReadError as exc:
        if stream.decompressed == 0:
            return  # an empty layer
        raise ImageError(f"{what}: not a tar archive ({exc})") from None
    except ExtendedHeaderTooLarge as exc:
        raise extended_too_large(what, exc) from None
    try:
        while True:
            member = tf.next()
            if member is None:
                break
            # tarfile keeps every header it has read (TarFile.members), for random access
            # a stream never makes: dropped at once, memory is bounded by one entry, not
            # by the number of entries (a million empty ones took 905 MB)
            tf.members.clear()
            path = safe_path(member.name)
            if path is None:
                yield Item("unsafe", member.name[:200], why="path leaves the image root")
                continue
            base = posixpath.basename(path)
            if base.startswith(WHITEOUT):
                parent = posixpath.dirname(path)
                if base == OPAQUE:
                    yield Item("opaque", parent)
                else:
                    yield Item("whiteout", posixpath.join(parent, base[len(WHITEOUT) :]))
                continue
            if member.islnk():
                if safe_path(member.linkname) is None:
                    yield Item("unsafe", path, why=f"hardlink to {member.linkname[:100]!r}")
                else:
                    yield Item("link", path)
                continue
            if member.issym():
                if _escapes(path, member.linkname):
                    yield Item("unsafe", path, why=f"symlink to {member.linkname[:100]!r}")
                else:
                    yield Item("link", path)
                continue
            if not member.isfile():
                yield Item("other", path)
                continue
            if member.size > limits.max_file:
                yield Item("large", path, size=member.size)
                continue
            fh = tf.extractfile(member)
            data = fh.read() if fh is not None else b""
            if len(data) != member.size:
                raise ImageError(f"{what}: truncated inside {path!r}")
            yield Item("file", path, data=data, size=member.size)
    except (tarfile.ReadError, EOFError) as exc:
        raise ImageError(f"{what}: truncated or corrupt tar ({exc})") from None
    except ExtendedHeaderTooLarge as exc:
        raise extended_too_large(what, exc) from None
    finally:
        tf.close()
    stream.drain()  # past the tar's end-of-archive blocks, so the digest is checked
