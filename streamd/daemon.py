"""The daemon: assembles cameras, workers and sinks from the configuration, runs them, reloads them.

Model loading is in ``loading``, reload planning in ``reload``, what the daemon tells
about itself in ``status``, and the supervision every thread runs under in
``supervise``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import Protocol

from streamd import __version__
from streamd.analytics.counts import CountsStore
from streamd.analytics.snapshots import SnapshotStore
from streamd.analytics.stage import CameraAnalytics
from streamd.config import CameraConfig, Config, InvalidCamera, load_config, read_secret
from streamd.detect import Detector
from streamd.errors import ConfigError, StreamdError
from streamd.http import HttpServer, Routes
from streamd.live.hub import LiveView
from streamd.live.render import Scene
from streamd.loading import CameraChecks, check_camera
from streamd.log import configure_logging, get_logger
from streamd.metrics import Metrics, Sources
from streamd.notify import Notifier, Watchdog, watchdog_interval
from streamd.reload import plan_reload, tracking_changed
from streamd.route import CameraRoute
from streamd.sinks import SinkRunner, build_sinks
from streamd.slot import FrameBoard
from streamd.sources import Camera
from streamd.status import StatusViews
from streamd.supervise import Supervisor
from streamd.types import Frame, FrameResult
from streamd.worker import InferenceWorker

__all__ = ["Daemon"]

_log = get_logger()


class Joinable(Protocol):
    def join(self, timeout: float) -> bool: ...


# At shutdown, camera threads get this long to leave before the workers stop; a camera
# blocked in a read leaves within its read timeout on its own (a daemon thread, it
# cannot hold the process).
_CAMERA_JOIN_S = 1.0


class Daemon:
    """Every camera, worker and sink of one configuration, and the ways to watch and reload them."""

    def __init__(
        self, config: Config, detectors: dict[str, list[Detector]], sinks: dict[str, SinkRunner]
    ) -> None:
        self.config = config
        self.stall_timeout_s = config.daemon.stall_timeout_s
        self.sinks = list(sinks.values())
        self._sinks_by_name = sinks
        self.supervisor = Supervisor()
        state = config.daemon.state_dir
        self.counts = CountsStore(state / "counts")
        shots = config.daemon.snapshots
        self.snapshots = SnapshotStore(state / "snapshots", shots.max_mb, shots.queue_size)
        self.supervisor.add([self.counts.component, self.snapshots.component])
        self.workers: dict[str, list[InferenceWorker]] = {}
        # Copy-on-write: the HTTP and watchdog threads read these dicts without a lock.
        self.cameras: dict[str, Camera] = {}
        self.invalid: dict[str, InvalidCamera] = dict(config.invalid)
        self._boards: dict[str, FrameBoard[Frame]] = {}
        self.views = StatusViews(self)
        self.metrics = Metrics(
            Sources(
                cameras=lambda: {cid: cam.stats for cid, cam in self.cameras.items()},
                sinks=lambda: self.sinks,
                workers=lambda: {(n, i): w for n, ws in self.workers.items() for i, w in enumerate(ws)},
                components=lambda: self.supervisor.components,
                invalid=lambda: self.invalid,
                analytics=self.analytics,
                snapshots=lambda: self.snapshots.stats,
                live=lambda: self.live.stats if self.live is not None else None,
            )
        )
        self.http: HttpServer | None = None
        self.live: LiveView | None = None
        for name, detector in detectors.items():
            self._boards[name] = FrameBoard()
            self.workers[name] = [
                InferenceWorker(d, self._boards[name], self._publish, index=i) for i, d in enumerate(detector)
            ]
            for worker in self.workers[name]:
                self.supervisor.add(worker.components)
        for sink in self.sinks:
            self.supervisor.add(sink.components)
        for camera_cfg in config.cameras.values():
            if camera_cfg.enabled:
                file = config.camera_files[camera_cfg.id]
                try:
                    checks = self._check(camera_cfg, str(file))
                except ConfigError as exc:  # this camera is reported; the others run
                    self.invalid[camera_cfg.id] = InvalidCamera(camera_cfg.id, file, exc.problems)
                    continue
                self._add_camera(camera_cfg, checks)

    @classmethod
    def from_config(cls, config: Config) -> Daemon:
        """Bind the publisher, load the models, listen for HTTP; fails fast with StreamdError.

        The publisher binds before the models load, so subscribers waiting for a restarted
        daemon rejoin meanwhile and miss none of its first results (ZeroMQ's slow joiner).
        """
        if config.daemon.strict_start and config.invalid:
            raise ConfigError(config.problems())
        sinks = build_sinks(config)
        try:
            return cls._around(config, sinks)
        except BaseException:  # the sinks are bound and connecting: let them go
            for sink in sinks.values():
                sink.stop()
                sink.join(1.0)
            raise

    @classmethod
    def _around(cls, config: Config, sinks: dict[str, SinkRunner]) -> Daemon:
        """The daemon around its built sinks: the models loaded, the HTTP server listening."""
        from streamd.loading import load_detectors  # noqa: PLC0415 - imports onnxruntime

        daemon = cls(config, load_detectors(config), sinks)
        if config.daemon.strict_start and daemon.invalid:
            raise ConfigError([line for bad in daemon.invalid.values() for line in bad.problems])
        listen = config.daemon.http.listen
        if listen is not None:
            http_cfg = config.daemon.http
            token = read_secret(f"{config.path}: http.token_file", http_cfg.token_file, None) if (
                http_cfg.needs_token()) else None  # fmt: skip
            daemon.live = LiveView(daemon.live_source, http_cfg.preview)
            daemon.supervisor.add([daemon.live.component])
            routes = Routes(daemon.views.health, daemon.views.status, daemon.metrics.registry,
                            counts=daemon.counts_view, snapshot=daemon.snapshots.path, live=daemon.live,
                            cameras=daemon.camera_ids, token=token)  # fmt: skip
            try:
                http = config.daemon.http
                daemon.http = HttpServer(
                    listen,
                    routes,
                    max_connections=http.max_connections,
                    request_timeout_s=http.request_timeout_s,
                )
            except OSError as exc:
                raise ConfigError([f"{config.path}: http.listen: cannot listen on {listen}: {exc}"]) from exc
            daemon.supervisor.add([daemon.http.component])
        return daemon

    # --- cameras ----------------------------------------------------------------------------

    def _check(self, camera: CameraConfig, file: str) -> CameraChecks:
        """A camera's class filters, or ConfigError saying why it cannot run in this process."""
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

    def analytics(self) -> dict[str, CameraAnalytics]:
        """Each camera's analytics (lines, zones, tracks), by camera id."""
        routes = {cid: self.workers[cam.config.model][0].route(cid) for cid, cam in self.cameras.items()}
        return {
            cid: route.analytics for cid, route in routes.items() if route is not None and route.analytics
        }

    def camera_ids(self) -> list[str]:
        """The cameras running now (``self.cameras`` is replaced, not changed, on reload)."""
        return list(self.cameras)

    def live_source(self, camera_id: str) -> tuple[FrameResult | None, Scene]:
        """A camera's newest result and what to draw on it (called by the live view's thread)."""
        route = self.route(camera_id)
        if route is None:
            return None, Scene()
        if route.analytics is None:
            return route.latest, Scene()
        view = route.analytics.view()
        return route.latest, Scene(view["lines"], view["zones"], route.analytics.trails())

    def counts_view(self, camera_id: str) -> dict[str, object] | None:
        """A camera's line totals and zone occupancy now; None for an unknown camera."""
        route = self.route(camera_id)
        if route is None or route.analytics is None:
            return None
        return route.analytics.view()

    def route(self, camera_id: str) -> CameraRoute | None:
        """A camera's route: its tracker, analytics and newest result."""
        camera = self.cameras.get(camera_id)
        return None if camera is None else self.workers[camera.config.model][0].route(camera_id)

    def _add_camera(self, camera_cfg: CameraConfig, checks: CameraChecks) -> Camera:
        """Build a checked camera and route it to its model's workers and its sinks (not started)."""
        workers = self.workers[camera_cfg.model]
        board = self._boards[camera_cfg.model]
        camera: Camera | None = None

        def dropped() -> None:
            assert camera is not None
            camera.stats.dropped += 1

        camera = Camera(camera_cfg, board.add(camera_cfg.id, dropped))
        analytics = CameraAnalytics(
            camera_cfg, checks.filters, self.counts.open(camera_cfg.id),
            snapshots=self.snapshots, observe_dwell=self.metrics.observe_dwell,
        )  # fmt: skip
        route = CameraRoute(camera_cfg, camera.stats, checks.classes, analytics=analytics)
        for worker in workers:
            worker.add_camera(route)  # one route (one tracker) shared: the board serialises a camera
        self._route_to_sinks(camera_cfg)
        self.cameras = {**self.cameras, camera_cfg.id: camera}
        self.supervisor.add([camera.component])
        return camera

    def _route_to_sinks(self, camera_cfg: CameraConfig) -> None:
        for sink in self.sinks:
            sink.remove_camera(camera_cfg.id)
        for sink_route in camera_cfg.sink_routes():
            self._sinks_by_name[sink_route.name].set_filter(camera_cfg.id, sink_route)

    def _update_camera(self, camera_cfg: CameraConfig, checks: CameraChecks) -> None:
        """Apply settings that do not touch the stream (classes, tracking, lines, zones, sinks) in place."""
        camera = self.cameras[camera_cfg.id]
        workers = self.workers[camera_cfg.model]
        old = workers[0].route(camera_cfg.id)
        assert old is not None
        assert old.analytics is not None
        # Track ids carry on unless the tracking settings changed; line totals carry on unless a
        # line's points changed; zones keep who is inside unless their polygon changed.
        same_tracking = not tracking_changed(camera.config, camera_cfg)
        analytics = old.analytics
        analytics.reconfigure(camera_cfg, checks.filters)
        if not same_tracking:
            analytics.forget_tracks()
        route = CameraRoute(camera_cfg, camera.stats, checks.classes, old.tracker if same_tracking else None,
                            analytics=analytics, latest=old.latest)  # fmt: skip
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
        self.supervisor.remove([camera.component])
        camera.stop()
        self._boards[camera.config.model].remove(camera_id)
        for worker in self.workers[camera.config.model]:
            worker.remove_camera(camera_id)
        for sink in self.sinks:
            sink.remove_camera(camera_id)
        self.counts.close(camera_id)
        self.metrics.forget(camera_id)
        if self.live is not None:
            self.live.forget(camera_id)

    def _publish(self, result: FrameResult) -> None:
        self.metrics.observe(result)
        for sink in self.sinks:
            sink.offer(result)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start sinks, workers, cameras and the HTTP server; returns at once (cameras connect later)."""
        self.counts.start()
        self.snapshots.start()
        if self.live is not None:
            self.live.start()
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
            invalid_camera_files=len(self.invalid),
            models={name: f"{w[0].detector.provider} x{len(w)}" for name, w in self.workers.items()},
            zmq=self.config.daemon.zmq.endpoint,
            http=self.http.address if self.http else None,
        )
        self._report_invalid()

    def _report_invalid(self) -> None:
        for key, bad in self.invalid.items():
            what = "keeps its previous configuration" if key in self.cameras else "not running"
            _log.error(f"camera file invalid; camera {what}", camera=key, file=str(bad.file),
                       problems=bad.problems)  # fmt: skip

    def stop(self, timeout: float) -> None:
        """Stop in the order results flow, so nothing produced is lost on the way out.

        Cameras first (no new frames), then the workers finish the batch in hand, then
        the sinks take the last results: at_least_once commits them to its outbox,
        at_most_once makes one last attempt to send.
        """
        deadline = time.monotonic() + timeout
        stuck: list[str] = []

        def join(name: str, part: Joinable, limit: float) -> None:
            if not part.join(max(0.0, min(limit, deadline - time.monotonic()))):
                stuck.append(name)

        if self.live is not None:
            self.live.stop()  # its viewers' streams end with it
        if self.http is not None:
            self.http.stop()
        cameras = list(self.cameras.values())
        for camera in cameras:
            camera.stop()
        camera_deadline = time.monotonic() + _CAMERA_JOIN_S
        for camera in cameras:
            join(f"camera/{camera.id}", camera, camera_deadline - time.monotonic())
        workers = [w for ws in self.workers.values() for w in ws]
        for worker in workers:
            worker.stop()
        for worker in workers:
            join(f"worker/{worker.name}", worker, timeout)
        for sink in self.sinks:
            sink.stop()
        for sink in self.sinks:
            join(f"sink/{sink.name}", sink, timeout)
        for part in (self.snapshots, self.counts):  # the counts are written one last time
            part.stop()
            join(part.component.name, part, timeout)
        if stuck:
            _log.warning("threads still busy at shutdown", threads=stuck)
        _log.info(
            "streamd stopped",
            processed={cid: cam.stats.processed for cid, cam in self.cameras.items()},
            sinks=self.views.sink_summary(),
        )

    # --- reload -----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration and apply it camera by camera; False when streamd.yaml is invalid.

        Cameras whose stream settings (url, source, model, fps) changed are restarted;
        other changes (classes, tracking, sinks) apply without reconnecting; added
        cameras start and removed ones stop; the others are not touched. A camera file
        that became invalid is reported and its camera, if running, carries on as it
        was. Settings of streamd.yaml other than ``log`` take effect at the next
        restart (a warning names them).
        """
        try:
            new = load_config(self.config.path)
        except StreamdError as exc:
            _log.error(
                "reload rejected; the running configuration stays",
                problems=getattr(exc, "problems", None) or [str(exc)],
            )
            return False
        plan = plan_reload(self.config, new)
        invalid = dict(new.invalid)
        checked: dict[str, CameraChecks] = {}
        for cid in plan.touched():
            try:
                checked[cid] = self._check(new.cameras[cid], str(new.camera_files[cid]))
            except ConfigError as exc:
                invalid[cid] = InvalidCamera(cid, new.camera_files[cid], exc.problems)
        kept = plan.kept + [cid for cid in plan.restarted + plan.updated if cid not in checked]
        if plan.log_changed:
            configure_logging(new.daemon.log.level, new.daemon.log.format)
        for cid in plan.removed + [c for c in plan.restarted if c in checked]:
            self._remove_camera(cid)
        for cid in plan.added + plan.restarted:
            if cid in checked:
                self._add_camera(new.cameras[cid], checked[cid]).start()
        for cid in plan.updated:
            if cid in checked:
                self._update_camera(new.cameras[cid], checked[cid])
        # What runs now: the new files of the cameras that took them, the old ones of those kept.
        running = {cid: new.cameras[cid] for cid in self.cameras if cid in new.cameras and cid not in kept}
        running.update({cid: self.config.cameras[cid] for cid in kept if cid in self.config.cameras})
        self.config = Config(
            path=self.config.path,
            daemon=self.config.daemon.model_copy(update={"log": new.daemon.log}),
            cameras=running,
            camera_files={**self.config.camera_files, **new.camera_files},
            invalid=invalid,
        )
        self.invalid = invalid
        _log.info(
            "configuration reloaded",
            added=[c for c in plan.added if c in checked],
            removed=plan.removed,
            restarted=[c for c in plan.restarted if c in checked],
            updated_in_place=[c for c in plan.updated if c in checked],
            kept_running_invalid_file=sorted(kept),
            unchanged=plan.unchanged,
            invalid_camera_files=sorted(invalid),
        )
        self._report_invalid()
        if plan.needs_restart:
            _log.warning("streamd.yaml settings changed that apply only at the next restart",
                         keys=plan.needs_restart)  # fmt: skip
        return True

    # --- the main loop ----------------------------------------------------------------------

    def stuck(self) -> str | None:
        """Why the pipeline is wedged, or None (what the systemd watchdog acts on)."""
        return self.views.stuck()

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
        watchdog = Watchdog(notifier, interval / 3 if interval else 5.0, self.stuck, self.views.status_line)
        self.start()
        # Ready once every thread runs; cameras connect on their own and STATUS says how many did.
        notifier.send(READY=1, STATUS=self.views.status_line(), MAINPID=os.getpid())
        if notifier.enabled:
            self.supervisor.add([watchdog.component])
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
                    try:
                        self.reload()
                    except Exception:  # a bug in reload must not stop the daemon
                        _log.exception("reload failed; the running configuration stays as it was")
                    notifier.send(READY=1, STATUS=self.views.status_line())
                if time.monotonic() >= next_stats:
                    try:
                        self.views.log_status()
                    except Exception:
                        _log.exception("status log failed")
                    next_stats = time.monotonic() + stats_interval_s
        finally:
            notifier.send(STOPPING=1, STATUS="stopping")
            watchdog.stop()
            self.stop(self.config.daemon.shutdown_timeout_s)
            watchdog.join(1.0)  # before the socket it sends on is closed
            notifier.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
