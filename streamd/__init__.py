"""streamd: live cameras to tracked detections on ZeroMQ."""

from streamd.errors import ConfigError, ModelError, SourceError, StreamdError
from streamd.types import Frame, FrameResult, Timings

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Frame",
    "FrameResult",
    "ModelError",
    "SourceError",
    "StreamdError",
    "Timings",
    "__version__",
]
