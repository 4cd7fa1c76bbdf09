"""What an instrument symbol looks like: ``BTC-USD``, ``ETH-USD``, ``AAPL``.

One pattern for the trader API's instruments and requests, the TradingAgent CRD's
``spec.symbols`` and the news feed's symbol tags, so the API server admits exactly the symbols
the trader API trades.
"""

from __future__ import annotations

SYMBOL_PART = r"[A-Z0-9]{1,12}"
"""One side of a pair, or a whole single-name symbol: upper-case letters and digits."""

SYMBOL_PATTERN = rf"^{SYMBOL_PART}(-{SYMBOL_PART})?$"
"""Instrument symbols: ``BTC-USD``, ``ETH-USD``, ``AAPL``."""
