"""Periodic resync: every object is reconciled again on a fixed period, level-triggered.

Events (the objects' own, their Deployments' and pods') make the operator react at once;
the resync is what repairs drift nobody announced, releases agents waiting for a schema,
retries a failed migration after its backoff, enforces deadlines and TTLs, and refreshes
trading figures. It is one loop per concern for the whole operator, not a kopf timer per
object: kopf timers put a finalizer on every object, which would block ``kubectl delete``
whenever the operator is down, for no work of ours (children go by garbage collection).

Peering: kopf pauses its own handlers while a peer with a higher or equal priority is alive
(tests/operator/test_peering.py shows it does so when a leader appears and when an operator
joins below one), but it knows nothing of these loops, which are ours. So the loops, and every
reconcile they trigger, act only while kopf's own rule (:func:`peering_allows`), read from the
same KopfPeering object, lets this operator act. With that check removed, the test's paused
operator reconciled again through its resync; kopf's handlers no longer ask.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from sapphire.operator import kubeapi, metrics, payloads
from sapphire.operator.settings import OperatorSettings

Body = TypeVar("Body", payloads.TradingAgent, payloads.MigrationRun, payloads.BacktestRun)
LOGGER = logging.getLogger(__name__)
TRIGGER = "resync"
"""The trigger label of reconciles the loops start (metrics) and the mark of those that ask peering."""
PEERING_CACHE_SECONDS = 1.0
"""Far below kopf's peering lifetime (60 s), so a takeover is honoured within a second."""


def peering_allows(
    peers: Mapping[str, payloads.Peer], *, identity: str, priority: int, now: datetime.datetime
) -> bool:
    """kopf's rule: pause while another live peer has a higher or the same priority. Pure."""
    for peer_id, info in peers.items():
        if peer_id == identity:
            continue
        lastseen = datetime.datetime.fromisoformat(str(info.get("lastseen", "1970-01-01T00:00:00+00:00")))
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=datetime.UTC)
        alive = lastseen + datetime.timedelta(seconds=int(info.get("lifetime", 60))) > now
        if alive and int(info.get("priority", 0)) >= priority:
            return False
    return True


class Resync:
    """The operator's periodic loops; started on kopf startup, cancelled on cleanup."""

    def __init__(
        self,
        *,
        api: Callable[[], kubeapi.KubeApi],
        settings: OperatorSettings,
        identity: str,
    ) -> None:
        self._api = api
        self.settings = settings
        self.identity = identity
        self._tasks: list[asyncio.Task[None]] = []
        self._verdict: tuple[float, bool] | None = None

    async def may_act(self) -> bool:
        """Whether this operator may act now. Every reconcile asks, so the peering object is
        read at most once per PEERING_CACHE_SECONDS rather than once per reconcile."""
        if self.settings.standalone:
            return True
        if self._verdict is not None and time.monotonic() - self._verdict[0] < PEERING_CACHE_SECONDS:
            return self._verdict[1]
        verdict = await self._read_peering()
        self._verdict = (time.monotonic(), verdict)
        return verdict

    async def _read_peering(self) -> bool:
        if self.settings.cluster_wide:
            paths = [f"/apis/kopf.dev/v1/clusterkopfpeerings/{self.settings.peering_name}"]
        else:
            paths = [
                kubeapi.namespaced("kopf.dev/v1", ns, "kopfpeerings", self.settings.peering_name)
                for ns in self.settings.namespaces or ["default"]
            ]
        now = datetime.datetime.now(datetime.UTC)
        for path in paths:
            peering = await self._api().get(path, payloads.KopfPeering)
            peers = (peering.get("status") if peering is not None else None) or {}
            if not peering_allows(
                peers, identity=self.identity, priority=self.settings.peering_priority, now=now
            ):
                return False
        return True

    def start(
        self,
        loops: Sequence[tuple[str, float, Callable[[], Awaitable[None]]]],
    ) -> None:
        for name, interval, body in loops:
            self._tasks.append(
                asyncio.create_task(self._forever(name, interval, body), name=f"resync-{name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _forever(self, name: str, interval: float, body: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.may_act():
                    await body()
                    metrics.RESYNC_PASSES.labels(name, "acted").inc()
                else:
                    metrics.RESYNC_PASSES.labels(name, "paused").inc()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad pass must not end the loop; the next pass retries everything.
                LOGGER.exception("resync pass failed", extra={"loop": name})

    @staticmethod
    async def each(bodies: Iterable[Body], action: Callable[[Body], Awaitable[None]]) -> None:
        """Run ``action`` on every object (kopf's index holds them: no LIST), one failure not
        stopping the rest; objects being deleted are skipped."""
        for body in list(bodies):
            if body["metadata"].get("deletionTimestamp"):
                continue
            try:
                await action(body)
            except Exception:
                LOGGER.exception(
                    "resync of one object failed",
                    extra={"object": f"{body['metadata'].get('namespace')}/{body['metadata']['name']}"},
                )
