"""Reading a configuration file as YAML, within bounds that a hostile or broken file cannot escape.

A camera file is a few hundred bytes. Without bounds, 11 MB of YAML took 47 s and
920 MB to reject, and a "billion laughs" file (aliases of aliases) grew to 3 GB:
PyYAML builds aliases as shared references, but every later walk (validation,
error messages) expands them. So a file is refused when it is larger than
``MAX_BYTES``, nests deeper than ``MAX_DEPTH``, or would expand through its aliases
to more than ``MAX_NODES`` values; each check costs one pass over the parsed nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streamd.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "read_yaml"]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000


class _Bounded(yaml.SafeLoader):
    """A safe loader that refuses deep nesting while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooComplexError(f"nested more than {MAX_DEPTH} levels deep at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        # PyYAML keeps the last of two equal keys silently; two lines named "door" are a mistake.
        seen: set[object] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each name may appear once)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _TooComplexError(Exception):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (linear in distinct nodes)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_NODES + 1  # a cycle, should one get through, counts as too big
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    size = min(size, MAX_NODES + 1)
    memo[id(node)] = size
    return size


def read_yaml(file: Path) -> dict[str, Any]:
    """The mapping a configuration file holds; ConfigError naming the file and what is wrong."""
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(
            [f"{file}: larger than {MAX_BYTES // 1024} KiB; a configuration file is far smaller"]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text (byte {exc.start})"]) from exc
    loader = _Bounded(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise _TooComplexError(
                f"expands to more than {MAX_NODES} values through YAML aliases; write the values out instead"
            )
        parsed = loader.construct_document(node) if node is not None else None
    except _TooComplexError as exc:
        raise ConfigError([f"{file}: refused: {exc}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: invalid YAML{where}: {problem}"]) from exc
    finally:
        loader.dispose()
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError([f"{file}: expected a mapping of keys to values, got {type(parsed).__name__}"])
    return parsed
