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

from sapphire.agents import health as agent_health

logger = logging.getLogger(__name__)


class Backoff:
    """``initial * 2**n`` seconds, capped at ``maximum``, with +-20% jitter."""

    def __init__(
        self, *, initial: float = 0.2, maximum: float = 30.0, on_progress: Callable[[], None] | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self.on_progress = on_progress

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        """The loop made progress: the next failure starts from the initial delay again."""
        self.failures = 0
        if self.on_progress is not None:
            self.on_progress()


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
    health: agent_health.LoopHealth | None = None,
) -> None:
    """Run ``body`` until ``stop`` is set, restarting it after any failure with backoff.

    ``body`` receives the backoff and calls :meth:`Backoff.reset` once it made progress
    (connected, received, posted). A body that returns normally is restarted at once.
    ``health`` hears of every failure and every progress: a loop that keeps failing makes
    the agent unhealthy (:mod:`sapphire.agents.health`), rather than being retried unseen.
    """
    on_progress = None
    if health is not None:
        health.register(name)
        on_progress = lambda: health.progress(name)  # noqa: E731 - bound to this loop's name
    backoff = Backoff(maximum=backoff_max_seconds, on_progress=on_progress)
    while not stop.is_set():
        try:
            await body(backoff)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if health is not None:
                health.failed(name, error)
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
