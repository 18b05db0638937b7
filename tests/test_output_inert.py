"""What a person reads is inert: scanned names cannot drive the terminal, and image
history shows no secret in any encoding."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.conftest import run_cli, token

CONTROLS = ("\x1b", "\x9b", "\u202e", "\x07")


def _strings(doc: object) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


def _raw_controls(text: str) -> list[str]:
    return [c for c in CONTROLS if c in text]


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    # clears the screen, rings the bell, rewrites the line: all hide findings above it
    (root / "esc\x1b[2J\x07.env").write_text(f"TOKEN={token('ghp', 401)}\n")
    (root / "rev\u202evne.txt").write_text(f"TOKEN={token('ghp', 402)}\n")
    (root / "csi\x9b2J.env").write_text(f"TOKEN={token('ghp', 403)}\n")
    return root


def test_table_output_shows_control_characters_as_escapes(hostile_tree: Path) -> None:
    res = run_cli("scan", "path", str(hostile_tree), "-f", "table")
    assert res.returncode == 1, res.stderr
    assert _raw_controls(res.stdout) == []
    assert "esc\\x1b[2J\\x07.env" in res.stdout
    assert "rev\\u202evne.txt" in res.stdout
    assert res.stdout.count("github") >= 3  # every finding still listed


@pytest.mark.parametrize("fmt", ["json", "jsonl", "sarif"])
def test_machine_formats_escape_what_json_lets_through(hostile_tree: Path, fmt: str) -> None:
    res = run_cli("scan", "path", str(hostile_tree), "-f", fmt)
    assert res.returncode == 1, res.stderr
    # `cat report.json` on a terminal must not act on C1 or bidi controls either
    assert _raw_controls(res.stdout) == []
    docs = (
        [json.loads(line) for line in res.stdout.splitlines()]
        if fmt == "jsonl"
        else [json.loads(res.stdout)]
    )
    # ... and the names decode back to the real file names
    strings = "\n".join(_strings(docs))
    for name in ("esc\x1b[2J\x07.env", "rev\u202evne.txt", "csi\x9b2J.env"):
        assert name in strings


def test_error_messages_escape_scanned_names(tmp_path: Path) -> None:
    bad = tmp_path / "x\x1b]0;pwned\x07.toml"
    bad.write_text("not = [valid")
    res = run_cli("scan", "path", str(tmp_path), "--config", str(bad))
    assert res.returncode == 2
    assert _raw_controls(res.stderr) == []
    assert res.stderr.count("\n") == 1


def _history_image(tmp_path: Path) -> tuple[Path, str, str]:
    secret = token("ghp", 410)
    blob = base64.b64encode(f"GITHUB_TOKEN={secret}\n".encode()).decode()
    layers = [
        ib.Layer(
            [ib.Entry("app/run.sh", b"#!/bin/sh\nexec app\n")],
            created_by=f"RUN echo {blob} | base64 -d > /etc/app.env",
        ),
        ib.Layer(
            [ib.Entry("app/.env", f"OTHER={token('ghp', 411)}\n".encode())],
            created_by=f"RUN echo {blob} | base64 -d > /tmp/again",
        ),
    ]
    path = tmp_path / "layout"
    ib.write_oci_layout(path, ib.build_image(layers))
    return path, secret, blob


@pytest.mark.parametrize("fmt", ["json", "jsonl", "sarif", "table"])
def test_image_history_hides_an_encoded_secret_in_every_format(tmp_path: Path, fmt: str) -> None:
    path, secret, blob = _history_image(tmp_path)
    res = run_cli("scan", "image", str(path), "-f", fmt)
    assert res.returncode == 1, res.stderr
    out = res.stdout + res.stderr
    assert secret not in out
    assert blob not in out  # the encoding that hid it is redacted too
    # a long base64 run split by the table's folding must not survive either
    assert blob[:40] not in out.replace("\n", "")
    if fmt == "json":
        doc = json.loads(res.stdout)
        [hit] = [f for f in doc["findings"] if f["path"] == "app/.env"]
        assert hit["created_by"].startswith("RUN echo <")
        assert hit["created_by"].endswith("| base64 -d > /tmp/again")
        assert any(f["path"] == "config:history" for f in doc["findings"])
