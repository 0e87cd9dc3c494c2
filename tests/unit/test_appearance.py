"""Colour signatures read from decoded pictures, and the tracker following them through a swap."""

from __future__ import annotations

import av
import numpy as np
import supervision as sv

from streamd import appearance
from streamd.config import CameraConfig
from streamd.track import CameraTracker

RED, BLUE, GREY = (40, 40, 200), (200, 60, 30), (128, 128, 128)  # BGR


def picture(boxes: list[tuple[int, tuple[int, int, int]]], fmt: str = "yuv420p") -> av.VideoFrame:
    """A grey 640x360 picture with a coloured 60x120 box at each (x, colour)."""
    bgr = np.full((360, 640, 3), GREY, np.uint8)
    for x, colour in boxes:
        bgr[100:220, x : x + 60] = colour
    return av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=fmt)


def xyxy(*xs: int) -> np.ndarray:
    return np.array([[x, 100, x + 60, 220] for x in xs], np.float64)


def test_the_same_colours_are_alike_and_other_colours_are_not():
    frame = picture([(50, RED), (200, BLUE), (350, RED)])
    looks = appearance.signatures(frame, xyxy(50, 200, 350))
    assert looks is not None
    alike = appearance.similarity(looks, looks)
    assert alike[0, 2] > 0.95 and np.allclose(np.diag(alike), 1.0, atol=1e-5)
    assert alike[0, 1] < 0.2


def test_nv12_reads_as_planar_yuv_and_other_formats_have_no_signature():
    boxes = [(50, RED), (200, BLUE)]
    planar = appearance.signatures(picture(boxes), xyxy(50, 200))
    nv12 = appearance.signatures(picture(boxes, "nv12"), xyxy(50, 200))
    assert planar is not None and nv12 is not None
    assert np.allclose(planar, nv12)
    assert appearance.signatures(picture(boxes, "rgb24"), xyxy(50, 200)) is None


def test_a_box_too_small_or_outside_the_picture_has_an_empty_signature():
    looks = appearance.signatures(picture([(50, RED)]), np.array([[50, 100, 52, 102], [700, 400, 760, 520]]))
    assert looks is not None and not looks.any()


def follow_a_swap(appearance_on: bool) -> tuple[int, int]:
    """Red and blue stand side by side, then (frames dropped) trade places: the ids of (red, blue) before and after."""
    config = CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "rtsp://127.0.0.1/x",
            "tracker": {"appearance": appearance_on},
            "smoothing": {"enabled": False},
        }
    )
    tracker = CameraTracker(config, class_ids=None, nominal_fps=10)

    def frame(t: float, red: int, blue: int) -> dict[tuple[int, int, int], int]:
        dets = sv.Detections(xyxy=xyxy(red, blue).astype(np.float32), confidence=np.array([0.9, 0.9], np.float32),
                             class_id=np.array([0, 0]))  # fmt: skip
        out = tracker.update(dets, t, picture([(red, RED), (blue, BLUE)]))
        by_x = {round(float(b[0])): int(i) for b, i in zip(out.xyxy, out.tracker_id, strict=True)}
        return {RED: by_x.get(red, -1), BLUE: by_x.get(blue, -1)}

    for i in range(5):
        before = frame(i / 10, 100, 130)
    after = frame(0.8, 130, 100)  # 0.3 s later, each where the other was
    after = frame(0.9, 130, 100)
    assert -1 not in before.values() and -1 not in after.values()
    return before[RED], after[RED]


def test_after_a_gap_a_box_goes_to_the_track_it_looks_like_not_the_nearest():
    red_before, red_after = follow_a_swap(appearance_on=True)
    assert red_after == red_before
    red_before, red_after = follow_a_swap(appearance_on=False)  # by IoU alone, the ids swap
    assert red_after != red_before
