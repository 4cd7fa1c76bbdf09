"""A local Binance spot exchange for the tests: HTTP and WebSocket on loopback, in Binance's
own wire format, so the real ccxt client (``ccxt.async_support.binance`` and ``ccxt.pro``)
trades against it with no internet.

Written from Binance's public spot API documentation
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api and ``.../web-socket-streams``):

* ``GET /api/v3/ping``, ``/time``, ``/exchangeInfo`` (PRICE_FILTER, LOT_SIZE, NOTIONAL filters),
  ``/ticker/bookTicker``, ``/ticker/24hr``, ``/klines`` (``startTime``/``endTime``/``limit``);
* SIGNED (HMAC-SHA256 of the total params with the secret, ``X-MBX-APIKEY`` header):
  ``POST/GET/DELETE /api/v3/order`` (``orderId`` or ``origClientOrderId``), ``GET /openOrders``,
  ``/myTrades``, ``/account``. A wrong key answers ``-2015``; a wrong signature ``-1022``;
  a timestamp outside ``recvWindow`` ``-1021``. Errors are ``{"code": -N, "msg": ...}``.
* ``/ws/<n>``: ``SUBSCRIBE`` to ``<symbol>@ticker`` (``24hrTicker`` events) and
  ``<symbol>@bookTicker``.

Matching is deliberately simple: a market order, or a limit order that crosses the book,
fills at the touch (in full, or ``fill_ratio`` of it, the rest resting for a limit and
expiring for a market order, as Binance's EXPIRED); resting orders fill when the test calls
:meth:`FakeBinance.trade`. ``STOP_LOSS_LIMIT`` and ``TAKE_PROFIT_LIMIT`` orders (``stopPrice``,
``price``, ``timeInForce``) and ``STOP_LOSS`` and ``TAKE_PROFIT`` orders (``stopPrice``) rest
with ``isWorking`` false until :meth:`FakeBinance.set_price` moves the last price to their stop
price (Binance's trigger rule, :func:`_triggers`; one that would trigger at once is refused,
``-2010``), then work as limit orders, or as market orders filling in full at the touch.
Commission is charged in the quote asset (an account that pays fees in the quote currency),
``commission_bps`` of the notional.

The test can also make the exchange: hold an order's answer (``hold_next_answer``: the
order is placed at once, the answer never comes in time: a client timeout), refuse for want of
balance (``-2010``, as Binance does when the balance is short), go down (HTTP 503), or hold an
order and trades the engine never sent (:meth:`FakeBinance.place_foreign`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import decimal
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

API_KEY = "fake-binance-api-key-0123456789abcdef"
SECRET = "fake-binance-secret-do-not-leak-9f8e7d6c5b4a"
RECV_WINDOW_MS = 60_000


@dataclasses.dataclass(frozen=True)
class Market:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal("5")


MARKETS = (
    Market("BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001")),
    Market("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.0001")),
)


TRIGGERED = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
"""Binance spot's triggered order types that the fake matches: the ``*_LIMIT`` ones work as
limit orders once triggered, ``STOP_LOSS`` and ``TAKE_PROFIT`` as market orders."""


def _triggers(kind: str, side: str, stop: Decimal, last: Decimal) -> bool:
    """Binance's rule: a sell stop-loss (and a buy take-profit) triggers at or below its stop
    price, a buy stop-loss (and a sell take-profit) at or above it."""
    falling = kind.startswith("STOP_LOSS") == (side == "SELL")
    return last <= stop if falling else last >= stop


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _s(value: Decimal) -> str:
    """Binance prints decimals with 8 places: ``"0.00100000"``."""
    return format(value.quantize(Decimal("0.00000001")), "f")


@dataclasses.dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote_executed: Decimal = Decimal(0)
    time_ms: int = 0
    update_ms: int = 0
    stop_price: Decimal = Decimal(0)
    """Of a ``STOP_LOSS_LIMIT`` / ``TAKE_PROFIT_LIMIT`` order: the last price that triggers it."""
    working: bool = True
    """False until a stop or take-profit order triggers (Binance's ``isWorking``)."""
    working_ms: int = -1

    def wire(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _s(self.price),
            "origQty": _s(self.quantity),
            "executedQty": _s(self.executed),
            "cummulativeQuoteQty": _s(self.quote_executed),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": _s(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.update_ms,
            "isWorking": self.working,
            "workingTime": self.working_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclasses.dataclass
class FakeTrade:
    trade_id: int
    order: FakeOrder
    price: Decimal
    qty: Decimal
    commission: Decimal
    maker: bool
    time_ms: int

    def wire(self) -> dict[str, Any]:
        return {
            "symbol": self.order.symbol,
            "id": self.trade_id,
            "orderId": self.order.order_id,
            "orderListId": -1,
            "price": _s(self.price),
            "qty": _s(self.qty),
            "quoteQty": _s(self.price * self.qty),
            "commission": _s(self.commission),
            "commissionAsset": "USDT",
            "time": self.time_ms,
            "isBuyer": self.order.side == "BUY",
            "isMaker": self.maker,
            "isBestMatch": True,
        }

    def fill(self) -> dict[str, Any]:
        return {
            "price": _s(self.price),
            "qty": _s(self.qty),
            "commission": _s(self.commission),
            "commissionAsset": "USDT",
            "tradeId": self.trade_id,
        }


@dataclasses.dataclass
class Book:
    bid: Decimal
    ask: Decimal
    last: Decimal
    size: Decimal = Decimal("1")


class FakeBinance:
    def __init__(self) -> None:
        self.markets = {m.symbol: m for m in MARKETS}
        self.books = {
            "BTCUSDT": Book(Decimal("64999.99"), Decimal("65000.01"), Decimal("65000.00")),
            "ETHUSDT": Book(Decimal("3199.99"), Decimal("3200.01"), Decimal("3200.00")),
        }
        self.balances: dict[str, Decimal] = {"USDT": Decimal("1000000"), "BTC": Decimal(0), "ETH": Decimal(0)}
        self.orders: dict[int, FakeOrder] = {}
        self.trades: list[FakeTrade] = []
        self._ids = itertools.count(28_000_001)
        self._trade_ids = itertools.count(5_100_001)
        self.commission_bps = Decimal("10")
        # What the test makes the exchange do:
        self.fill_ratio = Decimal(1)
        """Of an order that crosses on arrival, the share that fills at once."""
        self.hold_next_answer = False
        """The next order placement is made at once, but its answer is held until the fake stops
        (the client's own timeout is what the test sees): no wall-clock delay to tune."""
        self.released = asyncio.Event()
        self.lose_next_orders = 0
        """The next order placements fail before the matching engine sees them (HTTP 504, as
        Binance answers when its gateway times out): nothing is placed."""
        self.down = False
        """Every request answers HTTP 503 (the exchange is under maintenance)."""
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in order."""
        self.signature_failures = 0
        self.trade_page_limit = 1000
        """The most trades one ``GET /api/v3/myTrades`` answers (Binance: 1000); a test lowers it
        to make a busy account's history span pages."""
        self.klines: dict[str, list[list[Any]]] = {}
        """Closed candles per symbol, in ``GET /api/v3/klines``' row format (see :meth:`add_klines`)."""
        self.ticker_times: dict[str, int] = {}
        """The event time (ms, ``E`` and ``C``) of the last ticker event sent per symbol."""
        self._sockets: set[web.WebSocketResponse] = set()
        self._subscriptions: dict[web.WebSocketResponse, set[str]] = {}
        self.url = ""

    # What the test does -----------------------------------------------------------------

    @property
    def placements(self) -> int:
        """Orders the exchange has opened (including foreign ones)."""
        return len(self.orders)

    def by_client_id(self, client_order_id: str) -> FakeOrder | None:
        return next((o for o in self.orders.values() if o.client_order_id == client_order_id), None)

    def trade(self, order: FakeOrder, qty: Decimal, price: Decimal | None = None) -> FakeTrade:
        """A resting order trades ``qty`` against the market (a maker fill)."""
        return self._execute(order, qty, order.price if price is None else price, maker=True)

    def add_klines(self, symbol: str, *, start_ms: int, interval_ms: int, closes: list[Decimal]) -> None:
        """Candles of ``symbol``, one per close, from ``start_ms``: open at the previous close,
        high/low a tick either side of the two, a volume that grows with the index."""
        rows = self.klines.setdefault(symbol, [])
        previous = closes[0]
        for index, close in enumerate(closes):
            opened = start_ms + index * interval_ms
            high, low = max(previous, close) + Decimal("0.01"), min(previous, close) - Decimal("0.01")
            volume = Decimal(index + 1) / 10
            rows.append([
                opened, _s(previous), _s(high), _s(low), _s(close), _s(volume), opened + interval_ms - 1,
                _s(volume * close), index + 1, _s(volume / 2), _s(volume * close / 2), "0",
            ])  # fmt: skip
            previous = close

    def place_foreign(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, client_order_id: str
    ) -> FakeOrder:
        """An order the engine never sent (placed by hand on the exchange's website)."""
        return self._open(symbol, side, "LIMIT", "GTC", qty, price, client_order_id)

    async def set_price(self, symbol: str, bid: Decimal, ask: Decimal, size: Decimal = Decimal(1)) -> None:
        """Move the book, and push the new ticker to every subscribed websocket."""
        self.books[symbol] = Book(bid, ask, (bid + ask) / 2, size)
        self._trigger(symbol)
        for socket, streams in list(self._subscriptions.items()):
            lower = symbol.lower()
            with contextlib.suppress(ConnectionError, RuntimeError):
                if f"{lower}@ticker" in streams:
                    await socket.send_str(json.dumps(self._ticker_event(symbol)))
                if f"{lower}@bookTicker" in streams:
                    await socket.send_str(json.dumps(self._book_ticker(symbol)))

    async def drop_websockets(self) -> None:
        """Close every stream (a network blip): clients must reconnect."""
        for socket in list(self._sockets):
            await socket.close()

    # Matching ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(time.time() * 1000)

    def _open(
        self, symbol: str, side: str, kind: str, tif: str, qty: Decimal, price: Decimal, client_order_id: str
    ) -> FakeOrder:
        now = self._now()
        order = FakeOrder(next(self._ids), client_order_id, symbol, side, kind, tif, qty, price, time_ms=now)
        order.update_ms = order.working_ms = now
        self.orders[order.order_id] = order
        return order

    def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool) -> FakeTrade:
        market = self.markets[order.symbol]
        notional = qty * price
        commission = (notional * self.commission_bps / 10_000).quantize(Decimal("0.00000001"))
        sign = 1 if order.side == "BUY" else -1
        self.balances[market.base] += sign * qty
        self.balances[market.quote] -= sign * notional + commission
        order.executed += qty
        order.quote_executed += notional
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.update_ms = self._now()
        trade = FakeTrade(next(self._trade_ids), order, price, qty, commission, maker, order.update_ms)
        self.trades.append(trade)
        return trade

    def _new_order(self, params: dict[str, str]) -> tuple[FakeOrder, list[FakeTrade]]:
        symbol = params.get("symbol", "")
        market = self.markets.get(symbol)
        if market is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT", *TRIGGERED):
            raise BinanceError(400, -1116, "Invalid orderType.")
        client_order_id = params.get("newClientOrderId") or f"auto-{next(self._ids)}"
        if any(
            o.client_order_id == client_order_id and o.status in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders.values()
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params.get("price", "0"))
        except (KeyError, decimal.InvalidOperation):
            raise BinanceError(
                400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
            ) from None
        if qty % market.step_size != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if kind not in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") and price % market.tick_size != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if kind in TRIGGERED:
            return self._new_triggered(params, market, client_order_id, qty, price), []
        book = self.books[symbol]
        touch = book.ask if side == "BUY" else book.bid
        crosses = kind == "MARKET" or (price >= touch if side == "BUY" else price <= touch)
        if qty * (touch if kind == "MARKET" else price) < market.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        need_asset, need = (
            (market.quote, qty * (touch if crosses else price)) if side == "BUY" else (market.base, qty)
        )
        if self.balances[need_asset] < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        tif = params.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC"
        order = self._open(
            symbol, side, kind, tif, qty, price if kind == "LIMIT" else Decimal(0), client_order_id
        )
        trades = []
        if crosses:
            now_qty = (qty * self.fill_ratio // market.step_size) * market.step_size
            if now_qty > 0:
                trades.append(self._execute(order, now_qty, touch, maker=False))
            if order.status != "FILLED" and (kind == "MARKET" or tif == "IOC"):
                order.status = "EXPIRED"
        return order, trades

    def _new_triggered(
        self, params: dict[str, str], market: Market, client_order_id: str, qty: Decimal, price: Decimal
    ) -> FakeOrder:
        """A triggered order: it rests, not working, until the last price reaches ``stopPrice``;
        then it works as a limit order at ``price`` (``*_LIMIT``) or a market order."""
        kind, side = params["type"], params["side"]
        limit = kind.endswith("_LIMIT")
        for name in ("stopPrice", "timeInForce") if limit else ("stopPrice",):
            if not params.get(name):
                raise BinanceError(
                    400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
        stop = Decimal(params["stopPrice"])
        if stop % market.tick_size != 0:
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if _triggers(kind, side, stop, self.books[market.symbol].last):
            raise BinanceError(400, -2010, "Order would trigger immediately.")
        need_asset, need = (
            (market.quote, qty * (price if limit else stop)) if side == "BUY" else (market.base, qty)
        )
        if self.balances[need_asset] < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        tif = params["timeInForce"] if limit else "GTC"
        order = self._open(
            market.symbol, side, kind, tif, qty, price if limit else Decimal(0), client_order_id
        )
        order.stop_price, order.working, order.working_ms = stop, False, -1
        return order

    def _trigger(self, symbol: str) -> None:
        """Stop and take-profit orders the last price has reached start working; one that
        crosses the book fills at the touch."""
        book = self.books[symbol]
        for order in list(self.orders.values()):
            if order.symbol != symbol or order.working or order.status != "NEW":
                continue
            if not _triggers(order.type, order.side, order.stop_price, book.last):
                continue
            order.working, order.working_ms = True, self._now()
            touch = book.ask if order.side == "BUY" else book.bid
            if not order.type.endswith("_LIMIT") or (
                order.price >= touch if order.side == "BUY" else order.price <= touch
            ):
                self._execute(order, order.quantity, touch, maker=False)
            elif order.time_in_force == "IOC":
                order.status = "EXPIRED"

    # HTTP -------------------------------------------------------------------------------

    def _check_signature(self, request: web.Request, query: str, body: str) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        if "&signature=" not in "&" + total:
            raise BinanceError(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        payload, _, signature = total.rpartition("signature=")
        payload = payload.rstrip("&")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.split("&")[0]):
            self.signature_failures += 1
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(urllib.parse.parse_qsl(query)) | dict(urllib.parse.parse_qsl(body))
        window = int(params.get("recvWindow", "5000"))
        if abs(self._now() - int(params.get("timestamp", "0"))) > max(window, RECV_WINDOW_MS):
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def _order_of(self, params: dict[str, str]) -> FakeOrder:
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        else:
            order = self.by_client_id(params.get("origClientOrderId", ""))
        if order is None or order.symbol != params.get("symbol"):
            raise BinanceError(400, -2013, "Order does not exist.")
        return order

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path))
        if path.startswith("/ws"):
            return await self._websocket(request)
        if self.down:
            return web.Response(status=503, text="<html><body>503 Service Unavailable</body></html>")
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode()
        try:
            answer = await self._route(request, path, query, body)
        except BinanceError as error:
            return web.json_response({"code": error.code, "msg": error.msg}, status=error.status)
        return web.json_response(answer)

    async def _route(self, request: web.Request, path: str, query: str, body: str) -> Any:
        public = dict(urllib.parse.parse_qsl(query))
        match request.method, path:
            case "GET", "/api/v3/ping":
                return {}
            case "GET", "/api/v3/time":
                return {"serverTime": self._now()}
            case "GET", "/api/v3/exchangeInfo":
                return self._exchange_info()
            case "GET", "/api/v3/ticker/bookTicker":
                return self._book_ticker(public.get("symbol", ""))
            case "GET", "/api/v3/ticker/24hr":
                return self._ticker_24hr(public.get("symbol", ""))
            case "GET", "/api/v3/klines":
                return self._klines(public)
        params = self._check_signature(request, query, body)
        match request.method, path:
            case "POST", "/api/v3/order":
                if self.lose_next_orders:
                    self.lose_next_orders -= 1
                    raise BinanceError(504, -1007, "Timeout waiting for response from backend server.")
                order, trades = self._new_order(params)
                if self.hold_next_answer:
                    self.hold_next_answer = False
                    await self.released.wait()  # the exchange never answers in time: the client times out
                return {**order.wire(), "transactTime": order.time_ms, "fills": [t.fill() for t in trades]}
            case "GET", "/api/v3/order":
                return self._order_of(params).wire()
            case "DELETE", "/api/v3/order":
                order = self._order_of(params)
                if order.status not in ("NEW", "PARTIALLY_FILLED"):
                    raise BinanceError(400, -2011, "Unknown order sent.")
                order.status, order.update_ms = "CANCELED", self._now()
                return order.wire()
            case "GET", "/api/v3/openOrders":
                symbol = params.get("symbol")
                return [
                    o.wire()
                    for o in self.orders.values()
                    if o.status in ("NEW", "PARTIALLY_FILLED") and symbol in (None, o.symbol)
                ]
            case "GET", "/api/v3/myTrades":
                return self._my_trades(params)
            case "GET", "/api/v3/account":
                return self._account()
        raise BinanceError(404, -1000, f"An unknown error occured while processing the request: {path}")

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Binance's account trades: oldest first, at most ``limit`` (default 500, at most
        :attr:`trade_page_limit`); from ``startTime`` on when given, else the most recent ones."""
        trades = [
            t
            for t in self.trades
            if t.order.symbol == params.get("symbol")
            and ("orderId" not in params or str(t.order.order_id) == params["orderId"])
            and t.time_ms >= int(params.get("startTime", 0))
            and t.time_ms <= int(params.get("endTime", 2**62))
        ]
        limit = min(int(params.get("limit", 500)), self.trade_page_limit)
        page = trades[:limit] if "startTime" in params else trades[-limit:]
        return [t.wire() for t in page]

    def _klines(self, params: dict[str, str]) -> list[list[Any]]:
        """Binance's klines: rows with ``startTime <= openTime <= endTime``, oldest first, at most
        ``limit`` (default 500, max 1000); without a start, the most recent ones."""
        if params.get("symbol") not in self.markets:
            raise BinanceError(400, -1121, "Invalid symbol.")
        if "interval" not in params:
            raise BinanceError(
                400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
            )
        limit = min(int(params.get("limit", 500)), 1000)
        rows = self.klines.get(params["symbol"], [])
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        chosen = [row for row in rows if start <= row[0] <= end]
        return chosen[:limit] if "startTime" in params else chosen[-limit:]

    def _exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": m.symbol,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", *TRIGGERED],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _s(m.tick_size),
                            "maxPrice": "1000000.00000000",
                            "tickSize": _s(m.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _s(m.step_size),
                            "maxQty": "9000.00000000",
                            "stepSize": _s(m.step_size),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _s(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
                for m in self.markets.values()
            ],
        }

    def _book_ticker(self, symbol: str) -> dict[str, Any]:
        book = self._book(symbol)
        return {
            "u": self._now(),
            "s": symbol,
            "symbol": symbol,
            "bidPrice": _s(book.bid),
            "bidQty": _s(book.size),
            "askPrice": _s(book.ask),
            "askQty": _s(book.size),
            "b": _s(book.bid),
            "B": _s(book.size),
            "a": _s(book.ask),
            "A": _s(book.size),
        }

    def _book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return book

    def _ticker_24hr(self, symbol: str) -> dict[str, Any]:
        book, now = self._book(symbol), self._now()
        return {
            "symbol": symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _s(book.last),
            "prevClosePrice": _s(book.last),
            "lastPrice": _s(book.last),
            "lastQty": _s(book.size),
            "bidPrice": _s(book.bid),
            "bidQty": _s(book.size),
            "askPrice": _s(book.ask),
            "askQty": _s(book.size),
            "openPrice": _s(book.last),
            "highPrice": _s(book.ask),
            "lowPrice": _s(book.bid),
            "volume": "1000.00000000",
            "quoteVolume": _s(book.last * 1000),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1000,
            "count": 1000,
        }

    def _ticker_event(self, symbol: str) -> dict[str, Any]:
        book, now = self._book(symbol), self._now()
        self.ticker_times[symbol] = now
        return {
            "e": "24hrTicker",
            "E": now,
            "s": symbol,
            "p": "0.00000000",
            "P": "0.000",
            "w": _s(book.last),
            "x": _s(book.last),
            "c": _s(book.last),
            "Q": _s(book.size),
            "b": _s(book.bid),
            "B": _s(book.size),
            "a": _s(book.ask),
            "A": _s(book.size),
            "o": _s(book.last),
            "h": _s(book.ask),
            "l": _s(book.bid),
            "v": "1000.00000000",
            "q": _s(book.last * 1000),
            "O": now - 86_400_000,
            "C": now,
            "F": 1,
            "L": 1000,
            "n": 1000,
        }

    def _account(self) -> dict[str, Any]:
        locked: dict[str, Decimal] = {}
        for o in self.orders.values():
            if o.status in ("NEW", "PARTIALLY_FILLED"):
                market = self.markets[o.symbol]
                if o.side == "BUY":
                    locked[market.quote] = (
                        locked.get(market.quote, Decimal(0)) + (o.quantity - o.executed) * o.price
                    )
                else:
                    locked[market.base] = locked.get(market.base, Decimal(0)) + o.quantity - o.executed
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self._now(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": asset,
                    "free": _s(amount - locked.get(asset, Decimal(0))),
                    "locked": _s(locked.get(asset, Decimal(0))),
                }
                for asset, amount in self.balances.items()
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    # WebSocket --------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.add(socket)
        streams = self._subscriptions.setdefault(socket, set())
        try:
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                command = json.loads(message.data)
                if command.get("method") == "SUBSCRIBE":
                    streams.update(command.get("params", []))
                    await socket.send_str(json.dumps({"result": None, "id": command.get("id")}))
                    for stream in command.get("params", []):
                        symbol, _, channel = stream.partition("@")
                        if symbol.upper() in self.books:
                            event = (
                                self._ticker_event(symbol.upper())
                                if channel == "ticker"
                                else self._book_ticker(symbol.upper())
                            )
                            await socket.send_str(json.dumps(event))
                elif command.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(command.get("params", []))
                    await socket.send_str(json.dumps({"result": None, "id": command.get("id")}))
        finally:
            self._sockets.discard(socket)
            self._subscriptions.pop(socket, None)
        return socket


@contextlib.asynccontextmanager
async def running_fake_binance() -> AsyncIterator[FakeBinance]:
    """The fake exchange on a free loopback port, in the running event loop; ``.url`` is its origin."""
    fake = FakeBinance()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        fake.released.set()  # held answers go out, so the server can stop
        await fake.drop_websockets()
        await runner.cleanup()
