"""A loaded detector: images in, ``sv.Detections`` in source pixels out."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import onnxruntime as ort
import supervision as sv

from streamd.config import ModelConfig
from streamd.detect.coco import COCO_CLASSES
from streamd.detect.families import FAMILIES, Family
from streamd.detect.letterbox import Letterbox, input_tensor, letterbox, letterbox_yuv420, unletterbox
from streamd.detect.nms import batched_nms
from streamd.detect.session import create_session
from streamd.errors import ModelError
from streamd.picture import to_bgr, yuv420_planes

__all__ = ["Detector", "Image", "Placed", "Prepared", "class_names_from_metadata"]

Image = np.ndarray | av.VideoFrame  # BGR pixels, or a decoded picture (converted here, small)


@dataclass(frozen=True)
class Placed:
    """One image letterboxed onto a reusable canvas, and where it went."""

    canvas: np.ndarray
    box: Letterbox
    source_hw: tuple[int, int]


@dataclass(frozen=True)
class Prepared:
    """A batch ready for the session: the input tensor and how each image was placed."""

    blob: np.ndarray
    boxes: list[Letterbox]
    source_hw: list[tuple[int, int]]


def class_names_from_metadata(session: ort.InferenceSession) -> list[str] | None:
    """Class names stored by Ultralytics exports, ``{0: 'person', ...}``, if present."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    return None


@dataclass(frozen=True)
class _Shape:
    input_name: str
    input_hw: tuple[int, int]
    batch_dynamic: bool
    class_count: int


def _inspect(session: ort.InferenceSession, family: Family, cfg: ModelConfig) -> _Shape:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"{cfg.path}: expected one image input, found {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise ModelError(f"{cfg.path}: expected an NCHW image input, got shape {shape}")
    batch, channels, h, w = shape
    if channels not in (3, "3") and isinstance(channels, int):
        raise ModelError(f"{cfg.path}: expected 3 input channels, got {channels}")
    if isinstance(h, int) and isinstance(w, int):
        input_hw = (h, w)
        if cfg.input_size is not None and tuple(cfg.input_size) != input_hw:
            raise ModelError(
                f"{cfg.path}: input_size {list(cfg.input_size)} but the model's input is {[h, w]}"
            )
    elif cfg.input_size is not None:
        input_hw = (cfg.input_size[0], cfg.input_size[1])
    else:
        raise ModelError(f"{cfg.path}: the model's input size is dynamic; set input_size: [height, width]")
    out_shape = tuple(outputs[0].shape[1:])
    class_count = family.class_count(out_shape, input_hw)
    return _Shape(inputs[0].name, input_hw, not isinstance(batch, int), class_count)


class Detector:
    """Runs one model: letterbox, infer (batched when the model allows), decode, NMS."""

    def __init__(
        self,
        name: str,
        session: ort.InferenceSession,
        provider: str,
        family: Family,
        cfg: ModelConfig,
    ) -> None:
        shape = _inspect(session, family, cfg)
        names = cfg.class_names or class_names_from_metadata(session)
        if names is None:
            names = list(COCO_CLASSES) if shape.class_count == len(COCO_CLASSES) else []
        if names and len(names) != shape.class_count:
            raise ModelError(
                f"{cfg.path}: {len(names)} class names for a model with {shape.class_count} classes"
            )
        self.name = name
        self.path = cfg.path
        self.provider = provider
        self.family = family
        self.input_hw = shape.input_hw
        self.max_batch = cfg.max_batch if shape.batch_dynamic else 1
        self.batch_wait_s = cfg.batch_wait_s if self.max_batch > 1 else 0.0
        gpu = provider != "CPUExecutionProvider"
        self.io_binding = cfg.io_binding == "on" or (cfg.io_binding == "auto" and gpu)
        self.pipeline = cfg.pipeline == "on" or (cfg.pipeline == "auto" and gpu)
        self.class_names: list[str] = names or [f"class_{i}" for i in range(shape.class_count)]
        self._session = session
        self._input_name = shape.input_name
        self._output_name = session.get_outputs()[0].name
        self._confidence = cfg.confidence
        self._nms_iou = cfg.nms_iou
        self._max_detections = cfg.max_detections
        self._canvases = [np.empty((*self.input_hw, 3), np.uint8) for _ in range(self.max_batch)]
        self._names = np.array(self.class_names, dtype=object)

    @classmethod
    def from_config(cls, name: str, cfg: ModelConfig) -> Detector:
        """Load the model file and check it against its declared family."""
        session, provider = create_session(
            cfg.path,
            cfg.provider,
            device=cfg.device,
            threads=cfg.threads,
            engine_cache=cfg.engine_cache_dir,
            fp16=cfg.fp16,
        )
        return cls(name, session, provider, FAMILIES[cfg.family], cfg)

    def warm_up(self) -> None:
        """Run one inference on a blank picture; ModelError saying why when the model cannot run."""
        blank = np.full((*self.input_hw, 3), 114, np.uint8)
        try:
            self.infer(self.prepare([blank]))
        except Exception as exc:
            h, w = self.input_hw
            raise ModelError(
                f"{self.path}: the model does not run on a {h}x{w} input: {type(exc).__name__}: {exc}"
                " (for a model with a dynamic input size, check input_size)"
            ) from exc

    def class_id(self, name: str) -> int | None:
        """The id of a class name, or None."""
        try:
            return self.class_names.index(name)
        except ValueError:
            return None

    def detect(self, images: Sequence[Image]) -> list[sv.Detections]:
        """Detections for each image, in its own pixels; at most ``max_batch`` images per run."""
        results: list[sv.Detections] = []
        for start in range(0, len(images), self.max_batch):
            results.extend(self.infer(self.prepare(images[start : start + self.max_batch])))
        return results

    def place(self, image: Image, index: int) -> Placed:
        """Letterbox one image onto canvas ``index`` of the next batch (raises when the image is unusable).

        Called by one thread at a time (the canvases are reused).
        """
        canvas = self._canvases[index]
        if isinstance(image, av.VideoFrame):
            source_hw = (image.height, image.width)
            planes = yuv420_planes(image)
            if planes is not None:
                placed, box = letterbox_yuv420(planes, self.input_hw, self.family.center, out=canvas)
                return Placed(placed, box, source_hw)
            image = to_bgr(image)
        placed, box = letterbox(image, self.input_hw, self.family.center, out=canvas)
        return Placed(placed, box, (int(image.shape[0]), int(image.shape[1])))

    def stack(self, placed: Sequence[Placed]) -> Prepared:
        """One input tensor from placed images (a new array: the canvases can be reused at once)."""
        if len(placed) > self.max_batch:
            raise ValueError(f"{len(placed)} images for a batch of at most {self.max_batch}")
        blob = input_tensor([p.canvas for p in placed], rgb=self.family.rgb, scale=self.family.scale)
        return Prepared(blob, [p.box for p in placed], [p.source_hw for p in placed])

    def prepare(self, images: Sequence[Image]) -> Prepared:
        """Letterbox up to ``max_batch`` images into one input tensor."""
        if len(images) > self.max_batch:
            raise ValueError(f"{len(images)} images for a batch of at most {self.max_batch}")
        return self.stack([self.place(image, i) for i, image in enumerate(images)])

    def infer(self, prepared: Prepared) -> list[sv.Detections]:
        """Run the session on a prepared batch; detections in each source image's pixels."""
        output = self._run(prepared.blob)
        return [
            self._postprocess(output[i], box, hw)
            for i, (box, hw) in enumerate(zip(prepared.boxes, prepared.source_hw, strict=True))
        ]

    def _run(self, blob: np.ndarray) -> np.ndarray:
        if not self.io_binding:
            result: np.ndarray = self._session.run([self._output_name], {self._input_name: blob})[0]
            return result
        # I/O binding: ORT copies the input to the device once and writes the output
        # straight into host memory, instead of allocating and copying per call.
        binding = self._session.io_binding()
        binding.bind_cpu_input(self._input_name, blob)
        binding.bind_output(self._output_name, "cpu")
        self._session.run_with_iobinding(binding)
        output: np.ndarray = binding.copy_outputs_to_cpu()[0]
        return output

    def _postprocess(self, output: np.ndarray, box: Letterbox, source_hw: tuple[int, int]) -> sv.Detections:
        xyxy, scores, class_ids = self.family.decode(output, self.input_hw, self._confidence)
        keep = batched_nms(xyxy, scores, class_ids, self._nms_iou, self._max_detections)
        if keep.size == 0:
            return sv.Detections.empty()
        class_ids = class_ids[keep]
        return sv.Detections(
            xyxy=unletterbox(xyxy[keep], box, source_hw),
            confidence=scores[keep],
            class_id=class_ids,
            data={"class_name": self._names[class_ids].astype(str)},
        )
