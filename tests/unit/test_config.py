"""Configuration errors name the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamd.config import load_config, redact_url, source_kind
from streamd.errors import ConfigError
from tests.helpers import MODEL, VIDEO


def write(root: Path, daemon: dict | None = None, cameras: dict[str, object] | None = None) -> Path:
    (root / "cameras").mkdir(parents=True, exist_ok=True)
    daemon = daemon or {"models": {"default": {"path": str(MODEL), "family": "yolox"}}}
    (root / "streamd.yaml").write_text(yaml.safe_dump(daemon))
    for name, body in (cameras or {}).items():
        text = body if isinstance(body, str) else yaml.safe_dump(body)
        (root / "cameras" / f"{name}.yaml").write_text(text)
    return root / "streamd.yaml"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_valid_config_loads_with_defaults_and_resolves_relative_paths(tmp_path):
    video = Path("..") / Path(VIDEO).name
    (tmp_path / Path(VIDEO).name).symlink_to(VIDEO)
    config = load_config(write(tmp_path, cameras={"door": {"url": str(video), "fps": 5}}))
    door = config.cameras["door"]
    assert door.id == "door"
    assert door.url == str(tmp_path / Path(VIDEO).name)  # relative to the camera file
    assert door.fps == 5
    assert door.tracker.lost_track_s == 1.0
    assert door.source.read_timeout_s == 5.0
    assert config.daemon.zmq.endpoint == "tcp://127.0.0.1:5556"
    assert config.daemon.cameras_dir == tmp_path / "cameras"


def test_unknown_key_is_an_error_with_file_and_key_path(tmp_path):
    path = write(tmp_path, cameras={"door": {"url": "rtsp://h/s", "tracker": {"lost_tracks_s": 2}}})
    (line,) = problems(path)
    assert line == f"{tmp_path / 'cameras' / 'door.yaml'}: tracker.lost_tracks_s: unknown key"


def test_wrong_type_names_the_key_and_the_value(tmp_path):
    (line,) = problems(write(tmp_path, cameras={"door": {"url": "rtsp://h/s", "fps": "fast"}}))
    assert "door.yaml: fps:" in line
    assert "valid number" in line
    assert "'fast'" in line


def test_missing_url_and_unknown_model_are_reported_together(tmp_path):
    lines = problems(
        write(tmp_path, cameras={"a": {"model": "default"}, "b": {"url": "rtsp://h/s", "model": "big"}})
    )
    assert any(line.endswith("a.yaml: url: required key is missing") for line in lines)
    assert any("b.yaml: model: no model named 'big'" in line and "known: default" in line for line in lines)


def test_missing_model_file_and_video_file_are_errors(tmp_path):
    daemon = {"models": {"default": {"path": "nope.onnx", "family": "yolox"}}}
    lines = problems(write(tmp_path, daemon=daemon, cameras={"f": {"url": "missing.mp4"}}))
    assert any("streamd.yaml: models.default.path: no such model file" in line for line in lines)
    assert any("f.yaml: url: no such video file" in line for line in lines)


def test_invalid_yaml_reports_the_line(tmp_path):
    (line,) = problems(write(tmp_path, cameras={"door": "url: rtsp://h/s\nfps: [1,\n"}))
    assert "door.yaml: invalid YAML at line" in line


def test_daemon_file_errors_name_the_key_path(tmp_path):
    daemon = {"models": {"default": {"path": str(MODEL), "family": "yolo5"}}, "zmq": {"endpoint": "5556"}}
    lines = problems(write(tmp_path, daemon=daemon))
    assert any("streamd.yaml: models.default.family:" in line and "yolox" in line for line in lines)
    assert any("streamd.yaml: zmq.endpoint:" in line and "tcp://HOST:PORT" in line for line in lines)


def test_duplicate_camera_ids_are_rejected(tmp_path):
    lines = problems(
        write(
            tmp_path, cameras={"a": {"url": "rtsp://h/1", "id": "x"}, "b": {"url": "rtsp://h/2", "id": "x"}}
        )
    )
    assert any("id: camera id 'x' is also used by" in line for line in lines)


def test_source_kinds_and_password_redaction():
    assert source_kind("rtsp://cam/1") == "rtsp"
    assert source_kind("/dev/video0") == "v4l2"
    assert source_kind("clip.mp4") == "file"
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/s") == "rtsp://admin:***@10.0.0.5:554/s"
    assert redact_url("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"


def test_http_listen_takes_host_port_or_bracketed_ipv6_and_defaults_to_loopback(tmp_path):
    from streamd.config import split_listen  # noqa: PLC0415

    assert split_listen("127.0.0.1:9771") == ("127.0.0.1", 9771)
    assert split_listen("[::1]:9771") == ("::1", 9771)
    assert split_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert load_config(write(tmp_path)).daemon.http.listen == "127.0.0.1:9771"
    daemon = {"models": {"default": {"path": str(MODEL), "family": "yolox"}}, "http": {"listen": "9771"}}
    lines = problems(write(tmp_path / "bad", daemon))
    assert any("streamd.yaml: http.listen:" in line and "HOST:PORT" in line for line in lines)
    daemon["http"] = {"listen": None}
    assert load_config(write(tmp_path / "off", daemon)).daemon.http.listen is None


def test_a_gstreamer_pipeline_must_end_in_an_appsink_and_skips_the_file_check(tmp_path):
    good = "rtspsrc location={url} ! rtph264depay ! avdec_h264 ! videoconvert ! appsink name=streamd"
    bad = "rtspsrc location={url} ! rtph264depay ! avdec_h264 ! fakesink"
    config = load_config(write(tmp_path, cameras={"gate": {"url": "csi://0", "source": {"pipeline": good}}}))
    assert config.cameras["gate"].source.pipeline == good
    lines = problems(
        write(tmp_path / "bad", cameras={"gate": {"url": "rtsp://h/x", "source": {"pipeline": bad}}})
    )
    assert any("gate.yaml: source.pipeline:" in line and "appsink" in line for line in lines)
