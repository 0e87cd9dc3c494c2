"""Sinks against real peers: a webhook HTTP server and a mosquitto broker on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import supervision as sv
from paho.mqtt.enums import CallbackAPIVersion

from streamd.config import CameraSinkConfig, MqttSinkConfig, WebhookSinkConfig
from streamd.sinks.base import SinkRunner
from streamd.sinks.mqtt import MqttTransport
from streamd.sinks.outbox import Outbox
from streamd.sinks.webhook import WebhookTransport
from streamd.types import FrameResult, Timings
from tests.helpers import wait_for
from tests.servers import Mosquitto, WebhookServer, make_certs

FAST_RETRY = {"initial_s": 0.1, "max_s": 0.5}


def result(seq: int, camera: str = "door") -> FrameResult:
    dets = sv.Detections(
        xyxy=np.array([[1, 2, 3, 4]], np.float32), confidence=np.array([0.9], np.float32),
        class_id=np.array([0]), tracker_id=np.array([seq % 3]), data={"class_name": np.array(["person"])},
    )  # fmt: skip
    return FrameResult(camera, seq, 1_763_800_000 + seq / 10, 640, 480, dets, Timings(0, 0, 0, 0, 0), 0.0)


def webhook_runner(tmp_path, server: WebhookServer, delivery: str = "at_least_once", **options) -> SinkRunner:
    cfg = WebhookSinkConfig(type="webhook", url=server.url, delivery=delivery, retry=FAST_RETRY, timeout_s=1.0,
                            secret_env="STREAMD_TEST_SECRET", **options)  # fmt: skip
    outbox = Outbox(tmp_path / "hook.sqlite", cfg.outbox) if delivery == "at_least_once" else None
    runner = SinkRunner(WebhookTransport("hook", cfg, "test"), cfg.queue_size, cfg.retry, outbox)
    runner.set_filter("door", CameraSinkConfig(name="hook"))
    runner.set_filter("yard", CameraSinkConfig(name="hook"))
    return runner


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("STREAMD_TEST_SECRET", "s3cret")


def test_webhook_loses_nothing_through_500s_stalls_and_refused_connections(tmp_path):
    server = WebhookServer(mode="fail", stall_s=3.0)
    server.start()
    runner = webhook_runner(tmp_path, server)
    runner.start()
    try:
        for seq in range(10):
            runner.offer(result(seq))
        assert wait_for(lambda: len(server.received) >= 3, 10)  # 500s, retried
        server.mode = "stall"  # past the 1 s timeout
        for seq in range(10, 20):
            runner.offer(result(seq))
        time.sleep(2.5)
        server.stop()  # connection refused
        for seq in range(20, 30):
            runner.offer(result(seq, camera="yard"))
        time.sleep(1.0)
        server.mode = "ok"
        server.start()
        assert wait_for(lambda: runner.stats.delivered >= 30, 20), runner.stats
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    got = server.messages()
    keys = {(m["camera"], m["seq"]) for m in got}
    assert keys == {("door", s) for s in range(20)} | {("yard", s) for s in range(20, 30)}
    for camera in ("door", "yard"):  # in order per camera
        seqs = [m["seq"] for m in got if m["camera"] == camera]
        assert seqs == sorted(seqs)
    assert runner.stats.retried >= 3
    assert runner.stats.failed == 0
    assert runner.stats.outbox == 0
    # A retried message carries the same idempotency key every time.
    by_key: dict[str, set[bytes]] = {}
    for request in server.received:
        by_key.setdefault(request.headers["idempotency-key"], set()).add(request.body)
    assert all(len(bodies) == 1 for bodies in by_key.values())
    assert len(server.received) > len(server.accepted)  # there were retries
    first = server.received[0]
    assert by_key[first.headers["idempotency-key"]] == {first.body}


def test_webhook_signature_verifies_with_the_shared_secret(tmp_path):
    server = WebhookServer().start()
    runner = webhook_runner(tmp_path, server, delivery="at_most_once")
    runner.start()
    try:
        runner.offer(result(1))
        assert wait_for(lambda: server.accepted, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    request = server.accepted[0]
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-streamd-signature"] == expected
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == json.loads(request.body)["message_id"]


def test_webhook_400_is_not_retried_and_the_rest_go_through(tmp_path):
    server = WebhookServer(mode="reject").start()
    runner = webhook_runner(tmp_path, server)
    runner.start()
    try:
        runner.offer(result(1))
        assert wait_for(lambda: runner.stats.failed == 1, 5)
        time.sleep(0.5)
        server.mode = "ok"
        runner.offer(result(2))
        assert wait_for(lambda: runner.stats.delivered == 1, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    assert len(server.received) == 2  # the rejected one was sent once, never again
    assert runner.stats.retried == 0
    assert "HTTP 400" in (runner.stats.last_error or "")
    assert [m["seq"] for m in server.messages()] == [2]


def test_webhook_429_waits_for_retry_after(tmp_path):
    server = WebhookServer(mode="busy", retry_after="1").start()
    runner = webhook_runner(tmp_path, server)
    runner.start()
    try:
        runner.offer(result(1))
        assert wait_for(lambda: len(server.received) == 1, 5)
        server.mode = "ok"
        assert wait_for(lambda: runner.stats.delivered == 1, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    gap = server.received[1].t - server.received[0].t
    assert gap >= 0.9  # Retry-After: 1 beats the 0.1 s backoff


def test_webhook_batches_up_to_n_messages_per_request(tmp_path):
    server = WebhookServer().start()
    runner = webhook_runner(tmp_path, server, batch_max=4)
    for seq in range(10):
        runner.offer(result(seq))
    runner.start()
    try:
        assert wait_for(lambda: runner.stats.delivered == 10, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    sizes = [len(json.loads(r.body)) for r in server.accepted]
    assert sizes == [4, 4, 2]
    assert all(r.headers["idempotency-key"].startswith("batch-") for r in server.accepted)


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
def test_webhook_waits_batch_wait_s_to_fill_a_batch(tmp_path, delivery):
    server = WebhookServer().start()
    runner = webhook_runner(tmp_path, server, delivery=delivery, batch_max=10, batch_wait_s=0.6)
    runner.start()
    try:
        for seq in range(24):  # 20 a second: a request every 0.5 s would hold 10, every 0.6 s at most 10
            runner.offer(result(seq))
            time.sleep(0.05)
        assert wait_for(lambda: runner.stats.delivered == 24, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    sizes = [len(json.loads(r.body)) for r in server.accepted]
    assert sum(sizes) == 24
    assert len(sizes) <= 5 and max(sizes) >= 8, sizes  # without the wait: ~24 requests of 1 or 2


def test_at_most_once_drops_the_oldest_when_its_queue_is_full(tmp_path):
    server = WebhookServer(mode="stall", stall_s=2.0).start()
    runner = webhook_runner(tmp_path, server, delivery="at_most_once", queue_size=5)
    runner.start()
    try:
        for seq in range(30):
            runner.offer(result(seq))
        assert wait_for(lambda: runner.stats.dropped >= 20, 5)
    finally:
        runner.stop()
        runner.join(5)
        server.stop()
    assert runner.depth <= 10


# --- MQTT --------------------------------------------------------------------------------------


class Subscriber:
    """A paho subscriber with a persistent session (QoS 1), collecting (camera, seq)."""

    def __init__(self, port: int, topic: str = "streamd/+/frames", **tls) -> None:
        self.got: list[tuple[str, int]] = []
        self.retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-sub", clean_session=False,
                                  protocol=mqtt.MQTTv311)  # fmt: skip
        if tls:
            self.client.tls_set(ca_certs=str(tls["ca"]))
        if "user" in tls:
            self.client.username_pw_set(tls["user"], tls["password"])
        self.client.on_connect = lambda c, *_: c.subscribe([(topic, 1), ("streamd/+/available", 1)])
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            if msg.topic.endswith("/available"):
                self.retained[msg.topic] = msg.payload
            else:
                data = json.loads(msg.payload)
                self.got.append((data["camera"], data["seq"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_runner(tmp_path, port: int, delivery: str = "at_least_once", **options) -> SinkRunner:
    options = {"client_id": "streamd-test", **options}
    cfg = MqttSinkConfig(type="mqtt", host="127.0.0.1", port=port, delivery=delivery,
                         retry={"initial_s": 0.2, "max_s": 1.0}, **options)  # fmt: skip
    outbox = Outbox(tmp_path / "mqtt.sqlite", cfg.outbox) if delivery == "at_least_once" else None
    runner = SinkRunner(MqttTransport("broker", cfg, "test"), cfg.queue_size, cfg.retry, outbox)
    runner.set_filter("door", CameraSinkConfig(name="broker"))
    return runner


@pytest.mark.parametrize(
    ("protocol", "qos"),
    [
        ("5", 1),
        ("3.1.1", 1),
        ("5", 2),  # lost messages until the broker's Receive Maximum was respected
        ("3.1.1", 2),
    ],
)  # fmt: skip
def test_mqtt_at_least_once_survives_a_broker_outage(tmp_path, protocol, qos):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port)
    runner = mqtt_runner(tmp_path, broker.port, protocol=protocol, qos=qos)
    runner.start()
    try:
        assert wait_for(lambda: sub.retained.get("streamd/streamd-test/available") == b"online", 10)
        for seq in range(50):
            runner.offer(result(seq))
            time.sleep(0.01)
        assert wait_for(lambda: len(sub.got) >= 50, 10)
        broker.stop()
        for seq in range(50, 100):  # published while the broker is down
            runner.offer(result(seq))
            time.sleep(0.02)
        assert runner.stats.outbox > 0
        broker.start()
        for seq in range(100, 120):
            runner.offer(result(seq))
        assert wait_for(lambda: {s for _, s in sub.got} >= set(range(120)), 30), sorted(
            set(range(120)) - {s for _, s in sub.got}
        )
    finally:
        runner.stop()
        runner.join(5)
        sub.close()
        broker.stop()
    assert runner.stats.failed == 0
    assert runner.stats.retried >= 1
    assert runner.stats.outbox == 0


def test_mqtt_last_will_marks_a_vanished_daemon_offline(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port)
    runner = mqtt_runner(tmp_path, broker.port, delivery="at_most_once", keepalive_s=5)
    runner.start()
    try:
        assert wait_for(lambda: sub.retained.get("streamd/streamd-test/available") == b"online", 10)
        runner.stop()
        runner.join(5)  # a clean stop says offline itself
        assert wait_for(lambda: sub.retained.get("streamd/streamd-test/available") == b"offline", 10)
    finally:
        sub.close()
        broker.stop()


def test_mqtt_with_tls_and_a_password(tmp_path, monkeypatch):
    certs = make_certs(tmp_path / "certs")
    broker = Mosquitto(tmp_path / "broker", tls=certs, users={"streamd": "pa55"}).start()
    monkeypatch.setenv("STREAMD_MQTT_PASSWORD", "pa55")
    sub = Subscriber(broker.port, ca=certs["ca"], user="streamd", password="pa55")
    good = mqtt_runner(tmp_path / "good", broker.port, username="streamd", password_env="STREAMD_MQTT_PASSWORD",
                       tls={"ca": str(certs["ca"])})  # fmt: skip
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "pw").write_text("nope\n")
    bad = mqtt_runner(tmp_path / "wrong", broker.port, username="streamd", password_file=tmp_path / "wrong" / "pw",
                      tls={"ca": str(certs["ca"])}, client_id="streamd-bad")  # fmt: skip
    good.start()
    bad.start()
    try:
        good.offer(result(7))
        bad.offer(result(8))
        assert wait_for(lambda: ("door", 7) in sub.got, 10)
        time.sleep(1.0)
    finally:
        for r in (good, bad):
            r.stop()
            r.join(5)
        sub.close()
        broker.stop()
    assert ("door", 8) not in sub.got
    assert bad.stats.delivered == 0
    assert bad.stats.outbox == 1  # kept for when the credentials are fixed
    assert "the broker refused the connection: Not authorized" in (bad.stats.last_error or "")
    log = (tmp_path / "broker" / "mosquitto.log").read_text()
    assert "pa55" not in log


def test_why_an_mqtt_connection_fails_is_logged_and_shown(tmp_path):
    import io  # noqa: PLC0415

    from streamd.log import configure_logging  # noqa: PLC0415

    certs = make_certs(tmp_path / "certs")
    other = make_certs(tmp_path / "other")  # a CA that did not sign the broker's certificate
    broker = Mosquitto(tmp_path / "broker", tls=certs).start()
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    runner = mqtt_runner(tmp_path, broker.port, tls={"ca": str(other["ca"])})
    runner.start()
    try:
        runner.offer(result(1))
        assert wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in (runner.stats.last_error or ""), 10), (
            runner.stats
        )
    finally:
        runner.stop()
        runner.join(5)
        broker.stop()
        configure_logging()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    cannot = [e for e in lines if e["event"] == "mqtt cannot connect"]
    assert len(cannot) == 1 and "certificate verify failed" in cannot[0]["error"]
    assert runner.stats.delivered == 0 and runner.stats.outbox == 1


def test_mqtt_with_a_client_certificate(tmp_path):
    certs = make_certs(tmp_path / "certs")
    broker = Mosquitto(tmp_path / "broker", tls=certs, require_client_cert=True).start()
    sub_client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cert-sub")
    got: list[bytes] = []
    sub_client.tls_set(
        ca_certs=str(certs["ca"]), certfile=str(certs["client_cert"]), keyfile=str(certs["client_key"])
    )
    sub_client.on_connect = lambda c, *_: c.subscribe("streamd/+/frames", 1)
    sub_client.on_message = lambda _c, _u, m: got.append(m.payload)
    sub_client.connect("127.0.0.1", broker.port)
    sub_client.loop_start()
    tls = {"ca": str(certs["ca"]), "cert": str(certs["client_cert"]), "key": str(certs["client_key"])}
    with_cert = mqtt_runner(tmp_path / "a", broker.port, tls=tls)
    without = mqtt_runner(tmp_path / "b", broker.port, tls={"ca": str(certs["ca"])}, client_id="no-cert")
    with_cert.start()
    without.start()
    try:
        with_cert.offer(result(1))
        without.offer(result(2))
        assert wait_for(lambda: len(got) >= 1, 10)
        time.sleep(1.0)
    finally:
        for r in (with_cert, without):
            r.stop()
            r.join(5)
        sub_client.disconnect()
        sub_client.loop_stop()
        broker.stop()
    assert [json.loads(p)["seq"] for p in got] == [1]
    assert without.stats.delivered == 0
