"""The equity history: the account's equity, cash, realized and unrealized PnL and fees over
time, at most one point a second while the books change, thinned with age; and the model an
agent reports in its heartbeat, for the dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIGURES = ("equity", "cash", "realized_pnl", "unrealized_pnl", "fees")


def upgrade() -> None:
    numeric = sa.Numeric().with_variant(sa.String(64), "sqlite")
    op.create_table(
        "equity_points",
        sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(name, numeric, nullable=False) for name in _FIGURES),
    )
    with op.batch_alter_table("agents") as agents:  # batch: SQLite cannot alter in place
        agents.add_column(sa.Column("model", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as agents:
        agents.drop_column("model")
    op.drop_table("equity_points")
