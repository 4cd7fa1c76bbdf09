"""The order engine: the one place where the state of an account's orders changes.

One engine holds one account in memory: cash and positions, open orders per symbol, the
idempotency index, the risk state and limits, the latest quotes and the open bars. A
command (:data:`records.Command`) is applied by :meth:`Engine.apply`, which is pure: it
does no I/O, never awaits, and reads time only from the injected clock, so the live API,
``sapphire up`` and a backtest on a simulated clock run the same decisions.

A command either succeeds, leaving its effects in :class:`records.Changes`, or raises a
:mod:`errors` exception and changes nothing. The I/O shell (``services/writer.py``) takes
the changes of a batch of commands, journals them in one transaction, and only then
answers the callers and publishes the events.

The paper venue's fill model (:mod:`venue`), the risk rules (:mod:`risk`) and the exact
accounting (:mod:`accounting`) plug in unchanged; :class:`Venue` is the seam a live venue
implements.
"""

from __future__ import annotations

import collections
import dataclasses
import decimal
import operator
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, bars, brackets, domain, risk, triggers, venue
from sapphire.trader_api.core.records import (
    Account,
    ApplyTicks,
    BarKey,
    CancelAtVenue,
    CancelOrder,
    Changes,
    Command,
    EngineState,
    EquityPoint,
    Event,
    Fill,
    Order,
    OrderAccepted,
    OrderReplayed,
    PlaceAtVenue,
    ReplaceOrder,
    Result,
    RiskChanged,
    SetLimits,
    SetRiskState,
    SubmitOrder,
    TicksApplied,
    VenueAccepted,
    VenueClosed,
    VenueDeclined,
    VenueFill,
    VenueTriggered,
    evolve,
)

RECENT_ORDERS = 50_000
"""Closed orders kept in memory to answer repeats without a database read."""
CANCEL_REQUESTED = "cancel requested: "
"""The reason of a ``pending_cancel`` order starts so; the rest is why it was canceled."""
EQUITY_POINT_SECONDS = 1
"""The equity history holds one point per second in which the books moved: the books as the
last batch of that second left them, stamped with the second's start. Its size is bounded
however busy the account is (the journal thins older points)."""


_TS_OF = operator.attrgetter("ts")


class Instrument(Protocol):
    @property
    def tick_size(self) -> Decimal: ...
    @property
    def lot_size(self) -> Decimal: ...


class Venue(Protocol):
    """Where orders execute. The paper venue decides at once; a live venue answers later:
    the engine marks the order ``pending_new`` and leaves a :class:`records.PlaceAtVenue` in
    the batch's changes, and the venue's I/O feeds the exchange's answers back as
    :data:`records.VenueCommand` commands."""

    @property
    def asynchronous(self) -> bool:
        """True for a live venue: orders are sent after the batch commits and answered later."""

    def on_arrival(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal
    ) -> venue.Arrival:
        """Fill, rest or cancel a new order against the current quote."""

    def on_tick(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, lot_size: Decimal
    ) -> venue.Execution | None:
        """The execution a resting order gets from one tick, if any."""

    def worst_price(self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal) -> Decimal:
        """The worst price the order can fill at on arrival, for the pre-trade checks."""

    def native(self, order_type: domain.OrderType) -> bool:
        """Whether the venue holds protective orders of this type itself, with their trigger:
        such an order is sent at once and fired by the exchange, not emulated."""


@dataclasses.dataclass(frozen=True)
class PaperVenue:
    """The built-in paper venue: :mod:`venue`'s deterministic fill model."""

    config: venue.VenueConfig

    @property
    def asynchronous(self) -> bool:
        return False

    def on_arrival(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal
    ) -> venue.Arrival:
        return venue.on_arrival(order, quote, config=self.config, tick_size=tick_size)

    def on_tick(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, lot_size: Decimal
    ) -> venue.Execution | None:
        return venue.on_tick(order, quote, config=self.config, lot_size=lot_size)

    def worst_price(self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal) -> Decimal:
        if order.limit_price is not None:
            return order.limit_price
        return venue.arrival_price(order, quote, config=self.config, tick_size=tick_size)

    def native(self, order_type: domain.OrderType) -> bool:
        return False  # the engine's emulation is the paper venue's trigger: a backtest replays it


@dataclasses.dataclass(frozen=True)
class LiveVenue:
    """A live exchange (``services/ccxt_venue.py`` does its I/O): every order goes out as
    ``pending_new`` and fills only when the exchange says so (:class:`records.VenueFill`).
    The pre-trade checks estimate a market order's price as the paper venue would (the
    touch moved by ``slippage_bps``): the exchange's real price is known only once it fills.

    ``native_types`` are the protective types the exchange holds with their trigger (read
    from ccxt's features by ``services/exchange.native_protective``); the others are emulated
    in the engine and sent as market or limit orders when they fire."""

    config: venue.VenueConfig
    native_types: frozenset[domain.OrderType] = frozenset()

    @property
    def asynchronous(self) -> bool:
        return True

    def on_arrival(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal
    ) -> venue.Arrival:
        return venue.Arrival(execution=None, status=domain.OrderStatus.PENDING_NEW)

    def on_tick(
        self, order: venue.WorkingOrder, quote: domain.Quote, *, lot_size: Decimal
    ) -> venue.Execution | None:
        return None

    def worst_price(self, order: venue.WorkingOrder, quote: domain.Quote, *, tick_size: Decimal) -> Decimal:
        if order.limit_price is not None:
            return order.limit_price
        return venue.arrival_price(order, quote, config=self.config, tick_size=tick_size)

    def native(self, order_type: domain.OrderType) -> bool:
        return order_type in self.native_types


def _allowed(refusal: risk.Refusal | None, quote: domain.Quote | None) -> domain.Quote:
    """Raise the risk rules' refusal; else the quote the order was checked against."""
    if refusal is not None:
        raise errors.RiskRefusedError(refusal.rule, refusal.message)
    if quote is None:  # the risk rules refuse without a quote; this narrows the type
        raise errors.RiskRefusedError("stale_quote", "no quote")
    return quote


def _amend_problem(order: Order, command: ReplaceOrder, instrument: Instrument) -> tuple[str, str] | None:
    """The field of a replace that ``order`` cannot take, and why."""
    kind = order.type.value
    if command.quantity is not None and not venue.is_multiple(command.quantity, instrument.lot_size):
        return "quantity", f"must be a multiple of the lot size {instrument.lot_size}"
    for name in ("limit_price", "stop_price", "trail_amount"):
        price = getattr(command, name)
        if price is not None and not venue.is_multiple(price, instrument.tick_size):
            return name, f"must be a multiple of the tick size {instrument.tick_size}"
    if command.quantity is not None and command.quantity <= order.filled_quantity:
        return "quantity", f"must be more than the {order.filled_quantity} already filled"
    if command.limit_price is not None and not order.type.takes_limit_price:
        return "limit_price", f"a {kind} order has no limit_price"
    if command.stop_price is not None:
        if not order.type.takes_stop_price:
            return "stop_price", f"a {kind} order has no stop_price to amend"
        if order.triggered_at is not None:
            return "stop_price", "the order has already fired"
    for name in ("trail_amount", "trail_bps"):
        if getattr(command, name) is not None and getattr(order, name) is None:
            return name, f"the order does not trail by {name}"
    return None


class Engine:
    def __init__(
        self,
        state: EngineState,
        *,
        venue: Venue,
        instruments: Callable[[str], Instrument | None],
        clock: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        keep_bars: bool = True,
    ) -> None:
        """``keep_bars=False``: ticks make no bars (a replay of history, whose bars are its input)."""
        self.account = state.account
        self.venue, self.instruments, self.clock, self.new_id = venue, instruments, clock, new_id
        self.open: dict[str, dict[uuid.UUID, Order]] = collections.defaultdict(dict)
        """Open orders per symbol, in time priority (dicts keep insertion order)."""
        self.pending: dict[tuple[str, domain.Side], Decimal] = {}
        """The open quantity (ordered, not yet filled) per symbol and side, kept by :meth:`_store`:
        the risk rules read it for every order, and summing the book each time cost more
        than the rest of the decision."""
        for order in state.open_orders:
            self.open[order.symbol][order.id] = order
            self._count_pending(order, 1)
        self.idempotency = dict(state.idempotency)
        self.recent: collections.OrderedDict[uuid.UUID, Order] = collections.OrderedDict(
            (order.id, order) for order in state.recent[-RECENT_ORDERS:]
        )
        self.quotes = dict(state.quotes)
        self.bars: dict[BarKey, bars.Bar] = {}
        self.keep_bars = keep_bars
        self.sequence = state.sequence
        self.intakes = state.intakes
        self.changes = Changes()
        self._portfolio_moved = False
        self._new_bars = False

    # The shell's side ------------------------------------------------------------------

    def take_changes(self) -> Changes:
        """The effects since the last call, for the journal; the engine starts a new batch.

        A batch whose commands moved the books ends with one ``portfolio`` event: the
        portfolio as the batch left it (one per batch, not one per command)."""
        if self._portfolio_moved:
            self._emit("portfolio", self.account.portfolio)
            self._portfolio_moved = False
            second = bars.floor_to(self.clock(), EQUITY_POINT_SECONDS)
            self.changes.equity_point = EquityPoint.of(self.account.portfolio, second)
        changes, self.changes = self.changes, Changes()
        changes.sequence = self.sequence
        # Only ticks (after prime_bars) add bars: an order batch has none to evict. And only a
        # bar of a new bucket since the last eviction can have made an older one closed.
        if changes.bars and self._new_bars:
            self._evict_closed_bars()
            self._new_bars = False
        return changes

    def missing_bars(self, command: ApplyTicks) -> set[BarKey]:
        """Bars the ticks fall in that the engine does not hold; the shell loads them first."""
        if not self.keep_bars:
            return set()
        keys = {
            (symbol, interval, datetime.fromtimestamp(epoch - epoch % interval.seconds, UTC))
            for symbol, epoch in command.series.seconds()  # per second, not per tick
            for interval in bars.Interval
        }
        return {key for key in keys if key not in self.bars}

    def prime_bars(self, loaded: Iterable[bars.Bar]) -> None:
        for bar in loaded:
            self.bars.setdefault((bar.symbol, bar.interval, bar.start), bar)
        self._new_bars = True

    def order(self, order_id: uuid.UUID) -> Order | None:
        """An open order, or a recently closed one."""
        for book in self.open.values():
            if order_id in book:
                return book[order_id]
        return self.recent.get(order_id)

    @property
    def open_orders(self) -> list[Order]:
        return [order for book in self.open.values() for order in book.values()]

    # Commands --------------------------------------------------------------------------

    def apply(self, command: Command) -> Result:
        """Apply one command; on an exception nothing has changed."""
        match command:
            case SubmitOrder():
                return self._submit(command)
            case CancelOrder():
                return self._cancel(command)
            case ReplaceOrder():
                return self._replace(command)
            case ApplyTicks():
                return self._ticks(command)
            case SetRiskState():
                return self._set_state(command)
            case SetLimits():
                return self._set_limits(command)
            case VenueAccepted():
                return self._venue_accepted(command)
            case VenueFill():
                return self._venue_fill(command)
            case VenueClosed():
                return self._venue_closed(command)
            case VenueTriggered():
                return self._venue_triggered(command)
            case VenueDeclined():
                return self._venue_declined(command)

    def _repeat(self, client_order_id: str, request_hash: str) -> OrderAccepted | OrderReplayed | None:
        """The answer to a repeated ``client_order_id`` (submit or replace: one index), or
        ``None`` when it is new; ConflictError when it came with a different body."""
        known = self.idempotency.get(client_order_id)
        if known is None:
            return None
        fingerprint, order_id = known
        if fingerprint != request_hash:
            raise errors.ConflictError(
                f"client_order_id {client_order_id!r} was already used for a different request"
            )
        order = self.order(order_id)
        return OrderReplayed(order_id) if order is None else OrderAccepted(order, created=False)

    def _submit(self, command: SubmitOrder) -> OrderAccepted | OrderReplayed:
        repeat = self._repeat(command.client_order_id, command.request_hash)
        if repeat is not None:
            return repeat
        instrument = self._instrument(command.symbol)
        now = self.clock()
        order = Order(
            id=self.new_id(),
            sequence=self.intakes + 1,
            client_order_id=command.client_order_id,
            request_hash=command.request_hash,
            symbol=command.symbol,
            side=command.side,
            type=command.type,
            time_in_force=command.time_in_force,
            quantity=command.quantity,
            limit_price=command.limit_price,
            status=domain.OrderStatus.NEW,
            filled_quantity=Decimal(0),
            filled_notional=Decimal(0),
            fees=Decimal(0),
            agent=command.agent,
            reason="",
            created_at=now,
            updated_at=now,
            stop_price=command.stop_price,
            trail_amount=command.trail_amount,
            trail_bps=command.trail_bps,
            oco_group=command.oco_group,
            attached=command.attached,
        )
        quote = self.quotes.get(command.symbol)
        if command.type.is_protective:
            return self._submit_protective(order, quote, instrument, now)
        working = order.working
        refusal = risk.check_order(
            intent=risk.OrderIntent(
                symbol=command.symbol,
                side=command.side,
                quantity=command.quantity,
                price=Decimal(0)
                if quote is None
                else self.venue.worst_price(working, quote, tick_size=instrument.tick_size),
                limit_price=command.limit_price,
                pending_same_side=self._pending(command.symbol, command.side),
            ),
            portfolio=self.account.portfolio,
            limits=self.account.limits,
            state=self.account.risk_state,
            quote=quote,
            now=now,
        )
        quote = self._admit(order, refusal, quote)
        arrival = self.venue.on_arrival(working, quote, tick_size=instrument.tick_size)
        order = evolve(
            order,
            status=arrival.status,
            reason="ioc: not marketable on arrival" if arrival.status is domain.OrderStatus.CANCELED else "",
        )
        portfolio_before = self.account.portfolio
        order = self._work(order, arrival.execution, quote, instrument, now)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        return OrderAccepted(order, created=True)

    def _work(
        self,
        order: Order,
        execution: venue.Execution | None,
        quote: domain.Quote,
        instrument: Instrument,
        now: datetime,
    ) -> Order:
        """Book an order's arrival (new or amended) and what its execution, if any, sets off."""
        if execution is not None:
            order = self._execute(order, execution, now)
        self._store(order)
        self._emit("order", order)
        self._send(order)
        self._cancel_group_of(order, now)
        self._attach(order, quote, instrument, now)
        return order

    def _admit(self, order: Order, refusal: risk.Refusal | None, quote: domain.Quote | None) -> domain.Quote:
        """Raise the risk rules' refusal, or take the order in (its intake number and its
        idempotency key): from here on the command succeeds and state changes begin."""
        quote = _allowed(refusal, quote)
        self.intakes = order.sequence
        self.idempotency[order.client_order_id] = (order.request_hash, order.id)
        return quote

    def _submit_protective(
        self, order: Order, quote: domain.Quote | None, instrument: Instrument, now: datetime
    ) -> OrderAccepted:
        """A stop, take-profit or trailing stop: it waits for its trigger, which the arrival
        quote may already fire (``core/triggers.py``)."""
        refusal = risk.check_protective(
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            portfolio=self.account.portfolio,
            limits=self.account.limits,
            quote=quote,
            now=now,
        )
        quote = self._admit(order, refusal, quote)
        portfolio_before = self.account.portfolio
        # An OCO group stays emulated: two exchange orders would lock the same coins twice, so the
        # second would be refused (an exchange's own OCO order list is not used yet).
        native = self.venue.native(order.type) and order.oco_group is None
        self._arm(order, quote, instrument, now, native=native)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        stored = self.order(order.id)
        return OrderAccepted(stored if stored is not None else order, created=True)

    def _replace(self, command: ReplaceOrder) -> OrderAccepted | OrderReplayed:
        """Amend an open order in place: same id, same fills, new prices or quantity. It is
        checked as a new order would be (the risk rules, with itself out of the pending
        quantity), loses its time priority, and is worked again against the current quote
        (an amended limit that now crosses fills; a protective order may now fire)."""
        repeat = self._repeat(command.client_order_id, command.request_hash)
        if repeat is not None:
            return repeat
        order = self._open_order(command.order_id, "amended")
        if self.venue.asynchronous and (order.native or not order.waiting):
            raise errors.ConflictError(
                f"order {order.id} is at a live venue, which cannot amend it in place: cancel it and "
                "submit a new order"
            )
        amended = evolve(
            order,
            quantity=order.quantity if command.quantity is None else command.quantity,
            limit_price=order.limit_price if command.limit_price is None else command.limit_price,
            stop_price=order.stop_price if command.stop_price is None else command.stop_price,
            trail_amount=order.trail_amount if command.trail_amount is None else command.trail_amount,
            trail_bps=order.trail_bps if command.trail_bps is None else command.trail_bps,
        )
        instrument = self._instrument(order.symbol)
        problem = _amend_problem(order, command, instrument)
        if problem is not None:
            raise errors.FieldError(["body", problem[0]], problem[1])
        now = self.clock()
        quote = self.quotes.get(order.symbol)
        remaining = amended.quantity - amended.filled_quantity
        if order.type.is_protective:
            refusal = risk.check_protective(
                symbol=order.symbol,
                side=order.side,
                quantity=remaining,
                portfolio=self.account.portfolio,
                limits=self.account.limits,
                quote=quote,
                now=now,
            )
        else:
            working = evolve(amended, filled_quantity=Decimal(0), quantity=remaining).working
            refusal = risk.check_order(
                intent=risk.OrderIntent(
                    symbol=order.symbol,
                    side=order.side,
                    quantity=remaining,
                    price=Decimal(0)
                    if quote is None
                    else self.venue.worst_price(working, quote, tick_size=instrument.tick_size),
                    limit_price=amended.limit_price,
                    pending_same_side=self._pending(order.symbol, order.side)
                    - (order.quantity - order.filled_quantity),
                ),
                portfolio=self.account.portfolio,
                limits=self.account.limits,
                state=self.account.risk_state,
                quote=quote,
                now=now,
            )
        quote = _allowed(refusal, quote)
        self.idempotency[command.client_order_id] = (command.request_hash, order.id)
        amended = evolve(
            amended,
            amendments=(*order.amendments, (command.client_order_id, command.request_hash)),
            reason=f"amended by {command.client_order_id}",
            updated_at=now,
        )
        self.open[order.symbol].pop(order.id)  # to the back of the queue, as on a venue
        self._count_pending(order, -1)  # _store counts the amended order afresh
        portfolio_before = self.account.portfolio
        if amended.waiting:
            self._arm(amended, quote, instrument, now, native=False)  # emulated it was, emulated it stays
        else:
            arrival = self.venue.on_arrival(amended.working, quote, tick_size=instrument.tick_size)
            amended = self._work(amended, arrival.execution, quote, instrument, now)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        stored = self.order(order.id)
        return OrderAccepted(stored if stored is not None else amended, created=True)

    def _open_order(self, order_id: uuid.UUID, verb: str) -> Order:
        order = self.order(order_id)
        if order is None:
            # Not open and not recent: it may exist, closed, but a closed order cannot be changed.
            raise errors.NotFoundError(f"order {order_id} not found or no longer open")
        if not order.status.is_open:
            raise errors.ConflictError(
                f"order {order_id} is {order.status.value}: only open orders can be {verb}"
            )
        return order

    def _cancel(self, command: CancelOrder) -> OrderAccepted:
        order = self._open_order(command.order_id, "canceled")
        now = self.clock()
        order = self._withdraw(order, "canceled by request", now)
        self._touch_account(now)
        return OrderAccepted(order, created=False)

    # A live venue's answers --------------------------------------------------------------

    def _known_order(self, order_id: uuid.UUID) -> Order:
        order = self.order(order_id)
        if order is None:
            raise errors.NotFoundError(f"order {order_id} not found among the open or recent orders")
        return order

    def _venue_accepted(self, command: VenueAccepted) -> OrderAccepted:
        order = self._known_order(command.order_id)
        if not order.status.is_open or (
            order.exchange_order_id == command.exchange_order_id
            and order.status is not domain.OrderStatus.PENDING_NEW
        ):
            return OrderAccepted(order, created=False)
        now = self.clock()
        status = (
            domain.OrderStatus.ACCEPTED if order.status is domain.OrderStatus.PENDING_NEW else order.status
        )
        order = evolve(order, status=status, exchange_order_id=command.exchange_order_id, updated_at=now)
        self._store(order)
        self._emit("order", order)
        self._touch_account(now)
        return OrderAccepted(order, created=False)

    def _venue_fill(self, command: VenueFill) -> OrderAccepted:
        """Book an execution the exchange reports, once per trade id. The exchange's truth: no
        fill-time risk guard (the trade has happened), and a fill of an order the engine has
        already closed (a cancel that lost the race) is booked all the same."""
        order = self._known_order(command.order_id)
        if command.trade_id in order.exchange_trades:
            return OrderAccepted(order, created=False)
        now = self.clock()
        execution = venue.Execution(
            quantity=command.quantity, price=command.price, fee=command.fee, liquidity=command.liquidity
        )
        portfolio_before = self.account.portfolio
        booked = self._book(order, execution, now, trade_id=command.trade_id)
        with decimal.localcontext(accounting.CONTEXT):
            if booked.filled_quantity >= booked.quantity:
                status = domain.OrderStatus.FILLED
            elif order.status in (domain.OrderStatus.PENDING_NEW, domain.OrderStatus.ACCEPTED):
                status = domain.OrderStatus.PARTIALLY_FILLED
            else:
                status = order.status  # partially filled, pending cancel, or already closed
        booked = evolve(
            booked,
            status=status,
            exchange_order_id=order.exchange_order_id or command.exchange_order_id,
            exchange_trades=(*order.exchange_trades, command.trade_id),
        )
        self._store(booked)
        self._emit("order", booked)
        self._cancel_group_of(booked, now)
        quote, instrument = self.quotes.get(booked.symbol), self.instruments(booked.symbol)
        if quote is not None and instrument is not None:
            self._attach(booked, quote, instrument, now)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        return OrderAccepted(booked, created=False)

    def _venue_closed(self, command: VenueClosed) -> OrderAccepted:
        order = self._known_order(command.order_id)
        if not order.status.is_open:
            return OrderAccepted(order, created=False)
        now = self.clock()
        reason = command.reason
        if (
            order.status is domain.OrderStatus.PENDING_CANCEL
            and command.status is domain.OrderStatus.CANCELED
        ):
            reason = order.reason.removeprefix(CANCEL_REQUESTED) or reason
        closed = self._close(order, command.status, reason, now)
        self._touch_account(now)
        return OrderAccepted(closed, created=False)

    def _venue_triggered(self, command: VenueTriggered) -> OrderAccepted:
        """The exchange fired a native protective order: it now works it (fills follow)."""
        order = self._known_order(command.order_id)
        if not order.native:  # fired already, or closed
            return OrderAccepted(order, created=False)
        now = self.clock()
        fired = evolve(order, triggered_at=now, reason=command.reason, updated_at=now)
        self._store(fired)
        self._emit("order", fired)
        self._touch_account(now)
        return OrderAccepted(fired, created=False)

    def _venue_declined(self, command: VenueDeclined) -> OrderAccepted:
        """The exchange would not hold a protective order with its trigger: the engine
        emulates it, and fires it at once if the current quote reaches it."""
        order = self._known_order(command.order_id)
        if not (order.native and order.status is domain.OrderStatus.PENDING_NEW):
            return OrderAccepted(order, created=False)
        now = self.clock()
        emulated = evolve(
            order,
            status=domain.OrderStatus.NEW,
            reason=f"{command.reason}; emulated in the engine",
            updated_at=now,
        )
        quote, instrument = self.quotes.get(order.symbol), self.instruments(order.symbol)
        portfolio_before = self.account.portfolio
        self._store(emulated)
        self._emit("order", emulated)
        if quote is not None and instrument is not None:
            self._watch(emulated, quote, instrument, now)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        stored = self.order(order.id)
        return OrderAccepted(stored if stored is not None else emulated, created=False)

    def _ticks(self, command: ApplyTicks) -> TicksApplied:
        now = self.clock()
        ticks, counts, quotes = self.changes.ticks, self.changes.tick_counts, self.quotes
        series = command.series
        for symbol, newest in series.newest.items():
            # What a tick at a time does (a tick replaces a quote no later than itself) comes
            # to the last of the batch's latest ticks, if it is no earlier than the quote.
            latest = quotes.get(symbol)
            if latest is None or newest.ts >= latest.ts:
                quotes[symbol] = newest
                self.changes.quotes[symbol] = newest
            published = ticks.get(symbol)
            if published is None or newest.ts >= published.ts:
                ticks[symbol] = newest
            counts[symbol] = counts.get(symbol, 0) + len(series.by_symbol[symbol])
        if self.keep_bars:
            self._add_to_bars(command)
        for order in self.open_orders:
            # Only a day order can expire: the time-in-force test first spares building the
            # working order of every resting order (bracket legs pile up) on every batch.
            if order.time_in_force is domain.TimeInForce.DAY and venue.day_expired(order.working, now):
                self._withdraw(order, "day order expired", now)
        portfolio_before = marked = self.account.portfolio
        # Only a symbol with resting orders or a position has anything to work or mark; a
        # fill of this batch is in one that had resting orders. A batch of thousands of
        # ticks of other symbols skips the sort and the loop.
        worked_or_held = {symbol for symbol, book in self.open.items() if book}.union(marked.positions)
        relevant = (
            [quote for quote in command.quotes if quote.symbol in worked_or_held] if worked_or_held else []
        )
        for quote in sorted(relevant, key=_TS_OF):
            instrument = self.instruments(quote.symbol)
            if instrument is None:
                continue
            book = self.open[quote.symbol]
            worked = bool(book)  # the book may be empty once its orders have filled
            if worked and marked is not self.account.portfolio:
                self._set_portfolio(marked)  # the orders below are worked against the marks so far
            for order_id in list(book):
                resting = book.get(order_id)
                if resting is None:  # canceled meanwhile by an OCO sibling's fill
                    continue
                if resting.waiting:
                    if not resting.native:  # a native one is the exchange's to fire
                        self._watch(resting, quote, instrument, now)
                    continue
                execution = self.venue.on_tick(resting.working, quote, lot_size=instrument.lot_size)
                if execution is not None:
                    executed = self._execute(resting, execution, now)
                    self._store(executed)
                    self._emit("order", executed)
                    self._cancel_group_of(executed, now)
                    self._attach(executed, quote, instrument, now)
            if worked:
                marked = self.account.portfolio  # the orders' fills may have moved it
            if quote.symbol not in marked.positions:  # nothing to mark: the mid is not worked out
                continue
            moved = accounting.mark_to_market(marked, quote.symbol, quote.mid)
            if moved is not marked:
                marked = moved
                self.changes.positions.add(quote.symbol)
        # The account takes the marks once per batch (not once per tick) unless an order needed them.
        if marked is not self.account.portfolio:
            self._set_portfolio(marked)
        self._after_books_change(now, changed=self.account.portfolio is not portfolio_before)
        return TicksApplied(len(command.quotes))

    def _set_state(self, command: SetRiskState) -> RiskChanged:
        now = self.clock()
        if (
            self.account.risk_state is domain.RiskState.HALTED
            and command.state is not domain.RiskState.HALTED
        ):
            # Re-base the loss monitors, so the loss that halted trading does not halt it again.
            equity = self.account.portfolio.equity
            self.account = evolve(
                self.account,
                watermarks=risk.Watermarks(
                    trading_day=now.date(), day_start_equity=equity, peak_equity=equity
                ),
            )
        self._change_state(command.state, command.reason, now)
        return RiskChanged(self.account)

    def _set_limits(self, command: SetLimits) -> RiskChanged:
        unknown = sorted(set(command.changes) - {field.name for field in dataclasses.fields(risk.RiskLimits)})
        if unknown:
            raise errors.FieldError(["body", unknown[0]], "is not a risk limit")
        now = self.clock()
        self.account = evolve(
            self.account, limits=dataclasses.replace(self.account.limits, **command.changes), updated_at=now
        )
        self._touch_account(now)
        self._emit("risk", self.account)
        return RiskChanged(self.account)

    # Internals -------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self.instruments(symbol)
        if instrument is None:
            raise errors.FieldError(["body", "symbol"], f"unknown instrument {symbol!r}")
        return instrument

    def _pending(self, symbol: str, side: domain.Side) -> Decimal:
        return self.pending.get((symbol, side), Decimal(0))

    def _count_pending(self, order: Order, sign: int) -> None:
        """Protective orders do not count: they only ever reduce the position (cut to it when
        they fire), so a stop resting beside a long must not make an order that trims the
        long look like one that flips it."""
        if order.type.is_protective:
            return
        with decimal.localcontext(accounting.CONTEXT):
            key = (order.symbol, order.side)
            left = self.pending.get(key, Decimal(0)) + sign * (order.quantity - order.filled_quantity)
            if left:
                self.pending[key] = left
            else:
                self.pending.pop(key, None)

    def _execute(self, order: Order, execution: venue.Execution, now: datetime) -> Order:
        """Book one execution, or close the order if the fill-time risk guard refuses it."""
        portfolio = self.account.portfolio
        refusal = risk.check_fill(
            portfolio=portfolio,
            limits=self.account.limits,
            state=self.account.risk_state,
            symbol=order.symbol,
            side=order.side,
            quantity=execution.quantity,
            price=execution.price,
            protective=order.type.is_protective,
        )
        if refusal is not None:
            status = (
                domain.OrderStatus.REJECTED if order.filled_quantity == 0 else domain.OrderStatus.CANCELED
            )
            reason = f"fill refused by risk rule {refusal.rule}: {refusal.message}"
            return evolve(order, status=status, reason=reason, updated_at=now)
        return self._book(order, execution, now)

    def _book(
        self, order: Order, execution: venue.Execution, now: datetime, *, trade_id: str | None = None
    ) -> Order:
        """Book one execution in the portfolio and as a fill; the order with it counted."""
        portfolio = self.account.portfolio
        before = portfolio.position(order.symbol).realized_pnl
        portfolio = accounting.apply_fill(
            portfolio,
            accounting.Fill(
                symbol=order.symbol,
                side=order.side,
                quantity=execution.quantity,
                price=execution.price,
                fee=execution.fee,
            ),
        )
        self._set_portfolio(portfolio)
        self.changes.positions.add(order.symbol)
        with decimal.localcontext(accounting.CONTEXT):
            filled = order.filled_quantity + execution.quantity
            order = evolve(
                order,
                filled_quantity=filled,
                filled_notional=order.filled_notional + execution.quantity * execution.price,
                fees=order.fees + execution.fee,
                status=venue.status_after(order.working, filled),
                updated_at=now,
            )
            realized = portfolio.position(order.symbol).realized_pnl - before
        fill = Fill(
            id=self.new_id(),
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            quantity=execution.quantity,
            price=execution.price,
            fee=execution.fee,
            liquidity=execution.liquidity,
            realized_pnl=realized,
            agent=order.agent,
            ts=now,
            exchange_trade_id=trade_id,
        )
        self.changes.fills.append(fill)
        self._emit("fill", fill)
        return order

    def _arm(
        self, order: Order, quote: domain.Quote, instrument: Instrument, now: datetime, *, native: bool
    ) -> None:
        """Store a protective order that waits for its trigger. When ``native`` and ``quote``
        does not fire it already, it goes to the live venue at once with its trigger
        (``pending_new``, sent after the commit), and the exchange fires it; otherwise the
        engine watches it (``_watch``), now and on every quote."""
        stop = order.stop_price
        if native and stop is not None and not triggers.fires(order.type, order.side, stop, quote):
            order = evolve(order, status=domain.OrderStatus.PENDING_NEW, updated_at=now)
            self._store(order)
            self._emit("order", order)
            self._send(order)
            return
        self._store(order)
        self._emit("order", order)
        self._watch(order, quote, instrument, now)

    def _watch(self, order: Order, quote: domain.Quote, instrument: Instrument, now: datetime) -> None:
        """Move a trailing stop, and fire a protective order whose trigger ``quote`` reaches."""
        stop = order.stop_price
        if order.type is domain.OrderType.TRAILING_STOP:
            stop = triggers.trailed_stop(
                order.side,
                quote,
                current=order.stop_price,
                trail_amount=order.trail_amount,
                trail_bps=order.trail_bps,
                tick_size=instrument.tick_size,
            )
        if stop is None:
            raise ValueError(f"order {order.id}: a {order.type.value} order without a stop_price")
        if not triggers.fires(order.type, order.side, stop, quote):
            if stop != order.stop_price:
                moved = evolve(order, stop_price=stop, updated_at=now)
                self._store(moved)
                self._emit("order", moved)
            return
        reason = triggers.why(order.type, order.side, stop, quote)
        fired = evolve(order, stop_price=stop, triggered_at=now, reason=reason, updated_at=now)
        # Reduce only: never more than the position left on the other side.
        held = self.account.portfolio.position(order.symbol).quantity
        available = max(Decimal(0), -order.side.sign * held)
        remaining = fired.quantity - fired.filled_quantity
        if available <= 0:
            self._close(fired, domain.OrderStatus.CANCELED, f"{reason}; no position left to reduce", now)
            return
        if available < remaining:
            fired = evolve(
                fired, quantity=fired.filled_quantity + available, reason=f"{reason}; reduced to the position"
            )
        arrival = self.venue.on_arrival(fired.working, quote, tick_size=instrument.tick_size)
        fired = evolve(fired, status=arrival.status)
        if arrival.execution is not None:
            fired = self._execute(evolve(fired, status=order.status), arrival.execution, now)
        self._store(fired)
        self._emit("order", fired)
        self._send(fired)
        self._cancel_group_of(fired, now)

    def _attach(self, entry: Order, quote: domain.Quote, instrument: Instrument, now: datetime) -> None:
        """A bracket entry has filled (some more): its legs now cover all of its fills
        (``core/brackets.py``). Legs still waiting follow the entry's new average price."""
        average = entry.average_price
        if entry.attached is None or average is None:
            return
        held = self.account.portfolio.position(entry.symbol).quantity
        quantity = brackets.protected_quantity(entry.side, filled=entry.filled_quantity, held=held)
        if quantity <= 0:
            return
        book = self.open[entry.symbol]
        for leg in brackets.legs(
            entry.side, entry.attached, average_price=average, tick_size=instrument.tick_size
        ):
            client_order_id = brackets.leg_client_order_id(entry.id, leg.name)
            known = self.idempotency.get(client_order_id)
            if known is None:
                self.intakes += 1
                order = Order(
                    id=self.new_id(),
                    sequence=self.intakes,
                    client_order_id=client_order_id,
                    request_hash=entry.request_hash,
                    symbol=entry.symbol,
                    side=domain.Side.SELL if entry.side is domain.Side.BUY else domain.Side.BUY,
                    type=leg.type,
                    time_in_force=domain.TimeInForce.GTC,
                    quantity=quantity,
                    limit_price=None,
                    status=domain.OrderStatus.NEW,
                    filled_quantity=Decimal(0),
                    filled_notional=Decimal(0),
                    fees=Decimal(0),
                    agent=entry.agent,
                    reason=f"bracket: {leg.name} leg of {entry.id}",
                    created_at=now,
                    updated_at=now,
                    stop_price=leg.stop_price,
                    trail_amount=leg.trail_amount,
                    trail_bps=leg.trail_bps,
                    oco_group=brackets.oco_group(entry.id),
                    parent_id=entry.id,
                )
                self.idempotency[client_order_id] = (order.request_hash, order.id)
            else:
                existing = book.get(known[1])
                if existing is None or not existing.waiting:
                    continue  # canceled, or fired and working its own quantity: left alone
                stop = (
                    leg.stop_price if leg.type is not domain.OrderType.TRAILING_STOP else existing.stop_price
                )
                if (existing.quantity, existing.stop_price) == (quantity, stop):
                    continue
                order = evolve(existing, quantity=quantity, stop_price=stop, updated_at=now)
            # Emulated, as every OCO group (see _submit): the engine fires one leg, and its
            # fill cancels the other before the exchange hears of it.
            self._arm(order, quote, instrument, now, native=False)

    def _cancel_group_of(self, order: Order, now: datetime) -> None:
        """One order of an OCO group has fired or filled (some or all of it): cancel the others;
        once a bracket leg has filled, cancel what its entry has not filled yet.

        The others go when the leg fires, not only when it fills: at a live venue the fired leg
        is an order in flight until the exchange fills it, and a sibling still armed meanwhile
        could fire too on the next quote and reduce the position twice."""
        if order.filled_quantity == 0 and order.triggered_at is None:
            return
        if order.parent_id is not None and order.filled_quantity > 0:
            entry = self.open[order.symbol].get(order.parent_id)
            if entry is not None:
                self._withdraw(entry, f"bracket: leg {order.id} filled, remainder canceled", now)
        if order.oco_group is None:
            return
        what = "filled" if order.filled_quantity > 0 else "fired"
        for other in self.open_orders:
            if other.oco_group == order.oco_group and other.id != order.id:
                self._withdraw(other, f"oco: {order.id} of group {order.oco_group} {what}", now)

    def _store(self, order: Order) -> None:
        """Record the order's new state in the open book or among the recent closed ones."""
        book = self.open[order.symbol]
        previous = book.get(order.id)
        if previous is not None:
            self._count_pending(previous, -1)
        if order.status.is_open:
            book[order.id] = order
            self._count_pending(order, 1)
        else:
            book.pop(order.id, None)
            self.recent[order.id] = order
            self.recent.move_to_end(order.id)
            while len(self.recent) > RECENT_ORDERS:
                self.recent.popitem(last=False)
        self.changes.orders[order.id] = order

    def _send(self, order: Order) -> None:
        """An order a live venue must now work: sent once the batch has committed."""
        if order.status is domain.OrderStatus.PENDING_NEW:
            self.changes.outbound.append(PlaceAtVenue(order))

    def _withdraw(self, order: Order, reason: str, now: datetime) -> Order:
        """Cancel an open order: at once on the paper venue (and for a protective order still
        waiting in the engine); at a live venue, ``pending_cancel`` until the exchange answers
        (it may fill meanwhile)."""
        if not (self.venue.asynchronous and order.at_venue):
            return self._close(order, domain.OrderStatus.CANCELED, reason, now)
        if order.status is domain.OrderStatus.PENDING_CANCEL:
            return order
        pending = evolve(
            order,
            status=domain.OrderStatus.PENDING_CANCEL,
            reason=f"{CANCEL_REQUESTED}{reason}",
            updated_at=now,
        )
        self._store(pending)
        self._emit("order", pending)
        self.changes.outbound.append(CancelAtVenue(pending))
        return pending

    def _close(self, order: Order, status: domain.OrderStatus, reason: str, now: datetime) -> Order:
        closed = evolve(order, status=status, reason=reason, updated_at=now)
        self._store(closed)
        self._emit("order", closed)
        return closed

    def _set_portfolio(self, portfolio: accounting.Portfolio) -> None:
        self.account = evolve(self.account, portfolio=portfolio)

    def _touch_account(self, now: datetime) -> None:
        self.account = evolve(self.account, updated_at=now)
        self.changes.account = self.account

    def _emit(self, kind: str, subject: Order | Fill | accounting.Portfolio | Account) -> None:
        self.sequence += 1
        self.changes.events.append(Event(self.sequence, kind, subject))

    def _after_books_change(self, now: datetime, *, changed: bool) -> None:
        """Move the watermarks and halt on a daily-loss or drawdown breach."""
        account = self.account
        equity = account.portfolio.equity
        marks = risk.roll_watermarks(account.watermarks, equity=equity, today=now.date())
        if changed:
            self._portfolio_moved = True
        if account.risk_state is not domain.RiskState.HALTED:
            reason = risk.breach(marks, equity=equity, limits=account.limits)
            if reason is not None:
                self.account = evolve(account, watermarks=marks)
                self._change_state(domain.RiskState.HALTED, f"auto: {reason}", now)
                self._touch_account(now)
                return
        # One copy of the account for both changes: this runs after every command and tick batch.
        self.account = evolve(account, watermarks=marks, updated_at=now)
        self.changes.account = self.account

    def _change_state(self, state: domain.RiskState, reason: str, now: datetime) -> None:
        self.account = evolve(self.account, risk_state=state, risk_reason=reason, updated_at=now)
        if state is domain.RiskState.HALTED:
            for order in self.open_orders:
                if order.type.is_protective:  # they only reduce positions: they keep protecting
                    continue
                self._withdraw(order, f"canceled: trading HALTED ({reason})", now)
        self._emit("risk", self.account)
        self._touch_account(now)

    def _add_to_bars(self, command: ApplyTicks) -> None:
        """Fold a batch of ticks into the bars: aggregated per bucket first (a batch of a
        thousand ticks of three symbols touches six bars) and merged into the held bars in
        the same step; each changed bar is written once per batch, as an upsert."""
        held = self.bars

        def held_bar(symbol: str, interval: bars.Interval, start: datetime) -> bars.Bar | None:
            return held.get((symbol, interval, start))

        folded = bars.aggregate_every_interval(command.series, held=held_bar)
        for key, merged in folded.items():
            if key not in held:
                self._new_bars = True
            held[key] = merged
            self.changes.bars[key] = merged

    def _evict_closed_bars(self) -> None:
        """Keep only the newest bar of each series: older buckets are reloaded if ticked again."""
        newest: dict[tuple[str, bars.Interval], datetime] = {}
        for symbol, interval, start in self.bars:
            series = (symbol, interval)
            if series not in newest or start > newest[series]:
                newest[series] = start
        for key in [key for key in self.bars if key[2] < newest[(key[0], key[1])]]:
            del self.bars[key]
