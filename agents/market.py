"""Wire shapes the agents read and write: ticks, headlines and signals.

These mirror the trader API's contract (decimals as strings, timestamps ISO-8601), so one
pydantic model parses a Redis tick, a ``/v1/signals`` row and a bus message alike. Prices,
quantities, strength and confidence are :class:`~decimal.Decimal` end to end: the statistics
the indicators compute may use floats, but nothing that becomes an order does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import pydantic

from sapphire.domain.risk import RiskState as RiskState
from sapphire.domain.signals import Direction as Direction

UnitInterval = Annotated[Decimal, pydantic.Field(ge=0, le=1)]
SignedUnit = Annotated[Decimal, pydantic.Field(ge=-1, le=1)]
AnsweredDirection = Annotated[
    Direction,
    pydantic.WithJsonSchema(
        {"enum": [direction.value for direction in Direction], "title": "Direction", "type": "string"}
    ),
]
"""A :class:`Direction` in an LLM's answer: its JSON schema states the values inline, since not
every provider's structured output resolves a ``$ref``."""


class _Wire(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")


class Tick(msgspec.Struct, frozen=True):
    """One quote/trade update from ``{prefix}ticks:{SYMBOL}``: decoded by :func:`decode_tick`
    in one pass (msgspec, in C), once per tick, into exact decimals. Unknown fields are ignored."""

    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    ts: datetime
    size: Decimal = Decimal(0)

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


_TICK = msgspec.json.Decoder(Tick)


def decode_tick(data: str | bytes) -> Tick:
    """A tick from its bus JSON; :class:`BadMessageError` (a ValueError) names what is wrong."""
    try:
        return _TICK.decode(data)
    except msgspec.DecodeError as error:
        raise BadMessageError(f"tick: {error}") from None


def tick_from(payload: dict[str, Any]) -> Tick:
    """A tick from already parsed JSON (an API answer)."""
    try:
        return msgspec.convert(payload, Tick, strict=False)
    except msgspec.ValidationError as error:
        raise BadMessageError(f"tick: {error}") from None


class BadMessageError(ValueError):
    """A bus message or answer that does not have the shape of the contract."""


class Headline(_Wire):
    """A news headline ingested through ``/v1/headlines``."""

    symbol: str | None = None
    text: str = pydantic.Field(validation_alias=pydantic.AliasChoices("text", "headline", "title"))
    source: str | None = None
    ts: datetime = pydantic.Field(
        default_factory=lambda: datetime.now(UTC),
        validation_alias=pydantic.AliasChoices("ts", "published_at", "created_at"),
    )


class Signal(_Wire):
    """An analyst's opinion about one symbol, as posted to ``POST /v1/signals``.

    ``strength`` is signed (-1..1) and agrees with ``direction``; ``confidence`` (0..1) says
    how much the analyst trusts it. ``ts`` is when it was formed; the stored copy coming back
    from the API or the bus may carry ``created_at`` instead.
    """

    agent: str
    role: str
    symbol: str
    direction: Direction
    strength: SignedUnit
    confidence: UnitInterval
    horizon_seconds: int = pydantic.Field(gt=0)
    rationale: str = pydantic.Field(min_length=1)
    model: str | None = None
    ts: datetime = pydantic.Field(
        default_factory=lambda: datetime.now(UTC),
        validation_alias=pydantic.AliasChoices("ts", "created_at", "timestamp"),
    )

    def to_request(self) -> dict[str, Any]:
        """The ``POST /v1/signals`` body, with the analyst's own ``ts`` (the API keeps it)."""
        body: dict[str, Any] = {
            "ts": self.ts.isoformat(),
            "agent": self.agent,
            "role": self.role,
            "symbol": self.symbol,
            "direction": self.direction.value,
            "strength": str(self.strength),
            "confidence": str(self.confidence),
            "horizon_seconds": self.horizon_seconds,
            "rationale": self.rationale,
        }
        if self.model:
            body["model"] = self.model
        return body


def quantize_unit(value: float | Decimal, places: str = "0.0001") -> Decimal:
    """A float score turned into a bounded Decimal on the wire grid (-1..1)."""
    clipped = max(-1.0, min(1.0, float(value)))
    return Decimal(repr(clipped)).quantize(Decimal(places))


def make_signal(
    *,
    agent: str,
    role: str,
    symbol: str,
    score: float,
    confidence: float,
    horizon_seconds: int,
    rationale: str,
    now: datetime,
    model: str | None = None,
    deadband: float = 0.0,
) -> Signal:
    """Build a consistent signal from a signed score: direction follows the sign of the score."""
    strength = quantize_unit(score)
    if abs(float(strength)) <= deadband or strength == 0:
        direction = Direction.FLAT
    else:
        direction = Direction.LONG if strength > 0 else Direction.SHORT
    return Signal(
        agent=agent,
        role=role,
        symbol=symbol,
        direction=direction,
        strength=strength if direction is not Direction.FLAT else Decimal(0),
        confidence=abs(quantize_unit(confidence)),
        horizon_seconds=horizon_seconds,
        rationale=rationale,
        model=model,
        ts=now,
    )
