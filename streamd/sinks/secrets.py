"""Secrets from a file or an environment variable, never from the config itself."""

from __future__ import annotations

import os
from pathlib import Path

from streamd.errors import ConfigError

__all__ = ["read_secret"]


def read_secret(where: str, file: Path | None, env: str | None) -> str | None:
    """The secret, or None when neither source is set; ConfigError naming ``where`` when unreadable."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"{where}: cannot read {file}: {exc.strerror or exc}"]) from exc
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError([f"{where}: environment variable {env} is not set"])
        return value
    return None
