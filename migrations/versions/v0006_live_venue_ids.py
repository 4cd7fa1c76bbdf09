"""Live venues: the exchange's order id and the trade ids booked per order (so a trade the
exchange reports twice is booked once), and each fill's exchange trade id. All nullable:
paper orders have none. Order statuses stay a 16-character string (``pending_cancel`` fits).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("exchange_order_id", sa.String(64), nullable=True))
    op.add_column("orders", sa.Column("exchange_trades", sa.JSON(), nullable=True))
    op.add_column("fills", sa.Column("exchange_trade_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fills") as fills:
        fills.drop_column("exchange_trade_id")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("exchange_trades")
        orders.drop_column("exchange_order_id")
