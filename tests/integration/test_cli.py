"""The command line as a user types it: check-config and subscribe."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import VIDEO, Daemon, free_port, write_config

REPO_CONFIG = "configs/demo/streamd.yaml"


def streamd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamd", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_check_config_accepts_the_demo_and_prints_one_line_per_camera():
    done = streamd("check-config", "--config", REPO_CONFIG)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("ok, 1 camera(s), zmq tcp://127.0.0.1:5556")
    assert any(
        line.startswith("model default: yolox 416x416 (fitted to each picture), 80 classes") for line in lines
    )
    assert any(line.startswith("pedestrians: file ") for line in lines)


def test_check_config_accepts_the_example_configuration():
    done = streamd("check-config", "--config", "configs/streamd.yaml")
    assert done.returncode == 0, done.stderr
    assert "entrance: rtsp rtsp://viewer:***@" in done.stdout  # password never printed
    assert "sink broker: mqtt 127.0.0.1:1883 qos=1, at_least_once, cameras: entrance" in done.stdout
    assert (
        "sink alerts: webhook https://hooks.example.com/streamd, at_most_once, cameras: entrance"
        in done.stdout
    )
    assert "s3cret" not in done.stdout + done.stderr


def test_check_config_exits_1_listing_every_problem(tmp_path):
    config = write_config(
        tmp_path,
        {
            "door": {"url": "rtsp://127.0.0.1/x", "fps": -1, "colour": "red"},
            "yard": {"url": "rtsp://127.0.0.1/y", "classes": ["person", "unicorn"]},
        },
        free_port(),
    )
    done = streamd("check-config", "--config", str(config))
    assert done.returncode == 1
    err = done.stderr
    assert "configuration is invalid (3 problems)" in err
    assert f"{tmp_path / 'cameras' / 'door.yaml'}: fps: Input should be greater than 0 (got -1)" in err
    assert f"{tmp_path / 'cameras' / 'door.yaml'}: colour: unknown key" in err
    # The class filter is checked against the model, in the same run: every problem at once.
    assert "yard.yaml: classes: 'unicorn' is not a class of model 'default'" in err


def test_run_with_an_invalid_daemon_file_or_strict_and_a_bad_camera_fails_fast_with_exit_1(tmp_path):
    config = write_config(tmp_path, {"door": {"url": "rtsp://127.0.0.1/x", "model": "missing"}}, free_port())
    done = streamd("run", "--strict", "--config", str(config))
    assert done.returncode == 1
    assert "door.yaml: model: no model named 'missing'" in done.stderr
    config.write_text(config.read_text() + "stall_timeout_s: -1\n")
    done = streamd("run", "--config", str(config))
    assert done.returncode == 1
    assert "streamd.yaml: stall_timeout_s: Input should be greater than 0" in done.stderr


def test_subscribe_prints_json_lines_of_the_chosen_camera_only(tmp_path):
    port = free_port()
    paced = {"url": str(VIDEO)}
    config = write_config(tmp_path, {"door": paced, "door2": paced}, port)
    daemon = Daemon(config)
    try:
        done = streamd(
            "subscribe", "--endpoint", f"tcp://127.0.0.1:{port}", "--camera", "door", "--count", "15",
            "--timeout", "20", timeout=60,
        )  # fmt: skip
    finally:
        code, _ = daemon.stop()
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(messages) == 15
    assert {m["camera"] for m in messages} == {"door"}  # not door2, although it shares the prefix
    assert all(m["schema"] == "streamd.frame/1" for m in messages)
    assert code == 0


def test_subscribe_fails_clearly_with_no_daemon_or_a_bad_endpoint():
    port = free_port()
    done = streamd("subscribe", "--endpoint", f"tcp://127.0.0.1:{port}", "--connect-timeout", "0.5")
    assert done.returncode == 1
    assert f"nothing is listening at tcp://127.0.0.1:{port} after 0.5 s" in done.stderr
    done = streamd("subscribe", "--endpoint", "127.0.0.1:5556")
    assert done.returncode == 2
    assert "--endpoint: invalid endpoint '127.0.0.1:5556': expected tcp://HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_subscribe_times_out_while_other_cameras_keep_publishing(tmp_path):
    port = free_port()
    config = write_config(tmp_path, {"door2": {"url": str(VIDEO)}}, port)
    daemon = Daemon(config)
    try:
        # "door" shares the prefix of "door2", whose messages keep arriving: the timeout still holds.
        done = streamd("subscribe", "--endpoint", f"tcp://127.0.0.1:{port}", "--camera", "door",
                       "--connect-timeout", "30", "--timeout", "3", timeout=60)  # fmt: skip
        door2 = streamd("subscribe", "--endpoint", f"tcp://127.0.0.1:{port}", "--camera", "door2",
                        "--count", "1", "--timeout", "20")  # fmt: skip
    finally:
        daemon.stop()
    assert done.returncode == 1
    assert "no message within 3 s" in done.stderr
    assert door2.returncode == 0 and json.loads(door2.stdout)["camera"] == "door2"  # they were arriving


def test_python_dash_m_is_the_same_program():
    done = streamd("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("streamd ")
