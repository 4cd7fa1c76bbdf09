"""Sentiment: what the news says about a symbol.

Offline it scores headlines with VADER (a maintained, rule-based lexicon tuned for short
social/news text) and averages them with a time decay. With a model configured it asks
the LLM for a structured verdict on the recent headlines instead; if the model fails, the
analyst abstains for that round rather than silently switching methods, so every signal's
``model`` field tells the truth about how it was made.

Headlines without a symbol are market-wide and count for every symbol.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import pydantic
from vaderSentiment import vaderSentiment

from sapphire.agents import market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm

MARKET_WIDE = "*"


@dataclass(frozen=True)
class SentimentParams:
    lookback: timedelta = timedelta(hours=6)
    half_life_seconds: float = 3600.0
    entry_score: float = 0.05
    """VADER's own neutral band is |compound| < 0.05."""
    full_confidence_headlines: int = 5
    horizon_seconds: int = 1800
    max_headlines: int = 50


class SentimentVerdict(pydantic.BaseModel):
    """What the LLM must answer."""

    direction: market.AnsweredDirection
    strength: float = pydantic.Field(ge=-1, le=1)
    confidence: float = pydantic.Field(ge=0, le=1)
    rationale: str = pydantic.Field(min_length=1, max_length=1000)


@dataclass(frozen=True)
class _Scored:
    headline: market.Headline
    compound: float


SYSTEM_PROMPT = (
    "You are a sentiment analyst on a trading desk. Judge only from the headlines given. "
    "Answer with one JSON object: direction (long, short or flat), strength (-1..1, sign agreeing "
    "with direction), confidence (0..1) and a one-sentence rationale. If the headlines say nothing "
    "material, answer flat with low confidence."
)


class SentimentAnalyst(base.Analyst):
    role = "sentiment"

    def __init__(
        self, *, agent: str, model: llm.StructuredModel | None = None, params: SentimentParams | None = None
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or SentimentParams()
        self._vader = vaderSentiment.SentimentIntensityAnalyzer()
        self._headlines: dict[str, deque[_Scored]] = {}
        self._seen: set[tuple[str, str]] = set()
        self._asked: dict[str, int] = {}
        self._generation: dict[str, int] = {}

    def observe(self, tick: market.Tick) -> None:
        """Prices do not move this analyst."""

    def observe_headline(self, headline: market.Headline) -> None:
        key = (headline.symbol or MARKET_WIDE, headline.text)
        if key in self._seen:
            return  # polling with overlapping ``since`` windows sees the same headline again
        self._seen.add(key)
        compound = float(self._vader.polarity_scores(headline.text)["compound"])
        bucket = self._headlines.setdefault(key[0], deque(maxlen=self.params.max_headlines))
        bucket.append(_Scored(headline, compound))
        self._generation[key[0]] = self._generation.get(key[0], 0) + 1

    def forget(self, symbol: str) -> None:
        self._headlines.pop(symbol, None)

    def recent(self, symbol: str, now: datetime) -> list[_Scored]:
        since = now - self.params.lookback
        scored = [*self._headlines.get(symbol, ()), *self._headlines.get(MARKET_WIDE, ())]
        return sorted((s for s in scored if s.headline.ts >= since), key=lambda s: s.headline.ts)

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        recent = self.recent(symbol, now)
        if not recent:
            return None
        weights = [
            0.5 ** (max((now - s.headline.ts).total_seconds(), 0) / self.params.half_life_seconds)
            for s in recent
        ]
        score = sum(w * s.compound for w, s in zip(weights, recent, strict=True)) / sum(weights)
        if abs(score) < self.params.entry_score:
            return None
        coverage = min(1.0, len(recent) / self.params.full_confidence_headlines)
        strongest = max(recent, key=lambda s: abs(s.compound))
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=score,
            confidence=coverage * min(1.0, math.sqrt(abs(score))),
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"VADER mean compound {score:+.2f} over {len(recent)} headline(s); "
                f"strongest: {strongest.headline.text[:120]!r} ({strongest.compound:+.2f})"
            ),
            now=now,
        )

    async def assess(self, symbol: str, now: datetime) -> market.Signal | None:
        if self.model is None:
            return self.evaluate(symbol, now)
        recent = self.recent(symbol, now)
        if not recent:
            return None
        generation = self._generation.get(symbol, 0) + self._generation.get(MARKET_WIDE, 0)
        if self._asked.get(symbol) == generation:
            return None  # nothing new since the last verdict: do not spend a model call
        self._asked[symbol] = generation
        lines = [{"ts": s.headline.ts.isoformat(), "headline": s.headline.text} for s in recent[-20:]]
        verdict = await self.model.ask(
            system=SYSTEM_PROMPT,
            prompt=f"Symbol: {symbol}\nHeadlines (oldest first):\n{json.dumps(lines, indent=1)}",
            schema=SentimentVerdict,
        )
        if verdict is None:
            return None
        sign = verdict.direction.sign
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=sign * abs(verdict.strength),
            confidence=verdict.confidence,
            horizon_seconds=self.params.horizon_seconds,
            rationale=f"LLM on {len(lines)} headline(s): {verdict.rationale}",
            model=self.model.label,
            now=now,
        )
