"""The ZeroMQ PUB socket: multipart ``[streamd/<camera>, frame]`` and ``[streamd.event/<camera>, event]``."""

from __future__ import annotations

import zmq

from streamd.analytics.events import event_topic
from streamd.config import ZmqConfig
from streamd.message import topic
from streamd.sinks.base import Item

__all__ = ["ZmqTransport"]


class ZmqTransport:
    """Publishes every result. Binds at construction, so a taken port fails start-up."""

    name = "zmq"
    max_batch = 256
    fill = 1
    fill_wait_s = 0.0
    keeps_state = False

    def __init__(self, config: ZmqConfig, context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, config.send_hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        if "[" in config.endpoint:
            self._socket.setsockopt(zmq.IPV6, 1)
        self._socket.bind(config.endpoint)
        self.endpoint = config.endpoint

    def send(self, items: list[Item]) -> None:
        for item in items:
            # NOBLOCK: at the high-water mark PUB drops rather than blocks; it never raises Again.
            name = event_topic(item.camera) if item.kind == "event" else topic(item.camera)
            self._socket.send_multipart([name, item.payload], flags=zmq.NOBLOCK)

    def close(self) -> None:
        self._socket.close(linger=0)
