"""Keyed fingerprints and redacted previews: how a secret is named without showing it.

The fingerprint is HMAC-SHA256 of the secret value under a key from
``SENTINEL_FINGERPRINT_KEY``; without one, a built-in key is used, which makes
baselines portable between machines but lets anyone holding a baseline test a
guess offline, so teams that share baselines outside the repository set a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

DEFAULT_KEY = b"sentinel/fingerprint/v1"
ENV_KEY = "SENTINEL_FINGERPRINT_KEY"


def fingerprint_key() -> bytes:
    value = os.environ.get(ENV_KEY)
    return value.encode() if value else DEFAULT_KEY


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so a baseline can say which key it needs."""
    return hmac.new(key, b"sentinel-key-id", hashlib.sha256).hexdigest()[:12]


def fingerprint(secret: bytes, key: bytes) -> str:
    return hmac.new(key, secret, hashlib.sha256).hexdigest()


def redact(secret: str) -> str:
    """A preview that identifies a secret to its owner without disclosing it.

    PEM blocks show their BEGIN line; other values keep a short prefix (so a
    ``ghp_`` or ``sk_live_`` is recognisable) scaled to the secret's length.
    """
    first = secret.split("\n", 1)[0].strip()
    if first.startswith("-----BEGIN") and first.endswith("-----"):
        return first + " ****"
    n = len(secret)
    keep = 4 if n >= 24 else 2 if n >= 12 else 0
    return f"{secret[:keep]}{'*' * 8}"
