"""Validation errors as lines a user can act on: file, key path as written in the YAML, what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamd.redact import redact

__all__ = ["format_errors", "shown", "user_path"]

_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """A short, redacted ``repr`` of a value for an error line (a 7 MB value must not become a 7 MB line)."""
    text = redact(repr(value))
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:_SHOWN_CHARS]}... ({len(text)} characters)"
    return text


def user_path(raw: Any, loc: tuple[int | str, ...], keep_last: bool) -> str:
    """Pydantic's error location as the keys the user wrote.

    Pydantic inserts the names of union members (``sinks.alerts.webhook.retries``);
    a step that is not a key or index of the user's data is one of those, and goes.
    ``keep_last`` keeps the final step anyway: the name of a missing key.
    """
    parts: list[str] = []
    node = raw
    for i, step in enumerate(loc):
        found, child = _child(node, step)
        if found:
            node = child
        elif not (keep_last and i == len(loc) - 1):
            continue
        parts.append(str(step))
    return ".".join(parts) or "(top level)"


def _child(node: Any, step: int | str) -> tuple[bool, Any]:
    """Whether ``step`` is a key (or index) of ``node``, and the value there."""
    if isinstance(node, dict) and step in node:
        return True, node[step]
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return True, node[step]
    return False, None


def format_errors(file: Path, raw: Any, error: ValidationError) -> list[str]:
    """One line per problem, each once, in the order pydantic found them."""
    lines: list[str] = []
    for item in error.errors():
        kind = item["type"]
        path = user_path(raw, tuple(item["loc"]), keep_last=kind == "missing")
        if kind == "extra_forbidden":
            line = f"{file}: {path}: unknown key"
        elif kind == "missing":
            line = f"{file}: {path}: required key is missing"
        else:
            got = item.get("input")
            msg = redact(item["msg"].removeprefix("Value error, "))
            detail = "" if isinstance(got, dict | list) else f" (got {shown(got)})"
            line = f"{file}: {path}: {msg}{detail}"
        if line not in lines:
            lines.append(line)
    return lines
