"""`streamd bench` smoke test: a few seconds, checking the report's shape and sanity (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamd.bench.stats import Received, camera_report, growth, total_report


@pytest.mark.alone
def test_bench_runs_the_real_pipeline_and_reports_sane_numbers(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    done = subprocess.run(
        [sys.executable, "-m", "streamd", "bench", "--cameras", "2", "--fps", "10", "--duration", "4",
         "--warmup", "1", "--ceiling-seconds", "1", "--json", str(out), "--plot", str(png)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["schema"] == "streamd.bench/1"
    assert report["machine"]["cores"] >= 1
    assert "onnxruntime-gpu" in report["machine"]["versions"]
    assert report["ceiling"]["fps"] > 0
    assert report["ceiling"]["decode_fps"] > 0
    assert set(report["cameras"]) == {"cam0", "cam1"}
    for row in report["cameras"].values():
        assert row["processed"] > 0
        assert 0 < row["processed_ratio"] <= 1.0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"] <= row["latency_ms"]["max"]
        assert 0 < row["first_result_s"] < 10
        assert row["decoded_fps"] > 5
    total = report["total"]
    assert 0 < total["ceiling_ratio"] <= 1.5
    limit = report["limit"]
    assert 0 < limit["decode_cores"] < limit["cores"] and limit["decoded_fps"] > 15
    assert limit["model_cpu_ms_per_frame"] > 0 and 0 < limit["ratio"] <= 1.5
    assert 0 < total["min_fair_share"] <= 1.5
    assert report["process"]["peak_rss_mb"] > 50
    assert report["process"]["cpu_percent"] > 0
    threads = report["process"]["threads_cpu_ms_per_processed_frame"]  # the daemon names its threads
    assert threads["worker"] > 0 and threads["camera"] > 0, threads
    assert "daemon threads, ms CPU per processed frame: worker" in done.stdout
    busy = report["process"]["workers_busy"]  # each session's share of the window on frames
    assert busy and all(0 < share <= 1.05 for share in busy.values()), busy
    assert len(report["timeline"]) == 4
    assert png.stat().st_size > 10_000
    assert "processed/model ceiling" in done.stdout


def test_several_camera_counts_find_how_many_this_machine_holds(tmp_path):
    # Not `alone`: it asserts the sweep's shape and its rule for held, no rate or timing.
    out = tmp_path / "capacity.json"
    done = subprocess.run(
        [sys.executable, "-m", "streamd", "bench", "--cameras", "1,2", "--fps", "5", "--duration", "2",
         "--warmup", "0.5", "--ceiling-seconds", "0.5", "--json", str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["schema"] == "streamd.bench-capacity/1"
    assert [len(run["cameras"]) for run in summary["runs"]] == [1, 2]
    held = [
        len(r["cameras"])
        for r in summary["runs"]
        if min(c["target_ratio"] for c in r["cameras"].values()) >= 0.95
    ]
    assert summary["held"] == max(held, default=0)
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"] and all(row[-1] in ("yes", "no") for row in rows)
    assert f"held: {summary['held']} camera(s)" in done.stdout


def test_bench_statistics_count_drops_from_seq_gaps():
    msgs = [
        Received("a", seq, t_recv=100 + i * 0.2, total_ms=20 + i) for i, seq in enumerate(range(0, 100, 2))
    ]
    row = camera_report(msgs, offered_fps=10, duration_s=10)
    assert row["offered"] == 99
    assert row["processed"] == 50
    assert row["dropped"] == 49
    targets = {"a": (10.0, 10.0), "b": (10.0, 10.0)}
    total = total_report({"a": msgs, "b": msgs[:25]}, targets, duration_s=10, model_ceiling_fps=15)
    assert total["min_fair_share"] == round(2.5 / 3.75, 3)
    assert total["ceiling_ratio"] == round(7.5 / 15, 3)
    # A camera capped at 2 fps that gets its 2 fps is served in full, as is one at 5 of its 5.
    capped = camera_report(msgs[:20], offered_fps=25, duration_s=10, target_fps=2)
    assert capped["target_ratio"] == 1.0
    fair = total_report({"a": msgs[:20], "b": msgs}, {"a": (25.0, 2.0), "b": (10.0, 5.0)}, 10, None)
    assert fair["target_ratio"] == 1.0
    assert fair["min_fair_share"] == 1.0
    # A run where nothing was processed reports no share rather than failing.
    nothing = total_report({"a": [], "b": []}, targets, 10, 15)
    assert nothing["min_fair_share"] is None and nothing["target_ratio"] == 0.0


def test_growth_compares_the_last_10_s_with_the_first():
    steady = [Received("a", i, t_recv=i * 0.1, total_ms=20.0) for i in range(300)]
    assert growth(steady) == 1.0
    rising = [Received("a", i, t_recv=i * 0.1, total_ms=20.0 + i) for i in range(300)]
    assert growth(rising) > 2
    assert growth(steady[:150]) is None  # too short for two 10 s windows
