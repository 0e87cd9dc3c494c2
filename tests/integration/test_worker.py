"""The inference worker with real sessions, in both its modes: serial (CPU) and pipelined (the GPU default)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from streamd.config import CameraConfig, ModelConfig
from streamd.detect import Detector
from streamd.route import CameraRoute
from streamd.slot import FrameBoard, Slot
from streamd.sources import CameraStats
from streamd.types import Frame, FrameResult
from streamd.worker import InferenceWorker
from tests.helpers import wait_for
from tests.integration.test_detector import build_ultralytics_model

MODES = ["off", "on"]  # ModelConfig.pipeline


class Rig:
    """A worker on a real session with cameras a, b, c and what it published."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.board: FrameBoard[Frame] = FrameBoard()
        self.published: list[FrameResult] = []
        self.worker = InferenceWorker(detector, self.board, self.published.append)
        self.slots: dict[str, Slot[Frame]] = {}
        self.stats: dict[str, CameraStats] = {}
        for cid in ("a", "b", "c"):
            camera = CameraConfig(
                id=cid, url="rtsp://127.0.0.1/x", tracker={"enabled": False}, min_confidence=0.5
            )
            self.stats[cid] = CameraStats()
            self.slots[cid] = self.board.add(cid, lambda: None)
            self.slots[cid].set_live(True)  # streaming, as a connected camera's slot is
            self.worker.add_camera(CameraRoute(camera, self.stats[cid], class_ids=None))
        self.seq = 0

    def put(self, cid: str, picture: av.VideoFrame | None = None) -> None:
        now = time.monotonic()
        picture = picture or av.VideoFrame.from_ndarray(np.zeros((64, 128, 3), np.uint8), format="bgr24")
        self.slots[cid].put(Frame(cid, self.seq, time.time(), now, 0.001, now, picture))
        self.seq += 1

    def feed_until(self, done, cameras: dict[str, av.VideoFrame | None], seconds: float = 10.0) -> bool:
        """Offer a frame of each camera every 50 ms until ``done()`` (at most ``seconds``)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if done():
                return True
            for cid, picture in cameras.items():
                self.put(cid, picture)
            time.sleep(0.05)
        return bool(done())

    def published_by(self, cid: str) -> list[FrameResult]:
        return [r for r in self.published if r.camera == cid]


@pytest.fixture(params=MODES, ids=lambda m: f"pipeline-{m}")
def rig(request, tmp_path) -> Iterator[Rig]:
    path = tmp_path / "custom.onnx"
    build_ultralytics_model(path)
    detector = Detector.from_config(
        "custom",
        ModelConfig(path=path, family="yolov8", max_batch=8, batch_wait_s=0.2, pipeline=request.param),
    )
    assert detector.pipeline is (request.param == "on")
    rig = Rig(detector)
    rig.worker.start()
    try:
        yield rig
    finally:
        rig.worker.stop()
        assert rig.worker.join(5)


def test_worker_infers_the_newest_frames_of_several_cameras_in_one_batch(rig):
    shapes = []
    real_run = rig.detector._session.run
    rig.detector._session.run = lambda *a, **k: shapes.append(a[1]["images"].shape[0]) or real_run(*a, **k)
    for cid in ("a", "b", "c"):
        rig.put(cid)
        time.sleep(0.02)  # cameras arrive a little apart; batch_wait_s gathers them
    assert wait_for(lambda: len(rig.published) >= 3, 5)
    assert shapes == [3]
    assert sorted(r.camera for r in rig.published) == ["a", "b", "c"]
    assert all(r.detections.tracker_id is None and len(r.detections) == 1 for r in rig.published)


def test_each_cameras_frames_are_published_in_order(rig):
    assert rig.feed_until(lambda: rig.stats["a"].processed >= 5 and rig.stats["b"].processed >= 5,
                          {"a": None, "b": None})  # fmt: skip
    for cid in ("a", "b"):
        seqs = [r.seq for r in rig.published_by(cid)]
        assert seqs == sorted(seqs)


def test_a_frame_that_cannot_be_prepared_fails_only_its_camera(rig):
    real_place = rig.detector.place

    def place(image, index, input_hw=None):
        if image.width == 66:  # camera b's pictures are broken
            raise ValueError("odd picture")
        return real_place(image, index, input_hw)

    rig.detector.place = place
    broken = av.VideoFrame.from_ndarray(np.zeros((64, 66, 3), np.uint8), format="bgr24")
    assert rig.feed_until(lambda: rig.stats["a"].processed >= 3 and rig.stats["b"].errors >= 3,
                          {"a": None, "b": broken})  # fmt: skip
    assert rig.stats["b"].processed == 0
    assert rig.stats["b"].processing_error == "preprocessing: ValueError: odd picture"
    assert rig.stats["a"].processing_error is None and rig.stats["a"].errors == 0
    assert rig.worker.components[-1].stuck(time.monotonic(), 1.0) is None  # the worker itself is fine
    rig.put("b")  # a good picture again: the camera recovers
    assert wait_for(lambda: rig.stats["b"].processed == 1, 5)
    assert rig.stats["b"].processing_error is None


def test_a_model_that_fails_on_every_frame_is_not_progress_and_recovers(rig):
    real_infer = rig.detector.infer
    failing = [True]

    def infer(prepared):
        if failing[0]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_infer(prepared)

    rig.detector.infer = infer
    infer_loop = rig.worker.components[-1]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # frames keep coming, every batch fails
        rig.put("a")
        time.sleep(0.05)
    assert rig.worker.errors >= 5
    assert rig.worker.last_error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert rig.published == []
    assert infer_loop.stuck(time.monotonic(), 1.0) is not None  # no progress: the watchdog would act
    failing[0] = False
    rig.put("a")
    assert wait_for(lambda: len(rig.published) >= 1, 5)
    assert wait_for(lambda: infer_loop.stuck(time.monotonic(), 1.0) is None, 5)
    assert rig.worker.last_error is None


def test_a_failing_model_stays_stuck_while_a_slow_camera_leaves_it_idle(rig):
    rig.detector.infer = lambda prepared: (_ for _ in ()).throw(RuntimeError("CUDA error: unspecified"))
    infer_loop = rig.worker.components[-1]
    for _ in range(4):  # a 2.5 fps camera: the loop waits idle (0.25 s) between its frames
        rig.put("a")
        time.sleep(0.4)
    assert rig.worker.errors >= 3
    assert infer_loop.stuck(time.monotonic(), 1.0) is not None


def test_an_exception_in_the_loop_restarts_it_and_frames_flow_again(rig):
    real_take = rig.board.take
    calls = [0]

    def take(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("a bug in the board")
        return real_take(*args, **kwargs)

    rig.board.take = take
    assert wait_for(lambda: calls[0] >= 3, 10)
    component = rig.worker.components[0]
    assert component.stats.failures == 1 and component.stats.restarts == 1
    rig.put("a")
    assert wait_for(lambda: len(rig.published) >= 1, 5)
