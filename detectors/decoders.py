"""Bounded decoding of base64 and percent-encoded blobs, so secrets hidden by an
encoding are scanned again as plain text.

Two single-match triggers ride along in the Hyperscan pass, so a chunk is only
searched for candidates when it holds something that looks encoded. Limits keep
adversarial input cheap: at most ``MAX_CANDIDATES`` blobs a chunk and
``MAX_DECODED`` bytes decoded in all; the engine bounds the recursion depth.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

import regex

# Long runs of the standard base64 alphabet (no '_' or '-': snake_case identifiers
# would fire on every source file), or shorter runs closed by padding.
BASE64_TRIGGER = rb"[A-Za-z0-9+/]{40}|[A-Za-z0-9+/]{16}={1,2}"
PERCENT_TRIGGER = rb"[A-Za-z0-9]%[2-7][0-9A-Fa-f][A-Za-z0-9%]"

_B64_RUN = regex.compile(rb"[A-Za-z0-9+/]{20,}={0,2}|[A-Za-z0-9_-]{20,}={0,2}")
_PCT_RUN = regex.compile(rb"[A-Za-z0-9%+/._~:@=&-]*%[0-9A-Fa-f]{2}[A-Za-z0-9%+/._~:@=&-]*")
MAX_CANDIDATES = 256
MAX_DECODED = 4 * 1024 * 1024
MIN_PRINTABLE = 0.85


def _printable(data: bytes) -> bool:
    if not data:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    ok = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t")
    return ok / len(text) >= MIN_PRINTABLE


def b64decode(blob: bytes) -> bytes | None:
    """Decode standard or URL-safe base64 with or without padding; None if it is not."""
    core = blob.rstrip(b"=")
    if len(core) % 4 == 1:
        return None
    padded = core + b"=" * (-len(core) % 4)
    try:
        if b"-" in core or b"_" in core:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def decoded_regions(
    data: bytes, base64_hint: bool, percent_hint: bool
) -> Iterator[tuple[tuple[int, int], bytes, str]]:
    """(span in ``data``, decoded bytes, encoding name) for each decodable blob."""
    budget = MAX_DECODED
    count = 0
    if base64_hint:
        for m in _B64_RUN.finditer(data):
            blob = m.group()
            decoded = b64decode(blob)
            if decoded is None or len(decoded) < 12 or not _printable(decoded):
                continue
            budget -= len(decoded)
            count += 1
            if budget < 0 or count > MAX_CANDIDATES:
                return
            yield m.span(), decoded, "base64"
    if percent_hint:
        for m in _PCT_RUN.finditer(data):
            blob = m.group()
            decoded = unquote_to_bytes(blob)
            if decoded == blob or len(decoded) < 8:
                continue
            budget -= len(decoded)
            count += 1
            if budget < 0 or count > MAX_CANDIDATES:
                return
            yield m.span(), decoded, "percent"
