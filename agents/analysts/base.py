"""What every analyst is: an O(1) observer of ticks that, when asked, emits a signal or abstains.

The runtime feeds :meth:`Analyst.observe` on every tick (cheap, synchronous, no I/O) and
calls :meth:`Analyst.assess` once per symbol per interval. ``assess`` is async only so that
the two LLM-backed analysts (sentiment, strategist) can await their model; the four
deterministic ones answer from :meth:`Analyst.evaluate`, which is pure and what their
tests call. Returning ``None`` is an abstention: no opinion is better than a guessed one.
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import ClassVar

from sapphire.agents import market
from sapphire.agents.llm import base as llm


class Analyst(abc.ABC):
    """Base class; subclasses keep per-symbol state and set :attr:`role`."""

    role: ClassVar[str]

    def __init__(self, *, agent: str, model: llm.StructuredModel | None = None) -> None:
        self.agent = agent
        self.model = model

    @abc.abstractmethod
    def observe(self, tick: market.Tick) -> None:
        """Fold one tick into the indicators. Must be O(1) and never raise on odd data."""

    def observe_headline(self, headline: market.Headline) -> None:  # noqa: B027 - optional hook
        """Headlines matter to the sentiment analyst only."""

    def observe_signal(self, signal: market.Signal) -> None:  # noqa: B027 - optional hook
        """Other agents' signals matter to the strategist only."""

    def forget(self, symbol: str) -> None:  # noqa: B027 - optional hook
        """Drop a symbol's state (all-market mode, when an instrument is delisted)."""

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        """The deterministic opinion about ``symbol`` now, or None to abstain."""
        return None

    async def assess(self, symbol: str, now: datetime) -> market.Signal | None:
        """The opinion to publish for ``symbol`` now, or None to abstain."""
        return self.evaluate(symbol, now)
