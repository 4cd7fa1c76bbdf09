"""Programmatic entry points to Sapphire's alembic environment.

``sapphire migrate``, the tests and the trader API's embedded mode all go through
:func:`alembic_config`, which finds the scripts inside the installed package, so they work
from a wheel as well as from a checkout.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""The folder holding ``env.py``, ``script.py.mako`` and ``versions/``."""

DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0


def sync_url(database_url: str) -> str:
    """The URL with a synchronous driver (alembic runs synchronously)."""
    for prefix, replacement in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite+aiosqlite://", "sqlite://"),
    ):
        if database_url.startswith(prefix):
            return replacement + database_url[len(prefix) :]
    return database_url


def alembic_config(
    database_url: str, *, lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
) -> Config:
    """An alembic ``Config`` for ``database_url``; every run takes the migration lock (see env.py)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # ConfigParser interpolates '%', which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    config.attributes["lock_timeout_seconds"] = lock_timeout_seconds
    return config


def upgrade(database_url: str, revision: str = "head", **options: float) -> None:
    command.upgrade(alembic_config(database_url, **options), revision)


def downgrade(database_url: str, revision: str, **options: float) -> None:
    command.downgrade(alembic_config(database_url, **options), revision)


def head() -> str:
    """The newest revision id in ``versions/``."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_current_head()
    if revision is None:
        raise RuntimeError("migrations/versions holds no revision")
    return revision


def current(database_url: str) -> str | None:
    """The revision ``database_url`` is at, or ``None`` for an empty database."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
