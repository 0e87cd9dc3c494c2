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
from streamd.detect.session import create_session, free_image_size, requested_providers
from streamd.errors import ModelError
from streamd.log import get_logger
from streamd.picture import to_bgr, yuv420_planes

__all__ = ["Detector", "Image", "Placed", "Prepared", "class_names_from_metadata", "fitted_hw", "image_hw"]

Image = np.ndarray | av.VideoFrame  # BGR pixels, or a decoded picture (converted here, small)
FIT_STEP = 32  # input sides are multiples of the coarsest head's stride (YOLOX and Ultralytics: 32)


def image_hw(image: Image) -> tuple[int, int]:
    """An image's height and width."""
    if isinstance(image, av.VideoFrame):
        return image.height, image.width
    return int(image.shape[0]), int(image.shape[1])


def fitted_hw(source_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[int, int]:
    """The input for a picture: its aspect kept within ``input_hw``, sides rounded up to FIT_STEP.

    A 768x576 picture in a 416x416 model: 320x416, 23% fewer pixels than the square;
    1920x1080: 256x416, 38% fewer.
    """
    (h, w), (max_h, max_w) = source_hw, input_hw
    scale = min(max_h / h, max_w / w)
    return (
        min(max_h, -(-round(h * scale) // FIT_STEP) * FIT_STEP),
        min(max_w, -(-round(w * scale) // FIT_STEP) * FIT_STEP),
    )


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

    @property
    def input_hw(self) -> tuple[int, int]:
        """The batch's input height and width."""
        return int(self.blob.shape[2]), int(self.blob.shape[3])


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


def _inspect(
    session: ort.InferenceSession, family: Family, cfg: ModelConfig, exported_hw: tuple[int, int] | None
) -> _Shape:
    """The model's input and output layout; ``exported_hw``: its size before it was made free."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"{cfg.path}: expected one image input, found {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise ModelError(f"{cfg.path}: expected an NCHW image input, got shape {shape}")
    batch, channels, h, w = shape
    if channels not in (3, "3") and isinstance(channels, int):
        raise ModelError(f"{cfg.path}: expected 3 input channels, got {channels}")
    if exported_hw is None and isinstance(h, int) and isinstance(w, int):
        exported_hw = (h, w)
    if exported_hw is not None:
        input_hw = exported_hw
        if cfg.input_size is not None and tuple(cfg.input_size) != input_hw:
            raise ModelError(
                f"{cfg.path}: input_size {list(cfg.input_size)} but the model's input is {list(input_hw)}"
            )
    elif cfg.input_size is not None:
        input_hw = (cfg.input_size[0], cfg.input_size[1])
    else:
        raise ModelError(f"{cfg.path}: the model's input size is dynamic; set input_size: [height, width]")
    out_shape = tuple(outputs[0].shape[1:])
    class_count = family.class_count(out_shape, input_hw)
    return _Shape(inputs[0].name, input_hw, not isinstance(batch, int), class_count)


class Detector:
    """Runs one model: letterbox, infer (batched when the model allows), decode, NMS.

    With ``fit``, each batch's input takes the shape of its pictures (``fitted_hw``)
    instead of the model's full size: the padding a square adds to a wide picture is
    work for the model that finds nothing.
    """

    def __init__(
        self,
        name: str,
        session: ort.InferenceSession,
        provider: str,
        family: Family,
        cfg: ModelConfig,
        *,
        fit: bool = False,
        exported_hw: tuple[int, int] | None = None,
    ) -> None:
        shape = _inspect(session, family, cfg, exported_hw)
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
        self.input_hw = shape.input_hw  # the largest input; each batch's with fit
        self.fit = fit
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
        self._canvases: dict[tuple[int, int, int], np.ndarray] = {}  # (index, h, w): reused
        self._class_count = shape.class_count
        self._names = np.array(self.class_names, dtype=object)

    @classmethod
    def from_config(cls, name: str, cfg: ModelConfig) -> Detector:
        """Load the model file and check it against its declared family; fitted when it can be."""
        options = {
            "device": cfg.device,
            "threads": cfg.threads,
            "engine_cache": cfg.engine_cache_dir,
            "fp16": cfg.fp16,
        }
        family = FAMILIES[cfg.family]
        on_cpu = requested_providers(cfg.provider, cfg.device)[0] == "CPUExecutionProvider"
        if cfg.fit_input == "on" or (cfg.fit_input == "auto" and on_cpu):
            model, exported_hw = free_image_size(cfg.path)
            session, provider = create_session(cfg.path, cfg.provider, model=model, **options)  # type: ignore[arg-type]
            fitted = cls(name, session, provider, family, cfg, fit=True, exported_hw=exported_hw)
            problem = fitted._other_sizes_problem()
            if problem is None:
                return fitted
            if cfg.fit_input == "on":
                raise ModelError(f"{cfg.path}: fit_input is on, but {problem}")
            get_logger(model=name).info("model runs at its full size for every picture", reason=problem)
        session, provider = create_session(cfg.path, cfg.provider, **options)  # type: ignore[arg-type]
        return cls(name, session, provider, family, cfg)

    def _other_sizes_problem(self) -> str | None:
        """Why the model does not run at sizes other than ``input_hw``, or None when it does."""
        h, w = self.input_hw
        for hw in (
            (max(FIT_STEP, h // 2 // FIT_STEP * FIT_STEP), w),
            (h, max(FIT_STEP, w // 2 // FIT_STEP * FIT_STEP)),
        ):
            blob = np.full((1, 3, *hw), 114, np.float32)
            try:
                output = self._run(blob)
                classes = self.family.class_count(tuple(output.shape[1:]), hw)
            except Exception as exc:  # ORT's untyped errors, or an output that does not fit the size
                return f"it does not run on a {hw[0]}x{hw[1]} input: {type(exc).__name__}: {exc}"
            if classes != self._class_count:
                return f"on a {hw[0]}x{hw[1]} input it gives {classes} classes instead of {self._class_count}"
        return None

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

    def input_hw_for(self, sources_hw: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """A batch's input size: the model's, or with fit the least that holds each of these pictures."""
        if not self.fit or not sources_hw:
            return self.input_hw
        fitted = [fitted_hw(hw, self.input_hw) for hw in sources_hw]
        return max(h for h, _ in fitted), max(w for _, w in fitted)

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

    def place(self, image: Image, index: int, input_hw: tuple[int, int] | None = None) -> Placed:
        """Letterbox one image onto canvas ``index`` of the next batch (raises when the image is unusable).

        ``input_hw``: the batch's input size (default: ``input_hw_for`` this image alone).
        Called by one thread at a time (the canvases are reused).
        """
        source_hw = image_hw(image)
        hw = input_hw or self.input_hw_for([source_hw])
        key = (index, hw[0], hw[1])
        canvas = self._canvases.get(key)
        if canvas is None:
            if len(self._canvases) >= 64:  # pictures of many sizes: keep the newest only
                self._canvases.clear()
            canvas = self._canvases[key] = np.empty((hw[0], hw[1], 3), np.uint8)
        if isinstance(image, av.VideoFrame):
            planes = yuv420_planes(image)
            if planes is not None:
                placed, box = letterbox_yuv420(planes, hw, self.family.center, out=canvas)
                return Placed(placed, box, source_hw)
            image = to_bgr(image)
        placed, box = letterbox(image, hw, self.family.center, out=canvas)
        return Placed(placed, box, source_hw)

    def stack(self, placed: Sequence[Placed]) -> Prepared:
        """One input tensor from placed images (a new array: the canvases can be reused at once)."""
        if len(placed) > self.max_batch:
            raise ValueError(f"{len(placed)} images for a batch of at most {self.max_batch}")
        hw = placed[0].canvas.shape[:2]
        if any(p.canvas.shape[:2] != hw for p in placed):
            raise ValueError("the images of a batch were placed at different input sizes")
        blob = input_tensor([p.canvas for p in placed], rgb=self.family.rgb, scale=self.family.scale)
        return Prepared(blob, [p.box for p in placed], [p.source_hw for p in placed])

    def prepare(self, images: Sequence[Image]) -> Prepared:
        """Letterbox up to ``max_batch`` images into one input tensor."""
        if len(images) > self.max_batch:
            raise ValueError(f"{len(images)} images for a batch of at most {self.max_batch}")
        hw = self.input_hw_for([image_hw(image) for image in images])
        return self.stack([self.place(image, i, hw) for i, image in enumerate(images)])

    def infer(self, prepared: Prepared) -> list[sv.Detections]:
        """Run the session on a prepared batch; detections in each source image's pixels."""
        output = self._run(prepared.blob)
        return [
            self._postprocess(output[i], box, hw, prepared.input_hw)
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

    def _postprocess(
        self, output: np.ndarray, box: Letterbox, source_hw: tuple[int, int], input_hw: tuple[int, int]
    ) -> sv.Detections:
        xyxy, scores, class_ids = self.family.decode(output, input_hw, self._confidence)
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
