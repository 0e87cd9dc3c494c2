"""How long systemd takes to restart streamd after its inference worker wedges, with the unit's settings.

There is no systemd to kill anything here, so this measures the two parts streamd
controls and adds the two systemd applies, both fixed by the unit file:

    restart = (last keep-alive - wedge) + WatchdogSec + RestartSec + (process start -> READY=1)

The first part runs the real daemon in-process (real model, the shared video as a
camera) with WATCHDOG_USEC and NOTIFY_SOCKET set on a real unix datagram socket,
wedges its worker with an inference call that never returns, and records the
keep-alives. The last part starts ``streamd run`` as a subprocess and times READY=1.

    python bench/watchdog.py [--watchdog-s 20] [--stall-s 10] [--restart-s 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from streamd.config import load_config  # noqa: E402
from streamd.daemon import Daemon  # noqa: E402
from streamd.log import configure_logging  # noqa: E402


class Listener:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.got.append((time.monotonic(), fields))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def write_config(root: Path, stall_s: float) -> Path:
    (root / "cameras").mkdir(parents=True)
    daemon = {
        "state_dir": str(root / "state"),
        "models": {
            "default": {"path": str(SHARED / "models/yolox_nano.onnx"), "family": "yolox", "workers": 1}
        },
        "zmq": {"endpoint": "ipc://" + str(root / "zmq.sock")},
        "http": {"listen": None},
        "log": {"format": "json", "level": "warning"},
        "stall_timeout_s": stall_s,
    }
    (root / "streamd.yaml").write_text(yaml.safe_dump(daemon))
    camera = {"url": str(SHARED / "data/pedestrians_768x576_10fps.mp4")}
    (root / "cameras/door.yaml").write_text(yaml.safe_dump(camera))
    return root / "streamd.yaml"


def wedge_to_last_keepalive(root: Path, watchdog_s: float, stall_s: float) -> float:
    config = write_config(root, stall_s)
    listener = Listener(root / "notify.sock")
    os.environ.update(
        NOTIFY_SOCKET=str(root / "notify.sock"),
        WATCHDOG_USEC=str(int(watchdog_s * 1e6)),
        WATCHDOG_PID=str(os.getpid()),
    )
    daemon = Daemon.from_config(load_config(config))
    stop, release = threading.Event(), threading.Event()
    marks: dict[str, float] = {}

    def keepalives() -> list[float]:
        return [t for t, m in listener.got if m.get("WATCHDOG") == "1"]

    def wedge() -> None:
        deadline = time.monotonic() + 3 * watchdog_s
        while len(keepalives()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # A wedge can come at any moment between two keep-alives.
        time.sleep(random.uniform(0, watchdog_s / 3))
        worker = daemon.workers["default"][0]
        real = worker.detector.infer

        def wedged(prepared):  # type: ignore[no-untyped-def]
            release.wait(600)
            return real(prepared)

        worker.detector.infer = wedged  # type: ignore[method-assign]
        marks["wedged"] = time.monotonic()
        # systemd would kill WatchdogSec after the last keep-alive: watch that long.
        deadline = time.monotonic() + stall_s + 2 * watchdog_s
        while time.monotonic() < deadline:
            time.sleep(0.2)
            last = max(keepalives())
            if time.monotonic() - last > watchdog_s:
                break
        stop.set()
        release.set()

    helper = threading.Thread(target=wedge)
    helper.start()
    daemon.run(stop=stop, stats_interval_s=3600)
    helper.join()
    listener.close()
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(key, None)
    last = max(keepalives())
    return last - marks["wedged"]


def start_to_ready(root: Path) -> float:
    config = write_config(root, 10.0)
    listener = Listener(root / "notify.sock")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamd", "run", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "NOTIFY_SOCKET": str(root / "notify.sock")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = started + 60
        while time.monotonic() < deadline and not any(m.get("READY") == "1" for _, m in listener.got):
            time.sleep(0.01)
        ready = next(t for t, m in listener.got if m.get("READY") == "1")
    finally:
        proc.terminate()
        proc.wait(20)
        listener.close()
    return ready - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchdog-s", type=float, default=20.0, help="WatchdogSec of the unit")
    parser.add_argument("--stall-s", type=float, default=10.0, help="stall_timeout_s of streamd.yaml")
    parser.add_argument("--restart-s", type=float, default=5.0, help="RestartSec of the unit")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("warning")
    lasts, readies = [], []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            lasts.append(wedge_to_last_keepalive(Path(tmp), args.watchdog_s, args.stall_s))
        with tempfile.TemporaryDirectory() as tmp:
            readies.append(start_to_ready(Path(tmp)))
        print(
            f"round {i + 1}: wedge -> last keep-alive {lasts[-1]:.2f} s, start -> READY {readies[-1]:.2f} s",
            flush=True,
        )
    ready = statistics.median(readies)
    fixed = args.watchdog_s + args.restart_s + ready
    print(
        f"WatchdogSec={args.watchdog_s:g}s stall_timeout_s={args.stall_s:g} RestartSec={args.restart_s:g}s, "
        f"{args.rounds} rounds: wedge -> last keep-alive min {min(lasts):.2f} / median "
        f"{statistics.median(lasts):.2f} / max {max(lasts):.2f} s; systemd kills "
        f"{min(lasts) + args.watchdog_s:.1f} / {statistics.median(lasts) + args.watchdog_s:.1f} / "
        f"{max(lasts) + args.watchdog_s:.1f} s after the wedge; READY again "
        f"{min(lasts) + fixed:.1f} / {statistics.median(lasts) + fixed:.1f} / {max(lasts) + fixed:.1f} s "
        f"after it (start -> READY median {ready:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
