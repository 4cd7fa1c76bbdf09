"""Constrained types shared by the wire models; every constraint error names its field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, PlainSerializer
from pydantic import BaseModel as _BaseModel

from sapphire.domain.symbols import SYMBOL_PATTERN

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    # Bounded, so that converting an extreme offset to UTC can never overflow.
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 1970-01-01 and 2100-01-01")
    return value.astimezone(UTC)


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


DecimalString = PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")
"""Decimals go out as plain strings ("0.00001", never "1E-5")."""

Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTC-USD"])]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["momentum-btc"])]
Role = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", examples=["momentum"])]
Text = Annotated[str, Field(max_length=20_000), AfterValidator(_printable)]
ShortText = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]

Price = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12), DecimalString]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12), DecimalString]
Size = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=12), DecimalString]
Amount = Annotated[Decimal, DecimalString]
"""An output decimal (money, PnL): any sign, any precision."""


class WireModel(_BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PublicModel(_BaseModel):
    model_config = ConfigDict(from_attributes=True)
