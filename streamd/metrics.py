"""Prometheus metrics (prometheus-client): counters read at scrape time, latency histograms per frame.

Counters live where they are counted (``CameraStats``, ``SinkStats``); the collector
reads them when Prometheus scrapes, so the hot path pays nothing for them. Only
the latency histograms are observed per frame.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from streamd import __version__
from streamd.analytics.snapshots import SnapshotStats
from streamd.analytics.stage import CameraAnalytics
from streamd.config import InvalidCamera
from streamd.live.hub import LiveStats
from streamd.sinks import SinkRunner
from streamd.sources import CameraState, CameraStats
from streamd.supervise import Component, ComponentState
from streamd.types import FrameResult

__all__ = ["Metrics", "Sources"]

# Seconds; dense where a live pipeline should be (tens of ms), sparse out to an overload.
_LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

# Seconds in a zone: a person passing through (1-5 s) to one waiting in a queue (minutes).
_DWELL_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

_CAMERA_COUNTERS = (  # metric name, CameraStats field, help
    ("streamd_camera_frames_decoded", "decoded", "Frames decoded."),
    ("streamd_camera_frames_processed", "processed", "Frames detected, tracked and published."),
    (
        "streamd_camera_frames_dropped",
        "dropped",
        "Frames replaced by a newer one before the worker took them.",
    ),
    (
        "streamd_camera_frames_skipped",
        "skipped",
        "Frames over the camera's fps cap, never offered to detection.",
    ),
    ("streamd_camera_reconnects", "reconnects", "Times the camera was reconnected."),
    ("streamd_camera_errors", "errors", "Frames that failed in preprocessing, tracking or publishing."),
    ("streamd_camera_cpu_seconds", "cpu_s", "CPU time of the camera's thread: reading and decoding."),
)
_SINK_COUNTERS = (
    ("accepted", "results taken into the sink's queue or outbox"),
    ("delivered", "messages acknowledged by the peer"),
    ("failed", "messages the peer refused for good"),
    ("dropped", "messages discarded: queue full or outbox bounds"),
    ("retried", "delivery attempts after a failure"),
    ("filtered", "results not sent because of a camera's send or max_rate"),
)


class WorkerView(Protocol):
    errors: int
    busy_s: float

    @property
    def cpu_s(self) -> float: ...


@dataclass(frozen=True)
class Sources:
    """Where the collector reads the counters, at each scrape."""

    cameras: Callable[[], Mapping[str, CameraStats]]
    sinks: Callable[[], Iterable[SinkRunner]]
    workers: Callable[[], Mapping[tuple[str, int], WorkerView]]  # by (model, index)
    components: Callable[[], Mapping[str, Component]]
    invalid: Callable[[], Mapping[str, InvalidCamera]]
    analytics: Callable[[], Mapping[str, CameraAnalytics]]
    snapshots: Callable[[], SnapshotStats]
    live: Callable[[], LiveStats | None]


class _Collector(Collector):
    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        cameras = dict(self._sources.cameras())
        for name, key, doc in _CAMERA_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["camera"])
            for cid, stats in cameras.items():
                family.add_metric([cid], getattr(stats, key))
            yield family
        state = GaugeMetricFamily(
            "streamd_camera_state", "1 for the camera's current state.", labels=["camera", "state"]
        )
        up = GaugeMetricFamily("streamd_camera_up", "1 when the camera is streaming.", labels=["camera"])
        fps = GaugeMetricFamily(
            "streamd_camera_stream_fps", "The stream's own frame rate.", labels=["camera"]
        )
        keyframes = GaugeMetricFamily(
            "streamd_camera_keyframes_only",
            "1 while only the stream's keyframes are decoded.",
            labels=["camera"],
        )
        for cid, stats in cameras.items():
            keyframes.add_metric([cid], 1.0 if stats.decoding == "keyframes" else 0.0)
            for s in CameraState:
                state.add_metric([cid, s.value], 1.0 if stats.state is s else 0.0)
            up.add_metric([cid], 1.0 if stats.state is CameraState.STREAMING else 0.0)
            if stats.stream_fps:
                fps.add_metric([cid], stats.stream_fps)
        yield from (state, up, fps, keyframes)

        sinks = list(self._sources.sinks())
        for key, doc in _SINK_COUNTERS:
            family = CounterMetricFamily(f"streamd_sink_messages_{key}", f"Sink {doc}.", labels=["sink"])
            for sink in sinks:
                family.add_metric([sink.name], getattr(sink.stats, key))
            yield family
        depth = GaugeMetricFamily(
            "streamd_sink_queue_depth", "Results waiting: in memory plus in the outbox.", labels=["sink"]
        )
        for sink in sinks:
            depth.add_metric([sink.name], sink.depth)
        yield depth

        errors = CounterMetricFamily(
            "streamd_worker_errors", "Inference worker failures.", labels=["model", "worker"]
        )
        busy = CounterMetricFamily(
            "streamd_worker_busy_seconds",
            "Seconds the worker spent on frames rather than waiting for one (pipelined: its inference"
            " thread); its rate near 1 means the session is at capacity.",
            labels=["model", "worker"],
        )
        cpu = CounterMetricFamily(
            "streamd_worker_cpu_seconds", "CPU time of the worker's thread(s).", labels=["model", "worker"]
        )
        for (model, index), worker in self._sources.workers().items():
            labels = [model, str(index)]
            errors.add_metric(labels, worker.errors)
            busy.add_metric(labels, worker.busy_s)
            cpu.add_metric(labels, worker.cpu_s)
        yield from (errors, busy, cpu)
        yield from self._components()
        yield from self._analytics()
        invalid = GaugeMetricFamily(
            "streamd_camera_files_invalid", "Camera files that cannot run (their cameras are not running)."
        )
        invalid.add_metric([], len(self._sources.invalid()))
        yield invalid
        info = GaugeMetricFamily("streamd_build_info", "streamd's version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info

    def _components(self) -> Iterable[Metric]:
        components = dict(self._sources.components())
        failures = CounterMetricFamily(
            "streamd_component_failures",
            "Unexpected exceptions in a supervised thread.",
            labels=["component"],
        )
        restarts = CounterMetricFamily(
            "streamd_component_restarts",
            "Restarts of a supervised thread after a failure.",
            labels=["component"],
        )
        running = GaugeMetricFamily(
            "streamd_component_running",
            "1 while the thread runs (0: restarting or stopped).",
            labels=["component"],
        )
        late = GaugeMetricFamily(
            "streamd_component_late_seconds",
            "Seconds the thread is past the time by which it promised progress (0 when on time).",
            labels=["component"],
        )
        now = time.monotonic()
        for name, component in components.items():
            failures.add_metric([name], component.stats.failures)
            restarts.add_metric([name], component.stats.restarts)
            running.add_metric([name], 1.0 if component.stats.state is ComponentState.RUNNING else 0.0)
            late.add_metric([name], round(component.late_by(now), 3))
        yield from (failures, restarts, running, late)

    def _analytics(self) -> Iterable[Metric]:
        crossings = CounterMetricFamily(
            "streamd_line_crossings", "Line crossings counted since start.",
            labels=["camera", "line", "direction", "class"],
        )  # fmt: skip
        totals = GaugeMetricFamily(
            "streamd_line_count",
            "A line's persisted totals, as in the events (reset on its schedule or a geometry change).",
            labels=["camera", "line", "direction", "class"],
        )  # fmt: skip
        entries = CounterMetricFamily(
            "streamd_zone_entries", "Zone entries since start.", labels=["camera", "zone", "class"]
        )
        exits = CounterMetricFamily(
            "streamd_zone_exits", "Zone exits since start.", labels=["camera", "zone", "class"]
        )
        occupancy = GaugeMetricFamily(
            "streamd_zone_occupancy", "Objects in a zone now.", labels=["camera", "zone", "class"]
        )
        for camera, analytics in self._sources.analytics().items():
            values = analytics.metrics()
            for line, counted in values["crossings"].items():
                for (direction, cls), n in counted.items():
                    crossings.add_metric([camera, line, direction, cls], n)
            for line, (inward, outward) in values["totals"].items():
                for direction, by_class in (("in", inward), ("out", outward)):
                    for cls, n in by_class.items():
                        totals.add_metric([camera, line, direction, cls], n)
            for family, key in ((entries, "entries"), (exits, "exits"), (occupancy, "occupancy")):
                for zone, by_class in values[key].items():
                    for cls, n in by_class.items():
                        family.add_metric([camera, zone, cls], n)
        yield from (crossings, totals, entries, exits, occupancy)
        shots = self._sources.snapshots()
        for key, doc in (("written", "JPEG snapshot files written"),
                         ("skipped", "event snapshots skipped: the encoder's queue was full"),
                         ("failed", "event snapshots that could not be encoded or written"),
                         ("deleted", "old snapshots deleted to stay under snapshots.max_mb")):  # fmt: skip
            family = CounterMetricFamily(f"streamd_snapshots_{key}", doc.capitalize() + ".")
            family.add_metric([], getattr(shots, key))
            yield family
        size = GaugeMetricFamily("streamd_snapshots_bytes", "Bytes of snapshots on disk.")
        size.add_metric([], shots.bytes)
        yield size
        live = self._sources.live()
        if live is not None:
            for kind, name, doc, value in (
                (
                    CounterMetricFamily,
                    "streamd_live_pictures",
                    "Live view pictures drawn and encoded.",
                    live.pictures,
                ),
                (
                    CounterMetricFamily,
                    "streamd_live_cpu_seconds",
                    "CPU time drawing and encoding them.",
                    live.cpu_s,
                ),
                (GaugeMetricFamily, "streamd_live_viewers", "MJPEG streams served now.", live.viewers),
                (
                    CounterMetricFamily,
                    "streamd_live_viewers_refused",
                    "Streams refused at max_viewers.",
                    live.refused,
                ),
            ):
                family = kind(name, doc)
                family.add_metric([], value)
                yield family


class Metrics:
    """The daemon's registry: its own collectors, process resources, and the latency histograms."""

    def __init__(self, sources: Sources) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(sources))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._infer = Histogram(
            "streamd_inference_seconds",
            "Preprocessing plus inference per frame (a batch's time, seen by each of its frames).",
            ["camera"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._latency = Histogram(
            "streamd_latency_seconds",
            "End to end: frame arrived to tracked result handed to the sinks.",
            ["camera"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[str, tuple[Histogram, Histogram]] = {}
        self._dwell = Histogram(
            "streamd_zone_dwell_seconds",
            "Time inside a zone, observed at each exit.",
            ["camera", "zone", "class"],
            buckets=_DWELL_BUCKETS,
            registry=self.registry,
        )

    def observe_dwell(self, camera: str, zone: str, class_name: str, seconds: float) -> None:
        """Record one zone visit's dwell time (called by the worker at a zone exit)."""
        self._dwell.labels(camera, zone, class_name).observe(seconds)

    def observe(self, result: FrameResult) -> None:
        """Record one published frame's timings (called by the worker, per frame)."""
        children = self._children.get(result.camera)
        if children is None:  # labels() costs more than the observations: look it up once
            children = (self._infer.labels(result.camera), self._latency.labels(result.camera))
            self._children = {**self._children, result.camera: children}
        children[0].observe(result.timings.infer)
        children[1].observe(result.timings.total)

    def forget(self, camera: str) -> None:
        """Drop a removed camera's histograms."""
        self._children = {k: v for k, v in self._children.items() if k != camera}
        for histogram in (self._infer, self._latency):
            with contextlib.suppress(KeyError):
                histogram.remove(camera)
        # prometheus-client removes a child only by its full labels: drop this camera's dwell children.
        with self._dwell._lock:
            stale = [labels for labels in self._dwell._metrics if labels[0] == camera]
        for labels in stale:
            with contextlib.suppress(KeyError):
                self._dwell.remove(*labels)
