"""JSON from someone else (an image's manifest or config, a registry's answer), parsed
within bounds: too large or nested too deep is refused with one clear sentence.

``json.loads`` recurses once per level of nesting: a document of 100,000 ``[`` raises
``RecursionError`` (or, in a worker thread with a small stack, worse), which no caller
expects. The depth is checked first, without parsing: brackets are counted outside
strings, by one regular expression, and only when there are more of them than the
depth allowed (the common case costs two ``bytes.count``).
"""

from __future__ import annotations

import json
import re
from typing import Any

# a JSON string (escapes included, an unterminated one runs to the end), or one bracket
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|$)|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


class JSONRefused(ValueError):
    """Input that is not parsed: too large, too deep, or not JSON. The message is one
    line that names the document."""


def depth_exceeds(data: bytes, max_depth: int) -> bool:
    """True if brackets outside strings nest more than ``max_depth`` deep."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    depth = 0
    for m in _TOKEN.finditer(data):
        c = m.group()[0]
        if c in _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        elif c != 0x22:  # a closing bracket, not a string
            depth -= 1
    return False


def loads(data: bytes, *, what: str, max_bytes: int, max_depth: int = 64) -> Any:
    """``data`` parsed, or ``JSONRefused`` saying why not (``what`` names it)."""
    if len(data) > max_bytes:
        raise JSONRefused(
            f"{what} is too large ({_size(len(data))}; at most {_size(max_bytes)}): refused"
        )
    if depth_exceeds(data, max_depth):
        raise JSONRefused(f"{what} is nested more than {max_depth} deep: refused")
    try:
        return json.loads(data)
    except RecursionError:  # cannot happen after the check; kept as the last guard
        raise JSONRefused(f"{what} is nested too deep to parse: refused") from None
    except UnicodeDecodeError:
        raise JSONRefused(f"{what} is not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"{what} is not valid JSON: {exc}") from None


def _size(n: int) -> str:
    if n >= 1024**2:
        return f"{n / 1024**2:,.1f} MiB".replace(".0 MiB", " MiB")
    if n >= 1024:
        return f"{n / 1024:,.1f} KiB".replace(".0 KiB", " KiB")
    return f"{n:,} bytes"
