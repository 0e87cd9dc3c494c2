"""The HTTP server as an operator uses it: /healthz, /metrics scraped by Prometheus, /v1/cameras."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Daemon, RtspServer, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e

FAST_RECONNECT = {"read_timeout_s": 2.0, "reconnect": {"initial_s": 0.3, "max_s": 1.0}}


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = daemon.get("/metrics")
    assert code == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def camera_counters(daemon: Daemon) -> dict[str, dict]:
    return {c["id"]: c for c in daemon.get_json("/v1/cameras")["cameras"]}


def test_healthz_follows_a_camera_down_and_back_and_metrics_match_the_counters(tmp_path):
    server = RtspServer().start()
    config = write_config(tmp_path, {"door": {"url": server.url, "source": FAST_RECONNECT}}, free_port())
    daemon = Daemon(config)
    started = time.monotonic()
    try:
        assert wait_for(lambda: daemon.get("/healthz")[0] == 200, 30), daemon.log_path.read_text()[-2000:]
        assert wait_for(lambda: camera_counters(daemon)["door"]["processed"] >= 20, 20)

        before = camera_counters(daemon)["door"]
        metrics = scrape(daemon)
        after = camera_counters(daemon)["door"]
        door = (("camera", "door"),)
        for key in ("decoded", "processed"):
            value = metrics[(f"streamd_camera_frames_{key}_total", door)]
            assert before[key] <= value <= after[key], (key, before[key], value, after[key])
        # Every processed frame was observed once by each latency histogram.
        count = metrics[("streamd_latency_seconds_count", door)]
        # (a frame is counted as processed just before it is observed and published)
        assert before["processed"] - 2 <= count <= after["processed"]
        assert metrics[("streamd_inference_seconds_count", door)] == count
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (name, labels), v in metrics.items()
            if name == "streamd_latency_seconds_bucket"
        )
        values = [v for _, v in buckets]
        assert values == sorted(values) and values[-1] == count  # cumulative, +Inf holds them all
        assert metrics[("streamd_camera_up", door)] == 1.0
        assert metrics[("streamd_camera_state", (("camera", "door"), ("state", "streaming")))] == 1.0
        zmq = (("sink", "zmq"),)
        assert metrics[("streamd_sink_messages_delivered_total", zmq)] >= before["processed"]
        assert ("streamd_sink_queue_depth", zmq) in metrics
        assert metrics[("process_resident_memory_bytes", ())] > 50e6
        assert metrics[("process_cpu_seconds_total", ())] > 0
        # How busy each worker is: seconds on frames, within the time it has run, and its thread CPU.
        busy = {k[1]: v for k, v in metrics.items() if k[0] == "streamd_worker_busy_seconds_total"}
        cpu = {k[1]: v for k, v in metrics.items() if k[0] == "streamd_worker_cpu_seconds_total"}
        assert busy and busy.keys() == cpu.keys()
        assert sum(busy.values()) > 0
        assert max(busy.values()) < time.monotonic() - started
        assert 0 < sum(cpu.values()) < metrics[("process_cpu_seconds_total", ())]
        workers = daemon.get_json("/v1/cameras")["workers"]
        # read later, rounded to the millisecond
        assert sum(w["busy_s"] for w in workers.values()) >= sum(busy.values()) - 0.001 * len(workers)

        healthy = daemon.get_json("/healthz")
        assert healthy["status"] == "ok" and healthy["cameras"]["door"]["state"] == "streaming"

        server.kill()
        assert wait_for(lambda: daemon.get("/healthz")[0] == 503, 15)
        code, body = daemon.get("/healthz")
        down = json.loads(body)["cameras"]["door"]
        assert code == 503 and down["state"] in ("reconnecting", "connecting") and down["last_error"]
        assert wait_for(lambda: scrape(daemon)[("streamd_camera_up", door)] == 0.0, 5)
        assert scrape(daemon)[("streamd_camera_reconnects_total", door)] >= 1

        server.start()
        assert wait_for(lambda: daemon.get("/healthz")[0] == 200, 30)
        assert camera_counters(daemon)["door"]["state"] == "streaming"
        assert daemon.get("/nowhere")[0] == 404
    finally:
        daemon.stop()
        server.kill()
    code, _ = daemon.get("/healthz")
    assert code == 0  # the server went away with the daemon


def test_http_listens_on_loopback_by_default_and_is_read_only(tmp_path):
    from streamd.config import HttpConfig  # noqa: PLC0415

    assert HttpConfig().listen is not None and HttpConfig().listen.startswith("127.0.0.1:")
    config = write_config(tmp_path, {"door": {"url": "rtsp://127.0.0.1:9/none"}}, free_port())
    daemon = Daemon(config)
    try:
        assert wait_for(lambda: daemon.get("/healthz")[0] == 503, 30)
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        request = urllib.request.Request(daemon.http + "/v1/cameras", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
    finally:
        daemon.stop()


def test_status_server_listens_on_ipv6_loopback():
    import urllib.request  # noqa: PLC0415

    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from streamd.http import HttpServer, Routes  # noqa: PLC0415

    server = HttpServer("[::1]:0", Routes(lambda: (True, {"status": "ok"}), dict, CollectorRegistry()))
    server.start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}
    finally:
        server.stop()
    assert server.join(5)


def test_a_taken_http_port_fails_the_start_naming_the_key(tmp_path):
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.helpers import REPO  # noqa: PLC0415

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = write_config(tmp_path, {"door": {"url": "rtsp://127.0.0.1:9/none"}}, free_port())
    text = config.read_text().replace(
        config.read_text().split("listen: ")[1].splitlines()[0], f"127.0.0.1:{taken.getsockname()[1]}"
    )
    config.write_text(text)
    try:
        done = subprocess.run([sys.executable, "-m", "streamd", "run", "--config", str(config)],
                              check=False, capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 1
    assert "http.listen: cannot listen on 127.0.0.1:" in done.stderr


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the server and read until it closes."""
    import socket  # noqa: PLC0415

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_slow_clients_are_cut_off_the_cap_holds_and_methods_are_answered_as_documented(tmp_path):
    import socket  # noqa: PLC0415

    config = write_config(tmp_path, {"door": {"url": "rtsp://127.0.0.1:9/none"}}, free_port(),
                          http={"listen": f"127.0.0.1:{free_port()}", "max_connections": 4,
                                "request_timeout_s": 1.0})  # fmt: skip
    daemon = Daemon(config)
    port = int(daemon.http.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    try:
        assert wait_for(lambda: daemon.get("/healthz")[0] == 503, 30), daemon.log_path.read_text()[-2000:]
        # HEAD is GET without a body; every other method is 405 with Allow.
        head = raw_request(port, b"HEAD /healthz HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 503") and head.endswith(b"\r\n\r\n")
        for method in (b"OPTIONS", b"POST", b"DELETE", b"BREW"):
            answer = raw_request(port, method + b" /v1/cameras HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.0 405"), answer[:100]
            assert b"Allow: GET, HEAD" in answer

        # A client trickling its request a byte at a time is cut off at the request timeout.
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        started = time.monotonic()
        closed_after = None
        for byte in b"GET /healthz HTTP/1.0\r\n":
            try:
                slow.sendall(bytes([byte]))
                time.sleep(0.2)
                if not slow.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) and closed_after is None:
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        slow.close()
        assert closed_after is not None and closed_after < 3.0, closed_after

        # Connections held open without a request fill the cap; the next one is answered 503 at once.
        for _ in range(4):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.2)
        refused = raw_request(port, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert refused.startswith(b"HTTP/1.0 503 Service Unavailable") and b"Retry-After" in refused
        for sock in held:
            sock.close()
        held.clear()
        assert wait_for(lambda: daemon.get("/healthz")[0] == 503, 5)  # served again

        # A client that vanishes mid-response is no error.
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # RST
        time.sleep(0.5)
    finally:
        for sock in held:
            sock.close()
        daemon.stop()
    log = daemon.log_path.read_text()
    assert "Traceback" not in log and "Exception occurred during processing" not in log
    errors = [e for e in daemon.logs() if e.get("level") == "error" and e.get("stage") == "http"]
    assert errors == []
    assert all(line.startswith("{") for line in log.splitlines() if line.strip())  # JSON lines only
