"""Shannon entropy of candidate secrets, in bits per character."""

from __future__ import annotations

import math
from collections import Counter

HEX = frozenset(b"0123456789abcdefABCDEF")
BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")


def shannon(data: bytes) -> float:
    """Bits of entropy per byte of ``data`` (0.0 for empty input)."""
    n = len(data)
    if n == 0:
        return 0.0
    counts = Counter(data).values()
    return -sum((c / n) * math.log2(c / n) for c in counts)


def charset_max(data: bytes) -> float:
    """The highest entropy a string of this length and alphabet could reach.

    Short strings cannot reach their alphabet's entropy, so gates compare against
    what is attainable: a 16-character hex string tops out at 4.0 bits.
    """
    if not data:
        return 0.0
    alphabet = 16 if all(b in HEX for b in data) else 64 if all(b in BASE64 for b in data) else 95
    return math.log2(min(len(data), alphabet))
