"""Sinks: where results go. Each runs in its own thread behind a bounded queue."""

from streamd.sinks.base import DeliveryError, Item, SinkRunner, SinkStats, Transport
from streamd.sinks.build import build_sinks

__all__ = ["DeliveryError", "Item", "SinkRunner", "SinkStats", "Transport", "build_sinks"]
