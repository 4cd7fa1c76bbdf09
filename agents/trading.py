"""The executor's I/O shell: events in from the bus, orders out to the trader API.

Decisions are made by :class:`sapphire.agents.executor.Executor` (pure). This shell:

* warms up from the API (risk state and the API's ``day_start_equity``, the account,
  recent signals), then listens to ``{prefix}signals``, ``{prefix}risk`` and
  ``{prefix}fills`` on one subscription and to every symbol's ticks;
* marks a symbol *dirty* on each new signal, and every symbol each
  ``executor_decide_seconds`` so that decaying signals wind positions down. Dirty symbols
  are a set, not a queue: however many signals arrive while an order is in flight, a
  symbol is decided once, on the latest state;
* sends one order at a time. A network failure retries the *same* order (same
  ``client_order_id`` and body, so the API deduplicates) unless HALTED arrived meanwhile;
* books its fills itself, from the order's answer (201: filled quantity, average price,
  fees) and from the fills channel (resting orders and bracket legs that fill later), each
  once; it never re-reads the portfolio after an order. The daily-loss baseline is the
  API's own ``day_start_equity``, read again when the UTC day turns;
* runs LLM arbitration, when configured, as background tasks that never delay an order.

``HALTED`` on the risk channel takes effect in :meth:`Executor.on_risk_state` the moment the
message is read; the order loop checks it again right before each POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

import msgspec
import prometheus_client

from sapphire import bus as message_bus
from sapphire.agents import client, executor, market, sizing, supervision
from sapphire.agents.context import AgentContext
from sapphire.agents.llm import base as llm
from sapphire.agents.settings import AgentSettings
from sapphire.domain.risk import NotionalLimits

logger = logging.getLogger(__name__)

ORDER_ATTEMPTS = 5

DECISIONS = prometheus_client.Counter(
    "sapphire_executor_decisions",
    "Symbols the executor took up to decide, by outcome once done: order (one was placed), none"
    " (nothing to trade), unplaced (the API refused the order or never answered), halted (trading is"
    " HALTED: nothing was considered).",
    ["agent", "outcome"],
)


class _Fill(msgspec.Struct):
    """The part of a ``{prefix}fills`` message the executor books (the rest is ignored)."""

    order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal


_FILL = msgspec.json.Decoder(_Fill)


def executor_config(s: AgentSettings, *, epoch: str | None = None) -> executor.ExecutorConfig:
    """The executor's decision settings from its process settings (``spec.risk`` and the rest).

    ``epoch`` defaults to the start time (a restarted executor never reuses an order id); a
    backtest passes a fixed one so that its order ids, and so its report, repeat exactly."""
    if (
        s.risk_max_order_notional is None
        or s.risk_max_position_notional is None
        or s.risk_max_gross_exposure is None
        or s.risk_max_daily_loss is None
    ):
        raise ValueError("the executor needs every SAPPHIRE_RISK_* limit")
    config = executor.ExecutorConfig(
        agent=s.agent_name,
        limits=NotionalLimits(
            max_order_notional=s.risk_max_order_notional,
            max_position_notional=s.risk_max_position_notional,
            max_gross_exposure=s.risk_max_gross_exposure,
            max_daily_loss=s.risk_max_daily_loss,
        ),
        half_life_seconds=s.executor_half_life_seconds,
        collar_bps=s.executor_collar_bps,
        arbitration_timeout_seconds=s.arbitration_timeout_seconds,
        protection=executor.Protection(
            stop_loss_bps=s.risk_stop_loss_bps,
            take_profit_bps=s.risk_take_profit_bps,
            trailing_stop_bps=s.risk_trailing_stop_bps,
        ),
    )
    return config if epoch is None else dataclasses.replace(config, epoch=epoch)


class ExecutorAgent:
    def __init__(self, context: AgentContext, engine: executor.Executor) -> None:
        self.context = context
        self.engine = engine
        self.dirty: dict[str, None] = {}
        """Symbols to decide, in the order they were marked (a dict as an ordered set)."""
        self._wake = asyncio.Event()
        self._decisions = {
            outcome: DECISIONS.labels(engine.config.agent, outcome)
            for outcome in ("order", "none", "unplaced", "halted")
        }
        self._arbitrations: dict[str, asyncio.Task[Decimal | None]] = {}

    @classmethod
    def from_settings(
        cls, context: AgentContext, *, arbiter: llm.StructuredModel | None = None
    ) -> ExecutorAgent:
        config = executor_config(context.settings)
        return cls(context, executor.Executor(config, arbiter=arbiter))

    # --- inputs -------------------------------------------------------------------------

    def _on_instruments(self, instruments: list[sizing.Instrument]) -> None:
        wanted = set(self.context.universe.symbols) if not self.context.universe.all_market else None
        self.engine.on_instruments(i for i in instruments if wanted is None or i.symbol in wanted)

    def _tick_channels(self) -> list[str]:
        return [self.context.names.ticks(s) for s in self.context.universe.symbols]

    def _on_tick(self, message: message_bus.Message) -> None:
        self.engine.on_tick(market.decode_tick(message.data))

    def mark_dirty(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self.dirty[symbol] = None
        if self.dirty:
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing left to decide (the benchmarks wait for it)."""
        return not self.dirty

    def _on_event(self, message: message_bus.Message) -> None:
        if message.channel == self.context.names.fills:
            fill = _FILL.decode(message.data)
            self.engine.on_fill(
                fill.order_id, symbol=fill.symbol, side=fill.side, quantity=fill.quantity, price=fill.price,
                fee=fill.fee,
            )  # fmt: skip
            return
        if message.channel == self.context.names.risk:
            state = market.RiskState(json.loads(message.data)["state"])
            self.engine.on_risk_state(state)
            if state is market.RiskState.HALTED:
                self._cancel_arbitrations()
            return
        signal = market.Signal.model_validate_json(message.data)
        if signal.agent == self.engine.config.agent or signal.symbol not in self.context.universe.symbols:
            return
        self.engine.on_signal(signal)
        self.mark_dirty([signal.symbol])

    async def refresh_portfolio(self) -> None:
        """The account as the API holds it: at start only; fills are booked as they come."""
        portfolio = await self.context.api.portfolio()
        self.engine.on_portfolio(
            equity=portfolio.equity,
            cash=portfolio.cash,
            positions={p.symbol: p.quantity for p in portfolio.positions},
            marks={p.symbol: p.mark for p in portfolio.positions},
            now=self.context.clock(),
        )

    async def refresh_risk(self) -> None:
        """The risk state and the API's daily-loss baseline (``day_start_equity``)."""
        risk = await self.context.api.risk()
        self.engine.on_risk_state(market.RiskState(risk["state"]))
        self.engine.on_day_start(self.context.clock().date(), Decimal(str(risk["day_start_equity"])))

    async def warm_up(self) -> None:
        """Risk state, account and the signals still within their horizon, from the API."""
        api = self.context.api
        await self.refresh_risk()
        await self.refresh_portfolio()
        since = self.context.clock() - timedelta(seconds=self.engine.config.half_life_seconds * 4)
        for signal in await api.signals(since=since, limit=1000):
            self.engine.on_signal(signal)

    # --- loops --------------------------------------------------------------------------

    async def events_loop(self, backoff: supervision.Backoff) -> None:
        names = self.context.names
        # Subscribe first, then read the state over HTTP, so nothing falls in between.
        async with self.context.bus.subscribe([names.risk, names.signals, names.fills]) as subscription:
            await self.warm_up()
            backoff.reset()
            self.mark_dirty(self.context.universe.symbols)
            while not self.context.stop.is_set():
                message = await subscription.get(0.25)
                if message is not None:
                    try:
                        self._on_event(message)
                    except (ValueError, msgspec.DecodeError) as error:
                        logger.warning(
                            "bad event ignored", extra={"channel": message.channel, "error": str(error)[:300]}
                        )

    async def cadence_loop(self, backoff: supervision.Backoff) -> None:
        while not await supervision.sleep_or_stop(
            self.context.stop, self.context.settings.executor_decide_seconds
        ):
            if self.engine.day is not None and self.context.clock().date() != self.engine.day:
                await self.refresh_risk()  # a new UTC day: the API's new baseline
            self.mark_dirty(self.context.universe.symbols)

    async def orders_loop(self, backoff: supervision.Backoff) -> None:
        ctx = self.context
        while not ctx.stop.is_set():
            if not self.dirty:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.25)
                continue
            symbol = next(iter(self.dirty))
            del self.dirty[symbol]
            if self.engine.risk_state is market.RiskState.HALTED:
                self._decisions["halted"].inc()
                continue
            now = ctx.clock()
            self._maybe_arbitrate(symbol)
            order = self.engine.decide(symbol, now)
            if order is None:
                self._decisions["none"].inc()
                continue
            placed = await self.send(order)
            self._decisions["order" if placed else "unplaced"].inc()
            if placed:
                backoff.reset()

    async def send(self, order: executor.OrderRequest) -> bool:
        """POST one order, retrying the identical request on outages; False if it was not placed."""
        delay = supervision.Backoff(initial=0.1, maximum=2.0)
        for attempt in range(1, ORDER_ATTEMPTS + 1):
            if self.engine.risk_state is market.RiskState.HALTED or self.context.stop.is_set():
                return False
            try:
                result = await self.context.api.post_order(order.to_request())
            except client.ApiRejectedError as error:
                logger.warning(
                    "order rejected", extra={"client_order_id": order.client_order_id, "error": str(error)}
                )
                return False
            except client.ApiUnavailableError as error:
                logger.warning(
                    "order not acknowledged; retrying", extra={"attempt": attempt, "error": str(error)}
                )
                if await supervision.sleep_or_stop(self.context.stop, delay.next_delay()):
                    return False
                continue
            if isinstance(result, dict) and "filled_quantity" in result:
                average = result.get("average_price")
                self.engine.on_order(
                    str(result["id"]), symbol=order.plan.symbol, side=order.plan.side,
                    filled=Decimal(str(result["filled_quantity"])),
                    average=None if average is None else Decimal(str(average)),
                    fees=Decimal(str(result.get("fees", "0"))),
                )  # fmt: skip
            logger.info(
                "order",
                extra={
                    "client_order_id": order.client_order_id,
                    "symbol": order.plan.symbol,
                    "side": order.plan.side,
                    "quantity": str(order.plan.quantity),
                    "limit_price": str(order.plan.limit_price),
                    "score": str(order.score),
                    "status": result.get("status") if isinstance(result, dict) else None,
                },
            )
            return True
        return False

    def _maybe_arbitrate(self, symbol: str) -> None:
        if symbol in self._arbitrations:
            return
        consensus = self.engine.needs_arbitration(symbol, self.context.clock())
        if consensus is None:
            return
        timeout = self.engine.config.arbitration_timeout_seconds
        task = asyncio.ensure_future(
            asyncio.wait_for(self.engine.arbitrate(consensus, self.context.clock()), timeout)
        )
        self._arbitrations[symbol] = task

        def done(finished: asyncio.Task[Decimal | None]) -> None:
            self._arbitrations.pop(symbol, None)
            if not finished.cancelled() and finished.exception() is not None:
                logger.info(
                    "arbitration abandoned", extra={"symbol": symbol, "error": repr(finished.exception())}
                )

        task.add_done_callback(done)

    def _cancel_arbitrations(self) -> None:
        for task in list(self._arbitrations.values()):
            task.cancel()

    async def run(self) -> None:
        ctx = self.context
        try:
            await asyncio.gather(
                ctx.supervised(
                    "universe", lambda b: ctx.universe_loop(b, on_instruments=self._on_instruments)
                ),
                ctx.supervised("heartbeat", ctx.heartbeat_loop),
                ctx.supervised(
                    "market",
                    lambda b: ctx.listen(
                        b, self._tick_channels, self._on_tick, resubscribe_on_universe_change=True
                    ),
                ),
                ctx.supervised("events", self.events_loop),
                ctx.supervised("cadence", self.cadence_loop),
                ctx.supervised("orders", self.orders_loop),
            )
        finally:
            self._cancel_arbitrations()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._arbitrations.values(), return_exceptions=True)
