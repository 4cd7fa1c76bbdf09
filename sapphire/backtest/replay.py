"""The replay loop: history through the agents' own classes, the executor and the order engine.

One coroutine, one thread, no I/O: no HTTP, no Redis, no sleep and no wall clock. The
same objects the pods run do the thinking:

* every analyst is :func:`sapphire.agents.analysts.build_analyst` of its TradingAgent's role,
  fed by ``observe`` and asked by ``assess`` (the calls :class:`~sapphire.agents.runtime.AnalystAgent`
  makes);
* the executor is :class:`sapphire.agents.executor.Executor` with the config
  :func:`sapphire.agents.trading.executor_config` derives from the same settings;
* its orders go through the API's own intake (:func:`sapphire.trader_api.wire.decode_order`,
  :func:`sapphire.trader_api.services.trading.submit_command`) into
  :class:`sapphire.trader_api.core.engine.Engine` with the :class:`PaperVenue` of the trader
  API's settings (``SAPPHIRE_FEE_BPS``, ``SAPPHIRE_SLIPPAGE_BPS``, ``SAPPHIRE_RISK``...).

The in-process bus is this loop's dispatch, in a fixed order per timestamp ``t``:

1. the clock moves to ``t`` (it only ever moves to the next event's time);
2. the engine applies the quotes of ``t`` (resting orders fill, marks move, limits halt);
3. every agent following a symbol observes its tick (an analyst never receives a later one);
4. analysts whose cadence (``spec.intervalSeconds``, on a grid from the first quote) has come
   assess their symbols at ``t``; each signal reaches the executor and the strategists;
5. the executor, which has just read the account, decides each symbol that got a signal,
   and every symbol once per ``executor_decide_seconds``; each order is applied at ``t``;
6. the engine's changes of ``t`` (orders, fills) are taken as one batch, as the live writer
   takes the changes of a batch of commands.

Determinism: the engine's ids come from a counter and the executor's epoch is fixed, so
the same inputs give the same orders, fills and report.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import fastapi.exceptions
import msgspec

from sapphire.agents import analysts, executor, market, sizing, trading
from sapphire.agents import runtime as agent_runtime
from sapphire.agents.llm import cache as llm_cache
from sapphire.agents.settings import AgentSettings, spec_settings
from sapphire.backtest import data
from sapphire.trader_api import errors, wire
from sapphire.trader_api.core import accounting, domain, engine, records, risk, venue
from sapphire.trader_api.services import runtime as api_runtime
from sapphire.trader_api.services import trading as api_trading
from sapphire.trader_api.settings import TraderApiSettings
from sapphire.up import plan as plan_module
from sapphire.up import setup

EPOCH = "backtest"
"""The executor's fixed epoch: its order ids repeat from run to run."""

AnalystFactory = Callable[..., analysts.Analyst]


@dataclasses.dataclass(frozen=True)
class ModelAnswers:
    """How agents with a ``spec.model`` are answered in a backtest: from ``cache``, and on a
    miss by the model itself (``call``, credentials from the ``SAPPHIRE_MODEL_*`` environment)
    or not at all (``abstain``: the analyst acts as on a failed call)."""

    cache: llm_cache.AnswerCache
    on_miss: llm_cache.OnMiss = "abstain"
    counts: llm_cache.CacheCounts = dataclasses.field(default_factory=llm_cache.CacheCounts)


class BacktestError(ValueError):
    """The backtest cannot run as asked; one line naming the cause."""


def api_settings() -> TraderApiSettings:
    """The trader API's settings from the environment: fees, slippage, initial cash, risk limits.

    Nothing is served, so no token is needed (``dev_mode`` only waives the secret check)."""
    return TraderApiSettings(dev_mode=True)


class SimulatedClock:
    """The injected clock: reads the time the loop has moved it to, never the wall clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass(frozen=True)
class Sample:
    ts: datetime
    equity: Decimal
    gross_exposure: Decimal
    mids: dict[str, Decimal]


@dataclasses.dataclass(frozen=True)
class Rejection:
    ts: datetime
    symbol: str
    rule: str
    message: str


@dataclasses.dataclass(repr=False)
class Recording:
    """What happened, for the report.

    Its repr is a summary: Python 3.11's ``asyncio.run`` formats the repr of the main task,
    result included, when it restores the SIGINT handler, and the dataclass repr of a long
    replay's every signal, order and fill cost more than a tenth of the replay."""

    samples: list[Sample] = dataclasses.field(default_factory=list)
    signals: list[market.Signal] = dataclasses.field(default_factory=list)
    orders: dict[uuid.UUID, records.Order] = dataclasses.field(default_factory=dict)
    fills: list[records.Fill] = dataclasses.field(default_factory=list)
    rejections: list[Rejection] = dataclasses.field(default_factory=list)
    risk_changes: list[tuple[datetime, str, str]] = dataclasses.field(default_factory=list)
    events: int = 0
    """Quotes replayed."""
    final_account: records.Account | None = None

    def __repr__(self) -> str:
        return (
            f"Recording(events={self.events}, samples={len(self.samples)}, signals={len(self.signals)}, "
            f"orders={len(self.orders)}, fills={len(self.fills)}, rejections={len(self.rejections)})"
        )


@dataclasses.dataclass
class _Scheduled:
    analyst: analysts.Analyst
    symbols: tuple[str, ...]
    interval: timedelta
    next_due: datetime


def _ids() -> Callable[[], uuid.UUID]:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=next(counter))


def _tick(quote: domain.Quote) -> market.Tick:
    # The quote is already validated (engine types): the struct takes it as it is.
    return market.Tick(
        symbol=quote.symbol, bid=quote.bid, ask=quote.ask, last=quote.last, size=quote.size, ts=quote.ts
    )


class Backtest:
    def __init__(
        self,
        plan: plan_module.Plan,
        history: data.History,
        settings: TraderApiSettings,
        *,
        sample_seconds: int = 60,
        analyst_factory: AnalystFactory = analysts.build_analyst,
        model_answers: ModelAnswers | None = None,
    ) -> None:
        self.plan = plan
        self.history = history
        self.settings = settings
        self.sample_seconds = sample_seconds
        self.model_answers = model_answers
        answered = {plan_module.model_not_called(a) for a in plan.agents if self._answers(a)}
        self.notices: list[str] = [n for n in plan.notices if n not in answered]
        symbols = history.symbols
        self.catalog = api_runtime.Catalog(
            settings.model_copy(update={"instruments": setup.instruments_for(symbols)})
        )
        start = history.quotes[0].ts
        self.clock = SimulatedClock(start)
        self.venue_config = venue.VenueConfig(fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps)
        limits = risk.RiskLimits(**settings.risk.model_dump())
        cash = settings.initial_cash
        account = records.Account(
            portfolio=accounting.Portfolio(cash=cash),
            initial_equity=cash,
            watermarks=risk.Watermarks(trading_day=start.date(), day_start_equity=cash, peak_equity=cash),
            risk_state=domain.RiskState.ACTIVE,
            risk_reason="",
            limits=limits,
            updated_at=start,
        )
        self.engine = engine.Engine(
            records.EngineState(account=account, open_orders=(), idempotency={}, sequence=0, intakes=0),
            venue=engine.PaperVenue(self.venue_config),
            instruments=self.catalog.get,
            clock=self.clock,
            new_id=_ids(),
            keep_bars=False,  # the history is bars already; the live API's bars are for its readers
        )
        self.scheduled: list[_Scheduled] = []
        self.strategists: list[analysts.Analyst] = []
        self.followers: dict[str, list[analysts.Analyst]] = {s: [] for s in symbols}
        self.executor: executor.Executor | None = None
        self.executor_symbols: tuple[str, ...] = ()
        self.decide_every = timedelta(seconds=1)
        executors = plan.executors
        if len(executors) > 1:
            names = ", ".join(a.name for a in executors)
            raise BacktestError(f"-f: one executor trades one account; found {len(executors)} ({names})")
        for agent in plan.agents:
            wanted = self._universe(agent, symbols)
            if agent.role == "executor":
                self._add_executor(agent, wanted)
                continue
            analyst = analyst_factory(agent.role, agent=agent.name, model=self._model(agent))
            self.scheduled.append(
                _Scheduled(analyst, wanted, timedelta(seconds=agent.interval_seconds), start)
            )
            for symbol in wanted:
                self.followers[symbol].append(analyst)
            if agent.role == "strategist":
                self.strategists.append(analyst)
        self.recording = Recording()
        self._risk_state = domain.RiskState.ACTIVE
        self._refreshed: records.Account | None = None
        """The account the executor was last told of."""

    def _answers(self, agent: plan_module.LocalAgent) -> bool:
        """Whether ``agent``'s model is answered (from the cache) rather than left out."""
        return self.model_answers is not None and agent.model is not None and agent.role != "executor"

    def _model(self, agent: plan_module.LocalAgent) -> llm_cache.CachedModel | None:
        answers = self.model_answers
        if answers is None or agent.model is None or not self._answers(agent):
            return None
        inner = None
        if answers.on_miss == "call":
            settings = AgentSettings(
                **spec_settings(name=agent.name, spec=agent.spec), REDIS_URL="memory://", dev_mode=True
            )
            try:
                inner = agent_runtime.build_model(settings, wait_for_slot=True)
            except ValueError as error:
                raise BacktestError(f"{agent.name}: spec.model: {error}") from None
        self.notices.append(
            f"{agent.name}: spec.model {agent.model} answers from the cache; a question not in it "
            + ("is asked of the model and stored" if inner is not None else "is an abstention")
        )
        return llm_cache.CachedModel(
            label=agent.model,
            cache=answers.cache,
            on_miss=answers.on_miss,
            inner=inner,
            counts=answers.counts,
        )

    def _universe(self, agent: plan_module.LocalAgent, symbols: Sequence[str]) -> tuple[str, ...]:
        if not agent.symbols:
            return tuple(symbols)
        missing = [s for s in agent.symbols if s not in symbols]
        if missing:
            self.notices.append(f"{agent.name}: no data for {', '.join(missing)}; those symbols stay idle")
        return tuple(s for s in agent.symbols if s in symbols)

    def _add_executor(self, agent: plan_module.LocalAgent, symbols: tuple[str, ...]) -> None:
        limits = agent.risk
        settings = AgentSettings(
            agent_name=agent.name,
            role=agent.role,
            symbols=list(symbols),
            REDIS_URL="memory://",
            dev_mode=True,  # no token: nothing is called
            model_provider="",
            risk_max_order_notional=limits.max_order_notional if limits else None,
            risk_max_position_notional=limits.max_position_notional if limits else None,
            risk_max_gross_exposure=limits.max_gross_exposure if limits else None,
            risk_max_daily_loss=limits.max_daily_loss if limits else None,
            risk_stop_loss_bps=limits.stop_loss_bps if limits else None,
            risk_take_profit_bps=limits.take_profit_bps if limits else None,
            risk_trailing_stop_bps=limits.trailing_stop_bps if limits else None,
        )
        self.executor = executor.Executor(trading.executor_config(settings, epoch=EPOCH))
        self.executor.on_instruments(
            sizing.Instrument(symbol=i.symbol, tick_size=i.tick_size, lot_size=i.lot_size)
            for i in (self.catalog.require(s, ["symbols"]) for s in symbols)
        )
        self.executor_symbols = symbols
        self.decide_every = timedelta(seconds=settings.executor_decide_seconds)

    # --- the loop -----------------------------------------------------------------------

    async def run(self, progress: Callable[[int], None] | None = None) -> Recording:
        """Replay every quote once; ``progress(n)`` is told how many quotes have been replayed."""
        # The history (millions of quotes for a year) lives as long as the replay: frozen, the
        # cyclic collector stops rescanning it on every full collection. Results do not change.
        gc.collect()
        gc.freeze()
        try:
            return await self._replay(progress)
        finally:
            gc.unfreeze()

    async def _replay(self, progress: Callable[[int], None] | None) -> Recording:
        rec = self.recording
        quotes = self.history.quotes
        opening = itertools.takewhile(lambda q: q.ts == quotes[0].ts, quotes)
        cash = self.engine.account.portfolio.equity
        rec.samples.append(Sample(quotes[0].ts, cash, Decimal(0), {q.symbol: q.mid for q in opening}))
        next_decision = quotes[0].ts
        bucket = self._bucket(quotes[0].ts)
        for ts, group in itertools.groupby(quotes, key=lambda q: q.ts):
            batch = tuple(group)
            if self._bucket(ts) != bucket:
                rec.samples.append(self._sample(self.clock.now))
                bucket = self._bucket(ts)
            self.clock.now = ts
            self._apply(records.ApplyTicks(batch))
            pending: set[str] = set()
            for quote in batch:
                tick = _tick(quote)
                for analyst in self.followers.get(quote.symbol, ()):
                    analyst.observe(tick)
                if self.executor is not None and quote.symbol in self.executor_symbols:
                    self.executor.on_tick(tick)
            for job in self.scheduled:
                if job.next_due <= ts:
                    pending.update(await self._assess(job, ts))
                    while job.next_due <= ts:
                        job.next_due += job.interval
            if ts >= next_decision:
                pending.update(self.executor_symbols)
                while next_decision <= ts:
                    next_decision += self.decide_every
            self._decide(pending, ts)
            self._collect()
            rec.events += len(batch)
            if progress is not None:
                progress(len(batch))
        rec.samples.append(self._sample(self.clock.now))
        rec.final_account = self.engine.account
        return rec

    def _bucket(self, ts: datetime) -> int:
        return int(ts.timestamp()) // self.sample_seconds

    def _sample(self, ts: datetime) -> Sample:
        portfolio = self.engine.account.portfolio
        mids = {symbol: quote.mid for symbol, quote in sorted(self.engine.quotes.items())}
        return Sample(ts=ts, equity=portfolio.equity, gross_exposure=portfolio.gross_exposure, mids=mids)

    async def _assess(self, job: _Scheduled, now: datetime) -> set[str]:
        signalled = set()
        for symbol in job.symbols:
            signal = await job.analyst.assess(symbol, now)
            if signal is None:
                continue
            self.recording.signals.append(signal)
            for strategist in self.strategists:
                strategist.observe_signal(signal)
            if self.executor is not None and symbol in self.executor_symbols:
                self.executor.on_signal(signal)
                signalled.add(symbol)
        return signalled

    def _decide(self, symbols: set[str], now: datetime) -> None:
        trader = self.executor
        if trader is None or not symbols:
            return
        for symbol in self.executor_symbols:
            if symbol not in symbols:
                continue
            self._refresh_portfolio(trader, now)
            order = trader.decide(symbol, now)
            if order is not None:
                self._submit(order, now)

    def _refresh_portfolio(self, trader: executor.Executor, now: datetime) -> None:
        account = self.engine.account
        if account is self._refreshed:
            return  # the executor already holds this account (the engine makes a new one on any change)
        self._refreshed = account
        portfolio = account.portfolio
        trader.on_day_start(account.watermarks.trading_day, account.watermarks.day_start_equity)
        trader.on_portfolio(
            equity=portfolio.equity,
            positions={s: p.quantity for s, p in portfolio.positions.items()},
            marks={s: p.mark for s, p in portfolio.positions.items()},
            now=now,
        )

    def _submit(self, order: executor.OrderRequest, now: datetime) -> None:
        """The order through the API's own decoding and intake checks, then the engine."""
        try:
            request = wire.decode_order(msgspec.json.encode(order.to_request()))
            self._apply(api_trading.submit_command(request, self.catalog))
        except errors.RiskRefusedError as error:
            self.recording.rejections.append(Rejection(now, order.plan.symbol, error.rule, str(error)))
        except (errors.TraderApiError, fastapi.exceptions.RequestValidationError) as error:
            # The API would answer 4xx; the live executor logs and moves on, and so does this.
            self.recording.rejections.append(Rejection(now, order.plan.symbol, "invalid", str(error)))

    def _apply(self, command: records.Command) -> None:
        self.engine.apply(command)
        state = self.engine.account.risk_state
        if state is not self._risk_state:
            self._risk_state = state
            self.recording.risk_changes.append((self.clock.now, state.value, self.engine.account.risk_reason))
            if self.executor is not None:
                self.executor.on_risk_state(market.RiskState(state.value))

    def _collect(self) -> None:
        """The effects of one timestamp's commands, taken as one batch (as the live writer
        takes a batch of commands): the orders in their latest state, the fills in order."""
        changes = self.engine.take_changes()
        self.recording.orders.update(changes.orders)
        self.recording.fills.extend(changes.fills)
