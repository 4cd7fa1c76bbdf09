"""Order intake, cancels and the paper venue's executions, against the locked books.

Every change to the books happens in one database transaction that first locks the
account row, so order intake, cancels and tick-driven fills are serialized across API
replicas, and an order is either fully recorded (order, fills, positions, cash, events)
or not at all.
"""

from __future__ import annotations

import decimal
import hashlib
import logging
import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain, risk, venue
from sapphire.trader_api.schemas.orders import FillPublic, OrderCreate, OrderPublic
from sapphire.trader_api.services import market, risk_control
from sapphire.trader_api.services.runtime import Outbox, Runtime
from sapphire.trader_api.storage import books, tables

log = logging.getLogger(__name__)


def request_hash(request: OrderCreate) -> str:
    """A fingerprint of the order body; equal decimals ("1.0" and "1") hash alike."""
    parts = []
    for name, value in sorted(request.model_dump().items()):
        shown = format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
        parts.append(f"{name}={shown}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def order_event(order: tables.Order) -> dict[str, object]:
    return OrderPublic.model_validate(order).model_dump(mode="json")


class TradingService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.market = market.MarketService(runtime)

    def venue_config(self) -> venue.VenueConfig:
        settings = self.runtime.settings
        return venue.VenueConfig(fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps)

    async def submit(self, request: OrderCreate) -> tuple[tables.Order, bool]:
        """Accept, fill or rest one order. Returns the order and whether it is new.

        Raises ConflictError on a reused ``client_order_id`` with a different body,
        RiskRefusedError when a risk rule refuses (nothing is stored), UnavailableError
        when Redis is down (before anything is written)."""
        runtime = self.runtime
        instrument = runtime.catalog.require(request.symbol, ["body", "symbol"])
        if not venue.is_multiple(request.quantity, instrument.lot_size):
            raise errors.FieldError(
                ["body", "quantity"], f"must be a multiple of the lot size {instrument.lot_size}"
            )
        if request.limit_price is not None and not venue.is_multiple(
            request.limit_price, instrument.tick_size
        ):
            raise errors.FieldError(
                ["body", "limit_price"], f"must be a multiple of the tick size {instrument.tick_size}"
            )
        fingerprint = request_hash(request)
        quote = await self.market.quote(request.symbol)
        outbox = runtime.outbox()
        async with runtime.database.write() as session:
            account = await books.account(session, lock=True)
            existing = await books.order_by_client_id(session, request.client_order_id)
            if existing is not None:
                if existing.request_hash != fingerprint:
                    runtime.metrics.orders.labels("conflict").inc()
                    raise errors.ConflictError(
                        f"client_order_id {request.client_order_id!r} was already used for a different order"
                    )
                runtime.metrics.orders.labels("replayed").inc()
                return existing, False
            now = runtime.clock()
            state = domain.RiskState(account.risk_state)
            limits = books.limits_from_json(account.risk_limits)
            portfolio = await books.portfolio(session, account)
            working = venue.WorkingOrder(
                symbol=request.symbol,
                side=request.side,
                type=request.type,
                time_in_force=request.time_in_force,
                quantity=request.quantity,
                limit_price=request.limit_price,
                created_at=now,
            )
            refusal = risk.check_order(
                intent=risk.OrderIntent(
                    symbol=request.symbol,
                    side=request.side,
                    quantity=request.quantity,
                    price=self._worst_price(working, quote, instrument.tick_size),
                    limit_price=request.limit_price,
                    pending_same_side=await self._pending(session, request.symbol, request.side),
                ),
                portfolio=portfolio,
                limits=limits,
                state=state,
                quote=quote,
                now=now,
            )
            if refusal is not None:
                runtime.metrics.orders.labels("refused").inc()
                runtime.metrics.risk_refusals.labels(refusal.rule).inc()
                raise errors.RiskRefusedError(refusal.rule, refusal.message)
            if quote is None:  # check_order refuses without a quote; this narrows the type
                raise errors.RiskRefusedError("stale_quote", "no quote")
            order = tables.Order(
                id=uuid.uuid4(),
                client_order_id=request.client_order_id,
                request_hash=fingerprint,
                symbol=request.symbol,
                side=request.side.value,
                type=request.type.value,
                time_in_force=request.time_in_force.value,
                quantity=request.quantity,
                limit_price=request.limit_price,
                status=domain.OrderStatus.NEW.value,
                filled_quantity=Decimal(0),
                filled_notional=Decimal(0),
                fees=Decimal(0),
                agent=request.agent,
                reason="",
                created_at=now,
                updated_at=now,
            )
            session.add(order)
            await session.flush()  # the order row must exist before its fills reference it
            arrival = venue.on_arrival(
                working, quote, config=self.venue_config(), tick_size=instrument.tick_size
            )
            order.status = arrival.status.value
            if arrival.status is domain.OrderStatus.CANCELED:
                order.reason = "ioc: not marketable on arrival"
            if arrival.execution is not None:
                portfolio = await self.execute(
                    session,
                    order,
                    arrival.execution,
                    portfolio=portfolio,
                    state=state,
                    limits=limits,
                    outbox=outbox,
                )
            await session.flush()
            outbox.event("order", order_event(order), channel=runtime.names.orders)
            await risk_control.after_books_change(
                runtime, session, account, portfolio, symbols=[request.symbol], outbox=outbox
            )
            await runtime.flush(outbox)
        runtime.metrics.orders.labels(order.status).inc()
        return order, True

    def _worst_price(
        self, order: venue.WorkingOrder, quote: domain.Quote | None, tick_size: Decimal
    ) -> Decimal:
        if order.limit_price is not None:
            return order.limit_price
        if quote is None:
            return Decimal(0)
        return venue.arrival_price(order, quote, config=self.venue_config(), tick_size=tick_size)

    async def _pending(self, session: AsyncSession, symbol: str, side: domain.Side) -> Decimal:
        pending = Decimal(0)
        for order in await books.open_orders(session, [symbol]):
            if order.side == side.value:
                pending += order.quantity - order.filled_quantity
        return pending

    async def execute(
        self,
        session: AsyncSession,
        order: tables.Order,
        execution: venue.Execution,
        *,
        portfolio: accounting.Portfolio,
        state: domain.RiskState,
        limits: risk.RiskLimits,
        outbox: Outbox,
    ) -> accounting.Portfolio:
        """Book one execution (or cancel the order if the fill-time risk guard refuses it)."""
        side = domain.Side(order.side)
        refusal = risk.check_fill(
            portfolio=portfolio,
            limits=limits,
            state=state,
            symbol=order.symbol,
            side=side,
            quantity=execution.quantity,
            price=execution.price,
        )
        now = self.runtime.clock()
        if refusal is not None:
            order.status = (
                domain.OrderStatus.REJECTED.value
                if order.filled_quantity == 0
                else domain.OrderStatus.CANCELED.value
            )
            order.reason = f"fill refused by risk rule {refusal.rule}: {refusal.message}"
            order.updated_at = now
            return portfolio
        fill = accounting.Fill(
            symbol=order.symbol,
            side=side,
            quantity=execution.quantity,
            price=execution.price,
            fee=execution.fee,
        )
        before = portfolio.position(order.symbol).realized_pnl
        portfolio = accounting.apply_fill(portfolio, fill)
        with decimal.localcontext(accounting.CONTEXT):
            order.filled_quantity += execution.quantity
            order.filled_notional += execution.quantity * execution.price
            order.fees += execution.fee
        order.status = venue.status_after(books.working(order), order.filled_quantity).value
        order.updated_at = now
        row = tables.Fill(
            id=uuid.uuid4(),
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            quantity=execution.quantity,
            price=execution.price,
            fee=execution.fee,
            liquidity=execution.liquidity,
            realized_pnl=portfolio.position(order.symbol).realized_pnl - before,
            agent=order.agent,
            ts=now,
        )
        session.add(row)
        self.runtime.metrics.fills.labels(order.symbol, execution.liquidity).inc()

        outbox.event(
            "fill", FillPublic.model_validate(row).model_dump(mode="json"), channel=self.runtime.names.fills
        )
        return portfolio

    async def cancel(self, order_id: uuid.UUID) -> tables.Order:
        runtime = self.runtime
        outbox = runtime.outbox()
        async with runtime.database.write() as session:
            await books.account(session, lock=True)
            order = await books.order_by_id(session, order_id)
            if order is None:
                raise errors.NotFoundError(f"order {order_id} not found")
            if not domain.OrderStatus(order.status).is_open:
                raise errors.ConflictError(
                    f"order {order_id} is {order.status}: only open orders can be canceled"
                )
            cancel_order(order, "canceled by request", runtime.clock())
            outbox.event("order", order_event(order), channel=runtime.names.orders)
            await runtime.flush(outbox)
        return order

    async def on_quotes(
        self, session: AsyncSession, quotes: list[domain.Quote], account: tables.Account, outbox: Outbox
    ) -> None:
        """Let ticks cross resting orders, expire day orders and mark positions (account locked)."""
        runtime = self.runtime
        state = domain.RiskState(account.risk_state)
        limits = books.limits_from_json(account.risk_limits)
        portfolio = await books.portfolio(session, account)
        symbols = sorted({quote.symbol for quote in quotes})
        resting = await books.open_orders(session, symbols)
        now = runtime.clock()
        for order in resting:
            if venue.day_expired(books.working(order), now):
                cancel_order(order, "day order expired", now)
                outbox.event("order", order_event(order), channel=runtime.names.orders)
        for quote in sorted(quotes, key=lambda q: q.ts):
            instrument = runtime.catalog.get(quote.symbol)
            if instrument is None:
                continue
            for order in resting:
                if order.symbol != quote.symbol or not domain.OrderStatus(order.status).is_open:
                    continue
                execution = venue.on_tick(
                    books.working(order), quote, config=self.venue_config(), lot_size=instrument.lot_size
                )
                if execution is None:
                    continue
                portfolio = await self.execute(
                    session, order, execution, portfolio=portfolio, state=state, limits=limits, outbox=outbox
                )
                outbox.event("order", order_event(order), channel=runtime.names.orders)
            portfolio = accounting.mark_to_market(portfolio, quote.symbol, quote.mid)
        await risk_control.after_books_change(
            runtime, session, account, portfolio, symbols=symbols, outbox=outbox
        )


def cancel_order(order: tables.Order, reason: str, now: datetime) -> None:
    order.status = domain.OrderStatus.CANCELED.value
    order.reason = reason
    order.updated_at = now


async def list_orders(
    session: AsyncSession, *, status: str | None, symbol: str | None, agent: str | None, limit: int
) -> list[tables.Order]:
    statement = sa.select(tables.Order)
    if status is not None:
        statement = statement.where(tables.Order.status == status)
    if symbol is not None:
        statement = statement.where(tables.Order.symbol == symbol)
    if agent is not None:
        statement = statement.where(tables.Order.agent == agent)
    statement = statement.order_by(tables.Order.created_at.desc(), tables.Order.id).limit(limit)
    return list((await session.execute(statement)).scalars().all())


async def list_fills(
    session: AsyncSession, *, order_id: uuid.UUID | None, symbol: str | None, agent: str | None, limit: int
) -> list[tables.Fill]:
    statement = sa.select(tables.Fill)
    if order_id is not None:
        statement = statement.where(tables.Fill.order_id == order_id)
    if symbol is not None:
        statement = statement.where(tables.Fill.symbol == symbol)
    if agent is not None:
        statement = statement.where(tables.Fill.agent == agent)
    statement = statement.order_by(tables.Fill.ts.desc(), tables.Fill.id).limit(limit)
    return list((await session.execute(statement)).scalars().all())
