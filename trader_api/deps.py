"""FastAPI dependencies, as ``Annotated`` aliases the routes declare.

Every dependency is ``async def`` although none awaits: FastAPI runs a plain ``def``
dependency in a worker thread, which costs more than the order engine's whole decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sapphire.trader_api import auth
from sapphire.trader_api.services import backtests
from sapphire.trader_api.services.market import MarketService
from sapphire.trader_api.services.publisher import Publisher
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.signals import SignalJournal
from sapphire.trader_api.services.writer import Writer
from sapphire.trader_api.settings import TraderApiSettings

_bearer = HTTPBearer(auto_error=False, description="Token with scope read, agent or admin.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_settings(request: Request) -> TraderApiSettings:
    settings: TraderApiSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[TraderApiSettings, Depends(get_settings)]
"""The settings alone: unlike the runtime, they reach neither the database nor the bus."""


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_writer(request: Request) -> Writer:
    writer: Writer = request.app.state.writer
    return writer


WriterDep = Annotated[Writer, Depends(get_writer)]


async def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[Publisher, Depends(get_publisher)]


def get_backtests(request: Request) -> backtests.Shelf:
    shelf: backtests.Shelf = request.app.state.backtests
    return shelf


BacktestsDep = Annotated[backtests.Shelf, Depends(get_backtests)]


async def get_signal_journal(request: Request) -> SignalJournal:
    journal: SignalJournal = request.app.state.signal_journal
    return journal


SignalJournalDep = Annotated[SignalJournal, Depends(get_signal_journal)]


async def get_market(runtime: RuntimeDep) -> MarketService:
    return MarketService(runtime)


MarketDep = Annotated[MarketService, Depends(get_market)]


SCOPES: dict[Callable[..., Any], auth.Scope] = {}
"""The scope each token dependency requires (``contract.py`` documents its 401 and 403)."""


def _require(scope: auth.Scope) -> object:
    async def dependency(settings: SettingsDep, credentials: Credentials) -> auth.Scope:
        return auth.authorize(settings, credentials, scope)

    SCOPES[dependency] = scope
    return Depends(dependency)


ReadScope = Annotated[auth.Scope, _require(auth.Scope.READ)]
"""Any valid token."""
AgentScope = Annotated[auth.Scope, _require(auth.Scope.AGENT)]
"""Agent or admin tokens: everything that writes."""
AdminScope = Annotated[auth.Scope, _require(auth.Scope.ADMIN)]
"""Admin tokens only: risk control."""
