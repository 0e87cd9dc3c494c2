"""OS thread names: what ``top -H`` shows for the daemon's threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from streamd.supervise import Component
from streamd.threadname import short_name


def test_long_names_keep_their_kind_and_their_end_in_15_bytes():
    assert short_name("camera/cam0") == "camera/cam0"
    assert short_name("worker/default-1") == "worker/~fault-1"
    assert short_name("worker/default-2") != short_name("worker/default-1")
    assert len(short_name("camera/entrance-north-gate").encode()) == 15


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names through prctl are Linux's")
def test_a_component_thread_carries_its_name_to_the_system():
    seen: list[str] = []
    stop = threading.Event()

    def body() -> None:
        seen.append(Path("/proc/thread-self/comm").read_text().strip())  # what top -H shows
        stop.wait(5)

    component = Component("camera/door-cam-12", body, stop)
    component.start()
    try:
        for _ in range(100):
            if seen:
                break
            stop.wait(0.02)
    finally:
        stop.set()
        component.join(5)
    assert seen == ["camera/~-cam-12"]
