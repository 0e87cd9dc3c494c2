"""Object detection: ONNX Runtime sessions and the pre/post-processing of each model family."""

from streamd.detect.detector import Detector

__all__ = ["Detector"]
