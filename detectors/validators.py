"""Offline checks a match must pass: checksums that providers build into tokens.

A checksum turns a pattern match into near-certainty without a network call.
GitHub's and npm's token formats end in six base62 characters that encode the
CRC32 of the random part before them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def _crc32_base62_tail(token: str, prefix_sep: str = "_") -> bool:
    """``<prefix>_<30 base62 chars><6-char base62 CRC32 of those 30 chars>``."""
    body = token.rsplit(prefix_sep, 1)[-1]
    if len(body) != 36 or not body.isalnum() or not body.isascii():
        return False
    random_part, check = body[:30], body[30:]
    return base62(zlib.crc32(random_part.encode()), 6) == check


def make_crc32_token(prefix: str, random_part: str) -> str:
    """Build a well-formed token for examples and tests (never a live credential)."""
    if len(random_part) != 30:
        raise ValueError("random part must be 30 base62 characters")
    return f"{prefix}_{random_part}{base62(zlib.crc32(random_part.encode()), 6)}"


def github_crc32(secret: bytes) -> bool:
    """GitHub ghp_/gho_/ghu_/ghs_/ghr_ tokens (format announced 2021-04-05)."""
    return _crc32_base62_tail(secret.decode("ascii", "replace"))


def npm_crc32(secret: bytes) -> bool:
    """npm granular and classic access tokens ``npm_...`` (format announced 2021-09-23)."""
    return _crc32_base62_tail(secret.decode("ascii", "replace"))


def luhn(secret: bytes) -> bool:
    """Luhn mod-10 check over the digits (card numbers and some account ids)."""
    digits = [int(c) for c in secret.decode("ascii", "replace") if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def jwt_shape(secret: bytes) -> bool:
    """A JWT whose header decodes to a JSON object naming an algorithm, and that is not
    a key its issuer publishes to browsers (a Supabase anon key)."""
    import base64
    import json

    parts = secret.split(b".")
    if len(parts) != 3:
        return False
    head = parts[0] + b"=" * (-len(parts[0]) % 4)
    try:
        header = json.loads(base64.urlsafe_b64decode(head))
    except (ValueError, TypeError):
        return False
    if not (isinstance(header, dict) and "alg" in header):
        return False
    body = parts[1] + b"=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, TypeError):
        return True  # an encrypted or non-JSON payload: still a token
    # Supabase's anon key (role "anon") is published in every web client by design
    return not (isinstance(claims, dict) and claims.get("role") == "anon")


def basic_credentials(secret: bytes) -> bool:
    """Base64 of ``user:password`` with a non-empty password (HTTP basic auth)."""
    import base64
    import binascii

    try:
        decoded = base64.b64decode(secret + b"=" * (-len(secret) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, sep, pw = text.partition(":")
    return bool(sep and user and len(pw) >= 4 and text.isprintable())


def url_password(secret: bytes) -> bool:
    """A URL's password as written or percent-decoded is not only words and separators
    (``apples/oranges``, ``pass%2Fword``): those are documentation."""
    from urllib.parse import unquote_to_bytes

    from detectors.generic import is_wordy

    return not is_wordy(unquote_to_bytes(secret) if b"%" in secret else secret)


CHECKSUMS: dict[str, Callable[[bytes], bool]] = {
    "basic_credentials": basic_credentials,
    "github_crc32": github_crc32,
    "npm_crc32": npm_crc32,
    "luhn": luhn,
    "jwt": jwt_shape,
    "url_password": url_password,
}
