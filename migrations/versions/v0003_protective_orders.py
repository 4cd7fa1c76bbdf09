"""Protective orders: order types up to 32 characters, and each order's trigger
(stop_price), trailing distance, OCO group and the time its trigger fired. All nullable:
existing orders are plain market and limit ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = ("stop_price", "trail_amount", "trail_bps")


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:  # "take_profit_limit" does not fit in 8
        orders.alter_column("type", type_=sa.String(32), existing_type=sa.String(8), existing_nullable=False)
    numeric = sa.Numeric().with_variant(sa.String(64), "sqlite")
    for name in _MONEY:
        op.add_column("orders", sa.Column(name, numeric, nullable=True))
    op.add_column("orders", sa.Column("oco_group", sa.String(64), nullable=True))
    op.add_column("orders", sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("triggered_at")
        orders.drop_column("oco_group")
        for name in reversed(_MONEY):
            orders.drop_column(name)
        orders.alter_column("type", type_=sa.String(8), existing_type=sa.String(32), existing_nullable=False)
