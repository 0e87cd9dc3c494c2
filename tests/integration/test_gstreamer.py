"""The GStreamer source type (Jetson's hardware decoders) with a software decoder against the RTSP server."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from streamd.client import Subscriber
from tests.helpers import REPO, Daemon, RtspServer, collect, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e

# What a Jetson runs with nvv4l2decoder ! nvvidconv in place of avdec_h264 ! videoconvert.
SOFTWARE_PIPELINE = (
    "rtspsrc location={url} latency=0 protocols=tcp ! rtph264depay ! h264parse"
    " ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! appsink name=streamd"
)


def test_gstreamer_pipeline_camera_publishes_tracked_people_and_reconnects(tmp_path):
    server = RtspServer().start()
    port = free_port()
    source = {
        "pipeline": SOFTWARE_PIPELINE,
        "read_timeout_s": 2.0,
        "reconnect": {"initial_s": 0.3, "max_s": 1.0},
    }
    config = write_config(tmp_path, {"gate": {"url": server.url, "source": source}}, port)
    check = subprocess.run([sys.executable, "-m", "streamd", "check-config", "--config", str(config)],
                           check=False, capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert f"gate: gstreamer {server.url}" in check.stdout
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon = Daemon(config)
    try:
        messages = collect(sub, 30, until=lambda got: len(got) >= 30)
        assert len(messages) >= 30, daemon.log_path.read_text()[-3000:]
        assert (messages[0].width, messages[0].height) == (768, 576)
        people = [d for m in messages for d in m.detections if d.class_name == "person"]
        assert people and any(d.track_id is not None for d in people)
        # No queue: a backlog would make every latency seconds; one moment of a busy CI machine, not.
        assert statistics.median(m.latency_ms.total for m in messages[10:]) < 500

        server.kill()
        assert wait_for(lambda: daemon.get_json("/v1/cameras")["cameras"][0]["reconnects"] >= 1, 10)
        server.start()
        restarted = time.time()
        back = collect(sub, 30, until=lambda got: sum(m.ts > restarted for m in got) >= 5)
        assert sum(m.ts > restarted for m in back) >= 5, daemon.log_path.read_text()[-3000:]
    finally:
        daemon.stop()
        sub.close()
        server.kill()


def test_a_pipeline_with_an_unknown_element_is_an_error_naming_the_key(tmp_path):
    pipeline = "rtspsrc location={url} ! rtph264depay ! nvv4l2decoder ! nvvidconv ! appsink name=streamd"
    config = write_config(tmp_path, {"gate": {"url": "rtsp://127.0.0.1:9/x", "source": {"pipeline": pipeline}}},
                          free_port())  # fmt: skip
    for command in (["check-config"], ["run", "--strict"]):
        done = subprocess.run([sys.executable, "-m", "streamd", *command, "--config", str(config)],
                              check=False, capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
        assert done.returncode == 1, command
        assert "gate.yaml: source.pipeline:" in done.stderr and "nvv4l2decoder" in done.stderr


def _fds_and_threads() -> tuple[int, int]:
    import gc  # noqa: PLC0415
    import os  # noqa: PLC0415

    gc.collect()
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))


def test_a_pipeline_that_fails_to_open_is_released_every_time():
    from streamd.config import CameraConfig  # noqa: PLC0415
    from streamd.errors import SourceError  # noqa: PLC0415
    from streamd.sources.gst import GstStream  # noqa: PLC0415

    camera = CameraConfig.model_validate({
        "id": "gate", "url": f"rtsp://127.0.0.1:{free_port()}/x",  # nothing listens
        "source": {"pipeline": SOFTWARE_PIPELINE, "open_timeout_s": 1.0},
    })  # fmt: skip
    counts = []
    for _ in range(10):
        with pytest.raises(SourceError, match="Could not open resource"):
            GstStream(camera)
        counts.append(_fds_and_threads())
    # Before: every failed open left its pipeline PLAYING: +2 descriptors and +1 thread a retry.
    assert counts[-1][0] <= counts[0][0] + 1 and counts[-1][1] <= counts[0][1] + 1, counts


def test_pictures_of_odd_sizes_come_through_whole():
    import threading  # noqa: PLC0415

    from streamd.config import CameraConfig  # noqa: PLC0415
    from streamd.errors import SourceError  # noqa: PLC0415
    from streamd.picture import to_bgr  # noqa: PLC0415
    from streamd.sources.gst import GstStream  # noqa: PLC0415

    pipeline = (
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=321,height=241 ! appsink name=streamd"
    )
    stream = GstStream(
        CameraConfig.model_validate({"id": "odd", "url": "test://", "source": {"pipeline": pipeline}})
    )
    pictures = []

    def read_all() -> None:
        for picture in stream.pictures(threading.Event()):
            pictures.append(picture.picture.load())  # copied out of GStreamer when taken

    try:
        with pytest.raises(SourceError, match="stream ended"):
            read_all()
    finally:
        stream.close()
    assert [(p.width, p.height) for p in pictures] == [(321, 241)] * 3
    bgr = to_bgr(pictures[0])
    assert bgr.shape == (241, 321, 3)
    assert bgr[:, -1].std() > 0  # the last column holds the test pattern, not padding


def test_pictures_the_cap_skips_or_nobody_takes_are_never_copied_out(monkeypatch):
    import threading  # noqa: PLC0415

    from streamd.config import CameraConfig  # noqa: PLC0415
    from streamd.errors import SourceError  # noqa: PLC0415
    from streamd.sources import gst  # noqa: PLC0415

    copies = []
    real = gst._to_picture
    monkeypatch.setattr(gst, "_to_picture", lambda sample: copies.append(1) or real(sample))
    pipeline = (
        "videotestsrc num-buffers=20 ! video/x-raw,format=I420,width=320,height=240 ! appsink name=streamd"
    )
    stream = gst.GstStream(
        CameraConfig.model_validate({"id": "cap", "url": "test://", "source": {"pipeline": pipeline}})
    )
    asked = []

    def every_fourth(t: float) -> bool:
        asked.append(t)
        return len(asked) % 4 == 1

    handed = []
    try:
        with pytest.raises(SourceError, match="stream ended"):
            handed.extend(stream.pictures(threading.Event(), every_fourth))
    finally:
        stream.close()
    assert len(asked) == 20 and len(handed) == 5
    assert sum(p.decoded for p in handed) == 17  # the 3 after the last one handed over are not reported
    assert copies == []  # nothing copied until a worker takes a picture
    taken = handed[-1].picture.load()  # the one the worker takes: copied once, whole
    assert (taken.width, taken.height) == (320, 240) and copies == [1]
