"""Sinks: where results go. Each runs in its own thread behind a bounded queue."""

from streamd.sinks.base import Sink, SinkRunner, SinkStats
from streamd.sinks.zmq import ZmqSink

__all__ = ["Sink", "SinkRunner", "SinkStats", "ZmqSink"]
