"""The PyAV RTSP source against a real RTSP server: pictures come out whole, from the first one."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from streamd.config import CameraConfig
from streamd.simulate.clips import ClipSpec, make_clip
from streamd.sources.pyav import open_stream
from tests.helpers import VIDEO, RtspServer

pytestmark = pytest.mark.e2e


def read(url: str, count: int) -> list[np.ndarray]:
    """The first ``count`` pictures of a camera, in grey, as streamd decodes them."""
    stream = open_stream(CameraConfig.model_validate({"id": "cam", "url": url}))
    try:
        pictures = stream.pictures(threading.Event())
        return [p.picture.to_ndarray(format="gray") for p in itertools.islice(pictures, count)]
    finally:
        stream.close()


@pytest.mark.parametrize("slices", [1, 4])
def test_a_camera_s_pictures_are_decoded_whole_from_the_session_s_first_keyframe(tmp_path: Path, slices: int):
    # Many cameras cut each picture into slices; the RTSP demuxer hands each over as its own
    # packet. Decoded one by one they come out half grey, and so does every picture that refers
    # to them until the next keyframe. SPS/PPS only in band, as many cameras send them.
    clip = make_clip(VIDEO, tmp_path, ClipSpec(768, 576, fps=10, gop=20, seconds=4, slices=slices))
    with av.open(str(clip)) as container:
        reference = [f.to_ndarray(format="gray") for f in itertools.islice(container.decode(video=0), 20)]
    server = RtspServer(video=clip, fps=25, in_band=True).start()
    try:
        pictures = read(server.url, 15)
    finally:
        server.kill()
    # A new session starts at the clip's first keyframe: picture i is the clip's picture i.
    errors = [float(np.abs(p.astype(int) - r).mean()) for p, r in zip(pictures, reference, strict=False)]
    assert len(pictures) == 15
    assert max(errors) < 1.0, [round(e, 1) for e in errors]
