"""Shannon entropy of candidate secrets, in bits per character."""

from __future__ import annotations

import math
from collections import Counter

_LOWER_HEX = frozenset(b"0123456789abcdef")
_UPPER_HEX = frozenset(b"0123456789ABCDEF")


def shannon(data: bytes) -> float:
    """Bits of entropy per byte of ``data`` (0.0 for empty input)."""
    n = len(data)
    if n == 0:
        return 0.0
    counts = Counter(data).values()
    return -sum((c / n) * math.log2(c / n) for c in counts)


def class_ceiling(data: bytes) -> float:
    """The highest entropy a string of this length and these character classes could
    reach: the alphabet is the classes present (lowercase 26, uppercase 26, digits 10,
    symbols 32), or 16 for a hex string. Short strings cannot reach their alphabet's
    entropy, so a 16-character hex string tops out at 4.0 bits and a 12-character
    password at log2(12)."""
    n = len(data)
    if n < 2:
        return 0.0
    one_case_hex = all(b in _LOWER_HEX for b in data) or all(b in _UPPER_HEX for b in data)
    if one_case_hex and any(48 <= b <= 57 for b in data) and any(b > 57 for b in data):
        alphabet = 16
    else:
        lower = any(97 <= b <= 122 for b in data)
        upper = any(65 <= b <= 90 for b in data)
        digit = any(48 <= b <= 57 for b in data)
        symbol = any(not (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) for b in data)
        alphabet = 26 * lower + 26 * upper + 10 * digit + 32 * symbol
    return math.log2(min(n, max(alphabet, 2)))
