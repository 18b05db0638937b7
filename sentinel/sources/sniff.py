"""Telling text from binary the way git does, without importing a whole source."""

from __future__ import annotations

BINARY_SNIFF = 8000  # git's own heuristic: a NUL in the first 8000 bytes means binary


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_SNIFF]
