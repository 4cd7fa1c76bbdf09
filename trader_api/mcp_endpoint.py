"""The Model Context Protocol endpoint: ``/mcp``, streamable HTTP, served by the ``mcp`` SDK.

LLM agents and any MCP client read quotes, bars, positions, the portfolio and signals, and
submit signals, through a standard protocol instead of our REST contract.

Why every tool forwards to ``/v1`` in process (``httpx.ASGITransport``) with the caller's
own bearer token, rather than calling the services: scopes, validation, risk and error
messages then stay exactly those of the REST API, one source of truth. An agent-scope tool
called with a read token fails with the API's own 403 message.

Auth is the SDK's bearer middleware with a verifier over the API's tokens: no token, or an
unknown one, gets 401 with ``WWW-Authenticate: Bearer`` before any MCP message is read.

The endpoint is stateless and answers in JSON (no server-side sessions), so any replica of
the API can serve any request. DNS-rebinding protection is off on purpose: it guards
servers that trust ambient credentials (cookies, a localhost origin), and this one trusts
only the bearer token, while in a cluster the Host header is a Service name.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

import httpx
from fastapi import FastAPI
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl, Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import sapphire
from sapphire.domain.signals import Direction
from sapphire.trader_api import auth
from sapphire.trader_api.core import bars
from sapphire.trader_api.settings import TraderApiSettings

PATH = "/mcp"
_API_APP = "sapphire.trader_api.app"
"""Where the endpoint keeps the API's ASGI app in the request scope, for the tools."""
TOOLS = ("get_quote", "get_bars", "get_positions", "get_portfolio", "list_signals", "submit_signal")

Symbol = Annotated[str, Field(description="Instrument symbol, e.g. BTC-USD.")]


class TokenVerifier:
    """The API's three bearer tokens as MCP access tokens whose scopes nest like the API's."""

    def __init__(self, settings: TraderApiSettings) -> None:
        self.settings = settings

    async def verify_token(self, token: str) -> AccessToken | None:
        granted = auth.granted_scope(self.settings, token)
        if granted is None:
            return None
        return AccessToken(
            token=token,
            client_id=f"sapphire-{granted.label}",
            scopes=[scope.label for scope in auth.Scope if scope <= granted],
        )


def _caller(ctx: Context) -> tuple[ASGIApp, str]:
    """The trader API app, and the bearer token of the HTTP request that carried this call."""
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise ToolError("this endpoint serves MCP over HTTP only")
    access = getattr(request.scope.get("user"), "access_token", None)
    if not isinstance(access, AccessToken):
        raise ToolError("not authenticated: send Authorization: Bearer <token>")
    app: ASGIApp = request.scope[_API_APP]
    return app, access.token


def build_server(settings: TraderApiSettings) -> MCPServer[Any]:
    """The MCP server with the six tools, authenticating against ``settings``' tokens."""
    server: MCPServer[Any] = MCPServer(
        "sapphire-trader-api",
        token_verifier=TokenVerifier(settings),
        auth=AuthSettings(
            # Static bearer tokens, no OAuth server: the API itself is nominally the issuer.
            issuer_url=AnyHttpUrl(f"http://{settings.host}:{settings.port}"),
            resource_server_url=None,
            required_scopes=[auth.Scope.READ.label],
        ),
        title="Sapphire trader API",
        version=sapphire.__version__,
        instructions=(
            "Paper-trading market data, portfolio and signals. Decimals are strings. "
            "submit_signal needs a token with scope agent."
        ),
    )

    async def call(ctx: Context, method: str, path: str, **options: Any) -> Any:
        app, token = _caller(ctx)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trader-api", timeout=10.0
        ) as api:
            response = await api.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **options
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ToolError(f"HTTP {response.status_code}: {detail}")
        return response.json()

    @server.tool(description="The latest quote (bid, ask, last, size, ts, stale) of one symbol.")
    async def get_quote(symbol: Symbol, ctx: Context) -> dict[str, Any]:
        result: dict[str, Any] = await call(ctx, "GET", f"/v1/quotes/{symbol}")
        return result

    @server.tool(description="The latest OHLCV bars of one symbol, oldest first.")
    async def get_bars(
        symbol: Symbol,
        ctx: Context,
        interval: bars.Interval = bars.Interval.MINUTE,  # the API's own intervals, no others
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await call(
            ctx, "GET", f"/v1/bars/{symbol}", params={"interval": interval.value, "limit": limit}
        )
        return result

    @server.tool(description="Open positions: quantity, average price, mark, market value, PnL.")
    async def get_positions(ctx: Context) -> list[dict[str, Any]]:
        portfolio = await call(ctx, "GET", "/v1/portfolio")
        positions: list[dict[str, Any]] = portfolio["positions"]
        return positions

    @server.tool(description="Cash, equity, realized and unrealized PnL, fees, exposure and positions.")
    async def get_portfolio(ctx: Context) -> dict[str, Any]:
        result: dict[str, Any] = await call(ctx, "GET", "/v1/portfolio")
        return result

    @server.tool(description="Stored signals, newest first, optionally of one agent or symbol.")
    async def list_signals(
        ctx: Context,
        agent: str | None = None,
        symbol: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        params = {"agent": agent, "symbol": symbol, "limit": limit}
        result: list[dict[str, Any]] = await call(
            ctx, "GET", "/v1/signals", params={k: v for k, v in params.items() if v is not None}
        )
        return result

    @server.tool(description="Store and publish a trading signal (needs a token with scope agent).")
    async def submit_signal(
        agent: Annotated[str, Field(description="The submitting agent's name.")],
        role: Annotated[str, Field(description="Its role, e.g. momentum or strategist.")],
        symbol: Symbol,
        direction: Direction,
        strength: Annotated[Decimal, Field(ge=-1, le=1, description="Signed conviction, -1..1.")],
        confidence: Annotated[Decimal, Field(ge=0, le=1, description="0..1.")],
        ctx: Context,
        horizon_seconds: Annotated[int, Field(ge=1, le=31_536_000)] = 300,
        rationale: str = "",
        model: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "agent": agent,
            "role": role,
            "symbol": symbol,
            "direction": direction,
            # Strings on the wire, as the REST contract wants: no float rounding on the way.
            "strength": format(strength, "f"),
            "confidence": format(confidence, "f"),
            "horizon_seconds": horizon_seconds,
            "rationale": rationale,
            "model": model,
        }
        result: dict[str, Any] = await call(ctx, "POST", "/v1/signals", json=body)
        return result

    return server


class _Endpoint:
    """The ASGI app at ``/mcp``.

    Each request gets the SDK's app and session manager of its own, started and stopped in
    the request's task: the manager's task group must be exited by the task that entered
    it, and an API lifespan may be entered and left by different tasks (test fixtures).
    Stateless JSON mode keeps nothing between requests, so nothing is lost by this.
    """

    def __init__(self, server: MCPServer[Any]) -> None:
        self.server = server
        # A manager per request would log "started" and "shutting down" around every call.
        logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sdk_app = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        # The SDK's Starlette app replaces scope["app"]; the tools need the API's.
        scope[_API_APP] = scope["app"]
        async with sdk_app.router.lifespan_context(sdk_app):
            await sdk_app(scope, receive, send)


def install(app: FastAPI, settings: TraderApiSettings) -> None:
    """Serve MCP at ``/mcp`` of ``app``."""
    app.router.routes.append(
        Route(
            PATH,
            endpoint=_Endpoint(build_server(settings)),
            methods=["GET", "POST", "DELETE"],
            include_in_schema=False,
        )
    )
