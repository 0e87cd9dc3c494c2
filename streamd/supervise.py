"""Supervision: every long-lived thread of the daemon is a ``Component``.

A component runs a body in its own named thread. When the body raises, the failure
is counted and logged (the first with its traceback, then at most one line a minute
with how many followed), the component's hook runs (a camera turns to
``reconnecting``), and the body starts again after a capped, jittered backoff. The
body returns only when asked to stop, or when its work is done (a file that does
not loop).

States and the transitions between them:

    STARTING   -> RUNNING
    RUNNING    -> RESTARTING | STOPPED
    RESTARTING -> RUNNING | STOPPED
    STOPPED    (final)

Progress is a promise: the body calls ``beat(within_s)`` to say it will show progress
again within that time (a camera waiting out a 5 s read timeout promises 10 s; a
worker promises nothing beyond its next round). ``Supervisor.stuck`` names a component
whose promise is more than ``stall_timeout_s`` overdue, or whose thread died outside
this loop: /healthz turns 503 and the systemd watchdog stops its keep-alives. A
component that is restarting after a failure is not stuck (it keeps its schedule, like
a camera that is down), but /healthz reports it until it has run cleanly for a minute.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streamd.backoff import Backoff
from streamd.log import Throttle, get_logger
from streamd.redact import redact
from streamd.threadname import name_os_thread

__all__ = ["Component", "ComponentState", "Service", "Supervisor"]

# A failure this recent still shows in /healthz (the backoff is capped at 30 s, so a
# component in a crash loop never leaves this window).
_FAILING_WINDOW_S = 60.0
# A body that ran this long before failing starts its backoff from the beginning again.
_BACKOFF_RESET_S = 60.0


class ComponentState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


_ALLOWED = {
    ComponentState.STARTING: {ComponentState.RUNNING, ComponentState.STOPPED},
    ComponentState.RUNNING: {ComponentState.RESTARTING, ComponentState.STOPPED},
    ComponentState.RESTARTING: {ComponentState.RUNNING, ComponentState.STOPPED},
    ComponentState.STOPPED: set(),
}


@dataclass
class ComponentStats:
    """What /metrics and /healthz read about a component."""

    state: ComponentState = ComponentState.STARTING
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_failure: float | None = None  # monotonic


class Component:
    """A named thread whose body is restarted with backoff whenever it raises."""

    def __init__(
        self,
        name: str,
        body: Callable[[], None],
        stop: threading.Event,
        *,
        on_failure: Callable[[str], None] | None = None,
        on_exit: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        **log_keys: object,
    ) -> None:
        self.name = name
        self.stats = ComponentStats()
        self._body = body
        self._stop = stop
        self._on_failure = on_failure
        self._on_exit = on_exit
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._throttle = Throttle(60.0)
        self._logged_error: str | None = None
        self._log = get_logger(component=name, **log_keys)
        self.deadline = time.monotonic()
        self.died = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # --- progress ---------------------------------------------------------------------------

    def beat(self, within_s: float = 0.0) -> None:
        """Promise to show progress again within ``within_s`` seconds."""
        self.deadline = time.monotonic() + within_s

    def late_by(self, now: float) -> float:
        """Seconds the component is past its promise (0 when on time)."""
        return max(0.0, now - self.deadline)

    # --- life cycle -------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True when it ended (or never started)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set_state(self, state: ComponentState) -> None:
        if state is not self.stats.state and state not in _ALLOWED[self.stats.state]:
            raise RuntimeError(f"{self.name}: {self.stats.state.value} -> {state.value} is not allowed")
        self.stats.state = state

    def _run(self) -> None:
        ended = False  # the body returned, or stopped during a backoff: the normal ways out
        try:
            name_os_thread(self.name)
            while True:
                self._set_state(ComponentState.RUNNING)
                started = time.monotonic()
                try:
                    self._body()
                    ended = True
                    return  # asked to stop, or its work is done
                except Exception as exc:  # the point of supervision: anything a body raises
                    if time.monotonic() - started >= _BACKOFF_RESET_S:
                        self._backoff.reset()
                    delay = self._backoff.next()
                    self._failed(exc, delay)
                if self._stop.wait(delay):
                    ended = True
                    return
                self.stats.restarts += 1
        finally:
            # Anything not an Exception (SystemExit from a library, say) ends the thread here.
            self.died = not ended and not self._stop.is_set()
            self._set_state(ComponentState.STOPPED)
            if self._on_exit is not None:
                self._on_exit()

    def _failed(self, exc: Exception, delay: float) -> None:
        error = redact(f"{type(exc).__name__}: {exc}")
        stats = self.stats
        stats.failures += 1
        stats.last_error = error
        stats.last_failure = time.monotonic()
        self._set_state(ComponentState.RESTARTING)
        self.beat(delay)  # retrying on schedule is progress, as for a camera that is down
        held = self._throttle.ready()
        if held is not None:
            # The traceback once per distinct error; a repeat says how many followed.
            first = error != self._logged_error
            log = self._log.exception if first else self._log.error
            log("component failed; restarting", error=error, failures=stats.failures,
                repeats_not_logged=held, retry_in_s=round(delay, 2))  # fmt: skip
            self._logged_error = error
        if self._on_failure is not None:
            try:
                self._on_failure(error)
            except Exception:
                self._log.exception("failure hook failed")

    # --- what health sees -------------------------------------------------------------------

    def stuck(self, now: float, limit_s: float) -> str | None:
        """Why this component is wedged (its thread died, or no progress past its promise), or None."""
        if self.died or (self._thread.ident is not None and not self._thread.is_alive() and
                         self.stats.state is not ComponentState.STOPPED):  # fmt: skip
            return f"{self.name}: its thread ended unexpectedly"
        if self.stats.state is ComponentState.STOPPED or self._stop.is_set() or self._thread.ident is None:
            return None
        late = self.late_by(now)
        if late > limit_s:
            return f"{self.name} has made no progress for {late:.0f} s"
        return None

    def failing(self, now: float) -> str | None:
        """Why this component is unhealthy though not stuck: restarting after a recent failure."""
        stats = self.stats
        if stats.last_failure is None or self._stop.is_set():
            return None
        if stats.state is ComponentState.RESTARTING or now - stats.last_failure < _FAILING_WINDOW_S:
            return f"{self.name} failed {stats.failures} time(s), last: {stats.last_error}"
        return None


class Service:
    """One supervised thread that sleeps on a condition: ``stop()`` sets its event and wakes it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.component = Component(name, target, self._stop)

    def start(self) -> None:
        self.component.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        return self.component.join(timeout)


class Supervisor:
    """Every component of the daemon, for health, the watchdog and metrics."""

    def __init__(self) -> None:
        # Copy-on-write: the HTTP, watchdog and metrics threads read it without a lock.
        self.components: dict[str, Component] = {}

    def add(self, components: Iterable[Component]) -> None:
        self.components = {**self.components, **{c.name: c for c in components}}

    def remove(self, components: Iterable[Component]) -> None:
        names = {c.name for c in components}
        self.components = {n: c for n, c in self.components.items() if n not in names}

    def stuck(self, limit_s: float) -> str | None:
        """The first wedged component's reason, or None."""
        now = time.monotonic()
        for component in self.components.values():
            reason = component.stuck(now, limit_s)
            if reason is not None:
                return reason
        return None

    def failing(self) -> list[str]:
        """Components restarting after a recent failure, with their last error."""
        now = time.monotonic()
        return [r for c in self.components.values() if (r := c.failing(now)) is not None]
