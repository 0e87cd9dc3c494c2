"""Where a processed frame's CPU goes: each stage of the pipeline, in one thread, on the real video.

    python bench/cpu_split.py [--frames 400] [--video ../shared/data/...mp4] [--line] [--no-colours]

Runs what the daemon runs for one camera, stage by stage, and measures each with the
thread's CPU clock: demux + decode (PyAV), letterbox + colour (from YUV), the input
tensor, the model, the output decoding, NMS, tracking (+ a counting line with --line),
the message (orjson) and the ZeroMQ send. The model runs on one thread, as each of the
daemon's sessions does. What the daemon adds beyond this (waiting, locks, other threads,
the GIL) is its CPU per processed frame minus the sum here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import av
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamd.analytics.counts import CountsStore  # noqa: E402
from streamd.analytics.stage import CameraAnalytics  # noqa: E402
from streamd.config import CameraConfig, ModelConfig  # noqa: E402
from streamd.detect import Detector  # noqa: E402
from streamd.detect.nms import batched_nms  # noqa: E402
from streamd.loading import check_camera  # noqa: E402
from streamd.message import encode_frame, topic  # noqa: E402
from streamd.route import CameraRoute  # noqa: E402
from streamd.sources import CameraStats  # noqa: E402
from streamd.types import Frame  # noqa: E402
from tests.helpers import MODEL, VIDEO, free_port  # noqa: E402


def pipeline(line: bool, colours: bool = True) -> tuple[Detector, CameraRoute]:
    """The detector and a camera's route, as the daemon builds them."""
    detector = Detector.from_config("bench", ModelConfig(path=MODEL, family="yolox", threads=1))
    camera: dict[str, object] = {"id": "cam", "url": "rtsp://127.0.0.1/x", "classes": ["person", "car"]}
    if not colours:
        camera["tracker"] = {"appearance": False}
    if line:
        camera["lines"] = {"middle": {"points": [[0.45, 0.25], [0.45, 0.75]]}}
    config = CameraConfig.model_validate(camera)
    checks = check_camera(config, detector, "bench")
    counts = CountsStore(Path(tempfile.mkdtemp(prefix="streamd-split-")))
    analytics = CameraAnalytics(config, checks.filters, counts.open("cam"))
    return detector, CameraRoute(config, CameraStats(stream_fps=10.0), checks.classes, analytics=analytics)


def pictures(video: Path, count: int) -> Iterator[tuple[av.VideoFrame, float]]:
    """``count`` pictures of the video (looped), each with the CPU time its demux and decode took."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        packets = container.demux(stream)
        for _ in range(count):
            t = time.thread_time()
            picture = None
            while picture is None:
                packet = next(packets, None)
                if packet is None:  # loop the video
                    container.seek(0)
                    packets = container.demux(stream)
                    continue
                decoded = packet.decode()
                picture = decoded[0] if decoded else None
            yield picture, time.thread_time() - t


def measure(video: Path, count: int, line: bool, colours: bool = True) -> dict[str, list[float]]:
    """CPU seconds of each stage for each picture."""
    detector, route = pipeline(line, colours)
    socket = zmq.Context.instance().socket(zmq.PUB)
    socket.bind(f"tcp://127.0.0.1:{free_port()}")
    cpu: dict[str, list[float]] = defaultdict(list)

    def timed(stage: str, start: float) -> float:
        now = time.thread_time()
        cpu[stage].append(now - start)
        return now

    t_scene = time.monotonic()
    for n, (picture, decode_s) in enumerate(pictures(video, count)):
        cpu["decode (PyAV)"].append(decode_s)
        t = time.thread_time()
        placed = detector.place(picture, 0)
        t = timed("letterbox + colour (YUV)", t)
        prepared = detector.stack([placed])
        t = timed("input tensor", t)
        output = detector._run(prepared.blob)[0]
        t = timed("model", t)
        xyxy, scores, class_ids = detector.family.decode(output, prepared.input_hw, detector._confidence)
        t = timed("output decoding", t)
        batched_nms(xyxy, scores, class_ids, detector._nms_iou, detector._max_detections)
        timed("NMS", t)
        box, source_hw = prepared.boxes[0], prepared.source_hw[0]
        detections = detector._postprocess(output, box, source_hw, prepared.input_hw)
        t_scene += 0.1
        t = time.thread_time()
        result = route.finish(Frame("cam", n, time.time(), t_scene, 0.0, t_scene, picture), detections, 0, 0)
        t = timed("tracking" + (" + line" if line else ""), t)
        payload = encode_frame(result)
        t = timed("message (orjson)", t)
        socket.send_multipart([topic("cam"), payload], flags=zmq.NOBLOCK)
        timed("ZeroMQ send", t)
    socket.close(linger=0)
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--line", action="store_true", help="count on a line across the picture")
    parser.add_argument(
        "--no-colours", action="store_true", help="track by IoU alone (tracker.appearance: false)"
    )
    args = parser.parse_args()
    cpu = measure(args.video, args.frames, args.line, not args.no_colours)
    medians = {stage: statistics.median(values) * 1000 for stage, values in cpu.items()}
    means = {stage: statistics.fmean(values) * 1000 for stage, values in cpu.items()}
    total = sum(means.values())
    how = "IoU alone" if args.no_colours else "colours"
    print(f"# {args.frames} frames of {args.video.name}, one thread, tracking by {how}; CPU ms per frame")
    print(f"{'stage':<28}{'median':>8}{'mean':>8}{'share':>8}")
    for stage in cpu:
        print(f"{stage:<28}{medians[stage]:>8.2f}{means[stage]:>8.2f}{means[stage] / total:>8.1%}")
    print(f"{'sum':<28}{'':>8}{total:>8.2f}")


if __name__ == "__main__":
    main()
