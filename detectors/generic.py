"""Judging a generic candidate: a value assigned to a name, with no provider format to
vouch for it.

The generic rules' regexes only find ``<name> <assignment> <value>`` where the name
holds a secret-sounding word. Whether the pair is a secret is decided here, in two
steps that a regex cannot express:

* the **name**, split into words across case styles (``dbPassword``, ``DB_PASSWORD``,
  ``db-password``, ``spring.datasource.password``): a secret word (``password``,
  ``token``, ``api key``) must be among them, and a word that turns the name into
  something else (``password_length``, ``token_url``, ``public_key``,
  ``next_page_token``) disqualifies it;
* the **value**, against the evidence the name gives: a name that says ``password``
  accepts a shorter value than a bare ``..._KEY`` does, and every value must look
  random for its character classes (entropy against what its length and alphabet
  can reach), not like a word, a path, a hash spelled with its algorithm, a version
  or an address.
"""

from __future__ import annotations

import re
from enum import IntEnum

from detectors.entropy import class_ceiling, shannon
from detectors.filters import (
    CAMEL_WORDS,
    HAS_DIGIT,
    HAS_LOWER,
    HAS_UPPER,
    common_words,
    is_dictionary_word,
)
from detectors.filters import _words as dictionary


class Evidence(IntEnum):
    """How strongly a name says it holds a secret."""

    NONE = 0
    WEAK = 1  # a bare "key" or "auth": sort_key, cache_key, AUTH_MODE ...
    SECRET = 2  # token, secret, api key, credentials
    PASSWORD = 3  # password, passwd, pwd: people choose these, so they are shorter


_NAME_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")  # CAMEL_WORDS + digits

_PASSWORD_WORDS = frozenset(
    {"password", "passwd", "passwort", "passphrase", "pwd", "pw", "pass", "passwords", "pword"}
)
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "creds",
        "cred",
        "apikey",
        "apikeys",
        "bearer",
        "passcode",
        "pat",
        "sas",
        "dsn",
    }
)
# words that end in a secret term: ``dbpassword``, ``clientsecret``, ``authtoken``
_SUFFIXES_PASSWORD = ("password", "passwd", "passphrase", "pwd")
_SUFFIXES_SECRET = (
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "secretkey",
    "privatekey",
    "accesskey",
)
# a "key" preceded by one of these is a secret key; any other "key" is weak evidence
_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "priv",
        "signing",
        "sign",
        "encryption",
        "encrypt",
        "crypt",
        "master",
        "auth",
        "app",
        "application",
        "client",
        "consumer",
        "license",
        "licence",
        "account",
        "service",
        "webhook",
        "shared",
        "hmac",
        "session",
        "jwt",
        "admin",
        "server",
        "sdk",
        "write",
        "ingest",
        "ingestion",
        "management",
        "subscription",
        "storage",
        "rest",
        "developer",
        "dev",
        "prod",
        "live",
        "root",
        "cipher",
        "aes",
        "hash",  # hash_key: the key of a keyed hash
        "salt",
        "deploy",
        "push",
        "partner",
        "merchant",
        "user",
        "org",
        "personal",
        "integration",
        "mgmt",
        "x",
    }
)
# the name is about a secret but does not hold one: password_length, token_url, key_id
_NOT_A_VALUE_TAIL = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "type",
        "types",
        "url",
        "urls",
        "uri",
        "endpoint",
        "host",
        "hostname",
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "filepath",
        "dir",
        "directory",
        "length",
        "len",
        "size",
        "min",
        "max",
        "policy",
        "policies",
        "hash",
        "hashed",
        "digest",
        "checksum",
        "md5",
        "sha",
        "sha1",
        "sha256",
        "field",
        "fields",
        "label",
        "prompt",
        "regex",
        "regexp",
        "pattern",
        "format",
        "header",
        "headers",
        "param",
        "params",
        "parameter",
        "prefix",
        "suffix",
        "version",
        "count",
        "expiry",
        "expires",
        "expiration",
        "expired",
        "ttl",
        "timeout",
        "lifetime",
        "ref",
        "reference",
        "arn",
        "env",
        "var",
        "variable",
        "location",
        "hint",
        "placeholder",
        "required",
        "enabled",
        "disabled",
        "mode",
        "method",
        "strategy",
        "provider",
        "store",
        "storage",
        "manager",
        "handler",
        "validator",
        "validation",
        "input",
        "form",
        "column",
        "attribute",
        "attr",
        "index",
        "kind",
        "class",
        "schema",
        "description",
        "desc",
        "message",
        "msg",
        "error",
        "errors",
        "rotation",
        "usage",
        "limit",
        "created",
        "updated",
        "at",
        "date",
        "time",
        "age",
        "source",
        "algorithm",
        "algo",
        "alg",
        "encoding",
        "encoded",
        "bits",
        "entropy",
        "strength",
        "rules",
        "rule",
        "options",
        "option",
        "config",
        "settings",
        "callback",
        "test",
        "tests",
        "mock",
        "example",
        "sample",
        "template",
        "scope",
        "scopes",
        "audience",
        "issuer",
        "user",
        "username",
        "login",
        "email",
        "owner",
        "region",
        "zone",
        "project",
        "bucket",
        "table",
        "ring",
        "vault",
        "mount",
        "engine",
        "backend",
        "command",
        "cmd",
        "script",
        "exists",
        "set",
        "present",
        "changed",
        "status",
        "state",
        "visible",
        "visibility",
        "view",
        "widget",
        "button",
        "text",
        "title",
        "char",
        "chars",
        "characters",
        "digits",
        "lower",
        "upper",
        "special",
    }
)
# a word anywhere in the name that makes it something other than a stored secret
_NOT_A_SECRET_ANYWHERE = frozenset(
    {
        "public",
        "pub",
        "publishable",
        "site",
        "search",
        "anon",
        "browser",
        "recipient",
        "recipients",
        "csrf",
        "xsrf",
        "page",
        "next",
        "continuation",
        "cursor",
        "pagination",
        "num",
        "is",
        "has",
        "use",
        "uses",
        "enable",
        "show",
        "hide",
        "toggle",
        "forgot",
        "forgotten",
        "confirm",
        "validate",
        "regex",
        "tokenizer",
        "tokenize",
        "tokenized",
        "tokenization",
        "bypass",
        "compass",
        "passenger",
        "passengers",
        "passage",
        "passive",
        "passthrough",
        "secretary",
        "fake",
        "dummy",
        "mock",
        "placeholder",
        "sort",
        "primary",
        "foreign",
        "partition",
        "routing",
        "cache",
        "lookup",
        "keyboard",
        "keystroke",
        "keyword",
        "keywords",
        "monkey",
        "turkey",
        "hotkey",
        "keyup",
        "keydown",
        "keypress",
        "keyframe",
        "keyframes",
        "max",
        "min",
        "length",
        "i18n",
        "translation",
        "locale",
        "label",
    }
)


_NEUTRAL_SUFFIX = frozenset(
    {
        "value", "val", "str", "string", "b64", "base64", "hex", "raw", "data", "plain",
        "base", "salt", "pepper", "seed", "prod", "production", "dev", "development",
        "staging", "stage", "live", "test", "sandbox", "local", "default", "override",
        "new", "old", "current", "primary", "secondary", "backup", "main", "admin", "root",
        "master", "v", "ro", "rw", "read", "write", "readonly", "global", "shared", "internal",
        "external", "private", "secret", "server", "client", "app", "user", "service",
    }
)  # fmt: skip


def _is_secret_word(w: str) -> bool:
    return (
        w in _PASSWORD_WORDS
        or w in _SECRET_WORDS
        or w.endswith(_SUFFIXES_PASSWORD)
        or w.endswith(_SUFFIXES_SECRET)
        or w == "key"
        or (w.endswith("key") and len(w) > 3)
    )


def name_words(name: str) -> list[str]:
    """``dbPassword`` -> [db, password]; ``DB_PASSWORD`` -> [db, password];
    ``spring.datasource.password`` -> [spring, datasource, password]."""
    return [w.lower() for w in _NAME_PARTS.findall(name)]


def evidence(name: str) -> Evidence:
    """How strongly ``name`` says its value is a secret (NONE when a word says it is not)."""
    words = name_words(name)
    if not words:
        return Evidence.NONE
    if any(w in _NOT_A_SECRET_ANYWHERE for w in words) or words[-1] in _NOT_A_VALUE_TAIL:
        return Evidence.NONE
    # what follows the last secret word must qualify the value, not make it something
    # else: DB_PASSWORD_PROD, SECRET_KEY_BASE, API_KEY_V2 hold secrets; token_requests,
    # key_node_tag, client_secret_basic do not
    last = max((i for i, w in enumerate(words) if _is_secret_word(w)), default=-1)
    if last >= 0 and any(
        not (w in _NEUTRAL_SUFFIX or w.isdigit() or _is_secret_word(w)) for w in words[last + 1 :]
    ):
        return Evidence.NONE
    best = Evidence.NONE
    for i, w in enumerate(words):
        if w in _PASSWORD_WORDS or w.endswith(_SUFFIXES_PASSWORD):
            return Evidence.PASSWORD
        if w in _SECRET_WORDS or w.endswith(_SUFFIXES_SECRET):
            best = max(best, Evidence.SECRET)
        elif w == "key" or (w.endswith("key") and len(w) > 3):
            prev = words[i - 1] if i else ""
            if prev in _KEY_QUALIFIERS or w[:-3] in _KEY_QUALIFIERS:
                best = max(best, Evidence.SECRET)
            else:
                best = max(best, Evidence.WEAK)
        elif w in ("auth", "authorization"):
            best = max(best, Evidence.WEAK)
    return best


# -- the value -------------------------------------------------------------------------------

_SYMBOL = re.compile(rb"[^A-Za-z0-9]")
_NUMERIC_ISH = re.compile(rb"^[0-9.:/_+-]+$")  # versions, dates, addresses, ports
_PATH = re.compile(
    rb"^(?:~?/|\.{1,2}/|[A-Za-z]:\\|file:|classpath:)|"
    rb"\.(?:pem|key|crt|cer|der|p12|pfx|jks|keystore|json|ya?ml|txt|env|ini|conf|cfg|gpg|asc|pub|properties|xml|toml|sh|py|js|ts|rb|go|java)$",
    re.IGNORECASE,
)
_EMAIL = re.compile(rb"^[^@\s]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_HASH_SPELLED = re.compile(
    rb"^(?:\$(?:2[abxy]?|argon2(?:id|i|d)|pbkdf2[-_a-z0-9]*|scrypt|apr1|[156]|y|gy|7|md5|sha1)\$|"
    rb"\{(?:SSHA|SHA|SMD5|MD5|BCRYPT|CRYPT|PBKDF2)[^}]*\}|"
    rb"(?:pbkdf2_sha\d+|bcrypt_sha256|argon2|scrypt)\$|"
    rb"(?:sha|md)\d+[:-]|sha512-|sha384-|sha256-|blake2b?[:-])",
    re.IGNORECASE,
)
# ciphertext that only its key can open: KMS blobs, Jenkins/sops/Ansible/Vault-transit envelopes
_ENCRYPTED = re.compile(
    rb"^(?:AQICAH|\{AQAAAB|ENC\[|\$ANSIBLE_VAULT|vault:v\d+:|AgA[A-Za-z0-9+/]{300})"
)
# public halves and publishable keys: made to be shared
_PUBLIC_FORMAT = re.compile(
    rb"^(?:pk\.eyJ|pk_live_|pk_test_|phc_|NRJS-|pub-c-|sub-c-|age1[02-9ac-hj-np-z]{50}|npub1|"
    rb"xpub|tpub|ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-|sk-ecdsa-|sk-ssh-ed25519)"
)
_UUID = re.compile(
    rb"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_LEET = bytes.maketrans(b"013457@$!|", b"oieastasil")
_TRAILER = re.compile(rb"[0-9!@#$%^&*._+-]+$")  # Password123!, Summer2024!
_REPEAT_UNIT = re.compile(rb"^(.{1,8}?)\1{2,}")  # abcabcabc, 121212
_RUN = re.compile(rb"(.)\1{3,}")  # aaaa inside a value


def classes(value: bytes) -> int:
    return sum(
        1 for rx in (HAS_LOWER, HAS_UPPER, HAS_DIGIT, _SYMBOL) if rx.search(value) is not None
    )


_RUN_OF_ALNUM = re.compile(rb"[A-Za-z0-9]{16,}")


def randomness(value: bytes) -> float:
    """:func:`_randomness` of the value, or of its longest alphanumeric run when a short
    prefix or a few separators frame a random body (``sk-<32 hex>``, ``*:prod.<hex>``):
    the framing would otherwise count a whole symbol class for two characters."""
    runs = _RUN_OF_ALNUM.findall(value)
    whole = _randomness(value)
    if runs:
        body = max(runs, key=len)
        if len(body) >= 0.6 * len(value):
            return max(whole, _randomness(body))
    return whole


def _randomness(value: bytes) -> float:
    """Entropy against what this value's length and character classes can reach
    (:func:`detectors.entropy.class_ceiling`): about 0.9 and more for a random string,
    lower for words, patterns and repeats."""
    ceiling = class_ceiling(value)
    return shannon(value) / ceiling if ceiling else 0.0


def is_stock_password(value: bytes) -> bool:
    """A default or stock password (``password``, ``changeme``, ``P@ssw0rd123``, ``admin``),
    or one plain word with nothing else: what documentation and tests write. A password
    made of words, digits and symbols (``Velvet-Harbor-42!``) is what people really choose,
    and is reported."""
    stem = _TRAILER.sub(b"", value)
    core = re.sub(rb"[^a-z]", b"", stem.translate(_LEET).lower())
    if not core or core in common_words():
        return True
    plain = re.sub(rb"[^a-z]", b"", value.lower())
    if plain in common_words():
        return True
    # letters only: one word, two glued (adminpassword), camel words (IAmSensitive)
    return value.isalpha() and (is_dictionary_word(value) or is_word_like(value))


def is_wordy(value: bytes) -> bool:
    """Letters and separators only, and the letters are one or two words (or stock):
    ``apples/oranges``, ``pass/word``. A URL password like that is documentation."""
    if HAS_DIGIT.search(value) is not None:
        return False
    return is_stock_password(value) or is_dictionary_word(value)


def is_word_like(value: bytes) -> bool:
    """Made of words once leetspeak and digits are undone: ``P@ssw0rd123``, ``Summer2024!``."""
    if is_dictionary_word(value):
        return True
    toks = [t.lower() for t in CAMEL_WORDS.findall(value)]
    if toks and sum(len(t) for t in toks) >= len(value) * 0.6:
        words = dictionary()
        if any(len(t) >= 4 for t in toks) and all(len(t) <= 2 or t in words for t in toks):
            return True  # IAmSensitive, NotARealToken, MySuperSecretValue
    stem = _TRAILER.sub(b"", value)
    return len(stem) >= 4 and is_dictionary_word(stem.translate(_LEET))


def value_rejection(value: bytes, ev: Evidence) -> str | None:
    """Why ``value`` is not a secret given evidence ``ev`` from its name, or None."""
    n = len(value)
    if ev is Evidence.NONE:
        return "generic_name"
    min_len = {Evidence.PASSWORD: 8, Evidence.SECRET: 10, Evidence.WEAK: 16}[ev]
    if n < min_len:
        return "generic_short"
    if _HASH_SPELLED.match(value):
        return "generic_hash"
    if _ENCRYPTED.match(value):
        return "generic_encrypted"
    if _PUBLIC_FORMAT.match(value):
        return "generic_public"
    if _UUID.match(value):
        # a random v4 UUID is a common token format (Heroku, Consul, many APIs); the name
        # has to say token/secret/key (an id, a request id are names with NONE evidence)
        return None if ev >= Evidence.SECRET and len(set(value)) > 10 else "generic_uuid"
    if _NUMERIC_ISH.match(value):
        return "generic_numeric"
    if _PATH.search(value) or _EMAIL.match(value):
        return "generic_path"
    if _REPEAT_UNIT.match(value) or (_RUN.search(value) and n < 24):
        return "generic_repeated"
    k = classes(value)
    floor = {Evidence.PASSWORD: 0.72, Evidence.SECRET: 0.78, Evidence.WEAK: 0.85}[ev]
    if randomness(value) < floor:
        return "generic_entropy"
    if ev is Evidence.WEAK and (k < 2 or HAS_DIGIT.search(value) is None):
        return "generic_weak_name"
    if ev is Evidence.PASSWORD:
        if is_stock_password(value):
            return "dictionary_word"
    elif n < 24 and is_word_like(value):
        return "dictionary_word"
    return None
