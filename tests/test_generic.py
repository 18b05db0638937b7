"""The generic detector: secret-sounding names in every case style and shape, values
judged for randomness against their character classes, and the look-alikes it must
leave alone. Values are generated at run time (``password()``), so the tests do not
depend on any one string."""

from __future__ import annotations

import pytest

from detectors import filters, generic
from detectors.engine import Engine
from detectors.ruleset import load_builtin
from tests.conftest import password

RULES = load_builtin()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(RULES, backend="hyperscan")


def found(engine: Engine, text: str) -> list[tuple[str, str]]:
    return [(m.rule_id, m.secret.decode()) for m in engine.scan(text.encode())]


SHAPES = [
    "dbPassword = '{v}'",
    "DB_PASSWORD={v}",
    "db-password: {v}",
    "password: {v}",
    '  "clientSecret": "{v}",',
    "<password>{v}</password>",
    '<add key="SmtpPassword" value="{v}" />',
    "mysql -h db.internal -u app -p{v} orders",
    "pg_restore --password={v} dump.sql",
    "./deploy.sh --api-key {v}",
    "Server=tcp:sql.acme.io;Database=hr;User Id=hr;Password={v};",
    "amqp://worker:{v}@mq.internal:5672/",
    "ENV SERVICE_TOKEN {v}",
    'conn.setPassword("{v}");',
    "        - name: STRIPE_WEBHOOK_SECRET\n          value: {v}",
    "curl -H 'Authorization: Bearer {v}' https://api.acme.io",
    "$env:REGISTRY_PASSWORD = '{v}'",
    'variable "db_password" {{\n  type      = string\n  default   = "{v}"\n}}',
    "machine git.acme.io\n  login deploy\n  password {v}",
    "db.internal:5432:orders:orders_app:{v}",
    "curl -fsS -u admin:{v} https://jenkins.internal/api/json",
    "htpasswd -b -c /etc/nginx/.htpasswd admin {v}",
    'props.setProperty("smtp.password", "{v}");',
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_shape_and_case_style_is_found(engine: Engine, shape: str, seed: int) -> None:
    value = password(seed, n=20)
    if "Bearer" in shape or "://" in shape:  # not URL-safe: a header/URL would escape them
        value = value.replace("!", "x").replace("#", "y").replace("%", "z")
    hits = found(engine, shape.format(v=value))
    assert any(secret == value for _, secret in hits), (shape, hits)


LOOK_ALIKES = [
    'password = os.getenv("DB_PASSWORD")',
    "password: ${DB_PASSWORD}",
    'password = "%(password)s"',
    "password: {{ .Values.db.password }}",
    "api_key = <your-api-key>",
    "db_password: vault:secret/data/prod/db#password",
    "API_KEY=arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/api-AbCdEf",
    "password = get_password()",
    "token = auth_token",
    "PASSWORD_MIN_LENGTH = 12",
    "max_tokens: 4096",
    "password_hash: '$2b$12$KIXQ4sJm0nqNbC1cV3ZqQeS8H6x2jY4r7T9aW1dE5fG3hI0kL2mN6'",
    "ssl_key_file: /etc/ssl/private/server.key",
    "public_key = 'MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE'",
    "next_page_token: CgwIqR3kXaB9",
    "cache_key = 'user:profile:v2'",
    "PASSWORD=P@ssw0rd2024!",
    "password = 'correcthorsebatterystaple'",
    "token = 'aaaaaaaaaaaaaaaaaaaa'",
    "secret = 'abcdefghijklmnop'",
    "image: registry.acme.io/api@sha256:4f9d2b7c1e8a6f3d0b5c9e2a7d4f1b8c4f9d2b7c1e8a6f3d0b5c9e2a7d4f1b8c",
    "private_key: rsa.RSAPrivateKey,",
    "secret_version = '2.14.0'",
    "mysql -u root -p orders",
    "docker login -u ci --password-stdin registry.acme.io",
    'token_requests: "List[StorageV1TokenRequest]"',
    "jsonnet_token = r'[^\\W\\d]\\w*'",
    "if key_node.tag == 'tag:yaml.org,2002:value':",
    "client_secret_basic = 'client_secret_basic_method'",
    "DATABASE_URL=dbtype://username:apples%2Foranges@hostspec/database",
    "RECAPTCHA_SITE_KEY=6LcQ7TgUAAAAAH3bRkPqV9dN2xZ4mW8yK1sJ5fTg",
    "MAPBOX_TOKEN=pk.eyJ1IjoiYWNtZSIsImEiOiJja3Z4In0.Qm8dT2vR9sL4kX7pN1wZ3y",
    "encrypted_password: AQICAHhBc2Vy0mK4pX9dL2vN8qR3tZ7wY1sF6gH5jU0iO==",
    "password: ENC[AES256_GCM,data:Tr0ub4dor,iv:abc,tag:def,type:str]",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_not_reported(engine: Engine, text: str) -> None:
    assert not [h for h in found(engine, text) if h[0].startswith("generic.")], text


def test_a_notebook_cell_is_read_like_code(engine: Engine) -> None:
    value = password(21, n=20)
    cell = '   "source": [\n    "DB_PASSWORD = \\"' + value + '\\"\\n",\n    "connect()"\n   ]'
    hits = found(engine, cell)
    assert [s for _, s in hits] == [value]
    # offsets still point at the value in the file as written
    (m,) = engine.scan(cell.encode())
    assert cell.encode()[m.start : m.end] == value.encode()


def test_passwords_made_of_words_are_reported_but_stock_ones_are_not(engine: Engine) -> None:
    assert found(engine, 'LDAP_PASSWORD = "Tundra-Bramble4123"')
    assert found(engine, "ARG BIND_PASSWORD=Summit-Harbor4467")
    for stock in ("P@ssw0rd123!", "changeme123", "Password1", "adminadmin"):
        assert not found(engine, f"DB_PASSWORD={stock}"), stock


def test_names_are_split_across_case_styles() -> None:
    assert generic.name_words("dbPassword") == ["db", "password"]
    assert generic.name_words("DB_PASSWORD") == ["db", "password"]
    assert generic.name_words("spring.datasource.password") == ["spring", "datasource", "password"]
    assert generic.name_words("XMLApiKey") == ["xml", "api", "key"]


def test_name_evidence() -> None:
    E = generic.Evidence
    assert generic.evidence("dbPassword") is E.PASSWORD
    assert generic.evidence("MAILGUN_API_KEY") is E.SECRET
    assert generic.evidence("clientsecret") is E.SECRET
    assert generic.evidence("SENDGRID_KEY") is E.WEAK
    assert generic.evidence("DB_PASSWORD_PROD") is E.PASSWORD
    assert generic.evidence("SECRET_KEY_BASE") is E.SECRET
    for name in (
        "password_length",
        "token_url",
        "PUBLIC_KEY",
        "next_page_token",
        "sort_key",
        "token_requests",
        "client_secret_basic",
        "RECAPTCHA_SITE_KEY",
    ):
        assert generic.evidence(name) is E.NONE, name


def test_a_bare_key_name_needs_a_long_random_value(engine: Engine) -> None:
    long_value = password(7, n=24)
    assert found(engine, f"SENDGRID_KEY={long_value}")
    assert not found(engine, "SENDGRID_KEY=Prod2Secrets")


def test_randomness_is_measured_against_the_character_classes() -> None:
    hex40 = bytes.fromhex("8f3a9c1d2b7e4f6a0c5d8e1f3a9b2c7d4e6f8a0b").hex().encode()
    assert generic.randomness(hex40) > 0.85  # hex measured against 4 bits, not 6
    assert generic.randomness(password(3, n=16).encode()) > 0.85
    assert generic.randomness(b"abababababab1") < 0.6


def test_documentation_example_keys_are_never_reported(engine: Engine) -> None:
    # published in AWS's and Stripe's docs, jwt.io's debugger and the Azurite emulator
    texts = [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "STRIPE_KEY=sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwi"
        "bmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==",
    ]
    for text in texts:
        assert found(engine, text) == [], text
    assert filters.is_known_example(b"AKIAIOSFODNN7EXAMPLE")
    assert not filters.is_known_example(b"AKIAIOSFODNN7EXAMPLF")


def test_a_provider_rule_wins_and_one_generic_finding_per_value(engine: Engine) -> None:
    value = password(11, n=20)
    hits = found(engine, f"./manage.py createsuperuser --password={value}")
    assert [r for r, _ in hits] == ["generic.cli-password"]


def _jwt(claims: dict[str, object]) -> str:
    import base64
    import json

    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    sig = base64.urlsafe_b64encode(password(31, n=32).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{sig}"


def test_publishable_keys_are_not_reported_but_their_secret_twins_are(engine: Engine) -> None:
    anon = _jwt({"iss": "supabase", "ref": "qwertyuiopasdfgh", "role": "anon", "iat": 1700000000})
    service = _jwt({"iss": "supabase", "ref": "qwertyuiopasdfgh", "role": "service_role"})
    assert found(engine, f"NEXT_PUBLIC_SUPABASE_ANON_KEY={anon}") == []
    rules = {r for r, _ in found(engine, f"SUPABASE_SERVICE_ROLE_KEY={service}")}
    assert "jwt.token" in rules
    dsn = "https://" + "4fc65a32ac937ac5e10cd914c8bbcdf3" + "@o450871.ingest.sentry.io/5502374"
    assert found(engine, f"SENTRY_DSN={dsn}") == []
