"""A token bucket for ``spec.model.maxCallsPerMinute``.

A live agent's call that finds the bucket empty is refused at once rather than queued: an
analyst that waits for a model slot would fall behind the market, and abstaining is always
allowed. A backtest filling its answer cache has no market to fall behind, so it waits for
the slot instead (:meth:`TokenBucket.seconds_until_available`): its answers then do not depend
on how fast the replay ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``capacity`` calls at most in a burst, refilled at ``per_minute / 60`` calls a second."""

    def __init__(
        self, *, per_minute: int, capacity: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)
        self._tokens = self.capacity
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take one call slot if there is one; never waits."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def seconds_until_available(self) -> float:
        """How long until :meth:`try_acquire` would succeed (0 when it would now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)
