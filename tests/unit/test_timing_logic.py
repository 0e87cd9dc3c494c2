"""Backoff, the fps cap and box smoothing: pure logic driven by explicit times."""

from __future__ import annotations

import math
import random

import numpy as np

from streamd.backoff import Backoff
from streamd.smoothing import BoxSmoother
from streamd.sources.camera import FpsCap


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    backoff = Backoff(0.5, 8.0, 2.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 0.5


def test_fps_cap_thins_a_25_fps_stream_to_10():
    cap = FpsCap(10)
    admitted = sum(cap.admit(i / 25) for i in range(250))  # 10 s
    assert 98 <= admitted <= 102


def test_fps_cap_at_the_camera_rate_keeps_every_jittered_frame():
    cap = FpsCap(10)
    rng = random.Random(3)
    times = [i / 10 + rng.uniform(-0.01, 0.01) for i in range(100)]
    assert all(cap.admit(t) for t in times)


def test_no_fps_cap_admits_everything():
    cap = FpsCap(None)
    assert all(cap.admit(i / 100) for i in range(100))


def test_smoother_moves_63_percent_in_one_time_constant():
    smoother = BoxSmoother(time_constant_s=0.2, forget_after_s=1.0)
    ids = np.array([7])
    first = smoother.update(ids, np.array([[0, 0, 10, 10]], np.float32), t=0.0)
    np.testing.assert_allclose(first, [[0, 0, 10, 10]])
    moved = smoother.update(ids, np.array([[100, 0, 110, 10]], np.float32), t=0.2)
    expected = 100 * (1 - math.exp(-1))
    np.testing.assert_allclose(moved[0, 0], expected, rtol=1e-5)


def test_smoother_is_the_same_at_any_frame_rate():
    target = np.array([[100, 100, 200, 200]], np.float32)
    results = []
    for fps in (5, 30):
        smoother = BoxSmoother(0.3, 2.0)
        smoother.update(np.array([1]), np.zeros((1, 4), np.float32), t=0.0)
        out = None
        for i in range(1, fps + 1):  # one second
            out = smoother.update(np.array([1]), target, t=i / fps)
        results.append(out)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


def test_smoother_tracks_ids_independently_and_forgets_old_ones():
    smoother = BoxSmoother(0.1, forget_after_s=0.5)
    smoother.update(np.array([1, 2]), np.array([[0, 0, 1, 1], [50, 50, 60, 60]], np.float32), t=0.0)
    out = smoother.update(np.array([2]), np.array([[50, 50, 60, 60]], np.float32), t=0.1)
    np.testing.assert_allclose(out, [[50, 50, 60, 60]])
    # Track 1 unseen for longer than forget_after_s starts afresh at its new box.
    fresh = smoother.update(np.array([1]), np.array([[300, 300, 310, 310]], np.float32), t=1.0)
    np.testing.assert_allclose(fresh, [[300, 300, 310, 310]])
