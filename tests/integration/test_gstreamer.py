"""The GStreamer source type (Jetson's hardware decoders) with a software decoder against the RTSP server."""

from __future__ import annotations

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
        assert max(m.latency_ms.total for m in messages[10:]) < 500

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


def test_a_pipeline_with_an_unknown_element_fails_at_start_naming_the_key(tmp_path):
    pipeline = "rtspsrc location={url} ! rtph264depay ! nvv4l2decoder ! nvvidconv ! appsink name=streamd"
    config = write_config(tmp_path, {"gate": {"url": "rtsp://127.0.0.1:9/x", "source": {"pipeline": pipeline}}},
                          free_port())  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "streamd", "run", "--config", str(config)],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "gate.yaml: source.pipeline:" in done.stderr and "nvv4l2decoder" in done.stderr
