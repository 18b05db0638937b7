"""Content that used to pass without a word: UTF-16/32 text, keys inside binaries, and
chunks flooded with key-shaped strings. Everything runs through the real CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, run_cli, token

AWS_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def scan(*args: str, kind: str = "path", timeout: float = 300) -> dict[str, Any]:
    """``sentinel scan KIND ARGS --format json --show-secrets`` in a subprocess with a
    timeout (a quadratic regression fails instead of hanging); the parsed report."""
    cmd = [sys.executable, "-m", "sentinel.cli.main", "scan", kind, *args]
    res = subprocess.run(
        [*cmd, "--format", "json", "--show-secrets"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode in (0, 1), res.stderr
    assert "Traceback" not in res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def found(doc: dict[str, Any], secret: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f.get("secret") == secret]


def aws_id(rnd: random.Random) -> str:
    return "AKIA" + "".join(rnd.choice(AWS_ALPHABET) for _ in range(16))


# -- UTF-16 and UTF-32 text ---------------------------------------------------------------


def test_utf16le_file_as_powershell_writes_it_is_scanned(tmp_path: Path) -> None:
    tok = token("ghp", 1)
    text = f"# deploy settings\r\n\r\n  GITHUB_TOKEN={tok}\r\n"
    (tmp_path / "out.txt").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    doc = scan(str(tmp_path))
    [f] = found(doc, tok)
    assert (f["line"], f["column"]) == (3, 16)  # in decoded terms, the BOM not counted
    assert f["decoded"] == "utf-16le"
    assert doc["stats"]["scanned_as"] == {"utf-16le": 1}
    assert not doc["stats"]["skipped"].get("binary")


@pytest.mark.parametrize(
    ("encoding", "bom", "name"),
    [
        ("utf-16-le", b"", "utf-16le"),  # no BOM: found by where the NULs fall
        ("utf-16-be", b"\xfe\xff", "utf-16be"),
        ("utf-16-be", b"", "utf-16be"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "utf-32le"),
        ("utf-32-be", b"", "utf-32be"),
    ],
)
def test_utf16_and_utf32_by_bom_or_nul_pattern(
    tmp_path: Path, encoding: str, bom: bytes, name: str
) -> None:
    tok = token("ghp", 2)
    (tmp_path / "f.cfg").write_bytes(bom + f"a = 1\ntoken: {tok}\n".encode(encoding))
    doc = scan(str(tmp_path))
    [f] = found(doc, tok)
    assert (f["line"], f["column"], f["decoded"]) == (2, 8, name)
    assert doc["stats"]["scanned_as"] == {name: 1}


def test_utf16_blob_in_git_history_is_scanned(git_repo: Callable[[str], GitRepo]) -> None:
    tok = token("ghp", 3)
    repo = git_repo("repo")
    repo.write("settings.ps1.out", b"\xff\xfe" + f"TOKEN={tok}\r\n".encode("utf-16-le"))
    repo.commit("add output")
    doc = scan(str(repo.path), kind="git")
    [f] = found(doc, tok)
    assert f["decoded"] == "utf-16le" and f["line"] == 1
    assert doc["stats"]["scanned_as"]["utf-16le"] == 1


# -- binaries -------------------------------------------------------------------------------


def _elf_with(payload: bytes) -> tuple[bytes, int]:
    head = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8 + b"\x00\x00cfg:"
    return head + payload + b"\x00" + bytes(range(256)), len(head)


def test_provider_token_inside_a_binary_is_found_with_its_offset(tmp_path: Path) -> None:
    tok = token("ghp", 4)
    data, at = _elf_with(tok.encode())
    (tmp_path / "tool").write_bytes(data)
    doc = scan(str(tmp_path))
    [f] = found(doc, tok)
    assert f["offset"] == at
    assert f["decoded"] == "binary-strings"
    assert doc["stats"]["scanned_as"] == {"binary-strings": 1}
    sarif = json.loads(run_cli("scan", "path", str(tmp_path), "--format", "sarif").stdout)
    [result] = sarif["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["byteOffset"] == at
    assert region["byteLength"] == len(tok)


def test_generic_rules_stay_quiet_inside_binaries(tmp_path: Path) -> None:
    data, _ = _elf_with(b'db_password = "Wq7#kd93Lmx2Pq"\x00api_secret=Zt4vB8nQ1xR6yW3s')
    (tmp_path / "tool").write_bytes(data)
    doc = scan(str(tmp_path))
    assert doc["findings"] == []
    assert doc["stats"]["scanned_as"] == {"binary-strings": 1}


def test_zip_stored_member_holding_a_key_is_found(tmp_path: Path) -> None:
    import zipfile

    tok = token("ghp", 5)
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("logo.bin", bytes(range(256)) * 4)
        z.writestr("config/.env", f"GITHUB_TOKEN={tok}\n")
    doc = scan(str(tmp_path))
    [f] = found(doc, tok)
    assert f["decoded"] == "binary-strings" and f["offset"] > 0


# -- hit caps -------------------------------------------------------------------------------


def test_a_flood_of_one_rule_does_not_hide_another_rules_token(tmp_path: Path) -> None:
    rnd = random.Random(7)
    tok = token("ghp", 6)
    lines = [aws_id(rnd) for _ in range(110_000)]
    (tmp_path / "ids.txt").write_text("\n".join(lines) + f"\nGITHUB_TOKEN={tok}\n")
    doc = scan(str(tmp_path))
    [f] = found(doc, tok)
    assert f["line"] == 110_001
    stats = doc["stats"]
    assert stats["truncated"]["aws.access-key-id"] > 0
    assert stats["truncated_total"] == sum(stats["truncated"].values())
    assert any("aws.access-key-id" in w for w in stats["warnings"])


def test_thousands_of_copies_do_not_hide_a_different_value(tmp_path: Path) -> None:
    rnd = random.Random(8)
    copied, different = aws_id(rnd), aws_id(rnd)
    body = f"AWS_ACCESS_KEY_ID={copied}\n" * 6000 + f"AWS_ACCESS_KEY_ID={different}\n"
    (tmp_path / "keys.env").write_text(body)
    doc = scan(str(tmp_path))
    [f] = found(doc, different)
    assert f["line"] == 6001
    reported = len(found(doc, copied))
    assert 0 < reported < 6000
    assert doc["stats"]["truncated"] == {"aws.access-key-id": 6000 - reported}
    assert doc["stats"]["warnings"]


def test_binary_secret_data_is_scanned_and_never_previewed_raw(tmp_path: Path) -> None:
    import base64

    tok = token("ghp", 9)
    blob = b"\x00\x01\x02\xffkeystore\x00" + tok.encode() + b"\x00\x9c\x1b[2J"
    manifest = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ks\ndata:\n"
        f"  store.p12: {base64.b64encode(blob).decode()}\n"
    )
    (tmp_path / "s.yaml").write_text(manifest)
    res = run_cli("scan", "k8s", str(tmp_path / "s.yaml"), "--format", "json")
    doc = json.loads(res.stdout)
    rules = {f["rule_id"] for f in doc["findings"]}
    assert "github.pat-classic" in rules
    [manifest_finding] = [f for f in doc["findings"] if f["rule_id"] == "k8s.secret-manifest"]
    assert manifest_finding["redacted"] == f"<binary, {len(blob)} bytes>"
    assert "\x1b" not in res.stdout and "\\u001b" not in res.stdout
