"""The fast dumps of orders, fills, portfolios and signals (``schemas/dump.py``) are the JSON the
pydantic models give for the same records: any decimal, any timestamp, any text."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from sapphire.trader_api.core import accounting, domain, records
from sapphire.trader_api.schemas import dump
from sapphire.trader_api.schemas.common import Amount, PublicModel
from sapphire.trader_api.schemas.orders import FillPublic, OrderPublic
from sapphire.trader_api.schemas.portfolio import PortfolioPublic, PositionPublic
from sapphire.trader_api.schemas.signals import Direction, SignalPublic
from sapphire.trader_api.services import events
from sapphire.trader_api.storage import signal_store

decimals = st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [Decimal("1E+5"), Decimal("-0.000001"), Decimal("0E-12"), Decimal("123.4500")]
)
stamps = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
texts = st.text(max_size=20)
agents = st.none() | texts

orders = st.builds(
    records.Order,
    id=st.uuids(),
    sequence=st.integers(0, 2**40),
    client_order_id=texts,
    request_hash=texts,
    symbol=texts,
    side=st.sampled_from(domain.Side),
    type=st.sampled_from(domain.OrderType),
    time_in_force=st.sampled_from(domain.TimeInForce),
    quantity=decimals,
    limit_price=st.none() | decimals,
    status=st.sampled_from(domain.OrderStatus),
    filled_quantity=decimals,
    filled_notional=decimals,
    fees=decimals,
    agent=agents,
    reason=texts,
    created_at=stamps,
    updated_at=stamps,
    stop_price=st.none() | decimals,
    attached=st.none()
    | st.builds(
        records.Attached,
        stop_bps=st.none() | decimals,
        trail_amount=st.none() | decimals,
        take_profit_price=st.none() | decimals,
    ),
    parent_id=st.none() | st.uuids(),
)
fills = st.builds(
    records.Fill,
    id=st.uuids(),
    order_id=st.uuids(),
    symbol=texts,
    side=st.sampled_from(domain.Side),
    quantity=decimals,
    price=decimals,
    fee=decimals,
    liquidity=texts,
    realized_pnl=decimals,
    agent=agents,
    ts=stamps,
)
small = st.decimals(min_value=-(10**9), max_value=10**9, places=6)
positions = st.builds(
    accounting.Position, symbol=texts, quantity=small, cost_basis=small, realized_pnl=small, mark=small
)
portfolios = st.builds(
    accounting.Portfolio,
    cash=small,
    fees=small,
    realized_pnl=small,
    positions=st.lists(positions, max_size=5).map(lambda ps: {p.symbol: p for p in ps}),
)


def fast(model: type[BaseModel], source: object) -> Any:
    return json.loads(dump.Dump.of(model).json(source))


@given(orders)
def test_an_order_dumps_as_its_model(order: records.Order) -> None:
    assert fast(OrderPublic, order) == OrderPublic.model_validate(order).model_dump(mode="json")


@given(fills)
def test_a_fill_dumps_as_its_model(fill: records.Fill) -> None:
    assert fast(FillPublic, fill) == FillPublic.model_validate(fill).model_dump(mode="json")


@given(portfolios)
def test_a_portfolio_dumps_as_its_model(portfolio: accounting.Portfolio) -> None:
    shown = [
        p
        for p in sorted(portfolio.positions.values(), key=lambda p: p.symbol)
        if p.quantity or p.realized_pnl
    ]
    reference = PortfolioPublic(
        cash=portfolio.cash,
        equity=portfolio.equity,
        realized_pnl=portfolio.realized_pnl,
        unrealized_pnl=portfolio.unrealized_pnl,
        fees=portfolio.fees,
        gross_exposure=portfolio.gross_exposure,
        positions=[PositionPublic.model_validate(p) for p in shown],
    ).model_dump(mode="json")
    assert json.loads(dump.encode(events.portfolio_data(portfolio))) == reference
    assert events.portfolio_public(portfolio).model_dump(mode="json") == reference


def test_a_decimal_field_without_its_serializer_is_refused() -> None:
    class Loose(PublicModel):
        exact: Amount
        loose: Decimal

    with pytest.raises(TypeError, match="loose"):
        dump.Dump(Loose)


signal_rows = st.builds(
    signal_store.SignalRow,
    id=st.uuids(),
    agent=texts,
    role=texts,
    symbol=texts,
    direction=st.sampled_from(Direction),
    strength=decimals,
    confidence=decimals,
    horizon_seconds=st.integers(min_value=1, max_value=31_536_000),
    rationale=st.text(max_size=40),
    model=st.none() | texts,
    ts=stamps,
    created_at=stamps,
)


@given(signal_rows)
def test_a_stored_signal_dumps_as_its_model(row: signal_store.SignalRow) -> None:
    assert fast(SignalPublic, row) == SignalPublic.model_validate(row).model_dump(mode="json")
