"""The daemon with its sinks, as a user runs it: stalls, broker outages, SIGKILL and restart."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest
import yaml

from streamd.client import Subscriber
from tests.helpers import VIDEO, Daemon, collect, free_port, metric, wait_for, write_config
from tests.integration.test_sinks import Subscriber as MqttSubscriber
from tests.servers import Mosquitto, WebhookServer

pytestmark = pytest.mark.e2e


def add_sinks(config_path, sinks: dict) -> None:
    data = yaml.safe_load(config_path.read_text())
    data["sinks"] = sinks
    config_path.write_text(yaml.safe_dump(data))


def test_a_stalled_webhook_does_not_slow_any_camera_on_zeromq(tmp_path):
    hook = WebhookServer(mode="stall", stall_s=60).start()
    port = free_port()
    cameras = {cid: {"url": str(VIDEO), "sinks": ["hook"]} for cid in ("a", "b")}
    config = write_config(tmp_path, cameras, port)
    add_sinks(
        config, {"hook": {"type": "webhook", "url": hook.url, "timeout_s": 30, "delivery": "at_least_once"}}
    )
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon = Daemon(config)
    try:
        collect(sub, 30, until=lambda got: {m.camera for m in got} == {"a", "b"})
        assert wait_for(lambda: hook.received, 10)  # the first request is now stuck for a minute
        messages = collect(sub, 10.0)
        statuses = [e for e in daemon.logs() if e.get("event") == "sink status" and e.get("sink") == "hook"]
    finally:
        code, _ = daemon.stop()
        sub.close()
        hook.stop()
    last = statuses[-1]  # per-sink counters and depth, logged every stats interval
    assert last["delivered"] == 0
    assert last["accepted"] >= 150
    assert last["outbox"] >= 150
    assert last["depth"] >= 150
    assert last["dropped"] == 0
    for camera in ("a", "b"):
        count = sum(m.camera == camera for m in messages)
        assert 90 <= count <= 110, (camera, count)  # 10 s at 10 fps: unchanged
    assert len(hook.received) == 1  # one request in flight, stalled
    assert code == 0


def test_every_accepted_message_arrives_after_sigkill_and_restart(tmp_path):
    hook = WebhookServer()
    port = free_port()
    config = write_config(tmp_path, {"door": {"url": str(VIDEO), "sinks": ["hook"]}}, port)
    sinks = {"hook": {"type": "webhook", "url": hook.url, "delivery": "at_least_once",
                      "retry": {"initial_s": 0.2, "max_s": 1.0}}}  # fmt: skip
    add_sinks(config, sinks)
    outbox = tmp_path / "state" / "outbox" / "hook.sqlite"
    first = Daemon(config)
    try:
        assert wait_for(lambda: outbox.exists() and count_rows(outbox) >= 30, 30)
    finally:
        code, _ = first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    with sqlite3.connect(outbox) as db:
        accepted = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]
    accepted_ids = [m["message_id"] for m in accepted]
    assert len(accepted_ids) >= 30

    second = Daemon(config)
    try:
        time.sleep(2)  # the endpoint is still down: more piles up
        hook.start()
        assert wait_for(lambda: set(accepted_ids) <= {m["message_id"] for m in hook.messages()}, 30)
    finally:
        code, _ = second.stop()
        hook.stop()
    got = hook.messages()
    old = [m for m in got if m["message_id"] in set(accepted_ids)]
    assert [m["message_id"] for m in old][: len(accepted_ids)] == accepted_ids  # original order
    assert code == 0


def count_rows(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_mqtt_subscriber_gets_every_message_through_a_broker_restart(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    mqtt_sub = MqttSubscriber(broker.port)
    port = free_port()
    config = write_config(tmp_path / "cfg", {"door": {"url": str(VIDEO), "sinks": ["broker"]}}, port)
    sinks = {"broker": {"type": "mqtt", "host": "127.0.0.1", "port": broker.port, "qos": 1, "keepalive_s": 5,
                        "delivery": "at_least_once", "client_id": "streamd-e2e",
                        "retry": {"initial_s": 0.5, "max_s": 1.0}}}  # fmt: skip
    add_sinks(config, sinks)
    daemon = Daemon(config)
    try:
        assert wait_for(lambda: len(mqtt_sub.got) >= 20, 30), daemon.log_path.read_text()[-2000:]
        broker.stop()
        time.sleep(4)  # about 40 messages wait in the outbox
        broker.start()
        assert wait_for(lambda: len(mqtt_sub.got) >= 100, 40)
        assert mqtt_sub.retained.get("streamd/streamd-e2e/available") == b"online"
        # A gap in seq is a frame the worker never took (a slow machine), or a lost message.
        dropped = metric(daemon, "streamd_camera_frames_dropped_total", camera="door")
        code, _ = daemon.stop(signal.SIGKILL)  # vanishes: the broker publishes the last will
        assert wait_for(lambda: mqtt_sub.retained.get("streamd/streamd-e2e/available") == b"offline", 15)
    finally:
        daemon.stop()
        mqtt_sub.close()
        broker.stop()
    seqs = sorted({s for camera, s in mqtt_sub.got if camera == "door"})
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    assert len(missing) <= dropped, f"{len(missing)} seqs missing, {dropped:.0f} frames dropped: {missing}"
    assert code == -signal.SIGKILL


def test_the_documented_webhook_receiver_accepts_signed_messages_and_rejects_forged_ones(tmp_path):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    hook_port, zmq_port = free_port(), free_port()
    receiver = subprocess.Popen(
        [sys.executable, "examples/webhook_receiver.py", str(hook_port)],
        stdout=subprocess.PIPE, text=True, env={"STREAMD_SECRET": "s3cret", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    (tmp_path / "secret").write_text("s3cret\n")
    config = write_config(tmp_path, {"door": {"url": str(VIDEO), "sinks": [{"name": "hook", "send": "detections"}]}},
                          zmq_port)  # fmt: skip
    add_sinks(config, {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/", "secret_file": "secret",
                                "delivery": "at_least_once"}})  # fmt: skip
    daemon = Daemon(config)
    try:
        assert wait_for(
            lambda: daemon.logs() and any(e.get("event") == "streamd started" for e in daemon.logs()), 30
        )
        forged = httpx.post(f"http://127.0.0.1:{hook_port}/", content=b"{}",
                            headers={"X-Streamd-Signature": "sha256=00"}, timeout=5)  # fmt: skip
        lines = []
        deadline = time.monotonic() + 30
        assert receiver.stdout is not None
        while len(lines) < 5 and time.monotonic() < deadline:
            lines.append(receiver.stdout.readline().strip())
    finally:
        code, _ = daemon.stop()
        receiver.kill()
        receiver.wait(5)
    assert forged.status_code == 401
    assert len(lines) == 5
    assert all(line.startswith("door seq=") and "people=" in line for line in lines)
    assert code == 0
