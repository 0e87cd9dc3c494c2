"""What the live view costs detection: 8 overloaded cameras with nobody watching, and with 6 viewers.

    python bench/live_view.py [--cameras 8] [--fps 25] [--segment 30] [--rounds 2]

8 simulated RTSP cameras (the shared video over loopback, 25 fps each: far more than 2
cores detect) run through the daemon. The run alternates segments with no viewer and
with 3 MJPEG viewers on each of two cameras, and reports for each the processed frames a
second (from /v1/cameras), the daemon's CPU, and the live view's pictures and CPU per
picture (from /metrics).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import Daemon, RtspServer, free_port, wait_for, write_config  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metrics(daemon: Daemon) -> dict[str, float]:
    out = {}
    for line in daemon.get("/metrics")[1].decode().splitlines():
        if line.startswith(("streamd_live_pictures_total", "streamd_live_cpu_seconds_total")):
            name, value = line.split()
            out[name] = float(value)
    return out


def processed(daemon: Daemon) -> int:
    code, body = daemon.get("/v1/cameras")
    return sum(c.get("processed", 0) for c in json.loads(body)["cameras"]) if code == 200 else 0


class Viewer(threading.Thread):
    """An MJPEG viewer that reads everything it is sent, as a browser does."""

    def __init__(self, host: str, port: int, camera: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.sendall(f"GET /v1/cameras/{camera}/preview.mjpeg HTTP/1.0\r\n\r\n".encode())
        self.bytes = 0

    def run(self) -> None:
        for _ in range(10_000_000):
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)

    def close(self) -> None:
        self.sock.close()


def segment(daemon: Daemon, seconds: float) -> dict[str, float]:
    pid = daemon.proc.pid
    m0, p0, c0, t0 = metrics(daemon), processed(daemon), cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    m1, p1, c1, t1 = metrics(daemon), processed(daemon), cpu_s(pid), time.monotonic()
    pictures = m1["streamd_live_pictures_total"] - m0["streamd_live_pictures_total"]
    live_cpu = m1["streamd_live_cpu_seconds_total"] - m0["streamd_live_cpu_seconds_total"]
    return {
        "processed_fps": round((p1 - p0) / (t1 - t0), 1),
        "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 1),
        "pictures_per_s": round(pictures / (t1 - t0), 1),
        "ms_cpu_per_picture": round(1000 * live_cpu / pictures, 2) if pictures else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--segment", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="streamd-live-bench-"))
    server = RtspServer(fps=args.fps, cameras=args.cameras).start()
    line = {"middle": {"points": [[0.45, 0.25], [0.45, 0.75]]}}
    cameras = {f"cam{i}": {"url": server.camera_url(i), "classes": ["person", "car"], "lines": line}
               for i in range(args.cameras)}  # fmt: skip
    daemon = Daemon(write_config(root, cameras, free_port()))
    host, port = daemon.http.removeprefix("http://").rsplit(":", 1)
    results: dict[str, list[dict[str, float]]] = {"no viewer": [], "6 viewers": []}
    try:
        assert wait_for(lambda: processed(daemon) > 50, 60), "the daemon did not start processing"
        time.sleep(5)  # warm-up
        for _ in range(args.rounds):
            results["no viewer"].append(segment(daemon, args.segment))
            viewers = [Viewer(host, int(port), f"cam{c}") for c in (0, 1) for _ in range(3)]
            for v in viewers:
                v.start()
            time.sleep(2)
            results["6 viewers"].append(segment(daemon, args.segment))
            for v in viewers:
                v.close()
            time.sleep(2)
    finally:
        daemon.stop(timeout=20)
        server.kill()
    summary = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}  # fmt: skip
    print(json.dumps({"segments": results, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
