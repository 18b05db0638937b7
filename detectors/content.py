"""How to read a chunk: as text, as UTF-16/32 text, or as a binary's printable runs.

Git's rule (a NUL in the first 8000 bytes means binary) would skip every UTF-16
file, which is what Windows PowerShell writes with ``>``, and every key compiled
into a binary. So a chunk with NULs is first tried as UTF-32 or UTF-16, by its
byte-order mark or, without one, by where its NULs fall (ASCII text in UTF-16LE
has a NUL in every odd byte); what decodes to mostly printable text is scanned as
text. Anything else is binary, and the engine looks at its printable runs with
its strict rules only.
"""

from __future__ import annotations

SNIFF = 8000  # bytes looked at, git's own heuristic
MIN_PRINTABLE = 0.9  # share of printable characters in a decoded sample to call it text

TEXT = "text"
BINARY = "binary-strings"

# (byte-order mark, encoding): UTF-32 first, its LE mark starts like UTF-16's
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32le"),
    (b"\x00\x00\xfe\xff", "utf-32be"),
    (b"\xff\xfe", "utf-16le"),
    (b"\xfe\xff", "utf-16be"),
)


def sniff(data: bytes) -> str:
    """``text``, ``utf-16le``, ``utf-16be``, ``utf-32le``, ``utf-32be`` or
    ``binary-strings``."""
    head = data[:SNIFF]
    if b"\0" not in head:
        return TEXT
    for bom, enc in _BOMS:
        if head.startswith(bom) and _reads_as_text(head[len(bom) :], enc):
            return enc
    guess = _by_nul_pattern(head)
    if guess is not None and _reads_as_text(head, guess):
        return guess
    return BINARY


def _by_nul_pattern(head: bytes) -> str | None:
    """The encoding that puts NULs where ``head`` has them, for mostly-ASCII text."""
    n = len(head) - len(head) % 4
    if n < 8:
        return None
    lanes = [head[i:n:4].count(0) / (n // 4) for i in range(4)]
    if lanes[0] < 0.05 and min(lanes[1:]) > 0.9:
        return "utf-32le"
    if lanes[3] < 0.05 and min(lanes[:3]) > 0.9:
        return "utf-32be"
    even, odd = (lanes[0] + lanes[2]) / 2, (lanes[1] + lanes[3]) / 2
    if even < 0.05 and odd > 0.7:
        return "utf-16le"
    if odd < 0.05 and even > 0.7:
        return "utf-16be"
    return None


def _reads_as_text(sample: bytes, enc: str) -> bool:
    unit = 4 if enc.startswith("utf-32") else 2
    sample = sample[: len(sample) - len(sample) % unit]
    text = sample.decode(enc, "replace")
    if not text:
        return True  # a BOM and nothing else
    ok = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t\ufeff")
    return ok / len(text) >= MIN_PRINTABLE


def decode_text(data: bytes, enc: str) -> bytes:
    """``data`` in ``enc`` as UTF-8, without its byte-order mark (so line 1 column 1 is
    the first character); bytes that do not decode become U+FFFD."""
    text = data.decode(enc, "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.encode("utf-8", "replace")


_RUNS = bytes(b if 0x20 <= b < 0x7F or b == 0x09 else 0x0A for b in range(256))


def printable_runs(data: bytes) -> bytes:
    """``data`` with every byte that is not printable ASCII turned into a newline: the
    printable runs of a binary, one a line, each at its own byte offset."""
    return data.translate(_RUNS)
