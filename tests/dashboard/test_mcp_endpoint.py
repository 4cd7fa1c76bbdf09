"""The MCP endpoint, driven by the ``mcp`` SDK's own client over streamable HTTP against a real
uvicorn server: it lists the six tools, calls each one, and the token's scope decides."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp
import pytest
import uvicorn
from mcp.client.streamable_http import streamable_http_client

from sapphire.bus.memory import MemoryBus
from sapphire.feed import runner as feed_runner
from sapphire.feed.settings import MarketFeedSettings
from sapphire.migrations import config as migrations
from sapphire.trader_api import mcp_endpoint
from sapphire.trader_api.app import create_app
from sapphire.trader_api.core.bars import Interval
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import processes
from tests.trader_api.support import ADMIN_TOKEN, AGENT_TOKEN, READ_TOKEN, make_settings


@pytest.fixture
async def api_url(tmp_path: Path) -> AsyncIterator[str]:
    """The embedded trader API (SQLite, in-process bus) on uvicorn, with the simulated feed
    (``sapphire feed``'s runner) posting to it, and a quote."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'sapphire.db'}"
    migrations.upgrade(database_url)
    settings: TraderApiSettings = make_settings(database_url, "memory://", "sapphire:")
    port = processes.free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, message_bus=MemoryBus()),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    stop_feed = asyncio.Event()
    feed_settings = MarketFeedSettings(
        trader_api_url=url,
        agent_token=AGENT_TOKEN,
        feed_interval_seconds=0.05,
    )
    feed = asyncio.create_task(
        feed_runner.run_market_feed(feed_settings, "simulated", stop=stop_feed, handle_signals=False)
    )
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {READ_TOKEN}"}) as http:

        async def serving_quotes() -> bool | None:
            quoted = server.started and (await http.get("/v1/quotes/BTC-USD")).status_code == 200
            return True if quoted else None

        await processes.observe(serving_quotes, within=30, what="the trader API serving a quote")
        try:
            yield url
        finally:
            stop_feed.set()
            await asyncio.wait_for(feed, 15)
            server.should_exit = True
            await asyncio.wait_for(serving, 15)


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[mcp.Client]:
    """The SDK's client on the streamable HTTP transport, sending ``token`` as a bearer token."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http,
        mcp.Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def error_text(result: Any) -> str:
    """The message of a tool call that failed."""
    assert result.is_error
    return " ".join(part.text for part in result.content if isinstance(part, mcp.types.TextContent))


def structured(result: Any) -> Any:
    assert not result.is_error, result.content
    content = result.structured_content
    # Lists come wrapped as {"result": [...]}, as MCP structured output must be an object.
    return content["result"] if set(content) == {"result"} else content


async def test_the_sdk_client_lists_the_tools_and_calls_each_one(api_url: str) -> None:
    async with mcp_client(api_url, AGENT_TOKEN) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert sorted(tools) == sorted(mcp_endpoint.TOOLS)
        assert "symbol" in tools["get_quote"].input_schema["properties"]

        quote = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert Decimal(quote["bid"]) <= Decimal(quote["ask"])
        assert quote["stale"] is False

        bars = structured(await client.call_tool("get_bars", {"symbol": "BTC-USD", "limit": 5}))
        assert bars
        assert bars[-1]["symbol"] == "BTC-USD"
        offered = tools["get_bars"].input_schema
        intervals = offered["$defs"]["Interval"]["enum"]
        assert sorted(intervals) == sorted(i.value for i in Interval)  # what the API serves, no more
        for interval in intervals:
            got = structured(
                await client.call_tool("get_bars", {"symbol": "BTC-USD", "interval": interval, "limit": 2})
            )
            assert got, interval
            assert {bar["interval"] for bar in got} == {interval}

        submitted = structured(
            await client.call_tool(
                "submit_signal",
                {
                    "agent": "mcp-llm",
                    "role": "strategist",
                    "symbol": "BTC-USD",
                    "direction": "long",
                    "strength": "0.35",
                    "confidence": 0.8,
                    "rationale": "an LLM through MCP",
                },
            )
        )
        assert submitted["agent"] == "mcp-llm"
        assert (submitted["strength"], submitted["confidence"]) == ("0.35", "0.8")

        signals = structured(await client.call_tool("list_signals", {"agent": "mcp-llm"}))
        assert [s["id"] for s in signals] == [submitted["id"]]

        portfolio = structured(await client.call_tool("get_portfolio", {}))
        assert Decimal(portfolio["equity"]) > 0
        assert structured(await client.call_tool("get_positions", {})) == portfolio["positions"]


async def test_a_read_token_reads_but_cannot_submit_signals(api_url: str) -> None:
    async with mcp_client(api_url, READ_TOKEN) as client:
        assert structured(await client.call_tool("get_quote", {"symbol": "ETH-USD"}))["symbol"] == "ETH-USD"
        refused = await client.call_tool(
            "submit_signal",
            {
                "agent": "reader",
                "role": "momentum",
                "symbol": "BTC-USD",
                "direction": "short",
                "strength": "-0.2",
                "confidence": "0.5",
            },
        )
    assert "HTTP 403: this route needs scope agent" in error_text(refused)


async def test_bad_arguments_and_unknown_symbols_come_back_as_tool_errors(api_url: str) -> None:
    async with mcp_client(api_url, ADMIN_TOKEN) as client:
        unknown = await client.call_tool("get_quote", {"symbol": "NOPE-USD"})
        out_of_range = await client.call_tool(
            "submit_signal",
            {
                "agent": "a",
                "role": "momentum",
                "symbol": "BTC-USD",
                "direction": "long",
                "strength": "3",
                "confidence": "0.5",
            },
        )
    assert "HTTP 404" in error_text(unknown)
    assert "strength" in error_text(out_of_range)


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_the_endpoint_refuses_requests_without_a_valid_token(api_url: str, token: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=api_url) as http:
        response = await http.post("/mcp", content=json.dumps(body), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
