"""The daemon: builds cameras, workers and sinks from the configuration and runs them."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import Protocol

import numpy as np

from streamd.config import CameraConfig, Config, redact_url
from streamd.detect import Detector
from streamd.detect.session import default_threads
from streamd.errors import ConfigError
from streamd.log import get_logger
from streamd.sinks import SinkRunner, build_sinks
from streamd.slot import FrameBoard
from streamd.sources import Camera, CameraState
from streamd.types import Frame, FrameResult
from streamd.worker import CameraRoute, InferenceWorker

__all__ = ["Daemon", "class_filter", "load_detectors"]

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


class Daemon:
    """Every camera, worker and sink of one configuration."""

    def __init__(
        self, config: Config, detectors: dict[str, list[Detector]], sinks: dict[str, SinkRunner]
    ) -> None:
        self.config = config
        self.sinks = list(sinks.values())
        self.workers: dict[str, list[InferenceWorker]] = {}
        self.cameras: dict[str, Camera] = {}
        boards: dict[str, FrameBoard[Frame]] = {}
        problems: list[str] = []
        routes = []
        for name, detector in detectors.items():
            boards[name] = FrameBoard()
            self.workers[name] = [
                InferenceWorker(d, boards[name], self._publish, index=i) for i, d in enumerate(detector)
            ]
        for camera_id, camera_cfg in config.cameras.items():
            if not camera_cfg.enabled:
                continue
            file = str(config.camera_files[camera_id])
            try:
                classes = class_filter(camera_cfg, detectors[camera_cfg.model][0], file)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            camera = self._make_camera(camera_cfg, boards[camera_cfg.model])
            self.cameras[camera_id] = camera
            routes.append((camera_cfg.model, CameraRoute(camera_cfg, camera.stats, classes)))
        if problems:
            raise ConfigError(problems)
        for model, route in routes:
            for worker in self.workers[model]:
                worker.add_camera(route)  # one route (one tracker) shared: the board serialises a camera

    @staticmethod
    def _make_camera(camera_cfg: CameraConfig, board: FrameBoard[Frame]) -> Camera:
        camera: Camera | None = None

        def dropped() -> None:
            assert camera is not None
            camera.stats.dropped += 1

        camera = Camera(camera_cfg, board.add(camera_cfg.id, dropped))
        return camera

    @classmethod
    def from_config(cls, config: Config) -> Daemon:
        """Load the models and bind the publisher; fails fast with StreamdError."""
        detectors = load_detectors(config)
        return cls(config, detectors, build_sinks(config))

    def _publish(self, result: FrameResult) -> None:
        for sink in self.sinks:
            sink.offer(result)

    def start(self) -> None:
        """Start sinks, workers and cameras; returns at once (cameras connect on their own)."""
        for sink in self.sinks:
            sink.start()
        for workers in self.workers.values():
            for worker in workers:
                worker.start()
        for camera in self.cameras.values():
            camera.start()
        _log.info(
            "streamd started",
            cameras=len(self.cameras),
            models={name: f"{w[0].detector.provider} x{len(w)}" for name, w in self.workers.items()},
            zmq=self.config.daemon.zmq.endpoint,
        )

    def stop(self, timeout: float) -> None:
        """Stop everything, joining each thread for at most its share of ``timeout``."""
        deadline = time.monotonic() + timeout
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

    def sink_summary(self) -> dict[str, dict[str, object]]:
        """Each sink's counters and queue depth."""
        return {s.name: {**vars(s.stats), "depth": s.depth} for s in self.sinks}

    def summary(self) -> dict[str, dict[str, object]]:
        """Each camera's state and counters."""
        return {
            cid: {
                "state": cam.stats.state.value,
                "decoded": cam.stats.decoded,
                "processed": cam.stats.processed,
                "dropped": cam.stats.dropped,
                "skipped": cam.stats.skipped,
                "reconnects": cam.stats.reconnects,
                "last_error": cam.stats.last_error,
            }
            for cid, cam in self.cameras.items()
        }

    def run(self, stop: threading.Event | None = None, stats_interval_s: float = 60.0) -> None:
        """Run until SIGTERM/SIGINT (or ``stop``), logging counters now and then."""
        stop = stop or threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            _log.info("stopping", signal=signal.Signals(signum).name)
            stop.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            _log.warning("reload is not supported yet; restart streamd to apply configuration changes")

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
        self.start()
        try:
            while not stop.wait(stats_interval_s):
                for cid, counters in self.summary().items():
                    url = redact_url(self.cameras[cid].config.url)
                    level = "info" if counters["state"] == CameraState.STREAMING.value else "warning"
                    getattr(_log, level)("camera status", camera=cid, url=url, **counters)
                for name, counters in self.sink_summary().items():
                    _log.info("sink status", sink=name, **counters)
        finally:
            self.stop(self.config.daemon.shutdown_timeout_s)
            for s, handler in previous.items():
                signal.signal(s, handler)
