"""systemd's notification protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING.

The protocol is one datagram of ``KEY=value`` lines to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Outside systemd
the variable is unset and every call does nothing, so the daemon runs the same
under a terminal, a container or a service manager.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from streamd.log import get_logger
from streamd.supervise import Component

__all__ = ["Notifier", "Watchdog", "watchdog_interval"]

_log = get_logger()


class Notifier:
    """Sends notifications to systemd when ``$NOTIFY_SOCKET`` is set."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A full socket (a stalled or absent reader) must never block the daemon: drop instead.
            self._sock.setblocking(False)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="ok")``; False when not sent."""
        if self._sock is None or self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with self._lock:
            try:
                self._sock.sendto(payload, self._address)
            except OSError as exc:  # systemd went away, or its queue is full: never fatal
                _log.warning("cannot notify systemd", error=str(exc))
                return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds within which systemd expects WATCHDOG=1 (``WatchdogSec=``), or None when off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class Watchdog:
    """Sends WATCHDOG=1 and STATUS= every ``period`` while ``healthy()`` says the pipeline moves.

    ``healthy`` returns None when all is well, or why not; while it says why not,
    no keep-alive is sent, so systemd restarts the service once ``WatchdogSec``
    has passed since the last one. The loop is itself a supervised component: if it
    wedged, keep-alives would stop and systemd would restart the daemon, which is the
    safe way for it to fail.
    """

    def __init__(
        self,
        notifier: Notifier,
        period_s: float,
        healthy: Callable[[], str | None],
        status: Callable[[], str],
    ) -> None:
        self._notifier = notifier
        self._period = period_s
        self._healthy = healthy
        self._status = status
        self._stop = threading.Event()
        self.component = Component("watchdog", self._run, self._stop)
        self._stuck_reason: str | None = None

    def start(self) -> None:
        self.component.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        return self.component.join(timeout)

    def send_round(self) -> None:
        """One round: the status, and a keep-alive unless something is stuck."""
        reason = self._healthy()
        fields: dict[str, str | int] = {"STATUS": self._status()}
        if reason is None:
            fields["WATCHDOG"] = 1
            if self._stuck_reason is not None:
                _log.info("pipeline moving again; watchdog keep-alives resumed")
        else:
            fields["STATUS"] = f"stuck: {reason}"
            if self._stuck_reason is None:  # once per episode: the reason's seconds keep changing
                _log.error("pipeline stuck; withholding watchdog keep-alives", reason=reason)
        self._stuck_reason = reason
        self._notifier.send(**fields)

    def _run(self) -> None:
        self.component.beat(self._period)
        while not self._stop.wait(self._period):
            self.send_round()
            self.component.beat(self._period)
