"""The one map between Sapphire's symbols and an exchange's, for live venues and the ccxt feed.

Sapphire names an instrument ``BASE-QUOTE`` (``BTC-USD``); ccxt names it ``BASE/QUOTE``
(``BTC/USDT``). Quote currencies map through ``ccxt_quote_currencies`` (``USD`` ->
``USDT`` by default, since most crypto exchanges quote in a stablecoin); a symbol with no
quote (``AAPL``) has no exchange counterpart. The reverse map is the exact inverse, so a
symbol the exchange reports always comes back as the one Sapphire sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


class UnmappedSymbolError(ValueError):
    """A symbol with no counterpart on the other side; the message names it."""


@dataclasses.dataclass(frozen=True)
class SymbolMap:
    quote_currencies: Mapping[str, str]
    """Sapphire quote currency -> the exchange's."""

    def __post_init__(self) -> None:
        targets = list(self.quote_currencies.values())
        duplicated = sorted({quote for quote in targets if targets.count(quote) > 1})
        if duplicated:
            raise ValueError(
                f"ccxt_quote_currencies: {', '.join(duplicated)} is the target of two currencies"
            )

    def to_exchange(self, symbol: str) -> str:
        """``BTC-USD`` -> ``BTC/USDT``."""
        base, dash, quote = symbol.partition("-")
        if not dash:
            raise UnmappedSymbolError(
                f"{symbol!r} has no quote currency: it cannot trade on a crypto exchange"
            )
        return f"{base}/{self.currency(quote)}"

    def to_sapphire(self, exchange_symbol: str) -> str:
        """``BTC/USDT`` -> ``BTC-USD`` (also accepts ``BTC-USDT`` or ``BTC/USD`` as written by hand)."""
        base, slash, quote = exchange_symbol.upper().replace("-", "/").partition("/")
        if not slash:
            raise UnmappedSymbolError(f"{exchange_symbol!r} is not BASE/QUOTE")
        quote = quote.split(":")[0]  # derivatives' settle currency (BTC/USDT:USDT): spot first
        back = {target: source for source, target in self.quote_currencies.items()}
        return f"{base}-{back.get(quote, quote)}"

    def currency(self, currency: str) -> str:
        """The exchange's counterpart of a Sapphire currency: ``USD`` -> ``USDT``."""
        return self.quote_currencies.get(currency, currency)

    def base_and_quote(self, symbol: str) -> tuple[str, str]:
        """The exchange's currencies of a Sapphire symbol: ``BTC-USD`` -> (``BTC``, ``USDT``)."""
        base, _, quote = self.to_exchange(symbol).partition("/")
        return base, quote
