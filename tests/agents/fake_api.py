"""A minimal stand-in for the trader API's ``/v1`` contract, for runtime tests that must not
depend on the whole API (the end-to-end test uses the real one). It keeps state in memory,
fills every limit order at its limit price, and publishes stored signals to real Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeTraderApi:
    redis_url: str
    prefix: str
    token: str = "agent-token"
    instruments: list[str] = field(default_factory=lambda: ["BTC-USD"])
    risk_state: str = "ACTIVE"
    cash: Decimal = Decimal(100_000)
    day_start_equity: Decimal = Decimal(100_000)
    positions: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    signals: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    headlines: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    _clients: list[redis.asyncio.Redis] = field(default_factory=list)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    def app(self) -> Starlette:
        client = redis.asyncio.Redis.from_url(self.redis_url)
        self._clients.append(client)

        def guard(request: Request) -> Response | None:
            if self.down:
                return JSONResponse({"detail": "down"}, status_code=503)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            return None

        async def instruments(request: Request) -> Response:
            return guard(request) or JSONResponse(
                [
                    {"symbol": s, "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"}
                    for s in self.instruments
                ]
            )

        async def post_signal(request: Request) -> Response:
            if (refused := guard(request)) is not None:
                return refused
            body = await request.json()
            stored = {**body, "id": len(self.signals) + 1, "created_at": datetime.now(UTC).isoformat()}
            self.signals.append(stored)
            await client.publish(f"{self.prefix}signals", json.dumps(stored))
            return JSONResponse(stored, status_code=201)

        async def get_signals(request: Request) -> Response:
            return guard(request) or JSONResponse(self.signals)

        async def post_order(request: Request) -> Response:
            if (refused := guard(request)) is not None:
                return refused
            body = await request.json()
            seen = self.orders.get(body["client_order_id"])
            if seen is not None:
                same = {k: v for k, v in seen.items() if k in body} == body
                return (
                    JSONResponse(seen, status_code=200)
                    if same
                    else JSONResponse({"detail": "conflict"}, status_code=409)
                )
            if self.risk_state == "HALTED":
                return JSONResponse({"detail": "halted"}, status_code=409)
            quantity, price = Decimal(body["quantity"]), Decimal(body["limit_price"])
            signed = quantity if body["side"] == "buy" else -quantity
            self.positions[body["symbol"]] = self.positions.get(body["symbol"], Decimal(0)) + signed
            self.cash -= signed * price
            self.marks[body["symbol"]] = price
            # Answered as the trader API answers (OrderPublic): what filled, at what price.
            answer = {
                **body,
                "id": f"order-{len(self.orders) + 1}",
                "status": "filled",
                "filled_quantity": body["quantity"],
                "average_price": body["limit_price"],
                "fees": "0",
            }
            self.orders[body["client_order_id"]] = answer
            return JSONResponse(answer, status_code=201)

        async def portfolio(request: Request) -> Response:
            if (refused := guard(request)) is not None:
                return refused
            equity = self.cash + sum(q * self.marks.get(s, Decimal(0)) for s, q in self.positions.items())
            rows = [
                {"symbol": s, "quantity": str(q), "average_price": "0", "mark": str(self.marks.get(s, 0))}
                for s, q in self.positions.items()
            ]
            return JSONResponse({"cash": str(self.cash), "equity": str(equity), "positions": rows})

        async def risk(request: Request) -> Response:
            return guard(request) or JSONResponse(
                {"state": self.risk_state, "limits": {}, "day_start_equity": str(self.day_start_equity)}
            )

        async def heartbeat(request: Request) -> Response:
            if (refused := guard(request)) is not None:
                return refused
            self.heartbeats.append({"name": request.path_params["name"], **(await request.json())})
            return JSONResponse({}, status_code=200)

        async def get_headlines(request: Request) -> Response:
            return guard(request) or JSONResponse(self.headlines)

        return Starlette(
            routes=[
                Route("/v1/instruments", instruments),
                Route("/v1/signals", post_signal, methods=["POST"]),
                Route("/v1/signals", get_signals, methods=["GET"]),
                Route("/v1/orders", post_order, methods=["POST"]),
                Route("/v1/portfolio", portfolio),
                Route("/v1/risk", risk),
                Route("/v1/agents/{name}/heartbeat", heartbeat, methods=["POST"]),
                Route("/v1/headlines", get_headlines),
            ]
        )
