"""The inference worker: newest frames of its cameras in, FrameResults out to the sinks.

One worker per inference session:

    take the newest unseen frame of up to max_batch cameras (round-robin)
    -> letterbox from YUV -> input tensor -> run the session -> decode + NMS
    -> each camera's route (tracking) -> publish

Pipelined (the default on GPUs), a prep thread does the first three steps while
the worker thread infers the previous batch; between them is a single-place
hand-over, so under overload frames are at most one inference older than without
it, and when idle nothing waits at all. On a CPU the cores are already busy with
inference, so pipelining there only adds that latency (measured: 8 cameras x 25 fps
on 2 cores, same 40 fps processed, p50 latency 49 -> 96 ms); it is off.

Faults: a frame that cannot be prepared or tracked is its camera's failure (counted,
shown in /healthz, logged with the camera and the stage); the others in the batch go
on. A batch whose inference fails is the worker's failure and is not progress: a
model that fails on every frame makes the worker stuck, as a wedged one is. Each loop
is a supervised component, restarted with backoff if anything else raises.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamd.detect import Detector
from streamd.detect.detector import Placed, Prepared, image_hw
from streamd.log import Throttle, get_logger
from streamd.redact import redact
from streamd.route import CameraRoute
from streamd.slot import FrameBoard
from streamd.supervise import Component
from streamd.types import Frame, FrameResult

__all__ = ["InferenceWorker"]


@dataclass(frozen=True)
class _Batch:
    frames: list[Frame]
    prepared: Prepared
    t_take: float
    t_prepared: float


class InferenceWorker:
    """Runs detection and tracking for the cameras on one board."""

    def __init__(
        self,
        detector: Detector,
        board: FrameBoard[Frame],
        publish: Callable[[FrameResult], None],
        idle_wait_s: float = 0.25,
        index: int = 0,
    ) -> None:
        self.detector = detector
        self.board = board
        self.name = f"{detector.name}-{index}"
        self._publish = publish
        self._routes: dict[str, CameraRoute] = {}
        self._idle_wait = idle_wait_s
        self._stop = threading.Event()
        self._handover: queue.Queue[_Batch] = queue.Queue(maxsize=1)
        self._log = get_logger(model=detector.name, worker=index)
        self._throttle = Throttle(60.0)
        self.errors = 0  # batches whose inference failed
        self.last_error: str | None = None
        # How much of its time and CPU the worker spends on frames: its rate of busy seconds
        # near 1 means this session is at capacity (pipelined: its inference thread).
        self.busy_s = 0.0
        self._cpu_s = {"prep": 0.0, "infer": 0.0}  # thread CPU, each loop writing only its own
        base, model = f"worker/{self.name}", detector.name
        if detector.pipeline:
            self._prep = Component(f"{base}/prep", self._prepare_loop, self._stop, model=model, worker=index)
            self._infer = Component(f"{base}/infer", self._infer_loop, self._stop, model=model, worker=index)
            self.components = [self._prep, self._infer]
        else:
            self._infer = Component(base, self._serial_loop, self._stop, model=model, worker=index)
            self.components = [self._infer]

    @property
    def cpu_s(self) -> float:
        """CPU time of the worker's thread(s): preparing, inferring, tracking, publishing."""
        return sum(self._cpu_s.values())

    def _count_cpu(self, loop: str, mark: float) -> float:
        now = time.thread_time()
        self._cpu_s[loop] += now - mark
        return now

    def add_camera(self, route: CameraRoute) -> None:
        self._routes = {**self._routes, route.config.id: route}  # copy-on-write: loops read without a lock

    def route(self, camera_id: str) -> CameraRoute | None:
        return self._routes.get(camera_id)

    def remove_camera(self, camera_id: str) -> None:
        self._routes = {k: v for k, v in self._routes.items() if k != camera_id}

    def start(self) -> None:
        self._log.info(
            "worker started",
            provider=self.detector.provider,
            max_batch=self.detector.max_batch,
            batch_wait_s=self.detector.batch_wait_s,
            io_binding=self.detector.io_binding,
            pipeline=self.detector.pipeline,
        )
        for component in self.components:
            component.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        ended = [c.join(max(0.0, deadline - time.monotonic())) for c in self.components]  # join every one
        return all(ended)

    # --- the loops --------------------------------------------------------------------------

    def _take_and_prepare(self) -> _Batch | None:
        frames = self.board.take(self.detector.max_batch, self._idle_wait, self.detector.batch_wait_s)
        if not frames:
            return None
        t_take = time.monotonic()
        ready: list[Frame] = []
        for taken in frames:
            try:
                ready.append(taken.ready())  # a GStreamer picture is copied out here, once it is wanted
            except Exception as exc:  # this camera's picture; the others go on
                self._preparing_failed(taken.camera, exc)
        input_hw = self.detector.input_hw_for([image_hw(frame.video) for frame in ready])
        kept: list[Frame] = []
        placed: list[Placed] = []
        for frame in ready:
            try:
                placed.append(self.detector.place(frame.video, len(placed), input_hw))
                kept.append(frame)
            except Exception as exc:
                self._preparing_failed(frame.camera, exc)
        if not kept:
            return None
        try:
            prepared = self.detector.stack(placed)
        except Exception:
            self.board.release([f.camera for f in kept])
            raise
        return _Batch(kept, prepared, t_take, time.monotonic())

    def _serial_loop(self) -> None:
        cpu = time.thread_time()
        while not self._stop.is_set():
            batch = self._take_and_prepare()
            if self._idle_is_progress() if batch is None else self.process(batch):
                self._infer.beat()
            if batch is not None:
                self.busy_s += time.monotonic() - batch.t_take
            cpu = self._count_cpu("infer", cpu)

    def _prepare_loop(self) -> None:
        cpu = time.thread_time()
        while not self._stop.is_set():
            batch = self._take_and_prepare()
            cpu = self._count_cpu("prep", cpu)
            self._prep.beat()
            if batch is not None and not self._hand_over(batch):
                self.board.release([f.camera for f in batch.frames])  # stopped first: let the cameras go

    def _hand_over(self, batch: _Batch) -> bool:
        """Give a prepared batch to the infer loop; False when stopped first."""
        while not self._stop.is_set():
            try:
                self._handover.put(batch, timeout=self._idle_wait)
                return True
            except queue.Full:
                continue  # the infer loop is busy; its own progress tells if it is wedged
        return False

    def _infer_loop(self) -> None:
        cpu = time.thread_time()
        while not self._stop.is_set():
            try:
                batch = self._handover.get(timeout=self._idle_wait)
            except queue.Empty:
                if self._idle_is_progress():
                    self._infer.beat()
                continue
            started = time.monotonic()
            if self.process(batch):
                self._infer.beat()
            self.busy_s += time.monotonic() - started
            cpu = self._count_cpu("infer", cpu)

    def _idle_is_progress(self) -> bool:
        """Waiting for frames is progress, unless the last inference failed.

        A model that fails every frame (a CUDA error is sticky) is stuck though a slow
        camera leaves it idle between frames; only a success ends that, or the watchdog.
        """
        return self.last_error is None

    # --- one batch --------------------------------------------------------------------------

    def process(self, batch: _Batch) -> bool:
        """Infer, track and publish one batch; False when inference failed (no progress)."""
        try:
            return self._process(batch)
        finally:
            self.board.release([f.camera for f in batch.frames])

    def _process(self, batch: _Batch) -> bool:
        t_start = time.monotonic()
        try:
            detections = self.detector.infer(batch.prepared)
        except Exception as exc:
            self._inference_failed(batch, exc)
            return False
        if self.last_error is not None:
            self._log.info("inference works again", failed_batches=self.errors)
            self.last_error = None
            self._throttle.reset()
        t_inferred = time.monotonic()
        prep_s = batch.t_prepared - batch.t_take
        for frame, dets in zip(batch.frames, detections, strict=True):
            route = self._routes.get(frame.camera)
            if route is None:  # the camera was removed while its frame was in flight
                continue
            # in the slot, plus in the hand-over while the previous batch ran
            wait = (batch.t_take - frame.t_ready) + (t_start - batch.t_prepared)
            try:
                result = route.finish(frame, dets, wait, prep_s + (t_inferred - t_start))
            except Exception as exc:
                route.failed("tracking", exc)
                continue
            route.succeeded()
            try:
                self._publish(result)
            except Exception as exc:
                route.failed("publishing", exc)
        return True

    def _inference_failed(self, batch: _Batch, exc: Exception) -> None:
        self.errors += 1
        error = redact(f"{type(exc).__name__}: {exc}")
        first = self.last_error is None
        self.last_error = error
        held = self._throttle.ready()
        if held is not None:
            (self._log.exception if first else self._log.error)(
                "inference failed", cameras=[f.camera for f in batch.frames], error=error,
                failed_batches=self.errors, repeats_not_logged=held,
            )  # fmt: skip

    def _preparing_failed(self, camera: str, exc: Exception) -> None:
        """A camera's picture could not be prepared: let the camera go, count it against it."""
        self.board.release([camera])
        self._camera_failed(camera, "preprocessing", exc)

    def _camera_failed(self, camera: str, stage: str, exc: Exception) -> None:
        route = self._routes.get(camera)
        if route is not None:
            route.failed(stage, exc)
