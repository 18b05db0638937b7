"""Filters that drop matches which are not secrets. Each ``is_*`` names the false
positive it kills; all are pure functions of the candidate value (bytes).

``universal`` filters apply to every rule: a placeholder is never a live key.
``generic`` filters apply to the generic assignment detector only, where the
value has no provider format to vouch for it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

# Words that mark documentation and templates wherever they appear in a value.
_PLACEHOLDER_WORDS = (
    b"example",
    b"changeme",
    b"change_me",
    b"change-me",
    b"placeholder",
    b"your_",
    b"your-",
    b"yourkey",
    b"yourtoken",
    b"yoursecret",
    b"dummy",
    b"redacted",
    b"replace_me",
    b"replaceme",
    b"replace-me",
    b"insert_",
    b"insert-",
    b"notreal",
    b"not_real",
    b"not-a-real",
    b"fake_",
    b"fake-",
    b"sample_",
    b"<secret>",
    b"foobar",
    b"lorem",
    b"ipsum",
    b"hunter2",
)
# Short fillers: telling in a token-sized value, but random text of a few hundred
# characters (a PEM body) contains one of them by chance, so they apply to short values.
_FILLERS = (
    b"xxxx",
    b"****",
    b"....",
    b"fixme",
    b"todo",
    b"0000000000",
    b"1234567890",
    b"abcdefgh",
    b"123456789",
    b"aaaaaaaa",
)
_FILLER_MAX_LEN = 100
_PLACEHOLDER_RE = re.compile(b"|".join(re.escape(w) for w in _PLACEHOLDER_WORDS))
_FILLER_RE = re.compile(b"|".join(re.escape(w) for w in _FILLERS))
_TEMPLATE_RE = re.compile(
    rb"""\$\{[^}]*\}|\{\{[^}]*\}\}|\$\([^)]*\)|%\([^)]*\)[sd]|^\$[A-Za-z_][A-Za-z0-9_]*$|"""
    rb"""^%[A-Za-z_]+%$|^<[^<>]+>$|^\[[A-Za-z _-]+\]$|%s|%[-+#0]?\d*\.\d*[dfs]|\{\d*\}|\{[A-Za-z_][A-Za-z0-9_.]*\}|#\{[^}]*\}|@@[A-Za-z_]+@@"""
)
_CODE_RE = re.compile(
    rb"""^(?:os\.environ|os\.getenv|process\.env|env\(|getenv|System\.getenv|ENV\[|ENV\.fetch|"""
    rb"""Deno\.env|import\.meta\.env|Environment\.GetEnvironmentVariable|config\.|"""
    rb"""settings\.|self\.|this\.|props\.|params\.|args\.|request\.|secrets\.|vault:|"""
    rb"""ref\+|arn:aws:secretsmanager|arn:aws:ssm|arn:aws:kms|ssm:|secretsmanager:|"""
    rb"""projects/[^/]+/secrets/|op://|keyvault:|azurekeyvault|akv:|sm://|gcpsm:|awssm:|"""
    rb"""doppler:|infisical:|env:|file:|exec:|!Ref|!Sub|!GetAtt|!Secret|!vault|"""
    rb"""true$|false$|null$|none$|nil$|undefined$)""",
    re.IGNORECASE,
)
_IDENTIFIER_RE = re.compile(
    rb"^[:@$&*]?[A-Za-z_][A-Za-z0-9_]*(?:[.\-][A-Za-z_][A-Za-z0-9_]*)*(?:\(\)?)?$"
)
# dotted path whose first part is a lowercase name (a module or variable)
_ATTRIBUTE_RE = re.compile(
    rb"^[:@$&*]?_*[a-z][a-z0-9_]{1,}(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:\(\)?)?$|^[A-Za-z_][A-Za-z0-9_]*\.[a-z_][a-z0-9_]{2,}(?:\(\)?)?$"
)
_PASSPHRASE_RE = re.compile(rb"[A-Z][a-z]+[-_][A-Z][a-z]+")
_SNAKE_RE = re.compile(rb"^[:@$]?\.*_*[a-z][a-z0-9]*(?:[_.:/@-][a-z0-9]*)+$")
_URL_RE = re.compile(rb"^[a-z][a-z0-9+.-]*://[^:@/\s]+(?:[:/?#]|$)", re.IGNORECASE)
HAS_DIGIT = re.compile(rb"\d")
HAS_LOWER = re.compile(rb"[a-z]")
HAS_UPPER = re.compile(rb"[A-Z]")
_SEQUENCES = (b"0123456789", b"abcdefghijklmnopqrstuvwxyz", b"qwertyuiop", b"asdfghjkl")


@cache
def _data(name: str) -> bytes:
    # beside this module (package data); importlib.resources costs a hook 4 ms to import
    return (Path(__file__).parent / "data" / name).read_bytes()


@cache
def common_words() -> frozenset[bytes]:
    """words.txt alone: stock passwords and the words code uses for secrets."""
    return frozenset(w.strip().lower() for w in _data("words.txt").splitlines() if w.strip())


class WordList:
    """Membership in a sorted newline-separated word file, built lazily: the first
    lookups search the file's bytes (tens of microseconds each), and only a caller that
    keeps asking (a history scan) pays the ~30 ms of building a set. A hook that meets
    two generic candidates never builds it."""

    _BUILD_AFTER = 64

    def __init__(self, *texts: bytes) -> None:
        self._text = b"\n" + b"\n".join(t.strip().lower() for t in texts) + b"\n"
        self._set: frozenset[bytes] | None = None
        self._asked = 0

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, bytes) or not word or b"\n" in word:
            return False
        if self._set is None:
            self._asked += 1
            if self._asked <= self._BUILD_AFTER:
                return b"\n" + word + b"\n" in self._text
            self._set = frozenset(w for w in self._text.split(b"\n") if w)
        return word in self._set


@cache
def _words() -> WordList:
    """Common passwords and code words (words.txt) and an English word list (english.txt,
    from SCOWL via Debian's wamerican: lowercase words of 3-12 letters; licence in
    english.LICENSE)."""
    return WordList(_data("words.txt"), _data("english.txt"))


def is_placeholder(value: bytes) -> bool:
    """Documentation and template stand-ins: ``EXAMPLE`` keys, ``xxxx``, ``changeme``, ``your_key``."""
    low = value.lower()
    if _PLACEHOLDER_RE.search(low) is not None:
        return True
    if len(value) <= _FILLER_MAX_LEN:
        return _FILLER_RE.search(low) is not None
    # in a long value only a long run of filler is telling (never seen in random text)
    return any(w * 2 in low for w in (b"xxxx", b"****", b"....", b"0000"))


@cache
def _known_examples() -> frozenset[bytes]:
    lines = _data("known_examples.txt").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith(b"#"))


def is_known_example(value: bytes) -> bool:
    """A credential a provider publishes in its own documentation (``AKIAIOSFODNN7EXAMPLE``,
    jwt.io's sample token, the Azurite account key): public, so never a leak."""
    return value in _known_examples()


def is_template_variable(value: bytes) -> bool:
    """Values filled in later: ``${VAR}``, ``{{ var }}``, ``$VAR``, ``%(name)s``, ``<your-key>``."""
    return _TEMPLATE_RE.search(value) is not None


def is_low_variety(value: bytes) -> bool:
    """Runs of one or two characters (``aaaaaaaa``, ``--------``) and keyboard sequences."""
    if len(set(value)) <= 2:
        return True
    low = value.lower()
    return any(low in seq or seq.startswith(low) for seq in _SEQUENCES if len(low) >= 6)


_CALL_RE = re.compile(rb"^[A-Za-z_$][A-Za-z0-9_.$]*(?:\([^()]*\)|\[[A-Za-z0-9_., \[\]]*\])$")
_REGEX_SYNTAX = re.compile(rb"\\[wdsWDSbB]|\[\^|\(\?[:=!<P]|\.\*|\\\.")


def is_code_reference(value: bytes) -> bool:
    """An expression that fetches the secret instead of holding it: ``os.environ[...]``,
    ``config.password``, ``self.token``, ``get_password(user)``, booleans and nulls."""
    return (
        _CODE_RE.match(value) is not None
        or _CALL_RE.match(value) is not None
        or _REGEX_SYNTAX.search(value) is not None  # a pattern: r'[^\W\d]\w*'
    )


def is_identifier(value: bytes) -> bool:
    """A variable, attribute or type name (``user_password``, ``authToken``,
    ``:save_password``, ``rsa.RSAPrivateKey``, ``V1SecretVolumeSource``): the shape of
    code rather than of a key."""
    if _IDENTIFIER_RE.match(value) is not None:
        if _PASSPHRASE_RE.search(value) is not None and HAS_DIGIT.search(value) is not None:
            return False  # Tundra-Bramble4123: capitalised words and digits, a password
        if _ATTRIBUTE_RE.match(value) is not None:
            return True  # module.Name, obj.attr.method: code, whatever the case
        if _SNAKE_RE.match(value) is not None:
            return True
        return _reads_as_words(value, 1 if HAS_DIGIT.search(value) is None else 2)
    return _SNAKE_RE.match(value) is not None


# the words of a code name: camel humps, acronyms, runs of one case (XMLHttpRequest -> XML Http Request)
CAMEL_WORDS = re.compile(rb"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def _reads_as_words(value: bytes, need: int) -> bool:
    """Code names are words in one case or in camel humps (``getUserToken``,
    ``XMLHttpRequest``, ``DB_PASSWORD``). A random mixed-case string
    (``jxlPXwTpirjEAfxToxBE``) splits into short, wordless pieces instead."""
    if need == 1 and (value.lower() == value or value.upper() == value):
        return True  # one case and no digits: a name or a word, never a key
    toks = CAMEL_WORDS.findall(value)
    if not toks:
        return False
    letters = sum(len(t) for t in toks)
    short = sum(1 for t in toks if len(t) <= 2)
    if short / len(toks) > 0.34 or letters / len(toks) < 3.0:
        return False
    words = _words()
    return sum(1 for t in toks if len(t) >= 4 and t.lower() in words) >= need


def is_url_without_credentials(value: bytes) -> bool:
    """A plain URL (``https://database.windows.net/``): an endpoint, not a secret.
    URLs with a password in them are the connection-string rules' business."""
    return _URL_RE.match(value) is not None


def is_dictionary_word(value: bytes) -> bool:
    """Common words and passwords (``secret``, ``password123``, ``letmein``) stripped of
    digits and punctuation: a real secret is not a word from the list."""
    core = re.sub(rb"[^a-z]", b"", value.lower())
    if not core:
        return True
    words = _words()
    if core in words:
        return True
    # two words glued together (``adminpassword``, ``secretkey``)
    return any(core[:i] in words and core[i:] in words for i in range(3, len(core) - 2))


# escapes of what a URL must escape (space, punctuation, '@', ':', '/', '%'): %9f is noise
_PERCENT_ESCAPE = re.compile(rb"%(?:2[0-9A-Fa-f]|3[A-Fa-f]|40|5[BbDdEeFf]|7[BbCcDdEe])")


def is_percent_encoded(value: bytes) -> bool:
    """URL-encoded structured text (``user%3BPORT%3D5000``): two or more escapes of
    punctuation. One escaped ``=`` is how some tokens are written (Twitter's bearer)."""
    return len(_PERCENT_ESCAPE.findall(value)) >= 2


def is_single_class(value: bytes) -> bool:
    """Only one character class (all lowercase, all digits, ...): phone numbers, ids, words."""
    classes = sum(1 for rx in (HAS_DIGIT, HAS_LOWER, HAS_UPPER) if rx.search(value) is not None)
    return classes <= 1 and re.search(rb"[^A-Za-z0-9]", value) is None


UNIVERSAL = (is_placeholder, is_template_variable, is_low_variety, is_known_example)
# Dictionary words are judged in detectors/generic.py, against what the name says: a
# password may be made of words (Velvet-Harbor-42!), a token may not.
GENERIC = (
    is_code_reference,
    is_identifier,
    is_url_without_credentials,
    is_single_class,
    is_percent_encoded,
)


def rejected_by(value: bytes, generic: bool) -> str | None:
    """The name of the first filter that rejects ``value``, or None if it survives."""
    for f in UNIVERSAL:
        if f(value):
            return f.__name__
    if generic:
        for f in GENERIC:
            if f(value):
                return f.__name__
    return None
