"""The detector with real ONNX Runtime sessions: the shared YOLOX model and a built Ultralytics-layout model."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import onnx
import pytest
import supervision as sv
from onnx import TensorProto, helper

from streamd.config import ModelConfig
from streamd.detect import Detector
from streamd.detect.families import anchor_count
from streamd.detect.session import gpu_usable, requested_providers
from streamd.errors import ModelError
from streamd.picture import to_bgr
from tests.helpers import MODEL, VIDEO


def video_frames(count: int, start: int = 0) -> list[np.ndarray]:
    frames = []
    with av.open(str(VIDEO)) as container:
        for i, picture in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(to_bgr(picture))
            if len(frames) == count:
                break
    return frames


def test_yolox_nano_finds_people_and_cars_on_the_pedestrian_video():
    detector = Detector.from_config("default", ModelConfig(path=MODEL, family="yolox"))
    assert detector.provider == "CPUExecutionProvider" or gpu_usable()
    assert detector.input_hw == (416, 416)
    assert detector.max_batch == 1  # this export's batch axis is fixed
    (dets,) = detector.detect(video_frames(1, start=50))
    names = list(dets.data["class_name"][dets.confidence >= 0.4])
    assert names.count("person") >= 5
    assert names.count("car") >= 1
    assert dets.xyxy[:, 2].max() <= 768
    assert dets.xyxy[:, 3].max() <= 576


def test_detections_are_in_source_pixels():
    detector = Detector.from_config("default", ModelConfig(path=MODEL, family="yolox"))
    frame = video_frames(1, start=50)[0]
    (full,) = detector.detect([frame])
    # The same scene at half size gives boxes at half the coordinates.
    half = frame[::2, ::2].copy()
    (small,) = detector.detect([half])
    top_full = full.xyxy[np.argmax(full.confidence)]
    top_small = small.xyxy[np.argmax(small.confidence)]
    np.testing.assert_allclose(top_small * 2, top_full, atol=12)


def build_ultralytics_model(path: Path, size: int = 64, classes: int = 3) -> None:
    """A dynamic-batch model in the Ultralytics layout [N, 4 + classes, anchors].

    It outputs one fixed box (cx 32, cy 16, w 20, h 10, class 2, score 0.9) plus
    the mean of each input image at anchor 1, so each image of a batch gets its own output.
    """
    anchors = anchor_count((size, size))
    const = np.zeros((1, 4 + classes, anchors), np.float32)
    const[0, :4, 0] = [32, 16, 20, 10]
    const[0, 4 + 2, 0] = 0.9
    onehot = np.zeros((1, 4 + classes, anchors), np.float32)
    onehot[0, 4, 1] = 1.0  # class 0 score at anchor 1 = mean pixel of the image
    onehot[0, :4, 1] = [10, 10, 4, 4]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
            helper.make_node("Mul", ["mean3", "onehot"], ["scaled"]),
            helper.make_node("Add", ["scaled", "const"], ["output0"]),
        ],
        "ultralytics_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + classes, anchors])],
        [
            helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 1, 1]),
            helper.make_tensor("onehot", TensorProto.FLOAT, onehot.shape, onehot.ravel()),
            helper.make_tensor("const", TensorProto.FLOAT, const.shape, const.ravel()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_ultralytics_layout_with_dynamic_batch_infers_several_images_at_once(tmp_path):
    path = tmp_path / "custom.onnx"
    build_ultralytics_model(path)
    cfg = ModelConfig(path=path, family="yolov8", class_names=["a", "b", "c"], max_batch=4, confidence=0.25)
    detector = Detector.from_config("custom", cfg)
    assert detector.max_batch == 4
    calls = []
    real_run = detector._session.run
    detector._session.run = lambda *a, **k: calls.append(a[1]["images"].shape) or real_run(*a, **k)
    # A 128x64 image: letterboxed at scale 0.5, centred, so source = (input - (0, 16)) / 0.5.
    dark = np.zeros((64, 128, 3), np.uint8)
    bright = np.full((64, 128, 3), 255, np.uint8)
    results = detector.detect([dark, bright, dark])
    assert calls == [(3, 3, 64, 64)]  # one run for the whole batch
    for dets in results:
        assert "c" in list(dets.data["class_name"])
        box = dets.xyxy[list(dets.data["class_name"]).index("c")]
        # input box x 22..42, y 11..21 -> source x 44..84, y -10..10, clipped at the top edge
        np.testing.assert_allclose(box, [44, 0, 84, 10], atol=1e-4)
    # Only the bright image scores class "a" at anchor 1 above the threshold: batches stay separate.
    assert ["a" in list(d.data["class_name"]) for d in results] == [False, True, False]


def test_explicit_cuda_on_a_machine_without_gpu_fails_fast_with_a_clear_message():
    if gpu_usable():
        pytest.skip("this machine has a usable GPU")
    assert requested_providers("auto", 0) == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="provider 'cuda' was requested but the session runs on"):
        Detector.from_config("default", ModelConfig(path=MODEL, family="yolox", provider="cuda"))


def test_wrong_family_is_rejected_at_load():
    with pytest.raises(ModelError, match="right family"):
        Detector.from_config("default", ModelConfig(path=MODEL, family="yolov8"))


def test_io_binding_gives_the_same_detections_as_a_plain_run(tmp_path):
    path = tmp_path / "custom.onnx"
    build_ultralytics_model(path)
    plain = Detector.from_config("p", ModelConfig(path=path, family="yolov8", max_batch=4, io_binding="off"))
    bound = Detector.from_config("b", ModelConfig(path=path, family="yolov8", max_batch=4, io_binding="on"))
    assert (plain.io_binding, bound.io_binding) == (False, True)
    images = [np.full((64, 128, 3), v, np.uint8) for v in (0, 255, 90)]
    for a, b in zip(plain.detect(images), bound.detect(images), strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.class_id, b.class_id)


def test_tensorrt_asks_for_fp16_and_an_engine_cache(tmp_path):
    (trt, _cuda, _cpu) = requested_providers("tensorrt", 0, gpu=True, engine_cache=tmp_path, fp16=True)
    name, options = trt
    assert name == "TensorrtExecutionProvider"
    assert options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(tmp_path)


def test_requested_providers_prefer_the_gpu_and_keep_cpu_last():
    (cuda, cpu) = requested_providers("auto", 1, gpu=True)
    assert cuda[0] == "CUDAExecutionProvider"
    assert cuda[1]["device_id"] == 1
    assert cpu == "CPUExecutionProvider"
    trt = requested_providers("tensorrt", 0, gpu=True)
    assert [p if isinstance(p, str) else p[0] for p in trt] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider",
    ]  # fmt: skip
    assert requested_providers("cpu", 0, gpu=True) == ["CPUExecutionProvider"]


def test_the_shared_yolox_runs_fitted_to_the_video_and_finds_the_same_people():
    """Exported at a fixed 416x416, made free and tried at start: a 4:3 picture runs at 320x416."""
    square = Detector.from_config("square", ModelConfig(path=MODEL, family="yolox", fit_input="off"))
    fitted = Detector.from_config("fitted", ModelConfig(path=MODEL, family="yolox"))  # auto, on a CPU
    assert (square.fit, fitted.fit) == (False, True)
    assert fitted.input_hw == (416, 416)  # the largest input
    frames = video_frames(3, start=50)
    for frame in frames:
        assert fitted.prepare([frame]).blob.shape == (1, 3, 320, 416)
        (a,), (b,) = square.detect([frame]), fitted.detect([frame])
        a, b = a[a.confidence >= 0.4], b[b.confidence >= 0.4]
        assert len(a) >= 5 and abs(len(a) - len(b)) <= 1
        iou = sv.box_iou_batch(a.xyxy, b.xyxy).max(axis=1)
        assert np.median(iou) > 0.97 and (iou > 0.8).mean() >= 0.9


def test_a_model_that_runs_at_one_size_only_is_not_fitted_or_fails_when_asked(tmp_path):
    path = tmp_path / "fixed.onnx"
    build_ultralytics_model(path)  # its anchor count is a constant: it cannot run at other sizes
    auto = Detector.from_config("auto", ModelConfig(path=path, family="yolov8"))
    assert not auto.fit and auto.prepare([np.zeros((48, 64, 3), np.uint8)]).blob.shape[2:] == (64, 64)
    with pytest.raises(ModelError, match="fit_input is on, but it does not run on a 32x64 input"):
        Detector.from_config("on", ModelConfig(path=path, family="yolov8", fit_input="on"))


def test_a_batch_of_differently_shaped_pictures_shares_the_input_that_holds_each():
    fitted = Detector.from_config("fitted", ModelConfig(path=MODEL, family="yolox"))
    assert fitted.input_hw_for([(576, 768), (1080, 1920)]) == (320, 416)
    assert fitted.input_hw_for([(1080, 1920), (1920, 1080)]) == (416, 416)
    assert fitted.input_hw_for([]) == (416, 416)
