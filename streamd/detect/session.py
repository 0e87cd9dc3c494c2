"""ONNX Runtime sessions with the execution provider chosen by config, verified after creation."""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from streamd.errors import ModelError

__all__ = ["create_session", "default_threads", "free_image_size", "gpu_usable", "requested_providers"]

_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def default_threads(workers: int = 1) -> int:
    """CPU inference threads per session when the config sets none.

    Every core but one (the decoders'), shared between the sessions, at least one and
    at most 8 (small detectors gain little beyond). Measured on 2 cores with 8 cameras
    x 25 fps and one session (median of 3 runs): 1 thread processed 41.0 fps at 33.7 ms
    CPU a frame, 2 threads 37.1 fps at 41.4 ms, the decoders and the inference threads
    preempting each other (bench/results/2026-11-22-cpu-ab-threads-pipeline.txt).
    """
    return max(1, min(((os.cpu_count() or 1) - 1) // workers, 8))


@lru_cache(maxsize=1)
def gpu_usable() -> bool:
    """Whether the CUDA driver loads and sees a device.

    onnxruntime-gpu lists CUDA and TensorRT as available even on machines without
    a GPU, and then prints load errors when asked for them; asking the driver first
    keeps ``auto`` quiet on CPU machines.
    """
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    return False


def requested_providers(
    setting: str,
    device: int,
    gpu: bool | None = None,
    engine_cache: Path | None = None,
    fp16: bool = True,
) -> list[Any]:
    """The provider list to ask ONNX Runtime for, best first; CPU is always the last resort."""
    gpu = gpu_usable() if gpu is None else gpu
    cuda = (_NAMES["cuda"], {"device_id": device, "cudnn_conv_algo_search": "HEURISTIC"})
    cpu = _NAMES["cpu"]
    if setting == "cpu" or (setting == "auto" and not gpu):
        return [cpu]
    if setting == "tensorrt":
        trt: dict[str, Any] = {"device_id": device, "trt_fp16_enable": fp16}
        if engine_cache is not None:
            # Building an engine takes minutes; the cache makes every later start take seconds.
            trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(engine_cache),
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": str(engine_cache)}  # fmt: skip
        return [(_NAMES["tensorrt"], trt), cuda, cpu]
    return [cuda, cpu]


def free_image_size(path: Path) -> tuple[bytes, tuple[int, int] | None]:
    """The model with its image input's height and width free (names instead of numbers), and
    the size it was exported at (None when it was free already).

    A detector made of convolutions runs at other sizes than the one it was exported at;
    whether this one really does is for the caller to try. ModelError when the file does
    not parse or has no NCHW input.
    """
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's own errors
        raise ModelError(f"{path}: cannot load model: {exc}") from exc
    initialisers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialisers]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise ModelError(f"{path}: expected one NCHW image input")
    dims = inputs[0].type.tensor_type.shape.dim
    exported = (dims[2].dim_value, dims[3].dim_value)
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.Clear()
        dim.dim_param = name
    del model.graph.value_info[:]  # shapes inferred for the exported size
    # The outputs keep their declared shapes: which axis follows the image size depends on
    # the model, and ONNX Runtime takes a declared output shape as a hint only.
    data: bytes = model.SerializeToString()
    return data, exported if all(exported) else None


def create_session(
    path: Path,
    setting: str,
    *,
    device: int = 0,
    threads: int | None = None,
    engine_cache: Path | None = None,
    fp16: bool = True,
    model: bytes | None = None,
) -> tuple[ort.InferenceSession, str]:
    """Load a model (``path``, or ``model``, its bytes, changed); the session and the provider it runs on.

    ModelError when the file does not load, or when an explicitly requested GPU
    provider did not come up (``auto`` falls back to the CPU instead).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise
    # Idle worker threads spin by default: 81% of a core on a 10 fps camera, 33% without.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if setting == "tensorrt" and engine_cache is not None:
        try:
            engine_cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"{engine_cache}: cannot create the TensorRT engine cache: {exc}") from exc
    providers = requested_providers(setting, device, engine_cache=engine_cache, fp16=fp16)
    try:
        source = model if model is not None else str(path)
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own untyped errors for unreadable models
        raise ModelError(f"{path}: cannot load model: {exc}") from exc
    active = session.get_providers()[0]
    if setting in ("cuda", "tensorrt") and active != _NAMES[setting]:
        raise ModelError(
            f"{path}: provider {setting!r} was requested but the session runs on {active}"
            " (is there a usable NVIDIA GPU and CUDA runtime?); use provider: auto to fall back to the CPU"
        )
    return session, active
