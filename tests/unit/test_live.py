"""The live view's pure parts: scaling and drawing a picture, and the hub's who-gets-drawn logic."""

from __future__ import annotations

import threading
import time

import av
import cv2
import numpy as np
import pytest
import supervision as sv

from streamd.config.daemon import PreviewConfig
from streamd.live.hub import LiveView, TooManyViewersError
from streamd.live.render import Scene, draw, encode_jpeg, picture_at
from streamd.types import FrameResult, Timings


def frame(width: int = 640, height: int = 480) -> av.VideoFrame:
    pixels = np.full((height, width, 3), 90, np.uint8)
    return av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="yuv420p")


def result(seq: int, picture: av.VideoFrame | None = None) -> FrameResult:
    detections = sv.Detections(
        xyxy=np.array([[100.0, 100.0, 300.0, 400.0]]),
        confidence=np.array([0.9]),
        class_id=np.array([0]),
        tracker_id=np.array([7]),
        data={"class_name": np.array(["person"])},
    )
    picture = picture or frame()
    return FrameResult("cam", seq, 0.0, picture.width, picture.height, detections,
                       Timings(0, 0, 0, 0, 0), 0.0, picture=picture)  # fmt: skip


def test_pictures_are_scaled_down_to_max_width_keeping_their_shape_and_never_up():
    assert picture_at(frame(1920, 1080), 960).shape == (540, 960, 3)
    assert picture_at(frame(640, 480), 960).shape == (480, 640, 3)


def test_boxes_are_drawn_at_the_scaled_place_and_lines_in_amber():
    image = picture_at(frame(640, 480), 320)  # half size: the box lands at 50..150 x 50..200
    scene = Scene(lines={"door": {"points": [[0.9, 0.1], [0.9, 0.9]], "in": 3, "out": 1}},
                  zones={"lobby": {"polygon": [[0.0, 0.8], [0.3, 0.8], [0.3, 1.0]], "occupancy": 2}},
                  trails={7: [(0.2, 0.5), (0.3, 0.6)]})  # fmt: skip
    drawn = draw(image.copy(), result(1), scene)
    changed = np.any(drawn != image, axis=2)
    assert changed[50:200, 50].any() and changed[50, 50:150].any()  # the box's edges
    assert not changed[120, 100]  # inside the box, away from its label: untouched
    amber = np.all(np.abs(drawn.astype(int) - [0, 200, 255]) < 40, axis=2)
    assert amber[30:210, 286:290].sum() > 100  # the line at x = 0.9 * 320
    jpeg = encode_jpeg(drawn, 70)
    assert jpeg[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)


class Source:
    """What the daemon hands the live view: each camera's newest result."""

    def __init__(self) -> None:
        self.results: dict[str, FrameResult] = {}

    def __call__(self, camera: str) -> tuple[FrameResult | None, Scene]:
        return self.results.get(camera), Scene()


def test_only_watched_cameras_are_drawn_once_per_new_result_and_viewers_share_the_bytes():
    source = Source()
    source.results = {"a": result(1), "b": result(1)}
    live = LiveView(source, PreviewConfig(fps=30, max_width=320))
    live.start()
    try:
        time.sleep(0.2)
        assert live.stats.pictures == 0  # nobody watches: nothing is drawn
        first = live.latest("a")
        again = live.latest("a")
        assert first is not None and again is first  # the same result: the same bytes, drawn once
        time.sleep(0.2)
        assert live.stats.pictures == 1  # b was never asked for
        source.results["a"] = result(2)
        assert live.latest("a") is not first
        assert live.stats.pictures == 2
    finally:
        live.stop()
        assert live.join(2)


def test_a_stream_ends_when_its_viewer_goes_and_the_cap_holds():
    source = Source()
    source.results = {"a": result(1)}
    live = LiveView(source, PreviewConfig(fps=30, max_width=320, max_viewers=1))
    live.start()
    gone = threading.Event()
    sent: list[bytes] = []
    viewer = threading.Thread(target=live.stream, args=("a", sent.append, lambda: not gone.is_set()))
    viewer.start()
    try:
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sent and sent[0].startswith(b"--streamd-frame\r\nContent-Type: image/jpeg")
        assert live.viewers("a") == 1
        with pytest.raises(TooManyViewersError):  # the cap: a second viewer is refused at once
            live.stream("a", sent.append, lambda: True)
        gone.set()
        viewer.join(2)
        assert not viewer.is_alive() and live.viewers("a") == 0
    finally:
        gone.set()
        live.stop()
        assert live.join(2)
