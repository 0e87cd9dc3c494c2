"""The daemon run as a user runs it: real RTSP cameras, the real model, a real ZeroMQ subscriber."""

from __future__ import annotations

import itertools
import json
import signal
import statistics
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from streamd.client import FrameMessage, Subscriber
from streamd.message import load_schema
from tests.helpers import Daemon, RtspServer, collect, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e

FAST_RECONNECT = {"reconnect": {"initial_s": 0.3, "max_s": 1.0}}


def log_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()


def longest_run_of_one_track(messages: list[FrameMessage], class_name: str) -> int:
    """The most consecutive messages in which one track id of ``class_name`` appears."""
    best: dict[int, int] = defaultdict(int)
    current: dict[int, int] = {}
    for msg in messages:
        ids = {d.track_id for d in msg.detections if d.class_name == class_name and d.track_id is not None}
        current = {tid: current.get(tid, 0) + 1 for tid in ids}
        for tid, run in current.items():
            best[tid] = max(best[tid], run)
    return max(best.values(), default=0)


def start(tmp_path: Path, cameras: dict[str, dict]) -> tuple[Daemon, Subscriber, int]:
    port = free_port()
    config = write_config(tmp_path, cameras, port)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    return Daemon(config), sub, port


def run_until(
    tmp_path: Path, cameras: dict[str, dict], count: int, seconds: float
) -> tuple[list[FrameMessage], int]:
    """Run the daemon until ``count`` messages arrived (or ``seconds`` passed); the messages and its exit code."""
    daemon, sub, _ = start(tmp_path, cameras)
    try:
        messages = collect(sub, seconds, until=lambda got: len(got) >= count)
    finally:
        code, _ = daemon.stop()
        sub.close()
    assert len(messages) >= count, daemon.log_path.read_text()[-2000:]
    return messages, code


@pytest.mark.alone
def test_people_are_detected_and_keep_their_track_id(tmp_path, rtsp_camera):
    cameras = {"entrance": {"url": rtsp_camera.url, "classes": ["person", "car"]}}
    messages, code = run_until(tmp_path, cameras, count=60, seconds=30)
    schema = load_schema()
    for msg in messages[:5]:
        jsonschema.validate(msg.raw, schema)
    assert all(m.camera == "entrance" and (m.width, m.height) == (768, 576) for m in messages)
    seqs = [m.seq for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    people = [sum(d.class_name == "person" for d in m.detections) for m in messages]
    assert statistics.median(people) >= 4
    assert {d.class_name for m in messages for d in m.detections} <= {"person", "car"}
    assert longest_run_of_one_track(messages, "person") >= 20
    assert code == 0


def test_killed_camera_reconnects_once_its_server_is_back(tmp_path, rtsp_servers):
    server = RtspServer().start()
    rtsp_servers.append(server)
    daemon, sub, _ = start(tmp_path, {"yard": {"url": server.url, "source": FAST_RECONNECT}})
    try:
        before = collect(sub, 20, until=lambda got: len(got) >= 10)
        assert len(before) >= 10
        server.kill()
        killed_at = time.time()
        assert wait_for(lambda: any(e.get("event") == "camera down" for e in daemon.logs()), 10)
        down = next(e for e in daemon.logs() if e.get("event") == "camera down")
        assert "stream ended" in down["error"]
        noticed_s = log_time(down) - killed_at
        time.sleep(1.0)
        server.start()
        back_at = time.time()
        after = collect(sub, 20, until=lambda got: len(got) >= 5)
        resumed_s = time.time() - back_at
        assert wait_for(lambda: (daemon.status("yard") or {}).get("reconnects", 0) >= 1, 5)
    finally:
        code, _ = daemon.stop()
        sub.close()
    print(
        f"\ndead camera noticed after {noticed_s:.2f} s; results again {resumed_s:.2f} s after the server returned"
    )
    assert len(after) >= 5, daemon.log_path.read_text()[-2000:]
    assert after[0].seq > before[-1].seq  # seq is kept across reconnects
    assert noticed_s < 3.0
    assert code == 0


def test_the_first_picture_a_camera_sends_is_published_on_connect_and_on_every_reconnect(
    tmp_path, rtsp_servers
):
    # Like many IP cameras, this one sends SPS/PPS only in band and starts each session with a
    # keyframe, then one every 2 s (the shared video's 10-frame GOP, served at 5 fps). Losing
    # the session's first packet would mean nothing until the next keyframe, 2 s later.
    server = RtspServer(fps=5, in_band=True).start()
    rtsp_servers.append(server)
    daemon, sub, _ = start(tmp_path, {"door": {"url": server.url, "source": FAST_RECONNECT}})
    firsts: list[tuple[float, list[FrameMessage]]] = []
    try:
        for attempt in range(2):
            messages = collect(sub, 20, until=lambda got: len(got) >= 5)
            connected = [e for e in daemon.logs() if e.get("event") == "camera connected"]
            assert len(connected) == attempt + 1 and len(messages) >= 5, daemon.log_path.read_text()[-2000:]
            firsts.append((log_time(connected[-1]), messages))
            if attempt == 0:
                server.kill()
                assert wait_for(lambda: any(e.get("event") == "camera down" for e in daemon.logs()), 10)
                collect(sub, 0.5)  # what was still in flight
                server.start()
    finally:
        daemon.stop()
        sub.close()
    for connected_at, messages in firsts:
        delay = messages[0].ts - connected_at
        print(f"\nfirst picture arrived {delay:.3f} s after the camera connected")
        assert delay < 1.0, delay  # a lost keyframe makes it about 2 s
        # No backlog: the pictures after it arrived one frame period (0.2 s) apart, not in a burst.
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(messages[:5])]
        assert min(gaps) > 0.1, gaps


@pytest.mark.alone
def test_a_camera_capped_at_its_keyframe_rate_decodes_only_keyframes(tmp_path, rtsp_servers):
    # The shared video has a keyframe every second; both cameras are capped at 1 fps.
    server = RtspServer(cameras=2).start()
    rtsp_servers.append(server)
    cameras = {"auto": {"url": server.camera_url(0), "fps": 1},
               "every": {"url": server.camera_url(1), "fps": 1, "source": {"decode": "all"}}}  # fmt: skip
    daemon, sub, _ = start(tmp_path, cameras)
    try:
        assert wait_for(lambda: _camera(daemon, "auto").get("decoding") == "keyframes", 20)
        before = {cid: _camera(daemon, cid) for cid in cameras}
        messages = collect(sub, 6)
        after = {cid: _camera(daemon, cid) for cid in cameras}
    finally:
        daemon.stop()
        sub.close()
    delta = {
        cid: {k: after[cid][k] - before[cid][k] for k in ("decoded", "processed", "cpu_s")} for cid in cameras
    }
    print(f"\nover ~6 s: {delta}")
    assert _camera_value(after, "every", "decoding") == "all"
    # Keyframes only: about one picture decoded a second, every one of them detected.
    assert 3 <= delta["auto"]["decoded"] <= 9 and delta["auto"]["processed"] >= delta["auto"]["decoded"] - 2
    assert delta["every"]["decoded"] >= 5 * delta["auto"]["decoded"]  # 10 a second, for the same 1 fps
    assert 3 <= delta["every"]["processed"] <= 9
    assert delta["auto"]["cpu_s"] < delta["every"]["cpu_s"]
    people = [
        m for m in messages if m.camera == "auto" and any(d.class_name == "person" for d in m.detections)
    ]
    assert len(people) >= 3


def _camera(daemon: Daemon, camera: str) -> dict:
    code, body = daemon.get("/v1/cameras")
    cameras = json.loads(body)["cameras"] if code in (200, 503) else []
    return next((c for c in cameras if c["id"] == camera), {})


def _camera_value(rows: dict[str, dict], camera: str, key: str) -> object:
    return rows[camera].get(key)


@pytest.mark.alone  # it measures another camera's gaps: a test beside it would add its own
def test_hung_camera_is_detected_within_the_read_timeout_while_another_keeps_publishing(
    tmp_path, rtsp_servers
):
    hung, healthy = RtspServer().start(), RtspServer().start()
    rtsp_servers.extend([hung, healthy])
    source = {"read_timeout_s": 2.0, **FAST_RECONNECT}
    daemon, sub, _ = start(
        tmp_path, {"hung": {"url": hung.url, "source": source}, "ok": {"url": healthy.url}}
    )
    try:
        warm = collect(sub, 25, until=lambda got: {m.camera for m in got} == {"hung", "ok"} and len(got) > 20)
        assert {m.camera for m in warm} == {"hung", "ok"}, daemon.log_path.read_text()[-2000:]
        hung.pause()
        paused_at = time.time()
        during = collect(sub, 6.0)
        hung.resume()
        downs = [e for e in daemon.logs() if e.get("event") == "camera down" and e.get("camera") == "hung"]
        after = collect(sub, 20, until=lambda got: sum(m.camera == "hung" for m in got) >= 5)
    finally:
        code, _ = daemon.stop()
        sub.close()
    assert downs, daemon.log_path.read_text()[-2000:]
    assert "hung" in downs[0]["error"]
    detected_s = log_time(downs[0]) - paused_at
    ok_times = [m.ts for m in during if m.camera == "ok"]
    gaps = [b - a for a, b in itertools.pairwise(ok_times)]
    print(
        f"\nhung camera detected after {detected_s:.2f} s (read timeout 2 s); healthy camera max gap {max(gaps):.2f} s"
    )
    assert detected_s <= 2.0 + 1.0
    assert len(ok_times) >= 40  # 6 s at 10 fps, minus slack
    assert max(gaps) < 0.5
    assert sum(m.camera == "hung" for m in after) >= 5  # it came back once resumed
    assert code == 0


def test_unreachable_cameras_at_start_do_not_delay_the_others(tmp_path, rtsp_servers):
    healthy, frozen, silent = RtspServer().start(), RtspServer().start(), RtspServer().start()
    rtsp_servers.extend([healthy, frozen, silent])
    frozen.pause()  # accepts TCP connections (kernel) but never answers RTSP
    silent.pause()
    refused = f"rtsp://127.0.0.1:{free_port()}/nothing"
    cameras = {
        "refused": {"url": refused, "source": FAST_RECONNECT},
        # The whole open may take 3 s; each answer could take 5 (half the read timeout).
        "frozen": {
            "url": frozen.url,
            "source": {"open_timeout_s": 3.0, "read_timeout_s": 10.0, **FAST_RECONNECT},
        },
        # Each answer may take 2 s; the whole open 10 (the default).
        "silent": {"url": silent.url, "source": {"read_timeout_s": 4.0, **FAST_RECONNECT}},
        "ok": {"url": healthy.url},
    }
    daemon, sub, _ = start(tmp_path, cameras)
    try:
        first = collect(sub, 30, until=lambda got: len(got) >= 1)
        got = collect(sub, 5)
        assert wait_for(lambda: (daemon.status("refused") or {}).get("reconnects", 0) >= 2, 10)
        refused_status = daemon.status("refused")
        frozen_status = daemon.status("frozen")
        silent_status = daemon.status("silent")
    finally:
        code, _ = daemon.stop()
        sub.close()
    logs = daemon.logs()

    def first_log(event: str, camera: str) -> float:
        return min(log_time(e) for e in logs if e.get("event") == event and e.get("camera") == camera)

    assert first and first[0].camera == "ok"
    # The healthy camera streamed before either silent one gave up on its first open.
    assert first_log("camera streaming", "ok") < first_log("camera down", "frozen")
    assert first_log("camera streaming", "ok") < first_log("camera down", "silent")
    assert {m.camera for m in got} == {"ok"}
    assert len(got) >= 40
    assert refused_status["state"] in ("reconnecting", "connecting")
    assert "refused" in refused_status["last_error"]
    # Each silent camera says which of its timeouts ran out, in its own keys.
    assert frozen_status["state"] in ("reconnecting", "connecting")
    assert "not open within source.open_timeout_s (3 s)" in frozen_status["last_error"], frozen_status
    assert silent_status["state"] in ("reconnecting", "connecting")
    assert "no answer within 2 s (half of source.read_timeout_s)" in silent_status["last_error"], (
        silent_status
    )
    assert code == 0


@pytest.mark.alone
def test_a_detector_slower_than_the_camera_drops_frames_instead_of_falling_behind(tmp_path, rtsp_servers):
    fast = RtspServer(fps=100).start()  # far above what a 2-core CPU can infer
    rtsp_servers.append(fast)
    daemon, sub, _ = start(tmp_path, {"fast": {"url": fast.url}})
    try:
        messages = collect(sub, 30, until=lambda got: len(got) >= 1)
        arrival: list[tuple[float, FrameMessage]] = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            msg = sub.recv(timeout_s=0.5)
            if msg is not None:
                arrival.append((time.time(), msg))
        early = daemon.status("fast")
        time.sleep(2.5)
        late = daemon.status("fast")
    finally:
        code, _ = daemon.stop()
        sub.close()
    assert messages and len(arrival) > 50
    ages = [now - msg.ts for now, msg in arrival]
    third = len(ages) // 3
    print(f"\nmessage age: first third median {statistics.median(ages[:third]) * 1000:.0f} ms, "
          f"last third median {statistics.median(ages[-third:]) * 1000:.0f} ms, max {max(ages) * 1000:.0f} ms; "
          f"processed {late['processed']} of {late['decoded']} decoded, dropped {late['dropped']}")  # fmt: skip
    assert max(ages) < 0.5  # no queue anywhere: every result is about the newest frame
    assert statistics.median(ages[-third:]) < statistics.median(ages[:third]) + 0.05
    seqs = [m.seq for _, m in arrival]
    assert any(b - a > 1 for a, b in itertools.pairwise(seqs))  # gaps: frames dropped, not processed
    assert late["dropped"] > early["dropped"] > 0
    assert code == 0


def test_sigterm_stops_within_5_seconds_even_with_a_hung_camera(tmp_path, rtsp_servers):
    healthy, hung = RtspServer().start(), RtspServer().start()
    rtsp_servers.extend([healthy, hung])
    daemon, sub, _ = start(tmp_path, {"ok": {"url": healthy.url}, "hung": {"url": hung.url}})
    try:
        collect(sub, 25, until=lambda got: {m.camera for m in got} == {"ok", "hung"})
        hung.pause()  # its camera thread is now blocked in a read with a 5 s timeout
        time.sleep(0.5)
        code, took = daemon.stop(signal.SIGTERM)
    finally:
        sub.close()
    print(f"\nSIGTERM to exit: {took:.2f} s")
    assert code == 0
    assert took < 5.0
    assert any(e.get("event") == "streamd stopped" for e in daemon.logs())


def test_sigint_stops_cleanly(tmp_path, rtsp_camera):
    daemon, sub, _ = start(tmp_path, {"ok": {"url": rtsp_camera.url}})
    try:
        assert collect(sub, 25, until=lambda got: len(got) >= 3)
        code, took = daemon.stop(signal.SIGINT)
    finally:
        sub.close()
    assert code == 0
    assert took < 5.0


def test_rtsp_over_udp(tmp_path, rtsp_camera):
    cameras = {"udp": {"url": rtsp_camera.url, "source": {"rtsp_transport": "udp"}}}
    messages, code = run_until(tmp_path, cameras, count=20, seconds=25)
    assert any(d.class_name == "person" for m in messages for d in m.detections)
    assert code == 0
