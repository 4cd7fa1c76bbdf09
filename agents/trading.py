"""The executor's I/O shell: events in from the bus, orders out to the trader API.

Decisions are made by :class:`sapphire.agents.executor.Executor` (pure). This shell:

* warms up from the API (risk state, portfolio, recent signals), then listens to
  ``{prefix}signals`` and ``{prefix}risk`` on one subscription and to every symbol's ticks;
* queues a symbol for a decision on each new signal, and re-decides every symbol each
  ``executor_decide_seconds`` so that decaying signals wind positions down;
* sends one order at a time. A network failure retries the *same* order (same
  ``client_order_id`` and body, so the API deduplicates) unless HALTED arrived meanwhile;
* after each order re-reads the portfolio, so the next decision sees the real fill;
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
from datetime import timedelta
from decimal import Decimal

from sapphire.agents import bus as agent_bus
from sapphire.agents import client, executor, market, sizing, supervision
from sapphire.agents.llm import base as llm
from sapphire.agents.runtime import AgentContext
from sapphire.agents.settings import AgentSettings

logger = logging.getLogger(__name__)

ORDER_ATTEMPTS = 5


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
        limits=sizing.RiskLimits(
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
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self.orders_sent = 0
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

    def _on_tick(self, message: agent_bus.Message) -> None:
        self.engine.on_tick(market.Tick.model_validate_json(message.data))

    def _on_event(self, message: agent_bus.Message) -> None:
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
        self.pending.put_nowait(signal.symbol)

    async def refresh_portfolio(self) -> None:
        portfolio = await self.context.api.portfolio()
        self.engine.on_portfolio(
            equity=portfolio.equity,
            positions={p.symbol: p.quantity for p in portfolio.positions},
            marks={p.symbol: p.mark for p in portfolio.positions if p.mark is not None},
            now=self.context.clock(),
        )

    async def warm_up(self) -> None:
        """Risk state, account and the signals still within their horizon, from the API."""
        api = self.context.api
        risk = await api.risk()
        self.engine.on_risk_state(market.RiskState(risk["state"]))
        await self.refresh_portfolio()
        since = self.context.clock() - timedelta(seconds=self.engine.config.half_life_seconds * 4)
        for signal in await api.signals(since=since, limit=1000):
            self.engine.on_signal(signal)

    # --- loops --------------------------------------------------------------------------

    async def events_loop(self, backoff: supervision.Backoff) -> None:
        names = self.context.names
        # Subscribe first, then read the state over HTTP, so nothing falls in between.
        async with self.context.bus.subscribe([names.risk, names.signals]) as subscription:
            await self.warm_up()
            backoff.reset()
            for symbol in self.context.universe.symbols:
                self.pending.put_nowait(symbol)
            while not self.context.stop.is_set():
                message = await subscription.get(0.25)
                if message is not None:
                    try:
                        self._on_event(message)
                    except ValueError as error:
                        logger.warning(
                            "bad event ignored", extra={"channel": message.channel, "error": str(error)[:300]}
                        )

    async def cadence_loop(self, backoff: supervision.Backoff) -> None:
        while not await supervision.sleep_or_stop(
            self.context.stop, self.context.settings.executor_decide_seconds
        ):
            for symbol in self.context.universe.symbols:
                self.pending.put_nowait(symbol)

    async def orders_loop(self, backoff: supervision.Backoff) -> None:
        ctx = self.context
        while not ctx.stop.is_set():
            try:
                symbol = await asyncio.wait_for(self.pending.get(), timeout=0.25)
            except TimeoutError:
                continue
            if self.engine.risk_state is market.RiskState.HALTED:
                continue
            now = ctx.clock()
            self._maybe_arbitrate(symbol)
            order = self.engine.decide(symbol, now)
            if order is None:
                continue
            if await self.send(order):
                backoff.reset()
                await self.refresh_portfolio()

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
            self.orders_sent += 1
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
