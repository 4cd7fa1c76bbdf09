"""Key and channel names on the bus (documented in the package docstring)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Names:
    prefix: str

    def quote(self, symbol: str) -> str:
        return f"{self.prefix}quote:{symbol}"

    def ticks(self, symbol: str) -> str:
        return f"{self.prefix}ticks:{symbol}"

    @property
    def signals(self) -> str:
        return f"{self.prefix}signals"

    @property
    def risk(self) -> str:
        return f"{self.prefix}risk"

    @property
    def orders(self) -> str:
        return f"{self.prefix}orders"

    @property
    def fills(self) -> str:
        return f"{self.prefix}fills"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def venue(self) -> str:
        """Reports of the live venue: reconciliation differences and outages."""
        return f"{self.prefix}venue"
