"""Tracking's CPU per frame as a scene fills: synthetic walkers, the real CameraTracker.

    python bench/tracking_crowd.py [--people 10,30,60] [--frames 300]

Each walker is a 40x100 box moving at its own speed with a pixel of noise, at 10 fps,
with confidences spread over both of ByteTrack's rounds; colours off (there is no
picture). Reports the thread's CPU per frame: what a crowded camera costs to track,
beside bench/cpu_split.py's figure for the shared video (about ten people).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import supervision as sv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamd.config import CameraConfig
from streamd.track import CameraTracker

BOX = np.array([40.0, 100.0])  # a walker's width and height, pixels


def cost(people: int, frames: int, seed: int = 1) -> float:
    """CPU ms per frame of tracking ``people`` walkers for ``frames`` frames."""
    rng = np.random.default_rng(seed)
    camera = CameraConfig.model_validate(
        {"id": "crowd", "url": "rtsp://127.0.0.1/x", "tracker": {"appearance": False}}
    )
    tracker = CameraTracker(camera, None, nominal_fps=10.0)
    start, speed = rng.uniform(0, 1500, (people, 2)), rng.normal(0, 20, (people, 2))
    scenes = []
    for i in range(frames):
        xy = start + speed * i * 0.1 + rng.normal(0, 1, (people, 2))
        scenes.append(
            sv.Detections(
                xyxy=np.hstack((xy, xy + BOX)).astype(np.float32),
                confidence=rng.uniform(0.3, 0.95, people).astype(np.float32),
                class_id=np.zeros(people, int),
            )
        )
    t = time.thread_time()
    for i, detections in enumerate(scenes):
        tracker.update(detections, 0.1 * (i + 1))
    return (time.thread_time() - t) / frames * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="10,30,60")
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    print("people  cpu_ms_per_frame")
    for people in (int(n) for n in args.people.split(",")):
        print(f"{people:6d}  {cost(people, args.frames):16.3f}")


if __name__ == "__main__":
    main()
