"""The executor (role ``executor``): the one agent that trades.

It keeps the latest signal from every analyst, the latest quote and the account, and on
each event decides per symbol: aggregate (:mod:`~sapphire.agents.aggregation`), size within
``spec.risk`` (:mod:`~sapphire.agents.sizing`), and produce one order with a deterministic
``client_order_id``. This module is the decision state; the I/O (bus, HTTP) lives in
:mod:`sapphire.agents.runtime`.

Determinism of order ids: the id hashes (agent, epoch, symbol, decision sequence). A retry
of the same decision after a network error resends the same id and body, so the trader
API returns the order it already has rather than trading twice. A restarted executor has a
new epoch (its start time), so its first decisions never collide with a previous run's.

LLM arbitration is advisory and off the fast path: when the votes on a symbol conflict,
the runtime may run :meth:`Executor.arbitrate` in the background under a strict timeout.
Its answer only scales future decisions for a while; :meth:`Executor.decide` never waits
for it. ``HALTED`` makes :meth:`decide` return nothing from the moment it is observed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pydantic

from sapphire.agents import aggregation, market, sizing
from sapphire.agents.llm import base as llm
from sapphire.domain.risk import NotionalLimits

logger = logging.getLogger(__name__)

REMEMBERED_ORDERS = 10_000
"""Orders whose booked fills are remembered, so a late fill message is not booked twice."""


@dataclass(frozen=True)
class Protection:
    """The legs attached to every order (``spec.risk``): a stop (fixed or trailing) and a
    take-profit, in basis points of the entry's average fill price. The trader API creates
    them when the order fills, for what it filled, in one OCO group (its ``attached``
    bracket); an order that only reduces a position gets none."""

    stop_loss_bps: Decimal | None = None
    take_profit_bps: Decimal | None = None
    trailing_stop_bps: Decimal | None = None

    def __post_init__(self) -> None:
        if self.stop_loss_bps is not None and self.trailing_stop_bps is not None:
            raise ValueError("stop_loss_bps and trailing_stop_bps are exclusive: one stop, fixed or trailing")

    def attached(self) -> dict[str, str] | None:
        """The ``attached`` field of an order body, or None when nothing is attached."""
        legs = {
            "stop_bps": self.stop_loss_bps,
            "trail_bps": self.trailing_stop_bps,
            "take_profit_bps": self.take_profit_bps,
        }
        given = {name: str(value) for name, value in legs.items() if value is not None}
        return given or None


@dataclass(frozen=True)
class ExecutorConfig:
    agent: str
    limits: NotionalLimits
    epoch: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f"))
    half_life_seconds: float = 120.0
    collar_bps: Decimal = Decimal(10)
    min_order_fraction: Decimal = Decimal("0.02")
    conflict_threshold: Decimal = Decimal("0.25")
    arbitration_timeout_seconds: float = 2.0
    arbitration_ttl: timedelta = timedelta(seconds=60)
    protection: Protection = field(default_factory=Protection)


@dataclass(frozen=True)
class OrderRequest:
    """One ``POST /v1/orders`` body and the decision behind it."""

    client_order_id: str
    plan: sizing.OrderPlan
    score: Decimal
    agent: str
    attached: dict[str, str] | None = None
    """The bracket legs (:meth:`Protection.attached`)."""

    def to_request(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "client_order_id": self.client_order_id,
            "symbol": self.plan.symbol,
            "side": self.plan.side,
            "type": "limit",
            "quantity": str(self.plan.quantity),
            "limit_price": str(self.plan.limit_price),
            "time_in_force": "ioc",
            "agent": self.agent,
        }
        if self.attached is not None:
            body["attached"] = self.attached
        return body


class Arbitration(pydantic.BaseModel):
    """What the arbitration model must answer."""

    stance: Literal["follow", "reduce", "stand_aside"]
    scale: float = pydantic.Field(ge=0, le=1)
    rationale: str = pydantic.Field(min_length=1, max_length=1000)


ARBITRATION_PROMPT = (
    "You arbitrate conflicting signals for an execution desk. Given the votes on one symbol, "
    "answer one JSON object: stance (follow, reduce or stand_aside), scale (0..1, how much of the "
    "aggregated position to keep) and a one-sentence rationale."
)


@dataclass
class _Override:
    scale: Decimal
    until: datetime
    rationale: str


def client_order_id(*, agent: str, epoch: str, symbol: str, sequence: int) -> str:
    """Deterministic and unique per decision; short enough for any venue's id field."""
    digest = hashlib.sha256(f"{agent}|{epoch}|{symbol}|{sequence}".encode()).hexdigest()[:24]
    return f"sx-{digest}"


class Executor:
    """Decision state of the execution agent. Synchronous and free of I/O."""

    def __init__(self, config: ExecutorConfig, *, arbiter: llm.StructuredModel | None = None) -> None:
        self.config = config
        self.arbiter = arbiter
        self.risk_state = market.RiskState.ACTIVE
        self.instruments: dict[str, sizing.Instrument] = {}
        self.quotes: dict[str, market.Tick] = {}
        self.positions: dict[str, Decimal] = {}
        self.marks: dict[str, Decimal] = {}
        self.equity: Decimal | None = None
        self.cash: Decimal | None = None
        """Known once the account was read: fills then move it, and equity follows the marks."""
        self.day: date | None = None
        self.day_start_equity: Decimal | None = None
        self._booked: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        self._seen: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        """Per order id: the totals of its executions the fills channel carried."""
        """Per order id: (quantity, notional, fees) of its fills already booked, from the order's
        answer or from the fills channel, whichever came first: each fill is booked once."""
        self._signals: dict[str, dict[str, market.Signal]] = {}
        self._overrides: dict[str, _Override] = {}
        self._sequence = 0

    # --- events -------------------------------------------------------------------------

    def on_signal(self, signal: market.Signal) -> None:
        if signal.agent == self.config.agent:
            return
        by_agent = self._signals.setdefault(signal.symbol, {})
        seen = by_agent.get(signal.agent)
        if seen is None or signal.ts >= seen.ts:
            by_agent[signal.agent] = signal

    def on_tick(self, tick: market.Tick) -> None:
        self.quotes[tick.symbol] = tick
        if self.cash is not None and self.positions.get(tick.symbol):
            self.marks[tick.symbol] = tick.mid  # the API marks positions at the mid, too
            self._revalue()

    def on_risk_state(self, state: market.RiskState) -> None:
        if state is not self.risk_state:
            logger.warning("risk state changed", extra={"from": self.risk_state.value, "to": state.value})
        self.risk_state = state

    def on_instruments(self, instruments: Iterable[sizing.Instrument]) -> None:
        self.instruments = {i.symbol: i for i in instruments}

    def on_portfolio(
        self,
        *,
        equity: Decimal,
        positions: dict[str, Decimal],
        marks: dict[str, Decimal],
        now: datetime,
        cash: Decimal | None = None,
    ) -> None:
        """The account as the trader API reports it. With ``cash``, the executor keeps it up to
        date itself from then on (:meth:`on_order`, :meth:`on_fill`, the marks of ticks)."""
        self.equity = equity
        self.cash = cash
        self.positions = dict(positions)
        self.marks.update(marks)

    def on_day_start(self, day: date, equity: Decimal) -> None:
        """The daily-loss baseline: the API's own ``day_start_equity`` for ``day`` (UTC)."""
        self.day, self.day_start_equity = day, equity

    def on_order(
        self,
        order_id: str,
        *,
        symbol: str,
        side: str,
        filled: Decimal,
        average: Decimal | None,
        fees: Decimal,
    ) -> None:
        """An order as the API answered it: what it filled so far is booked (once)."""
        if filled <= 0 or average is None:
            return
        self._book(order_id, symbol, side, filled, filled * average, fees)

    def on_fill(
        self, order_id: str, *, symbol: str, side: str, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        """One execution from the fills channel (any order of the account: resting orders and
        bracket legs fill later, without an answer to carry it)."""
        known = self._seen.get(order_id, (Decimal(0), Decimal(0), Decimal(0)))
        seen = (known[0] + quantity, known[1] + quantity * price, known[2] + fee)
        self._seen[order_id] = seen
        self._book(order_id, symbol, side, *seen)

    def _book(
        self, order_id: str, symbol: str, side: str, quantity: Decimal, notional: Decimal, fees: Decimal
    ) -> None:
        """Bring the order's booked fills up to (quantity, notional, fees) in total."""
        booked = self._booked.get(order_id, (Decimal(0), Decimal(0), Decimal(0)))
        if quantity <= booked[0]:
            return
        self._booked[order_id] = (quantity, notional, fees)
        for remembered in (self._booked, self._seen):
            while len(remembered) > REMEMBERED_ORDERS:
                del remembered[next(iter(remembered))]  # the oldest: its fills are long booked
        sign = Decimal(1) if side == "buy" else Decimal(-1)
        self.positions[symbol] = self.positions.get(symbol, Decimal(0)) + sign * (quantity - booked[0])
        if self.cash is not None:
            self.cash -= sign * (notional - booked[1]) + (fees - booked[2])
            self._revalue()

    def _revalue(self) -> None:
        if self.cash is None:
            return
        held = (q * self.marks[s] for s, q in self.positions.items() if q and s in self.marks)
        self.equity = self.cash + sum(held, Decimal(0))

    # --- decisions ----------------------------------------------------------------------

    @property
    def daily_pnl(self) -> Decimal:
        if self.equity is None or self.day_start_equity is None:
            return Decimal(0)
        return self.equity - self.day_start_equity

    def consensus(self, symbol: str, now: datetime) -> aggregation.Consensus:
        return aggregation.aggregate(
            self._signals.get(symbol, {}).values(),
            symbol=symbol,
            now=now,
            half_life_seconds=self.config.half_life_seconds,
            exclude_agent=self.config.agent,
        )

    def _conservative_price(self, symbol: str) -> Decimal:
        quote = self.quotes.get(symbol)
        prices = [self.marks.get(symbol, Decimal(0))]
        if quote is not None:
            prices += [quote.ask, quote.last]
        return max(prices)

    def other_exposure(self, symbol: str) -> Decimal:
        return sum(
            (abs(qty) * self._conservative_price(s) for s, qty in self.positions.items() if s != symbol),
            Decimal(0),
        )

    def decide(self, symbol: str, now: datetime) -> OrderRequest | None:
        """The order to send for ``symbol`` now, or None. Never waits, never raises on missing data."""
        if self.risk_state is market.RiskState.HALTED or self.equity is None:
            return None
        instrument, quote = self.instruments.get(symbol), self.quotes.get(symbol)
        if instrument is None or quote is None:
            return None
        consensus = self.consensus(symbol, now)
        score = consensus.score
        override = self._overrides.get(symbol)
        if override is not None:
            if override.until > now:
                score *= override.scale
            else:
                del self._overrides[symbol]
        plan = sizing.plan_order(
            instrument=instrument,
            score=score,
            bid=quote.bid,
            ask=quote.ask,
            position=self.positions.get(symbol, Decimal(0)),
            other_exposure=self.other_exposure(symbol),
            limits=self.config.limits,
            daily_pnl=self.daily_pnl,
            risk_state=self.risk_state,
            collar_bps=self.config.collar_bps,
            min_order_fraction=self.config.min_order_fraction,
        )
        if plan is None:
            return None
        self._sequence += 1
        order_id = client_order_id(
            agent=self.config.agent, epoch=self.config.epoch, symbol=symbol, sequence=self._sequence
        )
        return OrderRequest(
            client_order_id=order_id,
            plan=plan,
            score=score,
            agent=self.config.agent,
            attached=self._attached(symbol, plan),
        )

    def _attached(self, symbol: str, plan: sizing.OrderPlan) -> dict[str, str] | None:
        """The bracket of an order that opens or grows a position; none for one that only
        reduces it (the API would attach nothing to it anyway: this keeps the body plain)."""
        held = self.positions.get(symbol, Decimal(0))
        sign = 1 if plan.side == "buy" else -1
        if held * sign < 0 and plan.quantity <= abs(held):
            return None
        return self.config.protection.attached()

    # --- arbitration (off the fast path) ------------------------------------------------

    def needs_arbitration(self, symbol: str, now: datetime) -> aggregation.Consensus | None:
        """The conflicted consensus worth asking the model about, or None."""
        if self.arbiter is None or self.risk_state is market.RiskState.HALTED:
            return None
        override = self._overrides.get(symbol)
        if override is not None and override.until > now:
            return None
        consensus = self.consensus(symbol, now)
        return consensus if consensus.conflict >= self.config.conflict_threshold else None

    async def arbitrate(self, consensus: aggregation.Consensus, now: datetime) -> Decimal | None:
        """Ask the model how much of a conflicted consensus to keep; remembered for ``arbitration_ttl``.

        The caller runs this as a background task; the model's own guard bounds it by
        ``timeout_seconds`` and it returns None (no override) on any failure.
        """
        if self.arbiter is None:
            return None
        votes = "\n".join(
            f"- {v.role}/{v.agent}: {v.direction.value} strength {v.strength} weight {v.weight}"
            for v in consensus.votes
        )
        answer = await self.arbiter.ask(
            system=ARBITRATION_PROMPT,
            prompt=(
                f"Symbol {consensus.symbol}: aggregated score {consensus.score}, "
                f"conflict {consensus.conflict}.\n"
                f"Votes:\n{votes}"
            ),
            schema=Arbitration,
        )
        if answer is None:
            return None
        scale = (
            Decimal(0)
            if answer.stance == "stand_aside"
            else Decimal(repr(answer.scale)).quantize(Decimal("0.01"))
        )
        if answer.stance == "follow":
            scale = Decimal(1)
        self._overrides[consensus.symbol] = _Override(
            scale, now + self.config.arbitration_ttl, answer.rationale
        )
        logger.info(
            "arbitration",
            extra={
                "symbol": consensus.symbol,
                "stance": answer.stance,
                "scale": str(scale),
                "why": answer.rationale,
            },
        )
        return scale
