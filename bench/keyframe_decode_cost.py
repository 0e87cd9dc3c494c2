"""Where a 1080p RTSP camera's CPU goes: demux only, keyframes decoded, every frame decoded.

    python bench/keyframe_decode_cost.py [--seconds 10]

Serves the bench's cached 1080p 25 fps clip (made by `streamd bench --size 1920x1080
--gop 25`) from the simulated RTSP server and reads it with PyAV with streamd's RTSP
options, three times: packets only, packets + keyframes decoded, packets + every frame
decoded. Prints the reading thread's CPU as % of a core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import RtspServer  # noqa: E402

OPTIONS = {"rtsp_transport": "tcp", "flags": "low_delay", "probesize": "32", "analyzeduration": "0"}


def read(url: str, mode: str, seconds: float) -> tuple[int, int, float]:
    """Packets read, pictures decoded and CPU seconds over ``seconds`` of the stream."""
    with av.open(url, options=OPTIONS, timeout=(10, 5)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        t0, cpu0, packets, decoded = time.monotonic(), time.thread_time(), 0, 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if mode == "all" or (mode == "keyframes" and packet.is_keyframe):
                decoded += len(packet.decode())
            if time.monotonic() - t0 > seconds:
                break
        return packets, decoded, time.thread_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    clips = sorted(Path.home().glob(".cache/streamd/clips/*1920x1080-25fps-gop25*"))
    if not clips:
        sys.exit("no 1080p clip: run `streamd bench --size 1920x1080 --gop 25 --duration 5` once")
    server = RtspServer(video=clips[0], fps=25).start()
    try:
        print(f"# {clips[0].name} over RTSP on loopback, {args.seconds:g} s each")
        for mode in ("demux", "keyframes", "all"):
            packets, decoded, cpu = read(server.url, mode, args.seconds)
            share = 100 * cpu / args.seconds
            print(f"{mode:<10} {packets:>4} packets {decoded:>4} decoded {share:>5.1f}% of a core")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
