"""The engine: one Hyperscan pass, windowed confirmation, and a regex fallback that
must report exactly the same matches."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from detectors import filters
from detectors.engine import MAX_REPEATS, Engine, GlobalAllowlist, line_col
from detectors.entropy import shannon
from detectors.rule import rule_from_table
from detectors.ruleset import RuleSet, load_builtin
from detectors.validators import github_crc32, make_crc32_token, npm_crc32
from tests.conftest import password, token

RULES = load_builtin()


@pytest.fixture(scope="module")
def hs() -> Engine:
    return Engine(RULES, backend="hyperscan")


@pytest.fixture(scope="module")
def rx() -> Engine:
    return Engine(RULES, backend="regex")


def _all_examples() -> bytes:
    parts = []
    for r in RULES:
        parts.extend(r.examples)
        parts.extend(r.negative_examples)
    return "\n".join(parts).encode()


def test_backends_agree_on_every_example(hs: Engine, rx: Engine) -> None:
    for r in RULES:
        for ex in (*r.examples, *r.negative_examples):
            assert hs.scan(ex.encode()) == rx.scan(ex.encode()), (r.id, ex)


def test_backends_agree_on_the_whole_example_set_at_once(hs: Engine, rx: Engine) -> None:
    blob = _all_examples()
    a, b = hs.scan(blob), rx.scan(blob)
    assert a == b
    assert len({m.rule_id for m in a}) > 200


def test_match_offsets_point_at_the_secret(hs: Engine) -> None:
    tok = token("ghp", 1)
    data = f"x = 1\n\nconfig = {{'token': '{tok}'}}\n".encode()
    (m,) = [m for m in hs.scan(data) if m.rule_id == "github.pat-classic"]
    assert data[m.start : m.end] == tok.encode() == m.secret
    assert line_col(data, m.start) == (3, 21)


def test_secret_far_inside_a_huge_blob_is_found_in_a_window(hs: Engine) -> None:
    tok = token("ghp", 2)
    data = b"a" * 5_000_000 + b" " + tok.encode() + b" " + b"b" * 5_000_000
    before = hs.stats.windows
    found = [m for m in hs.scan(data) if m.rule_id == "github.pat-classic"]
    assert [m.start for m in found] == [5_000_001]
    # confirmation ran in a few small windows, never over the 10 MB blob
    assert hs.stats.windows - before < 10


def test_checksum_rejects_a_token_with_one_character_changed(hs: Engine) -> None:
    tok = token("ghp", 3)
    bad = tok[:-1] + ("A" if tok[-1] != "A" else "B")
    assert github_crc32(tok.encode()) and not github_crc32(bad.encode())
    assert not [m for m in hs.scan(bad.encode()) if m.rule_id.startswith("github.")]


def test_npm_checksum() -> None:
    tok = make_crc32_token("npm", "Qk2" * 10)
    assert npm_crc32(tok.encode())
    assert not npm_crc32((tok[:-2] + "zz").encode())


def test_base64_encoded_secret_is_decoded_and_found(hs: Engine, rx: Engine) -> None:
    tok = token("ghp", 4)
    enc = base64.b64encode(f"token={tok}\n".encode()).decode()
    data = f'value: "{enc}"\n'.encode()
    found = [m for m in hs.scan(data) if m.rule_id == "github.pat-classic"]
    assert len(found) == 1 and found[0].decoded == "base64"
    assert found[0].secret == tok.encode()
    assert data[found[0].start : found[0].end] == enc.encode()
    assert rx.scan(data) == hs.scan(data)


def test_double_base64_is_decoded_within_the_depth_bound(hs: Engine) -> None:
    tok = token("ghp", 5)
    once = base64.b64encode(f"GITHUB_TOKEN={tok}".encode())
    twice = base64.b64encode(b"config: " + once)
    found = [m for m in hs.scan(b"blob=" + twice) if m.rule_id == "github.pat-classic"]
    assert found and found[0].decoded == "base64>base64"
    thrice = base64.b64encode(b"x " + twice)
    shallow = Engine(RULES, backend="hyperscan", decode_depth=2)
    assert not [m for m in shallow.scan(b"v=" + thrice) if m.rule_id == "github.pat-classic"]


@pytest.mark.parametrize(
    "shape",
    ["export BLOB={enc}\n", 'blob: "{enc}"\n', "blob = '{enc}'\r\n", "BLOB={enc}"],
    ids=["end-of-line", "double-quoted", "single-quoted-crlf", "end-of-file"],
)
def test_padded_base64_value_is_decoded_wherever_the_value_ends(hs: Engine, shape: str) -> None:
    tok = token("ghp", 11)
    # no secret-word prefix to trigger on: only the padding marks it as base64
    plain = f"settings: {tok}".encode()
    assert len(plain) % 3, "the encoding must end in padding"
    enc = base64.b64encode(plain).decode()
    found = [m for m in hs.scan(shape.format(enc=enc).encode()) if m.decoded == "base64"]
    assert [m.secret for m in found] == [tok.encode()]


def test_percent_encoded_secret_in_a_url_is_decoded(hs: Engine) -> None:
    pw = "Tq7/Lm2+Xz9=Kp4!Wr8"
    url = f"https://app.example.net/login?user=ops&password={quote(pw, safe='')}&next=%2Fhome"
    found = [m for m in hs.scan(url.encode()) if m.decoded == "percent"]
    assert any(m.secret == pw.encode() for m in found)


def test_binary_base64_blobs_are_not_decoded_into_findings(hs: Engine) -> None:
    blob = base64.b64encode(os.urandom(3000)).decode()
    assert hs.scan(f'img = "data:image/png;base64,{blob}"'.encode()) == []


def test_inline_allow_comment_suppresses_that_line_only(hs: Engine) -> None:
    t1, t2 = token("ghp", 6), token("ghp", 7)
    data = f"A={t1}  # sentinel:allow test fixture\nB={t2}\n".encode()
    assert [m.secret for m in hs.scan(data)] == [t2.encode()]


def test_provider_rule_shadows_the_generic_detector(hs: Engine) -> None:
    tok = token("ghp", 8)
    ids = {m.rule_id for m in hs.scan(f'api_token = "{tok}"'.encode())}
    assert ids == {"github.pat-classic"}


def test_generic_detector_finds_assignments_in_common_shapes(hs: Engine) -> None:
    pw = password(1)
    shapes = [
        f"DB_PASSWORD={pw}",
        f'password = "{pw}"',
        f'{{"client_secret": "{pw}"}}',
        f"db:\n  password: {pw}\n",
        f"spring.datasource.password={pw}",
        f"[db]\npassword = {pw}\n",
        f"<password>{pw}</password>",
        f"$config[\"api_key\"] = '{pw}';",
    ]
    for text in shapes:
        found = {m.secret for m in hs.scan(text.encode())}
        assert pw.encode() in found, text


@pytest.mark.parametrize(
    "text",
    [
        "password = os.getenv('DB_PASSWORD')",
        "password: ${DB_PASSWORD}",
        "password = '<your-password>'",
        "PASSWORD=changeme",
        "token: xxxxxxxxxxxxxxxx",
        "password = 'EXAMPLEPASSWORD1'",
        "api_key = aaaaaaaaaaaaaaaaaaaaa",
        "secret = 'correcthorsebattery'",
        "password_field = forms.CharField(widget=forms.PasswordInput)",
        "token = self.tokenizer.next_token",
    ],
)
def test_generic_detector_skips_placeholders_and_code(hs: Engine, text: str) -> None:
    assert not [m for m in hs.scan(text.encode()) if m.rule_id.startswith("generic.")]


def test_aws_documentation_key_is_filtered(hs: Engine) -> None:
    assert hs.scan(b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE") == []


def test_global_allowlist_by_regex_and_stopword() -> None:
    tok = token("ghp", 9)
    eng = Engine(RULES, allowlist=GlobalAllowlist(regexes=(tok[-6:] + "$",)))
    assert eng.scan(tok.encode()) == []
    eng = Engine(RULES, allowlist=GlobalAllowlist(stopwords=(tok[4:12],)))
    assert eng.scan(tok.encode()) == []


def test_repeats_of_one_value_are_capped_and_counted() -> None:
    eng = Engine(RULES, backend="hyperscan")
    tok = token("ghp", 10)
    data = ((tok + "\n") * 20_000).encode()
    found = eng.scan(data)
    assert len(found) == MAX_REPEATS < 20_000
    assert eng.stats.truncated == {"github.pat-classic": 20_000 - MAX_REPEATS}


def test_database_is_cached_on_disk_by_rule_hash(tmp_path: Path) -> None:
    rule = rule_from_table(
        {
            "id": "acme.token",
            "description": "Acme token",
            "regex": r"\b(acme_[a-z0-9]{20})\b",
            "keywords": ["acme_"],
            "examples": ["acme_k2j4h5g6f7d8s9a0q1w2"],
        },
        "<test>",
    )
    rs = RuleSet((rule,))
    Engine(rs, cache_dir=tmp_path)
    first = sorted(p.name for p in tmp_path.iterdir())
    assert len(first) == 1 and first[0].startswith("hs-")
    Engine(rs, cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == first  # loaded, not recompiled
    changed = RuleSet(
        (rule_from_table({**_table(rule), "regex": r"\b(acme_[a-z0-9]{21})\b"}, "<t>"),)
    )
    eng = Engine(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert eng.backend == "hyperscan"


def _table(rule):  # type: ignore[no-untyped-def]
    return {
        "id": rule.id,
        "description": rule.description,
        "regex": rule.regex,
        "keywords": list(rule.keywords),
        "examples": list(rule.examples),
    }


def test_corrupt_cache_file_is_recompiled(tmp_path: Path) -> None:
    Engine(RULES, cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    cached.write_bytes(b"garbage")
    eng = Engine(RULES, cache_dir=tmp_path)
    assert eng.scan(token("ghp", 11).encode())


def test_lookaround_rule_compiles_in_prefilter_mode_and_is_confirmed_by_regex() -> None:
    rule = rule_from_table(
        {
            "id": "acme.key",
            "description": "Acme key not followed by .pub",
            "regex": r"\b(acmek_[A-Za-z0-9]{16})(?!\.pub)",
            "keywords": ["acmek_"],
            "examples": ["acmek_Zq8Lm2Xw9Pt4Vn7B"],
        },
        "<test>",
    )
    for backend in ("hyperscan", "regex"):
        eng = Engine(RuleSet((rule,)), backend=backend)  # type: ignore[arg-type]
        assert [m.secret for m in eng.scan(b"k=acmek_Zq8Lm2Xw9Pt4Vn7B ok")] == [
            b"acmek_Zq8Lm2Xw9Pt4Vn7B"
        ]
        assert eng.scan(b"k=acmek_Zq8Lm2Xw9Pt4Vn7B.pub") == []


def test_entropy() -> None:
    assert shannon(b"") == 0.0
    assert shannon(b"aaaa") == 0.0
    assert shannon(b"abcd") == 2.0
    assert shannon(password(2, 32).encode()) > 4.0


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (filters.is_placeholder, b"AKIAIOSFODNN7EXAMPLE", True),
        (filters.is_placeholder, b"sk_live_xxxxxxxxxxxxxxxx", True),
        (filters.is_placeholder, b"Tq7Lm2Xz9Kp4Wr8", False),
        (filters.is_template_variable, b"${DB_PASSWORD}", True),
        (filters.is_template_variable, b"{{ vault.password }}", True),
        (filters.is_template_variable, b"<your-api-key>", True),
        (filters.is_template_variable, b"Tq7Lm2Xz9Kp4Wr8", False),
        (filters.is_low_variety, b"--------", True),
        (filters.is_low_variety, b"abcdefghij", True),
        (filters.is_low_variety, b"Tq7Lm2Xz9", False),
        (filters.is_code_reference, b"os.environ", True),
        (filters.is_code_reference, b"process.env.TOKEN", True),
        (filters.is_identifier, b"user_password", True),
        (filters.is_identifier, b"Tq7Lm2Xz9", False),
        (filters.is_dictionary_word, b"Password123!", True),
        (filters.is_dictionary_word, b"adminpassword", True),
        (filters.is_dictionary_word, b"Tq7Lm2Xz9", False),
        (filters.is_single_class, b"4155550123", True),
        (filters.is_single_class, b"Tq7Lm2Xz9", False),
    ],
)
def test_filters(func, value: bytes, expected: bool) -> None:  # type: ignore[no-untyped-def]
    assert func(value) is expected


def test_random_pem_body_is_not_taken_for_a_placeholder() -> None:
    body = base64.b64encode(bytes(range(256)) * 6).decode() + "todoxxxx"
    assert not filters.is_placeholder(body.encode())


def test_basic_auth_header_and_unpadded_base64_json_are_decoded(hs: Engine) -> None:
    pw = password(7)
    basic = base64.b64encode(f"deploy:{pw}".encode()).decode()
    hits = hs.scan(f"curl -H 'Authorization: Basic {basic}' https://ci.internal/".encode())
    assert [(m.rule_id, m.secret) for m in hits] == [("http.basic-auth-header", basic.encode())]
    key = token("ghp", 12)
    doc = base64.b64encode(f'{{"github_token": "{key}"}}'.encode()).decode().rstrip("=")
    found = [m for m in hs.scan(f"CONFIG_JSON={doc}\n".encode()) if m.decoded]
    assert [m.secret for m in found] == [key.encode()]
