"""The trader API client the agents use (``/v1`` contract, bearer-token auth).

Errors are part of the interface::

    ApiError
    ├── ApiUnavailableError   network failure, timeout, 5xx: retry later with backoff
    └── ApiRejectedError      4xx: the request itself is wrong; retrying it changes nothing

One code path: every caller, ``sapphire up`` and the tests included, talks to the API over a
real socket. The client is aiohttp with msgspec, not httpx: on the tick-to-order path (an
analyst's ``POST /v1/signals``, the executor's ``POST /v1/orders``) httpx cost about 2 ms of
client CPU per call against aiohttp's 0.4 ms. ``trace_configs`` (aiohttp's own hooks) let a
caller observe each call, as ``bench/tick_to_order.py`` times them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from sapphire.agents import market, sizing


class ApiError(Exception):
    """The trader API call did not succeed."""


class ApiUnavailableError(ApiError):
    """The API could not be reached or failed on its side (5xx); try again later."""


class ApiRejectedError(ApiError):
    """The API refused the request (4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal
    mark: Decimal
    """The price the API values the position at (``PositionPublic.mark``)."""


@dataclass(frozen=True)
class Portfolio:
    cash: Decimal
    equity: Decimal
    positions: tuple[Position, ...]


def _parse_portfolio(payload: dict[str, Any]) -> Portfolio:
    positions = []
    for row in payload.get("positions", []):
        positions.append(
            Position(symbol=row["symbol"], quantity=Decimal(row["quantity"]), mark=Decimal(row["mark"]))
        )
    return Portfolio(
        cash=Decimal(payload["cash"]), equity=Decimal(payload["equity"]), positions=tuple(positions)
    )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
"""Untyped: plain dicts, lists, str, int and float, what ``json.loads`` gives (the API writes
its decimals as strings; the parsers below make them Decimal)."""
_JSON_HEADERS = {"Content-Type": "application/json"}


class TraderApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        timeout_seconds: float = 5.0,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        """``timeout_seconds`` bounds each phase of a call, as httpx's timeout did: waiting for
        the connection (the other calls' turn included) and connecting, then each read of the
        answer. ``trace_configs`` are handed to the session (aiohttp's request tracing)."""
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_seconds, sock_read=timeout_seconds)
        self._trace_configs = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running event loop."""
        if self._session is None:
            # One persistent keep-alive connection, never dropped for idling on our side: an
            # order or a signal never pays for a TCP handshake, and an agent's few concurrent
            # calls (heartbeat, instruments) take turns.
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=None),
                trace_configs=self._trace_configs,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> Any:
        """``json`` is encoded here; ``content`` is a JSON body the caller encoded."""
        body = content if json is None else _encode(json)
        try:
            async with self._http().request(
                method,
                self._base_url + path,
                data=body,
                params=params,
                headers=None if body is None else _JSON_HEADERS,
            ) as response:
                status, content = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ApiUnavailableError(f"{method} {path}: {type(error).__name__}: {error}") from error
        if status >= 500:
            raise ApiUnavailableError(f"{method} {path}: HTTP {status}")
        if status >= 400:
            raise ApiRejectedError(status, content.decode(errors="replace")[:500])
        return _decode(content) if content else None

    async def instruments(self) -> list[sizing.Instrument]:
        rows = await self._request("GET", "/v1/instruments")
        return [
            sizing.Instrument(
                symbol=row["symbol"],
                tick_size=Decimal(str(row["tick_size"])),
                lot_size=Decimal(str(row["lot_size"])),
            )
            for row in rows
        ]

    async def quote(self, symbol: str) -> market.Tick | None:
        try:
            payload = await self._request("GET", f"/v1/quotes/{symbol}")
        except ApiRejectedError as error:
            if error.status == 404:
                return None
            raise
        return market.tick_from(payload)

    async def post_ticks(self, body: bytes) -> int:
        """``POST /v1/ticks`` with ``body`` (``{"ticks": [...]}``, encoded by the feed, which
        writes its decimals in plain notation); how many ticks the API accepted."""
        answer = await self._request("POST", "/v1/ticks", content=body)
        return int(answer["accepted"])

    async def post_signal(self, signal: market.Signal) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("POST", "/v1/signals", json=signal.to_request())
        return result

    async def signals(
        self,
        *,
        agent: str | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[market.Signal]:
        params = {
            "agent": agent,
            "symbol": symbol,
            "since": since.isoformat() if since else None,
            "limit": limit,
        }
        rows = await self._request(
            "GET", "/v1/signals", params={k: v for k, v in params.items() if v is not None}
        )
        return [market.Signal.model_validate(row) for row in rows]

    async def post_order(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("POST", "/v1/orders", json=body)
        return result

    async def portfolio(self) -> Portfolio:
        return _parse_portfolio(await self._request("GET", "/v1/portfolio"))

    async def risk(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/v1/risk")
        return result

    async def heartbeat(self, name: str, *, role: str, symbols: list[str], model: str | None = None) -> None:
        body = {"role": role, "symbols": symbols, "model": model}
        await self._request("POST", f"/v1/agents/{name}/heartbeat", json=body)

    async def post_headline(
        self, *, text: str, source: str, ts: datetime, symbol: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "source": source, "ts": ts.isoformat()}
        if symbol:
            body["symbol"] = symbol
        result: dict[str, Any] = await self._request("POST", "/v1/headlines", json=body)
        return result

    async def headlines(
        self, *, symbol: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[market.Headline]:
        params = {"symbol": symbol, "since": since.isoformat() if since else None, "limit": limit}
        rows = await self._request(
            "GET", "/v1/headlines", params={k: v for k, v in params.items() if v is not None}
        )
        return [market.Headline.model_validate(row) for row in rows]
