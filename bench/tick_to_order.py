"""tick_to_order: a tick posted to the trader API's ingest, through an analyst's signal and
the executor's order, to the order accepted and persisted by the trader API, while the
market is busy.

The real path, every component real:

1. **Clock starts** just before the feed POSTs the tick to the trader API's ``/v1/ticks``
   (one keep-alive connection, as ``sapphire feed`` holds): the order engine takes the quote,
   the batch commits (group commit, durable Postgres), and only then is the tick published
   on ``{prefix}ticks:BTC-USD`` (durable before visible).
2. The momentum analyst (``agents/analysts``) receives it on its own Redis connection,
   decodes it once (msgspec), folds it into its indicators and is asked for its opinion,
   which it POSTs to ``/v1/signals`` (``agents.client``, one keep-alive connection).
3. The trader API stores the signal in the signal journal's next group commit, answers 201
   and publishes it on ``{prefix}signals``.
4. The executor (``agents.trading.ExecutorAgent``, all its loops running) receives it, marks
   BTC-USD dirty, decides (aggregation, sizing) and POSTs the order to ``/v1/orders``.
5. The order engine checks risk and fills it on the paper venue; the journal commits order,
   fill, position and cash in the next group commit, then the API answers 201.
6. **Clock stops** when the executor's HTTP client has read that 201.

**Under load.** Meanwhile ``sapphire feed --source simulated`` (its own process) posts a
background load of 10,000 ticks/s over ETH-USD and AAPL to the same ingest route, and the
five other analysts (mean-reversion, volatility, microstructure, sentiment, strategist) run
as their own ``sapphire agent run`` processes on those symbols at a 1 s cadence, posting
their signals to the same API: all six analysts run. The measured momentum analyst and the
executor share the benchmark's event loop (as in ``sapphire up``); the executor follows
BTC-USD only, so every order it sends is the measured tick's.

One deliberate difference from a deployed analyst: ``AnalystAgent`` assesses every
``interval_seconds``; the benchmark runs the momentum analyst's tick handling and
``assess`` on every tick of BTC-USD, to measure the processing path rather than the cadence.

One measured tick is in flight at a time (closed loop): the next is posted once the previous
order was answered and the executor is idle again. Figures: latency percentiles, a stage
breakdown (tick -> signal sent, signal sent -> order sent, the order's round trip, and the
tick's own ingest answer), and the CPU of every process, as cores used over the run.

Floors, measured in the same run: a raw Redis ``PUBLISH`` to a subscriber (redis-py asyncio,
same machine), a bare HTTP round trip (``bench/floor_app.py`` under ``sapphire api``'s
uvicorn settings, one keep-alive connection), and a durable commit (one single-row
``INSERT`` in autocommit on the same durable Postgres). The ratio to their sum is the figure
to compare across machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import psycopg
import redis.asyncio

from bench import environment, fleet, floor_app, http, procstat, report
from sapphire import bus as message_bus
from sapphire.agents import analysts, client, executor, market, runtime, trading
from sapphire.agents import context as agent_context
from sapphire.agents.settings import AgentSettings
from sapphire.domain.risk import NotionalLimits
from tests.support import metrics

NAME = "tick_to_order"
SYMBOL = "BTC-USD"
START_PRICE = 60_000.0
DRIFT = 1e-5
"""Per-tick log drift: a steady uptrend keeps the momentum analyst's score far beyond its
deadband on every tick, so every tick yields a signal."""
ORDER_NOTIONAL = Decimal(1000)
"""The executor's max_order_notional: tiny beside its position limit, so the target is never
reached within the run and every signal yields an order."""


BACKGROUND_SYMBOLS = ("ETH-USD", "AAPL")


@dataclass(frozen=True)
class Sizes:
    ticks: int = 5_000
    warmup_ticks: int = 100
    """Unmeasured ticks first: the momentum analyst needs 48 to speak."""
    floor_samples: int = 5_000
    profile_ticks: int = 600
    background_ticks_per_s: float = 10_000


FULL = Sizes()
SMOKE = Sizes(ticks=20, warmup_ticks=60, floor_samples=50, profile_ticks=20, background_ticks_per_s=200)


API_SETTINGS = {
    "initial_cash": "1000000000",
    "fee_bps": "0",
    "slippage_bps": "0",
    "risk": json.dumps(
        {
            "max_order_notional": "2000",
            "max_position_notional": "1000000000",
            "max_gross_exposure": "1000000000",
            "max_daily_loss": "1000000000",
            "max_drawdown": "1",
            "stale_quote_seconds": "60",
        }
    ),
}


def tick_payload(index: int) -> str:
    """The bus JSON of tick ``index`` (the trader API's ``quote_payload`` shape)."""
    mid = START_PRICE * math.exp(DRIFT * index)
    bid = Decimal(f"{mid:.2f}")
    return json.dumps(
        {
            "symbol": SYMBOL,
            "bid": str(bid),
            "ask": str(bid + Decimal("0.01")),
            "last": str(bid + Decimal("0.01")),
            "size": "0.5",
            "ts": datetime.now(UTC).isoformat(),
        }
    )


@dataclass
class Timeline:
    """When each HTTP call of the current tick was sent and answered (``perf_counter_ns``)."""

    marks: dict[str, int] = field(default_factory=dict)
    waiters: dict[str, asyncio.Future[tuple[int, int]]] = field(default_factory=dict)
    in_flight: int = 0

    def expect(self, call: str) -> asyncio.Future[tuple[int, int]]:
        waiter: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.waiters[call] = waiter
        return waiter


def stopwatch(timeline: Timeline) -> aiohttp.TraceConfig:
    """aiohttp's request tracing (the client's ``trace_configs``), timestamping each call: sent
    as the session takes the request up, answered once the client has read the whole response
    (``on_response_chunk_received`` fires once ``read()`` has the body)."""
    trace = aiohttp.TraceConfig()

    async def sent(
        _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        timeline.marks[f"{params.method} {params.url.path} sent"] = time.perf_counter_ns()
        timeline.in_flight += 1

    async def headed(
        _: aiohttp.ClientSession, call: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        call.status = params.response.status

    async def answered(
        _: aiohttp.ClientSession, call: SimpleNamespace, params: aiohttp.TraceResponseChunkReceivedParams
    ) -> None:
        at = time.perf_counter_ns()
        timeline.in_flight -= 1
        name = f"{params.method} {params.url.path}"
        timeline.marks[f"{name} answered"] = at
        waiter = timeline.waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((call.status, at))

    async def failed(
        _: aiohttp.ClientSession, __: SimpleNamespace, ___: aiohttp.TraceRequestExceptionParams
    ) -> None:
        timeline.in_flight -= 1

    trace.on_request_start.append(sent)
    trace.on_request_end.append(headed)
    trace.on_response_chunk_received.append(answered)
    trace.on_request_exception.append(failed)
    return trace


async def analyst_on_every_tick(
    context: agent_context.AgentContext, analyst: analysts.Analyst, subscribed: asyncio.Event
) -> None:
    """The analyst's tick handling and ``assess_loop`` body, run per tick instead of per interval."""
    async with context.bus.subscribe([context.names.ticks(SYMBOL)]) as subscription:
        subscribed.set()
        while not context.stop.is_set():
            message = await subscription.get(0.25)
            if message is None:
                continue
            analyst.observe(market.decode_tick(message.data))
            opinion = await analyst.assess(SYMBOL, context.clock())
            if opinion is not None:
                await context.api.post_signal(opinion)


def agent_settings(api_url: str, redis_url: str, prefix: str, name: str, role: str) -> AgentSettings:
    common = AgentSettings(
        agent_name=name,
        role="momentum",
        symbols=[SYMBOL],
        trader_api_url=api_url,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        agent_token=environment.AGENT_TOKEN,
        heartbeat_seconds=3600,
        instruments_refresh_seconds=3600,
        executor_decide_seconds=3600,
    )
    if role != "executor":
        return common
    return common.model_copy(
        update={
            "role": role,
            "risk_max_order_notional": ORDER_NOTIONAL,
            "risk_max_position_notional": Decimal(10) ** 9,
            "risk_max_gross_exposure": Decimal(10) ** 9,
            "risk_max_daily_loss": Decimal(10) ** 9,
        }
    )


@dataclass
class PassResult:
    latencies_ns: list[int] = field(default_factory=list)
    stages_ns: dict[str, list[int]] = field(default_factory=dict)
    misses: int = 0
    refused: int = 0
    seconds: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)
    """CPU seconds per second of the measured part, per process."""
    background_ticks_per_s: float = 0.0


async def _post_tick(feed: http.Connection, payload: str) -> tuple[int, bytes, int]:
    """POST one tick: its status, body, and when its answer was read (the clock's own
    reading, not when the benchmark next looked: it waits for the order first)."""
    status, body = await feed.request("POST", "/v1/ticks", {"ticks": [json.loads(payload)]})
    return status, body, time.perf_counter_ns()


async def drive(
    api_url: str,
    redis_url: str,
    prefix: str,
    sizes: Sizes,
    ticks: int,
    *,
    on_measuring: Callable[[], None] | None = None,
    meter: procstat.Meter | None = None,
) -> PassResult:
    """Run the fleet, the momentum analyst and the executor against the API and post ``ticks``
    measured ticks. ``on_measuring`` is called once, when the warm-up ticks are done."""
    timeline = Timeline()
    stop = asyncio.Event()
    contexts, tasks = [], []
    clients: list[client.TraderApiClient] = []
    buses: list[message_bus.Bus] = []
    subscribed = asyncio.Event()
    for name, role in (("bench-momentum", "momentum"), ("bench-executor", "executor")):
        settings = agent_settings(api_url, redis_url, prefix, name, role)
        api = client.TraderApiClient(
            api_url, token=environment.AGENT_TOKEN, trace_configs=[stopwatch(timeline)]
        )
        bus = message_bus.open_bus(redis_url, timeout=runtime.AGENT_BUS_TIMEOUT)
        clients.append(api)
        buses.append(bus)
        contexts.append(agent_context.AgentContext(settings, api=api, bus=bus, stop=stop))
    analyst_context, executor_context = contexts
    analyst = analysts.build_analyst("momentum", agent="bench-momentum")
    s = executor_context.settings
    engine = executor.Executor(
        executor.ExecutorConfig(
            agent=s.agent_name,
            limits=NotionalLimits(
                max_order_notional=ORDER_NOTIONAL,
                max_position_notional=Decimal(10) ** 9,
                max_gross_exposure=Decimal(10) ** 9,
                max_daily_loss=Decimal(10) ** 9,
            ),
            # Every order here is far below 2% of the position limit; the default would skip them.
            min_order_fraction=Decimal(0),
        )
    )
    agent = trading.ExecutorAgent(executor_context, engine)
    members = fleet.analysts_and_executor(
        BACKGROUND_SYMBOLS, interval_seconds=1.0, executor=False, skip=["momentum"]
    )
    members["feed"] = fleet.background_feed(BACKGROUND_SYMBOLS, sizes.background_ticks_per_s)
    names = analyst_context.names
    result = PassResult(
        stages_ns={
            "tick_to_signal_sent": [],
            "signal_to_order_sent": [],
            "order_round_trip": [],
            "ingest_ack": [],
        }
    )
    with fleet.running(api_url, redis_url, prefix, members) as background:
        tasks.append(asyncio.create_task(analyst_on_every_tick(analyst_context, analyst, subscribed)))
        tasks.append(asyncio.create_task(agent.run()))
        feed = await http.Connection.open(api_url, token=environment.AGENT_TOKEN)
        try:
            await asyncio.to_thread(
                fleet.wait_subscribed,
                redis_url,
                {names.ticks(SYMBOL): 2, names.signals: 2, names.ticks(BACKGROUND_SYMBOLS[0]): 5},
                background,
            )
            async with asyncio.timeout(30):
                # The executor exposes no "warmed up" event; its state is the only signal.
                while engine.equity is None or SYMBOL not in engine.instruments:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            started = time.perf_counter()
            before: dict[str, float] = {}
            ticks_before = 0.0
            for index in range(sizes.warmup_ticks + ticks):
                measured = index >= sizes.warmup_ticks
                if measured and index == sizes.warmup_ticks:
                    if on_measuring is not None:
                        on_measuring()
                    started = time.perf_counter()
                    before = _cpu(meter, background)
                    ticks_before = await _background_ticks(feed)
                # Each tick starts with no call in flight and no decision waiting, so the
                # order that answers is this tick's and the latency holds no queueing of ours.
                async with asyncio.timeout(10):
                    while timeline.in_flight or not agent.idle:  # noqa: ASYNC110 - no event for "idle"
                        await asyncio.sleep(0.001)
                timeline.marks.clear()
                order = timeline.expect("POST /v1/orders")
                payload = tick_payload(index)
                t0 = time.perf_counter_ns()
                ingest = asyncio.create_task(_post_tick(feed, payload))
                try:
                    status, t1 = await asyncio.wait_for(order, timeout=2.0 if measured else 0.5)
                except TimeoutError:
                    timeline.waiters.clear()
                    result.misses += measured
                    continue
                finally:
                    ingested, body, acked = await ingest
                    if ingested != 200:
                        raise RuntimeError(f"{NAME}: the tick was refused: {ingested} {body[:300]!r}")
                timeline.waiters.clear()
                if not measured:
                    continue
                if status != 201:
                    result.refused += 1
                    continue
                marks = timeline.marks
                signal_sent = marks.get("POST /v1/signals sent", t0)
                order_sent = marks["POST /v1/orders sent"]
                result.latencies_ns.append(t1 - t0)
                result.stages_ns["tick_to_signal_sent"].append(signal_sent - t0)
                result.stages_ns["signal_to_order_sent"].append(order_sent - signal_sent)
                result.stages_ns["order_round_trip"].append(t1 - order_sent)
                result.stages_ns["ingest_ack"].append(acked - t0)
            result.seconds = time.perf_counter() - started
            after = _cpu(meter, background)
            result.cores = {name: (after[name] - before[name]) / result.seconds for name in before}
            result.background_ticks_per_s = (await _background_ticks(feed) - ticks_before) / result.seconds
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
            await feed.close()
            for api in clients:
                await api.aclose()
            for bus in buses:
                await bus.close()
    return result


def _cpu(meter: procstat.Meter | None, background: fleet.Fleet) -> dict[str, float]:
    readings = {} if meter is None else meter.read()
    return readings | {f"agent_{name}" if name != "feed" else name: v for name, v in background.cpu().items()}


async def _background_ticks(connection: http.Connection) -> float:
    """Ticks of the background symbols the API has ingested so far (its own counter)."""
    status, body = await connection.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"{NAME}: /metrics answered {status}")
    return metrics.sample_sum(
        body.decode(),
        "sapphire_ticks_ingested_total",
        where=lambda labels: labels.get("symbol") in BACKGROUND_SYMBOLS,
    )


async def redis_floor(redis_url: str, samples: int) -> list[int]:
    """Raw PUBLISH -> subscriber receive, one message in flight, same payload as a tick."""
    publisher = redis.asyncio.Redis.from_url(redis_url)
    subscriber = redis.asyncio.Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe("bench-floor")
    arrivals: asyncio.Queue[int] = asyncio.Queue()

    async def consume() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "message":
                arrivals.put_nowait(time.perf_counter_ns())

    consumer = asyncio.create_task(consume())
    latencies = []
    try:
        for index in range(samples + 100):
            payload = tick_payload(index)
            t0 = time.perf_counter_ns()
            await publisher.publish("bench-floor", payload)
            t1 = await asyncio.wait_for(arrivals.get(), timeout=2.0)
            if index >= 100:  # the first hundred warm the connections up
                latencies.append(t1 - t0)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await subscriber.aclose()
        await publisher.aclose()
    return latencies


async def http_floor(services: environment.Services, samples: int) -> list[int]:
    """One keep-alive connection to the bare floor app (``sapphire api``'s uvicorn settings):
    a small JSON POST and its 201, one in flight."""
    redis_url, prefix = services.fresh_redis()
    with environment.running_api(
        database_url="sqlite://", redis_url=redis_url, prefix=prefix, module=floor_app.__name__
    ) as floor:
        connection = await http.Connection.open(floor.url, token=environment.AGENT_TOKEN)
        request = connection.encode("POST", floor_app.PATH, {"client_order_id": "floor", "symbol": SYMBOL})
        latencies = []
        try:
            for index in range(samples + 100):
                t0 = time.perf_counter_ns()
                status, _ = await connection.send(request)
                if status != 201:
                    raise RuntimeError(f"{NAME}: the HTTP floor answered {status}")
                if index >= 100:
                    latencies.append(time.perf_counter_ns() - t0)
        finally:
            await connection.close()
    return latencies


def commit_floor(database_url: str, samples: int) -> list[int]:
    """One single-row INSERT in autocommit on the durable Postgres: one fsync each."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench_commit_floor (id bigint PRIMARY KEY, payload text NOT NULL)")
        latencies = []
        for index in range(samples + 100):
            t0 = time.perf_counter_ns()
            connection.execute("INSERT INTO bench_commit_floor VALUES (%s, %s)", (index, "x" * 200))
            if index >= 100:
                latencies.append(time.perf_counter_ns() - t0)
        connection.execute("DROP TABLE bench_commit_floor")
    return latencies


async def _one_pass(
    services: environment.Services,
    sizes: Sizes,
    ticks: int,
    *,
    api_profile: Path | None = None,
    on_measuring: Callable[[], None] | None = None,
) -> PassResult:
    database = services.migrated_database()
    redis_url, prefix = services.fresh_redis()
    try:
        with environment.running_api(
            database_url=database,
            redis_url=redis_url,
            prefix=prefix,
            settings=API_SETTINGS,
            profile=api_profile,
        ) as api:

            def measuring() -> None:
                api.start_profile()
                if on_measuring is not None:
                    on_measuring()

            meter = procstat.Meter(
                api=api.process.pid,
                postgres=procstat.postmaster_pid(database),
                redis=services.redis.process.pid if services.redis.process else None,
            )
            return await drive(api.url, redis_url, prefix, sizes, ticks, on_measuring=measuring, meter=meter)
    finally:
        services.postgres.drop_database(database)


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
) -> report.Report:
    redis_url, _ = services.fresh_redis()
    redis_ns = await redis_floor(redis_url, sizes.floor_samples)
    http_ns = await http_floor(services, sizes.floor_samples)
    floor_database = services.postgres.create_database()
    try:
        commit_ns = await asyncio.to_thread(commit_floor, floor_database, min(sizes.floor_samples, 2_000))
    finally:
        services.postgres.drop_database(floor_database)
    measured = await _one_pass(services, sizes, sizes.ticks)
    if not measured.latencies_ns:
        raise RuntimeError(
            f"{NAME}: no order came back (misses={measured.misses}, refused={measured.refused})"
        )
    result = report.Report(
        name=NAME,
        method=__doc__ or "",
        sizes=asdict(sizes),
        versions=services.versions(),
        settings={
            "trader_api": API_SETTINGS,
            "executor_max_order_notional": str(ORDER_NOTIONAL),
            "background_symbols": list(BACKGROUND_SYMBOLS),
            "analysts": list(fleet.ANALYSTS),
        },
    )
    result.figures = report.latency_figures(measured.latencies_ns)
    for stage, samples in measured.stages_ns.items():
        stage_figures = report.latency_figures(samples)
        result.figures[f"stage_{stage}_p50"] = stage_figures["p50"]
        result.figures[f"stage_{stage}_p99"] = stage_figures["p99"]
    result.figures["orders"] = report.Figure(len(measured.latencies_ns), "orders")
    result.figures["misses"] = report.Figure(measured.misses + measured.refused, "ticks", "no 201 within 2 s")
    result.figures["closed_loop_rate"] = report.Figure(
        len(measured.latencies_ns) / measured.seconds, "ticks/s", "one measured tick in flight"
    )
    result.figures["background_ticks_per_s"] = report.Figure(
        measured.background_ticks_per_s, "ticks/s", "ETH-USD and AAPL, ingested by the API meanwhile"
    )
    for name, used in measured.cores.items():
        result.figures[f"cpu_{name}_cores"] = report.Figure(used, "cores", "CPU s / s of the measured run")
    for name, samples in (
        ("redis_pubsub", redis_ns),
        ("http_round_trip", http_ns),
        ("durable_commit", commit_ns),
    ):
        figures = report.latency_figures(samples)
        result.floor[f"{name}_p50"] = figures["p50"]
        result.floor[f"{name}_p99"] = figures["p99"]
    floors = sum(
        result.value(f"{name}_p50") for name in ("redis_pubsub", "http_round_trip", "durable_commit")
    )
    result.floor["sum_of_floors_p50"] = report.Figure(
        floors, "ms", "Redis hop + HTTP round trip + durable commit"
    )
    result.ratios["p50_over_sum_of_floors"] = report.Figure(result.value("p50") / floors, "x")
    result.targets = [
        report.Target("p50", "<=", 1.5),
        report.Target("p99", "<=", 5.0),
        report.Target("p50_over_sum_of_floors", "<=", 2.5),
        report.Target("background_ticks_per_s", ">=", sizes.background_ticks_per_s * 0.9),
    ]
    if profile and result.missed:
        result.profile = await _profile(services, sizes, results)
    return result


async def _profile(services: environment.Services, sizes: Sizes, results: Path) -> str:
    """A shorter second pass with both processes under pyinstrument; one text file of both."""
    import pyinstrument

    api_profile = Path(tempfile.mkdtemp(prefix="sapphire-bench-")) / "api.profile"
    profiler = pyinstrument.Profiler(interval=0.0005, async_mode="disabled")
    try:
        await _one_pass(
            services, sizes, sizes.profile_ticks, api_profile=api_profile, on_measuring=profiler.start
        )
    finally:
        if profiler.is_running:
            profiler.stop()
    return report.save_profile(
        results,
        NAME,
        [
            f"# {NAME}: pyinstrument, {sizes.profile_ticks} ticks after the warm-up, closed loop\n",
            "## trader API process (uvicorn)\n",
            report.read_or_note(api_profile),
            "\n## benchmark process (feed, momentum analyst, executor)\n",
            profiler.output_text(unicode=True, color=False, show_all=False),
        ],
    )
