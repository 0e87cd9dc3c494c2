"""Camera sources: PyAV readers for RTSP, files and V4L2, and the camera thread around them."""

from streamd.sources.camera import Camera, CameraState, CameraStats

__all__ = ["Camera", "CameraState", "CameraStats"]
