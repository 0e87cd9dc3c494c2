"""The daemon run as a user runs it, with what the issue saw break: a bad camera, a bad model, a shutdown."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import onnx
import orjson
import pytest
import yaml

from streamd.client import Subscriber
from tests.helpers import MODEL, REPO, VIDEO, Daemon, collect, free_port, write_config

pytestmark = pytest.mark.e2e


def streamd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamd", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)  # fmt: skip


def test_a_camera_with_an_impossible_port_is_reported_and_every_other_camera_runs(tmp_path):
    port = free_port()
    cameras = {
        "good": {"url": str(VIDEO)},
        "bad": {"url": "rtsp://user:Pw0rd%23@127.0.0.1:99999/x"},
        "typo": {"url": str(VIDEO), "fpz": 5},
    }
    config = write_config(tmp_path, cameras, port)
    check = streamd("check-config", "--config", str(config))
    assert check.returncode == 1
    assert "bad.yaml: url: the port must be a number from 1 to 65535" in check.stderr
    assert "typo.yaml: fpz: unknown key" in check.stderr

    daemon = Daemon(config, stats_interval=0.5)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    try:
        got = collect(sub, 30, until=lambda got: len(got) >= 20)
        assert {m.camera for m in got} == {"good"}
        time.sleep(1.5)  # a few periodic status logs: they used to crash the daemon
        code, body = daemon.get("/v1/cameras")
        assert code == 200, body[:300]
        cameras_status = {c["id"]: c for c in orjson.loads(body)["cameras"]}
        assert cameras_status["good"]["state"] == "streaming"
        assert (
            cameras_status["bad"]["state"] == "invalid"
            and "port must be" in cameras_status["bad"]["last_error"]
        )
        assert cameras_status["typo"]["state"] == "invalid"
        health = daemon.get_json("/healthz")
        assert health["status"] == "degraded"
        assert any("bad.yaml: url: the port must be" in p for p in health["problems"])
        assert daemon.proc.poll() is None
    finally:
        code, _ = daemon.stop()
        sub.close()
    assert code == 0
    log = daemon.log_path.read_text()
    assert "Pw0rd" not in log and "Traceback" not in log
    assert any(e.get("event") == "camera file invalid; camera not running" for e in daemon.logs())


def dynamic_input_model(path, tmp_path):
    """The shared YOLOX with a dynamic height and width (its graph derives every shape from its input)."""
    model = onnx.load(str(MODEL))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    out = model.graph.output[0].type.tensor_type.shape.dim
    out[1].dim_param = "anchors"
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def test_a_model_that_cannot_run_fails_check_config_and_start_naming_the_key(tmp_path):
    model_path = tmp_path / "dynamic.onnx"
    dynamic_input_model(model_path, tmp_path)
    model = {"path": str(model_path), "family": "yolox", "input_size": [300, 300]}  # not a multiple of 32
    config = write_config(tmp_path, {"door": {"url": str(VIDEO)}}, free_port(), model=model)
    for command in ("check-config", "run"):
        done = streamd(command, "--config", str(config))
        assert done.returncode == 1, (command, done.stderr[-2000:])
        assert "streamd.yaml: models.default:" in done.stderr
        assert "does not run on a 300x300 input" in done.stderr and "check input_size" in done.stderr
    good = yaml.safe_load(config.read_text())
    good["models"]["default"]["input_size"] = [416, 416]
    config.write_text(yaml.safe_dump(good))
    assert streamd("check-config", "--config", str(config)).returncode == 0  # the same model runs at 416


def test_shutdown_keeps_every_at_least_once_result_of_the_last_moments(tmp_path):
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every result stays in the outbox
    sinks = {"hook": {"type": "webhook", "url": dead, "delivery": "at_least_once",
                      "retry": {"initial_s": 30, "max_s": 30}}}  # fmt: skip
    # Replayed as fast as the workers go: a batch is always in flight when SIGTERM comes.
    camera = {"url": str(VIDEO), "sinks": ["hook"], "source": {"realtime": False}}
    config = write_config(tmp_path, {"a": camera}, port, sinks=sinks)
    daemon = Daemon(config)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    try:
        before = collect(sub, 30, until=lambda got: len(got) >= 20)
        daemon.proc.send_signal(signal.SIGTERM)
        published = before + collect(sub, 5)  # everything up to the last result
    finally:
        code, _ = daemon.stop()
        sub.close()
    assert code == 0
    rows = (
        sqlite3.connect(str(tmp_path / "state" / "outbox" / "hook.sqlite"))
        .execute("SELECT payload FROM outbox")
        .fetchall()
    )
    in_outbox = {orjson.loads(p)["seq"] for (p,) in rows}
    seen = {m.seq for m in published}
    assert len(seen) >= 20
    assert seen <= in_outbox  # every result published, the last ones included, is in the outbox
    (stopped,) = [e for e in daemon.logs() if e.get("event") == "streamd stopped"]
    hook = stopped["sinks"]["hook"]
    assert hook["dropped"] == 0 and hook["delivered"] == 0
    # Every frame processed went into the outbox: none was lost on the way out, counted or not.
    assert len(rows) == stopped["processed"]["a"] == hook["accepted"]
    outbox_dir = tmp_path / "state" / "outbox"
    assert oct(outbox_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((outbox_dir / "hook.sqlite").stat().st_mode & 0o777) == "0o600"


def test_no_password_reaches_any_output_of_a_running_daemon(tmp_path):
    port = free_port()
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text("Wh00kS3cret\n")
    sinks = {"hook": {"type": "webhook", "url": f"http://bot:Hk9%2Fpw@127.0.0.1:{free_port()}/hook?token=T0kenX",
                      "secret_file": str(secret_file), "retry": {"initial_s": 0.2, "max_s": 0.5}}}  # fmt: skip
    cameras = {
        # FFmpeg fails to connect to these; its errors must not carry the passwords.
        "refused": {
            "url": f"rtsp://admin:Fm3@9:x%23y@127.0.0.1:{free_port()}/h264",
            "source": {"reconnect": {"initial_s": 0.2, "max_s": 0.5}},
        },
        "ok": {"url": str(VIDEO), "sinks": ["hook"]},
    }
    config = write_config(tmp_path, cameras, port, sinks=sinks)
    check = streamd("check-config", "--config", str(config))
    daemon = Daemon(config, stats_interval=0.5)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    try:
        collect(sub, 30, until=lambda got: len(got) >= 20)
        time.sleep(1.5)
        outputs = [daemon.get(path)[1].decode() for path in ("/v1/cameras", "/healthz", "/metrics")]
    finally:
        daemon.stop()
        sub.close()
    everything = "\n".join([check.stdout, check.stderr, daemon.log_path.read_text(), *outputs])
    assert "refused" in outputs[0] and "connection refused" in outputs[0]  # the camera's error is shown
    assert "rtsp://admin:***@127.0.0.1" in everything
    for secret in ("Fm3@9", "9:x%23y", "Hk9", "T0kenX", "Wh00kS3cret"):
        assert secret not in everything, secret
