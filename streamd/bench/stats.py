"""Pure statistics of a benchmark run: latency percentiles, growth, throughput and fairness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Received", "camera_report", "latency_summary", "timeline", "total_report"]


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the benchmark's subscriber got it."""

    camera: str
    seq: int
    t_recv: float  # wall clock at receipt
    total_ms: float  # capture to publish, measured by the daemon


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of a list of latencies in milliseconds."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    values = {"p50": p50, "p95": p95, "p99": p99, "max": arr.max()}
    return {k: round(float(v), 2) for k, v in values.items()}


def growth(msgs: Sequence[Received], window_s: float = 10.0) -> float | None:
    """p99 latency of the last ``window_s`` over the first; about 1.0 when no queue builds up."""
    if not msgs:
        return None
    start, end = msgs[0].t_recv, msgs[-1].t_recv
    if end - start < 2 * window_s:
        return None
    first = [m.total_ms for m in msgs if m.t_recv <= start + window_s]
    last = [m.total_ms for m in msgs if m.t_recv >= end - window_s]
    if not first or not last:
        return None
    return round(float(np.percentile(last, 99) / max(np.percentile(first, 99), 1e-9)), 3)


def camera_report(
    msgs: Sequence[Received], offered_fps: float, duration_s: float, target_fps: float | None = None
) -> dict[str, object]:
    """Throughput and latency of one camera over the measured window.

    Frames offered are counted from ``seq``: the camera numbers every decoded frame,
    so the span of seq in the window is what it offered, and what did not arrive
    was skipped (over the camera's fps cap) or dropped. ``target_fps`` is what should
    reach detection: the camera's rate, or its cap.
    """
    target = target_fps or offered_fps
    if not msgs:
        empty = {"processed_fps": 0.0, "processed": 0, "offered": 0, "dropped": 0, "processed_ratio": 0.0}
        return {"offered_fps": offered_fps, "target_fps": target, **empty, "target_ratio": 0.0,
                "latency_ms": latency_summary([]), "growth": None}  # fmt: skip
    offered = msgs[-1].seq - msgs[0].seq + 1
    processed = len(msgs)
    return {
        "offered_fps": offered_fps,
        "target_fps": target,
        "measured_offered_fps": round(offered / duration_s, 2),
        "processed_fps": round(processed / duration_s, 2),
        "offered": offered,
        "processed": processed,
        "dropped": offered - processed,
        "processed_ratio": round(processed / offered, 4),
        "target_ratio": round(processed / duration_s / target, 4),
        "latency_ms": latency_summary([m.total_ms for m in msgs]),
        "growth": growth(msgs),
    }


def total_report(
    per_camera: dict[str, list[Received]],
    targets: dict[str, tuple[float, float]],
    duration_s: float,
    model_ceiling_fps: float | None,
) -> dict[str, object]:
    """Totals over every camera, with fairness and the ratio to the model-only ceiling.

    ``targets``: each camera's (rate, target), as for ``camera_report``.
    """
    everything = sorted((m for msgs in per_camera.values() for m in msgs), key=lambda m: m.t_recv)
    processed_fps = len(everything) / duration_s
    target = sum(t for _, t in targets.values())
    # Fair share: each camera's processed rate over what it would get if every camera got the
    # same fraction of its target.
    fraction = processed_fps / max(target, 1e-9)
    shares = [len(per_camera.get(c, [])) / duration_s / (t * fraction) for c, (_, t) in targets.items()
              if t and fraction]  # fmt: skip
    offered = sum(msgs[-1].seq - msgs[0].seq + 1 for msgs in per_camera.values() if msgs)
    return {
        "cameras": len(per_camera),
        "offered_fps": round(sum(r for r, _ in targets.values()), 2),
        "target_fps": round(target, 2),
        "processed_fps": round(processed_fps, 2),
        "processed_ratio": round(len(everything) / offered, 4) if offered else 0.0,
        "target_ratio": round(processed_fps / target, 4) if target else 0.0,
        "dropped": offered - len(everything),
        "latency_ms": latency_summary([m.total_ms for m in everything]),
        "growth": growth(everything),
        "min_fair_share": round(min(shares), 3) if fraction and shares else None,
        "ceiling_ratio": round(processed_fps / model_ceiling_fps, 3) if model_ceiling_fps else None,
    }


def timeline(
    per_camera: dict[str, list[Received]], t_start: float, duration_s: float
) -> list[dict[str, float]]:
    """Per second of the run: processed frames and latency p50/max over every camera."""
    everything = [m for msgs in per_camera.values() for m in msgs]
    rows = []
    for second in range(int(duration_s)):
        lo, hi = t_start + second, t_start + second + 1
        lat = [m.total_ms for m in everything if lo <= m.t_recv < hi]
        rows.append({
            "t": second,
            "fps": len(lat),
            "latency_p50_ms": round(float(np.median(lat)), 2) if lat else 0.0,
            "latency_max_ms": round(max(lat), 2) if lat else 0.0,
        })  # fmt: skip
    return rows
