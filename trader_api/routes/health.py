"""Probes and metrics; open to everyone (no data behind them)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sapphire.trader_api.deps import RuntimeDep

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database or Redis does not answer"}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: the database (with the paper account) and Redis both answer."""
    checks: dict[str, str] = {}
    for name, probe in (("database", runtime.prepare), ("bus", runtime.bus.ping)):
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means not ready; the message says which
            checks[name] = f"error: {type(error).__name__}: {error}"[:300]
        else:
            checks[name] = "ok"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
