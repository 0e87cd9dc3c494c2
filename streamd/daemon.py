"""The daemon: builds cameras, workers and sinks from the configuration and runs them."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Protocol

import numpy as np

from streamd.config import CameraConfig, Config, redact_url
from streamd.detect import Detector
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


def load_detectors(config: Config) -> dict[str, Detector]:
    """Load every model that a camera uses (ModelError when one does not load or fit)."""
    used = {c.model for c in config.cameras.values() if c.enabled}
    detectors = {}
    for name, model in config.daemon.models.items():
        if name in used:
            detectors[name] = Detector.from_config(name, model)
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

    def __init__(self, config: Config, detectors: dict[str, Detector], sinks: dict[str, SinkRunner]) -> None:
        self.config = config
        self.sinks = list(sinks.values())
        self.workers: dict[str, InferenceWorker] = {}
        self.cameras: dict[str, Camera] = {}
        boards: dict[str, FrameBoard[Frame]] = {}
        problems: list[str] = []
        routes = []
        for name, detector in detectors.items():
            boards[name] = FrameBoard()
            self.workers[name] = InferenceWorker(detector, boards[name], self._publish)
        for camera_id, camera_cfg in config.cameras.items():
            if not camera_cfg.enabled:
                continue
            file = str(config.camera_files[camera_id])
            try:
                classes = class_filter(camera_cfg, detectors[camera_cfg.model], file)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            camera = self._make_camera(camera_cfg, boards[camera_cfg.model])
            self.cameras[camera_id] = camera
            routes.append((camera_cfg.model, CameraRoute(camera_cfg, camera.stats, classes)))
        if problems:
            raise ConfigError(problems)
        for model, route in routes:
            self.workers[model].add_camera(route)

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
        for worker in self.workers.values():
            worker.start()
        for camera in self.cameras.values():
            camera.start()
        _log.info(
            "streamd started",
            cameras=len(self.cameras),
            models={name: w.detector.provider for name, w in self.workers.items()},
            zmq=self.config.daemon.zmq.endpoint,
        )

    def stop(self, timeout: float) -> None:
        """Stop everything, joining each thread for at most its share of ``timeout``."""
        deadline = time.monotonic() + timeout
        for camera in self.cameras.values():
            camera.stop()
        for worker in self.workers.values():
            worker.stop()
        for sink in self.sinks:
            sink.stop()
        stuck = []
        parts: list[tuple[str, Joinable]] = [
            *((f"worker-{n}", w) for n, w in self.workers.items()),
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
