"""Run a benchmark: RTSP cameras on loopback, the daemon as a subprocess, a subscriber here."""

from __future__ import annotations

import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import av
import yaml

from streamd.bench.ceiling import decode_ceiling, model_ceiling
from streamd.bench.stats import Received, camera_report, timeline, total_report
from streamd.client import Subscriber
from streamd.config import ModelConfig
from streamd.detect.session import default_threads
from streamd.loading import default_workers
from streamd.simulate.clips import ClipSpec, make_clip

__all__ = ["BenchOptions", "machine_info", "run_bench"]

RTSP_SERVER = Path(__file__).resolve().parents[1] / "simulate" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class BenchOptions:
    cameras: int
    fps: tuple[float, ...]  # each camera's rate, in turn: (10, 25) gives 10, 25, 10, 25, ...
    duration_s: float
    warmup_s: float
    model: Path
    family: str
    provider: str
    video: Path
    source: str  # "rtsp" or "file"
    max_batch: int
    threads: int | None
    workers: int | None
    pipeline: str
    ceiling_s: float
    command: str
    cap: float | None = None  # the cameras' fps cap (camera file ``fps``)
    decode: str | None = None  # the cameras' source.decode: auto, all, keyframes
    size: tuple[int, int] | None = None  # re-encode the video to this size (a cached clip)
    gop: int | None = None  # ... with a keyframe every gop frames (default: one a second)

    def rate(self, camera: int) -> float:
        return self.fps[camera % len(self.fps)]

    def target(self, camera: int) -> float:
        """The frames a second a camera should reach detection at: its rate, or its cap."""
        rate = self.rate(camera)
        return min(rate, self.cap) if self.cap else rate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, GPU and versions, for the report."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            [shutil.which("nvidia-smi") or "nvidia-smi", "-L"], capture_output=True, text=True, check=False
        )
        gpu = done.stdout.strip() or None
    versions = {}
    for pkg in (
        "streamd",
        "onnxruntime-gpu",
        "onnxruntime",
        "av",
        "numpy",
        "opencv-python",
        "trackers",
        "pyzmq",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _stat_cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class _Proc:
    """CPU time and memory of a process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        return _stat_cpu_s(Path(f"/proc/{self.pid}/stat"))

    def threads_cpu_s(self) -> dict[str, float]:
        """CPU of the process's live threads by kind: the OS name up to its first ``/`` (``camera``,
        ``worker``, ``sink``...; the daemon names its threads so), ``other`` for the rest."""
        kinds: dict[str, float] = defaultdict(float)
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                cpu = _stat_cpu_s(task / "stat")
            except OSError:  # the thread ended meanwhile
                continue
            kinds[name.split("/", 1)[0] if "/" in name else "other"] += cpu
        return dict(kinds)

    def memory_mb(self) -> tuple[float, float]:
        """Current and peak resident memory."""
        rss = hwm = 0.0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
        return rss, hwm


def _start_rtsp(opts: BenchOptions, port: int) -> subprocess.Popen[str]:
    cmd = [SYSTEM_PYTHON, str(RTSP_SERVER), "--file", str(opts.video), "--port", str(port)]
    cmd += ["--cameras", str(opts.cameras), "--fps", ",".join(f"{f:g}" for f in opts.fps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY"):
                return proc
            if not line:
                break
    proc.kill()
    raise RuntimeError(
        f"the RTSP test server did not start (needs {SYSTEM_PYTHON} with GStreamer's RTSP server)"
    )


def _write_config(opts: BenchOptions, root: Path, ports: dict[str, int]) -> Path:
    (root / "cameras").mkdir(parents=True)
    model = {
        "path": str(opts.model),
        "family": opts.family,
        "provider": opts.provider,
        "max_batch": opts.max_batch,
        "pipeline": opts.pipeline,
    }
    if opts.threads:
        model["threads"] = opts.threads
    if opts.workers:
        model["workers"] = opts.workers
    daemon = {
        "models": {"default": model},
        "state_dir": str(root / "state"),
        "zmq": {"endpoint": f"tcp://127.0.0.1:{ports['zmq']}", "send_hwm": 10000},
        "log": {"format": "json"},
        "http": {"listen": f"127.0.0.1:{ports['http']}"},  # the cameras' counters, at the start and end
    }
    (root / "streamd.yaml").write_text(yaml.safe_dump(daemon))
    for i in range(opts.cameras):
        camera: dict[str, Any]
        if opts.source == "rtsp":
            camera = {"url": f"rtsp://127.0.0.1:{ports['rtsp']}/cam{i}", "source": {}}
        else:
            camera = {"url": str(opts.video), "source": {"realtime": True, "loop": True}}
        if opts.cap:
            camera["fps"] = opts.cap
        if opts.decode:
            camera["source"]["decode"] = opts.decode
        (root / "cameras" / f"cam{i}.yaml").write_text(yaml.safe_dump(camera))
    return root / "streamd.yaml"


def _connected_times(log_path: Path) -> dict[str, float]:
    """Wall time each camera's stream first opened, from the daemon's JSON log."""
    times: dict[str, float] = {}
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == "camera connected" and entry.get("camera") not in times:
            ts = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            times[entry["camera"]] = ts
    return times


@dataclass
class _Measured:
    per_camera: dict[str, list[Received]]
    first_recv: dict[str, float]
    samples: list[dict[str, float]]
    t_start: float
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    others_cpu_s: dict[str, float]
    counted: dict[str, dict[str, float]]  # each camera's counters over the window (decoded, cpu_s, ...)
    threads_cpu_s: dict[str, float]  # the daemon's CPU over the window by kind of thread


Counters = Callable[[], dict[str, dict[str, float]]]


_WORKER = "worker/"  # the key prefix of a worker's counters among the cameras'


def _http_counters(port: int) -> Counters:
    """Each camera's counters, and each worker's (``worker/<name>``), from the daemon's /v1/cameras."""

    def read() -> dict[str, dict[str, float]]:
        url = f"http://127.0.0.1:{port}/v1/cameras"
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.loads(response.read())
        keys = ("decoded", "skipped", "dropped", "processed", "cpu_s")
        counters = {c["id"]: {k: float(c.get(k, 0)) for k in keys} for c in status["cameras"]}
        for name, worker in status.get("workers", {}).items():
            counters[_WORKER + name] = {k: float(worker.get(k, 0)) for k in ("busy_s", "cpu_s")}
        return counters

    return read


def _wait_for_every_camera(
    sub: Subscriber, daemon: subprocess.Popen[bytes], cameras: int, log: Path
) -> dict[str, float]:
    first_recv: dict[str, float] = {}
    started = time.time()
    while len(first_recv) < cameras and time.time() - started < 60:
        got = sub.recv_raw(timeout_s=0.5)
        if got is not None:
            first_recv.setdefault(got[0].removeprefix("streamd/"), time.time())
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited early; see {log}")
    return first_recv


def _measure(
    sub: Subscriber,
    proc: _Proc,
    others: dict[str, _Proc],
    window: tuple[float, float],
    counters: Counters,
) -> _Measured:
    """Collect messages and sample the daemon; also the CPU of what shares the machine with it."""
    t_start, duration_s = window
    while time.time() < t_start:
        sub.recv_raw(timeout_s=0.1)
    counted_start = counters()
    cpu_start, t_end = proc.cpu_s(), t_start + duration_s
    threads_start = proc.threads_cpu_s()
    others_start = {name: p.cpu_s() for name, p in others.items()}
    per_camera: dict[str, list[Received]] = defaultdict(list)
    samples: list[dict[str, float]] = []
    next_sample = t_start
    while (now := time.time()) < t_end:
        if now >= next_sample:
            rss, hwm = proc.memory_mb()
            cpu = proc.cpu_s() - cpu_start
            samples.append(
                {
                    "t": round(now - t_start, 2),
                    "rss_mb": round(rss, 1),
                    "peak_rss_mb": round(hwm, 1),
                    "cpu_s": round(cpu, 2),
                }
            )
            next_sample += 1.0
        got = sub.recv_raw(timeout_s=min(0.2, max(t_end - now, 0.001)))
        if got is not None:
            msg = json.loads(got[1])
            per_camera[msg["camera"]].append(
                Received(msg["camera"], msg["seq"], time.time(), msg["latency_ms"]["total"])
            )
    rss, hwm = proc.memory_mb()
    others_cpu = {name: p.cpu_s() - others_start[name] for name, p in others.items()}
    cpu = proc.cpu_s() - cpu_start
    threads = {kind: spent - threads_start.get(kind, 0.0) for kind, spent in proc.threads_cpu_s().items()}
    counted_end = counters()
    counted = {cid: {k: v - counted_start.get(cid, {}).get(k, 0) for k, v in row.items()}
               for cid, row in counted_end.items()}  # fmt: skip
    return _Measured(per_camera, {}, samples, t_start, cpu, rss, hwm, others_cpu, counted, threads)


def _stop(daemon: subprocess.Popen[bytes], server: subprocess.Popen[str] | None) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(15)
    except subprocess.TimeoutExpired:
        daemon.kill()
    if server is not None:
        server.kill()
        server.wait(10)


def _decode_paid_limit(
    opts: BenchOptions, ceiling: dict[str, Any], measured: _Measured, processed_fps: float
) -> dict[str, float | None]:
    """The frames a second the model could run once decoding and what shares the cores are paid.

    (cores - decoded frames/s x decode CPU per frame - the simulated cameras' and the
    subscriber's CPU) / the model's CPU per frame. Letterbox, NMS, tracking and publishing
    are left out on purpose: the ratio to this limit is what they and waiting cost.
    """
    cores = float(os.cpu_count() or 1)
    decoded_fps = sum(row.get("decoded", 0) for row in measured.counted.values()) / opts.duration_s
    decode_cores = decoded_fps * float(ceiling.get("decode_cpu_ms_per_frame", 0.0)) / 1000
    others_cores = sum(measured.others_cpu_s.values()) / opts.duration_s
    model_ms = float(ceiling.get("cpu_ms_per_frame") or 0.0)
    limit = (cores - decode_cores - others_cores) / (model_ms / 1000) if model_ms else None
    return {
        "cores": cores,
        "decoded_fps": round(decoded_fps, 2),
        "decode_cores": round(decode_cores, 3),
        "others_cores": round(others_cores, 3),
        "model_cpu_ms_per_frame": model_ms,
        "fps": round(limit, 2) if limit else None,
        "ratio": round(processed_fps / limit, 3) if limit else None,
    }


def _report(opts: BenchOptions, ceiling: dict[str, Any], measured: _Measured, log: Path) -> dict[str, Any]:
    connected = _connected_times(log)
    cameras = {f"cam{i}": measured.per_camera.get(f"cam{i}", []) for i in range(opts.cameras)}
    targets = {f"cam{i}": (opts.rate(i), opts.target(i)) for i in range(opts.cameras)}
    report_cameras = {}
    for cid, msgs in cameras.items():
        entry = camera_report(msgs, targets[cid][0], opts.duration_s, targets[cid][1])
        counted = measured.counted.get(cid, {})
        entry["decoded_fps"] = round(counted.get("decoded", 0) / opts.duration_s, 2)
        entry["camera_cpu_percent"] = round(100 * counted.get("cpu_s", 0) / opts.duration_s, 2)
        if cid in connected and cid in measured.first_recv:
            entry["first_result_s"] = round(measured.first_recv[cid] - connected[cid], 3)
        report_cameras[cid] = entry
    processed = sum(len(m) for m in cameras.values())
    total = total_report(cameras, targets, opts.duration_s, float(ceiling["fps"]))
    return {
        "schema": "streamd.bench/1",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": opts.command,
        "machine": machine_info(),
        "setup": {
            "cameras": opts.cameras,
            "fps": list(opts.fps),
            "cap": opts.cap,
            "decode": opts.decode,
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
            "source": opts.source,
            "video": str(opts.video),
            "size": _video_size(opts.video),
            "model": str(opts.model),
            "family": opts.family,
            "provider": str(ceiling.get("provider")),
        },
        "ceiling": ceiling,
        "limit": _decode_paid_limit(opts, ceiling, measured, processed / opts.duration_s),
        "cameras": report_cameras,
        "total": total,
        "process": {
            "cpu_percent": round(100 * measured.cpu_s / opts.duration_s, 1),
            "cpu_ms_per_processed_frame": round(1000 * measured.cpu_s / processed, 2) if processed else None,
            # Each inference session's share of the window spent on frames (1: never waiting).
            "workers_busy": {
                name.removeprefix(_WORKER): round(row.get("busy_s", 0.0) / opts.duration_s, 3)
                for name, row in sorted(measured.counted.items())
                if name.startswith(_WORKER)
            },
            "threads_cpu_ms_per_processed_frame": {
                kind: round(1000 * cpu / processed, 2)
                for kind, cpu in sorted(measured.threads_cpu_s.items(), key=lambda kv: -kv[1])
            }
            if processed
            else {},
            "rss_mb": round(measured.rss_mb, 1),
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "samples": measured.samples,
        },
        # The simulated cameras and this subscriber run on the same cores as the daemon.
        "others_cpu_percent": {
            name: round(100 * cpu / opts.duration_s, 1) for name, cpu in measured.others_cpu_s.items()
        },
        "timeline": timeline(cameras, measured.t_start, opts.duration_s),
    }


def _video_size(video: Path) -> str:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        return f"{stream.codec_context.width}x{stream.codec_context.height}"


def _clip(opts: BenchOptions) -> BenchOptions:
    """The options with the video re-encoded to the size and GOP asked for (cached), if any."""
    if opts.size is None and opts.gop is None:
        return opts
    rate = round(max(opts.fps))
    with av.open(str(opts.video)) as container:
        stream = container.streams.video[0]
        width, height = opts.size or (stream.codec_context.width, stream.codec_context.height)
    spec = ClipSpec(width, height, fps=rate, gop=opts.gop or rate, seconds=30)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamd" / "clips"
    return replace(opts, video=make_clip(opts.video, cache, spec))


def run_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the ceilings, then run the pipeline and measure it; the report as a dict."""
    say = progress or (lambda _msg: None)
    if opts.size is not None or opts.gop is not None:
        say("making the clip (once; cached)")
        opts = _clip(opts)
    model_cfg = ModelConfig(
        path=opts.model,
        family=opts.family,
        provider=opts.provider,
        max_batch=opts.max_batch,
        threads=opts.threads,
    )
    say(f"measuring the model-only ceiling ({opts.ceiling_s:g} s)")
    workers = opts.workers or 1
    if opts.workers is None:  # what the daemon will choose
        probe = model_ceiling(model_cfg, str(opts.video), batch=1, seconds=0.1)
        workers = default_workers(str(probe["provider"]))
    if workers > 1 and opts.threads is None:
        model_cfg = model_cfg.model_copy(update={"threads": default_threads(workers)})
    ceiling: dict[str, Any] = model_ceiling(
        model_cfg, str(opts.video), batch=opts.cameras, seconds=opts.ceiling_s, workers=workers
    )
    say(f"measuring the decode-only ceiling ({opts.ceiling_s:g} s)")
    ceiling.update(decode_ceiling(str(opts.video), seconds=opts.ceiling_s))

    root = Path(tempfile.mkdtemp(prefix="streamd-bench-"))
    ports = {"rtsp": _free_port(), "zmq": _free_port(), "http": _free_port()}
    server = _start_rtsp(opts, ports["rtsp"]) if opts.source == "rtsp" else None
    config = _write_config(opts, root, ports)
    sub = Subscriber(f"tcp://127.0.0.1:{ports['zmq']}")
    log_path = root / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "streamd", "run", "--config", str(config), "--stats-interval", "3600"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        rates = ",".join(f"{f:g}" for f in opts.fps)
        say(f"starting {opts.cameras} camera(s) at {rates} fps; warm-up {opts.warmup_s:g} s")
        started = time.time()
        first_recv = _wait_for_every_camera(sub, daemon, opts.cameras, log_path)
        say(f"measuring for {opts.duration_s:g} s")
        others = {"bench_subscriber": _Proc(os.getpid())}
        if server is not None:
            others["rtsp_server"] = _Proc(server.pid)
        t_start = max(time.time(), started + opts.warmup_s)
        window = (t_start, opts.duration_s)
        measured = _measure(sub, _Proc(daemon.pid), others, window, _http_counters(ports["http"]))
        measured.first_recv = first_recv
    finally:
        sub.close()
        _stop(daemon, server)
    report = _report(opts, ceiling, measured, log_path)
    shutil.rmtree(root, ignore_errors=True)
    return report
