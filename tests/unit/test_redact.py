"""The one redaction function: passwords of every shape, tokens, registered secrets, every output path."""

from __future__ import annotations

import io
import json

import pytest

from streamd.log import configure_logging, get_logger
from streamd.redact import redact, redact_value, register_secret, register_url_secrets

# (text, secrets that must not survive, what must survive)
TABLE = [
    ("rtsp://user:pw@127.0.0.1:99999/x", ["pw@"], "rtsp://user:***@127.0.0.1:99999/x"),
    ("rtsp://admin:p@ss@10.0.0.5/s", ["p@ss"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:a:b@10.0.0.5/s", ["a:b"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:we#ird@10.0.0.5/s", ["we#ird"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:wh?at@10.0.0.5/s", ["wh?at"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:sl/ash@10.0.0.5:554/s", ["sl/ash"], "rtsp://admin:***@10.0.0.5:554/s"),
    ("rtsp://admin:pe%40rc%2F@10.0.0.5/s", ["pe%40rc"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://admin:a@b:c#d?e/f%g@10.0.0.5/s", ["a@b", "f%g"], "rtsp://admin:***@10.0.0.5/s"),
    ("rtsp://u:p(w)'x@h/x", ["p(w)"], "rtsp://u:***@h/x"),
    ("rtsps://u:pw@[::1]:322/x", ["pw@"], "rtsps://u:***@[::1]:322/x"),
    ("https://TOKEN123@hooks.example.com/x", ["TOKEN123"], "https://***@hooks.example.com/x"),
    ("http://u:pw@cam/stream.mjpg", ["pw@"], "http://u:***@cam/stream.mjpg"),  # an unsupported scheme
    ("http://cam/live?user=admin&password=hunter2&ch=1", ["hunter2"], "user=admin&password=***&ch=1"),
    ("rtsp://cam/s?token=abc123;sig=zz99", ["abc123", "zz99"], "rtsp://cam/s?token=***;sig=***"),
    ("https://h/x?api_key=K3Y&x=1", ["K3Y"], "api_key=***&x=1"),
    ("Authorization: Bearer eyJhbGciOi.xyz", ["eyJhbGciOi"], "Authorization: Bearer ***"),
    (
        "rtspsrc location=rtsp://u:g5t@10.0.0.7/s latency=0 ! rtph264depay ! appsink",
        ["g5t"],
        "rtspsrc location=rtsp://u:***@10.0.0.7/s latency=0",
    ),
    # Messages of the libraries, as they print them
    (
        "av.error.HTTPUnauthorizedError: [Errno 825307441] Server returned 401 Unauthorized: "
        "'rtsp://admin:Fm3#9@10.0.0.5:554/h264'",
        ["Fm3#9"],
        "'rtsp://admin:***@10.0.0.5:554/h264'",
    ),
    (
        "rtspsrc0: Could not open resource for reading and writing. (rtsp://cam:Gs!t@10.1.1.1/x)",
        ["Gs!t"],
        "(rtsp://cam:***@10.1.1.1/x)",
    ),
    (
        "ConnectError: [Errno 111] Connection refused for url 'https://bot:Hx9@hooks.local/a?token=T0K'",
        ["Hx9", "T0K"],
        "https://bot:***@hooks.local/a?token=***",
    ),
]


@pytest.mark.parametrize(("text", "secrets", "expected"), TABLE)
def test_redaction_table(text, secrets, expected):
    out = redact(text)
    for secret in secrets:
        assert secret not in out, out
    assert expected in out, out


def test_text_without_secrets_is_left_alone():
    for text in ("rtsp://10.0.0.5:554/stream1", "KeyError: 'x'", "camera door is streaming at 10 fps", ""):
        assert redact(text) == text


def test_a_registered_secret_is_hidden_wherever_it_appears():
    register_secret("S3cr3t-from-file")
    register_url_secrets(["rtsp://viewer:UrLpass77@10.0.0.9/s"])
    text = "paho: bad password 'S3cr3t-from-file'; ffmpeg echoed UrLpass77 and UrLpass77"
    out = redact(text)
    assert "S3cr3t-from-file" not in out and "UrLpass77" not in out
    assert out.count("***") == 3


def test_nested_values_keys_included_are_redacted():
    value = {"url": "rtsp://u:pw1234@h/x", "list": ["token=abc"], "rtsp://k:v9v9@h": 1}
    out = json.dumps(redact_value(value))
    assert "pw1234" not in out and "abc" not in out and "v9v9" not in out


def test_every_log_line_is_redacted_including_tracebacks():
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = get_logger(camera="door")
    log.info("camera starting", url="rtsp://u:L0gPass@h/x", error=ValueError("rtsp://u:L0gPass@h/x"))
    try:
        raise RuntimeError("cannot open rtsp://u:Tr4ceback@h/x")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    configure_logging()
    assert "L0gPass" not in text and "Tr4ceback" not in text
    assert text.count("rtsp://u:***@h/x") >= 3
