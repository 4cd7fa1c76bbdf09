"""Trader API fixtures: the settings of a test (its own migrated Postgres database, from
``tests/conftest.py``, and Redis prefix), and the app on httpx's ASGI transport with its
lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.trader_api import support


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
