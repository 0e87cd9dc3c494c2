"""Capped exponential backoff with jitter."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays ``initial * multiplier**n`` capped at ``maximum``, each drawn from its upper half.

    The jitter keeps many cameras behind one failed switch from retrying in step.
    """

    def __init__(
        self, initial: float, maximum: float, multiplier: float = 2.0, rng: random.Random | None = None
    ):
        self._initial = initial
        self._maximum = maximum
        self._multiplier = multiplier
        self._rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        ceiling = min(self._maximum, self._initial * self._multiplier**self.attempts)
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.attempts = 0
