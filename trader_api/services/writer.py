"""The account's writer: one per account across all API replicas, it owns the order engine.

**Election.** Each replica runs :meth:`Writer.run`. The one whose dedicated connection
holds the Postgres advisory lock (:func:`journal.try_lock`) bumps the fencing epoch
(:func:`journal.claim`), loads the engine from the tables and serves; the others are
followers that forward engine writes to it (``services/forwarding.py``) and try for the
lock again every ``writer_election_seconds``. A writer that dies frees the lock with its
connection, so a follower takes over within one election interval.

**Group commit.** Commands queue up while a batch is being committed; the next batch
takes all of them (up to ``writer_max_batch``), applies them to the engine in memory
(pure, no awaits), and journals their changes in one transaction on the lock-holding
connection, with the epoch checked. Only after the commit are the callers answered and
the events handed to the publisher: durable before visible.

**Fail stop.** If a batch cannot be committed (the database is down, the connection was
terminated, or another writer's epoch is in the account row) every caller of that batch
gets 503, the writer drops its engine (whose state was never persisted), gives up the
lock and the role, and runs for election again, which reloads from the tables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from sapphire import bus
from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, engine, records, venue
from sapphire.trader_api.services import batching, events
from sapphire.trader_api.services.market import quote_from_payload
from sapphire.trader_api.services.publisher import Publisher
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.storage import batches, journal

log = logging.getLogger(__name__)


class VenueLink(Protocol):
    """What the writer asks of a live venue (``services/ccxt_venue.CcxtVenue``)."""

    def check(self) -> None:
        """Raise (503) when the venue takes no new orders."""

    def dispatch(self, instructions: Iterable[records.Instruction]) -> None:
        """Send what a committed batch asks of the exchange."""


HISTORY_THINNING_SECONDS = 300.0
"""How often the writer thins the equity history (``journal.thin_equity_history``)."""


class Role(enum.StrEnum):
    STARTING = "starting"
    WRITER = "writer"
    FOLLOWER = "follower"


class NotWriterError(errors.UnavailableError):
    """This replica is not the writer (any more): the request is forwarded or retried."""

    def __init__(self, leader: str) -> None:
        super().__init__(
            "this replica is not the account's writer; retry (writes are forwarded to the writer)"
        )
        self.leader = leader


@dataclasses.dataclass
class _Pending:
    command: records.Command
    future: asyncio.Future[records.Result]


class Writer:
    def __init__(self, runtime: Runtime, publisher: Publisher) -> None:
        self.runtime, self.publisher = runtime, publisher
        settings = runtime.settings
        self.address = settings.advertise_address
        self.max_batch = settings.writer_max_batch
        self.election_seconds = settings.writer_election_seconds
        self.role = Role.STARTING
        self.last_publication = 0
        self._gauged_risk_state: domain.RiskState | None = None  # what the risk-state gauges show
        """The publisher's ticket of the last committed batch."""
        self.leader = ""
        """The writer's address as the account row gives it (this replica's own when writer)."""
        self.epoch = 0
        self.engine: engine.Engine | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._batches: batches.BatchConnection | None = None
        config = venue.VenueConfig(fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps)
        self.venue: engine.Venue = engine.PaperVenue(config)
        if settings.venue == "ccxt":
            from sapphire.trader_api.services import exchange  # ccxt is loaded only for a live venue

            native = exchange.native_protective(settings.venue_exchange)
            self.venue = engine.LiveVenue(config, native_types=native)
        self.venue_link: VenueLink | None = None
        """The live venue's I/O (``venue=ccxt``): it sends what committed batches ask of the exchange."""

    # The API's side --------------------------------------------------------------------

    async def submit(self, command: records.Command) -> records.Result:
        """Apply ``command`` and answer once its batch has committed.

        Raises the engine's errors (the command changed nothing), NotWriterError on a
        follower, and UnavailableError when the bus is down or the batch could not commit."""
        if self.role is not Role.WRITER:
            raise NotWriterError(self.leader)
        self.publisher.check()
        if self.venue_link is not None and isinstance(command, records.SubmitOrder):
            self.venue_link.check()  # 503 while the exchange is down
        future: asyncio.Future[records.Result] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(command, future))
        return await future

    # The loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run for election, serve while writer, step down on failure; forever."""
        while True:
            try:
                if await self.elect():
                    await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: step down, reload on the next election
                log.warning("the writer steps down: %s: %s", type(error).__name__, error)
                await self._step_down(error)
            await asyncio.sleep(self.election_seconds)

    async def thin_history(self) -> None:
        """Thin the equity history while this replica is the writer: once on becoming the
        writer (looking at everything, since points age while no writer runs), then every
        few minutes looking just past each age.

        Off the order path, on a pooled connection: a pass is idempotent, so one that a
        deposed writer runs, or one that fails (retried at the next period), does no harm."""
        window: timedelta | None = None
        while True:
            if self.role is not Role.WRITER:
                window = None
                await asyncio.sleep(self.election_seconds)
                continue
            try:
                database = self.runtime.database
                async with database.serialized(), database.engine.begin() as connection:
                    deleted = await journal.thin_equity_history(
                        connection, now=self.runtime.clock(), window=window
                    )
            except Exception as error:  # the next period retries
                log.warning("thinning the equity history failed: %s: %s", type(error).__name__, error)
            else:
                window = journal.THINNING_WINDOW
                if deleted:
                    log.info("thinned the equity history: %d points", deleted)
            await asyncio.sleep(HISTORY_THINNING_SECONDS)

    async def elect(self) -> bool:
        """One election attempt: True when this replica is now the writer with a loaded engine."""
        if self.role is Role.WRITER:
            return True
        database = self.runtime.database
        if self._batches is None:
            self._batches = await self._connect()
        if not await self._batches.try_lock():
            async with database.engine.connect() as connection:
                self.leader = await journal.writer_address(connection)
            self.role = Role.FOLLOWER
            return False
        async with database.engine.connect() as connection:
            self.epoch = await journal.claim(connection, address=self.address, now=self.runtime.clock())
            async with connection.begin():
                state = await journal.load(connection)
        state = dataclasses.replace(state, quotes=await self._latest_quotes(state))
        self.engine = engine.Engine(
            state, venue=self.venue, instruments=self.runtime.catalog.get, clock=self.runtime.clock
        )
        self.leader, self.role = self.address, Role.WRITER
        self.runtime.metrics.equity.set(float(state.account.portfolio.equity))  # a gauge is a float
        self._gauge_risk_state(state.account.risk_state)
        log.info(
            "this replica is the account's writer (epoch %d, %d open orders)",
            self.epoch,
            len(state.open_orders),
        )
        return True

    async def close(self) -> None:
        await self._step_down(errors.UnavailableError("the API is shutting down"))

    async def _connect(self) -> batches.BatchConnection:
        database = self.runtime.database
        if database.engine.dialect.name == "postgresql":
            return await batches.PostgresBatches.connect(database.url)
        return await batches.CoreBatches.connect(database.engine, serialized=database.serialized())

    async def _latest_quotes(self, state: records.EngineState) -> dict[str, domain.Quote]:
        """The latest quotes the bus holds, so orders need not wait for the next tick after a
        restart; staleness is checked as for any quote. Without the bus: none."""
        symbols = sorted(
            {i.symbol for i in self.runtime.settings.instruments}
            | set(state.account.portfolio.positions)
            | {o.symbol for o in state.open_orders}
        )
        names = self.runtime.names
        try:
            values = await self.runtime.bus.get_many([names.quote(s) for s in symbols])
        except bus.BusUnavailableError as error:
            log.warning("no latest quotes at start-up (bus unavailable: %s)", error)
            return {}
        return {s: quote_from_payload(v) for s, v in zip(symbols, values, strict=True) if v is not None}

    async def _serve(self) -> None:
        while True:
            first = await self._next_command()
            if first is None:
                await self._check_epoch()  # idle: notice a lost lock before the next order does
                continue
            await self._commit(await batching.gather(self._queue, [first], max_batch=self.max_batch))

    async def _next_command(self) -> _Pending | None:
        """The next queued command, or None after ``election_seconds`` without one.

        Not ``asyncio.wait_for``: it wraps the wait in a task of its own, once per batch."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            async with asyncio.timeout(self.election_seconds):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def _commit(self, batch: list[_Pending]) -> None:
        engine_, connection = self.engine, self._batches
        if engine_ is None or connection is None:
            raise RuntimeError("the writer serves without an engine")
        try:
            wanted: set[records.BarKey] = set()
            for pending in batch:
                if isinstance(pending.command, records.ApplyTicks):
                    wanted |= engine_.missing_bars(pending.command)
            if wanted:
                async with self.runtime.database.engine.connect() as reader:
                    engine_.prime_bars(await journal.load_bars(reader, wanted))
            outcomes: list[records.Result | errors.TraderApiError] = []
            for pending in batch:
                try:
                    outcomes.append(engine_.apply(pending.command))
                except errors.TraderApiError as error:
                    outcomes.append(error)
            changes = engine_.take_changes()
            started = time.perf_counter()
            await connection.write(changes, epoch=self.epoch)
        except BaseException as error:
            # Whatever failed (the bars' read, a bug in the engine, the commit), the batch's
            # callers, already off the queue, are answered before the writer steps down.
            refusal = errors.UnavailableError(
                f"the order engine could not persist this batch ({type(error).__name__}); nothing was "
                "written and the writer is reloading: retry"
            )
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(refusal)
            raise
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the caller went away; its command committed regardless
                continue
            if isinstance(outcome, errors.TraderApiError):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        self.runtime.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.runtime.metrics.batch_commands.observe(len(batch))
        self._count(batch, changes, outcomes)
        self.last_publication = self.publisher.enqueue(events.publication(changes, self.runtime.names))
        if changes.outbound and self.venue_link is not None:
            self.venue_link.dispatch(changes.outbound)  # committed: now the exchange may hear of it

    async def _check_epoch(self) -> None:
        if self._batches is None:
            return
        epoch = await self._batches.epoch()  # on the lock's connection: also proves it is alive
        if epoch != self.epoch:
            raise journal.FencedError(f"writer epoch {self.epoch} was replaced by {epoch}")

    async def _step_down(self, reason: BaseException) -> None:
        self.role, self.engine = Role.STARTING, None
        refusal = errors.UnavailableError(f"the order engine is restarting ({type(reason).__name__}): retry")
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(refusal)
        connection, self._batches = self._batches, None
        if connection is not None:
            await connection.close()  # closing the lock's connection releases the lock

    def _gauge_risk_state(self, current: domain.RiskState) -> None:
        for state in domain.RiskState:
            self.runtime.metrics.risk_state.labels(state.value).set(1 if state is current else 0)
        self._gauged_risk_state = current

    def _count(
        self,
        batch: list[_Pending],
        changes: records.Changes,
        outcomes: list[records.Result | errors.TraderApiError],
    ) -> None:
        metrics = self.runtime.metrics
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(pending.command, records.SubmitOrder):
                continue
            if isinstance(outcome, records.OrderAccepted) and outcome.created:
                metrics.orders.labels(outcome.order.status.value).inc()
            elif isinstance(outcome, records.OrderAccepted | records.OrderReplayed):
                metrics.orders.labels("replayed").inc()
            elif isinstance(outcome, errors.RiskRefusedError):
                metrics.orders.labels("refused").inc()
                metrics.risk_refusals.labels(outcome.rule).inc()
            elif isinstance(outcome, errors.ConflictError):
                metrics.orders.labels("conflict").inc()
        for fill in changes.fills:
            metrics.fills.labels(fill.symbol, fill.liquidity).inc()
        for symbol, count in changes.tick_counts.items():
            metrics.ticks.labels(symbol).inc(count)
        if changes.account is not None:
            if changes.account.risk_state is not self._gauged_risk_state:  # not every batch: it rarely moves
                self._gauge_risk_state(changes.account.risk_state)
            metrics.equity.set(float(changes.account.portfolio.equity))  # a gauge is a float
