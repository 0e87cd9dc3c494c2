"""What analytics cost the worker per frame: the video's real tracks through 0, 1 or 10 lines and zones.

    python bench/analytics_cost.py

Tracks come from the daemon's tracker on every frame (detections cached by
bench/identity.py); each frame then goes through CameraAnalytics.update with the lines
and zones spread over the picture, and the time of that call is measured.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity import FPS, detections

from streamd.analytics.counts import CountsStore
from streamd.analytics.stage import CameraAnalytics
from streamd.config import CameraConfig
from streamd.track import CameraTracker
from streamd.types import Frame


def camera(n: int) -> CameraConfig:
    lines = {f"l{i}": {"points": [[0.05 + 0.09 * i, 0.1], [0.05 + 0.09 * i, 0.9]]} for i in range(n)}
    zones = {}
    for i in range(n):
        left, right = 0.09 * i, 0.09 * i + 0.15
        zones[f"z{i}"] = {"polygon": [[left, 0.3], [right, 0.3], [right, 0.8], [left, 0.8]]}
    body = {"id": "cost", "url": "rtsp://127.0.0.1/x", "lines": lines, "zones": zones}
    return CameraConfig.model_validate(body)


def run(n: int, frames: list, root: Path) -> dict[str, float]:
    cfg = camera(n)
    tracker = CameraTracker(cfg, np.array([0]), FPS)
    analytics = CameraAnalytics(cfg, {}, CountsStore(root / f"counts-{n}").open("cost"))
    picture = av.VideoFrame(768, 576, "yuv420p")
    times, events, objects = [], 0, 0
    for seq, dets in enumerate(frames):
        tracked = tracker.update(dets[dets.class_id == 0], seq / FPS)
        frame = Frame("cost", seq, 1.0e9 + seq / FPS, seq / FPS, 0.0, seq / FPS, picture)
        start = time.perf_counter()
        out, _states = analytics.update(frame, tracked)
        times.append(time.perf_counter() - start)
        events += len(out)
        objects += len(tracked)
    return {
        "lines_and_zones": n,
        "median_us": round(statistics.median(times) * 1e6, 1),
        "p95_us": round(float(np.percentile(times, 95)) * 1e6, 1),
        "tracks_per_frame": round(objects / len(frames), 1),
        "events": events,
    }


def main() -> None:
    frames = detections(Path(tempfile.gettempdir()) / "streamd-identity-detections.npz")
    root = Path(tempfile.mkdtemp(prefix="streamd-analytics-cost-"))
    print(json.dumps([run(n, frames, root) for n in (0, 1, 10)], indent=1))


if __name__ == "__main__":
    main()
