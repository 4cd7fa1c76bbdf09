"""Notifications through Apprise's real code (``json://``) to a local HTTP receiver, from the
events a real ``sapphire api`` publishes on Redis after commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest

import sapphire
from sapphire import bus
from sapphire.agents import client
from sapphire.notify import rules, service
from sapphire.notify.delivery import Delivery
from sapphire.notify.record import Record
from sapphire.notify.settings import Kind, NotifySettings
from sapphire.resources import common, migrationrun, tradingagent
from sapphire.trader_api.services import ccxt_venue
from tests.support import http_server, kube, processes, services, trader_api

PREFIX = "notify:"


class Receiver:
    """A webhook receiver: answers the statuses it is given in turn (then 200), keeps the bodies."""

    def __init__(self, server: http_server.LocalHttpServer) -> None:
        self.server = server
        self.statuses: list[int] = []
        server.routes["/hook"] = self._answer

    def _answer(self, _: http_server.Request) -> http_server.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        return http_server.Response(status, b"{}", {"Content-Type": "application/json"})

    @property
    def url(self) -> str:
        return f"json://{self.server.url.removeprefix('http://')}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.body) for request in self.server.received("/hook", "POST")]

    async def wait_for(self, count: int, *, within: float = 30) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            bodies = self.bodies()
            return bodies if len(bodies) >= count else None

        return await processes.observe(enough, within=within, what=f"{count} notification(s)")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_server.local_http_server() as server:
        yield Receiver(server)


@pytest.fixture
def events_redis(redis_server: services.RedisServer) -> str:
    """The Redis database the API publishes on and the notifier listens to."""
    return redis_server.fresh_database()


@pytest.fixture
def api(trader_database_url: str, events_redis: str) -> Iterator[trader_api.TraderApi]:
    with trader_api.running_trader_api(
        database_url=trader_database_url, redis_url=events_redis, redis_key_prefix=PREFIX
    ) as running:
        yield running


@pytest.fixture
def settings(
    api: trader_api.TraderApi, events_redis: str, receiver: Receiver, tmp_path: Path
) -> NotifySettings:
    return settings_for(api.url, events_redis, receiver, tmp_path / "notify.db")


def settings_for(
    api_url: str, redis_url: str, receiver: Receiver, record: Path, **fields: Any
) -> NotifySettings:
    return NotifySettings.model_validate(
        {
            "notify_urls": receiver.url,
            "notify_kinds": ["risk", "fill"],
            "notify_record_path": record,
            "notify_backoff_max_seconds": 0.2,
            "trader_api_url": api_url,
            "read_token": trader_api.READ_TOKEN,
            "redis_url": redis_url,
            "redis_key_prefix": PREFIX,
            **fields,
        }
    )


@contextlib.asynccontextmanager
async def running_notifier(
    settings: NotifySettings, *, kubernetes_api: Any = None
) -> AsyncIterator[service.Notifier]:
    """The notifier in this process until the block ends; it has subscribed to the events and
    recorded the risk state it starts from before the block begins."""
    record = Record(settings.notify_record_path)
    api = client.TraderApiClient(str(settings.trader_api_url), token=settings.read_token.get_secret_value())
    stop = asyncio.Event()
    notifier = service.Notifier(settings, record=record, api=api, stop=stop, kubernetes_api=kubernetes_api)
    task = asyncio.create_task(notifier.run())
    try:
        await processes.observe(
            lambda: record.fact(service.RISK_STATE) if notifier.subscribed.is_set() else None,
            within=30,
            what="the notifier's subscription and starting risk state",
        )
        yield notifier
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await api.aclose()
        record.close()


async def set_risk_state(api: trader_api.TraderApi, state: str, reason: str) -> None:
    admin_token = {"Authorization": f"Bearer {trader_api.ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=api.url, headers=admin_token, timeout=10) as admin:
        response = await admin.put("/v1/risk/state", json={"state": state, "reason": reason})
        assert response.status_code == 200, response.text


async def test_a_halt_is_notified_once_even_across_restarts_and_one_missed_while_down_is_caught_up(
    api: trader_api.TraderApi, settings: NotifySettings, receiver: Receiver
) -> None:
    async with running_notifier(settings) as notifier:
        assert receiver.bodies() == []  # ACTIVE at start is no news
        await set_risk_state(api, "HALTED", "desk kill switch")
        (halt,) = await receiver.wait_for(1)
        print(f"received by the local receiver: {json.dumps(halt)}")
        assert (halt["title"], halt["message"], halt["type"]) == (
            "Sapphire: trading HALTED",
            "Risk state ACTIVE -> HALTED: desk kill switch",
            "failure",
        )
        # The receiver answers before the record is updated: wait on the record, not the receipt.
        await processes.observe(
            lambda: (
                [state for event, state in notifier.record.states().items() if event.startswith("risk:")]
                == [("sent", 1)]
                or None
            ),
            within=10,
            what="the halt recorded as sent after one attempt",
        )

    await set_risk_state(api, "ACTIVE", "resumed by the desk")  # while no notifier listens
    async with running_notifier(settings):
        resumed = (await receiver.wait_for(2))[1]
        assert resumed["title"] == "Sapphire: trading ACTIVE"
        assert resumed["message"] == "Risk state HALTED -> ACTIVE: resumed by the desk"

    async with running_notifier(settings):  # a restart with nothing new says nothing...
        await set_risk_state(api, "HALTED", "again")
        bodies = await receiver.wait_for(3)
    # ...so the third notification is the new halt, and nothing was told twice.
    assert [body["title"] for body in bodies] == [
        "Sapphire: trading HALTED",
        "Sapphire: trading ACTIVE",
        "Sapphire: trading HALTED",
    ]


async def test_a_failing_receiver_is_retried_with_backoff_and_the_record_says_how_it_ended(
    api: trader_api.TraderApi, settings: NotifySettings, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    async with running_notifier(settings) as notifier:
        await set_risk_state(api, "HALTED", "retry me")
        await receiver.wait_for(3)
        await processes.observe(
            lambda: ("sent", 3) in notifier.record.states().values() or None,
            within=10,
            what="the record of the third, successful attempt",
        )
    short = settings.model_copy(update={"notify_max_attempts": 2})
    receiver.statuses = [500] * 10
    async with running_notifier(short) as notifier:
        await set_risk_state(api, "ACTIVE", "give up")
        await processes.observe(
            lambda: ("failed", 2) in notifier.record.states().values() or None,
            within=10,
            what="a notification given up after two attempts",
        )
    assert len(receiver.bodies()) == 5


async def test_only_fills_at_or_above_the_notional_are_notified(
    api: trader_api.TraderApi, settings: NotifySettings, receiver: Receiver
) -> None:
    big = settings.model_copy(update={"notify_fill_notional": Decimal("1000")})
    agent = {"Authorization": f"Bearer {trader_api.AGENT_TOKEN}"}
    async with running_notifier(big), httpx.AsyncClient(base_url=api.url, headers=agent, timeout=10) as http:
        tick = {"symbol": "ETH-USD", "bid": "3000.00", "ask": "3000.50", "last": "3000.00", "size": "10"}
        response = await http.post(
            "/v1/ticks", json={"ticks": [{**tick, "ts": datetime.now(UTC).isoformat()}]}
        )
        assert response.status_code == 200, response.text
        for client_order_id, quantity in (("small-1", "0.1"), ("big-1", "0.5")):
            order = {
                "client_order_id": client_order_id,
                "symbol": "ETH-USD",
                "side": "buy",
                "type": "market",
                "quantity": quantity,
                "time_in_force": "gtc",
            }
            placed = await http.post("/v1/orders", json=order)
            assert placed.json()["status"] == "filled", placed.text
        (fill,) = await receiver.wait_for(1)
    # Delivery is in event order: had the small fill notified, it would have come first.
    assert fill["title"] == "Sapphire: BUY 0.5 ETH-USD filled"
    assert "at 3001.11 (notional 1500.555)" in fill["message"]  # the ask plus 2 bps of slippage


async def test_the_daily_pnl_summary_is_sent_once_the_time_has_passed(
    api: trader_api.TraderApi, settings: NotifySettings, receiver: Receiver
) -> None:
    daily = settings.model_copy(
        update={"notify_kinds": [Kind.DAILY_PNL], "notify_daily_summary_time": time(0, 0)}
    )
    async with running_notifier(daily) as notifier:
        (summary,) = await receiver.wait_for(1)
        today = datetime.now(UTC).date().isoformat()
        assert summary["title"] == f"Sapphire: PnL {today} +0"
        assert summary["message"].startswith(f"PnL +0 (+0.00%) on {today}: equity 1000000")
        assert notifier.record.known(f"daily-pnl:{today}")


async def test_reconciliation_differences_on_the_venue_channel_are_notified_once_per_set(
    api: trader_api.TraderApi, settings: NotifySettings, receiver: Receiver, events_redis: str
) -> None:
    watching = settings.model_copy(update={"notify_kinds": [Kind.RECONCILIATION]})
    missed = ccxt_venue.Difference("missed_fill", "order 1a2b: trade 77 of 0.003 BTC-USD", Decimal("180.12"))
    balance = ccxt_venue.Difference(
        "balance", "BTC: the exchange holds 0.5, the engine's BTC-USD position is 0.4", Decimal("6000.00")
    )
    foreign = ccxt_venue.Difference(
        "foreign_order", "open order 99 not sent by Sapphire", Decimal(0), halt=True
    )
    venue_bus = bus.open_bus(events_redis)
    channel = bus.Names(PREFIX).venue
    try:
        async with running_notifier(watching):
            await venue_bus.publish(channel, ccxt_venue.reconciliation_report([missed, balance]))
            (first,) = await receiver.wait_for(1)
            # The next reconciliation finds the balance again (nothing to correct): no news.
            await venue_bus.publish(channel, ccxt_venue.reconciliation_report([balance, missed]))
            await venue_bus.publish(channel, ccxt_venue.reconciliation_report([foreign]))
            bodies = await receiver.wait_for(2)
    finally:
        await venue_bus.close()
    print(f"received by the local receiver: {json.dumps(bodies)}")
    assert (first["title"], first["type"]) == (
        "Sapphire: venue reconciliation found 2 difference(s) worth 6180.12",
        "warning",
    )
    assert "missed_fill: order 1a2b: trade 77 of 0.003 BTC-USD (worth 180.12)" in first["message"]
    assert "balance: BTC: the exchange holds 0.5" in first["message"]
    # Delivery is in order: had the repeated set notified, it would be second.
    assert (bodies[1]["title"], bodies[1]["type"]) == (
        "Sapphire: venue reconciliation found 1 difference(s) worth 0",
        "failure",
    )
    assert len(receiver.bodies()) == 2


@pytest.mark.k8s
# The test control plane's kubeconfig skips TLS verification (a throwaway CA); urllib3 says so.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_a_degraded_agent_and_a_failed_migration_are_notified_once_each(
    api: trader_api.TraderApi,
    settings: NotifySettings,
    receiver: Receiver,
    control_plane: kube.ControlPlane,
    installed_crds: list[str],
    namespace: str,
) -> None:
    kube.apply(control_plane, {**tradingagent_manifest("momentum"), "spec": {"role": "momentum"}}, namespace)
    kube.apply(
        control_plane,
        {
            "apiVersion": migrationrun.API_VERSION,
            "kind": migrationrun.KIND,
            "metadata": {"name": "to-head"},
            "spec": {
                "revision": "head",
                "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
            },
        },
        namespace,
    )
    watching = settings.model_copy(
        update={
            "notify_kinds": [Kind.AGENT_DEGRADED, Kind.MIGRATION_FAILED],
            "notify_namespaces": [namespace],
            "notify_kube_poll_seconds": 0.2,
        }
    )
    objects = kubernetes.client.CustomObjectsApi(
        kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(control_plane.kubeconfig)
        )
    )
    async with running_notifier(watching, kubernetes_api=objects) as notifier:
        # Listed with no status yet: nothing to tell. Then the operator's verdicts arrive.
        await processes.observe(lambda: notifier.kubernetes_polls >= 2 or None, within=10, what="two polls")
        assert receiver.bodies() == []
        degraded = {
            "phase": "Degraded",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CrashLoopBackOff",
                    "message": "container agent restarted 5 times",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                }
            ],
        }
        patch_status(control_plane, namespace, tradingagent.PLURAL, "momentum", degraded)
        patch_status(
            control_plane,
            namespace,
            migrationrun.PLURAL,
            "to-head",
            {"phase": "Failed", "attempts": 3, "message": "relation accounts already exists"},
        )
        bodies = await receiver.wait_for(2)
        polls = notifier.kubernetes_polls
        await processes.observe(
            lambda: notifier.kubernetes_polls >= polls + 3 or None,
            within=10,
            what="re-polls",
        )
    assert sorted((body["title"], body["message"], body["type"]) for body in receiver.bodies()) == sorted(
        [
            (
                f"Sapphire: agent {namespace}/momentum is Degraded",
                f"TradingAgent {namespace}/momentum is Degraded: container agent restarted 5 times",
                "warning",
            ),
            (
                f"Sapphire: migration {namespace}/to-head failed",
                f"MigrationRun {namespace}/to-head failed after 3 attempt(s): "
                "relation accounts already exists",
                "failure",
            ),
        ]
    )
    assert len(bodies) == 2


def tradingagent_manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": tradingagent.API_VERSION, "kind": tradingagent.KIND, "metadata": {"name": name}}


def patch_status(
    control_plane: kube.ControlPlane, namespace: str, plural: str, name: str, status: dict[str, Any]
) -> None:
    """Write status as the operator does, through the status subresource."""
    path = f"/apis/{sapphire.GROUP}/{common.VERSION}/namespaces/{namespace}/{plural}/{name}/status"
    with control_plane.client() as http:
        response = http.patch(
            path, json={"status": status}, headers={"Content-Type": "application/merge-patch+json"}
        )
    assert response.status_code == 200, response.text


def test_the_record_claims_each_event_once_and_never_resends_an_attempted_one(tmp_path: Path) -> None:
    path = tmp_path / "notify.db"
    record = Record(path)
    halt = rules.Notification("risk:7", Kind.RISK, "Sapphire: trading HALTED", "Risk state ...", "failure")
    fill = rules.Notification("fill:abc", Kind.FILL, "Sapphire: BUY 1 BTC-USD filled", "...", "info")
    assert record.claim(halt, fact=(service.RISK_STATE, "HALTED"))
    assert not record.claim(halt, fact=(service.RISK_STATE, "ACTIVE"))  # seen: nothing changes
    assert record.fact(service.RISK_STATE) == "HALTED"
    assert record.claim(fill)
    record.attempt("risk:7")  # then the process dies, before it knows whether it went out
    record.close()

    restarted = Record(path)
    assert restarted.recover() == [fill]  # never attempted: safe to send now
    assert restarted.states() == {"risk:7": ("abandoned", 1), "fill:abc": ("pending", 0)}
    restarted.close()


def test_an_apprise_url_it_cannot_load_is_named_by_position_never_shown(tmp_path: Path) -> None:
    record = Record(tmp_path / "notify.db")
    try:
        with pytest.raises(
            ValueError, match=r"notify_urls: URL 2 of 2 \(nosuch://\.\.\.\) is not one Apprise knows"
        ):
            Delivery(
                ["json://127.0.0.1:9/hook", "nosuch://secret-token@host"],
                record,
                max_attempts=1,
                backoff_max_seconds=1,
                stop=asyncio.Event(),
            )
    finally:
        record.close()
