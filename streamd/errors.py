"""The one exception tree of streamd.

StreamdError
├── ConfigError        the configuration is invalid; carries one line per problem
├── ModelError         a model file cannot be loaded or does not match its family
└── SourceError        a camera cannot be opened or stopped delivering frames

Start-up raises ConfigError and ModelError and the daemon exits 1 with their
message. SourceError never leaves a camera thread: it is logged, counted and
followed by a reconnect.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ModelError", "SourceError", "StreamdError"]


class StreamdError(Exception):
    """Base of every error streamd raises on purpose."""


class ConfigError(StreamdError):
    """The configuration is invalid. ``problems`` holds one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelError(StreamdError):
    """A model cannot be loaded or its inputs and outputs do not fit its family."""


class SourceError(StreamdError):
    """A camera cannot be opened, or it stopped delivering frames."""
