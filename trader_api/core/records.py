"""What the order engine holds and what it says: order and fill records, the account, the
commands it applies, the results it answers, and the changes a batch of commands leaves
for the journal.

Every type here is a frozen value, so the journal and the event publisher can keep what
the engine handed them while the engine moves on.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from sapphire.trader_api.core import accounting, bars, domain, risk, venue

_R = TypeVar("_R")
_PLAIN: dict[type, frozenset[str]] = {}
"""The field names of each record class :func:`evolve` has checked."""


def _plain_fields(cls: type) -> frozenset[str]:
    names = _PLAIN.get(cls)
    if names is None:
        cached = [
            name
            for klass in cls.__mro__
            for name, member in vars(klass).items()
            if isinstance(member, functools.cached_property | accounting.computed_once)
        ]
        if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__") or cached:
            raise TypeError(
                f"{cls.__name__}: evolve takes a plain frozen dataclass (no __post_init__, no cache)"
            )
        names = _PLAIN[cls] = frozenset(field.name for field in dataclasses.fields(cls))
    return names


def evolve(record: _R, /, **changes: Any) -> _R:
    """``dataclasses.replace(record, **changes)`` for a plain frozen record, about ten times
    faster: the engine makes several new orders and accounts per command, and
    ``dataclasses.replace`` (every field through ``__init__``, each frozen one through
    ``object.__setattr__``) was a sixth of an order's cost. The new record is the old one's
    fields with ``changes`` over them; a name that is not a field is a TypeError, as there."""
    cls = type(record)
    names = _plain_fields(cls)
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - names)[0]!r}")
    new = object.__new__(cls)
    values = new.__dict__
    values.update(record.__dict__)
    values.update(changes)
    return new


@dataclasses.dataclass(frozen=True)
class Attached:
    """What a bracket entry attaches once it fills (``core/brackets.py``): a stop leg (a
    fixed ``stop_price``, ``stop_bps`` from the entry's average price, or a trailing stop by
    ``trail_amount`` or ``trail_bps``) and a take-profit leg (``take_profit_price`` or
    ``take_profit_bps``); at most one of each, at least one in all."""

    stop_price: Decimal | None = None
    stop_bps: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_bps: Decimal | None = None
    take_profit_price: Decimal | None = None
    take_profit_bps: Decimal | None = None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "stop_price",
        "stop_bps",
        "trail_amount",
        "trail_bps",
        "take_profit_price",
        "take_profit_bps",
    )

    def given(self) -> dict[str, Decimal]:
        """The fields that are set, by name (what the journal stores and the hash covers)."""
        return {name: value for name in self.FIELDS if (value := getattr(self, name)) is not None}


@dataclasses.dataclass(frozen=True)
class Order:
    id: uuid.UUID
    sequence: int
    """The account's intake number of the order (1, 2, ...): its time priority."""
    client_order_id: str
    request_hash: str
    symbol: str
    side: domain.Side
    type: domain.OrderType
    time_in_force: domain.TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    status: domain.OrderStatus
    filled_quantity: Decimal
    filled_notional: Decimal
    fees: Decimal
    agent: str | None
    reason: str
    created_at: datetime
    updated_at: datetime
    stop_price: Decimal | None = None
    """Protective orders: the trigger (a trailing stop's moves with the market)."""
    trail_amount: Decimal | None = None
    trail_bps: Decimal | None = None
    oco_group: str | None = None
    """Orders of one group cancel each other: the first fill of one cancels the rest."""
    triggered_at: datetime | None = None
    """When a protective order fired; it is then worked as :attr:`working` says."""
    attached: Attached | None = None
    """A bracket entry: the legs each of its fills attaches (``core/brackets.py``)."""
    parent_id: uuid.UUID | None = None
    """A bracket leg: the entry that attached it."""
    amendments: tuple[tuple[str, str], ...] = ()
    """The replace requests applied to the order, oldest first: (``client_order_id``,
    request hash), so that a repeated replace is answered rather than applied again."""
    exchange_order_id: str | None = None
    """A live venue's id of the order, once the exchange has answered."""
    exchange_trades: tuple[str, ...] = ()
    """The live venue's trade ids booked as fills of this order: a trade is booked once."""

    @property
    def at_venue(self) -> bool:
        """Sent to a live venue and not closed there: a cancel must be asked of the exchange."""
        return self.status in (
            domain.OrderStatus.PENDING_NEW,
            domain.OrderStatus.ACCEPTED,
            domain.OrderStatus.PARTIALLY_FILLED,
            domain.OrderStatus.PENDING_CANCEL,
        )

    @property
    def native(self) -> bool:
        """A protective order a live venue holds with its trigger (``Venue.native``): the
        exchange fires it, the engine's emulation never does, so it cannot fire twice."""
        return self.waiting and self.at_venue

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted price of the fills so far, ``None`` before the first."""
        return accounting.average_fill_price(self.filled_notional, self.filled_quantity)

    @property
    def waiting(self) -> bool:
        """A protective order whose trigger has not fired: the venue does not work it yet."""
        return self.type.is_protective and self.triggered_at is None

    @property
    def working(self) -> venue.WorkingOrder:
        """The order as the venue works it: a fired protective order is a market order, or
        a limit order for the ``*_limit`` types."""
        worked = self.type
        if worked.is_protective:
            worked = domain.OrderType.LIMIT if worked.takes_limit_price else domain.OrderType.MARKET
        return venue.WorkingOrder(
            symbol=self.symbol,
            side=self.side,
            type=worked,
            time_in_force=self.time_in_force,
            quantity=self.quantity,
            limit_price=self.limit_price,
            filled_quantity=self.filled_quantity,
            created_at=self.created_at,
        )


@dataclasses.dataclass(frozen=True)
class Fill:
    id: uuid.UUID
    order_id: uuid.UUID
    symbol: str
    side: domain.Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str
    realized_pnl: Decimal
    """Realized PnL this fill produced (gross of its fee): attributed to the order's agent."""
    agent: str | None
    ts: datetime
    exchange_trade_id: str | None = None
    """The live venue's id of the trade this fill books."""


@dataclasses.dataclass(frozen=True)
class Account:
    """The books and the risk state of the account, as one value."""

    portfolio: accounting.Portfolio
    initial_equity: Decimal
    watermarks: risk.Watermarks
    risk_state: domain.RiskState
    risk_reason: str
    limits: risk.RiskLimits
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class EquityPoint:
    """The account's books at one moment, for the equity history."""

    ts: datetime
    equity: Decimal
    cash: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal

    @classmethod
    def of(cls, portfolio: accounting.Portfolio, ts: datetime) -> EquityPoint:
        return cls(
            ts=ts,
            equity=portfolio.equity,
            cash=portfolio.cash,
            realized_pnl=portfolio.realized_pnl,
            unrealized_pnl=portfolio.unrealized_pnl,
            fees=portfolio.fees,
        )


@dataclasses.dataclass(frozen=True)
class EngineState:
    """Everything the engine starts from: what the journal loads after a restart."""

    account: Account
    open_orders: tuple[Order, ...]
    """Oldest first (time priority)."""
    idempotency: Mapping[str, tuple[str, uuid.UUID]]
    """``client_order_id`` -> (request hash, order id), for every order ever accepted."""
    sequence: int
    """The last event sequence number published for the account."""
    intakes: int
    """The highest order intake number so far."""
    quotes: Mapping[str, domain.Quote] = dataclasses.field(default_factory=dict)
    recent: tuple[Order, ...] = ()
    """The latest closed orders, oldest first, so that repeats after a restart need no read."""


# Commands ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SubmitOrder:
    client_order_id: str
    request_hash: str
    symbol: str
    side: domain.Side
    type: domain.OrderType
    quantity: Decimal
    limit_price: Decimal | None
    time_in_force: domain.TimeInForce
    agent: str | None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_bps: Decimal | None = None
    oco_group: str | None = None
    attached: Attached | None = None


@dataclasses.dataclass(frozen=True)
class CancelOrder:
    order_id: uuid.UUID


@dataclasses.dataclass(frozen=True)
class ReplaceOrder:
    """Amend an open order's prices or quantity in place (``None``: unchanged)."""

    order_id: uuid.UUID
    client_order_id: str
    """The replace request's own idempotency key, in the same index as submits'."""
    request_hash: str
    quantity: Decimal | None = None
    """The new total quantity, what already filled included."""
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_bps: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class ApplyTicks:
    quotes: tuple[domain.Quote, ...]
    """In arrival order."""

    series: bars.TickSeries = dataclasses.field(init=False, repr=False, compare=False)
    """The quotes by symbol: built once per batch, for the bars the shell loads first and
    for everything the engine takes from the ticks. Built with the command, not as a
    ``functools.cached_property``, whose lock costs as much as the series of a backtest's
    few quotes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "series", bars.TickSeries(self.quotes))


@dataclasses.dataclass(frozen=True)
class SetRiskState:
    state: domain.RiskState
    reason: str


@dataclasses.dataclass(frozen=True)
class SetLimits:
    changes: Mapping[str, Decimal]


@dataclasses.dataclass(frozen=True)
class VenueAccepted:
    """A live venue has the order, under its own id."""

    order_id: uuid.UUID
    exchange_order_id: str


@dataclasses.dataclass(frozen=True)
class VenueFill:
    """A live venue executed (part of) the order: trade ``trade_id``, booked at most once."""

    order_id: uuid.UUID
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    """In the quote currency."""
    liquidity: str
    exchange_order_id: str | None = None


@dataclasses.dataclass(frozen=True)
class VenueClosed:
    """A live venue closed the order without filling the rest: canceled, rejected or expired."""

    order_id: uuid.UUID
    status: domain.OrderStatus
    reason: str


@dataclasses.dataclass(frozen=True)
class VenueTriggered:
    """A live venue says the protective order it holds has fired (``reason``: as far as it tells)."""

    order_id: uuid.UUID
    reason: str


@dataclasses.dataclass(frozen=True)
class VenueDeclined:
    """A live venue would not hold the protective order with its trigger (the trigger was
    already reached at the exchange): the engine emulates it from here on."""

    order_id: uuid.UUID
    reason: str


VenueCommand = VenueAccepted | VenueFill | VenueClosed | VenueTriggered | VenueDeclined
"""The answers of a live venue, fed back to the engine by the venue's I/O (services/ccxt_venue.py)."""

Command = (
    SubmitOrder
    | CancelOrder
    | ReplaceOrder
    | ApplyTicks
    | SetRiskState
    | SetLimits
    | VenueAccepted
    | VenueFill
    | VenueClosed
    | VenueTriggered
    | VenueDeclined
)


@dataclasses.dataclass(frozen=True)
class PlaceAtVenue:
    """Send ``order`` (now ``pending_new``) to the live venue."""

    order: Order


@dataclasses.dataclass(frozen=True)
class CancelAtVenue:
    """Ask the live venue to cancel ``order`` (now ``pending_cancel``)."""

    order: Order


Instruction = PlaceAtVenue | CancelAtVenue
"""What a batch asks of a live venue; sent only after the batch committed."""


# Results -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OrderAccepted:
    order: Order
    created: bool
    """False when the command repeated an earlier ``client_order_id`` and body."""


@dataclasses.dataclass(frozen=True)
class OrderReplayed:
    """A repeat of an order the engine no longer holds in memory: the shell reads it."""

    order_id: uuid.UUID


@dataclasses.dataclass(frozen=True)
class TicksApplied:
    accepted: int


@dataclasses.dataclass(frozen=True)
class RiskChanged:
    account: Account


Result = OrderAccepted | OrderReplayed | TicksApplied | RiskChanged


# What a batch leaves behind --------------------------------------------------------------


EventKind = str
"""``order``, ``fill``, ``portfolio`` or ``risk``."""


@dataclasses.dataclass(frozen=True)
class Event:
    sequence: int
    kind: EventKind
    subject: Order | Fill | accounting.Portfolio | Account


BarKey = tuple[str, bars.Interval, datetime]


@dataclasses.dataclass
class Changes:
    """The effects of the commands applied since the last :meth:`Engine.take_changes`."""

    orders: dict[uuid.UUID, Order] = dataclasses.field(default_factory=dict)
    """The latest state of every order created or changed."""
    fills: list[Fill] = dataclasses.field(default_factory=list)
    positions: set[str] = dataclasses.field(default_factory=set)
    """Symbols whose position changed (fills or marks)."""
    bars: dict[BarKey, bars.Bar] = dataclasses.field(default_factory=dict)
    ticks: dict[str, domain.Quote] = dataclasses.field(default_factory=dict)
    """The newest tick of every symbol that ticked in the batch (by timestamp; on a tie the
    later arrival): what the batch publishes on the symbol's tick channel, one message per
    symbol per batch. Subscribers conflate: they need the latest quote, not every tick."""
    tick_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """How many ticks of each symbol the batch took (the metrics)."""
    quotes: dict[str, domain.Quote] = dataclasses.field(default_factory=dict)
    """The latest quote of every symbol that ticked, where it is newer than the one held."""
    events: list[Event] = dataclasses.field(default_factory=list)
    account: Account | None = None
    """The account after the batch (``None``: nothing was applied)."""
    equity_point: EquityPoint | None = None
    """The point of the equity history for the second the batch ran in, when it moved the books."""
    sequence: int = 0
    """The last sequence number the batch used."""
    outbound: list[Instruction] = dataclasses.field(default_factory=list)
    """Orders to send to, or cancel at, a live venue once the batch has committed."""
