"""Sink throughput and outbox cost on this machine.

    .venv/bin/python bench/sinks.py [messages]

Pushes N results of the real message size through each sink's real runner and
transport to a real peer on loopback (mosquitto, a threaded HTTP server, a ZeroMQ
subscriber), three times, and prints the median messages per second; then times
the SQLite outbox per message. Needs mosquitto on PATH.
"""

from __future__ import annotations

import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import supervision as sv
import zmq

from streamd.bench.runner import machine_info
from streamd.config import CameraSinkConfig, MqttSinkConfig, OutboxConfig, WebhookSinkConfig, ZmqConfig
from streamd.log import configure_logging
from streamd.message import encode_frame
from streamd.sinks.base import SinkRunner, Transport
from streamd.sinks.mqtt import MqttTransport
from streamd.sinks.outbox import Outbox
from streamd.sinks.webhook import WebhookTransport
from streamd.sinks.zmq import ZmqTransport
from streamd.types import FrameResult, Timings

ROOT = Path(tempfile.mkdtemp(prefix="streamd-sinkbench-"))


def result(seq: int) -> FrameResult:
    n = 8  # a typical frame of the shared video: 8 tracked objects
    dets = sv.Detections(
        xyxy=np.random.default_rng(seq).uniform(0, 700, (n, 4)).astype(np.float32),
        confidence=np.full(n, 0.8, np.float32), class_id=np.zeros(n, int), tracker_id=np.arange(n),
        data={"class_name": np.array(["person"] * n)},
    )  # fmt: skip
    return FrameResult("cam", seq, time.time(), 768, 576, dets, Timings(0.001, 0, 0.015, 0.001, 0.02), 0.0)


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(transport: Transport, n: int, delivery: str, tag: str) -> float:
    outbox = (
        Outbox(ROOT / f"{tag}-{time.monotonic_ns()}.sqlite", OutboxConfig())
        if delivery == "at_least_once"
        else None
    )
    runner = SinkRunner(transport, queue_size=n + 10, outbox=outbox)
    runner.set_filter("cam", CameraSinkConfig(name="x"))
    results = [result(i) for i in range(n)]
    start = time.perf_counter()
    runner.start()
    for r in results:
        runner.offer(r)
    deadline = time.monotonic() + 120
    while runner.stats.delivered < n and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    runner.stop()
    runner.join(5)
    assert runner.stats.delivered == n, (tag, runner.stats)
    return n / elapsed


def http_server() -> tuple[str, http.server.ThreadingHTTPServer]:
    class Ok(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/", server


def mosquitto(nodelay: bool = False) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    user = ["user root"] if os.geteuid() == 0 else []
    options = ["set_tcp_nodelay true"] if nodelay else []
    conf = ROOT / f"mosquitto-{port}.conf"
    conf.write_text("\n".join([*user, f"listener {port} 127.0.0.1", "allow_anonymous true", *options]) + "\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.5)
    return port, proc


def median_rate(make: object, n: int, delivery: str, tag: str) -> float:
    return statistics.median(run(make(), n, delivery, tag) for _ in range(3))  # type: ignore[operator]


def main() -> None:
    configure_logging("error")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = len(encode_frame(result(0)))
    print("# streamd sink throughput and outbox cost")
    info = machine_info()
    print(
        f"# date: {time.strftime('%Y-%m-%d')}; machine: {info['cores']} cores, {info['cpu']},"
        f" GPU: {info['gpu']}"
    )
    print(f"# python {info['python']}; {info['versions']}")
    print(
        f"# command: .venv/bin/python bench/sinks.py {n}; {n} messages of {size} bytes per run,"
        " median of 3 runs"
    )
    print("sink                                   delivery        msgs/s")
    url, server = http_server()
    port, broker = mosquitto()
    fast_port, fast_broker = mosquitto(nodelay=True)
    cases = [
        ("zmq PUB", _zmq, ["at_most_once"]),
        ("webhook, 1 message per request",
         lambda: WebhookTransport("h", WebhookSinkConfig(type="webhook", url=url), "bench"),
         ["at_most_once", "at_least_once"]),
        ("webhook, batches of 10",
         lambda: WebhookTransport("h", WebhookSinkConfig(type="webhook", url=url, batch_max=10), "bench"),
         ["at_most_once", "at_least_once"]),
        ("mqtt QoS 1",
         lambda: _mqtt(port, 1), ["at_most_once", "at_least_once"]),
        ("mqtt QoS 0",
         lambda: _mqtt(port, 0), ["at_most_once"]),
        ("mqtt QoS 1, broker set_tcp_nodelay",
         lambda: _mqtt(fast_port, 1), ["at_most_once", "at_least_once"]),
        ("mqtt QoS 2, broker set_tcp_nodelay",
         lambda: _mqtt(fast_port, 2), ["at_least_once"]),
    ]  # fmt: skip
    for label, make, deliveries in cases:
        for delivery in deliveries:
            rate = median_rate(make, n, delivery, label.split()[0])
            print(f"{label:<38} {delivery:<14} {rate:>8.0f}")
    for sub in _SUBSCRIBERS:
        sub.close()
    server.shutdown()
    broker.terminate()
    fast_broker.terminate()
    print()
    print("outbox (SQLite WAL)                    per message, us")
    for fsync in (False, True):
        for batch in (1, 10):
            box = Outbox(ROOT / f"cost-{fsync}-{batch}.sqlite", OutboxConfig(fsync=fsync))
            payload = encode_frame(result(1))
            rounds = 400 if fsync else 2000
            t0 = time.perf_counter()
            for _ in range(rounds // batch):
                box.add([("cam", payload)] * batch)
            t1 = time.perf_counter()
            rows = box.peek(0, rounds)
            for i in range(0, len(rows), batch):
                box.remove([r.id for r in rows[i : i + batch]])
            t2 = time.perf_counter()
            box.close()
            add_us, remove_us = (t1 - t0) / rounds * 1e6, (t2 - t1) / rounds * 1e6
            print(f"fsync={'on ' if fsync else 'off'} batch={batch:<3}                  "
                  f"add {add_us:7.1f}  remove {remove_us:7.1f}")  # fmt: skip
    shutil.rmtree(ROOT, ignore_errors=True)


def _zmq() -> ZmqTransport:
    """A fresh publisher (a runner closes its transport when it stops) with a subscriber joined."""
    port = free_port()
    transport = ZmqTransport(ZmqConfig(endpoint=f"tcp://127.0.0.1:{port}", send_hwm=100_000))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(f"tcp://127.0.0.1:{port}")
    _SUBSCRIBERS.append(sub)
    time.sleep(0.3)  # ZeroMQ's slow joiner: let the subscription reach the publisher
    return transport


_SUBSCRIBERS: list[zmq.Socket[bytes]] = []


def _mqtt(port: int, qos: int) -> MqttTransport:
    cfg = MqttSinkConfig(type="mqtt", port=port, qos=qos, client_id=f"bench-{time.monotonic_ns()}",
                         delivery="at_least_once" if qos else "at_most_once")  # fmt: skip
    transport = MqttTransport("m", cfg, "bench")
    deadline = time.monotonic() + 5
    while not transport._connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    return transport


if __name__ == "__main__":
    main()
