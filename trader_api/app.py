"""The FastAPI application factory. Nothing is built at import time: ``create_app`` gets
settings (and, in tests or ``sapphire up``, an existing bus or clock) and the lifespan
opens the database and the bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import sapphire
from sapphire import bus
from sapphire.trader_api import answers, contract, dashboard, errors, mcp_endpoint, metrics
from sapphire.trader_api.forwarding import ForwardingMiddleware
from sapphire.trader_api.lean_routes import LeanRoutes
from sapphire.trader_api.routes import (
    agents,
    backtests,
    bars,
    events,
    fills,
    headlines,
    health,
    instruments,
    orders,
    portfolio,
    quotes,
    risk,
    signals,
    ticks,
)
from sapphire.trader_api.services import runtime as runtime_module
from sapphire.trader_api.services.backtests import Shelf
from sapphire.trader_api.services.publisher import Publisher
from sapphire.trader_api.services.signals import SignalJournal
from sapphire.trader_api.services.writer import Writer
from sapphire.trader_api.settings import TraderApiSettings
from sapphire.trader_api.storage.database import Database

log = logging.getLogger(__name__)

SHUTDOWN_PUBLISH_SECONDS = 2.0
"""How long a shutdown waits for committed events to reach the bus."""

V1_ROUTERS = (
    instruments.router,
    ticks.router,
    quotes.router,
    bars.router,
    orders.router,
    fills.router,
    portfolio.router,
    risk.router,
    signals.router,
    agents.router,
    headlines.router,
    events.router,
    backtests.router,
)


class _MetricsMiddleware:
    """Counts requests and their latency by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, registry: metrics.Metrics) -> None:
        self.app, self.metrics = app, registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = _route_template(scope)
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """``/v1/orders/{order_id}`` for ``/v1/orders/0f3...``: included routers report their
    path without the prefix, so the prefix is taken from the leading segments of the path."""
    route_path = getattr(scope.get("route"), "path", None)
    if route_path is None:
        return "unmatched"
    segments = str(scope["path"]).split("/")
    prefix = segments[: max(1, len(segments) - len(route_path.split("/")) + 1)]
    return "/".join(prefix) + str(route_path)


def _install_error_handlers(app: FastAPI) -> None:
    async def answer(_: Request, error: Exception) -> JSONResponse:
        response = answers.error_answer(error)
        if response is None:  # only the classes registered below reach here
            raise error
        return response

    for kind in (errors.TraderApiError, *answers.DATABASE_ERRORS):
        app.add_exception_handler(kind, answer)


def create_app(
    settings: TraderApiSettings,
    *,
    message_bus: bus.Bus | None = None,
    clock: runtime_module.Clock | None = None,
) -> FastAPI:
    """The trader API for ``settings``. A given ``message_bus`` is used and left open."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.sqlalchemy_url)
        own_bus = message_bus is None
        chosen_bus = message_bus or bus.open_bus(
            str(settings.redis_url), timeout=settings.redis_timeout_seconds
        )
        runtime = runtime_module.Runtime(
            settings=settings,
            database=database,
            bus=chosen_bus,
            metrics=app.state.metrics,
            clock=clock or runtime_module.utcnow,
        )
        app.state.runtime = runtime
        publisher = app.state.publisher = Publisher(chosen_bus, app.state.metrics)
        writer = app.state.writer = Writer(runtime, publisher)
        signal_journal = app.state.signal_journal = SignalJournal(runtime, publisher)
        try:
            await runtime.prepare()
            await writer.elect()  # a lone replica is the writer before the first request
        except Exception as error:  # readiness reports it; the API still serves /healthz
            log.warning("database not ready at start-up: %s", error)
        background = [
            asyncio.create_task(publisher.run(), name="event-publisher"),
            asyncio.create_task(writer.run(), name="order-engine-writer"),
            asyncio.create_task(writer.thin_history(), name="equity-history-thinning"),
            asyncio.create_task(signal_journal.run(), name="signal-journal"),
        ]
        live_venue = None
        if settings.venue == "ccxt":
            from sapphire.trader_api.services.ccxt_venue import CcxtVenue

            live_venue = writer.venue_link = CcxtVenue(runtime, writer)
            background.append(asyncio.create_task(live_venue.run(), name="live-venue"))
        feed_task: asyncio.Task[None] | None = None
        if settings.feed == "ccxt":
            from sapphire.trader_api.feeds import publisher as feed_publisher

            feed_task = app.state.feed_task = asyncio.create_task(
                feed_publisher.run_configured_feed(runtime, writer), name="market-feed"
            )
        try:
            yield
        finally:
            if feed_task is not None:  # first: no new batch while the last events go out
                feed_task.cancel()
                # A feed that failed was logged when it did (and told by /readyz): not raised
                # again here, where it would skip the rest of the shutdown.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed_task
            with contextlib.suppress(TimeoutError):  # what committed is published, if the bus lets us
                await asyncio.wait_for(publisher.idle(), SHUTDOWN_PUBLISH_SECONDS)
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await writer.close()
            if live_venue is not None:
                await live_venue.close()
            if own_bus:
                await chosen_bus.close()
            await database.close()

    app = FastAPI(
        title="Sapphire trader API",
        version=sapphire.__version__,
        description="Market data, orders, a paper venue, portfolio, risk, signals and agents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics.Metrics()
    app.state.backtests = Shelf(settings.backtest_reports_dir)
    app.add_middleware(ForwardingMiddleware, state=app.state, timeout=settings.forward_timeout_seconds)
    app.add_middleware(_MetricsMiddleware, registry=app.state.metrics)
    # Outermost: the hottest routes skip the middleware and routing above (lean_routes.py).
    app.add_middleware(LeanRoutes, state=app.state, registry=app.state.metrics)
    _install_error_handlers(app)
    contract.install(app)
    app.include_router(health.router)
    for router in V1_ROUTERS:
        app.include_router(router, prefix="/v1")
    dashboard.install(app)
    mcp_endpoint.install(app, settings)
    return app
