"""Keeping loops alive: exponential backoff with jitter, and a supervisor per loop.

An agent pod that exits on every Redis blip turns an outage into a CrashLoopBackOff with
ever-longer restarts. Instead each loop of the runtime runs under :func:`supervise`: a
failure is logged, the loop waits a growing, jittered delay (capped), and starts over with
a fresh subscription. The delay resets once the loop reports progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Backoff:
    """``initial * 2**n`` seconds, capped at ``maximum``, with +-20% jitter."""

    def __init__(self, *, initial: float = 0.2, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.failures = 0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def supervise(
    name: str,
    body: Callable[[Backoff], Awaitable[None]],
    *,
    stop: asyncio.Event,
    backoff_max_seconds: float = 30.0,
) -> None:
    """Run ``body`` until ``stop`` is set, restarting it after any failure with backoff.

    ``body`` receives the backoff and calls :meth:`Backoff.reset` once it made progress
    (connected, received, posted). A body that returns normally is restarted at once.
    """
    backoff = Backoff(maximum=backoff_max_seconds)
    while not stop.is_set():
        try:
            await body(backoff)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            delay = backoff.next_delay()
            logger.warning(
                "loop failed; retrying",
                extra={
                    "loop": name,
                    "error": f"{type(error).__name__}: {error}",
                    "retry_in": round(delay, 2),
                },
            )
            if await sleep_or_stop(stop, delay):
                return
