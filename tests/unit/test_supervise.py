"""Supervised components: restarted with backoff, logged once then throttled, stuck when silent."""

from __future__ import annotations

import io
import json
import threading
import time

from streamd.backoff import Backoff
from streamd.log import Throttle, configure_logging
from streamd.supervise import Component, ComponentState, Supervisor
from tests.helpers import wait_for


def fast_backoff() -> Backoff:
    return Backoff(0.01, 0.02)


def test_a_body_that_raises_is_restarted_and_its_failures_counted():
    stop = threading.Event()
    runs = []

    def body() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise RuntimeError(f"boom {len(runs)}")
        stop.wait()

    failures = []
    component = Component("test/restarts", body, stop, on_failure=failures.append, backoff=fast_backoff())
    component.start()
    assert wait_for(lambda: len(runs) == 4, 5)
    assert component.stats.failures == 3 and component.stats.restarts == 3
    assert component.stats.state is ComponentState.RUNNING
    assert component.stats.last_error == "RuntimeError: boom 3"
    assert failures == ["RuntimeError: boom 1", "RuntimeError: boom 2", "RuntimeError: boom 3"]
    assert component.failing(time.monotonic()) is not None  # recent failures still show in health
    stop.set()
    assert component.join(5)
    assert component.stats.state is ComponentState.STOPPED


def test_failures_are_logged_once_with_their_traceback_then_throttled():
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    stop = threading.Event()
    count = [0]

    def body() -> None:
        count[0] += 1
        if count[0] > 50:
            stop.wait()
        raise ValueError("same failure every time")

    component = Component("test/throttle", body, stop, backoff=Backoff(0.001, 0.001))
    component.start()
    try:
        assert wait_for(lambda: count[0] > 50, 10)
    finally:
        stop.set()
        component.join(5)
        configure_logging()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    failed = [e for e in lines if e["event"] == "component failed; restarting"]
    assert len(failed) == 1  # 50 failures, one line (the next comes a minute later with the count)
    assert "Traceback" in failed[0]["exception"] and failed[0]["component"] == "test/throttle"


def test_a_component_past_its_promise_is_stuck_and_one_on_schedule_is_not():
    stop = threading.Event()
    release = threading.Event()

    def wedged() -> None:
        component.beat(0.05)  # promises progress within 50 ms, then hangs
        release.wait(10)

    component = Component("test/wedged", wedged, stop)
    supervisor = Supervisor()
    supervisor.add([component])
    component.start()
    try:
        assert supervisor.stuck(1.0) is None
        assert wait_for(lambda: supervisor.stuck(0.2) is not None, 5)
        assert "test/wedged has made no progress for" in (supervisor.stuck(0.2) or "")
    finally:
        stop.set()
        release.set()
        component.join(5)
    assert supervisor.stuck(0.0) is None  # a stopped component is never stuck


def test_a_thread_ended_by_something_that_is_not_an_exception_is_stuck(monkeypatch):
    stop = threading.Event()

    def exits() -> None:
        raise SystemExit  # not an Exception: nothing restarts it, so health must say so

    monkeypatch.setattr(threading, "excepthook", lambda _args: None)  # the thread's end is the point
    component = Component("test/dead", exits, stop)
    component.start()
    component.join(5)
    assert component.stuck(time.monotonic(), 10.0) == "test/dead: its thread ended unexpectedly"


def test_throttle_lets_one_report_through_per_interval_and_counts_the_rest():
    throttle = Throttle(60.0)
    assert throttle.ready(now=0.0) == 0
    assert throttle.ready(now=1.0) is None
    assert throttle.ready(now=59.0) is None
    assert throttle.ready(now=61.0) == 2
    throttle.reset()
    assert throttle.ready(now=62.0) == 0
