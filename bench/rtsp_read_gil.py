"""RTSP cameras read beside Python work: PyAV's read timeout (a callback that takes the GIL) or FFmpeg's.

    python bench/rtsp_read_gil.py [--cameras 8] [--fps 25] [--seconds 15] [--rounds 2]

Each camera is a thread that demuxes and decodes, as the daemon's camera threads do;
two more threads run worker-like Python (small numpy calls). With PyAV's read timeout
(``av.open(timeout=...)``) FFmpeg calls back into Python, taking the GIL, at every read;
with FFmpeg's own socket timeout (the ``timeout`` option) it does not. Reports each
side's CPU per decoded frame in the camera threads and how far the Python threads got.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import RtspServer

OPTIONS = {"rtsp_transport": "tcp", "flags": "low_delay", "probesize": "32", "analyzeduration": "0"}


def run(server: RtspServer, cameras: int, seconds: float, native: bool) -> tuple[float, float]:
    """CPU ms per decoded frame of the camera threads, and Python iterations a second."""
    stop = threading.Event()
    frames: list[tuple[int, float]] = []
    iterations: list[int] = []

    def camera(i: int) -> None:
        if native:
            container = av.open(server.camera_url(i), options={**OPTIONS, "timeout": "5000000"})
        else:
            container = av.open(server.camera_url(i), options=OPTIONS, timeout=(10.0, 5.0))
        n, start = 0, time.thread_time()
        with container:
            for packet in container.demux(container.streams.video[0]):
                n += len(packet.decode())
                if stop.is_set():
                    break
        frames.append((n, time.thread_time() - start))

    def python_work() -> None:
        rows, k = np.random.default_rng(0).random((20, 4)), 0
        while not stop.is_set():
            for _ in range(100):
                (rows * 2.0 + 1.0).max(axis=1)
                k += 1
            time.sleep(0.0005)
        iterations.append(k)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(cameras)]
    threads += [threading.Thread(target=python_work) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    decoded = sum(n for n, _ in frames)
    return sum(cpu for _, cpu in frames) / decoded * 1000, sum(iterations) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server = RtspServer(fps=args.fps, cameras=args.cameras).start()
    results: dict[str, list[tuple[float, float]]] = {"pyav callback": [], "ffmpeg timeout": []}
    try:
        for _ in range(args.rounds):  # alternated: this machine's speed drifts
            results["pyav callback"].append(run(server, args.cameras, args.seconds, native=False))
            results["ffmpeg timeout"].append(run(server, args.cameras, args.seconds, native=True))
    finally:
        server.kill()
    print(f"{args.cameras} cameras x {args.fps:g} fps over RTSP/TCP, 2 Python threads, {args.rounds} rounds")
    print("read timeout     camera_cpu_ms_per_frame  python_iterations_per_s")
    for name, rows in results.items():
        cpu = statistics.median(r[0] for r in rows)
        work = statistics.median(r[1] for r in rows)
        print(f"{name:15s}  {cpu:23.2f}  {work:23.0f}")


if __name__ == "__main__":
    main()
