"""Building ccxt exchanges from the settings: the one place that knows ccxt's configuration.

Every exchange gets ccxt's own rate limiter (``enableRateLimit``), a timeout, spot markets
only, and numbers as strings (``exchange.number = str``) so that prices and quantities
become exact ``Decimal`` values, never floats. Keys come from the settings' secrets and are
scrubbed from every message that leaves this package (:func:`scrub`): a ccxt error can quote
the request it failed on.
"""

from __future__ import annotations

import urllib.parse
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt.async_support
import ccxt.pro

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, symbols
from sapphire.trader_api.settings import CcxtMarketDataSettings, TraderApiSettings

SPOT_OPTIONS = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,  # a private call on some exchanges; markets carry what we need
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


TRIGGER_PARAMS = {
    domain.OrderType.STOP: "stopLossPrice",
    domain.OrderType.STOP_LIMIT: "stopLossPrice",
    domain.OrderType.TAKE_PROFIT: "takeProfitPrice",
    domain.OrderType.TAKE_PROFIT_LIMIT: "takeProfitPrice",
}
"""ccxt's unified trigger parameter of each protective type an exchange may hold natively
(ccxt turns it into the exchange's own type: Binance's ``STOP_LOSS(_LIMIT)``,
``TAKE_PROFIT(_LIMIT)``). Trailing stops have none: ccxt's trailing orders follow the
exchange's rule (``trailingPercent`` of its own price), not the engine's, so they stay emulated.
ccxt's plain ``triggerPrice`` is not used: unless the exchange also takes ``triggerDirection``,
it does not say which way the price must cross, which is what tells a stop from a take-profit."""


class ExchangeConfigError(ValueError):
    """An exchange id ccxt does not know; the message names the setting."""


def build(settings: TraderApiSettings, exchange_id: str, *, setting: str, private: bool) -> Any:
    """A ccxt exchange (REST, ``ccxt.async_support``): with the venue's keys and sandbox mode
    when ``private``, public market data otherwise."""
    credentials: dict[str, str] = {}
    if private:
        for key, secret in (
            ("apiKey", settings.venue_api_key),
            ("secret", settings.venue_api_secret),
            ("password", settings.venue_api_password),
        ):
            if secret is not None:
                credentials[key] = secret.get_secret_value()
    exchange = _create(
        ccxt.async_support,
        exchange_id,
        setting=setting,
        timeout_seconds=settings.venue_timeout_seconds,
        credentials=credentials,
    )
    if private and settings.venue_sandbox:
        if not exchange.urls.get("test"):
            raise ExchangeConfigError(
                f"venue_sandbox: ccxt has no sandbox for {exchange_id}; set SAPPHIRE_VENUE_SANDBOX=false "
                "only if you mean to trade the real account"
            )
        exchange.set_sandbox_mode(True)
    return _at_origin(exchange, settings.ccxt_api_origin)


def build_market_data(
    settings: CcxtMarketDataSettings, exchange_id: str, *, setting: str, timeout_seconds: float
) -> Any:
    """A keyless ccxt exchange for streaming market data: ``ccxt.pro`` where it has the
    exchange (websockets), ``ccxt.async_support`` otherwise (REST only: the feed polls)."""
    module = ccxt.pro if exchange_id in ccxt.pro.exchanges else ccxt.async_support
    exchange = _create(module, exchange_id, setting=setting, timeout_seconds=timeout_seconds)
    return _at_origin(exchange, settings.ccxt_api_origin)


def check_exchange_id(exchange_id: str, *, setting: str) -> None:
    """Raise :class:`ExchangeConfigError` naming ``setting`` unless ccxt knows ``exchange_id``."""
    _exchange_class(ccxt.async_support, exchange_id, setting)


def _create(
    module: Any,
    exchange_id: str,
    *,
    setting: str,
    timeout_seconds: float,
    credentials: dict[str, str] | None = None,
) -> Any:
    exchange_class = _exchange_class(module, exchange_id, setting)
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(timeout_seconds * 1000),
        "options": dict(SPOT_OPTIONS),
        **(credentials or {}),
    }
    exchange = exchange_class(config)
    exchange.number = str
    return exchange


def _at_origin(exchange: Any, origin: str) -> Any:
    if origin:
        exchange.urls["api"] = _moved(exchange.urls["api"], origin)
    return exchange


def native_protective(exchange_id: str) -> frozenset[domain.OrderType]:
    """The protective types the exchange's spot market holds with their trigger, as ccxt's
    own ``features`` say (``spot.createOrder.stopLossPrice`` / ``takeProfitPrice``)."""
    exchange_class = _exchange_class(ccxt.async_support, exchange_id, "venue_exchange")
    features = exchange_class().features  # its description only: no session opens
    create = ((features or {}).get("spot") or {}).get("createOrder") or {}
    return frozenset(kind for kind, param in TRIGGER_PARAMS.items() if create.get(param))


def _exchange_class(module: Any, exchange_id: str, setting: str) -> Any:
    if exchange_id not in module.exchanges:
        raise ExchangeConfigError(f"{setting}: ccxt has no exchange {exchange_id!r}")
    return getattr(module, exchange_id)


def cash_asset(settings: TraderApiSettings) -> str:
    """The exchange's asset the account's cash is held in: ``USDT`` for ``USD`` by default."""
    return symbols.SymbolMap(settings.ccxt_quote_currencies).currency(settings.default_quote_currency)


async def opening_cash(settings: TraderApiSettings) -> Decimal:
    """The live venue's total balance of the cash asset: what a new account starts with.

    An exchange that does not answer is a clean refusal (503, the readiness probe retries),
    never a fallback to ``initial_cash``."""
    client = build(settings, settings.venue_exchange, setting="venue_exchange", private=True)
    try:
        balance = await client.fetch_balance()
    except ccxt.async_support.BaseError as error:
        reason = scrub(f"{type(error).__name__}: {error}", settings)
        raise errors.UnavailableError(
            f"venue: the exchange's opening balance could not be read: {reason}"
        ) from None
    finally:
        await client.close()
    return decimal((balance.get("total") or {}).get(cash_asset(settings)))


def _moved(urls: Any, origin: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` tree on ``origin`` (same paths; ws for websockets)."""
    if isinstance(urls, dict):
        return {key: _moved(value, origin) for key, value in urls.items()}
    if not isinstance(urls, str) or "://" not in urls:
        return urls
    target = urllib.parse.urlsplit(origin)
    parts = urllib.parse.urlsplit(urls)
    scheme = target.scheme
    if parts.scheme in ("ws", "wss"):
        scheme = "wss" if target.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, target.netloc, parts.path, parts.query, parts.fragment))


def scrub(text: str, settings: TraderApiSettings) -> str:
    """``text`` with every venue secret replaced by ``***``."""
    for secret in (settings.venue_api_key, settings.venue_api_secret, settings.venue_api_password):
        value = secret.get_secret_value() if secret is not None else ""
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def decimal(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    """A ccxt number (a string with ``number = str``) as a Decimal; ``default`` when absent."""
    if value is None or value == "":
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return default
