"""Which symbols a headline mentions, through a configurable alias list.

An alias that looks like a ticker (upper-case letters and digits, ``BTC``, ``AAPL``) matches
only in upper case, as a whole word, optionally behind a ``$`` cashtag: "ETH" but not
"Ethiopia" or "eth". Any other alias is a name (``Bitcoin``, ``Ether``, ``Apple Inc``) and
matches as whole words in any case: "bitcoin's rally" mentions BTC-USD. The symbol itself
(``BTC-USD``) always counts as an alias of itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sapphire.domain.symbols import SYMBOL_PART

DEFAULT_ALIASES: dict[str, list[str]] = {
    "BTC-USD": ["BTC", "XBT", "Bitcoin"],
    "ETH-USD": ["ETH", "Ether", "Ethereum"],
    "AAPL": ["AAPL", "Apple"],
}
"""The aliases of the default instruments (``SAPPHIRE_NEWS_ALIASES`` replaces them)."""

_TICKER = re.compile(rf"^{SYMBOL_PART}$")


def alias_pattern(alias: str) -> re.Pattern[str]:
    """The regular expression one alias matches with (see the module docstring)."""
    words = r"\s+".join(re.escape(word) for word in alias.split())
    if _TICKER.match(alias):
        return re.compile(rf"(?<![A-Za-z0-9]){words}(?![A-Za-z0-9])")
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


class Tagger:
    """Tags text with symbols; built once from the alias list, then pure."""

    def __init__(self, aliases: Mapping[str, Sequence[str]]) -> None:
        self._patterns = [
            (symbol, [alias_pattern(alias) for alias in dict.fromkeys([symbol, *names])])
            for symbol, names in sorted(aliases.items())
        ]

    def symbols(self, text: str) -> list[str]:
        """The symbols ``text`` mentions, sorted; empty when it mentions none."""
        return [symbol for symbol, patterns in self._patterns if any(p.search(text) for p in patterns)]
