"""The reload gap: what SIGHUP costs the cameras it touches and the ones it does not.

Runs the daemon as a subprocess on K cameras of the loopback RTSP server (10 fps each),
then N times: edit camera 0's file, send SIGHUP, and record from a ZeroMQ subscriber
  - the untouched cameras' longest silence between two messages around the reload
    (their frame period is 100 ms), and whether any of them reconnected;
  - odd reloads change a stream setting (source.read_timeout_s), which restarts the
    camera: the gap is SIGHUP to its first message from the new stream;
  - even reloads change min_confidence, which applies in place: the gap is the edited
    camera's longest silence.

    python bench/reload.py [--cameras 3] [--reloads 10]
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamd.client import Subscriber  # noqa: E402
from tests.helpers import Daemon, RtspServer, free_port, write_config  # noqa: E402


def silence(received: list[tuple[float, str, int]], camera: str, since: float) -> float:
    """The longest time without a message of ``camera`` from ``since`` to its last message."""
    times = [since] + [t for t, cam, _ in received if cam == camera]
    return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


def edit_camera0(file: Path, url: str, n: int) -> str:
    """Even n: a stream setting changes (restart); odd n: only min_confidence (in place)."""
    timeout = 5.0 + 0.1 * (n // 2 + 1)  # new at every even n, the same at the odd n after it
    body = {"url": url, "source": {"read_timeout_s": timeout}, "min_confidence": 0.3 + 0.01 * (n + 1)}
    file.write_text(yaml.safe_dump(body))
    return "restart" if n % 2 == 0 else "in place"


def receive(sub: Subscriber, seconds: float) -> list[tuple[float, str, int]]:
    """(arrival time, camera, seq) of every message within ``seconds``."""
    received = []
    start = time.monotonic()
    for _ in range(100_000):
        if time.monotonic() - start >= seconds:
            break
        msg = sub.recv(timeout_s=0.2)
        if msg is not None:
            received.append((time.monotonic(), msg.camera, msg.seq))
    return received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds recorded after each SIGHUP")
    args = parser.parse_args()
    server = RtspServer(cameras=args.cameras).start()
    port = free_port()
    ids = [f"cam{i}" for i in range(args.cameras)]
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(
            Path(tmp), {cid: {"url": server.camera_url(i)} for i, cid in enumerate(ids)}, port
        )
        sub = Subscriber(f"tcp://127.0.0.1:{port}")
        daemon = Daemon(config, stats_interval=3600)
        silences: list[float] = []
        gaps: dict[str, list[float]] = {"restart": [], "in place": []}
        try:
            seen: set[str] = set()
            deadline = time.monotonic() + 60
            while seen != set(ids) and time.monotonic() < deadline:
                msg = sub.recv(timeout_s=0.5)
                if msg is not None:
                    seen.add(msg.camera)
            for n in range(args.reloads):
                kind = edit_camera0(Path(tmp) / "cameras" / "cam0.yaml", server.camera_url(0), n)
                t_hup = time.monotonic()
                daemon.proc.send_signal(signal.SIGHUP)
                received = receive(sub, args.settle)
                if kind == "restart":
                    first = [t for t, cam, seq in received if cam == "cam0" and seq == 0]
                    gaps[kind].append(first[0] - t_hup if first else float("inf"))
                else:
                    gaps[kind].append(silence(received, "cam0", t_hup))
                for cid in ids[1:]:
                    silences.append(silence(received, cid, t_hup))
                longest = max(silences[-(len(ids) - 1) :])
                print(
                    f"reload {n + 1} ({kind}): cam0 gap {gaps[kind][-1] * 1000:.0f} ms, "
                    f"others' longest silence {longest * 1000:.0f} ms",
                    flush=True,
                )
            cameras = daemon.get_json("/v1/cameras")["cameras"]
            reconnects = {c["id"]: c["reconnects"] for c in cameras}
        finally:
            daemon.stop()
            sub.close()
            server.kill()
    ms = {k: (statistics.median(v) * 1000, max(v) * 1000) for k, v in gaps.items()}
    print(
        f"{args.reloads} reloads, {args.cameras} cameras at 10 fps (frame period 100 ms, GOP 1 s): "
        f"edited camera restarted: back after median {ms['restart'][0]:.0f} ms (max {ms['restart'][1]:.0f}); "
        f"edited in place: longest silence median {ms['in place'][0]:.0f} ms (max {ms['in place'][1]:.0f}); "
        f"untouched cameras' longest silence median {statistics.median(silences) * 1000:.0f} ms "
        f"(max {max(silences) * 1000:.0f}); reconnects: cam0 {reconnects['cam0']}, "
        f"untouched {sum(reconnects[c] for c in ids[1:])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
