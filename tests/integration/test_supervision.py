"""Fault injection into every supervised component of a real daemon (real model, video, HTTP, ZeroMQ).

Each test raises inside one component while the daemon runs two cameras, and checks:
the other camera keeps publishing, /healthz and /metrics show the fault, the component
comes back, and the log tells once rather than at every retry.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from streamd.client import FrameMessage, Subscriber
from streamd.config import load_config
from streamd.daemon import Daemon
from streamd.log import configure_logging
from streamd.notify import Notifier, Watchdog
from tests.helpers import VIDEO, NotifySocket, collect, free_port, wait_for, write_config
from tests.servers import WebhookServer

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    daemon: Daemon
    sub: Subscriber
    log: io.StringIO

    def get(self, path: str) -> tuple[int, Any]:
        assert self.daemon.http is not None
        try:
            with urllib.request.urlopen(f"http://{self.daemon.http.address}{path}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def health(self) -> tuple[int, Any]:
        return self.get("/healthz")

    def component(self, name: str) -> dict[str, Any]:
        return self.get("/v1/cameras")[1]["components"][name]

    def messages(self, seconds: float) -> list[FrameMessage]:
        return collect(self.sub, seconds)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.log.getvalue().splitlines()) if e.get("event") == name]


def start_daemon(tmp_path, cameras: dict[str, dict] | None = None, **daemon_keys: Any) -> Running:
    port = free_port()
    cameras = cameras or {"a": {"url": str(VIDEO)}, "b": {"url": str(VIDEO)}}
    path = write_config(tmp_path, cameras, port, stall_timeout_s=1.0, **daemon_keys)
    log = io.StringIO()
    configure_logging("info", "json", stream=log)
    daemon = Daemon.from_config(load_config(path))
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon.start()
    running = Running(daemon, sub, log)
    seen: set[str] = set()
    collect(sub, 30, until=lambda got: seen.update(m.camera for m in got[-1:]) or seen >= set(cameras))
    assert seen >= set(cameras), log.getvalue()[-3000:]
    assert wait_for(lambda: running.health()[0] == 200, 10), running.health()
    return running


@pytest.fixture
def running(tmp_path) -> Iterator[Running]:
    run = start_daemon(tmp_path)
    try:
        yield run
    finally:
        run.daemon.stop(5)
        run.sub.close()
        configure_logging()


def raise_once(obj: Any, name: str, message: str) -> list[int]:
    """Make ``obj.name`` raise RuntimeError(message) on its next call only; the calls counted."""
    real = getattr(obj, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError(message)
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)
    return calls


def assert_recovered(run: Running, component: str, camera: str = "a") -> None:
    """The component failed once, was restarted, and frames of ``camera`` flow again."""
    assert wait_for(lambda: run.component(component)["restarts"] >= 1, 10), run.component(component)
    info = run.component(component)
    assert info["failures"] == 1 and info["state"] == "running"
    assert "RuntimeError: injected" in info["last_error"]
    later = run.messages(3.0)
    assert sum(m.camera == camera for m in later) >= 10
    failed = run.events("component failed; restarting")
    assert len(failed) == 1 and failed[0]["component"] == component and "Traceback" in failed[0]["exception"]


def test_a_camera_thread_that_raises_is_restarted_while_the_other_camera_keeps_publishing(running):
    camera = running.daemon.cameras["a"]
    raise_once(camera._slot, "put", "injected camera fault")
    during = running.messages(1.0)
    code, body = running.health()
    assert code == 503
    assert any(
        "camera/a failed 1 time(s), last: RuntimeError: injected camera fault" in p for p in body["problems"]
    )
    assert sum(m.camera == "b" for m in during) >= 7  # 10 fps, untouched
    assert camera.stats.reconnects >= 1 and "internal error" in (camera.stats.last_error or "")
    assert_recovered(running, "camera/a")


def test_an_inference_worker_loop_that_raises_is_restarted(running):
    worker = running.daemon.workers["default"][0]
    raise_once(worker, "_take_and_prepare", "injected worker fault")
    assert wait_for(lambda: running.health()[0] == 503, 5)
    assert_recovered(running, "worker/default-0")


def test_a_model_that_fails_on_every_frame_makes_the_daemon_stuck_with_a_bounded_log(running):
    failing = threading.Event()
    failing.set()
    for worker in running.daemon.workers["default"]:
        real = worker.detector.infer

        def infer(prepared: Any, real: Any = real) -> Any:
            if failing.is_set():
                raise RuntimeError("injected: the model fails on every frame")
            return real(prepared)

        worker.detector.infer = infer
    assert wait_for(lambda: running.daemon.stuck() is not None, 10)
    time.sleep(2.0)  # ~20 failing batches per camera
    code, body = running.health()
    assert code == 503 and body["stuck"].startswith("worker/default-")
    assert "has made no progress" in body["stuck"]
    errors = sum(w.errors for w in running.daemon.workers["default"])
    lines = running.events("inference failed")
    assert errors >= 20
    assert len(lines) <= len(running.daemon.workers["default"])  # once per worker, not once per batch
    failing.clear()
    assert wait_for(lambda: running.health()[0] == 200, 10), running.health()
    assert running.events("inference works again")


def test_a_sink_loop_that_raises_is_restarted_and_results_keep_flowing(running):
    sink = running.daemon._sinks_by_name["zmq"]
    raise_once(sink, "_wait_for_work", "injected sink fault")
    assert_recovered(running, "sink/zmq")


def test_a_result_that_cannot_be_encoded_is_counted_and_skipped(running, monkeypatch):
    from streamd.sinks import base  # noqa: PLC0415

    raise_once(base, "encode_frame", "injected encode fault")
    assert wait_for(lambda: running.daemon._sinks_by_name["zmq"].stats.failed == 1, 5)
    stats = running.daemon._sinks_by_name["zmq"].stats
    assert "cannot encode a frame of" in (stats.last_error or "")
    assert len(running.messages(1.0)) >= 10
    assert running.component("sink/zmq")["failures"] == 0  # the thread itself never failed


def test_the_http_accept_loop_that_raises_is_restarted(running):
    assert running.daemon.http is not None
    server = running.daemon.http._server
    raise_once(server, "service_actions", "injected http fault")
    assert wait_for(
        lambda: running.daemon.http is not None and running.daemon.http.component.stats.restarts >= 1, 5
    )
    assert running.health()[0] in (200, 503)  # it answers again
    info = running.component("http")
    assert info["failures"] == 1 and "injected http fault" in info["last_error"]


def test_an_outbox_writer_that_fails_puts_the_results_back_and_loses_none(tmp_path):
    hook = WebhookServer().start()
    sinks = {"hook": {"type": "webhook", "url": hook.url, "delivery": "at_least_once"}}
    cameras = {"a": {"url": str(VIDEO), "sinks": ["hook"]}, "b": {"url": str(VIDEO)}}
    run = start_daemon(tmp_path, cameras, sinks=sinks)
    try:
        sink = run.daemon._sinks_by_name["hook"]
        assert sink._outbox is not None
        raise_once(sink._outbox, "add", "injected disk fault")
        published = run.messages(4.0)
        assert wait_for(lambda: run.component("sink/hook/outbox")["restarts"] >= 1, 5)
        seqs = {m.seq for m in published if m.camera == "a"}
        assert wait_for(lambda: seqs <= {m["seq"] for m in hook.messages()}, 15)
        assert run.component("sink/hook/outbox")["failures"] == 1
    finally:
        run.daemon.stop(5)
        run.sub.close()
        hook.stop()
        configure_logging()


def test_a_watchdog_round_that_raises_is_restarted_and_keepalives_resume(tmp_path):
    listener = NotifySocket(tmp_path / "notify.sock")
    calls = [0]

    def healthy() -> str | None:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("injected watchdog fault")
        return None

    from streamd.backoff import Backoff  # noqa: PLC0415

    watchdog = Watchdog(Notifier(str(listener.path)), 0.05, healthy, lambda: "ok")
    watchdog.component._backoff = Backoff(0.05, 0.1)
    watchdog.start()
    try:
        assert wait_for(lambda: sum("WATCHDOG" in m for m in listener.drain(0.05)) >= 5, 10)
    finally:
        watchdog.stop()
        watchdog.join(2)
        listener.close()
    assert watchdog.component.stats.failures == 1 and watchdog.component.stats.restarts == 1
