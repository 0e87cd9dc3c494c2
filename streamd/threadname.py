"""Names of the daemon's threads as the operating system shows them (``top -H``, ``ps -L``)."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from functools import lru_cache

__all__ = ["name_os_thread", "short_name"]

_PR_SET_NAME = 15
_MAX_BYTES = 15  # Linux keeps 16 bytes with the terminating NUL


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The process's own symbols, libc's among them: find_library("c") would run ldconfig.
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (``short_name``) where the system allows; else nothing.

    Python names its threads only for itself: without this every thread of the daemon
    is ``python`` to ``top -H``, and a camera that burns a core cannot be told apart.
    """
    libc = _libc()
    if libc is None:
        return
    with contextlib.suppress(OSError, ctypes.ArgumentError, UnicodeError):  # a name is not worth a thread
        libc.prctl(_PR_SET_NAME, short_name(name).encode(), 0, 0, 0)


def short_name(name: str) -> str:
    """``name`` in the 15 bytes Linux keeps: a longer one keeps its start and its end around a ``~``.

    ``worker/default-1`` becomes ``worker/~fault-1``: the kind of thread and which one
    both stay readable.
    """
    raw = name.encode()
    if len(raw) <= _MAX_BYTES:
        return name
    half = (_MAX_BYTES - 1) // 2
    return (raw[:half] + b"~" + raw[-half:]).decode(errors="replace")
