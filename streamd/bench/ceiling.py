"""The machine's ceilings: model-only inferences and decode-only frames per second."""

from __future__ import annotations

import threading
import time

import av
import numpy as np

from streamd.config import ModelConfig
from streamd.detect import Detector
from streamd.detect.detector import image_hw
from streamd.detect.letterbox import input_tensor, letterbox
from streamd.picture import to_bgr

__all__ = ["decode_ceiling", "model_ceiling"]


def _first_frame(video: str) -> np.ndarray:
    with av.open(video) as container:
        for picture in container.decode(video=0):
            return to_bgr(picture)
    raise ValueError(f"{video}: no frames")


def model_ceiling(
    model: ModelConfig, video: str, batch: int, seconds: float, workers: int = 1
) -> dict[str, float]:
    """Frames per second of the bare sessions on a ready input tensor (no decode, no pre/post).

    With several workers, that many sessions run side by side, as the daemon runs them.
    """
    detectors = [Detector.from_config("ceiling", model) for _ in range(workers)]
    first = detectors[0]
    batch = max(1, min(batch, first.max_batch))
    frame = _first_frame(video)
    # The input the daemon gives this video's pictures (fitted to their shape where the model allows).
    input_hw = first.input_hw_for([image_hw(frame)])
    canvas, _ = letterbox(frame, input_hw, first.family.center)
    blob = input_tensor([canvas] * batch, rgb=first.family.rgb, scale=first.family.scale)
    runs: list[list[float]] = [[] for _ in detectors]
    start_at = threading.Barrier(len(detectors) + 1)  # the loops, after their warm-up, and this thread

    def loop(detector: Detector, out: list[float]) -> None:
        session, feed = detector._session, {detector._input_name: blob}
        for _ in range(3):
            session.run(None, feed)
        start_at.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(out) < 100_000:
            t0 = time.perf_counter()
            session.run(None, feed)
            out.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=loop, args=(d, r)) for d, r in zip(detectors, runs, strict=True)]
    for t in threads:
        t.start()
    start_at.wait()
    cpu = time.process_time()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu
    every = [x for r in runs for x in r]
    return {
        "fps": round(sum(len(r) * batch / sum(r) for r in runs if r), 2),
        "batch": batch,
        "workers": workers,
        "latency_ms_p50": round(float(np.median(every)) * 1000, 2),
        # CPU time of the whole process per frame: what one frame's inference costs the machine
        "cpu_ms_per_frame": round(1000 * cpu / max(1, batch * len(every)), 2),
        "provider": first.provider,  # type: ignore[dict-item]
        "input": f"{input_hw[0]}x{input_hw[1]}",  # type: ignore[dict-item]
    }


def decode_ceiling(video: str, seconds: float, threads: int = 1) -> dict[str, float]:
    """Frames per second of demux+decode, and of demux+decode+BGR conversion, of one stream."""
    results = {}
    for label, convert in (("decode_fps", False), ("decode_bgr_fps", True)):
        frames = 0
        start, cpu = time.monotonic(), time.process_time()
        deadline = start + seconds / 2
        while time.monotonic() < deadline:
            with av.open(video) as container:
                stream = container.streams.video[0]
                if threads != 1:
                    stream.thread_type = "AUTO"
                for picture in container.decode(stream):
                    if convert:
                        to_bgr(picture)
                    frames += 1
                    if time.monotonic() >= deadline:
                        break
        results[label] = round(frames / (time.monotonic() - start), 1)
        if not convert:
            results["decode_cpu_ms_per_frame"] = round(1000 * (time.process_time() - cpu) / max(1, frames), 3)
    return results
