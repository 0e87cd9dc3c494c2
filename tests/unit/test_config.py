"""Configuration errors name the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamd.config import load_config, source_kind
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
    """Every problem: the daemon file's (raised) or the invalid camera files' (collected)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.problems
    assert config.invalid, "expected a problem"
    return config.problems()


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


def test_source_kinds():
    assert source_kind("rtsp://cam/1") == "rtsp"
    assert source_kind("/dev/video0") == "v4l2"
    assert source_kind("clip.mp4") == "file"


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


# --- bounds: hostile or broken files are refused quickly, and never echoed whole --------------


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join([*lines, "url: rtsp://127.0.0.1/x"]) + "\n"


@pytest.mark.timeout(10)  # unbounded, this grew to ~3 GB and did not finish in 60 s
def test_a_yaml_bomb_camera_file_is_refused_and_the_others_load(tmp_path):
    import time  # noqa: PLC0415

    path = write(tmp_path, cameras={"bomb": billion_laughs(), "door": {"url": "rtsp://127.0.0.1/d"}})
    started = time.monotonic()
    config = load_config(path)
    took = time.monotonic() - started
    print(f"\nYAML bomb refused in {took * 1000:.0f} ms")
    assert list(config.cameras) == ["door"]
    (line,) = config.invalid["bomb"].problems
    assert "bomb.yaml: refused: expands to more than" in line


def test_deep_nesting_and_huge_files_are_refused_naming_the_file(tmp_path):
    path = write(tmp_path, cameras={"deep": "url: " + "[" * 5000, "big": "url: " + "x" * (2 * 1024 * 1024)})
    config = load_config(path)
    assert "deep.yaml: refused: nested more than" in config.invalid["deep"].problems[0]
    assert "big.yaml: larger than 1024 KiB" in config.invalid["big"].problems[0]


def test_a_long_wrong_value_is_shortened_in_the_error(tmp_path):
    (line,) = problems(write(tmp_path, cameras={"door": {"url": "rtsp://h/s", "fps": "f" * 100_000}}))
    assert len(line) < 300
    assert "(100002 characters)" in line


# --- key paths as the user wrote them ---------------------------------------------------------


def test_errors_inside_sinks_name_the_yaml_path_not_pydantic_internals(tmp_path):
    daemon = {
        "models": {"default": {"path": str(MODEL), "family": "yolox"}},
        "sinks": {"typo": {"type": "webhook", "url": "http://127.0.0.1:9/h", "retries": 3}},
    }
    lines = problems(write(tmp_path, daemon=daemon))
    assert lines == [f"{tmp_path / 'streamd.yaml'}: sinks.typo.retries: unknown key"]
    daemon["sinks"] = {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}}
    cameras = {"door": {"url": "rtsp://h/s", "sinks": ["hook", {"name": "hook", "sendd": "all"}]}}
    lines = problems(write(tmp_path / "cam", daemon=daemon, cameras=cameras))
    assert lines == [f"{tmp_path / 'cam' / 'cameras' / 'door.yaml'}: sinks.1.sendd: unknown key"]


# --- URLs, secrets and files: what run would reject, check-config rejects ----------------------


def test_camera_urls_with_a_bad_port_host_or_scheme_are_errors_that_never_echo_the_password(tmp_path):
    cameras = {
        "port": {"url": "rtsp://user:pw@127.0.0.1:99999/x"},
        "host": {"url": "rtsp://user:pw@:554/x"},
        "scheme": {"url": "http://user:Sch3me@cam.local/video.mjpg"},
        "hash": {"url": "rtsp://admin:Fm3#9?x@10.0.0.5:554/h264"},
    }
    config = load_config(write(tmp_path, cameras=cameras))
    lines = config.problems()
    assert any("port.yaml: url: the port must be a number from 1 to 65535" in line for line in lines)
    assert any("host.yaml: url: the URL has no host name" in line for line in lines)
    assert any("scheme.yaml: url: unsupported URL scheme 'http'" in line for line in lines)
    assert any("hash.yaml: url: the user name or password holds '/', '?' or '#'" in line for line in lines)
    assert not any("pw" in line or "Sch3me" in line or "Fm3" in line for line in lines)
    ok = load_config(write(tmp_path / "ok", cameras={"a": {"url": "rtsp://admin:p@ss%23w:x@10.0.0.5:554/s"},
                                                      "b": {"url": "rtsp://10.0.0.5:554/p@th"}}))  # fmt: skip
    assert sorted(ok.cameras) == ["a", "b"]  # @ and : may stay as they are; encoded # is fine


def test_sink_secrets_ca_files_env_vars_and_hosts_are_checked_when_loading(tmp_path, monkeypatch):
    monkeypatch.delenv("STREAMD_TEST_UNSET", raising=False)
    daemon = {
        "models": {"default": {"path": str(MODEL), "family": "yolox"}},
        "sinks": {
            "nohost": {"type": "webhook", "url": "http:///hook"},
            "nosecret": {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret_file": "missing.secret"},
            "noenv": {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "STREAMD_TEST_UNSET"},
            "noca": {"type": "mqtt", "tls": {"ca": "missing-ca.crt"}},
            "nopass": {"type": "mqtt", "username": "u", "password_file": "missing.password"},
        },
    }
    lines = problems(write(tmp_path, daemon=daemon))
    joined = "\n".join(lines)
    assert "sinks.nohost.url: the URL has no host name" in joined
    assert f"sinks.nosecret.secret_file: cannot read {tmp_path / 'missing.secret'}" in joined
    assert "sinks.noenv.secret_env: environment variable STREAMD_TEST_UNSET is not set" in joined
    assert f"sinks.noca.tls.ca: cannot read {tmp_path / 'missing-ca.crt'}" in joined
    assert "sinks.nopass.password_file: cannot read" in joined
    assert len(lines) == 5


def test_an_empty_tls_section_is_an_error_not_tls_off(tmp_path):
    daemon = {"models": {"default": {"path": str(MODEL), "family": "yolox"}}}
    path = write(tmp_path, daemon=daemon)
    path.write_text(path.read_text() + "sinks:\n  broker:\n    type: mqtt\n    tls:\n")
    (line,) = problems(path)
    assert "sinks.broker: tls: is empty, which would leave TLS off" in line
    path.write_text(path.read_text().replace("    tls:\n", "    tls: {}\n"))
    assert load_config(path).daemon.sinks["broker"].tls is not None  # {}: TLS with the system's CAs


def test_state_dir_defaults_to_systemds_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "lobby"))
    assert load_config(write(tmp_path)).daemon.state_dir == tmp_path / "lobby"


def test_one_invalid_camera_file_leaves_the_others_valid(tmp_path):
    cameras = {"a": {"url": "rtsp://h/a"}, "b": "url: [unclosed\n", "c": {"url": "rtsp://h/c", "fps": -1}}
    config = load_config(write(tmp_path, cameras=cameras))
    assert sorted(config.cameras) == ["a"]
    assert sorted(config.invalid) == ["b", "c"]
    assert "b.yaml: invalid YAML" in config.invalid["b"].problems[0]


def test_camera_files_are_checked_even_when_the_daemon_file_is_invalid(tmp_path):
    daemon = {"models": {"default": {"path": str(MODEL), "family": "yolox"}}, "zmq": {"endpoint": "5556"}}
    lines = problems(write(tmp_path, daemon=daemon, cameras={"door": {"url": "rtsp://h/s", "fpss": 1}}))
    assert any("streamd.yaml: zmq.endpoint" in line for line in lines)
    assert any("door.yaml: fpss: unknown key" in line for line in lines)


# --- lines and zones --------------------------------------------------------------------------


def test_lines_and_zones_are_checked_naming_file_and_key(tmp_path):
    cameras = {
        "dot": {"url": "rtsp://h/a", "lines": {"door": {"points": [[0.5, 0.5], [0.5, 0.5]]}}},
        "two": {"url": "rtsp://h/b", "zones": {"hall": {"polygon": [[0.1, 0.1], [0.9, 0.1]]}}},
        "bowtie": {
            "url": "rtsp://h/c",
            "zones": {"hall": {"polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}},
        },
        "outside": {"url": "rtsp://h/d", "lines": {"door": {"points": [[0.5, 0.1], [1.2, 0.9]]}}},
        "shared": {
            "url": "rtsp://h/e",
            "lines": {"x": {"points": [[0, 0], [1, 1]]}},
            "zones": {"x": {"polygon": [[0, 0], [1, 0], [1, 1]]}},
        },
        "twice": "url: rtsp://h/f\nlines:\n  door: {points: [[0, 0], [1, 1]]}\n  door: {points: [[0, 1], [1, 0]]}\n",
    }
    config = load_config(write(tmp_path, cameras=cameras))
    assert config.cameras == {}
    lines = {key: " ".join(bad.problems) for key, bad in config.invalid.items()}
    assert "dot.yaml: lines.door: points: A and B are the same point" in lines["dot"]
    assert "two.yaml: zones.hall.polygon: List should have at least 3 items" in lines["two"]
    assert "bowtie.yaml: zones.hall: polygon: two of its edges cross" in lines["bowtie"]
    assert (
        "outside.yaml: lines.door.points.1.0: Input should be less than or equal to 1 (got 1.2)"
        in lines["outside"]
    )
    assert "shared.yaml: (top level): 'x' names both a line and a zone" in lines["shared"]
    assert "twice.yaml: invalid YAML at line 4" in lines["twice"] and "duplicate key 'door'" in lines["twice"]


def test_a_valid_line_and_zone_with_their_defaults(tmp_path):
    camera = {
        "url": "rtsp://h/a",
        "lines": {"door": {"points": [[0.45, 0.15], [0.45, 0.85]], "classes": ["person"]}},
        "zones": {"lobby": {"polygon": [[0.1, 0.55], [0.62, 0.5], [0.7, 0.98], [0.05, 0.98]]}},
    }
    door = load_config(write(tmp_path, cameras={"cam": camera})).cameras["cam"]
    line, zone = door.lines["door"], door.zones["lobby"]
    assert (line.anchor, line.min_hold_s, line.min_distance, line.count, line.reset) == (
        "bottom_center",
        0.3,
        0.02,
        "once",
        "never",
    )
    assert (zone.anchor, zone.enter_s, zone.exit_s, zone.loiter_s) == ("bottom_center", 0.5, 1.0, None)
