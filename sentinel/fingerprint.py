"""Keyed fingerprints and redacted previews: how a secret is named without showing it.

A fingerprint is HMAC-SHA256 of the secret value. Whoever holds a fingerprint and
its key can test a guessed value offline, so the key decides who can:

- the **installation key** signs every report, hook log and (later) the service's
  store. It comes from ``SENTINEL_FINGERPRINT_KEY`` (the key itself), else
  ``SENTINEL_FINGERPRINT_KEY_FILE`` (a file holding it), else
  ``$SENTINEL_HOME/fingerprint.key``, which is created (random, mode 0600) the first
  time it is needed. A home that cannot be written gets a one-off key for this run,
  and the report says so: its fingerprints match nothing made before or after.
- the **public key** is built in and the same everywhere. Only baselines use it,
  by default, because a baseline is committed and must match on every developer's
  machine and on the git server; anyone with the file can test guesses against it.
  ``sentinel baseline create --key installation`` keeps a baseline private instead.

A key is named by ``key_id`` (an HMAC of a constant), never shown.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

PUBLIC_KEY = b"sentinel/fingerprint/v1"
DEFAULT_KEY = PUBLIC_KEY  # the name older code and notes use
ENV_KEY = "SENTINEL_FINGERPRINT_KEY"
ENV_KEY_FILE = "SENTINEL_FINGERPRINT_KEY_FILE"
KEY_FILE_NAME = "fingerprint.key"
_MAX_KEY_FILE = 4096


@dataclass(frozen=True)
class FingerprintKey:
    key: bytes
    source: str  # where it came from, for messages: "SENTINEL_FINGERPRINT_KEY", a path, ...
    ephemeral: bool = False

    @property
    def id(self) -> str:
        return key_id(self.key)

    @property
    def public(self) -> bool:
        return hmac.compare_digest(self.key, PUBLIC_KEY)

    def warning(self) -> str | None:
        """What a report should say about this key, if anything."""
        if self.ephemeral:
            return (
                f"fingerprints are under a one-off key ({self.source}): they match no "
                f"earlier or later run; set {ENV_KEY} or make $SENTINEL_HOME writable"
            )
        if self.public:
            return (
                "fingerprints are under the built-in public key: anyone holding this report "
                f"can test guessed values against them; set {ENV_KEY} to a secret of your own"
            )
        return None


PUBLIC = FingerprintKey(PUBLIC_KEY, "the built-in public key")


def sentinel_home() -> Path:
    """Where an installation keeps its own state: ``$SENTINEL_HOME``, else
    ``$XDG_DATA_HOME/sentinel`` (``~/.local/share/sentinel``)."""
    home = os.environ.get("SENTINEL_HOME")
    if home:
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(data) / "sentinel"


_CACHED: FingerprintKey | None = None
_CACHED_FOR: tuple[str | None, ...] = ()


def installation_key() -> FingerprintKey:
    """This installation's secret fingerprint key (see the module docstring)."""
    global _CACHED, _CACHED_FOR
    env = (
        os.environ.get(ENV_KEY),
        os.environ.get(ENV_KEY_FILE),
        os.environ.get("SENTINEL_HOME"),
        os.environ.get("XDG_DATA_HOME"),
        os.environ.get("HOME"),
    )
    if _CACHED is not None and env == _CACHED_FOR:
        return _CACHED
    _CACHED, _CACHED_FOR = _resolve(), env
    return _CACHED


def _resolve() -> FingerprintKey:
    from sentinel.errors import ConfigError

    value = os.environ.get(ENV_KEY)
    if value:
        return FingerprintKey(value.encode(), ENV_KEY)
    named = os.environ.get(ENV_KEY_FILE)
    if named:
        key = _read_key_file(Path(named))
        if key is None:
            raise ConfigError(
                f"{ENV_KEY_FILE}={named}: no such key file",
                f"create it (for example: head -c 32 /dev/urandom | xxd -p -c 64 > {named})",
            )
        return FingerprintKey(key, named)
    path = sentinel_home() / KEY_FILE_NAME
    key = _read_key_file(path)
    if key is not None:
        return FingerprintKey(key, str(path))
    try:
        return FingerprintKey(_create_key_file(path), str(path))
    except OSError as exc:
        return FingerprintKey(
            os.urandom(32), f"{path} cannot be created: {exc.strerror or exc}", ephemeral=True
        )


def _read_key_file(path: Path) -> bytes | None:
    """The key in ``path`` (surrounding whitespace dropped), None if there is no file."""
    from sentinel.errors import ConfigError
    from sentinel.sources.safeio import FileTooLarge, read_regular

    try:
        data = read_regular(path, _MAX_KEY_FILE).strip()
    except FileNotFoundError:
        return None
    except FileTooLarge:
        raise ConfigError(f"fingerprint key file {path} is larger than 4 KB") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read fingerprint key file {path}: {exc.strerror or exc}"
        ) from None
    if len(data) < 16:
        raise ConfigError(
            f"fingerprint key file {path} holds {len(data)} bytes; a key needs at least 16"
        )
    return data


def _create_key_file(path: Path) -> bytes:
    """A new random key written to ``path`` (0600), or the one another process wrote
    there first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(32).hex().encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process created meanwhile
    except FileExistsError:
        existing = _read_key_file(path)
        if existing is not None:
            key = existing
    finally:
        os.unlink(tmp)
    return key


def fingerprint_key() -> bytes:
    """The installation key's bytes (what reports and hooks fingerprint with)."""
    return installation_key().key


def require_private(key: FingerprintKey | None = None) -> FingerprintKey:
    """The installation key, refused if it is the public one or a one-off: a store of
    findings must not be guessable offline, nor change at every start."""
    from sentinel.errors import ConfigError

    k = key or installation_key()
    if k.public:
        raise ConfigError(
            "the fingerprint key is the built-in public one",
            f"set {ENV_KEY} or {ENV_KEY_FILE} to a secret key of this installation",
        )
    if k.ephemeral:
        raise ConfigError(f"no lasting fingerprint key: {k.source}")
    return k


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so a baseline can say which key it needs."""
    return hmac.new(key, b"sentinel-key-id", hashlib.sha256).hexdigest()[:12]


PUBLIC_KEY_ID = key_id(PUBLIC_KEY)


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
