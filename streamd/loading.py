"""Loading the models a configuration uses, and checking each camera against its model."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from streamd.config import CameraConfig, Config
from streamd.detect import Detector
from streamd.detect.session import default_threads
from streamd.errors import ConfigError, ModelError

__all__ = ["CameraChecks", "check_camera", "default_workers", "load_detectors"]


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
    """Load and try the sessions of every model a camera uses; ConfigError naming the model's key.

    Each model runs one inference on a blank picture, so a model that loads but cannot
    run (a wrong ``input_size``, an unsupported operator) fails here rather than on
    every frame. ``one_each`` loads a single session per model, enough for a check.
    """
    used = {c.model for c in config.cameras.values() if c.enabled}
    detectors: dict[str, list[Detector]] = {}
    problems: list[str] = []
    for name, configured in config.daemon.models.items():
        if name not in used:
            continue
        try:
            first = Detector.from_config(name, configured)
            first.warm_up()
            count = 1 if one_each else (configured.workers or default_workers(first.provider))
            model = configured
            if count > 1 and configured.threads is None:  # share the cores between the sessions
                model = configured.model_copy(update={"threads": default_threads(count)})
                first = Detector.from_config(name, model)
            detectors[name] = [first, *(Detector.from_config(name, model) for _ in range(count - 1))]
        except ModelError as exc:
            problems.append(f"{config.path}: models.{name}: {exc}")
    if problems:
        raise ConfigError(problems)
    return detectors


def _class_ids(
    items: list[str | int] | None, detector: Detector, model: str, where: str, problems: list[str]
) -> list[int] | None:
    if items is None:
        return None
    ids = []
    for item in items:
        class_id = item if isinstance(item, int) else detector.class_id(item)
        if class_id is None or not 0 <= class_id < len(detector.class_names):
            problems.append(f"{where}: {item!r} is not a class of model {model!r}")
        else:
            ids.append(class_id)
    return sorted(set(ids))


@dataclass(frozen=True)
class CameraChecks:
    """What a camera's checks resolved: its class filter and those of its lines and zones."""

    classes: np.ndarray | None
    filters: dict[str, frozenset[int] | None]  # by line or zone name


def check_camera(camera: CameraConfig, detector: Detector, file: str) -> CameraChecks:
    """Everything about a camera that needs its model or GStreamer; ConfigError listing every problem."""
    problems: list[str] = []
    ids = _class_ids(camera.classes, detector, camera.model, f"{file}: classes", problems)
    classes = None if ids is None else np.array(ids, dtype=np.int64)
    filters: dict[str, frozenset[int] | None] = {}
    for kind, items in (("lines", camera.lines), ("zones", camera.zones)):
        for name, cfg in items.items():
            found = _class_ids(
                cfg.classes, detector, camera.model, f"{file}: {kind}.{name}.classes", problems
            )
            filters[name] = None if found is None else frozenset(found)
    if camera.source.pipeline is not None:
        from streamd.sources.gst import check_pipeline  # noqa: PLC0415 - PyGObject only when used

        try:
            check_pipeline(camera, file)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return CameraChecks(classes, filters)
