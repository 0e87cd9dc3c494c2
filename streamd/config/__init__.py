"""Configuration: ``streamd.yaml`` for the daemon and one YAML file per camera.

Every model forbids unknown keys and describes each field. ``load_config`` reads
everything and collects every problem; each line names the file, the key path as
the user wrote it, and what was expected.

- ``daemon``: the models of ``streamd.yaml``
- ``camera``: the models of a camera file
- ``yamlfile``: reading a file as YAML within size, depth and alias bounds
- ``problems``: validation errors as lines a user can act on
- ``load``: loading and cross-checking it all
"""

from streamd.config.camera import (
    CameraConfig,
    CameraSinkConfig,
    SourceConfig,
    TrackerConfig,
    effective_fps,
    source_kind,
)
from streamd.config.daemon import (
    DaemonConfig,
    HttpConfig,
    ModelConfig,
    MqttSinkConfig,
    OutboxConfig,
    RetryConfig,
    TlsConfig,
    WebhookSinkConfig,
    ZmqConfig,
    split_listen,
)
from streamd.config.load import DEFAULT_CONFIG, Config, InvalidCamera, camera_files, load_config, read_secret

__all__ = [
    "DEFAULT_CONFIG",
    "CameraConfig",
    "CameraSinkConfig",
    "Config",
    "DaemonConfig",
    "HttpConfig",
    "InvalidCamera",
    "ModelConfig",
    "MqttSinkConfig",
    "OutboxConfig",
    "RetryConfig",
    "SourceConfig",
    "TlsConfig",
    "TrackerConfig",
    "WebhookSinkConfig",
    "ZmqConfig",
    "camera_files",
    "effective_fps",
    "load_config",
    "read_secret",
    "source_kind",
    "split_listen",
]
