"""The live venue's I/O: orders to a ccxt exchange, and its answers back to the engine.

The engine stays the one place where order state changes. It marks an order
``pending_new`` (or ``pending_cancel``) and leaves an instruction in its batch; once the
batch has committed, the writer hands the instructions here (:meth:`CcxtVenue.dispatch`).
This module sends them with ccxt (its rate limiter on) and turns every answer into an
engine command (:class:`records.VenueAccepted`, :class:`records.VenueFill` with the
exchange's trade id, :class:`records.VenueClosed`), which goes through the writer like any
other command: journaled before anything is acknowledged or published.

**Idempotency.** Each order goes out with its Sapphire id as the exchange's client order id
(``order.id.hex``: 32 characters, inside Binance's 36 and every exchange's character set).
After a network error or a timeout the order is first looked up by that id and only sent
again if the exchange does not have it, so a resubmission never opens a second order.

**Native protective orders.** A stop or take-profit the exchange holds (``Order.native``)
goes out with its trigger in ccxt's unified ``stopLossPrice``/``takeProfitPrice``; when an
answer shows it fired (a fill, or Binance's ``isWorking``), :class:`records.VenueTriggered`
says so before its fills; when the exchange refuses it as already triggered
(``OrderImmediatelyFillable``), :class:`records.VenueDeclined` hands it to the engine's emulation.

**Errors.** ``InsufficientFunds`` and other refusals -> ``rejected`` with the exchange's
reason; ``NetworkError``/``RequestTimeout`` -> retried with backoff (look up, then resend);
``ExchangeNotAvailable`` -> the venue is marked down: new orders get 503, the risk state
goes to ``REDUCING`` with the reason, and the order in flight keeps retrying until the
exchange answers again (then the risk state goes back to ``ACTIVE`` if the outage put it there).

**Polling and reconciliation.** Every ``venue_poll_seconds`` the open orders the engine
has at the venue are compared with the exchange's open orders; one that filled or closed
is fetched with its trades. At start (each time this replica becomes the writer) and every
``venue_reconcile_seconds`` a full reconciliation compares every open order, the recent
trades and the balances with the exchange. What differs is corrected from the exchange
(missed fills booked, orders the exchange closed closed, unsent orders sent) and reported:
a log line, ``sapphire_venue_reconciliation_differences_total{kind}`` and a message on the
bus channel ``<prefix>venue``. A difference worth more than ``venue_reduce_tolerance`` moves
the risk state to ``REDUCING``, beyond ``venue_halt_tolerance`` (or an open order at the
exchange that the engine never sent) to ``HALTED``, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt.async_support as ccxt

from sapphire import bus
from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, records, symbols, triggers
from sapphire.trader_api.services import exchange
from sapphire.trader_api.services.runtime import Runtime, dumps

if TYPE_CHECKING:
    from sapphire.trader_api.services.writer import Writer

log = logging.getLogger(__name__)

OUTAGE_REASON = "venue: exchange not available"
"""The risk reason an outage sets; only a risk state with this reason is lifted when it ends."""
BACKOFF_MAX_SECONDS = 10.0
RECENT_TRADES = timedelta(days=1)
"""How far back the first reconciliation reads the exchange's trades."""
TRADES_OVERLAP = timedelta(minutes=10)
"""A later one reads from this long before the previous comparison on: trades that were in
flight then are seen again, and the pages a busy account costs stay few."""
TRADE_PAGES = 50
"""Pages of trades read per market before a reconciliation calls the read incomplete."""
SNAPSHOT_ATTEMPTS = 3
"""Reads of trades, balance, trades again before reconciliation gives up comparing balances."""

CLOSED_STATUSES = {
    "canceled": (domain.OrderStatus.CANCELED, "canceled at the exchange"),
    "expired": (domain.OrderStatus.EXPIRED, "expired at the exchange"),
    "rejected": (domain.OrderStatus.REJECTED, "rejected by the exchange"),
}
"""ccxt's unified statuses of an order that closed without filling the rest."""


def client_id(order: records.Order) -> str:
    return order.id.hex


@dataclasses.dataclass(frozen=True)
class Difference:
    kind: str
    """``missed_fill``, ``closed_at_exchange``, ``unknown_at_exchange``, ``foreign_order``,
    ``foreign_trade``, ``balance`` (a base asset), ``cash`` (the cash asset)."""
    detail: str
    notional: Decimal
    """What it is worth in the quote currency (``halt`` differences count as beyond any tolerance)."""
    halt: bool = False


def reconciliation_report(found: Iterable[Difference]) -> str:
    """The message on ``<prefix>venue`` for one reconciliation's differences (read by
    ``sapphire notify``)."""
    return dumps({"kind": "reconciliation", "differences": [dataclasses.asdict(d) for d in found]})


@dataclasses.dataclass
class Snapshot:
    """The engine's books and the exchange's balance at one moment, with the trades it holds."""

    positions: dict[str, Decimal]
    """The engine's position per Sapphire symbol."""
    cash: Decimal
    booked: frozenset[str]
    """The exchange trade ids the engine had booked."""
    totals: dict[str, Decimal]
    """The exchange's total (free and locked) per asset."""
    trades: dict[str, list[Any]]
    """The exchange's recent trades per market: exactly those the balance includes."""
    owners: dict[str, records.Order | None]
    """Exchange order id -> the engine's order (``None``: foreign): those the engine knows
    the id of at the snapshot, then those resolved by asking the exchange."""


def _fired(answer: Any) -> tuple[bool, datetime | None]:
    """Whether the exchange's order has triggered, and since when if it says. ccxt does not
    unify it: a fill always tells; Binance's raw answer tells before any fill (``isWorking``,
    since ``workingTime``), which other exchanges' answers may lack."""
    info = answer.get("info") or {}
    if str(info.get("isWorking")).lower() == "true":
        since = None
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            millis = int(str(info.get("workingTime")))
            since = datetime.fromtimestamp(millis / 1000, UTC) if millis > 0 else None
        return True, since
    return exchange.decimal(answer.get("filled")) > 0, None


class NotComparedError(Exception):
    """The exchange's balance cannot be compared this time; the message says why."""


def _trade_ids(trades: list[Any]) -> set[str]:
    return {str(trade.get("id")) for trade in trades}


class CcxtVenue:
    def __init__(self, runtime: Runtime, writer: Writer) -> None:
        self.runtime, self.writer = runtime, writer
        settings = runtime.settings
        self.settings = settings
        self.symbols = symbols.SymbolMap(settings.ccxt_quote_currencies)
        self.cash_asset = exchange.cash_asset(settings)
        """The exchange's asset the engine's cash is held in (``USDT`` for ``USD``)."""
        self.exchange = exchange.build(
            settings, settings.venue_exchange, setting="venue_exchange", private=True
        )
        self.unavailable: str | None = None
        """Why the exchange is down (new orders get 503 meanwhile); ``None`` while it answers."""
        self._inflight: set[uuid.UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._markets_loaded = False
        self._reconciled_epoch = 0
        self.last_reconciliation: list[Difference] = []
        self._compared_at: datetime | None = None  # when the last balance comparison began

    # The writer's side ------------------------------------------------------------------

    def check(self) -> None:
        """Refuse new orders with 503 while the exchange is down."""
        if self.unavailable is not None:
            raise errors.UnavailableError(f"the exchange is not available: {self.unavailable}; retry later")

    def dispatch(self, instructions: Iterable[records.Instruction]) -> None:
        """Send what a committed batch asks of the exchange (each in its own task)."""
        for instruction in instructions:
            match instruction:
                case records.PlaceAtVenue(order):
                    self._send(order)
                case records.CancelAtVenue(order):
                    self._spawn(self.cancel(order), f"cancel {order.id}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.exchange.close()

    # The loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll open orders; reconcile in full on becoming the writer and periodically."""
        loop = asyncio.get_running_loop()
        next_full = 0.0
        while True:
            try:
                if self.writer.engine is not None:
                    if self.writer.epoch != self._reconciled_epoch or loop.time() >= next_full:
                        await self.reconcile()
                        self._reconciled_epoch = self.writer.epoch
                        next_full = loop.time() + self.settings.venue_reconcile_seconds
                    else:
                        await self.poll()
            except asyncio.CancelledError:
                raise
            except ccxt.ExchangeNotAvailable as error:
                await self._down(error)
            except (ccxt.BaseError, errors.TraderApiError) as error:  # the next round retries
                log.warning("venue: polling failed: %s", self._text(error))
            await asyncio.sleep(self.settings.venue_poll_seconds)

    # Orders -----------------------------------------------------------------------------

    def _send(self, order: records.Order) -> None:
        """Place ``order`` in its own task, unless it is on its way already. In flight from
        here on, so no poll or reconciliation acts on it meanwhile."""
        if order.id in self._inflight:
            return
        self._inflight.add(order.id)
        self._spawn(self.place(order), f"place {order.id}")

    async def place(self, order: records.Order) -> None:
        """Send ``order`` (through :meth:`_send`); on a network error look it up by its client
        id, then resend."""
        delay, attempts = self.settings.venue_retry_first_seconds, 0
        declined = False
        try:
            while True:
                try:
                    if attempts or self.unavailable is not None:
                        found = await self._lookup(order)
                        if found is not None:
                            await self._up()
                            await self._apply(order, found)
                            break
                        current = self._engine_order(order.id)
                        if current is None or current.status is not domain.OrderStatus.PENDING_NEW:
                            await self._submit(
                                records.VenueClosed(
                                    order.id,
                                    domain.OrderStatus.CANCELED,
                                    "canceled before it reached the exchange",
                                )
                            )
                            return
                    answer = await self._create(order)
                    await self._up()
                    await self._apply(order, answer)
                    break
                except ccxt.InsufficientFunds as error:
                    await self._reject(order, f"insufficient funds: {self._text(error)}")
                    return
                except ccxt.OrderImmediatelyFillable as error:
                    if not order.native:
                        await self._reject(order, self._text(error))
                        return
                    # Its trigger is already reached at the exchange (whose rule may read
                    # another price than the engine's touch): the engine emulates it instead.
                    reason = f"{self.settings.venue_exchange} would not hold it: {self._text(error)}"
                    await self._submit(records.VenueDeclined(order.id, reason))
                    declined = True
                    break
                except ccxt.ExchangeNotAvailable as error:
                    await self._down(error)
                    attempts += 1
                except ccxt.NetworkError as error:
                    attempts += 1
                    self.runtime.metrics.venue_retries.labels("place").inc()
                    if attempts >= self.settings.venue_retry_attempts:
                        log.warning(
                            "venue: order %s still unanswered after %d attempts (%s); reconciliation will "
                            "settle it",
                            order.id,
                            attempts,
                            self._text(error),
                        )
                        return
                except ccxt.BaseError as error:
                    await self._reject(order, self._text(error))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        finally:
            self._inflight.discard(order.id)
        current = self._engine_order(order.id)
        if current is not None and current.status is domain.OrderStatus.PENDING_CANCEL:
            await self.cancel(current)  # canceled while it was on its way
        elif declined and current is not None and current.status is domain.OrderStatus.PENDING_NEW:
            self._send(current)  # emulated and fired at once: its dispatch came while it was in flight

    async def cancel(self, order: records.Order) -> None:
        if order.id in self._inflight:
            return  # place() sends the cancel once the exchange has answered
        delay = self.settings.venue_retry_first_seconds
        for _ in range(self.settings.venue_retry_attempts):
            try:
                symbol = self.symbols.to_exchange(order.symbol)
                try:
                    answer = await self.exchange.cancel_order(
                        order.exchange_order_id, symbol, self._by_client_id(order)
                    )
                except (ccxt.OrderNotFound, ccxt.OperationRejected):
                    answer = await self._lookup(order)  # filled or closed meanwhile, or never placed
                    if answer is None:
                        await self._submit(
                            records.VenueClosed(
                                order.id,
                                domain.OrderStatus.CANCELED,
                                "canceled before it reached the exchange",
                            )
                        )
                        return
                await self._up()
                await self._apply(order, answer)
                return
            except ccxt.ExchangeNotAvailable as error:
                await self._down(error)
            except ccxt.NetworkError as error:
                self.runtime.metrics.venue_retries.labels("cancel").inc()
                log.info("venue: cancel of %s retried: %s", order.id, self._text(error))
            except ccxt.BaseError as error:
                log.warning("venue: cancel of %s failed: %s", order.id, self._text(error))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    async def poll(self) -> None:
        """Fetch the orders the exchange filled or closed since the last look."""
        engine = self.writer.engine
        if engine is None:
            return
        working = [o for o in engine.open_orders if o.at_venue and o.id not in self._inflight]
        for symbol in sorted({o.symbol for o in working}):
            opened = {
                str(answer.get("clientOrderId")): answer
                for answer in await self.exchange.fetch_open_orders(self.symbols.to_exchange(symbol))
            }
            for order in (o for o in working if o.symbol == symbol):
                seen = opened.get(client_id(order))
                if (
                    seen is not None
                    and exchange.decimal(seen.get("filled")) == order.filled_quantity
                    and (order.status is not domain.OrderStatus.PENDING_NEW)
                    and not (order.native and _fired(seen)[0])
                ):
                    continue
                answer = seen if seen is not None else await self._lookup(order)
                if answer is not None and order.id not in self._inflight:  # sent since: place() has it
                    await self._apply(order, answer)
        await self._up()

    # Reconciliation ---------------------------------------------------------------------

    async def reconcile(self) -> list[Difference]:
        """Compare open orders, recent trades and balances with the exchange; correct and report."""
        engine = self.writer.engine
        if engine is None:
            return []
        if not self._markets_loaded:
            await self.exchange.load_markets()
            self._markets_loaded = True
        found: list[Difference] = []
        for order in [o for o in engine.open_orders if o.at_venue and o.id not in self._inflight]:
            answer = await self._lookup(order)
            if order.id in self._inflight:
                continue  # sent while it was looked up: place() settles it
            if answer is None:
                if order.status is domain.OrderStatus.PENDING_NEW:
                    self._send(order)  # journaled, never sent
                    continue
                found.append(
                    Difference(
                        "unknown_at_exchange",
                        f"order {order.id} is unknown to the exchange",
                        self._notional(order.symbol, order.quantity - order.filled_quantity),
                    )
                )
                await self._submit(
                    records.VenueClosed(
                        order.id,
                        domain.OrderStatus.CANCELED,
                        "reconciliation: the exchange does not have this order",
                    )
                )
                continue
            before = order.filled_quantity
            await self._apply(order, answer)
            after = self._engine_order(order.id)
            if after is not None and after.filled_quantity != before:
                found.append(
                    Difference(
                        "missed_fill",
                        f"order {order.id}: fills the engine had missed booked",
                        self._notional(order.symbol, after.filled_quantity - before),
                    )
                )
        outside = await self._outside()
        found.extend(outside)
        self.last_reconciliation = found
        await self._report(found)
        await self._up()
        return found

    async def _outside(self) -> list[Difference]:
        """What the exchange holds that the engine does not: foreign orders and trades, balances."""
        engine = self.writer.engine
        if engine is None:
            return []
        found: list[Difference] = []
        traded = (
            {o.symbol for o in engine.open_orders}
            | set(engine.account.portfolio.positions)
            | {i.symbol for i in self.runtime.catalog.configured.values() if "-" in i.symbol}
        )
        markets = {
            symbol: market
            for symbol in sorted(traded)
            if (market := self.symbols.to_exchange(symbol)) in self.exchange.markets
        }
        for symbol, market in markets.items():
            for answer in await self.exchange.fetch_open_orders(market):
                # Looked up after the fetch: the engine journals an order before it is sent.
                if self._engine_order_of(answer) is None:
                    found.append(
                        Difference(
                            "foreign_order",
                            f"open order {answer.get('id')} ({answer.get('side')} {answer.get('amount')} "
                            f"{market}) at the exchange was not sent by Sapphire",
                            self._notional(symbol, exchange.decimal(answer.get("amount"))),
                            halt=True,
                        )
                    )
        try:
            view = await self._snapshot(markets)
        except NotComparedError as error:
            log.warning("venue reconciliation: balances not compared: %s", error)
            return found
        for symbol, market in markets.items():
            for trade in view.trades[market]:
                if await self._trade_owner(trade, market, view) is None:
                    found.append(
                        Difference(
                            "foreign_trade",
                            f"trade {trade.get('id')} of order {trade.get('order')} on {market} is not "
                            "the engine's",
                            exchange.decimal(trade.get("cost"))
                            or self._notional(symbol, exchange.decimal(trade.get("amount"))),
                        )
                    )
        found.extend(await self._balances(markets, view))
        return found

    async def _snapshot(self, markets: dict[str, str]) -> Snapshot:
        """The engine's books and the exchange's balance, consistent with each other.

        The engine's side is read first, in one step (no await: no command lands halfway).
        The exchange's balance is read between two reads of its recent trades; when both
        reads agree, the balance holds exactly those trades, and those the engine had not
        booked yet (an answer still on its way, a fill the next poll brings) are what the
        balance is ahead of the engine by. :class:`NotComparedError` when trades keep arriving
        (after a few tries), or when there are more than the pages read.
        """
        started = self.runtime.clock()
        start = started - RECENT_TRADES
        if self._compared_at is not None:
            start = max(start, self._compared_at - TRADES_OVERLAP)
        since = int(start.timestamp() * 1000)
        for _ in range(SNAPSHOT_ATTEMPTS):
            engine = self.writer.engine
            if engine is None:
                raise NotComparedError("this replica is no longer the writer")
            portfolio = engine.account.portfolio
            positions = {symbol: portfolio.position(symbol).quantity for symbol in markets}
            known = (*engine.open_orders, *engine.recent.values())
            booked = frozenset(trade for order in known for trade in order.exchange_trades)
            before = {market: await self._trades_since(market, since) for market in markets.values()}
            balance = await self.exchange.fetch_balance()
            after = {market: await self._trades_since(market, since) for market in markets.values()}
            if all(_trade_ids(before[m]) == _trade_ids(after[m]) for m in markets.values()):
                totals = balance.get("total") or {}
                self._compared_at = started
                return Snapshot(
                    positions=positions,
                    cash=portfolio.cash,
                    booked=booked,
                    totals={str(asset): exchange.decimal(amount) for asset, amount in totals.items()},
                    trades=before,
                    owners={o.exchange_order_id: o for o in known if o.exchange_order_id},
                )
        raise NotComparedError("trades kept arriving while they were read")

    async def _trades_since(self, market: str, since: int) -> list[Any]:
        """Every trade of ``market`` from ``since`` (ms) on, page by page.

        An exchange answers one page, oldest first (Binance: 500 by default, 1000 at most),
        so a single read misses a busy account's newest trades: the very ones still in
        flight, which would show as a false difference. Each page starts at the newest
        timestamp of the last, not a millisecond after it (as ccxt's own ``paginate`` does),
        so trades that share a millisecond across a page boundary are not skipped; the
        repeats are dropped by trade id, and the read ends at a page with nothing new (one
        call more than the pages: a short page alone would not prove the end, since an
        exchange may cap a page below what ccxt asks for)."""
        limit = self._trade_page
        trades: dict[str, Any] = {}
        for _ in range(TRADE_PAGES):
            page = await self.exchange.fetch_my_trades(market, since, limit)
            fresh = [t for t in page if str(t.get("id")) not in trades]
            if not fresh:
                if len(page) >= limit:
                    raise NotComparedError(
                        f"{market}: more than {limit} trades in one millisecond; its trades cannot be paged"
                    )
                return sorted(trades.values(), key=lambda t: (int(t.get("timestamp") or 0), str(t.get("id"))))
            trades.update((str(t.get("id")), t) for t in fresh)
            since = max(int(t.get("timestamp") or 0) for t in page)
        raise NotComparedError(f"{market}: more than {TRADE_PAGES} pages of trades since the last comparison")

    @functools.cached_property
    def _trade_page(self) -> int:
        """The most trades one ``fetch_my_trades`` answers, as ccxt's features tell (else 500)."""
        features = (self.exchange.features or {}).get("spot") or {}
        return int((features.get("fetchMyTrades") or {}).get("limit") or 500)

    async def _trade_owner(self, trade: Any, market: str, view: Snapshot) -> records.Order | None:
        """The engine's order a trade at the exchange belongs to; ``None`` for a foreign trade.

        An order whose answer is still on its way has no exchange id in the engine yet: the
        exchange is asked for its client order id (once per order and reconciliation)."""
        exchange_id = str(trade.get("order"))
        if exchange_id not in view.owners:
            owner = None
            with contextlib.suppress(ccxt.OrderNotFound):
                owner = self._engine_order_of(await self.exchange.fetch_order(exchange_id, market))
            view.owners[exchange_id] = owner
        return view.owners[exchange_id]

    async def _balances(self, markets: dict[str, str], view: Snapshot) -> list[Difference]:
        """Each base asset against the engine's position, and the cash asset against its cash,
        the trades the engine has not booked yet counted as it will book them."""
        base_ahead: dict[str, Decimal] = {}
        cash_ahead = Decimal(0)
        for symbol, market in markets.items():
            _, quote = self.symbols.base_and_quote(symbol)
            for trade in view.trades[market]:
                owner = await self._trade_owner(trade, market, view)
                if owner is None or str(trade.get("id")) in view.booked:
                    continue  # foreign (reported as such, and as the balance it moved), or booked
                fill = self._fill(owner, str(trade.get("order")), trade)  # as the engine will book it
                sign = owner.side.sign
                base_ahead[symbol] = base_ahead.get(symbol, Decimal(0)) + sign * fill.quantity
                if quote == self.cash_asset:
                    cash_ahead -= sign * fill.quantity * fill.price + fill.fee
        found = []
        for symbol in markets:
            base, _ = self.symbols.base_and_quote(symbol)
            held = view.positions[symbol] + base_ahead.get(symbol, Decimal(0))
            at_exchange = view.totals.get(base, Decimal(0))
            if held != at_exchange:
                found.append(
                    Difference(
                        "balance",
                        f"{base}: the exchange holds {at_exchange}, the engine's {symbol} position is {held}",
                        self._notional(symbol, abs(at_exchange - held)),
                    )
                )
        cash = view.cash + cash_ahead
        at_exchange = view.totals.get(self.cash_asset, Decimal(0))
        if cash != at_exchange:
            found.append(
                Difference(
                    "cash",
                    f"{self.cash_asset}: the exchange holds {at_exchange}, the engine's cash is {cash}",
                    abs(at_exchange - cash).quantize(Decimal("0.01")),
                )
            )
        return found

    async def _report(self, found: list[Difference]) -> None:
        metrics = self.runtime.metrics
        for difference in found:
            metrics.venue_differences.labels(difference.kind).inc()
            log.warning(
                "venue reconciliation: %s: %s (worth %s)",
                difference.kind,
                difference.detail,
                difference.notional,
            )
        if found:
            with contextlib.suppress(bus.BusUnavailableError):
                await self.runtime.bus.publish(self.runtime.names.venue, reconciliation_report(found))
        worth = sum((d.notional for d in found), Decimal(0))
        engine = self.writer.engine
        if engine is None or not found:
            return
        summary = "; ".join(f"{d.kind}: {d.detail}" for d in found[:3])
        state = engine.account.risk_state
        if any(d.halt for d in found) or worth > self.settings.venue_halt_tolerance:
            if state is not domain.RiskState.HALTED:
                await self._submit(
                    records.SetRiskState(
                        domain.RiskState.HALTED, f"venue reconciliation: differences worth {worth}: {summary}"
                    )
                )
        elif worth > self.settings.venue_reduce_tolerance and state is domain.RiskState.ACTIVE:
            await self._submit(
                records.SetRiskState(
                    domain.RiskState.REDUCING, f"venue reconciliation: differences worth {worth}: {summary}"
                )
            )

    # Internals --------------------------------------------------------------------------

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"venue {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("venue: %s failed: %s", task.get_name(), self._text(task.exception()))

    def _text(self, error: BaseException | None) -> str:
        return exchange.scrub(f"{type(error).__name__}: {error}", self.settings)

    def _engine_order(self, order_id: uuid.UUID) -> records.Order | None:
        engine = self.writer.engine
        return None if engine is None else engine.order(order_id)

    def _engine_order_of(self, answer: Any) -> records.Order | None:
        """The engine's order an exchange order is (by its client order id), if any."""
        try:
            order_id = uuid.UUID(hex=str(answer.get("clientOrderId")))
        except ValueError:
            return None
        return self._engine_order(order_id)

    def _by_client_id(self, order: records.Order) -> dict[str, str]:
        return {} if order.exchange_order_id else {"origClientOrderId": client_id(order)}

    def _notional(self, symbol: str, quantity: Decimal) -> Decimal:
        engine = self.writer.engine
        quote = None if engine is None else engine.quotes.get(symbol)
        mark = quote.mid if quote is not None else Decimal(0)
        return (abs(quantity) * mark).quantize(Decimal("0.01"))

    async def _create(self, order: records.Order) -> Any:
        """Place the order as the venue works it (``Order.working``); a native protective
        order carries its trigger in ccxt's unified ``stopLossPrice`` / ``takeProfitPrice``."""
        working = order.working
        params: dict[str, str] = {"newClientOrderId": client_id(order), "clientOrderId": client_id(order)}
        if working.type is domain.OrderType.LIMIT:
            params["timeInForce"] = "IOC" if working.time_in_force is domain.TimeInForce.IOC else "GTC"
        if order.native and order.stop_price is not None:
            params[exchange.TRIGGER_PARAMS[order.type]] = format(order.stop_price, "f")
        return await self.exchange.create_order(
            self.symbols.to_exchange(order.symbol),
            working.type.value,
            order.side.value,
            format(working.remaining, "f"),
            None if working.limit_price is None else format(working.limit_price, "f"),
            params,
        )

    async def _lookup(self, order: records.Order) -> Any | None:
        """The exchange's view of ``order`` (by its id, else by its client id); ``None`` if unknown."""
        try:
            return await self.exchange.fetch_order(
                order.exchange_order_id, self.symbols.to_exchange(order.symbol), self._by_client_id(order)
            )
        except ccxt.OrderNotFound:
            return None

    async def _apply(self, order: records.Order, answer: Any) -> None:
        """Feed the exchange's view of one order to the engine: accepted, fills, closed."""
        exchange_id = str(answer.get("id"))
        current = self._engine_order(order.id) or order
        if current.status is domain.OrderStatus.PENDING_NEW or current.exchange_order_id is None:
            current = await self._order_of(
                await self._submit(records.VenueAccepted(order.id, exchange_id)), current
            )
        filled = exchange.decimal(answer.get("filled"))
        if current.native:
            fired, since = _fired(answer)
            if fired:
                reason = triggers.why_at_venue(
                    current.type, current.stop_price, venue=self.settings.venue_exchange, since=since
                )
                current = await self._order_of(
                    await self._submit(records.VenueTriggered(order.id, reason)), current
                )
        if filled > current.filled_quantity:
            trades = answer.get("trades") or []
            if (
                exchange.decimal(sum((exchange.decimal(t.get("amount")) for t in trades), Decimal(0)))
                < filled - current.filled_quantity
            ):
                trades = await self.exchange.fetch_my_trades(
                    self.symbols.to_exchange(order.symbol), None, None, {"orderId": exchange_id}
                )
            for trade in trades:
                if str(trade.get("order") or exchange_id) != exchange_id:
                    continue
                current = await self._order_of(
                    await self._submit(self._fill(current, exchange_id, trade)), current
                )
        closed = CLOSED_STATUSES.get(str(answer.get("status")))
        if closed is not None and current.status.is_open:
            await self._submit(records.VenueClosed(order.id, closed[0], closed[1]))

    def _fill(self, order: records.Order, exchange_id: str, trade: Any) -> records.VenueFill:
        price = exchange.decimal(trade.get("price"))
        fee = trade.get("fee") or {}
        base, quote = self.symbols.base_and_quote(order.symbol)
        cost = exchange.decimal(fee.get("cost"))
        if fee.get("currency") == base:
            cost *= price  # charged in the asset bought: its worth at the fill's price
        elif fee.get("currency") not in (None, quote):
            log.warning("venue: fee of trade %s in %s is not counted", trade.get("id"), fee.get("currency"))
            cost = Decimal(0)
        return records.VenueFill(
            order_id=order.id,
            trade_id=str(trade.get("id")),
            quantity=exchange.decimal(trade.get("amount")),
            price=price,
            fee=cost,
            liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker",
            exchange_order_id=exchange_id,
        )

    async def _order_of(self, result: records.Result | None, fallback: records.Order) -> records.Order:
        return result.order if isinstance(result, records.OrderAccepted) else fallback

    async def _submit(self, command: records.Command) -> records.Result | None:
        try:
            return await self.writer.submit(command)
        except errors.TraderApiError as error:  # not the writer, or restarting: reconciliation settles it
            log.warning("venue: %s not applied: %s", type(command).__name__, error)
            return None

    async def _reject(self, order: records.Order, reason: str) -> None:
        await self._submit(
            records.VenueClosed(
                order.id, domain.OrderStatus.REJECTED, f"rejected by {self.settings.venue_exchange}: {reason}"
            )
        )

    async def _down(self, error: BaseException) -> None:
        reason = self._text(error)
        self.runtime.metrics.venue_up.set(0)
        if self.unavailable is None:
            log.warning("venue: the exchange is not available: %s", reason)
        self.unavailable = reason
        engine = self.writer.engine
        if engine is not None and engine.account.risk_state is domain.RiskState.ACTIVE:
            await self._submit(records.SetRiskState(domain.RiskState.REDUCING, f"{OUTAGE_REASON}: {reason}"))

    async def _up(self) -> None:
        self.runtime.metrics.venue_up.set(1)
        if self.unavailable is None:
            return
        self.unavailable = None
        log.warning("venue: the exchange answers again")
        engine = self.writer.engine
        if (
            engine is not None
            and engine.account.risk_state is domain.RiskState.REDUCING
            and engine.account.risk_reason.startswith(OUTAGE_REASON)
        ):
            await self._submit(
                records.SetRiskState(domain.RiskState.ACTIVE, "venue: the exchange answers again")
            )
