"""The notifier's I/O shell: three sources feed one delivery queue.

* **Trader API events** (Redis ``{prefix}events``, published only after commit): risk
  changes and fills. On every (re)subscription, and whenever the sequence numbers show a
  gap, the risk state is read again from ``GET /v1/risk``, so a halt published while the
  notifier was away is still told.
* **The live venue's reports** (Redis ``{prefix}venue``): reconciliation differences with the
  exchange (a reconciliation large enough to move the risk state is told by that too).
* **Kubernetes** (``notify_namespaces``): TradingAgents and MigrationRuns as the operator
  reports them in status, listed every ``notify_kube_poll_seconds``.
* **The clock**: the daily PnL summary once ``notify_daily_summary_time`` (UTC) has passed.

Every loop runs under :func:`~sapphire.agents.supervision.supervise`: an outage of Redis, the
API or the Kubernetes API is retried with backoff and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import signal
from collections.abc import Callable
from typing import Any

import sapphire
from sapphire import bus
from sapphire.agents import client, supervision
from sapphire.notify import rules
from sapphire.notify.delivery import Delivery
from sapphire.notify.record import Record
from sapphire.notify.settings import Kind, NotifySettings
from sapphire.resources import common, migrationrun, tradingagent

log = logging.getLogger(__name__)

RISK_STATE = "risk_state"
"""The fact holding the last risk state the notifier acted on."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        *,
        record: Record,
        api: client.TraderApiClient,
        stop: asyncio.Event,
        clock: Callable[[], datetime.datetime] = utcnow,
        kubernetes_api: Any = None,
    ) -> None:
        self.settings, self.record, self.api, self.stop, self.clock = settings, record, api, stop, clock
        self.kinds = set(settings.notify_kinds)
        self.delivery = Delivery(
            settings.urls(),
            record,
            max_attempts=settings.notify_max_attempts,
            backoff_max_seconds=settings.notify_backoff_max_seconds,
            stop=stop,
        )
        self.names = bus.Names(settings.redis_key_prefix)
        self.kubernetes_api = kubernetes_api
        self.kubernetes_polls = 0
        """Rounds of listing TradingAgents and MigrationRuns done (tests wait on it)."""
        self.subscribed = asyncio.Event()
        """Set while the events channel is subscribed (tests wait on it)."""

    async def notify(self, notification: rules.Notification, *, fact: tuple[str, str] | None = None) -> bool:
        """Claim and queue ``notification`` unless its kind is off or its event was seen."""
        if notification.kind not in self.kinds:
            if fact is not None:
                await asyncio.to_thread(self.record.set_fact, *fact)
            return False
        if not await asyncio.to_thread(self.record.claim, notification, fact=fact):
            return False
        self.delivery.submit(notification)
        return True

    async def on_risk(self, risk: dict[str, Any], *, event_id: str) -> None:
        previous = await asyncio.to_thread(self.record.fact, RISK_STATE)
        state = str(risk["state"])
        notification = rules.risk_change(previous, risk, event_id=event_id)
        if notification is not None:
            await self.notify(notification, fact=(RISK_STATE, state))
        elif previous != state:
            await asyncio.to_thread(self.record.set_fact, RISK_STATE, state)

    async def resync_risk(self) -> None:
        await self.on_risk(await self.api.risk(), event_id=f"risk:resync:{self.clock().isoformat()}")

    async def on_event(self, message: dict[str, Any]) -> None:
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "risk":
            await self.on_risk(data, event_id=f"risk:{message['seq']}")
        elif kind == "fill":
            notification = rules.large_fill(data, threshold=self.settings.notify_fill_notional)
            if notification is not None:
                await self.notify(notification)

    async def events_loop(self, backoff: supervision.Backoff) -> None:
        message_bus = bus.open_bus(str(self.settings.redis_url), timeout=5.0)
        try:
            async with message_bus.subscribe([self.names.events, self.names.venue]) as subscription:
                self.subscribed.set()
                await self.resync_risk()  # what happened while we were not listening
                backoff.reset()
                last_seq: int | None = None
                while not self.stop.is_set():
                    received = await subscription.get(wait_seconds=1.0)
                    if received is None:
                        continue
                    message = json.loads(received.data)
                    if received.channel == self.names.venue:
                        if (found := rules.reconciliation(message)) is not None:
                            await self.notify(found)
                        continue
                    seq = int(message.get("seq", 0))
                    if last_seq is not None and seq <= last_seq:
                        continue  # a publication retried after a lost answer
                    if last_seq is not None and seq > last_seq + 1:
                        log.warning(
                            "event gap; re-reading the risk state", extra={"after": last_seq, "seq": seq}
                        )
                        await self.resync_risk()
                    last_seq = seq
                    await self.on_event(message)
        finally:
            self.subscribed.clear()
            await message_bus.close()

    async def daily_loop(self, backoff: supervision.Backoff) -> None:
        while not self.stop.is_set():
            day = rules.summary_due(self.clock(), self.settings.notify_daily_summary_time)
            if day is not None and not await asyncio.to_thread(
                self.record.known, f"daily-pnl:{day.isoformat()}"
            ):
                await self.notify(rules.daily_pnl(await self.api.risk(), day=day))
            backoff.reset()
            if await supervision.sleep_or_stop(self.stop, 30.0):
                return

    def _list(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        listed = self.kubernetes_api.list_namespaced_custom_object(
            group=sapphire.GROUP, version=common.VERSION, namespace=namespace, plural=plural
        )
        items: list[dict[str, Any]] = listed.get("items", [])
        return items

    async def kubernetes_loop(self, backoff: supervision.Backoff) -> None:
        while not self.stop.is_set():
            for namespace in self.settings.notify_namespaces:
                for agent in await asyncio.to_thread(self._list, namespace, tradingagent.PLURAL):
                    if (found := rules.agent_status(agent)) is not None:
                        await self.notify(found)
                for run in await asyncio.to_thread(self._list, namespace, migrationrun.PLURAL):
                    if (found := rules.migration_status(run)) is not None:
                        await self.notify(found)
            self.kubernetes_polls += 1
            backoff.reset()
            if await supervision.sleep_or_stop(self.stop, self.settings.notify_kube_poll_seconds):
                return

    async def run(self) -> None:
        """Deliver what a previous run claimed but never tried, then run every source until stop."""
        for notification in await asyncio.to_thread(self.record.recover):
            self.delivery.submit(notification)
        loops = [self.events_loop]
        if Kind.DAILY_PNL in self.kinds:
            loops.append(self.daily_loop)
        if self.settings.notify_namespaces and self.kubernetes_api is not None:
            loops.append(self.kubernetes_loop)
        maximum = self.settings.notify_backoff_max_seconds
        delivery = asyncio.create_task(self.delivery.run(), name="notify-delivery")
        try:
            await asyncio.gather(
                *(
                    supervision.supervise(loop.__name__, loop, stop=self.stop, backoff_max_seconds=maximum)
                    for loop in loops
                )
            )
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery


def kubernetes_custom_objects() -> Any:
    """The Kubernetes API client, in cluster or from the kubeconfig."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.CustomObjectsApi()


async def run_notifier(settings: NotifySettings) -> None:
    """``sapphire notify``: until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    record = Record(settings.notify_record_path)
    api = client.TraderApiClient(str(settings.trader_api_url), token=settings.read_token.get_secret_value())
    kubernetes_api = kubernetes_custom_objects() if settings.notify_namespaces else None
    try:
        await Notifier(settings, record=record, api=api, stop=stop, kubernetes_api=kubernetes_api).run()
    finally:
        await api.aclose()
        record.close()
