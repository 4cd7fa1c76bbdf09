"""Constrained types shared by the wire models; every constraint error names its field.

Decimals and timestamps travel as JSON strings of one exact form, and each form is a
:class:`WireText`: an anchored pattern that is the whole rule (range included), shown as
such in the OpenAPI document, and the one parser of that rule, used by the models here and
by the fast path of the hot routes (``wire.py``). So the document says exactly what the API
takes: every string the pattern admits is accepted, every other value refused (422), a
JSON number included (it would reach a decimal through a float).

The patterns spell everything out, without lookarounds or ``\\d``: they are read by other
regex engines (ECMA 262 in JSON Schema, Rust's in pydantic-core, the example generators of
schemathesis), where ``[0-9]`` and alternation mean the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
)
from pydantic import BaseModel as _BaseModel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from sapphire.domain.symbols import SYMBOL_PATTERN

_T = TypeVar("_T")


class WireText(Generic[_T]):
    """A value that travels as a string matching ``pattern`` (anchored with ``^…$``).

    As ``Annotated`` metadata it is the field's whole validation (``parse``) and, for
    requests, its JSON schema (``type: string`` with the pattern, and ``format``)."""

    def __init__(
        self,
        pattern: str,
        *,
        kind: type[_T],
        read: Callable[[str], _T],
        write: Callable[[_T], str],
        meaning: str,
        example: str,
        json_format: str | None = None,
    ) -> None:
        self.pattern, self.kind, self.meaning, self.example = pattern, kind, meaning, example
        self._read, self._write, self._format = read, write, json_format
        self._fullmatch = re.compile(pattern).fullmatch  # fullmatch: ``$`` ends the text, as in ECMA 262

    def parse(self, value: object) -> _T:
        """The value of ``value``, a string of the pattern (or an instance of ``kind`` whose
        text is one: built in Python); ValueError naming the form otherwise."""
        if type(value) is str and self._fullmatch(value) is not None:  # first: ticks take this path
            return self._read(value)
        if isinstance(value, self.kind) and self._fullmatch(self._write(value)) is not None:
            return self._read(self._write(value))
        raise ValueError(f"must be {self.meaning} as a string, e.g. {self.example!r}")

    def read(self, text: str) -> _T:
        """The value of ``text``, a string already known to match the pattern (no check)."""
        return self._read(text)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.parse)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if handler.mode == "serialization":  # what the API answers: a plain string
            return {"type": "string"}
        json_schema: JsonSchemaValue = {"type": "string", "pattern": self.pattern, "examples": [self.example]}
        if self._format is not None:
            json_schema["format"] = self._format
        return json_schema


PLACES = 12
"""Decimal places a decimal may carry (``NUMERIC(36, 12)`` columns)."""
WHOLE_DIGITS = 12
"""Digits before the point of a price or a quantity."""
_FRACTION = rf"(?:\.[0-9]{{1,{PLACES}}})?"
_NOT_ALL_ZERO = (
    "(?:" + "|".join("0" * zeros + f"[1-9][0-9]{{0,{PLACES - 1 - zeros}}}" for zeros in range(PLACES)) + ")"
)
"""1 to ``PLACES`` digits, not all 0 (the fraction of a positive decimal below 1)."""
_ONE = rf"1(?:\.0{{1,{PLACES}}})?"


def _below(digits: int, *, zero: bool) -> str:
    """A plain decimal in ``[0, 10**digits)`` (``zero``) or ``(0, 10**digits)``."""
    whole = rf"[1-9][0-9]{{0,{digits - 1}}}{_FRACTION}"
    return rf"^(?:0{_FRACTION}|{whole})$" if zero else rf"^(?:{whole}|0\.{_NOT_ALL_ZERO})$"


def _decimal(pattern: str, meaning: str, example: str) -> WireText[Decimal]:
    return WireText(
        pattern,
        kind=Decimal,
        read=Decimal,
        write=lambda value: format(value, "f"),
        meaning=f"{meaning}, in plain notation with at most {PLACES} decimal places,",
        example=example,
    )


POSITIVE = _decimal(
    _below(WHOLE_DIGITS, zero=False), f"a decimal above 0 and below 1e{WHOLE_DIGITS}", "100.25"
)
NON_NEGATIVE = _decimal(_below(WHOLE_DIGITS, zero=True), f"a decimal from 0 to below 1e{WHOLE_DIGITS}", "0.5")
BPS = _decimal(_below(4, zero=False), "a decimal above 0 and below 10000", "25")
WIDE_BPS = _decimal(_below(5, zero=False), "a decimal above 0 and below 100000", "150")
FRACTION = _decimal(rf"^(?:0\.{_NOT_ALL_ZERO}|{_ONE})$", "a decimal above 0 and at most 1", "0.2")
UNIT = _decimal(rf"^(?:0{_FRACTION}|{_ONE})$", "a decimal from 0 to 1", "0.75")
SIGNED_UNIT = _decimal(rf"^-?(?:0{_FRACTION}|{_ONE})$", "a decimal from -1 to 1", "-0.5")

DecimalString = PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")
"""Decimals go out as plain strings ("0.00001", never "1E-5")."""

Price = Annotated[Decimal, POSITIVE, DecimalString]
Quantity = Annotated[Decimal, POSITIVE, DecimalString]
Size = Annotated[Decimal, NON_NEGATIVE, DecimalString]
Amount = Annotated[Decimal, DecimalString]
"""An output decimal (money, PnL): any sign, any precision."""


def _timestamp_pattern() -> str:
    """RFC 3339 ``date-time`` (``T``, ``Z`` upper case, no leap second), a real calendar day
    from 1970-01-02 to 2099-12-31 as written: whatever the offset, the instant is then in
    1970..2100 UTC (so no conversion to UTC can overflow, and no epoch second is negative)."""
    days_31, days_30 = "(?:0[1-9]|[12][0-9]|3[01])", "(?:0[1-9]|[12][0-9]|30)"
    month_day = rf"(?:(?:0[13578]|1[02])-{days_31}|(?:0[469]|11)-{days_30}|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    leap_year = "(?:19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26]))"  # 2000 is one
    date = (
        rf"(?:(?:19(?:7[1-9]|[89][0-9])|20[0-9]{{2}})-{month_day}|{leap_year}-02-29"
        rf"|1970-(?:01-(?:0[2-9]|[12][0-9]|3[01])|(?:0[3578]|1[02])-{days_31}|(?:0[469]|11)-{days_30}"
        r"|02-(?:0[1-9]|1[0-9]|2[0-8])))"
    )
    time = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    offset = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
    return f"^{date}T{time}{offset}$"


def _utc(text: str) -> datetime:
    # Python 3.11 reads every form of the pattern; past microseconds it truncates, as pydantic did.
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


TIMESTAMP: WireText[datetime] = WireText(
    _timestamp_pattern(),
    kind=datetime,
    read=_utc,
    write=datetime.isoformat,
    meaning="an RFC 3339 timestamp with a zone (Z or ±HH:MM) from 1970-01-02 to 2099-12-31",
    example="2026-03-02T14:30:00Z",
    json_format="date-time",
)
Timestamp = Annotated[datetime, TIMESTAMP]
"""A request's timestamp, converted to UTC."""


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTC-USD"])]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["momentum-btc"])]
Role = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", examples=["momentum"])]
Text = Annotated[str, Field(max_length=20_000), AfterValidator(_printable)]
ShortText = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]


class WireModel(_BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PublicModel(_BaseModel):
    model_config = ConfigDict(from_attributes=True)
