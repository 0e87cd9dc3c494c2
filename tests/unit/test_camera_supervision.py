"""A camera thread under supervision: its own deadline (wedged or not), and restarts after a crash."""

from __future__ import annotations

import threading
import time

from streamd.config import CameraConfig
from streamd.errors import SourceError
from streamd.slot import FrameBoard
from streamd.sources import Camera
from tests.helpers import wait_for

FAST = {"open_timeout_s": 0.1, "read_timeout_s": 0.1, "reconnect": {"initial_s": 0.05, "max_s": 0.1}}


def camera(opener, source: dict = FAST) -> Camera:
    config = CameraConfig.model_validate({"id": "door", "url": "rtsp://127.0.0.1:9/x", "source": source})
    return Camera(config, FrameBoard().add("door", lambda: None), opener=opener)


def test_a_thread_stuck_past_its_open_and_read_timeouts_is_wedged():
    release = threading.Event()

    def hangs(_config):  # an open that ignores its timeout, as a driver stuck in a call would
        release.wait(10)
        raise SourceError("gave up")

    cam = camera(hangs)
    cam.start()
    try:
        # allowed: open 0.1 s + 2 x read 0.1 s; past that it is late, and later and later
        assert wait_for(lambda: cam.component.late_by(time.monotonic()) > 0.2, 5)
    finally:
        release.set()
        cam.stop()
        assert cam.join(5)
    assert cam.component.stuck(time.monotonic(), 0.0) is None  # stopped threads are never wedged


def test_a_camera_that_keeps_failing_and_retrying_is_not_wedged():
    attempts = []

    def refuses(_config):
        attempts.append(time.monotonic())
        raise SourceError("connection refused")

    # Waits between retries (0.6 s) longer than an open may take (0.1 + 2 x 0.1 s): the
    # thread promises to be back after each wait, so it is never late.
    cam = camera(refuses, {**FAST, "reconnect": {"initial_s": 0.6, "max_s": 0.6, "multiplier": 1.0}})
    cam.start()
    try:
        deadline = time.monotonic() + 2.0
        worst = 0.0
        while time.monotonic() < deadline:
            worst = max(worst, cam.component.late_by(time.monotonic()))
            time.sleep(0.01)
        assert len(attempts) >= 3  # it really was retrying all along
        assert worst < 0.05
    finally:
        cam.stop()
        assert cam.join(5)


def test_an_unexpected_exception_in_the_camera_thread_reconnects_it():
    """The GStreamer odd-width bug of issue 9: a crash left the camera STOPPED with 0 reconnects."""
    opened = []

    class Crashing:
        fps = 10.0
        keyframes_only = False

        def pictures(self, _stop, _admit):
            raise ValueError("Unexpected numpy array shape")
            yield  # a generator

        def close(self):
            pass

    def opener(_config):
        opened.append(time.monotonic())
        return Crashing()

    cam = camera(opener)
    cam.start()
    try:
        assert wait_for(lambda: len(opened) >= 3, 5)  # restarted again and again, with backoff
        assert cam.stats.reconnects >= 2
        assert cam.stats.state.value in ("reconnecting", "connecting")
        assert cam.stats.last_error.startswith("internal error: ValueError: Unexpected numpy array shape")
        assert cam.component.stats.failures >= 2
        assert cam.component.stuck(time.monotonic(), 10.0) is None  # retrying on schedule is not wedged
    finally:
        cam.stop()
        assert cam.join(5)
    assert cam.stats.state.value == "stopped"
