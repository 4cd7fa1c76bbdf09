"""Which way a migration moves a database's schema.

One enum for the MigrationRun CRD (``spec.direction``), ``sapphire migrate --direction`` and
the runner that calls alembic.
"""

from __future__ import annotations

import enum


class Direction(enum.StrEnum):
    """Whether the run moves the schema forwards or backwards."""

    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
