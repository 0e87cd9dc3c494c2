"""Sinks from the configuration: the ZeroMQ publisher plus every named sink, with their outboxes."""

from __future__ import annotations

from collections.abc import Callable

from streamd.config import Config, MqttSinkConfig, WebhookSinkConfig
from streamd.errors import ConfigError
from streamd.sinks.base import SinkRunner, Transport
from streamd.sinks.mqtt import MqttTransport
from streamd.sinks.outbox import Outbox
from streamd.sinks.webhook import WebhookTransport
from streamd.sinks.zmq import ZmqTransport

__all__ = ["SINK_TYPES", "build_sinks"]

SINK_TYPES: dict[str, Callable[..., Transport]] = {  # each type's constructor: (name, config, file)
    "mqtt": MqttTransport,
    "webhook": WebhookTransport,
}


def build_sinks(config: Config) -> dict[str, SinkRunner]:
    """One runner per sink, filters set per camera; ConfigError when a sink cannot be set up."""
    daemon = config.daemon
    try:
        zmq = ZmqTransport(daemon.zmq)
    except Exception as exc:
        raise ConfigError([f"{config.path}: zmq.endpoint: cannot bind {daemon.zmq.endpoint}: {exc}"]) from exc
    runners = {"zmq": SinkRunner(zmq, daemon.zmq.queue_size, accept_all=True)}
    for name, sink in daemon.sinks.items():
        runners[name] = _build_one(config, name, sink)
    for camera_id, camera in config.cameras.items():
        for route in camera.sink_routes():
            runners[route.name].set_filter(camera_id, route)
    return runners


def _build_one(config: Config, name: str, sink: MqttSinkConfig | WebhookSinkConfig) -> SinkRunner:
    transport = SINK_TYPES[sink.type](name, sink, str(config.path))
    outbox = None
    if sink.delivery == "at_least_once":
        path = config.daemon.state_dir / "outbox" / f"{name}.sqlite"
        try:
            outbox = Outbox(path, sink.outbox)
        except Exception as exc:
            raise ConfigError([f"{config.path}: sinks.{name}: cannot open the outbox {path}: {exc}"]) from exc
    return SinkRunner(transport, sink.queue_size, sink.retry, outbox)
