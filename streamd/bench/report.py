"""Benchmark reports for people: a short table, and a PNG of latency and fps over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["capacity_line", "capacity_summary", "format_table", "plot"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _setup_line(report: dict[str, Any]) -> str:
    setup = report["setup"]
    rates = ",".join(f"{f:g}" for f in setup["fps"])
    extra = "".join(
        f", {label} {setup[key]}"
        for key, label in (("cap", "fps cap"), ("decode", "decode"))
        if setup.get(key)
    )
    return (
        f"streamd bench: {setup['cameras']} camera(s) x {rates} fps ({setup['source']}, "
        f"{setup.get('size', '?')}{extra}), {setup['duration_s']:g} s, "
        f"{Path(setup['model']).name} on {setup['provider']}"
    )


def format_table(report: dict[str, Any]) -> str:
    """The report as a few aligned lines."""
    ceiling, total, proc = report["ceiling"], report["total"], report["process"]
    limit = report.get("limit", {})
    lines = [
        _setup_line(report),
        f"machine: {report['machine']['cores']} cores, {report['machine']['cpu']}"
        + (f", {report['machine']['gpu']}" if report["machine"].get("gpu") else ""),
        f"ceiling: model-only {ceiling['fps']:.1f} fps "
        f"({ceiling.get('workers', 1)} session(s), batch {ceiling['batch']}"
        + (f", input {ceiling['input']}" if ceiling.get("input") else "")
        + ", "
        f"{ceiling['latency_ms_p50']:.1f} ms, {ceiling.get('cpu_ms_per_frame', 0):.1f} ms CPU per frame), "
        f"decode-only {ceiling['decode_fps']:.0f} fps ({ceiling['decode_bgr_fps']:.0f} with BGR conversion)",
        f"limit once decoding is paid: {_num(limit.get('fps'), 1)} fps = ({limit.get('cores', 0):g} cores"
        f" - {limit.get('decode_cores', 0):.2f} decoding {limit.get('decoded_fps', 0):.0f} frames/s"
        f" - {limit.get('others_cores', 0):.2f} cameras and subscriber)"
        f" / {limit.get('model_cpu_ms_per_frame', 0)} ms per frame",
        "",
        f"{'camera':<8}{'offered':>9}{'target':>8}{'decoded':>9}{'processed':>11}{'p50':>6}{'p95':>6}{'p99':>6}"
        f"{'max':>6}{'growth':>8}{'first':>7}{'cpu':>7}",
    ]
    rows = [*report["cameras"].items(), ("total", total)]
    for name, row in rows:
        lat = row["latency_ms"]
        growth = _num(row.get("growth"), 2)
        first = row.get("first_result_s")
        first_text = "-" if first is None else f"{first:.2f}s"
        decoded = row.get("decoded_fps", limit.get("decoded_fps") if name == "total" else None)
        lines.append(
            f"{name:<8}{row['offered_fps']:>9.1f}{row.get('target_fps', row['offered_fps']):>8.1f}"
            f"{_num(decoded, 1):>9}{row['processed_fps']:>11.1f}"
            f"{_ms(lat['p50']):>6}{_ms(lat['p95']):>6}{_ms(lat['p99']):>6}{_ms(lat['max']):>6}"
            f"{growth:>8}{first_text:>7}{_pct(row.get('camera_cpu_percent')):>7}"
        )
    lines += [
        "(target: the camera's rate or its fps cap; latency: capture to publish, ms;"
        " growth: p99 of the last 10 s / first 10 s; first: stream open to first result;"
        " cpu: the camera's thread, reading and decoding, % of a core)",
        "",
        f"processed/target {_num(total.get('target_ratio'), 3)}, processed/model ceiling "
        f"{_num(total['ceiling_ratio'], 3)}, processed/limit once decoding is paid"
        f" {_num(limit.get('ratio'), 3)}, min fair share {_num(total['min_fair_share'], 2)}",
        f"daemon: CPU {proc['cpu_percent']:.0f}% "
        f"({proc['cpu_ms_per_processed_frame']} ms CPU per processed frame), "
        f"RSS {proc['rss_mb']:.0f} MB, peak {proc['peak_rss_mb']:.0f} MB",
        "daemon threads, ms CPU per processed frame: " + (_threads(proc) or "-"),
        "sessions busy (share of the time on frames): "
        + (", ".join(f"{name} {share:.2f}" for name, share in proc.get("workers_busy", {}).items()) or "-"),
        "same machine: "
        + ", ".join(f"{k} CPU {v:.0f}%" for k, v in report.get("others_cpu_percent", {}).items()),
    ]
    return "\n".join(lines)


def _worst_share(report: dict[str, Any]) -> float:
    """The lowest share of its target (rate or cap) that any camera processed."""
    return min((c["target_ratio"] or 0.0) for c in report["cameras"].values())


def capacity_line(report: dict[str, Any], hold: float, header: bool = False) -> str:
    """One camera count of a cameras-per-device sweep; with ``header``, what ran and the columns first."""
    total, cameras = report["total"], report["cameras"]
    camera_cpu = sum(c.get("camera_cpu_percent") or 0.0 for c in cameras.values()) / len(cameras)
    server = report.get("others_cpu_percent", {}).get("rtsp_server", 0.0)
    worst = _worst_share(report)
    line = (
        f"{len(cameras):>7} {total['target_fps']:>7.1f} {total['processed_fps']:>9.1f} {worst:>6.3f}"
        f" {_ms(total['latency_ms']['p95']):>5} {report['process']['cpu_percent']:>6.0f}%"
        f" {camera_cpu:>6.1f}% {server:>6.0f}% {'yes' if worst >= hold else 'no':>5}"
    )
    if not header:
        return line
    columns = (
        f"{'cameras':>7} {'target':>7} {'processed':>9} {'worst':>6} {'p95':>5} {'daemon':>7}"
        f" {'camera':>7} {'server':>7} {'held':>5}"
    )
    legend = (
        "(target, processed: frames/s in all; worst: the lowest camera's share of its target;"
        " camera: one camera's thread, % of a core; server: the simulated cameras on the same cores)"
    )
    setup = _setup_line(report).replace(f"{len(cameras)} camera(s)", "N cameras")
    return "\n".join((setup, legend, columns, line))


def capacity_summary(reports: list[dict[str, Any]], hold: float) -> dict[str, Any]:
    """A sweep's result: the largest camera count held (every camera >= ``hold`` of its target), each run."""
    held = [len(r["cameras"]) for r in reports if _worst_share(r) >= hold]
    return {"schema": "streamd.bench-capacity/1", "hold": hold, "held": max(held, default=0), "runs": reports}


def _threads(proc: dict[str, Any]) -> str:
    kinds = proc.get("threads_cpu_ms_per_processed_frame", {})
    return ", ".join(f"{kind} {ms}" for kind, ms in kinds.items())


def plot(report: dict[str, Any], path: Path) -> None:
    """Latency and processed fps per second, as a PNG. Needs matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'streamd[bench]'") from exc
    rows = report["timeline"]
    t = [r["t"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(t, [r["latency_p50_ms"] for r in rows], label="p50")
    ax1.plot(t, [r["latency_max_ms"] for r in rows], label="max")
    ax1.set_ylabel("capture to publish (ms)")
    ax1.legend()
    ax2.plot(t, [r["fps"] for r in rows], label="processed")
    ax2.axhline(report["total"]["target_fps"], color="grey", linestyle="--", label="target")
    ax2.axhline(report["ceiling"]["fps"], color="red", linestyle=":", label="model-only ceiling")
    ax2.set_ylabel("frames/s (all cameras)")
    ax2.set_xlabel("seconds")
    ax2.legend()
    setup = report["setup"]
    rates = ",".join(f"{f:g}" for f in setup["fps"])
    fig.suptitle(f"streamd bench: {setup['cameras']} x {rates} fps, {Path(setup['model']).name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
