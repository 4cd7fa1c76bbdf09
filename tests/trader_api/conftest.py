"""Trader API fixtures: a migrated Postgres database per test (copied from a template that
is migrated once per session), the test's own Redis prefix, and the app on httpx's ASGI
transport with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from sapphire.migrations import config as migrations
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import services
from tests.trader_api import support


@pytest.fixture(scope="session")
def migrated_template(postgres_server: services.PostgresServer) -> Iterator[str]:
    """The name of a database at alembic head; tests get copies of it."""
    url = postgres_server.create_database()
    migrations.upgrade(url)
    yield str(make_url(url).database)
    postgres_server.drop_database(url)


@pytest.fixture
def trader_database_url(postgres_server: services.PostgresServer, migrated_template: str) -> Iterator[str]:
    """A migrated Postgres database of this test's own (``postgresql+psycopg://``)."""
    url = postgres_server.create_database(template=migrated_template)
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    postgres_server.drop_database(url)


@pytest.fixture
def clock() -> support.ManualClock:
    return support.ManualClock()


@pytest.fixture
def settings(trader_database_url: str, redis_url: str, redis_prefix: str) -> TraderApiSettings:
    return support.make_settings(trader_database_url, redis_url, redis_prefix)


@pytest.fixture
async def app(settings: TraderApiSettings, clock: support.ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trader") as http:
        yield http
