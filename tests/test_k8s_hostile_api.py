"""A live-cluster scan against an API server that does not play fair.

tests/kubeapi.py answers as the real kube-apiserver does; a cluster nobody on the security
team controls (or a broken proxy in front of one) may answer otherwise. Each server here
answers every list request from a function of the request, over real HTTP to the real
``kubernetes`` client: a continue token that never ends the list, pages too large to hold,
JSON nested too deep to parse, lists of the wrong shape. None may hang the scan, exhaust
memory or crash it; each is a one-line error for that list, the others still scanned and
the report still written."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from sentinel.scanner import ScanOptions, scan_k8s
from sentinel.sources.k8s import ClusterOptions
from tests.conftest import token
from tests.kubeapi import clear_proxy_env

pytestmark = pytest.mark.integration

# (path, query) -> (HTTP status, body)
Answer = Callable[[str, dict[str, str]], tuple[int, bytes]]


def cm(name: str, ns: str, data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "data": data}


def page(items: list[Any], cont: str | None = None) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": "7"}
    if cont:
        meta["continue"] = cont
    return json.dumps(
        {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": meta, "items": items}
    ).encode()


@contextmanager
def hostile_server(answer: Answer) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            requests.append(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, body = answer(url.path, query)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", requests
    finally:
        srv.shutdown()
        srv.server_close()


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "hostile", "cluster": {"server": server}}],
                "users": [{"name": "scanner", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "hostile", "context": {"cluster": "hostile", "user": "scanner"}}
                ],
                "current-context": "hostile",
            }
        )
    )
    return path


def scan_cli(kc: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    # a bounded wait of our own: before the fix some of these listed forever
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel.cli.main",
            "scan",
            "k8s",
            "--cluster",
            "--kubeconfig",
            str(kc),
            "-f",
            "json",
            "--show-secrets",
            "--timeout",
            "5",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, (json.loads(res.stdout) if res.stdout.strip() else {}), res.stderr


def namespace_of(path: str) -> str:
    parts = path.split("/")
    return parts[parts.index("namespaces") + 1] if "namespaces" in parts else ""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)


LEAK_A = token("ghp", 9001)
LEAK_B = token("ghp", 9002)


def test_a_continue_token_that_repeats_does_not_list_forever(tmp_path: Path) -> None:
    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        if namespace_of(path) == "good":
            return 200, page([cm("ok", "good", {"GITHUB_TOKEN": LEAK_B})])
        first = "continue" not in q
        items = (
            [cm("first", "loop", {"GITHUB_TOKEN": LEAK_A})] if first else [cm("again", "loop", {})]
        )
        return 200, page(items, cont="the-same-token")

    with hostile_server(answer) as (url, requests):
        rc, doc, err = scan_cli(kubeconfig(tmp_path / "kc", url), "-n", "loop", "-n", "good")
    assert rc == 2
    assert "namespace loop: the API server repeated a continue token" in err
    assert len([r for r in requests if "/loop/" in r]) == 2  # first page, one repeat, stop
    # what was read before the loop, and the other namespace, are still reported
    assert {(f["namespace"], f["secret"]) for f in doc["findings"]} == {
        ("loop", LEAK_A),
        ("good", LEAK_B),
    }
    assert any("repeated a continue token" in e for e in doc["stats"]["errors"])


def test_endless_distinct_continue_tokens_stop_at_the_page_limit(tmp_path: Path) -> None:
    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        n = int(q.get("continue", "0"))
        items = [cm(f"cm-{n}", "x", {"GITHUB_TOKEN": LEAK_A} if n == 2 else {})]
        return 200, page(items, cont=str(n + 1))

    with hostile_server(answer) as (url, requests):
        opts = ClusterOptions(
            kubeconfig=str(kubeconfig(tmp_path / "kc", url)), max_pages=5, timeout=5
        )
        result = scan_k8s([], ScanOptions(), cluster=opts)
    assert len(requests) == 5
    assert result.stats["objects_scanned"] == 5
    assert [o.secret for o in result.occurrences] == [LEAK_A]
    assert any("listing stopped after 5 pages" in e for e in result.stats["errors"])


def test_a_page_too_large_to_hold_is_refused_unread(tmp_path: Path) -> None:
    big = "x" * (3 << 20)

    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        if namespace_of(path) == "huge":
            return 200, page([cm("padded", "huge", {"blob": big, "GITHUB_TOKEN": LEAK_A})])
        return 200, page([cm("ok", "small", {"GITHUB_TOKEN": LEAK_B})])

    with hostile_server(answer) as (url, _):
        opts = ClusterOptions(
            kubeconfig=str(kubeconfig(tmp_path / "kc", url)),
            namespaces=("huge", "small"),
            max_page_bytes=1 << 20,
            timeout=5,
        )
        result = scan_k8s([], ScanOptions(), cluster=opts)
    assert [o.secret for o in result.occurrences] == [LEAK_B]
    (error,) = result.stats["errors"]
    assert "namespace huge: a list page is over 1 MiB; retry with a smaller --page-size" in error


def test_json_nested_too_deep_is_one_clear_line(tmp_path: Path) -> None:
    deep = b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        if namespace_of(path) == "deep":
            return 200, deep
        return 200, page([cm("ok", "good", {"GITHUB_TOKEN": LEAK_B})])

    with hostile_server(answer) as (url, _):
        rc, doc, err = scan_cli(kubeconfig(tmp_path / "kc", url), "-n", "deep", "-n", "good")
    assert rc == 2
    assert "namespace deep: the API server sent JSON nested too deeply" in err
    assert [f["secret"] for f in doc["findings"]] == [LEAK_B]


def test_an_error_answer_with_a_hostile_body_does_not_crash_the_run(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        if namespace_of(path) == "broken":
            return 500, deep
        return 200, page([cm("ok", "good", {"GITHUB_TOKEN": LEAK_B})])

    with hostile_server(answer) as (url, _):
        rc, doc, err = scan_cli(kubeconfig(tmp_path / "kc", url), "-n", "broken", "-n", "good")
    assert rc == 2
    assert "namespace broken: 500" in err
    assert [f["secret"] for f in doc["findings"]] == [LEAK_B]


def test_lists_of_the_wrong_shape_are_reported_not_skipped_silently(tmp_path: Path) -> None:
    def answer(path: str, q: dict[str, str]) -> tuple[int, bytes]:
        ns = namespace_of(path)
        if ns == "dict-items":  # iterating a dict would give its keys: nothing scanned
            return 200, json.dumps({"items": {"a": cm("a", ns, {"GITHUB_TOKEN": LEAK_A})}}).encode()
        if ns == "odd-items":  # one item a string, one whose metadata is a list
            return 200, page(
                ["not an object", {"metadata": ["x"], "data": {"GITHUB_TOKEN": LEAK_B}}]
            )
        return 200, b"[1, 2, 3]"

    with hostile_server(answer) as (url, _):
        rc, doc, err = scan_cli(
            kubeconfig(tmp_path / "kc", url), "-n", "dict-items", "-n", "odd-items", "-n", "array"
        )
    assert rc == 2
    assert "namespace dict-items: the API server's list has 'items' that is not a list" in err
    assert "namespace array: the API server's list is not a JSON object" in err
    assert doc["stats"]["skipped"] == {"malformed_object": 1}
    assert [f["secret"] for f in doc["findings"]] == [LEAK_B]
