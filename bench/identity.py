"""Track identities under drops: IDF1 of a camera that loses frames against the same video seen whole.

Counts are only as good as track identities. This measures how well the tracker keeps
its ids when a camera is one of many and a share of its frames is dropped, against the
same video processed frame by frame. Boxes are matched by IoU (>= 0.5) on the frames
both runs processed; IDF1 comes from the ``trackers`` package (TrackEval's method).

Two ways to run it:

    python bench/identity.py offline [--keep 0.6] [--seeds 5] [tracker settings]
        detections of every frame computed once (cached), then the real CameraTracker run
        on all frames and on random subsets that keep a share of them, at their real
        capture times: fast, for tuning

    python bench/identity.py daemon [--cameras 8]
        the real daemon: the video alone as 1 paced camera, then as camera 0 of N paced
        cameras on this machine (which drops what it cannot process); reports IDF1, the
        share of frames processed, and each camera's line and zone counts
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
import yaml
from trackers.eval.box import box_iou
from trackers.eval.identity import compute_identity_metrics

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "pedestrians_768x576_10fps.mp4"
MODEL = SHARED / "models" / "yolox_nano.onnx"
FPS = 10.0

# A line across the path and a zone on its right, as in docs/events.md.
LINES = {"middle": {"points": [[0.45, 0.25], [0.45, 0.75]]}}
ZONES = {"right": {"polygon": [[0.62, 0.35], [0.98, 0.35], [0.98, 0.72], [0.62, 0.72]]}}

Tracks = dict[int, tuple[np.ndarray, np.ndarray]]  # seq -> (track ids, xyxy boxes)


def idf1(reference: Tracks, other: Tracks) -> dict[str, float]:
    """IDF1 of ``other`` against ``reference`` on the frames both have."""
    common = sorted(reference.keys() & other.keys())
    gt_ids, tr_ids, sims = [], [], []
    for seq in common:
        (g_ids, g_boxes), (t_ids, t_boxes) = reference[seq], other[seq]
        gt_ids.append(g_ids)
        tr_ids.append(t_ids)
        sims.append(
            box_iou(g_boxes, t_boxes, box_format="xyxy")
            if len(g_ids) and len(t_ids)
            else np.zeros((len(g_ids), len(t_ids)))
        )
    metrics = compute_identity_metrics(gt_ids, tr_ids, sims, threshold=0.5)
    return {
        "IDF1": round(float(metrics["IDF1"]), 4),
        "frames": len(common),
        "ids_reference": len({int(i) for _, (ids, _b) in reference.items() for i in ids}),
        "ids_other": len({int(i) for _, (ids, _b) in other.items() for i in ids}),
    }


# --- offline ---------------------------------------------------------------------------------


def detections(cache: Path) -> list[sv.Detections]:
    """Every frame's raw detections (before tracking), computed once."""
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        out = []
        for i in range(int(data["count"])):
            rows = data[f"f{i}"]
            classes = rows[:, 5].astype(int)
            out.append(
                sv.Detections(
                    xyxy=rows[:, :4].astype(np.float32),
                    confidence=rows[:, 4].astype(np.float32),
                    class_id=classes,
                    data={"class_name": np.array(["person" if c == 0 else "other" for c in classes])},
                )
            )
        return out
    import av  # noqa: PLC0415

    from streamd.config import ModelConfig  # noqa: PLC0415
    from streamd.detect import Detector  # noqa: PLC0415

    detector = Detector.from_config("bench", ModelConfig(path=MODEL, family="yolox"))
    out, arrays = [], {}
    with av.open(str(VIDEO)) as container:
        for i, picture in enumerate(container.decode(video=0)):
            (dets,) = detector.detect([picture])
            out.append(dets)
            arrays[f"f{i}"] = (
                np.column_stack((dets.xyxy, dets.confidence, dets.class_id))
                if len(dets)
                else np.zeros((0, 6))
            )
    np.savez(cache, count=len(out), **arrays)
    return out


def pictures() -> list[Any]:
    """Every decoded picture of the video, kept in memory (the tracker reads colours from them)."""
    import av  # noqa: PLC0415

    with av.open(str(VIDEO)) as container:
        return list(container.decode(video=0))


def track(
    frames: list[sv.Detections], keep: list[int], camera: dict[str, Any], seen: list[Any] | None = None
) -> Tracks:
    """Run the daemon's tracker on the kept frames, at their capture times; published tracks by seq."""
    from streamd.config import CameraConfig  # noqa: PLC0415
    from streamd.track import CameraTracker  # noqa: PLC0415

    config = CameraConfig.model_validate(
        {"id": "bench", "url": "rtsp://127.0.0.1/x", "classes": [0], **camera}
    )
    tracker = CameraTracker(config, np.array([0]), FPS)
    out: Tracks = {}
    for seq in keep:
        published = tracker.update(frames[seq], seq / FPS, None if seen is None else seen[seq])
        out[seq] = (np.asarray(published.tracker_id, int), np.asarray(published.xyxy, np.float64))
    return out


def offline(args: argparse.Namespace) -> dict[str, Any]:
    frames = detections(Path(tempfile.gettempdir()) / "streamd-identity-detections.npz")
    camera = json.loads(args.camera) if args.camera else {}
    seen = pictures()
    alone = track(frames, list(range(len(frames))), camera, seen)
    scores = []
    for seed in range(args.seeds):
        rng = random.Random(seed)
        keep = [i for i in range(len(frames)) if rng.random() < args.keep]
        scores.append(idf1(alone, track(frames, keep, camera, seen)))
    values = [s["IDF1"] for s in scores]
    return {
        "mode": "offline",
        "keep": args.keep,
        "camera": camera,
        "IDF1_median": statistics.median(values),
        "IDF1_min": min(values),
        "runs": scores,
    }


# --- the daemon ------------------------------------------------------------------------------


def run_daemon(cameras: int, root: Path, camera: dict[str, Any]) -> dict[str, Any]:
    """Run the daemon on ``cameras`` paced copies of the video until each has played once."""
    from streamd.client import EventMessage, FrameMessage, Subscriber  # noqa: PLC0415

    root.mkdir(parents=True)
    (root / "cameras").mkdir()
    port = 5600 + random.Random().randrange(300)
    daemon = {
        "models": {"default": {"path": str(MODEL), "family": "yolox"}},
        "state_dir": str(root / "state"),
        "zmq": {"endpoint": f"tcp://127.0.0.1:{port}", "send_hwm": 100000},
        "http": {"listen": None},
        "log": {"format": "json"},
    }
    (root / "streamd.yaml").write_text(yaml.safe_dump(daemon))
    for i in range(cameras):
        cam = {
            "url": str(VIDEO),
            "source": {"realtime": True, "loop": False},
            "classes": ["person"],
            "lines": LINES,
            "zones": ZONES,
            **camera,
        }
        (root / "cameras" / f"cam{i}.yaml").write_text(yaml.safe_dump(cam))
    sub = Subscriber(f"tcp://127.0.0.1:{port}", events=True)
    log = (root / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamd", "run", "--config", str(root / "streamd.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    tracks: dict[str, Tracks] = {f"cam{i}": {} for i in range(cameras)}
    events: dict[str, list[dict[str, Any]]] = {f"cam{i}": [] for i in range(cameras)}
    last = time.monotonic()
    started = time.monotonic()
    try:
        while time.monotonic() - last < 15 and time.monotonic() - started < 300:
            msg = sub.recv_any(timeout_s=1.0)
            if msg is None:
                continue
            last = time.monotonic()
            if isinstance(msg, FrameMessage):
                ids = np.array([d.track_id for d in msg.detections], int)
                boxes = np.array([d.bbox for d in msg.detections], np.float64).reshape(-1, 4)
                tracks[msg.camera][msg.seq] = (ids, boxes)
            elif isinstance(msg, EventMessage):
                events[msg.camera].append(msg.raw)
    finally:
        proc.terminate()
        proc.wait(20)
        sub.close()
        log.close()
    counts = {}
    for cid, evs in events.items():
        crossings = [e for e in evs if e["type"] == "line.cross"]
        entries = [e for e in evs if e["type"] == "zone.enter"]
        counts[cid] = {
            "in": sum(e["direction"] == "in" for e in crossings),
            "out": sum(e["direction"] == "out" for e in crossings),
            "zone_entries": len(entries),
        }
    return {"tracks": tracks, "counts": counts, "processed": {c: len(t) for c, t in tracks.items()}}


def daemon(args: argparse.Namespace) -> dict[str, Any]:
    camera = json.loads(args.camera) if args.camera else {}
    work = Path(tempfile.mkdtemp(prefix="streamd-identity-"))
    alone = run_daemon(1, work / "alone", camera)
    many = run_daemon(args.cameras, work / "many", camera)
    frames = 795
    return {
        "mode": "daemon",
        "cameras": args.cameras,
        "camera": camera,
        "alone": {"processed": alone["processed"]["cam0"], "counts": alone["counts"]["cam0"]},
        "many": {
            "processed_share": {c: round(n / frames, 3) for c, n in many["processed"].items()},
            "counts": many["counts"],
        },
        "identity": idf1(alone["tracks"]["cam0"], many["tracks"]["cam0"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("offline", "daemon"))
    parser.add_argument("--keep", type=float, default=0.6, help="offline: share of frames kept")
    parser.add_argument("--seeds", type=int, default=5, help="offline: random drop patterns")
    parser.add_argument("--cameras", type=int, default=8, help="daemon: cameras of the overloaded run")
    parser.add_argument(
        "--camera", help='camera file settings as JSON, e.g. \'{"tracker": {"min_iou": 0.05}}\''
    )
    args = parser.parse_args()
    result = offline(args) if args.mode == "offline" else daemon(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
