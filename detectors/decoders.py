"""Bounded decoding of base64 and percent-encoded blobs, so secrets hidden by an
encoding are scanned again as plain text.

Two extra patterns ride along in the Hyperscan pass; a chunk is never searched
again for candidates: the encoded run around each hit is found by walking out
from the hit with a translation table. Limits keep adversarial input cheap: at
most ``MAX_CANDIDATES`` runs a chunk, ``MAX_RUN`` bytes a run and
``MAX_DECODED`` bytes decoded in all; the engine bounds the recursion depth.
Each time a limit leaves runs undecoded it is counted (``truncated["decoders"]``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from detectors.engine import EngineStats

# Where an encoded secret is worth decoding, found without a class-run pattern (a bare
# ``[A-Za-z0-9+/]{32}`` costs Hyperscan more than all the rules together):
# - the encodings of what secrets start with: JSON objects (``{"``, ``{\n``), PEM
#   armour, and common secret words and token prefixes;
# - HTTP basic credentials;
# - padded base64 (``=``/``==`` after 20+ characters) that ends a quoted value or a
#   line, the usual shape of encoded config values. The terminator is what keeps it
#   cheap: a bare ``[A-Za-z0-9+/]{20}={1,2}`` made this one pattern a fifth of the whole
#   Hyperscan pass on real history, ``= `` being everywhere in code.
BASE64_TRIGGER = (
    rb"(?:eyJ|ewo|ew0K|LS0tLS1CRUdJ|Z2hw|Z2l0aHVi|eG94|c2tf|QUtJQ|YXBpX2tle|YXBpa2V5|"
    rb"cGFzc3dvcmQ|cGFzc3dk|dG9rZW4|c2VjcmV0|UEFTU1dPUkQ|VE9LRU4|U0VDUkVU|QVBJX0tFW|"
    rb"YXV0aF|YWNjZXNzX3Rva2Vu|Y2xpZW50X3NlY3JldA)[A-Za-z0-9+/_-]{16}"
    rb"|(?i:basic)[ \t]+[A-Za-z0-9+/]{12}"
    rb"|[A-Za-z0-9+/]{20}={1,2}(?:[\"'\r]|$)"
    # a shell decoding it (``echo <run> | base64 -d``, Dockerfile RUN lines): the run
    # ends before the pipe whatever its padding and whatever it starts with
    rb"|\|[ \t]*base64[ \t]+(?:-d|-D|--decode)"
)
# A percent-escape of a character that passwords use but URLs must escape, inside a word.
PERCENT_TRIGGER = rb"[A-Za-z0-9]%(?:2[1-9A-Fa-f]|3[ABDFabdf]|40|5[BDbd]|7[BDbd]|25)[A-Za-z0-9%]"

MAX_CANDIDATES = 256
MAX_RUN = 64 * 1024
MAX_DECODED = 4 * 1024 * 1024
MIN_PRINTABLE = 0.85
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_PCT_CHARS = _B64_CHARS + b"%._~:@&!*="


def _table(members: bytes) -> bytes:
    """Maps members to 'a' and everything else to ' ', to find run edges with rfind/find."""
    t = bytearray(b" " * 256)
    for b in members:
        t[b] = ord("a")
    return bytes(t)


_B64_TABLE = _table(_B64_CHARS)
_PCT_TABLE = _table(_PCT_CHARS)


def _run_start(data: bytes, hi: int, table: bytes) -> int:
    """Where the run of table members ending at ``hi`` starts (looks back at most MAX_RUN)."""
    step = 256
    while True:
        lo = max(0, hi - step)
        cut = data[lo:hi].translate(table).rfind(b" ")
        if cut >= 0:
            return lo + cut + 1
        if lo == 0 or step > MAX_RUN:
            return lo
        step *= 8


def _base64_run(data: bytes, end: int) -> tuple[int, int]:
    """The base64 run (with its padding) around a trigger hit ending at ``end``."""
    hi = end
    if data[max(0, end - 8) : end].endswith((b"-d", b"-D", b"--decode")):
        bar = data.rfind(b"|", max(0, end - 64), end)  # the pipe hit: the run is before it
        hi = bar if bar > 0 else end
        while hi > 0 and data[hi - 1] in b" \t\"'":
            hi -= 1
    if hi > 0 and data[hi - 1] in b"\"'\r":  # the padded trigger ends on the value's terminator
        hi -= 1
    while hi > 0 and data[hi - 1] == 0x3D:  # the hit ended on padding
        hi -= 1
    lo = _run_start(data, hi, _B64_TABLE)
    tail = data[hi : hi + MAX_RUN].translate(_B64_TABLE).find(b" ")
    hi = hi + tail if tail >= 0 else min(len(data), hi + MAX_RUN)
    pad = hi
    while pad < len(data) and pad - hi < 2 and data[pad] == 0x3D:
        pad += 1
    return lo, pad


def _percent_run(data: bytes, end: int) -> tuple[int, int]:
    """The run of URL characters around a percent-escape hit ending at ``end``."""
    lo = _run_start(data, end, _PCT_TABLE)
    tail = data[end : end + 4096].translate(_PCT_TABLE).find(b" ")
    return lo, end + tail if tail >= 0 else min(len(data), end + 4096)


def printable(data: bytes) -> bool:
    """Whether ``data`` reads as text (UTF-8, mostly printable in its first KB)."""
    sample = data[:1024]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # a multi-byte character cut by the sample is fine
            return False
        text = sample[: exc.start].decode("utf-8")
    if not text:
        return False
    ok = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t")
    return ok / len(text) >= MIN_PRINTABLE


def b64decode(blob: bytes) -> bytes | None:
    """Decode standard or URL-safe base64 with or without padding; None if it is not."""
    core = blob.rstrip(b"=")
    if len(core) % 4 == 1 or len(core) < 16:
        return None
    padded = core + b"=" * (-len(core) % 4)
    try:
        if b"-" in core or b"_" in core:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def decoded_regions(
    data: bytes,
    base64_ends: Sequence[int],
    percent_ends: Sequence[int],
    stats: EngineStats | None = None,
) -> Iterator[tuple[tuple[int, int], bytes, str]]:
    """(span in ``data``, decoded bytes, encoding name) for each decodable run; the
    runs a limit leaves undecoded are counted in ``stats``."""
    budget = MAX_DECODED
    count = 0
    seen: set[tuple[int, int]] = set()
    for ends, find_run, how in (
        (base64_ends, _base64_run, "base64"),
        (percent_ends, _percent_run, "percent"),
    ):
        for end in ends:
            span = find_run(data, end)
            if span in seen:
                continue
            seen.add(span)
            if span[1] - span[0] > MAX_RUN:
                if stats is not None:
                    stats.truncate("decoders")
                continue
            blob = data[span[0] : span[1]]
            if how == "base64":
                decoded = b64decode(blob)
            else:
                decoded = unquote_to_bytes(blob)
                if decoded == blob:
                    decoded = None
            if decoded is None or len(decoded) < 8 or not printable(decoded):
                continue
            budget -= len(decoded)
            count += 1
            if budget < 0 or count > MAX_CANDIDATES:
                if stats is not None:
                    stats.truncate("decoders")
                return
            yield span, decoded, how
