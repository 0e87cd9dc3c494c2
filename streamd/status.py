"""What the daemon tells about itself: /healthz, /v1/cameras, systemd's STATUS= and the periodic log.

All are views of the same counters (cameras, invalid camera files, sinks, workers,
supervised components), read without locks from other threads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from streamd import __version__
from streamd.config import InvalidCamera
from streamd.live.hub import LiveView
from streamd.log import get_logger
from streamd.redact import redact
from streamd.sinks import SinkRunner
from streamd.sources import Camera, CameraState
from streamd.supervise import Supervisor
from streamd.worker import InferenceWorker

__all__ = ["DaemonView", "StatusViews"]

_log = get_logger()


class DaemonView(Protocol):
    """The parts of the daemon the views read."""

    @property
    def cameras(self) -> Mapping[str, Camera]: ...
    @property
    def invalid(self) -> Mapping[str, InvalidCamera]: ...
    @property
    def sinks(self) -> Sequence[SinkRunner]: ...
    @property
    def workers(self) -> Mapping[str, Sequence[InferenceWorker]]: ...
    @property
    def supervisor(self) -> Supervisor: ...
    @property
    def stall_timeout_s(self) -> float: ...
    @property
    def live(self) -> LiveView | None: ...
    def counts_view(self, camera_id: str) -> dict[str, Any] | None: ...


def camera_counters(camera: Camera) -> dict[str, object]:
    """A camera's state and counters."""
    stats = camera.stats
    return {
        "state": stats.state.value,
        "decoded": stats.decoded,
        "processed": stats.processed,
        "dropped": stats.dropped,
        "skipped": stats.skipped,
        "decoding": stats.decoding,
        "cpu_s": round(stats.cpu_s, 3),
        "reconnects": stats.reconnects,
        "errors": stats.errors,
        "last_error": stats.last_error,
        "processing_error": stats.processing_error,
    }


def _invalid_entry(bad: InvalidCamera) -> dict[str, object]:
    return {
        "state": "invalid",
        "file": str(bad.file),
        "last_error": bad.problems[0],
        "problems": bad.problems,
    }


class StatusViews:
    """Health, status and log lines of one daemon."""

    def __init__(self, daemon: DaemonView) -> None:
        self._daemon = daemon
        self._started = time.monotonic()
        self._fps_sample = (time.monotonic(), 0)

    def stuck(self) -> str | None:
        """Why the pipeline is wedged (a component making no progress), or None: the watchdog's view."""
        return self._daemon.supervisor.stuck(self._daemon.stall_timeout_s)

    def problems(self) -> list[str]:
        """Everything that keeps /healthz from 200, each a sentence."""
        daemon = self._daemon
        problems = []
        stuck = self.stuck()
        if stuck is not None:
            problems.append(f"stuck: {stuck}")
        problems += daemon.supervisor.failing()
        for cid, cam in daemon.cameras.items():
            stats = cam.stats
            if stats.state is not CameraState.STREAMING:
                problems.append(
                    f"camera {cid} is {stats.state.value}: {stats.last_error or 'no picture yet'}"
                )
            if stats.processing_error is not None:
                problems.append(f"camera {cid}: frames fail: {stats.processing_error}")
        problems += [
            f"camera file invalid: {line}" for bad in daemon.invalid.values() for line in bad.problems
        ]
        return [redact(p) for p in problems]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when every camera streams and is processed, every file valid, nothing stuck or failing."""
        now = time.monotonic()
        daemon = self._daemon
        problems = self.problems()
        cameras: dict[str, Any] = {
            cid: {
                "state": cam.stats.state.value,
                "since_s": round(now - cam.stats.since, 1),
                "last_error": cam.stats.last_error,
                "processing_error": cam.stats.processing_error,
            }
            for cid, cam in daemon.cameras.items()
        }
        cameras.update({key: _invalid_entry(bad) for key, bad in daemon.invalid.items()})
        ok = not problems
        return ok, {"status": "ok" if ok else "degraded", "stuck": self.stuck(), "problems": problems,
                    "cameras": cameras}  # fmt: skip

    def status(self) -> dict[str, Any]:
        """Everything ``/v1/cameras`` shows: cameras with their counters, sinks, workers, components."""
        now = time.monotonic()
        daemon = self._daemon
        cameras: list[dict[str, Any]] = [
            {
                "id": cid,
                "url": redact(cam.config.url),
                "model": cam.config.model,
                "since_s": round(now - cam.stats.since, 1),
                "stream_fps": cam.stats.stream_fps,
                **camera_counters(cam),
                **self._analytics(cid),
                "viewers": daemon.live.viewers(cid) if daemon.live is not None else 0,
            }
            for cid, cam in daemon.cameras.items()
        ]
        cameras += [{"id": key, **_invalid_entry(bad)} for key, bad in daemon.invalid.items()]
        return {
            "version": __version__,
            "uptime_s": round(now - self._started, 1),
            "cameras": cameras,
            "sinks": self.sink_summary(),
            "workers": {
                w.name: {
                    "provider": w.detector.provider,
                    "errors": w.errors,
                    "last_error": w.last_error,
                    "busy_s": round(w.busy_s, 3),
                    "cpu_s": round(w.cpu_s, 3),
                }
                for ws in daemon.workers.values()
                for w in ws
            },
            "components": {
                name: {
                    "state": c.stats.state.value,
                    "failures": c.stats.failures,
                    "restarts": c.stats.restarts,
                    "last_error": c.stats.last_error,
                    "late_s": round(c.late_by(now), 1),
                }
                for name, c in daemon.supervisor.components.items()
            },
        }

    def _analytics(self, camera_id: str) -> dict[str, Any]:
        """A camera's line totals and zone occupancy, without their geometry."""
        view = self._daemon.counts_view(camera_id) or {}
        return {
            "lines": {
                name: {"in": line["in"], "out": line["out"]} for name, line in view.get("lines", {}).items()
            },
            "zones": {name: {"occupancy": zone["occupancy"]} for name, zone in view.get("zones", {}).items()},
        }

    def status_line(self) -> str:
        """One line for systemd's STATUS=: cameras streaming and the processed frame rate."""
        now = time.monotonic()
        cameras = self._daemon.cameras
        processed = sum(c.stats.processed for c in cameras.values())
        then, before = self._fps_sample
        self._fps_sample = (now, processed)
        fps = max(0, processed - before) / (now - then) if now > then else 0.0
        streaming = sum(1 for c in cameras.values() if c.stats.state is CameraState.STREAMING)
        line = f"{streaming}/{len(cameras)} cameras streaming, {fps:.1f} fps processed"
        invalid = len(self._daemon.invalid)
        return line + (f", {invalid} camera file{'s' if invalid > 1 else ''} invalid" if invalid else "")

    def sink_summary(self) -> dict[str, dict[str, object]]:
        """Each sink's counters and queue depth."""
        return {s.name: {**vars(s.stats), "depth": s.depth} for s in self._daemon.sinks}

    def log_status(self) -> None:
        """The periodic lines: each camera's state and counters, each invalid file, each sink."""
        for cid, cam in self._daemon.cameras.items():
            counters = camera_counters(cam)
            level = "info" if counters["state"] == CameraState.STREAMING.value else "warning"
            getattr(_log, level)("camera status", camera=cid, url=redact(cam.config.url), **counters)
        for key, bad in self._daemon.invalid.items():
            what = "keeps its previous configuration" if key in self._daemon.cameras else "not running"
            _log.warning(f"camera file invalid; camera {what}", camera=key, file=str(bad.file),
                         problems=bad.problems)  # fmt: skip
        for name, counters in self.sink_summary().items():
            _log.info("sink status", sink=name, **counters)
