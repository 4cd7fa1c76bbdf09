"""Trading tables: account, positions, orders, fills, bars, signals, agents, headlines.

Revision ID: 0001
Revises:
Create Date: 2025-11-27

Decimals are NUMERIC on Postgres and canonical strings on SQLite (which has no decimal
type); see ``trader_api/storage/types.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric().with_variant(sa.String(64), "sqlite"), nullable=nullable)


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), nullable=False),
        _money("cash"),
        _money("fees"),
        _money("realized_pnl"),
        _money("initial_equity"),
        sa.Column("trading_day", sa.Date(), nullable=False),
        _money("day_start_equity"),
        _money("peak_equity"),
        sa.Column("risk_state", sa.String(16), nullable=False),
        sa.Column("risk_reason", sa.Text(), nullable=False),
        sa.Column("risk_limits", sa.JSON(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "positions",
        sa.Column("symbol", sa.String(32), nullable=False),
        _money("quantity"),
        _money("cost_basis"),
        _money("realized_pnl"),
        _money("mark"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_positions")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        _money("quantity"),
        _money("limit_price", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _money("filled_quantity"),
        _money("filled_notional"),
        _money("fees"),
        sa.Column("agent", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index("ix_orders_symbol_status", "orders", ["symbol", "status"])
    op.create_index("ix_orders_agent_created_at", "orders", ["agent", "created_at"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        _money("quantity"),
        _money("price"),
        _money("fee"),
        sa.Column("liquidity", sa.String(8), nullable=False),
        _money("realized_pnl"),
        sa.Column("agent", sa.String(64), nullable=True),
        _ts("ts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_fills_order_id_orders"), ondelete="CASCADE"
        ),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_index("ix_fills_agent_ts", "fills", ["agent", "ts"])
    op.create_index("ix_fills_ts", "fills", ["ts"])
    op.create_table(
        "bars",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        _ts("start"),
        _money("open"),
        _money("high"),
        _money("low"),
        _money("close"),
        _money("volume"),
        _ts("open_ts"),
        _ts("close_ts"),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "start", name=op.f("pk_bars")),
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        _money("strength"),
        _money("confidence"),
        sa.Column("horizon_seconds", sa.Integer(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    op.create_index("ix_signals_agent_created_at", "signals", ["agent", "created_at"])
    op.create_index("ix_signals_symbol_created_at", "signals", ["symbol", "created_at"])
    op.create_index("ix_signals_created_at", "signals", ["created_at"])
    op.create_table(
        "agents",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        _ts("registered_at"),
        _ts("last_heartbeat_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_agents")),
    )
    op.create_table(
        "headlines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        _ts("ts"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_headlines")),
    )
    op.create_index("ix_headlines_symbol_ts", "headlines", ["symbol", "ts"])
    op.create_index("ix_headlines_ts", "headlines", ["ts"])


def downgrade() -> None:
    for table in ("headlines", "agents", "signals", "bars", "fills", "orders", "positions", "accounts"):
        op.drop_table(table)
