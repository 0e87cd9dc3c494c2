"""The daemon: builds cameras, workers and sinks from the configuration and runs them."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol

import numpy as np

from streamd import __version__
from streamd.config import CameraConfig, Config, DaemonConfig, load_config, redact_url
from streamd.detect import Detector
from streamd.detect.session import default_threads
from streamd.errors import ConfigError, StreamdError
from streamd.httpapi import StatusServer
from streamd.log import configure_logging, get_logger
from streamd.metrics import Metrics, Sources
from streamd.notify import Notifier, Watchdog, watchdog_interval
from streamd.sinks import SinkRunner, build_sinks
from streamd.slot import FrameBoard
from streamd.sources import Camera, CameraState
from streamd.types import Frame, FrameResult
from streamd.worker import CameraRoute, InferenceWorker

__all__ = ["Daemon", "check_camera", "class_filter", "load_detectors"]

_log = get_logger()


class Joinable(Protocol):
    def join(self, timeout: float) -> bool: ...


def default_workers(provider: str) -> int:
    """Inference sessions per model when the config sets none.

    One on a GPU (batching fills it). On a CPU, one per core up to 4: a small model
    runs faster as single-threaded sessions side by side than as one session spread
    over the cores. Measured on 2 cores (bench/results/2026-11-22-cpu-ab-workers.txt):
    8 cameras x 25 fps, 68.8 fps processed with 2 sessions against 44.9 with one;
    4 cameras x 10 fps, p99 latency 66 ms against 90 ms.
    """
    if provider != "CPUExecutionProvider":
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def load_detectors(config: Config, one_each: bool = False) -> dict[str, list[Detector]]:
    """Load the sessions of every model a camera uses (ModelError when one does not load or fit).

    ``one_each`` loads a single session per model, enough to check the configuration.
    """
    used = {c.model for c in config.cameras.values() if c.enabled}
    detectors: dict[str, list[Detector]] = {}
    for name, configured in config.daemon.models.items():
        if name not in used:
            continue
        first = Detector.from_config(name, configured)
        count = 1 if one_each else (configured.workers or default_workers(first.provider))
        model = configured
        if count > 1 and configured.threads is None:  # share the cores between the sessions
            model = configured.model_copy(update={"threads": default_threads(count)})
            first = Detector.from_config(name, model)
        detectors[name] = [first, *(Detector.from_config(name, model) for _ in range(count - 1))]
    return detectors


def class_filter(camera: CameraConfig, detector: Detector, file: str) -> np.ndarray | None:
    """The class ids a camera keeps, from names or ids; ConfigError naming the unknown ones."""
    if camera.classes is None:
        return None
    ids, problems = [], []
    for item in camera.classes:
        class_id = item if isinstance(item, int) else detector.class_id(item)
        if class_id is None or not 0 <= class_id < len(detector.class_names):
            problems.append(f"{file}: classes: {item!r} is not a class of model {camera.model!r}")
        else:
            ids.append(class_id)
    if problems:
        raise ConfigError(problems)
    return np.array(sorted(set(ids)), dtype=np.int64)


# A change to any of these reopens the camera; other changes apply in place.
_STREAM_KEYS = ("url", "source", "model", "fps")
# A change to any of these starts a new tracker (track ids begin again).
_TRACKING_KEYS = ("classes", "min_confidence", "tracker", "smoothing")


def _stream_changed(old: CameraConfig, new: CameraConfig) -> bool:
    return any(getattr(old, key) != getattr(new, key) for key in _STREAM_KEYS)


def check_camera(camera: CameraConfig, detector: Detector, file: str) -> np.ndarray | None:
    """Everything about a camera that needs its model or GStreamer; its class filter, or ConfigError."""
    classes = class_filter(camera, detector, file)
    if camera.source.pipeline is not None:
        from streamd.sources.gst import check_pipeline  # noqa: PLC0415 - PyGObject only when used

        check_pipeline(camera, file)
    return classes


def _counters(camera: Camera) -> dict[str, object]:
    stats = camera.stats
    return {
        "state": stats.state.value,
        "decoded": stats.decoded,
        "processed": stats.processed,
        "dropped": stats.dropped,
        "skipped": stats.skipped,
        "reconnects": stats.reconnects,
        "last_error": stats.last_error,
    }


class Daemon:
    """Every camera, worker and sink of one configuration, and the ways to watch and reload them."""

    def __init__(
        self, config: Config, detectors: dict[str, list[Detector]], sinks: dict[str, SinkRunner]
    ) -> None:
        self.config = config
        self.sinks = list(sinks.values())
        self._sinks_by_name = sinks
        self.workers: dict[str, list[InferenceWorker]] = {}
        self.cameras: dict[str, Camera] = {}
        self._boards: dict[str, FrameBoard[Frame]] = {}
        self.metrics = Metrics(
            Sources(
                cameras=lambda: {cid: cam.stats for cid, cam in self.cameras.items()},
                sinks=lambda: self.sinks,
                workers=lambda: {(n, i): w for n, ws in self.workers.items() for i, w in enumerate(ws)},
            )
        )
        self.http: StatusServer | None = None
        self._started = time.monotonic()
        self._fps_sample = (time.monotonic(), 0)
        for name, detector in detectors.items():
            self._boards[name] = FrameBoard()
            self.workers[name] = [
                InferenceWorker(d, self._boards[name], self._publish, index=i) for i, d in enumerate(detector)
            ]
        problems: list[str] = []
        for camera_id, camera_cfg in config.cameras.items():
            if camera_cfg.enabled:
                try:
                    classes = self._check(camera_cfg, str(config.camera_files[camera_id]))
                except ConfigError as exc:
                    problems.extend(exc.problems)
                    continue
                self._add_camera(camera_cfg, classes)
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_config(cls, config: Config) -> Daemon:
        """Load the models, bind the publisher and the HTTP server; fails fast with StreamdError."""
        detectors = load_detectors(config)
        daemon = cls(config, detectors, build_sinks(config))
        listen = config.daemon.http.listen
        if listen is not None:
            try:
                daemon.http = StatusServer(listen, daemon.health, daemon.status, daemon.metrics.registry)
            except OSError as exc:
                raise ConfigError([f"{config.path}: http.listen: cannot listen on {listen}: {exc}"]) from exc
        return daemon

    # --- cameras ----------------------------------------------------------------------------

    def _check(self, camera: CameraConfig, file: str) -> np.ndarray | None:
        """A camera's class filter, or ConfigError saying why it cannot run in this process."""
        if camera.model not in self.workers:
            raise ConfigError(
                [f"{file}: model: model {camera.model!r} is not loaded; restart streamd to load it"]
            )
        missing = [r.name for r in camera.sink_routes() if r.name not in self._sinks_by_name]
        if missing:
            raise ConfigError(
                [f"{file}: sinks: {', '.join(missing)} not running; restart streamd to start new sinks"]
            )
        return check_camera(camera, self.workers[camera.model][0].detector, file)

    def _add_camera(self, camera_cfg: CameraConfig, classes: np.ndarray | None) -> Camera:
        """Build a checked camera and route it to its model's workers and its sinks (not started)."""
        workers = self.workers[camera_cfg.model]
        board = self._boards[camera_cfg.model]
        camera: Camera | None = None

        def dropped() -> None:
            assert camera is not None
            camera.stats.dropped += 1

        camera = Camera(camera_cfg, board.add(camera_cfg.id, dropped))
        route = CameraRoute(camera_cfg, camera.stats, classes)
        for worker in workers:
            worker.add_camera(route)  # one route (one tracker) shared: the board serialises a camera
        self._route_to_sinks(camera_cfg)
        # Copy-on-write: the HTTP and watchdog threads iterate the dict they read, unlocked.
        self.cameras = {**self.cameras, camera_cfg.id: camera}
        return camera

    def _route_to_sinks(self, camera_cfg: CameraConfig) -> None:
        for sink in self.sinks:
            sink.remove_camera(camera_cfg.id)
        for sink_route in camera_cfg.sink_routes():
            self._sinks_by_name[sink_route.name].set_filter(camera_cfg.id, sink_route)

    def _update_camera(self, camera_cfg: CameraConfig, classes: np.ndarray | None) -> None:
        """Apply settings that do not touch the stream (classes, tracking, sinks) without reconnecting."""
        camera = self.cameras[camera_cfg.id]
        workers = self.workers[camera_cfg.model]
        old = workers[0].route(camera_cfg.id)
        same_tracking = all(getattr(camera.config, key) == getattr(camera_cfg, key) for key in _TRACKING_KEYS)
        # Track ids carry on unless the tracking settings changed.
        tracker = old.tracker if old is not None and same_tracking else None
        route = CameraRoute(camera_cfg, camera.stats, classes, tracker)
        sinks_changed = camera.config.sinks != camera_cfg.sinks
        camera.config = camera_cfg
        for worker in workers:
            worker.add_camera(route)
        if sinks_changed:  # new filters forget what "changes" and max_rate remembered
            self._route_to_sinks(camera_cfg)

    def _remove_camera(self, camera_id: str) -> None:
        """Stop a camera and unroute it; its thread leaves on its own (within its read timeout)."""
        camera = self.cameras[camera_id]
        self.cameras = {cid: cam for cid, cam in self.cameras.items() if cid != camera_id}
        camera.stop()
        self._boards[camera.config.model].remove(camera_id)
        for worker in self.workers[camera.config.model]:
            worker.remove_camera(camera_id)
        for sink in self.sinks:
            sink.remove_camera(camera_id)
        self.metrics.forget(camera_id)

    def _publish(self, result: FrameResult) -> None:
        self.metrics.observe(result)
        for sink in self.sinks:
            sink.offer(result)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start sinks, workers, cameras and the HTTP server; returns at once (cameras connect later)."""
        for sink in self.sinks:
            sink.start()
        for workers in self.workers.values():
            for worker in workers:
                worker.start()
        for camera in self.cameras.values():
            camera.start()
        if self.http is not None:
            self.http.start()
        _log.info(
            "streamd started",
            version=__version__,
            cameras=len(self.cameras),
            models={name: f"{w[0].detector.provider} x{len(w)}" for name, w in self.workers.items()},
            zmq=self.config.daemon.zmq.endpoint,
            http=self.http.address if self.http else None,
        )

    def stop(self, timeout: float) -> None:
        """Stop everything, joining each thread for at most its share of ``timeout``."""
        deadline = time.monotonic() + timeout
        if self.http is not None:
            self.http.stop()
        for camera in self.cameras.values():
            camera.stop()
        for workers in self.workers.values():
            for worker in workers:
                worker.stop()
        for sink in self.sinks:
            sink.stop()
        stuck = []
        parts: list[tuple[str, Joinable]] = [
            *((f"worker-{n}-{i}", w) for n, ws in self.workers.items() for i, w in enumerate(ws)),
            *((f"sink-{s.name}", s) for s in self.sinks),
            *((f"camera-{c.id}", c) for c in self.cameras.values()),
        ]
        for name, part in parts:
            if not part.join(max(0.0, deadline - time.monotonic())):
                stuck.append(name)
        if stuck:
            # Camera threads blocked inside FFmpeg leave within their read timeout;
            # they are daemon threads, so they cannot hold the process.
            _log.warning("threads still busy at shutdown", threads=stuck)
        _log.info("streamd stopped")

    # --- reload -----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration and apply it camera by camera; False (nothing changed) when invalid.

        Cameras whose stream settings (url, source, model, fps) changed are restarted;
        other changes (classes, tracking, sinks) apply without reconnecting; added
        cameras start and removed ones stop; the others are not touched. Settings of
        streamd.yaml other than ``log`` take effect at the next restart (a warning
        names them).
        """
        try:
            new = load_config(self.config.path)
        except StreamdError as exc:
            _log.error(
                "reload rejected; the running configuration stays",
                problems=getattr(exc, "problems", None) or [str(exc)],
            )
            return False
        old_cams = {cid: c for cid, c in self.config.cameras.items() if c.enabled}
        new_cams = {cid: c for cid, c in new.cameras.items() if c.enabled}
        removed = sorted(old_cams.keys() - new_cams.keys())
        added = sorted(new_cams.keys() - old_cams.keys())
        changed = sorted(cid for cid in old_cams.keys() & new_cams.keys() if old_cams[cid] != new_cams[cid])
        restarted = [cid for cid in changed if _stream_changed(old_cams[cid], new_cams[cid])]
        updated = [cid for cid in changed if cid not in restarted]
        problems: list[str] = []
        classes: dict[str, np.ndarray | None] = {}
        for cid in added + changed:
            try:
                classes[cid] = self._check(new_cams[cid], str(new.camera_files[cid]))
            except ConfigError as exc:
                problems += exc.problems
        if problems:
            _log.error("reload rejected; the running configuration stays", problems=problems)
            return False
        if new.daemon.log != self.config.daemon.log:
            configure_logging(new.daemon.log.level, new.daemon.log.format)
        for cid in removed + restarted:
            self._remove_camera(cid)
        for cid in added + restarted:
            self._add_camera(new_cams[cid], classes[cid]).start()
        for cid in updated:
            self._update_camera(new_cams[cid], classes[cid])
        pending = [
            key
            for key in DaemonConfig.model_fields
            if key != "log" and getattr(new.daemon, key) != getattr(self.config.daemon, key)
        ]
        self.config = Config(
            path=self.config.path,
            daemon=self.config.daemon.model_copy(update={"log": new.daemon.log}),
            cameras=new.cameras,
            camera_files=new.camera_files,
        )
        _log.info(
            "configuration reloaded",
            added=added,
            removed=removed,
            restarted=restarted,
            updated_in_place=updated,
            unchanged=len(new_cams) - len(added) - len(changed),
        )
        if pending:
            _log.warning("streamd.yaml settings changed that apply only at the next restart", keys=pending)
        return True

    # --- health and status ------------------------------------------------------------------

    def stuck(self) -> str | None:
        """Why the pipeline is wedged (a worker or camera thread making no progress), or None."""
        now = time.monotonic()
        limit = self.config.daemon.stall_timeout_s
        for name, workers in self.workers.items():
            for i, worker in enumerate(workers):
                idle = now - worker.last_progress
                if idle > limit:
                    return f"inference worker {name}-{i} has made no progress for {idle:.0f} s"
        for cid, camera in self.cameras.items():
            late = camera.wedged_for(now)
            if late > limit:
                return f"camera {cid} thread is {late:.0f} s past its timeouts"
        return None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when every camera streams and nothing is stuck; the body says why not."""
        now = time.monotonic()
        stuck = self.stuck()
        cameras = {
            cid: {
                "state": cam.stats.state.value,
                "since_s": round(now - cam.stats.since, 1),
                "last_error": cam.stats.last_error,
            }
            for cid, cam in self.cameras.items()
        }
        ok = stuck is None and all(c["state"] == CameraState.STREAMING.value for c in cameras.values())
        return ok, {"status": "ok" if ok else "degraded", "stuck": stuck, "cameras": cameras}

    def status(self) -> dict[str, Any]:
        """Everything ``/v1/cameras`` shows: cameras with their counters, sinks, workers."""
        now = time.monotonic()
        cameras = []
        for cid, cam in self.cameras.items():
            cameras.append(
                {
                    "id": cid,
                    "url": redact_url(cam.config.url),
                    "model": cam.config.model,
                    "since_s": round(now - cam.stats.since, 1),
                    "stream_fps": cam.stats.stream_fps,
                    **_counters(cam),
                }
            )
        return {
            "version": __version__,
            "uptime_s": round(now - self._started, 1),
            "cameras": cameras,
            "sinks": self.sink_summary(),
            "workers": {
                f"{name}-{i}": {"provider": w.detector.provider, "errors": w.errors}
                for name, ws in self.workers.items()
                for i, w in enumerate(ws)
            },
        }

    def status_line(self) -> str:
        """One line for systemd's STATUS=: cameras streaming and the processed frame rate."""
        now = time.monotonic()
        processed = sum(c.stats.processed for c in self.cameras.values())
        then, before = self._fps_sample
        self._fps_sample = (now, processed)
        fps = max(0, processed - before) / (now - then) if now > then else 0.0
        streaming = sum(1 for c in self.cameras.values() if c.stats.state is CameraState.STREAMING)
        return f"{streaming}/{len(self.cameras)} cameras streaming, {fps:.1f} fps processed"

    def sink_summary(self) -> dict[str, dict[str, object]]:
        """Each sink's counters and queue depth."""
        return {s.name: {**vars(s.stats), "depth": s.depth} for s in self.sinks}

    def summary(self) -> dict[str, dict[str, object]]:
        """Each camera's state and counters."""
        return {cid: _counters(cam) for cid, cam in self.cameras.items()}

    def _log_status(self) -> None:
        for cid, cam in self.cameras.items():
            counters = _counters(cam)
            url = redact_url(cam.config.url)
            level = "info" if counters["state"] == CameraState.STREAMING.value else "warning"
            getattr(_log, level)("camera status", camera=cid, url=url, **counters)
        for name, counters in self.sink_summary().items():
            _log.info("sink status", sink=name, **counters)

    # --- the main loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, stats_interval_s: float = 60.0) -> None:
        """Run until SIGTERM/SIGINT (or ``stop``): reload on SIGHUP, tell systemd how it goes."""
        stop = stop or threading.Event()
        wake = threading.Event()
        reload_requested = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            _log.info("stopping", signal=signal.Signals(signum).name)
            stop.set()
            wake.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            reload_requested.set()
            wake.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
        notifier = Notifier()
        interval = watchdog_interval()
        # Keep-alives three times per WatchdogSec, so one late round is not a restart.
        watchdog = Watchdog(notifier, interval / 3 if interval else 5.0, self.stuck, self.status_line)
        self.start()
        # Ready once every thread runs; cameras connect on their own and STATUS says how many did.
        notifier.send(READY=1, STATUS=self.status_line(), MAINPID=os.getpid())
        if notifier.enabled:
            watchdog.start()
        next_stats = time.monotonic() + stats_interval_s
        try:
            while not stop.is_set():
                # Signals set ``wake``; a caller's ``stop`` is seen within a second.
                wake.wait(min(1.0, max(0.0, next_stats - time.monotonic())))
                wake.clear()
                if reload_requested.is_set() and not stop.is_set():
                    reload_requested.clear()
                    monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                    notifier.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec, STATUS="reloading")
                    _log.info("reloading", config=str(self.config.path))
                    self.reload()
                    notifier.send(READY=1, STATUS=self.status_line())
                if time.monotonic() >= next_stats:
                    self._log_status()
                    next_stats = time.monotonic() + stats_interval_s
        finally:
            notifier.send(STOPPING=1, STATUS="stopping")
            watchdog.stop()
            self.stop(self.config.daemon.shutdown_timeout_s)
            watchdog.join(1.0)  # before the socket it sends on is closed
            notifier.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
