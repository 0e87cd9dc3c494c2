"""systemd's notification protocol against a real unix datagram socket: READY, STATUS, WATCHDOG."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest
import yaml

from streamd.config import load_config
from streamd.daemon import Daemon
from streamd.notify import Notifier, watchdog_interval
from tests.helpers import MODEL, VIDEO, NotifySocket, free_port, write_config

pytestmark = pytest.mark.e2e


def test_notifier_speaks_the_protocol_on_path_and_abstract_sockets(tmp_path, monkeypatch):
    listener = NotifySocket(tmp_path / "n.sock")
    notifier = Notifier(str(listener.path))
    assert notifier.send(READY=1, STATUS="2/2 cameras streaming")
    assert listener.drain(0.2) == [{"READY": "1", "STATUS": "2/2 cameras streaming"}]
    listener.close()

    import socket  # noqa: PLC0415

    name = f"streamd-test-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind("\0" + name)
    abstract.settimeout(2)
    assert Notifier("@" + name).send(WATCHDOG=1)
    assert abstract.recv(100) == b"WATCHDOG=1"
    abstract.close()

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled and not Notifier().send(READY=1)  # outside systemd: nothing, no error
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 20.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


@pytest.mark.alone  # keep-alive gaps and a 1 s stall timeout are timings
def test_watchdog_keepalives_stop_while_the_worker_is_wedged(tmp_path, monkeypatch):
    model = {"path": str(MODEL), "family": "yolox", "workers": 1}
    path = write_config(tmp_path, {"door": {"url": str(VIDEO)}}, free_port(), model=model)
    daemon_yaml = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**daemon_yaml, "stall_timeout_s": 1.0}))
    listener = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", "1500000")  # WatchdogSec=1.5s: a keep-alive every 0.5 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    daemon = Daemon.from_config(load_config(path))
    stop, release = threading.Event(), threading.Event()
    marks: dict[str, float] = {}

    def count(key: str, value: str | None = None) -> int:
        return sum(1 for m in listener.drain() if key in m and (value is None or m[key].startswith(value)))

    def wedge_then_stop() -> None:
        try:
            for _ in range(100):  # healthy first: keep-alives arrive
                if count("WATCHDOG") >= 4 and count("STATUS", "1/1 cameras streaming") >= 1:
                    break
                listener.drain(0.2)
            worker = daemon.workers["default"][0]
            real_infer = worker.detector.infer

            def wedged(prepared):  # an inference call that never returns, as a hung GPU driver would
                release.wait(30)
                return real_infer(prepared)

            worker.detector.infer = wedged
            marks["wedged"] = time.monotonic()
            for _ in range(100):
                if count("STATUS", "stuck:") >= 1:
                    break
                listener.drain(0.1)
            marks["noticed"] = time.monotonic()
            listener.drain(2.0)  # no keep-alive may come meanwhile
        finally:
            stop.set()
            marks["released"] = time.monotonic()  # moving again: keep-alives may resume before the stop
            release.set()

    helper = threading.Thread(target=wedge_then_stop, name="test-wedge")
    helper.start()
    daemon.run(stop=stop, stats_interval_s=60)
    helper.join(30)
    listener.drain(0.3)

    got = listener.got
    assert got[0][1]["READY"] == "1" and "cameras streaming" in got[0][1]["STATUS"]
    keepalives = [t for t, m in got if m.get("WATCHDOG") == "1"]
    healthy = [t for t in keepalives if t < marks["wedged"]]
    assert len(healthy) >= 4
    assert max(b - a for a, b in itertools.pairwise(healthy)) < 1.5  # within WatchdogSec
    stuck = [(t, m) for t, m in got if m.get("STATUS", "").startswith("stuck:")]
    assert stuck and "worker/default-0 has made no progress" in stuck[0][1]["STATUS"]
    assert "WATCHDOG" not in stuck[0][1]
    assert not [t for t in keepalives if stuck[0][0] <= t < marks["released"]]  # withheld while wedged
    last_keepalive = max(healthy + [t for t in keepalives if t < stuck[0][0]])
    # systemd restarts WatchdogSec after the last keep-alive
    print(f"wedged -> last keep-alive {last_keepalive - marks['wedged']:.2f} s, stuck reported "
          f"{stuck[0][0] - marks['wedged']:.2f} s (stall_timeout 1 s, WatchdogSec 1.5 s)")  # fmt: skip
    assert stuck[0][0] - marks["wedged"] < 3.0  # stall timeout 1 s + one 0.5 s round + slack
    assert got[-1][1].get("STOPPING") == "1"
    listener.close()


def test_a_watchdog_abort_leaves_every_threads_stack_in_the_log(tmp_path):
    import signal  # noqa: PLC0415

    from tests.helpers import Daemon as DaemonProcess  # noqa: PLC0415
    from tests.helpers import wait_for  # noqa: PLC0415

    config = write_config(tmp_path, {"door": {"url": str(VIDEO)}}, free_port())
    daemon = DaemonProcess(config)
    try:
        assert wait_for(lambda: daemon.get("/healthz")[0] == 200, 30), daemon.log_path.read_text()[-2000:]
        # Let the request's thread end first: faulthandler walks every thread without a lock,
        # and one ending during the walk crashed the dump (SIGSEGV, 1 run in about 25 under load).
        time.sleep(0.5)
        code, _ = daemon.stop(signal.SIGABRT)  # what systemd sends when keep-alives stop
    finally:
        daemon.stop()
    log = daemon.log_path.read_text()
    assert code == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in log
    assert "streamd/worker.py" in log and "streamd/sources/" in log  # the worker's and a camera's stacks
