"""The trading tables. The schema itself comes only from the alembic revisions in
``migrations/versions``; these mappings must match them (a test compares the two)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sapphire.trader_api.core import accounting
from sapphire.trader_api.storage.types import Money, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so a revision can drop exactly what an earlier one made."""

ACCOUNT_ID = "paper"
"""The paper venue's single account."""


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """Cash, fees, realized PnL, the loss watermarks and the risk state of the account.

    Only the account's writer (the order engine's journal) changes it, and each of its
    batches checks ``writer_epoch``: a deposed writer's batch updates no row and rolls back."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    cash: Mapped[Decimal] = mapped_column(Money())
    fees: Mapped[Decimal] = mapped_column(Money())
    realized_pnl: Mapped[Decimal] = mapped_column(Money())
    initial_equity: Mapped[Decimal] = mapped_column(Money())
    trading_day: Mapped[date] = mapped_column(sa.Date())
    day_start_equity: Mapped[Decimal] = mapped_column(Money())
    peak_equity: Mapped[Decimal] = mapped_column(Money())
    risk_state: Mapped[str] = mapped_column(sa.String(16))
    risk_reason: Mapped[str] = mapped_column(sa.Text(), default="")
    risk_limits: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    writer_epoch: Mapped[int] = mapped_column(sa.BigInteger(), server_default="0")
    """Bumped by each new writer; the fencing token every batch checks."""
    writer_address: Mapped[str] = mapped_column(sa.Text(), server_default="")
    """Where the current writer takes forwarded writes (``http://host:port``)."""
    event_sequence: Mapped[int] = mapped_column(sa.BigInteger(), server_default="0")
    """The last event sequence number the writer committed."""


class Position(Base):
    __tablename__ = "positions"

    symbol: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Money())
    cost_basis: Mapped[Decimal] = mapped_column(Money())
    realized_pnl: Mapped[Decimal] = mapped_column(Money())
    mark: Mapped[Decimal] = mapped_column(Money())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.Index("ix_orders_symbol_status", "symbol", "status"),
        sa.Index("ix_orders_agent_created_at", "agent", "created_at"),
        sa.Index("ix_orders_created_at", "created_at"),
        sa.Index("ix_orders_status_sequence", "status", "sequence"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    symbol: Mapped[str] = mapped_column(sa.String(32))
    side: Mapped[str] = mapped_column(sa.String(8))
    type: Mapped[str] = mapped_column(sa.String(32))
    time_in_force: Mapped[str] = mapped_column(sa.String(8))
    quantity: Mapped[Decimal] = mapped_column(Money())
    limit_price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    filled_quantity: Mapped[Decimal] = mapped_column(Money())
    filled_notional: Mapped[Decimal] = mapped_column(Money())
    fees: Mapped[Decimal] = mapped_column(Money())
    agent: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text(), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sequence: Mapped[int] = mapped_column(sa.BigInteger(), server_default="0")
    """The account's intake number of the order: its time priority."""
    stop_price: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    trail_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    trail_bps: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    oco_group: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    triggered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attached: Mapped[dict[str, str] | None] = mapped_column(sa.JSON(), nullable=True)
    """A bracket entry's legs (``records.Attached``), as decimal strings by field name."""
    parent_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid(), nullable=True)
    """A bracket leg: the entry that attached it."""
    amendments: Mapped[dict[str, str] | None] = mapped_column(sa.JSON(), nullable=True)
    """The replace requests applied to the order: their ``client_order_id`` -> request hash."""
    exchange_order_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    """A live venue's id of the order (``None`` on the paper venue, or before the exchange answered)."""
    exchange_trades: Mapped[list[str] | None] = mapped_column(sa.JSON(), nullable=True)
    """The live venue's trade ids booked as this order's fills: a trade is never booked twice."""

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted price of the fills so far, ``None`` before the first."""
        return accounting.average_fill_price(self.filled_notional, self.filled_quantity)


class Fill(Base):
    __tablename__ = "fills"
    __table_args__ = (
        sa.Index("ix_fills_order_id", "order_id"),
        sa.Index("ix_fills_agent_ts", "agent", "ts"),
        sa.Index("ix_fills_ts", "ts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(sa.String(32))
    side: Mapped[str] = mapped_column(sa.String(8))
    quantity: Mapped[Decimal] = mapped_column(Money())
    price: Mapped[Decimal] = mapped_column(Money())
    fee: Mapped[Decimal] = mapped_column(Money())
    liquidity: Mapped[str] = mapped_column(sa.String(8))
    realized_pnl: Mapped[Decimal] = mapped_column(Money())
    """Realized PnL this fill produced (gross of its fee): attributed to the order's agent."""
    agent: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())
    exchange_trade_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    """The live venue's id of the trade this fill books (``None`` on the paper venue)."""


class EquityPoint(Base):
    """The equity history: at most one point a second while the books change, thinned with age
    (``journal.thin_equity_history``)."""

    __tablename__ = "equity_points"

    ts: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    equity: Mapped[Decimal] = mapped_column(Money())
    cash: Mapped[Decimal] = mapped_column(Money())
    realized_pnl: Mapped[Decimal] = mapped_column(Money())
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money())
    fees: Mapped[Decimal] = mapped_column(Money())


class Bar(Base):
    __tablename__ = "bars"

    symbol: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(sa.String(4), primary_key=True)
    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    open: Mapped[Decimal] = mapped_column(Money())
    high: Mapped[Decimal] = mapped_column(Money())
    low: Mapped[Decimal] = mapped_column(Money())
    close: Mapped[Decimal] = mapped_column(Money())
    volume: Mapped[Decimal] = mapped_column(Money())
    open_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    close_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    trades: Mapped[int] = mapped_column(sa.Integer())


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (
        sa.Index("ix_signals_agent_created_at", "agent", "created_at"),
        sa.Index("ix_signals_symbol_created_at", "symbol", "created_at"),
        sa.Index("ix_signals_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    agent: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[str] = mapped_column(sa.String(32))
    symbol: Mapped[str] = mapped_column(sa.String(32))
    direction: Mapped[str] = mapped_column(sa.String(8))
    strength: Mapped[Decimal] = mapped_column(Money())
    confidence: Mapped[Decimal] = mapped_column(Money())
    horizon_seconds: Mapped[int] = mapped_column(sa.Integer())
    rationale: Mapped[str] = mapped_column(sa.Text())
    model: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())
    """When the analyst formed the signal (its own clock; the API's when it sent none)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Agent(Base):
    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    symbols: Mapped[list[str]] = mapped_column(sa.JSON())
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())
    model: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)


class Headline(Base):
    __tablename__ = "headlines"
    __table_args__ = (
        sa.Index("ix_headlines_symbol_ts", "symbol", "ts"),
        sa.Index("ix_headlines_ts", "ts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    symbol: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    text: Mapped[str] = mapped_column(sa.Text())
    source: Mapped[str] = mapped_column(sa.String(128))
    ts: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
