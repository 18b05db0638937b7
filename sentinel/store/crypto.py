"""Sealing the few plaintext secrets the store keeps (those a rotator will need).

AES-256-GCM from ``cryptography``. A sealed value is ``b"s1" + key_id(12 ascii) + nonce(12)
+ ciphertext+tag``, bound to its finding's fingerprint as associated data, so a sealed
value copied onto another row does not open. Every row also records its key id, so
``sentinel keys rotate`` can re-seal row by row and resume where it stopped.

Keys come from ``SENTINEL_ENCRYPTION_KEY`` (one key, or several separated by commas:
the first seals, the others only open), else ``SENTINEL_ENCRYPTION_KEY_FILE``, else
``$SENTINEL_HOME/encryption.keys``: one key per line, newest first. A key is 32 random
bytes written as 64 hex digits or as base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_KEY = "SENTINEL_ENCRYPTION_KEY"
ENV_KEY_FILE = "SENTINEL_ENCRYPTION_KEY_FILE"
KEY_FILE_NAME = "encryption.keys"
_MAGIC = b"s1"
_ID_LEN = 12
_NONCE = 12


class NoEncryptionKey(Exception):
    """No key is configured: the store will not keep plaintext."""


class SealError(Exception):
    """A sealed value does not open (unknown key, altered bytes, wrong row)."""


def key_id(key: bytes) -> str:
    return hmac.new(key, b"sentinel-encryption-key-id", hashlib.sha256).hexdigest()[:_ID_LEN]


def parse_key(text: str, where: str) -> bytes:
    from sentinel.errors import ConfigError

    t = text.strip()
    raw: bytes | None = None
    if len(t) == 64:
        try:
            raw = bytes.fromhex(t)
        except ValueError:
            raw = None
    if raw is None:
        try:
            std = t.replace("-", "+").replace("_", "/")
            raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ConfigError(
            f"{where}: an encryption key must be 32 bytes as 64 hex digits or base64",
            "make one with: sentinel keys generate",
        )
    return raw


def new_key_text() -> str:
    return os.urandom(32).hex()


@dataclass
class Keyring:
    """Keys by id; ``current`` seals, every key opens."""

    keys: dict[str, bytes] = field(default_factory=dict)
    current: str | None = None
    source: str = ""

    @classmethod
    def of(cls, keys: list[bytes], source: str) -> Keyring:
        ring = cls(source=source)
        for k in keys:
            ring.keys.setdefault(key_id(k), k)
        ring.current = key_id(keys[0]) if keys else None
        return ring

    @property
    def available(self) -> bool:
        return self.current is not None

    def seal(self, plaintext: str, bound_to: str) -> tuple[bytes, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self.current is None:
            raise NoEncryptionKey(self.source or "no encryption key")
        nonce = os.urandom(_NONCE)
        ct = AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext.encode("utf-8", "surrogatepass"), bound_to.encode()
        )
        return _MAGIC + self.current.encode() + nonce + ct, self.current

    def open(self, sealed: bytes, bound_to: str) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not sealed.startswith(_MAGIC) or len(sealed) < 2 + _ID_LEN + _NONCE + 16:
            raise SealError("not a sealed value")
        kid = sealed[2 : 2 + _ID_LEN].decode("ascii", "replace")
        key = self.keys.get(kid)
        if key is None:
            raise SealError(f"sealed under key {kid}, which is not configured")
        nonce = sealed[2 + _ID_LEN : 2 + _ID_LEN + _NONCE]
        try:
            pt = AESGCM(key).decrypt(nonce, sealed[2 + _ID_LEN + _NONCE :], bound_to.encode())
        except InvalidTag:
            raise SealError("sealed value does not open: altered, or not this row's") from None
        return pt.decode("utf-8", "surrogatepass")


def key_file_path() -> Path:
    from sentinel.fingerprint import sentinel_home

    named = os.environ.get(ENV_KEY_FILE)
    return Path(named) if named else sentinel_home() / KEY_FILE_NAME


def load_keyring() -> Keyring:
    """The configured keys; an empty ring (``available`` False) when there are none."""
    from sentinel.errors import ConfigError
    from sentinel.sources.safeio import FileTooLarge, read_regular

    value = os.environ.get(ENV_KEY)
    if value:
        parts = [p for p in value.split(",") if p.strip()]
        return Keyring.of([parse_key(p, ENV_KEY) for p in parts], ENV_KEY)
    path = key_file_path()
    try:
        text = read_regular(path, 64 * 1024).decode("ascii", "replace")
    except FileNotFoundError:
        if os.environ.get(ENV_KEY_FILE):
            raise ConfigError(f"{ENV_KEY_FILE}={path}: no such key file") from None
        return Keyring(source=f"no {ENV_KEY} and no key file at {path}")
    except FileTooLarge:
        raise ConfigError(f"encryption key file {path} is larger than 64 KB") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read encryption key file {path}: {exc.strerror or exc}"
        ) from None
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    keys = [parse_key(ln, str(path)) for ln in lines if ln]
    if not keys:
        raise ConfigError(f"encryption key file {path} holds no key")
    return Keyring.of(keys, str(path))


def add_key_to_file(path: Path, key_text: str) -> None:
    """Put a new key first in ``path`` (created 0600), keeping the older ones after it."""
    old = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key_text + "\n" + old)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
