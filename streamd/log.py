"""Structured logging: JSON lines under systemd, key=value on a terminal, never a secret.

Every line passes through ``redact`` (passwords in URLs, tokens, registered secrets)
after exceptions are formatted, so a traceback that prints a camera URL is safe too.
Errors that repeat (a camera down for hours, a model that fails on every frame) go
through a ``Throttle``: the first is logged whole, then one line a minute says how many
followed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from streamd.redact import redact, redact_value

__all__ = ["Throttle", "configure_logging", "get_logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)


def _redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        # Anything that is not plain data is rendered by the renderer with str()/repr():
        # render it here instead, so that what it prints is redacted too.
        event[key] = redact_value(value) if isinstance(value, _PLAIN) else redact(str(value))
    return event


def configure_logging(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", stream: object = None
) -> None:
    """Set up structlog for the whole process; safe to call again (on reload)."""
    out = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(out, "isatty") and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    """A logger with the given keys bound, e.g. ``get_logger(camera="entrance")``."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind(**bound)
    return logger


class Throttle:
    """Lets a repeating report through at most once per ``interval_s``, counting the ones held back.

    ``ready()`` returns None to stay quiet, else how many reports were held back since
    the last one let through (0 for the first).
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self._interval = interval_s
        self._next = float("-inf")
        self._held = 0

    def ready(self, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self._interval
        return held

    def reset(self) -> None:
        """Forget the history: the next report is let through (after a recovery)."""
        self._next = float("-inf")
        self._held = 0
