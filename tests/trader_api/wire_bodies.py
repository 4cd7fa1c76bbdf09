"""The oracle and the request bodies of ``test_wire``: what FastAPI makes of a body today
(``json.loads``, then ``TypeAdapter(model).validate_python`` as ``fastapi/_compat/v2.py``
does), and hypothesis strategies for bodies, mostly valid, now and then not."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from sapphire.domain.symbols import SYMBOL_PATTERN

_W = TypeVar("_W", bound=msgspec.Struct)
Outcome = BaseModel | list[dict[str, Any]] | int
"""What FastAPI makes of a body: the model, the 422 ``detail`` list, or 400."""


def reference(model: type[BaseModel], body: bytes, content_type: str | None) -> Outcome:
    """FastAPI's request handler for a body parameter of type ``model`` (strict content type)."""
    if not body:
        return [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    value: Any = body
    if content_type is not None and re.fullmatch(
        r"application/([^;+]*\+)?json(;.*)?", content_type, re.IGNORECASE
    ):
        try:
            value = json.loads(body)
        except json.JSONDecodeError as error:
            ctx = {"error": error.msg}
            return [
                {
                    "type": "json_invalid",
                    "loc": ["body", error.pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": ctx,
                }
            ]
        except Exception:
            return 400
    try:
        return TypeAdapter(model).validate_python(value, from_attributes=True)
    except ValidationError as error:
        errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        return list(jsonable_encoder(errors))


def decoded(decode: Callable[..., msgspec.Struct], body: bytes, content_type: str | None) -> Any:
    """The same outcome through ``wire``: the struct, the 422 ``detail`` list, or 400."""
    try:
        return decode(body, content_type=content_type)
    except RequestValidationError as error:
        return jsonable_encoder(error.errors())
    except HTTPException as error:
        return error.status_code


def values(item: Any) -> Any:
    """Field by field, with ``repr`` so that Decimal("1.1") differs from Decimal("1.10")
    and a UTC datetime from the same instant at +01:00."""
    if isinstance(item, BaseModel | msgspec.Struct):
        names = type(item).model_fields if isinstance(item, BaseModel) else item.__struct_fields__
        return {name: values(getattr(item, name)) for name in names}
    if isinstance(item, list):
        return [values(element) for element in item]
    return (type(item).__name__, repr(item))


def canonical(outcome: Any) -> str:
    """JSON text, so that a NaN ``input`` equals another NaN."""
    return json.dumps(jsonable_encoder(outcome), sort_keys=True)


def assert_agree(
    model: type[BaseModel],
    wire_type: type[_W],
    decode: Callable[..., _W],
    body: bytes,
    content_type: str | None,
) -> None:
    """msgspec alone never accepts what pydantic refuses, nor changes a value; ``decode``
    gives pydantic's values, or FastAPI's whole 422 detail (so its first loc too), or 400."""
    try:
        fast: _W | None = msgspec.json.decode(body, type=wire_type)
    except (msgspec.DecodeError, msgspec.ValidationError):
        fast = None
    if fast is not None:
        as_json = reference(model, body, "application/json")
        assert isinstance(as_json, BaseModel), (body, as_json)
        assert values(fast) == values(as_json)
    expected, got = reference(model, body, content_type), decoded(decode, body, content_type)
    if isinstance(expected, BaseModel):
        assert type(got) is wire_type, (body, got)
        assert values(got) == values(expected)
    else:
        assert canonical(got) == canonical(expected), body
        if isinstance(expected, list):
            assert got[0]["loc"] == expected[0]["loc"]
    accepted = isinstance(expected, BaseModel)
    if currently_in_test_context():
        event("msgspec accepted" if fast is not None else "pydantic accepted" if accepted else "refused")


_RAW = re.compile(r'"\\u0000RAW:(.*?)\\u0000"')


def raw(text: str) -> str:
    """A JSON token written verbatim into the body (``1.10`` as a number, not a string)."""
    return f"\x00RAW:{text}\x00"


def encode(body: Any) -> bytes:
    return _RAW.sub(lambda match: match.group(1), json.dumps(body)).encode()


def _digits(draw: st.DrawFn, low: int, high: int) -> str:
    return draw(st.text("0123456789", min_size=low, max_size=high))


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Most draws from ``valid``, so that many bodies pass (a middle value marks the others:
    hypothesis favours the ends of a range)."""
    return st.integers(0, 19).flatmap(lambda pick: other if pick == 7 else valid)


@st.composite
def plain_decimals(draw: st.DrawFn) -> str:
    """Positive, at most 12 digits either side of the point: valid."""
    if draw(st.integers(0, 4)) == 2:
        return "0." + _digits(draw, 0, 10) + draw(st.sampled_from("123456789"))
    fraction = _digits(draw, 0, 12)
    return draw(st.sampled_from("123456789")) + _digits(draw, 0, 11) + ("." + fraction if fraction else "")


@st.composite
def edgy_decimals(draw: st.DrawFn) -> str:
    """Around the limits: signs, 13+ digits, exponents, trailing zeros, leading zeros."""
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    whole, fraction = _digits(draw, 1, 14), _digits(draw, 0, 15)
    exponent = draw(st.sampled_from(["", "", "", "e-3", "E+2", "e0", "e-13", "e12", "e-20"]))
    return f"{sign}{whole}{'.' + fraction if fraction else ''}{exponent}"


ODD_DECIMALS = [
    "1.10",
    "-0",
    "0.0",
    "1e-12",
    "1e-13",
    "1E+3",
    "1.0000000000000",
    "123456789012",
    "1234567890123",
    "0.000000000001",
    "0.0000000000001",
    " 1",
    "1 ",
    "1_000",
    "NaN",
    "-Infinity",
    "sNaN",
    "",
    "one",
    "1e999999",
    "\u0661",
    ".5",
    "1.",
    "0x10",
    "1e-999999999",
]
ODD_TOKENS: list[Any] = [
    None,
    True,
    [],
    {},
    raw("1e400"),
    raw("-0.0"),
    raw("0.1000000000000000055511151231257827"),
]


@st.composite
def decimal_tokens(draw: st.DrawFn) -> Any:
    """A decimal as a JSON string (the documented form), a JSON number, or something else."""
    kind = draw(st.integers(0, 19))
    if kind in (2, 9, 14):
        return raw(draw(plain_decimals()))
    if kind == 5:
        return draw(st.integers(-(10**14), 10**26) | st.floats())  # NaN, Infinity: literals json.loads takes
    if kind == 7:
        text = draw(edgy_decimals())
        return raw(text) if draw(st.booleans()) else text
    if kind == 11:
        return draw(st.sampled_from(ODD_DECIMALS + ODD_TOKENS))
    return draw(plain_decimals())


@st.composite
def good_timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 in 1971..2099, in the spellings clients use."""
    date = (
        f"{draw(st.integers(1971, 2099)):04d}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}"
    )
    clock = f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}"
    fraction = draw(
        st.sampled_from(["", ""]) | st.text("0123456789", min_size=1, max_size=9).map(".".__add__)
    )
    offset = f"{draw(st.sampled_from('+-'))}{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    zone = draw(st.sampled_from(["Z", "z", "+00:00", offset]))
    return f"{date}{draw(st.sampled_from('TTt '))}{clock}{fraction}{zone}"


@st.composite
def odd_timestamps(draw: st.DrawFn) -> Any:
    """Out of range, impossible fields, other spellings, epoch numbers."""
    year = draw(st.sampled_from([1, 1969, 1970, 2099, 2100, 2101, 9999]) | st.integers(1965, 2105))
    month, day, hour, minute, second = (draw(st.integers(0, high)) for high in (13, 31, 24, 60, 60))
    date = f"{year:04d}-{month:02d}-{day:02d}"
    fraction = draw(
        st.sampled_from(["", "."]) | st.text("0123456789", min_size=1, max_size=12).map(".".__add__)
    )
    hours, minutes, sign = (
        draw(st.integers(0, 25)),
        draw(st.sampled_from([0, 30, 59, 60])),
        draw(st.sampled_from("+-")),
    )
    zone = draw(
        st.sampled_from(
            [
                "Z",
                "",
                f"{sign}{hours:02d}:{minutes:02d}",
                f"{sign}{hours:02d}{minutes:02d}",
                f"{sign}{hours:02d}",
            ]
        )
    )
    text = f"{date}{draw(st.sampled_from('T_'))}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"
    return draw(
        st.sampled_from([text, f" {text}", f"{text}\n", date])
        | st.integers(-10, 5 * 10**12)
        | st.floats(0, 5e9)
    )


def texts(pattern: str, *odd: str) -> st.SearchStrategy[Any]:
    return mostly(
        st.from_regex(pattern, fullmatch=True), st.sampled_from([*odd, "", None, 7]) | st.text(max_size=70)
    )


client_order_ids = texts(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", "x" * 64, "x" * 65, "a\n", "-a", "a b")
symbols = texts(SYMBOL_PATTERN, "btc-usd", "BTC-USD\n", "BTC--USD", "A" * 13, "BTC-USD ")
names = st.none() | texts(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "bad agent!", "x" * 65, "mom-1\n")


def enums(*members: str) -> st.SearchStrategy[Any]:
    return mostly(st.sampled_from(members), st.sampled_from([members[0].upper(), "", None, 1]))


def _mangle(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """Now and then a field left out, or one the model does not know."""
    body = {name: value for name, value in body.items() if draw(st.integers(0, 40)) != 17}
    if draw(st.integers(0, 30)) == 13:
        body[draw(st.sampled_from(["surprise", "Symbol", "limitPrice"]))] = 1
    return body


@st.composite
def order_bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        enums("market", "limit", "stop", "stop_limit", "take_profit", "take_profit_limit", "trailing_stop")
    )
    body = {
        "client_order_id": draw(client_order_ids),
        "symbol": draw(symbols),
        "side": draw(enums("buy", "sell")),
        "type": kind,
        "quantity": draw(decimal_tokens()),
    }
    if kind in ("limit", "stop_limit", "take_profit_limit") or draw(st.integers(0, 9)) == 3:
        body["limit_price"] = draw(mostly(decimal_tokens(), st.none()))
    if kind in ("stop", "stop_limit", "take_profit", "take_profit_limit") or draw(st.integers(0, 9)) == 3:
        body["stop_price"] = draw(mostly(decimal_tokens(), st.none()))
    if kind == "trailing_stop" or draw(st.integers(0, 9)) == 3:
        trail = draw(st.sampled_from(["trail_amount", "trail_bps", "both"]))
        for name in ("trail_amount", "trail_bps") if trail == "both" else (trail,):
            body[name] = draw(mostly(decimal_tokens(), st.none()))
    if draw(st.integers(0, 3)) == 1:
        body["oco_group"] = draw(names)
    if draw(st.integers(0, 3)) == 2:
        legs = ("stop_price", "stop_bps", "trail_amount", "trail_bps", "take_profit_price", "take_profit_bps")
        chosen = draw(st.lists(st.sampled_from(legs), max_size=3, unique=True))
        body["attached"] = _mangle(draw, {name: draw(mostly(decimal_tokens(), st.none())) for name in chosen})
    if draw(st.booleans()):
        body["time_in_force"] = draw(enums("gtc", "ioc", "day"))
    if draw(st.booleans()):
        body["agent"] = draw(names)
    return _mangle(draw, body)


@st.composite
def tick_bodies(draw: st.DrawFn) -> dict[str, Any]:
    bid, ask = draw(decimal_tokens()), draw(decimal_tokens())
    if all(isinstance(token, str) for token in (bid, ask)) and draw(st.integers(0, 9)) != 3:
        with contextlib.suppress(ArithmeticError):  # mostly an uncrossed book, as feeds send
            bid, ask = sorted((bid, ask), key=lambda token: Decimal(token.strip("\x00").removeprefix("RAW:")))
    body = {
        "symbol": draw(symbols),
        "bid": bid,
        "ask": ask,
        "last": draw(decimal_tokens()),
        "size": draw(mostly(decimal_tokens(), st.just("0"))),
        "ts": draw(mostly(good_timestamps(), odd_timestamps())),
    }
    return _mangle(draw, body)


@st.composite
def wrapped(draw: st.DrawFn, inner: st.SearchStrategy[Any], shadowed: bytes) -> tuple[bytes, str | None]:
    """JSON of ``inner`` in the usual Content-Type, now and then mangled the ways clients do."""
    body = encode(draw(inner))
    variant = draw(st.integers(0, 30)) - 11  # 0..5: the mangled ones (hypothesis favours 0 and 30)
    if variant == 0:
        body = b"\xef\xbb\xbf" + body
    elif variant == 1:
        body = body.decode().encode("utf-16")
    elif variant == 2:
        body = body[: draw(st.integers(0, len(body)))]
    elif variant == 3:
        body = draw(st.sampled_from([b"[]", b'"x"', b"null", b"1", b"\xff", b"[" * 10_000]))
    elif variant == 4:
        body = body.replace(b"{", b"{" + shadowed, 1)  # a key given twice: json.loads keeps the last
    content_type: str | None = "application/json"
    if variant == 5:
        content_type = draw(
            st.sampled_from(
                [
                    None,
                    "text/plain",
                    "application/merge-patch+json",
                    "application/json; charset=utf-8",
                    "application/jsonx",
                ]
            )
        )
    return body, content_type
