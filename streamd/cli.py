"""The ``streamd`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streamd import __version__
from streamd.config import DEFAULT_CONFIG, Config, load_config, source_kind
from streamd.errors import ConfigError, StreamdError
from streamd.log import configure_logging
from streamd.redact import redact

if TYPE_CHECKING:
    from streamd.client import EventMessage, Subscriber

__all__ = ["main"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


def _config_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("STREAMD_CONFIG") or DEFAULT_CONFIG)


def _print_errors(exc: StreamdError) -> None:
    problems = [redact(p) for p in getattr(exc, "problems", None) or str(exc).splitlines()]
    print(
        f"streamd: configuration is invalid ({len(problems)} problem{'s' if len(problems) != 1 else ''}):",
        file=sys.stderr,
    )
    for line in problems:
        print(f"  {line}", file=sys.stderr)


def _camera_line(config: Config, camera_id: str) -> str:
    cam = config.cameras[camera_id]
    parts = [
        f"{camera_id}:",
        f"{'gstreamer' if cam.source.pipeline else source_kind(cam.url)} {redact(cam.url)}",
        f"model={cam.model}",
        f"fps={'source' if cam.fps is None else f'{cam.fps:g}'}",
        f"classes={'all' if cam.classes is None else ','.join(map(str, cam.classes))}",
        f"min_confidence={cam.min_confidence:g}",
        f"tracker={'on' if cam.tracker.enabled else 'off'}",
        f"smoothing={'on' if cam.smoothing.enabled and cam.tracker.enabled else 'off'}",
    ]
    if cam.lines:
        parts.append(f"lines={','.join(cam.lines)}")
    if cam.zones:
        parts.append(f"zones={','.join(cam.zones)}")
    if not cam.enabled:
        parts.append("(disabled)")
    return " ".join(parts)


def cmd_check_config(args: argparse.Namespace) -> int:
    from streamd.loading import check_camera, load_detectors  # noqa: PLC0415 - loads onnxruntime

    path = _config_path(args.config)
    try:
        config = load_config(path)
        problems = config.problems()
        detectors = {}
        try:
            detectors = load_detectors(config, one_each=True)
        except ConfigError as exc:
            problems += exc.problems
        for cid, cam in config.cameras.items():
            if cam.enabled and cam.model in detectors:
                try:
                    check_camera(cam, detectors[cam.model][0], str(config.camera_files[cid]))
                except ConfigError as exc:
                    problems += exc.problems
        if problems:
            raise ConfigError(problems)
    except StreamdError as exc:
        _print_errors(exc)
        return 1
    print(f"{config.path}: ok, {len(config.cameras)} camera(s), zmq {config.daemon.zmq.endpoint}")
    for name, (det, *_) in detectors.items():
        print(
            f"model {name}: {det.family.name} {det.input_hw[0]}x{det.input_hw[1]}"
            f"{' (fitted to each picture)' if det.fit else ''}, "
            f"{len(det.class_names)} classes, batch {det.max_batch}, {det.provider}"
        )
    for name, sink in config.daemon.sinks.items():
        users = [cid for cid, cam in config.cameras.items() if any(r.name == name for r in cam.sink_routes())]
        if sink.type == "mqtt":
            where = (
                f"mqtt {sink.host}:{sink.port or (8883 if sink.tls else 1883)}{' TLS' if sink.tls else ''}"
            )
            where += f" qos={sink.qos}"
        else:
            where = f"webhook {redact(sink.url)}{' signed' if sink.secret_file or sink.secret_env else ''}"
        print(f"sink {name}: {where}, {sink.delivery}, cameras: {', '.join(users) or 'none'}")
    for cid in config.cameras:
        print(redact(_camera_line(config, cid)))
    print(_http_line(config))
    return 0


def _http_line(config: Config) -> str:
    """How the HTTP server (and the live view, which shows what the cameras see) is protected."""
    from streamd.config.daemon import is_loopback, split_listen  # noqa: PLC0415

    http = config.daemon.http
    if http.listen is None:
        return "http: off"
    host, _port = split_listen(http.listen)
    if http.needs_token():
        return f"http: {http.listen}, live view at /: a token is required (http.token_file {http.token_file})"
    if not is_loopback(host):
        return (
            f"warning: http: {http.listen} serves the live view and the API without a token"
            " (http.auth: none): anyone who reaches the port sees what the cameras see"
        )
    return f"http: {http.listen} (loopback only), live view at http://{http.listen}/"


def cmd_run(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    try:
        config = load_config(path)
    except StreamdError as exc:
        configure_logging()
        _print_errors(exc)
        return 1
    configure_logging(config.daemon.log.level, config.daemon.log.format)
    # systemd's watchdog kills a wedged daemon with SIGABRT: leave every thread's Python
    # stack in the journal, so the next engineer sees where it hung.
    faulthandler.enable(all_threads=True)
    from streamd.daemon import Daemon  # noqa: PLC0415 - loads onnxruntime

    if args.strict:
        config = dataclasses.replace(config, daemon=config.daemon.model_copy(update={"strict_start": True}))
    try:
        daemon = Daemon.from_config(config)
    except StreamdError as exc:
        _print_errors(exc)
        return 1
    daemon.run(stats_interval_s=args.stats_interval)
    return 0


def brief(payload: bytes, topic: str = "streamd/") -> str:
    """One short human line for a message."""
    import time  # noqa: PLC0415

    from streamd.client import EventMessage, parse_message  # noqa: PLC0415

    msg = parse_message(topic, payload)
    if isinstance(msg, EventMessage):
        return brief_event(msg)
    age_ms = (time.time() - msg.ts) * 1000
    objects = " ".join(
        f"{d.class_name}#{d.track_id}" if d.track_id is not None else d.class_name for d in msg.detections
    )
    return (
        f"{msg.camera} seq={msg.seq} age={age_ms:.0f}ms infer={msg.latency_ms.infer:.0f}ms "
        f"{len(msg.detections)} objects: {objects}"
    )


def brief_event(event: EventMessage) -> str:
    """One short human line for an event."""
    what = [event.camera, event.type]
    if event.track_id is not None:
        what.append(f"{event.class_name}#{event.track_id}")
    if event.line is not None:
        what.append(f"line={event.line}")
    if event.direction is not None:
        what.append(event.direction)
    if event.counts is not None:
        what.append(f"in={event.counts.inward} out={event.counts.outward}")
    if event.zone is not None:
        what.append(f"zone={event.zone} occupancy={event.occupancy}")
    if event.dwell_s is not None:
        what.append(f"dwell={event.dwell_s:.1f}s")
    return " ".join(what)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from streamd.client import Subscriber  # noqa: PLC0415

    endpoint = args.endpoint
    if endpoint is None and args.config:
        try:
            endpoint = load_config(_config_path(args.config)).daemon.zmq.endpoint
        except StreamdError as exc:
            _print_errors(exc)
            return 1
    endpoint = endpoint or DEFAULT_ENDPOINT
    try:
        sub = Subscriber(endpoint, cameras=args.camera or None, frames=args.kind != "events",
                         events=args.kind != "frames")  # fmt: skip
    except ValueError as exc:
        print(f"streamd: --endpoint: {exc}", file=sys.stderr)
        return 2
    try:
        with sub:
            wait = args.connect_timeout
            if wait > 0 and not sub.wait_connected(wait):
                print(
                    f"streamd: nothing is listening at {endpoint} after {wait:g} s"
                    " (is streamd running, and is this its zmq.endpoint?)",
                    file=sys.stderr,
                )
                return 1
            return _print_messages(sub, args)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


def _print_messages(sub: Subscriber, args: argparse.Namespace) -> int:
    """Print messages until ``--count`` (0) or a silence of ``--timeout`` (1)."""
    received = 0
    while args.count is None or received < args.count:
        got = sub.recv_raw(timeout_s=args.timeout)
        if got is None:
            print(f"streamd: no message within {args.timeout:g} s", file=sys.stderr)
            return 1
        sys.stdout.write((brief(got[1], got[0]) if args.format == "brief" else got[1].decode()) + "\n")
        sys.stdout.flush()
        received += 1
    return 0


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame rates like 25 or 10,25, not {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"frame rates must be positive: {text!r}")
    return rates


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count like 4 or counts like 2,4,6: {text!r}") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"camera counts must be at least 1: {text!r}")
    return counts


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 16 or int(height) < 16:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1920x1080, not {text!r}")
    return int(width), int(height)


def cmd_bench(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    from streamd.bench.report import capacity_line, capacity_summary, format_table, plot  # noqa: PLC0415
    from streamd.bench.runner import BenchOptions, run_bench  # noqa: PLC0415

    for label, path in (("--model", args.model), ("--video", args.video)):
        if not Path(path).is_file():
            print(f"streamd bench: {label}: no such file {path}", file=sys.stderr)
            return 1
    if len(args.cameras) > 1 and args.plot:
        print("streamd bench: --plot takes one camera count, not several", file=sys.stderr)
        return 1
    opts = BenchOptions(
        cameras=args.cameras[0],
        fps=args.fps,
        cap=args.cap,
        decode=args.decode,
        size=args.size,
        gop=args.gop,
        duration_s=args.duration,
        warmup_s=args.warmup,
        model=Path(args.model).resolve(),
        family=args.family,
        provider=args.provider,
        video=Path(args.video).resolve(),
        source=args.source,
        max_batch=args.max_batch,
        threads=args.threads,
        workers=args.workers,
        pipeline=args.pipeline,
        ceiling_s=args.ceiling_seconds,
        command="streamd " + shlex.join(sys.argv[1:]),
    )

    def progress(message: str) -> None:
        print(f"# {message}", file=sys.stderr, flush=True)

    if len(args.cameras) == 1:
        report = run_bench(opts, progress=progress)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        if args.plot:
            plot(report, Path(args.plot))
        print(format_table(report))
        return 0
    # Cameras per device: one run per count, each printed as it ends, then the answer.
    reports = []
    for count in args.cameras:
        reports.append(run_bench(dataclasses.replace(opts, cameras=count), progress=progress))
        print(capacity_line(reports[-1], args.hold, header=len(reports) == 1), flush=True)
    summary = capacity_summary(reports, args.hold)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"held: {summary['held']} camera(s) (every camera >= {args.hold:.0%} of its target)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamd", description="Real-time video analytics daemon.")
    parser.add_argument("--version", action="version", version=f"streamd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run in the foreground (systemd runs this)")
    run.add_argument("--config", help=f"streamd.yaml (default: $STREAMD_CONFIG or {DEFAULT_CONFIG})")
    run.add_argument("--stats-interval", type=float, default=60.0, help="seconds between camera status logs")
    run.add_argument(
        "--strict", action="store_true", help="refuse to start when a camera file is invalid (strict_start)"
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate everything; exit 1 with readable errors")
    check.add_argument("--config", help=f"streamd.yaml (default: $STREAMD_CONFIG or {DEFAULT_CONFIG})")
    check.set_defaults(func=cmd_check_config)

    subscribe = sub.add_parser("subscribe", help="print results as JSON lines")
    subscribe.add_argument(
        "--endpoint", help=f"ZeroMQ endpoint (default: the config's, else {DEFAULT_ENDPOINT})"
    )
    subscribe.add_argument("--config", help="take the endpoint from this streamd.yaml")
    subscribe.add_argument("--camera", action="append", help="only this camera (repeatable)")
    subscribe.add_argument(
        "--format", choices=("json", "brief"), default="json", help="JSON lines, or one short line per frame"
    )
    subscribe.add_argument(
        "--kind", choices=("frames", "events", "all"), default="frames",
        help="frame results (streamd/<camera>), events (streamd.event/<camera>), or both",
    )  # fmt: skip
    subscribe.add_argument("--count", type=int, help="exit after this many messages")
    subscribe.add_argument("--timeout", type=float, help="exit 1 when nothing arrives for this many seconds")
    subscribe.add_argument(
        "--connect-timeout", type=float, default=5.0,
        help="exit 1 when no daemon accepts the connection within this many seconds (0: wait forever)",
    )  # fmt: skip
    subscribe.set_defaults(func=cmd_subscribe)

    shared = Path(__file__).resolve().parents[2] / "shared"
    bench = sub.add_parser("bench", help="measure throughput and latency on this machine")
    bench.add_argument(
        "--cameras", type=_counts, default=(1,),
        help="simulated cameras; several counts (2,4,6) find how many this machine holds",
    )  # fmt: skip
    bench.add_argument(
        "--hold", type=float, default=0.95,
        help="with several counts: the share of its target each camera must reach",
    )  # fmt: skip
    bench.add_argument(
        "--fps", type=_rates, default=(10.0,), help="frame rate of each camera; 10,25 alternates 10 and 25"
    )
    bench.add_argument("--cap", type=float, help="the cameras' fps cap (camera file fps)")
    bench.add_argument(
        "--decode", choices=("auto", "all", "keyframes"), help="the cameras' source.decode (default: auto)"
    )
    bench.add_argument(
        "--size", type=_size, help="re-encode the video to WIDTHxHEIGHT, e.g. 1920x1080 (made once, cached)"
    )
    bench.add_argument("--gop", type=int, help="... with a keyframe every GOP frames (default: each second)")
    bench.add_argument("--duration", type=float, default=30.0, help="seconds measured (after warm-up)")
    bench.add_argument("--warmup", type=float, default=5.0, help="seconds run before measuring")
    bench.add_argument("--model", default=str(shared / "models" / "yolox_nano.onnx"))
    bench.add_argument("--family", default="yolox", choices=("yolox", "yolov8", "yolo11"))
    bench.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda", "tensorrt"))
    bench.add_argument("--max-batch", type=int, default=8)
    bench.add_argument("--threads", type=int, help="CPU inference threads per session (default: see docs)")
    bench.add_argument("--workers", type=int, help="inference sessions side by side (default: see docs)")
    bench.add_argument(
        "--pipeline", choices=("auto", "on", "off"), default="auto", help="prepare batches in a second thread"
    )
    video = str(shared / "data" / "pedestrians_768x576_10fps.mp4")
    bench.add_argument("--video", default=video, help="H.264 MP4 served by the simulated cameras")
    bench.add_argument(
        "--source", choices=("rtsp", "file"), default="rtsp",
        help="cameras over RTSP on loopback, or paced file sources (at the file's own rate)",
    )  # fmt: skip
    bench.add_argument(
        "--ceiling-seconds", type=float, default=5.0, help="seconds for each ceiling measurement"
    )
    bench.add_argument("--json", help="write the full report here")
    bench.add_argument("--plot", help="write a PNG of latency and fps over time here")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
