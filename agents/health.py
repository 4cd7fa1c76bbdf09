"""An agent's health, from the progress of its loops: ``/healthz``, ``/readyz`` and ``/metrics``.

Every loop runs under :func:`sapphire.agents.supervision.supervise`, which tells a
:class:`LoopHealth` when the loop fails and when it makes progress (the loop's own
``backoff.reset()``). From that:

* **ready** (``/readyz`` 200) once a loop has made progress and none is failing: the agent
  reached the API and the bus;
* **alive** (``/healthz`` 200) unless a loop has been failing without a break for longer
  than ``failing_seconds``. A dead agent says which loop died and why (503 with the reasons);
* the watchdog (:func:`watch`) ends the process when it is not alive, after writing the
  reason to the container's termination message, so the kubelet restarts it and the operator
  shows the TradingAgent ``Degraded`` with that reason. The liveness probe covers the case the
  watchdog cannot see: an event loop so stuck that it answers nothing at all.

The HTTP server runs on the agent's own event loop on purpose: a blocked loop cannot answer
the probe. ``/metrics`` serves the process's Prometheus registry (LLM calls, latency, executor
decisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import prometheus_client

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _Loop:
    progressed: bool = False
    failing_since: float | None = None
    failures: int = 0
    last_error: str = ""


class LoopHealth:
    """What each supervised loop last did, and the verdicts drawn from it."""

    def __init__(self, *, failing_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failing_seconds = failing_seconds
        self._clock = clock
        self._loops: dict[str, _Loop] = {}

    def register(self, name: str) -> None:
        self._loops.setdefault(name, _Loop())

    def progress(self, name: str) -> None:
        loop = self._loops.setdefault(name, _Loop())
        loop.progressed, loop.failing_since, loop.failures = True, None, 0

    def failed(self, name: str, error: BaseException) -> None:
        loop = self._loops.setdefault(name, _Loop())
        if loop.failing_since is None:
            loop.failing_since = self._clock()
        loop.failures += 1
        loop.last_error = f"{type(error).__name__}: {error}"[:300]

    def dead(self) -> list[str]:
        """Why the agent is not alive: each loop failing longer than ``failing_seconds``."""
        now = self._clock()
        reasons = []
        for name, loop in sorted(self._loops.items()):
            if loop.failing_since is not None and now - loop.failing_since > self.failing_seconds:
                reasons.append(
                    f"loop {name} failing for {now - loop.failing_since:.0f}s "
                    f"({loop.failures} attempts): {loop.last_error}"
                )
        return reasons

    def not_ready(self) -> list[str]:
        """Why the agent is not ready: loops that are failing, or none has made progress yet.

        Loops driven by work (assess, orders) progress only when there is some, so a quiet
        market must not hold readiness back: one loop's progress (the heartbeat reached the
        API) with none failing is enough."""
        failing = [
            f"loop {name} failing: {loop.last_error}"
            for name, loop in sorted(self._loops.items())
            if loop.failing_since is not None
        ]
        if failing:
            return failing
        if not any(loop.progressed for loop in self._loops.values()):
            return ["no loop has made progress yet"]
        return []

    def report(self) -> dict[str, object]:
        return {
            "alive": not self.dead(),
            "ready": not self.not_ready(),
            "loops": {
                name: {
                    "progressed": loop.progressed,
                    "failures": loop.failures,
                    "last_error": loop.last_error,
                }
                for name, loop in sorted(self._loops.items())
            },
        }


async def _answer(health: LoopHealth, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await asyncio.wait_for(reader.readline(), timeout=5)
        while (await asyncio.wait_for(reader.readline(), timeout=5)).strip():
            pass  # the headers: nothing in them matters here
        parts = request.decode("latin-1").split()
        path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
        content_type = "application/json"
        if path == "/metrics":
            status, body, content_type = (
                200,
                prometheus_client.generate_latest(),
                prometheus_client.CONTENT_TYPE_LATEST,
            )
        elif path in ("/healthz", "/readyz"):
            reasons = health.dead() if path == "/healthz" else health.not_ready()
            status = 503 if reasons else 200
            body = json.dumps({**health.report(), "reasons": reasons}).encode()
        else:
            status, body = 404, b'{"detail": "not found: try /healthz, /readyz or /metrics"}'
        phrase = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        writer.write(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        pass  # a probe that went away: nothing to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(health: LoopHealth, port: int, host: str = "0.0.0.0") -> asyncio.Server:
    """Start answering ``/healthz``, ``/readyz`` and ``/metrics`` on ``port``."""
    return await asyncio.start_server(lambda r, w: _answer(health, r, w), host, port)


def write_termination_message(path: Path | None, text: str) -> None:
    """Leave ``text`` where the kubelet reads a container's last words (best effort)."""
    if path is None:
        return
    try:
        path.write_text(text[:4096], encoding="utf-8")
    except OSError as error:
        logger.warning("cannot write the termination message", extra={"path": str(path), "error": str(error)})


async def watch(
    health: LoopHealth, *, stop: asyncio.Event, every_seconds: float, termination_log: Path | None
) -> list[str]:
    """Return the reasons once the agent is no longer alive (having written them to the
    termination log and set ``stop``), or an empty list once ``stop`` is set by someone else."""
    while not stop.is_set():
        reasons = health.dead()
        if reasons:
            message = "agent unhealthy: " + "; ".join(reasons)
            logger.error("agent unhealthy: exiting so it is restarted", extra={"reasons": reasons})
            write_termination_message(termination_log, message)
            stop.set()
            return reasons
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
    return []
