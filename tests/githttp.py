"""A smart-HTTP git server on loopback: ``git http-backend`` (git's own CGI program)
behind a small threaded Python HTTP server, serving every repository under a root as
``http://127.0.0.1:PORT/<name>.git``. It answers as a real git host does; ``log`` lists
the request lines it served."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def _backend() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


class GitHTTPServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[str] = []
        backend = _backend()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _cgi(self) -> None:
                outer.log.append(f"{self.command} {self.path}")
                u = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(outer.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": os.devnull,
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": u.path,
                    "QUERY_STRING": u.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": self.client_address[0],
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "SERVER_PROTOCOL": "HTTP/1.1",
                }
                if self.headers.get("Git-Protocol"):
                    env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                res = subprocess.run(
                    [backend], input=body, capture_output=True, env=env, check=False, timeout=120
                )
                head, _, payload = res.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = res.stdout.partition(b"\n\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").splitlines():
                    k, _, v = line.partition(":")
                    if k.lower() == "status":
                        status = int(v.strip().split()[0])
                    elif k:
                        headers.append((k.strip(), v.strip()))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, work: Path, name: str) -> str:
        """Serve a bare copy of the repository at ``work`` as ``<name>.git``; its URL."""
        dest = self.root / f"{name}.git"
        if dest.exists():
            shutil.rmtree(dest)
        subprocess.run(
            ["git", "clone", "-q", "--bare", "--", str(work), str(dest)],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def push(self, work: Path, name: str, *refspecs: str) -> None:
        """Push from ``work`` into the served ``<name>.git`` (as a developer would)."""
        subprocess.run(
            [
                "git",
                "-C",
                str(work),
                "push",
                "-q",
                "--force",
                str(self.root / f"{name}.git"),
                *(refspecs or ("--all",)),
            ],
            check=True,
            capture_output=True,
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
