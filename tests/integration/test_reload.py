"""Reload on SIGHUP with real RTSP cameras: only what changed restarts; a bad edit changes nothing."""

from __future__ import annotations

import itertools
import signal
import time

import pytest
import yaml

from streamd.client import FrameMessage, Subscriber
from tests.helpers import Daemon, NotifySocket, RtspServer, collect, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e


def collect_timed(
    sub: Subscriber, seconds: float, max_messages: int = 10_000
) -> list[tuple[float, FrameMessage]]:
    """Messages received within ``seconds``, each with the monotonic time it arrived."""
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < max_messages and (remaining := deadline - time.monotonic()) > 0:
        msg = sub.recv(timeout_s=min(remaining, 0.5))
        if msg is not None:
            got.append((time.monotonic(), msg))
    return got


def longest_silence(timed: list[tuple[float, FrameMessage]], camera: str) -> float:
    """The longest time between consecutive messages of ``camera``."""
    times = [t for t, m in timed if m.camera == camera]
    return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


@pytest.mark.alone  # it measures another camera's gaps: a test beside it would add its own
def test_sighup_restarts_only_changed_cameras_and_keeps_cameras_whose_edit_is_invalid(tmp_path):
    server = RtspServer(cameras=3).start()
    source = {"read_timeout_s": 2.0, "reconnect": {"initial_s": 0.3, "max_s": 1.0}}
    cameras = {
        "a": {"url": server.camera_url(0), "source": source},
        "b": {"url": server.camera_url(1), "source": source},
        "c": {"url": server.camera_url(2), "source": source},
    }
    port = free_port()
    config = write_config(tmp_path, cameras, port)
    notify = NotifySocket(tmp_path / "notify.sock")
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon = Daemon(config, env={"NOTIFY_SOCKET": str(notify.path)})
    cams = config.parent / "cameras"
    try:
        seen: set[str] = set()
        warm = collect(
            sub, 40, until=lambda got: seen.update(m.camera for m in got[-1:]) or seen >= {"a", "b", "c"}
        )
        assert {m.camera for m in warm} >= {"a", "b", "c"}, daemon.log_path.read_text()[-3000:]
        assert any(m.get("READY") == "1" for m in notify.drain(0.5))
        collect(sub, 2.0)  # steady state

        # Edit c's stream settings, add d, remove b; a is untouched.
        c_source = {**source, "read_timeout_s": 2.5}
        (cams / "c.yaml").write_text(yaml.safe_dump({**cameras["c"], "source": c_source}))
        (cams / "d.yaml").write_text(yaml.safe_dump({"url": server.camera_url(1), "source": source}))
        (cams / "b.yaml").unlink()
        t_hup = time.monotonic()
        daemon.proc.send_signal(signal.SIGHUP)
        timed = collect_timed(sub, 6.0)
        after = [m for _, m in timed]

        reloaded = [e for e in daemon.logs() if e.get("event") == "configuration reloaded"]
        assert reloaded, daemon.log_path.read_text()[-3000:]
        last = reloaded[-1]
        assert (last["added"], last["removed"], last["restarted"], last["updated_in_place"]) == (
            ["d"],
            ["b"],
            ["c"],
            [],
        )
        assert last["unchanged"] == 1

        # a was not reconnected and never paused: its longest silence stays near its frame period.
        status = {c["id"]: c for c in daemon.get_json("/v1/cameras")["cameras"]}
        assert status["a"]["reconnects"] == 0 and status["a"]["state"] == "streaming"
        a_gap = longest_silence(timed, "a")
        assert a_gap < 0.6, a_gap
        assert len([m for m in after if m.camera == "a"]) >= 40  # about 10 fps for 6 s

        # c restarted (new stream: its seq starts again), d started, b stopped.
        c_after = [m for m in after if m.camera == "c"]
        assert c_after and min(m.seq for m in c_after) == 0
        assert any(m.camera == "d" for m in after)
        late_b = [m for t, m in timed if m.camera == "b" and t > t_hup + 1.5]
        assert late_b == []
        assert set(status) == {"a", "c", "d"}
        first_c = min(t for t, m in timed if m.camera == "c" and m.seq == 0)
        print(
            f"reload gap: a longest silence {a_gap * 1000:.0f} ms; c back after {(first_c - t_hup) * 1000:.0f} ms"
        )

        fields = notify.drain(0.5)
        assert any(m.get("RELOADING") == "1" and "MONOTONIC_USEC" in m for m in fields)

        # Settings that do not touch the stream apply in place: d is not reconnected and its
        # frames keep their numbering; the new class filter holds at once.
        d_before = [m for m in after if m.camera == "d"]
        (cams / "d.yaml").write_text(yaml.safe_dump({"url": server.camera_url(1), "source": source,
                                                     "classes": ["person"]}))  # fmt: skip
        daemon.proc.send_signal(signal.SIGHUP)
        timed = collect_timed(sub, 4.0)
        last = [e for e in daemon.logs() if e.get("event") == "configuration reloaded"][-1]
        assert last["updated_in_place"] == ["d"] and last["restarted"] == []
        d_after = [m for _, m in timed if m.camera == "d"]
        assert longest_silence(timed, "d") < 0.6
        assert min(m.seq for m in d_after) > max(m.seq for m in d_before)  # the same stream
        assert {d.class_name for m in d_after[10:] for d in m.detections} <= {"person"}
        status = {c["id"]: c for c in daemon.get_json("/v1/cameras")["cameras"]}
        assert status["d"]["reconnects"] == 0

        # Invalid edits of running cameras are reported and those cameras carry on as they were,
        # while a valid edit made at the same time (a new camera e) is applied.
        (cams / "a.yaml").write_text("url: [unclosed\n")
        (cams / "c.yaml").write_text(yaml.safe_dump({**cameras["c"], "fps": -1}))
        (cams / "e.yaml").write_text(yaml.safe_dump({"url": server.camera_url(0), "source": source}))
        t_bad = time.monotonic()
        daemon.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len([e for e in daemon.logs() if e.get("event") == "configuration reloaded"]) >= 3,
                        10)  # fmt: skip
        last = [e for e in daemon.logs() if e.get("event") == "configuration reloaded"][-1]
        assert last["added"] == ["e"] and last["kept_running_invalid_file"] == ["a", "c"]
        reported = [e for e in daemon.logs()
                    if e.get("event") == "camera file invalid; camera keeps its previous configuration"]  # fmt: skip
        problems = " ".join(p for e in reported for p in e["problems"])
        assert "a.yaml: invalid YAML" in problems and "c.yaml: fps" in problems
        bad = collect_timed(sub, 3.0)
        assert {m.camera for t, m in bad if t > t_bad + 1.5} == {"a", "c", "d", "e"}
        status = daemon.get_json("/v1/cameras")["cameras"]
        running = {c["id"]: c for c in status if c["state"] != "invalid"}
        assert all(c["reconnects"] == 0 and c["state"] == "streaming" for c in running.values()), status
        assert {c["id"] for c in status if c["state"] == "invalid"} == {"a", "c"}
        code, body = daemon.get("/healthz")
        assert code == 503 and "camera file invalid" in body.decode()

        # An invalid streamd.yaml is rejected whole: nothing changes.
        daemon_yaml = config.read_text()
        config.write_text(daemon_yaml + "stall_timeout_s: fast\n")
        daemon.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any(e.get("event") == "reload rejected; the running configuration stays"
                                    for e in daemon.logs()), 10)  # fmt: skip
        config.write_text(daemon_yaml)
        assert {m.camera for t, m in collect_timed(sub, 2.0)} == {"a", "c", "d", "e"}
        assert daemon.proc.poll() is None
    finally:
        code, _ = daemon.stop()
        sub.close()
        server.kill()
    assert code == 0
    assert any(m.get("STOPPING") == "1" for m in notify.drain(0.3))
    notify.close()
