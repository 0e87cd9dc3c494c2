"""Which timeout ended an RTSP open: FFmpeg says "invalid data" for both, the time taken tells."""

from __future__ import annotations

import av
import pytest

from streamd.sources.pyav import _open_timeout


def _error(kind: type[av.FFmpegError]) -> av.FFmpegError:
    return kind(0, "x")


@pytest.mark.parametrize(
    ("elapsed_s", "open_s", "answer_s", "expected"),
    [
        (3.0, 3.0, 5.0, "not open within source.open_timeout_s (3 s)"),
        (2.0, 10.0, 2.0, "no answer within 2 s (half of source.read_timeout_s)"),
        (10.1, 10.0, 2.0, "not open within source.open_timeout_s (10 s)"),  # slow answers, each in time
        (0.1, 10.0, 2.0, None),  # a quick failure is the camera's own
    ],
)
def test_the_time_an_open_took_names_the_timeout(elapsed_s, open_s, answer_s, expected):
    assert _open_timeout(_error(av.error.InvalidDataError), elapsed_s, open_s, answer_s) == expected


def test_other_failures_are_never_called_timeouts():
    assert _open_timeout(_error(av.error.PermissionError), 3.0, 3.0, 5.0) is None
