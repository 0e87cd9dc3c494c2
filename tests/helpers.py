"""Real servers and processes for the tests: an RTSP camera, the daemon, a subscriber."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from streamd.client import FrameMessage, Subscriber

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "yolox_nano.onnx"
VIDEO = SHARED / "data" / "pedestrians_768x576_10fps.mp4"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = REPO / "streamd" / "simulate" / "rtsp_server.py"


def clip(path: Path, seconds: float, video: Path = VIDEO) -> Path:
    """The first ``seconds`` of a video, copied without re-encoding (keyframes every second)."""
    import av  # noqa: PLC0415

    if path.is_file():
        return path
    with av.open(str(video)) as src, av.open(str(path), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            if packet.pts is not None and float(packet.pts * stream.time_base) >= seconds:
                break
            packet.stream = out
            dst.mux(packet)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """The looping RTSP camera in its own process, which a test can kill, pause and restart."""

    def __init__(
        self,
        port: int | None = None,
        fps: float = 0.0,
        video: Path = VIDEO,
        cameras: int = 0,
        in_band: bool = False,
    ) -> None:
        self.in_band = in_band  # SPS/PPS only in the stream, not in the SDP, as many IP cameras do
        self.port = port or free_port()
        self.fps = fps
        self.video = video
        self.cameras = cameras
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def camera_url(self, index: int) -> str:
        """The URL of camera ``index`` of a server started with ``cameras``."""
        return f"rtsp://127.0.0.1:{self.port}/cam{index}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        cmd = [SYSTEM_PYTHON, str(RTSP_SERVER), "--file", str(self.video), "--port", str(self.port)]
        if self.fps:
            cmd += ["--fps", str(self.fps)]
        if self.cameras:
            cmd += ["--cameras", str(self.cameras)]
        if self.in_band:
            cmd.append("--in-band")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("READY"):
                    return self
                if not line and self.proc.poll() is not None:
                    break
        self.kill()
        raise RuntimeError(f"RTSP server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def write_config(
    root: Path,
    cameras: dict[str, dict[str, Any]],
    zmq_port: int,
    model: dict[str, Any] | None = None,
    **daemon_keys: Any,
) -> Path:
    """A streamd.yaml (with ``daemon_keys`` added) and camera files under ``root``; the streamd.yaml path."""
    (root / "cameras").mkdir(parents=True, exist_ok=True)
    daemon = {
        "cameras_dir": "cameras",
        "state_dir": str(root / "state"),
        "models": {"default": model or {"path": str(MODEL), "family": "yolox"}},
        "zmq": {"endpoint": f"tcp://127.0.0.1:{zmq_port}"},
        "log": {"format": "json"},
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        **daemon_keys,
    }
    (root / "streamd.yaml").write_text(yaml.safe_dump(daemon))
    for cid, cam in cameras.items():
        (root / "cameras" / f"{cid}.yaml").write_text(yaml.safe_dump(cam))
    return root / "streamd.yaml"


class Daemon:
    """``python -m streamd run`` as a user runs it, with its log captured."""

    def __init__(self, config: Path, stats_interval: float = 1.0, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / "daemon.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamd", "run", "--config", str(config),
             "--stats-interval", str(stats_interval)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )  # fmt: skip

    @property
    def http(self) -> str:
        """Base URL of the daemon's HTTP server, from its streamd.yaml."""
        listen = yaml.safe_load(self.config.read_text())["http"]["listen"]
        return f"http://{listen}"

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path of the HTTP server: status code and body (0 when it cannot connect)."""
        try:
            with urllib.request.urlopen(self.http + path, timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:
            return 0, b""

    def get_json(self, path: str) -> Any:
        code, body = self.get(path)
        assert code in (200, 503), (code, body[:500])
        return json.loads(body)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def status(self, camera: str) -> dict[str, Any] | None:
        """The newest 'camera status' log line of a camera."""
        lines = [e for e in self.logs() if e.get("event") == "camera status" and e.get("camera") == camera]
        return lines[-1] if lines else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Signal the daemon; its exit code and how long it took to exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._log.close()
        return code, time.monotonic() - start


def collect(
    sub: Subscriber,
    seconds: float,
    until: Callable[[list[FrameMessage]], bool] | None = None,
    max_messages: int = 100_000,
) -> list[FrameMessage]:
    """Messages received within ``seconds`` (or until ``until`` holds), bounded in count."""
    got: list[FrameMessage] = []
    deadline = time.monotonic() + seconds
    while len(got) < max_messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        msg = sub.recv(timeout_s=min(remaining, 0.5))
        if msg is not None:
            got.append(msg)
            if until is not None and until(got):
                break
    return got


def wait_for(predicate: Callable[[], bool], seconds: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.got: list[tuple[float, dict[str, str]]] = []

    def drain(self, seconds: float = 0.0, max_messages: int = 10_000) -> list[dict[str, str]]:
        """Receive for ``seconds`` (and until nothing is waiting); every message so far, as fields."""
        deadline = time.monotonic() + seconds
        for _ in range(max_messages):
            self.sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.got.append((time.monotonic(), fields))
        return [m for _, m in self.got]

    def close(self) -> None:
        self.sock.close()


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    """One sample of the daemon's /metrics, by name and (some of) its labels."""
    _, body = daemon.get("/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise AssertionError(f"no {name} {labels}")
