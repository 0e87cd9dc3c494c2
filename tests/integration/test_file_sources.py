"""File sources: paced like a camera and looped, or replayed as fast as the worker goes."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import av
import pytest

from streamd.client import Subscriber
from tests.helpers import VIDEO, Daemon, collect, free_port, wait_for, write_config


def short_clip(path: Path, packets: int) -> Path:
    """The first ``packets`` packets of the shared video, remuxed (no re-encoding)."""
    with av.open(str(VIDEO)) as src, av.open(str(path), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for i, packet in enumerate(src.demux(stream)):
            if i >= packets or packet.dts is None:
                break
            packet.stream = out
            dst.mux(packet)
    return path


def test_replay_processes_every_frame_in_order_and_stops_at_the_end(tmp_path):
    clip = short_clip(tmp_path / "clip.mp4", 40)
    port = free_port()
    config = write_config(
        tmp_path / "cfg", {"replay": {"url": str(clip), "source": {"realtime": False, "loop": False}}}, port
    )
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon = Daemon(config, stats_interval=0.5)
    try:
        messages = collect(sub, 40, until=lambda got: bool(got) and got[-1].seq == 39)
        # The camera stops once its last frame is in the slot, a moment before the worker
        # has counted it: wait for a status line that shows both.
        assert wait_for(
            lambda: (
                (daemon.status("replay") or {}).get("state") == "stopped"
                and (daemon.status("replay") or {}).get("processed") == 40
            ),
            10,
        ), daemon.status("replay")
        status = daemon.status("replay")
    finally:
        code, _ = daemon.stop()
        sub.close()
    # A ZeroMQ subscriber can miss the first messages while it joins (slow joiner);
    # everything after is there, in order, and the counters show all 40 processed.
    first = messages[0].seq
    assert [m.seq for m in messages] == list(range(first, 40))
    assert status["dropped"] == 0
    assert status["processed"] == 40
    assert code == 0


@pytest.mark.alone
def test_paced_file_runs_at_its_native_rate_and_loops(tmp_path):
    clip = short_clip(tmp_path / "clip.mp4", 20)  # 2 s at 10 fps
    port = free_port()
    config = write_config(tmp_path / "cfg", {"loop": {"url": str(clip)}}, port)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    daemon = Daemon(config)
    try:
        collect(sub, 30, until=lambda got: len(got) >= 1)
        messages = collect(sub, 5.0)
    finally:
        code, _ = daemon.stop()
        sub.close()
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(messages)]
    assert 42 <= len(messages) <= 52  # 5 s at 10 fps
    assert 0.09 <= statistics.median(gaps) <= 0.11
    assert messages[-1].seq >= 40  # it went past the 20-frame end: looped, seq still counting up
    assert code == 0
