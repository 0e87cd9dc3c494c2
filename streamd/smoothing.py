"""Exponential smoothing of tracked boxes, by elapsed time rather than by frame count."""

from __future__ import annotations

import numpy as np

__all__ = ["BoxSmoother"]


class BoxSmoother:
    """Smooths each track's box towards its new measurement.

    The weight of a new box is ``1 - exp(-dt / time_constant)``, so the result is the
    same at 5 fps and at 30 fps, and after a gap of dropped frames the box catches up
    instead of lagging. A track unseen for ``forget_after_s`` starts afresh.
    """

    def __init__(self, time_constant_s: float, forget_after_s: float) -> None:
        self._tau = time_constant_s
        self._forget = forget_after_s
        self._ids = np.empty(0, dtype=np.int64)  # sorted
        self._boxes = np.empty((0, 4), dtype=np.float32)
        self._times = np.empty(0, dtype=np.float64)

    def update(self, track_ids: np.ndarray, boxes: np.ndarray, t: float) -> np.ndarray:
        """Smoothed boxes for ``track_ids`` observed at ``t`` (monotonic seconds)."""
        fresh = (t - self._times) <= self._forget
        ids, prev_boxes, prev_times = self._ids[fresh], self._boxes[fresh], self._times[fresh]
        pos = np.searchsorted(ids, track_ids)
        pos_clipped = np.minimum(pos, max(len(ids) - 1, 0))
        known = (
            (pos < len(ids)) & (ids[pos_clipped] == track_ids) if len(ids) else np.zeros(len(track_ids), bool)
        )
        out = boxes.astype(np.float32, copy=True)
        if known.any():
            at = pos_clipped[known]
            dt = np.maximum(t - prev_times[at], 0.0)
            alpha = (1.0 - np.exp(-dt / self._tau)).astype(np.float32)[:, None]
            out[known] = prev_boxes[at] + alpha * (boxes[known] - prev_boxes[at])
        # New state: the tracks seen now, plus the fresh ones not seen now.
        keep_old = np.ones(len(ids), bool)
        keep_old[pos_clipped[known]] = False
        all_ids = np.concatenate((ids[keep_old], track_ids.astype(np.int64)))
        order = np.argsort(all_ids, kind="stable")
        self._ids = all_ids[order]
        self._boxes = np.concatenate((prev_boxes[keep_old], out))[order]
        self._times = np.concatenate((prev_times[keep_old], np.full(len(track_ids), t)))[order]
        return out
