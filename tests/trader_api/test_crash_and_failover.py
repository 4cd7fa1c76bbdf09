"""The order engine's writer against real ``sapphire api`` processes on real Postgres and Redis:
a SIGKILL in the middle of an order storm, the failover from a killed writer to a follower,
and the fencing of a writer whose lock was taken away.

What every scenario must show: an order acknowledged (201/200) is durable; resending every
request afterwards creates each missing order exactly once and answers the others with the
order already stored; and the books (cash, fees, realized PnL, positions, each order's
filled quantity) are exactly what the fills table says, to the last decimal.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import decimal
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from sapphire.trader_api.storage import journal
from tests.support import processes
from tests.support.trader_api import AGENT_TOKEN, READ_TOKEN, TraderApiProcess

AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}

INITIAL_CASH = Decimal("1000000")
SETTINGS = {
    # No risk rule may refuse an order of the storm: a refusal stores nothing, so the resend
    # could not answer 200 for it.
    "risk": json.dumps({"stale_quote_seconds": "3600", "max_drawdown": "1", "max_daily_loss": "100000000"}),
    "initial_cash": format(INITIAL_CASH, "f"),
    "fee_bps": "2.5",  # fees with 8 decimals: the books must still balance exactly
    "slippage_bps": "0",
}

DISTINCT_IDS = 300
CLIENTS = 8
KILL_AFTER = 400
"""Accepted answers (201/200) the storm gets before the process is killed."""
FAILOVER_SECONDS = 5.0
SURVIVOR_ANSWERS = 40
"""Accepted answers the new writer gives the storm before it stops."""
RETRIES, RETRY_SECONDS = 200, 0.05
"""A client retries a 503 this often, this far apart, before it goes on to its next order."""

QUOTES = {"AAPL": ("100.00", "100.05"), "ETH-USD": ("3000.00", "3000.50")}
"""(bid, ask); every quote the tests post is this one, so every fill's price is known."""
MARKETABLE = {"AAPL": {"buy": "100.50", "sell": "99.50"}, "ETH-USD": {"buy": "3015.00", "sell": "2985.00"}}
"""IOC limits that cross the quote: they fill in full at the touch on arrival."""
RESTING = {"AAPL": {"buy": "99.00", "sell": "101.00"}, "ETH-USD": {"buy": "2970.00", "sell": "3030.00"}}
"""GTC limits inside the collar that the quote never reaches: they stay open."""

WRITER_LOCK = journal.WRITER_LOCK_KEY
DEPOSED_ADDRESS = "http://127.0.0.1:9"

Body = dict[str, str]


# The order storm ------------------------------------------------------------------------


def order_bodies(prefix: str, count: int = DISTINCT_IDS) -> list[Body]:
    """``count`` orders, each client_order_id always with the same body: four marketable IOC
    limits (buy, sell, buy, sell) then one resting GTC limit, alternating AAPL and ETH-USD."""
    bodies = []
    for index in range(count):
        symbol = "AAPL" if index // 5 % 2 == 0 else "ETH-USD"
        quantity = str(1 + index % 3) if symbol == "AAPL" else format(Decimal("0.001") * (1 + index % 7), "f")
        if index % 5 == 4:
            side = "buy" if index // 10 % 2 == 0 else "sell"
            price, time_in_force = RESTING[symbol][side], "gtc"
        else:
            side = "buy" if index % 2 == 0 else "sell"
            price, time_in_force = MARKETABLE[symbol][side], "ioc"
        bodies.append(
            {
                "client_order_id": f"{prefix}-{index:04d}",
                "symbol": symbol,
                "side": side,
                "type": "limit",
                "quantity": quantity,
                "limit_price": price,
                "time_in_force": time_in_force,
            }
        )
    return bodies


def expected_status(body: Body) -> str:
    return "filled" if body["time_in_force"] == "ioc" else "new"


def client_plans(bodies: Sequence[Body]) -> list[list[Body]]:
    """Every client sends every order, in its own order: roughly in sequence with a random
    jitter (so all clients send the same ids at about the same time and they collide, even
    inside one batch), half of them from the first id forwards, half from the last backwards."""
    plans = []
    for client in range(CLIENTS):
        rng = random.Random(client)
        indexes = sorted(range(len(bodies)), key=lambda i: i + rng.uniform(0, 24))
        if client // 2 % 2:
            indexes.reverse()
        plans.append([bodies[i] for i in indexes])
    return plans


@dataclasses.dataclass
class Tally:
    """The answers one phase of the storm got."""

    kill_after: int | None = None
    orders: dict[str, str] = dataclasses.field(default_factory=dict)
    """client_order_id -> order id, from every 201/200 answer."""
    created: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """201 answers per client_order_id."""
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    accepted_by_url: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    disagreements: list[str] = dataclasses.field(default_factory=list)
    """client_order_ids answered with two different order ids."""
    transport_errors: int = 0
    threshold: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set at ``kill_after`` accepted answers."""
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set by the test: the clients send nothing more."""
    at_kill: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """``accepted_by_url`` when the process was killed."""

    @property
    def accepted(self) -> int:
        return self.statuses[200] + self.statuses[201]

    def record(self, url: str, body: Body, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code not in (200, 201):
            return
        client_order_id, order_id = body["client_order_id"], str(response.json()["id"])
        if self.orders.setdefault(client_order_id, order_id) != order_id:
            self.disagreements.append(client_order_id)
        if response.status_code == 201:
            self.created[client_order_id] += 1
        self.accepted_by_url[url] += 1
        if self.kill_after is not None and self.accepted >= self.kill_after:
            self.threshold.set()


async def send_orders(url: str, bodies: Sequence[Body], tally: Tally) -> None:
    """One client: its orders one after the other, each retried on 503 as ``Retry-After``
    asks (a little faster), until ``tally.stop``. It stops at the first transport error: its
    replica is gone."""
    async with httpx.AsyncClient(base_url=url, headers=AGENT, timeout=10) as client:
        for body in bodies:
            for _ in range(RETRIES):
                if tally.stop.is_set():
                    return
                try:
                    response = await client.post("/v1/orders", json=body)
                except httpx.TransportError:
                    tally.transport_errors += 1
                    return
                tally.record(url, body, response)
                if response.status_code != 503:
                    break
                await asyncio.sleep(RETRY_SECONDS)


async def storm(urls: Sequence[str], plans: Sequence[Sequence[Body]], tally: Tally) -> None:
    """All clients at once; client k sends to ``urls[k % len(urls)]``."""
    await asyncio.gather(*(send_orders(urls[k % len(urls)], plan, tally) for k, plan in enumerate(plans)))


async def kill_mid_storm(api: TraderApiProcess, running: asyncio.Task[None], tally: Tally) -> float:
    """SIGKILL ``api`` as soon as the storm has ``tally.kill_after`` accepted answers; the
    monotonic time of the kill. Fails if the storm ended first (nothing would be tested)."""
    reached = asyncio.create_task(tally.threshold.wait())
    await asyncio.wait({reached, running}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    reached.cancel()
    assert tally.threshold.is_set(), f"the storm never reached {tally.kill_after} answers: {tally.statuses}"
    assert not running.done(), "the storm was over before the kill"
    killed_at = time.monotonic()
    api.kill()
    tally.at_kill = collections.Counter(tally.accepted_by_url)
    return killed_at


async def until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    async def probe() -> bool | None:
        return True if condition() else None

    await processes.observe(probe, within=within, what=what, interval=0.01)


# HTTP helpers -----------------------------------------------------------------------------


async def post_quotes(url: str) -> None:
    """A fresh quote for every symbol (size 0: it fills no resting order)."""
    now = datetime.now(UTC).isoformat()
    ticks = [
        {"symbol": symbol, "bid": bid, "ask": ask, "last": bid, "size": "0", "ts": now}
        for symbol, (bid, ask) in QUOTES.items()
    ]
    async with httpx.AsyncClient(base_url=url, headers=AGENT, timeout=10) as client:
        response = await client.post("/v1/ticks", json={"ticks": ticks})
    assert response.status_code == 200, response.text


async def get_json(url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=url, headers=READ, timeout=10) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def engine_of(client: httpx.AsyncClient, url: str) -> Any:
    """The ``engine`` of the replica's ``/readyz`` (or why there is none, as a string)."""
    try:
        return (await client.get(f"{url}/readyz")).json()["engine"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return repr(error)


async def wait_for_engine(
    url: str, *, role: str, writer: str | None = None, within: float = 20
) -> dict[str, Any]:
    """Poll ``/readyz`` until the replica's engine has ``role`` (and ``writer``); its ``engine``."""
    async with httpx.AsyncClient(timeout=2) as client:

        async def probe() -> dict[str, Any] | None:
            engine = await engine_of(client, url)
            if (
                isinstance(engine, dict)
                and engine.get("role") == role
                and (writer is None or engine.get("writer") == writer)
            ):
                return engine
            return None

        return await processes.observe(probe, within=within, what=f"{url} to be {role}")


async def wait_for_election(
    replicas: Sequence[TraderApiProcess], *, within: float = 20
) -> tuple[TraderApiProcess, TraderApiProcess, dict[str, Any]]:
    """Wait until one of two replicas is the writer and the other a follower that names it;
    (writer, follower, the writer's engine)."""
    async with httpx.AsyncClient(timeout=2) as client:

        async def probe() -> tuple[TraderApiProcess, TraderApiProcess, dict[str, Any]] | None:
            engines = [await engine_of(client, replica.url) for replica in replicas]
            roles = [engine.get("role") if isinstance(engine, dict) else None for engine in engines]
            if sorted(map(str, roles)) != ["follower", "writer"]:
                return None
            writer = roles.index("writer")
            follower = 1 - writer
            if engines[writer]["writer"] == replicas[writer].url == engines[follower]["writer"]:
                return replicas[writer], replicas[follower], engines[writer]
            return None

        return await processes.observe(probe, within=within, what="one writer and one follower naming it")


# The tables -------------------------------------------------------------------------------


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True, row_factory=dict_row)


def committed_orders(connection: psycopg.Connection[dict[str, Any]]) -> dict[str, str]:
    """client_order_id -> order id, as the orders table holds them."""
    rows = connection.execute("SELECT client_order_id, id FROM orders").fetchall()
    return {row["client_order_id"]: str(row["id"]) for row in rows}


def table_snapshot(connection: psycopg.Connection[dict[str, Any]]) -> dict[str, Any]:
    """Everything an order can change: the row counts, the account row, the positions."""
    counts = connection.execute(
        "SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM fills) AS fills"
    ).fetchone()
    return {
        "counts": counts,
        "account": connection.execute("SELECT * FROM accounts").fetchall(),
        "positions": connection.execute("SELECT * FROM positions ORDER BY symbol").fetchall(),
    }


def lock_holders(connection: psycopg.Connection[dict[str, Any]]) -> list[int]:
    """Backends holding the writer lock. pg_locks shows a bigint advisory key as classid (its
    high 32 bits), objid (its low 32 bits) and objsubid 1 (checked against a lock the test
    takes itself, below)."""
    rows = connection.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s"
        " AND objid::bigint = %s AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFFFFFF),
    ).fetchall()
    return [int(row["pid"]) for row in rows]


# Shared assertions ------------------------------------------------------------------------


def assert_nothing_lost_or_doubled(
    bodies: Sequence[Body],
    before: Tally,
    committed: dict[str, str],
    after: Tally,
    connection: psycopg.Connection[dict[str, Any]],
) -> None:
    """``before``: the answers up to the crash; ``committed``: the orders table right after it;
    ``after``: the answers to resending every request of every client."""
    ids = {body["client_order_id"] for body in bodies}
    assert not before.disagreements, f"one id, two order ids before the crash: {before.disagreements[:5]}"
    assert not after.disagreements, f"one id, two order ids after the crash: {after.disagreements[:5]}"
    assert all(n == 1 for n in before.created.values()), "an id was created twice before the crash"
    # Acknowledged means durable: every answer before the crash is in the table, as answered.
    lost = {cid: oid for cid, oid in before.orders.items() if committed.get(cid) != oid}
    assert not lost, f"{len(lost)} acknowledged orders are not in the table as answered: {list(lost)[:5]}"
    # After the crash every request is answered, with 201 or 200 only.
    assert set(after.statuses) <= {200, 201}, f"answers after the crash: {dict(after.statuses)}"
    assert after.transport_errors == 0
    assert set(after.orders) == ids
    # What was answered before is answered with the same order, and as a repeat (200).
    changed = {cid for cid, oid in before.orders.items() if after.orders[cid] != oid}
    assert not changed, f"answered with another order after the crash: {sorted(changed)[:5]}"
    assert not set(after.created) & set(committed), "an order stored before the crash was created again"
    # What was not stored is created now, exactly once.
    assert set(after.created) == ids - set(committed)
    assert all(n == 1 for n in after.created.values()), "an id was created twice after the crash"
    # One order per id in the table, the one the answers name, in the state its body implies.
    counts = connection.execute(
        "SELECT count(*) AS n, count(DISTINCT client_order_id) AS d FROM orders"
    ).fetchone()
    assert counts == {"n": len(ids), "d": len(ids)}
    assert committed_orders(connection) == after.orders
    statuses = {
        row["client_order_id"]: row["status"]
        for row in connection.execute("SELECT client_order_id, status FROM orders").fetchall()
    }
    wrong = {b["client_order_id"] for b in bodies if statuses[b["client_order_id"]] != expected_status(b)}
    assert not wrong, f"orders in an unexpected state: {sorted(wrong)[:5]}"


def assert_books_balance(connection: psycopg.Connection[dict[str, Any]], portfolio: Any) -> dict[str, int]:
    """The account, the positions and every order agree exactly with the fills table, and
    ``GET /v1/portfolio`` (``portfolio``) agrees with the tables. Returns the row counts."""
    with decimal.localcontext(
        decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.DivisionByZero])
    ):
        account = connection.execute("SELECT * FROM accounts WHERE id = 'paper'").fetchone()
        assert account is not None
        fills = connection.execute("SELECT * FROM fills").fetchall()
        orders = connection.execute("SELECT * FROM orders").fetchall()
        positions = {row["symbol"]: row for row in connection.execute("SELECT * FROM positions").fetchall()}
        sign = {"buy": Decimal(1), "sell": Decimal(-1)}
        notional = sum((sign[f["side"]] * f["quantity"] * f["price"] for f in fills), Decimal(0))
        fees = sum((f["fee"] for f in fills), Decimal(0))
        realized = sum((f["realized_pnl"] for f in fills), Decimal(0))
        assert account["initial_equity"] == INITIAL_CASH
        assert account["cash"] == INITIAL_CASH - notional - fees
        assert account["fees"] == fees
        assert account["realized_pnl"] == realized
        held: dict[str, Decimal] = collections.defaultdict(Decimal)
        for fill in fills:
            held[fill["symbol"]] += sign[fill["side"]] * fill["quantity"]
        for symbol in set(held) | set(positions):
            stored = positions[symbol]["quantity"] if symbol in positions else Decimal(0)
            assert stored == held.get(symbol, Decimal(0)), (
                f"{symbol}: position {stored}, fills {held[symbol]}"
            )
        by_order: dict[Any, list[dict[str, Any]]] = collections.defaultdict(list)
        for fill in fills:
            by_order[fill["order_id"]].append(fill)
        assert set(by_order) <= {order["id"] for order in orders}
        for order in orders:
            own = by_order.get(order["id"], [])
            assert order["filled_quantity"] == sum((f["quantity"] for f in own), Decimal(0)), order
            assert order["filled_notional"] == sum((f["quantity"] * f["price"] for f in own), Decimal(0)), (
                order
            )
            assert order["fees"] == sum((f["fee"] for f in own), Decimal(0)), order
        assert Decimal(portfolio["cash"]) == account["cash"]
        assert Decimal(portfolio["fees"]) == account["fees"]
        assert Decimal(portfolio["realized_pnl"]) == account["realized_pnl"]
        shown = {p["symbol"]: Decimal(p["quantity"]) for p in portfolio["positions"]}
        assert shown == {
            s: p["quantity"] for s, p in positions.items() if p["quantity"] != 0 or p["realized_pnl"] != 0
        }
    return {
        "orders": len(orders),
        "fills": len(fills),
        "open": sum(1 for o in orders if o["status"] in ("new", "partially_filled")),
    }


# Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def launch(
    trader_database_url: str, redis_url: str, redis_prefix: str
) -> Iterator[Callable[..., TraderApiProcess]]:
    """Makes ``sapphire api`` replicas on this test's database and Redis prefix, each
    advertising its own address; all are stopped at the end."""
    made: list[TraderApiProcess] = []

    def make(**settings: str) -> TraderApiProcess:
        port = processes.free_port()
        api = TraderApiProcess(
            database_url=trader_database_url,
            redis_url=redis_url,
            port=port,
            settings={
                **SETTINGS,
                "redis_key_prefix": redis_prefix,
                "advertise_url": f"http://127.0.0.1:{port}",
                **settings,
            },
        )
        made.append(api)
        return api

    yield make
    for api in made:
        api.stop()


# The tests --------------------------------------------------------------------------------


async def test_a_crash_in_an_order_storm_loses_and_doubles_nothing(
    launch: Callable[..., TraderApiProcess], trader_database_url: str
) -> None:
    api = launch().start()
    await wait_for_engine(api.url, role="writer")
    await post_quotes(api.url)
    bodies = order_bodies("crash")
    plans = client_plans(bodies)

    before = Tally(kill_after=KILL_AFTER)
    running = asyncio.create_task(storm([api.url], plans, before))
    await kill_mid_storm(api, running, before)
    await running
    assert before.transport_errors > 0, "no client was cut off by the kill"
    assert set(before.statuses) <= {200, 201}, f"answers before the kill: {dict(before.statuses)}"

    restarted_at = time.monotonic()
    api.start()
    engine = await wait_for_engine(api.url, role="writer")
    restart_seconds = time.monotonic() - restarted_at
    assert engine["epoch"] == 2
    with connect(trader_database_url) as connection:
        committed = committed_orders(connection)
        assert len(committed) < len(bodies), "every order was committed before the kill: nothing to resend"

        await post_quotes(api.url)
        after = Tally()
        resend_started = time.monotonic()
        await storm([api.url], plans, after)
        resend_seconds = time.monotonic() - resend_started

        assert_nothing_lost_or_doubled(bodies, before, committed, after, connection)
        books = assert_books_balance(connection, await get_json(api.url, "/v1/portfolio"))
    print(
        f"\ncrash: killed after {before.accepted} answers ({len(before.orders)} ids acknowledged, "
        f"{before.transport_errors} clients cut off); {len(committed)}/{len(bodies)} orders committed at the "
        f"kill; restart to writer {restart_seconds:.1f}s; resend of {sum(after.statuses.values())} requests "
        f"in {resend_seconds:.1f}s: "
        f"{after.statuses[201]} created, {after.statuses[200]} repeats; orders={books['orders']} "
        f"fills={books['fills']} open={books['open']}; books balance"
    )


async def test_a_follower_takes_over_from_a_killed_writer(
    launch: Callable[..., TraderApiProcess], trader_database_url: str
) -> None:
    replicas = [launch().spawn(), launch().spawn()]  # side by side: they race for the lock
    assert replicas[0].port != replicas[1].port
    for replica in replicas:
        replica.wait_ready()
    first, second, first_engine = await wait_for_election(replicas)
    await post_quotes(second.url)  # forwarded to the writer
    bodies = order_bodies("failover")
    plans = client_plans(bodies)

    before = Tally(kill_after=KILL_AFTER)
    running = asyncio.create_task(storm([first.url, second.url], plans, before))
    killed_at = await kill_mid_storm(first, running, before)
    engine = await wait_for_engine(second.url, role="writer", writer=second.url, within=15)
    failover_seconds = time.monotonic() - killed_at
    # The follower's clients kept retrying through the election; once the new writer has
    # answered some of them the storm ends, leaving orders never sent for the resend to create.
    await until(
        lambda: before.accepted_by_url[second.url] - before.at_kill[second.url] >= SURVIVOR_ANSWERS,
        within=15,
        what="answers from the new writer",
    )
    before.stop.set()
    await running
    assert failover_seconds < FAILOVER_SECONDS
    assert engine["epoch"] == first_engine["epoch"] + 1
    assert before.accepted_by_url[second.url] > 0, "the follower forwarded nothing"
    assert before.transport_errors > 0, "no client of the killed writer was cut off"
    # 503: a forwarded write whose writer died, or one that arrived during the election.
    assert set(before.statuses) <= {200, 201, 503}, f"answers around the failover: {dict(before.statuses)}"

    with connect(trader_database_url) as connection:
        committed = committed_orders(connection)
        assert len(committed) < len(bodies), "every order was committed before the resend: nothing to test"

        await post_quotes(second.url)
        after = Tally()
        resend_started = time.monotonic()
        await storm([second.url], plans, after)
        resend_seconds = time.monotonic() - resend_started

        assert_nothing_lost_or_doubled(bodies, before, committed, after, connection)
        books = assert_books_balance(connection, await get_json(second.url, "/v1/portfolio"))
    survivor_answers = before.accepted_by_url[second.url] - before.at_kill[second.url]
    print(
        f"\nfailover: writer killed after {sum(before.at_kill.values())} answers "
        f"({before.at_kill[second.url]} forwarded by the follower); the follower was writer "
        f"(epoch {engine['epoch']}) {failover_seconds:.2f}s after the kill; {before.statuses[503]} "
        f"answers 503 meanwhile, then {survivor_answers} from the new writer; "
        f"{len(committed)}/{len(bodies)} orders committed before the resend; resend of "
        f"{sum(after.statuses.values())} requests in {resend_seconds:.1f}s: {after.statuses[201]} created, "
        f"{after.statuses[200]} repeats; orders={books['orders']} fills={books['fills']} "
        f"open={books['open']}; books balance"
    )


async def test_a_writer_that_lost_its_lock_commits_nothing(
    launch: Callable[..., TraderApiProcess], trader_database_url: str
) -> None:
    # A slow election interval keeps the deposed writer believing it is the writer (its idle
    # epoch check has not run) when the first order reaches it.
    api = launch(writer_election_seconds="2").start()
    engine = await wait_for_engine(api.url, role="writer", writer=api.url)
    await post_quotes(api.url)
    bodies = order_bodies("fence", 8)
    async with httpx.AsyncClient(base_url=api.url, headers=AGENT, timeout=10) as client:
        accepted = await client.post("/v1/orders", json=bodies[0])
        assert accepted.status_code == 201, accepted.text

        with connect(trader_database_url) as admin, connect(trader_database_url) as holder:
            holder.execute("SET statement_timeout = '10s'")
            assert committed_orders(admin) == {bodies[0]["client_order_id"]: accepted.json()["id"]}
            holders = lock_holders(admin)
            assert len(holders) == 1, holders
            terminated = admin.execute("SELECT pg_terminate_backend(%s) AS ok", (holders[0],)).fetchone()
            assert terminated == {"ok": True}
            # At once: the lock (it waits for the terminated backend to exit) and a new epoch.
            holder.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
            bumped = holder.execute(
                "UPDATE accounts SET writer_epoch = writer_epoch + 1, writer_address = %s "
                "WHERE id = 'paper' RETURNING writer_epoch",
                (DEPOSED_ADDRESS,),
            ).fetchone()
            assert bumped == {"writer_epoch": engine["epoch"] + 1}
            assert lock_holders(admin) == [holder.info.backend_pid]
            snapshot = table_snapshot(admin)

            refused = [await client.post("/v1/orders", json=body) for body in bodies[1:4]]
            await wait_for_engine(api.url, role="follower", writer=DEPOSED_ADDRESS)
            refused += [await client.post("/v1/orders", json=body) for body in bodies[4:]]
            assert [r.status_code for r in refused] == [503] * len(refused), [r.text for r in refused]
            # The first one reached the deposed writer itself, which tried to commit it.
            assert "could not persist" in refused[0].json()["detail"], refused[0].text
            assert table_snapshot(admin) == snapshot

            unlocked = holder.execute("SELECT pg_advisory_unlock(%s) AS ok", (WRITER_LOCK,)).fetchone()
            assert unlocked == {"ok": True}
            returned = await wait_for_engine(api.url, role="writer", writer=api.url)
            assert returned["epoch"] == bumped["writer_epoch"] + 1

            await post_quotes(api.url)
            again = await client.post("/v1/orders", json=bodies[0])
            assert (again.status_code, again.json()["id"]) == (200, accepted.json()["id"])
            resent = [await client.post("/v1/orders", json=body) for body in bodies[1:]]
            assert [r.status_code for r in resent] == [201] * len(resent), [r.text for r in resent]
            assert len(committed_orders(admin)) == len(bodies)
            books = assert_books_balance(admin, await get_json(api.url, "/v1/portfolio"))
    print(
        f"\nfencing: {len(refused)} orders to the deposed writer (epoch {engine['epoch']}, lock and epoch "
        f"{bumped['writer_epoch']} taken by the test) all answered 503 (the first "
        f"by the writer itself: {refused[0].json()['detail'][:60]!r}...), tables unchanged "
        f"(orders={snapshot['counts']['orders']} fills={snapshot['counts']['fills']}); writer again at "
        f"epoch {returned['epoch']}, replayed the first order and created the {len(resent)} refused ones; "
        f"orders={books['orders']} fills={books['fills']}"
    )
