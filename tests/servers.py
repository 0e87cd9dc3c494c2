"""Real peers for the sink tests: a mosquitto broker and an HTTP webhook receiver, on loopback."""

from __future__ import annotations

import http.server
import json
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import free_port


class Mosquitto:
    """Debian's mosquitto on a free port, with persistence; optionally TLS and a password file."""

    def __init__(
        self,
        root: Path,
        tls: dict[str, Path] | None = None,
        users: dict[str, str] | None = None,
        require_client_cert: bool = False,
    ):
        self.root = root
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[str] | None = None
        root.mkdir(parents=True, exist_ok=True)
        lines = [
            # As root, mosquitto would switch to its own user, which cannot read pytest's 0700 folders.
            *(["user root"] if os.geteuid() == 0 else []),
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {root}/",
            "autosave_interval 1",
            f"log_dest file {root}/mosquitto.log",
        ]
        if users:
            passwd = root / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
            lines += [f"password_file {passwd}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
            if require_client_cert:
                lines += ["require_certificate true"]
        self.conf = root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                import socket  # noqa: PLC0415

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {(self.root / 'mosquitto.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def make_certs(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate, with openssl."""
    root.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=root)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=streamd test CA")  # fmt: skip
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={'127.0.0.1' if name == 'server' else 'streamd'}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return {"ca": root / "ca.crt", "cert": root / "server.crt", "key": root / "server.key",
            "client_cert": root / "client.crt", "client_key": root / "client.key"}  # fmt: skip


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    t: float


@dataclass
class WebhookServer:
    """An HTTP server whose behaviour a test switches: ok, fail (500), stall, reject (400)."""

    mode: str = "ok"
    stall_s: float = 60.0
    retry_after: str | None = None
    received: list[Received] = field(default_factory=list)  # every request that reached the handler
    accepted: list[Received] = field(default_factory=list)  # those answered 2xx
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                item = Received(body, {k.lower(): v for k, v in self.headers.items()}, time.time())
                with owner._lock:
                    owner.received.append(item)
                    mode = owner.mode
                if mode == "stall":
                    time.sleep(owner.stall_s)
                    return
                status = {"ok": 200, "fail": 500, "reject": 400, "busy": 429}[mode]
                self.send_response(status)
                if mode == "busy" and owner.retry_after:
                    self.send_header("Retry-After", owner.retry_after)
                self.end_headers()
                self.wfile.write(b'{"error": "bad request: unknown field"}' if status == 400 else b"ok")
                if status == 200:
                    with owner._lock:
                        owner.accepted.append(item)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def messages(self) -> list[dict[str, Any]]:
        """Every message in the accepted requests (arrays flattened)."""
        out: list[dict[str, Any]] = []
        with self._lock:
            bodies = [r.body for r in self.accepted]
        for body in bodies:
            data = json.loads(body)
            out.extend(data if isinstance(data, list) else [data])
        return out


def wait_readable(stream: Any, seconds: float) -> bool:
    ready, _, _ = select.select([stream], [], [], seconds)
    return bool(ready)
