"""The analyst's own timestamp of a signal (``signals.ts``): when it was formed, kept beside
``created_at`` (when the API stored it). Existing rows get their ``created_at``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as signals:  # batch: SQLite cannot alter in place
        signals.add_column(sa.Column("ts", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE signals SET ts = created_at")
    with op.batch_alter_table("signals") as signals:
        signals.alter_column("ts", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("signals") as signals:
        signals.drop_column("ts")
