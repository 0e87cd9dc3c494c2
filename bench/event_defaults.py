"""What the shared video says the event defaults should be: anchor jitter, walking speed, gaps, stability.

Runs the daemon's tracker on every frame of the pedestrian video (detections cached by
bench/identity.py) and measures, on the published (smoothed) tracks:

- jitter: how far a bottom-centre anchor strays from its own 1 s moving average
  (normalized units): a line's ``min_distance`` must be well above it;
- speed: how fast people walk (normalized units a second): ``min_hold_s`` x speed is
  how far beyond the line someone is when a crossing counts;
- gaps: how long a track goes unseen between two observations: a zone's ``exit_s``
  must outlast them, or a person would leave and re-enter;
- stability: the line and zone counts of docs/events.md over a grid of settings, so
  the default sits where the count does not depend on it.

    python bench/event_defaults.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity import FPS, LINES, ZONES, detections, pictures

from streamd.analytics.geometry import anchor_points, inside_polygon
from streamd.analytics.lines import LineCrossings
from streamd.analytics.zones import ZoneOccupancy
from streamd.config import CameraConfig
from streamd.track import CameraTracker

W, H = 768, 576


def published() -> dict[int, list[tuple[float, np.ndarray]]]:
    """Each track's (time, box) as the daemon publishes them, every frame processed."""
    frames = detections(Path(tempfile.gettempdir()) / "streamd-identity-detections.npz")
    config = CameraConfig.model_validate({"id": "bench", "url": "rtsp://127.0.0.1/x", "classes": [0]})
    tracker = CameraTracker(config, np.array([0]), FPS)
    seen = pictures()  # the tracker reads colours from them, as in the daemon
    tracks: dict[int, list[tuple[float, np.ndarray]]] = {}
    for seq, dets in enumerate(frames):
        out = tracker.update(dets, seq / FPS, seen[seq])
        for tid, box in zip(np.asarray(out.tracker_id), np.asarray(out.xyxy), strict=True):
            tracks.setdefault(int(tid), []).append((seq / FPS, box))
    return tracks


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{p}": round(float(np.percentile(values, p)), 4) for p in (50, 90, 95, 99)}


def measure(tracks: dict[int, list[tuple[float, np.ndarray]]]) -> dict[str, Any]:
    jitter, speeds, gaps = [], [], []
    for seen in tracks.values():
        times = np.array([t for t, _ in seen])
        feet = anchor_points(np.array([b for _, b in seen]), "bottom_center", W, H)
        gaps += [float(g) for g in np.diff(times) if g > 1.5 / FPS]  # unseen for a frame or more
        if len(seen) < 11:
            continue
        kernel = np.ones(11) / 11  # 1 s at 10 fps
        for axis in (0, 1):
            smooth = np.convolve(feet[:, axis], kernel, mode="valid")
            jitter += list(np.abs(feet[5:-5, axis] - smooth))
        steps = np.linalg.norm(np.diff(feet, axis=0), axis=1) / np.maximum(np.diff(times), 1e-6)
        speeds += list(steps)
    return {
        "jitter": percentiles(jitter),
        "speed_per_s": percentiles(speeds),
        "gaps_s": percentiles(gaps) if gaps else {},
        "gap_count": len(gaps),
    }


def counts(tracks: dict[int, list[tuple[float, np.ndarray]]], **settings: float) -> dict[str, int]:
    """The docs/events.md line and zone over every track, with these settings."""
    (a, b) = LINES["middle"]["points"]
    line = LineCrossings(
        tuple(a), tuple(b), settings.get("min_hold_s", 0.3), settings.get("min_distance", 0.01)
    )
    zone = ZoneOccupancy(settings.get("enter_s", 0.5), settings.get("exit_s", 1.0), None)
    polygon = np.array(ZONES["right"]["polygon"])
    result = {"in": 0, "out": 0, "enter": 0, "exit": 0}
    for tid, seen in tracks.items():
        feet = anchor_points(np.array([b for _, b in seen]), "bottom_center", W, H)
        inside = inside_polygon(polygon, feet)
        for (t, _), p, is_in in zip(seen, feet, inside, strict=True):
            crossed = line.observe(tid, (float(p[0]), float(p[1])), t)
            if crossed is not None:
                result[crossed.direction] += 1
            for event in zone.observe(tid, "person", bool(is_in), t):
                result[event.kind] += event.kind in ("enter", "exit")
        crossed = line.end(tid)
        if crossed is not None:
            result[crossed.direction] += 1
        result["exit"] += len(zone.end(tid, seen[-1][0]))
    return result


def main() -> None:
    tracks = published()
    report: dict[str, Any] = {"tracks": len(tracks), **measure(tracks), "line": {}, "zone": {}}
    for hold in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2):
        for distance in (0.0, 0.005, 0.01, 0.02, 0.04):
            c = counts(tracks, min_hold_s=hold, min_distance=distance)
            report["line"][f"hold={hold} distance={distance}"] = f"in {c['in']} out {c['out']}"
    for enter in (0.0, 0.2, 0.5, 1.0):
        for leave in (0.0, 0.5, 1.0, 2.0):
            c = counts(tracks, enter_s=enter, exit_s=leave)
            report["zone"][f"enter={enter} exit={leave}"] = f"entries {c['enter']} exits {c['exit']}"
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
