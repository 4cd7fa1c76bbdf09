"""Probes and metrics; open to everyone (no data behind them)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sapphire.trader_api.deps import RuntimeDep
from sapphire.trader_api.feeds import publisher as feed_publisher
from sapphire.trader_api.services.publisher import Publisher
from sapphire.trader_api.services.writer import Writer

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {"description": "The database or Redis does not answer, or the API's own market feed stopped"}
    },
)
async def readyz(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Readiness: the database (with the paper account) and Redis both answer, and with
    ``feed=ccxt`` the API's market feed still runs (``feed``: what stopped it). ``engine``
    says whether this replica is the account's writer or a follower that forwards writes."""
    checks: dict[str, str] = {}
    for name, probe in (("database", runtime.prepare), ("bus", runtime.bus.ping)):
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means not ready; the message says which
            checks[name] = f"error: {type(error).__name__}: {error}"[:300]
        else:
            checks[name] = "ok"
    feed: asyncio.Task[None] | None = getattr(request.app.state, "feed_task", None)
    if feed is not None:  # feed=ccxt: without its quotes every order is refused as stale
        stopped = feed_publisher.stopped_because(feed)
        checks["feed"] = "ok" if stopped is None else f"error: the market feed stopped: {stopped}"[:300]
    ready = all(value == "ok" for value in checks.values())
    writer: Writer = request.app.state.writer
    publisher: Publisher = request.app.state.publisher
    engine = {"role": writer.role.value, "writer": writer.leader, "epoch": writer.epoch}
    if publisher.failure is not None:
        engine["unpublished_batches"] = len(publisher.backlog)
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks, "engine": engine},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
