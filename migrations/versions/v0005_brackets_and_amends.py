"""Brackets and amends: a bracket entry's attached legs (JSON of decimal strings), a leg's
entry (``parent_id``), and the replace requests applied to an order (``amendments``: their
``client_order_id`` -> request hash, so a repeated replace is answered, not applied twice).
All nullable: existing orders are neither.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("attached", sa.JSON(), nullable=True))
    op.add_column("orders", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.add_column("orders", sa.Column("amendments", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("amendments")
        orders.drop_column("parent_id")
        orders.drop_column("attached")
