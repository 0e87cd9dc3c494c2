"""Keyframe-only decoding: the keyframe rate of a stream, and when ``auto`` decodes only keyframes."""

from __future__ import annotations

import pytest

from streamd.config import load_config
from streamd.sources.pyav import KeyframeRate, decode_keyframes_only
from tests.unit.test_config import write


def test_the_keyframe_rate_is_the_median_interval_and_restarts_when_the_clock_goes_back():
    rate = KeyframeRate()
    assert rate.rate() is None
    for t in (0.0, 1.0, 2.0, 3.5, 4.5):  # one late keyframe does not move the median
        rate.observe(t)
    assert rate.rate() == pytest.approx(1.0)
    rate.observe(0.2)  # a looped file or a new session: what came before does not count
    assert rate.rate() is None
    rate.observe(2.2)
    assert rate.rate() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("mode", "cap", "keyframe_rate", "expected"),
    [
        ("auto", 1.0, 1.0, True),  # a 1 fps cap on a 1 s GOP: keyframes are enough
        ("auto", 1.0, 0.99, True),  # measured from arrival times, within 2%
        ("auto", 1.0, 0.5, False),  # a 2 s GOP cannot feed 1 fps
        ("auto", None, 1.0, False),  # no cap: every frame is wanted
        ("auto", 0.2, None, False),  # the rate is not known yet: decode everything meanwhile
        ("keyframes", None, None, True),
        ("all", 0.2, 1.0, False),
    ],
)
def test_auto_decodes_only_keyframes_when_the_cap_is_within_the_keyframe_rate(
    mode, cap, keyframe_rate, expected
):
    assert decode_keyframes_only(mode, cap, keyframe_rate) is expected


def test_keyframe_only_decoding_with_a_gstreamer_pipeline_is_an_error_naming_the_key(tmp_path):
    pipeline = "rtspsrc location={url} ! rtph264depay ! avdec_h264 ! videoconvert ! appsink name=streamd"
    camera = {"url": "rtsp://h/x", "source": {"pipeline": pipeline, "decode": "keyframes"}}
    config = load_config(write(tmp_path, cameras={"gate": camera}))
    problems = config.problems()
    assert any("gate.yaml: source:" in p and "decode: keyframes" in p for p in problems), problems
    bad = load_config(
        write(tmp_path / "bad", cameras={"gate": {"url": "rtsp://h/x", "source": {"decode": "k"}}})
    )
    assert any("gate.yaml: source.decode:" in p and "keyframes" in p for p in bad.problems()), bad.problems()
