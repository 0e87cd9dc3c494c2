"""Event snapshots: encoded off the caller, skipped (and counted) when the queue is full, capped on disk."""

from __future__ import annotations

import os

import av
import cv2
import numpy as np

from streamd.analytics.snapshots import SnapshotStore
from streamd.config.analytics import SnapshotConfig
from tests.helpers import wait_for


def picture() -> av.VideoFrame:
    rng = np.random.default_rng(1)
    return av.VideoFrame.from_ndarray(rng.integers(0, 255, (480, 640, 3), np.uint8), format="bgr24")


def test_snapshots_are_written_private_and_served_only_from_their_folder(tmp_path):
    store = SnapshotStore(tmp_path / "snapshots", max_mb=10, queue_size=4)
    store.start()
    try:
        refs = store.request("door", "door-1-2-3", picture(), (100.0, 50.0, 200.0, 300.0), SnapshotConfig())
        assert refs == {"object": "/v1/cameras/door/snapshots/door-1-2-3-object.jpg",
                        "frame": "/v1/cameras/door/snapshots/door-1-2-3-frame.jpg"}  # fmt: skip
        assert wait_for(lambda: store.stats.written == 2, 5)
    finally:
        store.stop()
        store.join(5)
    obj = cv2.imread(str(store.path("door", "door-1-2-3-object.jpg")))
    frame = cv2.imread(str(store.path("door", "door-1-2-3-frame.jpg")))
    assert frame.shape == (480, 640, 3)
    assert obj.shape == (300 + 63, 100 + 2 * 25, 3)  # the box and a 25% margin, clipped at the top edge
    assert oct(os.stat(tmp_path / "snapshots" / "door").st_mode & 0o777) == "0o700"
    assert oct(os.stat(store.path("door", "door-1-2-3-object.jpg")).st_mode & 0o777) == "0o600"
    for name in ("../x.jpg", ".hidden.jpg", "door-1-2-3-object.png", "a/b.jpg"):
        assert store.path("door", name) is None
    assert store.path("../etc", "passwd.jpg") is None


def test_a_full_queue_skips_and_counts_instead_of_waiting():
    store = SnapshotStore(__import__("pathlib").Path("/nonexistent"), max_mb=1, queue_size=2)  # never started
    pic = picture()
    results = [
        store.request("door", f"e{i}", pic, (0.0, 0.0, 10.0, 10.0), SnapshotConfig()) for i in range(5)
    ]
    assert [r is not None for r in results] == [True, True, False, False, False]
    assert store.stats.skipped == 3


def test_the_oldest_snapshots_go_first_to_stay_under_max_mb(tmp_path):
    store = SnapshotStore(tmp_path, max_mb=0.8, queue_size=100)
    store.start()
    try:
        config = SnapshotConfig(object=False)
        for i in range(12):  # noise pictures: ~230 KB each as JPEG
            assert store.request("door", f"e{i:02d}", picture(), None, config) is not None
        assert wait_for(lambda: store.stats.written == 12, 20)
    finally:
        store.stop()
        store.join(5)
    kept = sorted(p.name for p in (tmp_path / "door").glob("*.jpg"))
    assert store.stats.deleted > 0 and kept[-1] == "e11-frame.jpg" and "e00-frame.jpg" not in kept
    on_disk = sum(p.stat().st_size for p in (tmp_path / "door").glob("*.jpg"))
    assert store.stats.bytes == on_disk <= 0.8 * 1024 * 1024
    assert len(kept) >= 2
