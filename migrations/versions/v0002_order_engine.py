"""The order engine's journal: a fencing epoch and writer address on the account, the last
event sequence number, and each order's intake sequence (its time priority after a reload).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("writer_epoch", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("accounts", sa.Column("writer_address", sa.Text(), nullable=False, server_default=""))
    op.add_column(
        "accounts", sa.Column("event_sequence", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column("orders", sa.Column("sequence", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_orders_status_sequence", "orders", ["status", "sequence"])


def downgrade() -> None:
    op.drop_index("ix_orders_status_sequence", table_name="orders")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("sequence")
    with op.batch_alter_table("accounts") as accounts:
        accounts.drop_column("event_sequence")
        accounts.drop_column("writer_address")
        accounts.drop_column("writer_epoch")
