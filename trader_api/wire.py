"""Fast request bodies for the hot routes (``POST /v1/orders``, ``POST /v1/ticks``), with msgspec.

Why this is shaped the way it is:

* **Success path, no pydantic.** ``msgspec.json`` decodes the bytes straight into
  :class:`OrderCreateWire` / :class:`TickBatchWire` (enums, unknown fields, the list
  bounds, the client_order_id/agent patterns checked in C), and ``__post_init__`` checks
  the rest of the constraints of the pydantic models in ``schemas/``: symbol, the cross-field
  rules, and the decimal and timestamp strings, each by the very parser the model uses
  (``schemas.common.WireText``). No ``json.loads``. About 2x faster than json.loads +
  pydantic for an order and for a batch of 5000 ticks.
* **Same values as pydantic.** Decimals and timestamps are JSON strings of one exact form
  (anything else is refused by both), decoded as the string and converted in
  ``__post_init__`` by the model's parser: msgspec's own ``datetime`` would round a 7th
  fraction digit where the parser truncates.
* **Failure path, today's code.** msgspec stops at the first bad token in input order;
  pydantic reports every error in field order. When the fast path refuses a body, the
  body is run through what FastAPI runs today (``json.loads`` + ``validate_python``), so
  the 422 body is byte-for-byte FastAPI's. The fast path is deliberately conservative
  (e.g. UTF-16 bodies): whatever it does not accept, the reference decides, so behaviour
  never differs from the pydantic route.
* **Same OpenAPI document.** :func:`post` registers the fast endpoint hidden from the
  schema, and right behind it a never-reached twin whose signature takes the pydantic
  model; FastAPI documents the twin exactly as it documents today's route.
"""

from __future__ import annotations

import email.message
import inspect
import json
import re
import typing
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, NoReturn, TypeVar

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Request, params
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from sapphire.domain.symbols import SYMBOL_PATTERN
from sapphire.trader_api.core import domain
from sapphire.trader_api.core.domain import OrderType, Side, TimeInForce
from sapphire.trader_api.schemas import common
from sapphire.trader_api.schemas.market import TickBatch
from sapphire.trader_api.schemas.orders import OrderCreate, shape_problem

__all__ = [
    "AttachedWire",
    "OrderBody",
    "OrderCreateWire",
    "TickBatchBody",
    "TickBatchWire",
    "TickCreateWire",
    "decode_order",
    "decode_ticks",
    "post",
]


def _rust_anchored(pattern: str) -> str:
    """pydantic matches with Rust's regex, where ``$`` is the end of the text; Python's ``$``
    also matches before a final newline (msgspec uses ``re``), so ``\\Z`` takes its place."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


ClientOrderId = Annotated[str, msgspec.Meta(pattern=_rust_anchored(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"))]
Name = Annotated[str, msgspec.Meta(pattern=_rust_anchored(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))]

_SYMBOL = re.compile(_rust_anchored(SYMBOL_PATTERN)).search
_KNOWN_SYMBOLS: set[str] = set()
"""Symbols that matched. A batch repeats a handful of symbols thousands of times, and
msgspec's ``Meta(pattern=...)`` costs more per tick than all the rest of its decoding."""


def _symbol(value: str) -> str:
    """``schemas.common.Symbol``."""
    if value not in _KNOWN_SYMBOLS:
        if _SYMBOL(value) is None:
            raise ValueError(f"must match {SYMBOL_PATTERN}")
        if len(_KNOWN_SYMBOLS) >= 4096:  # bounded, whatever clients send
            _KNOWN_SYMBOLS.clear()
        _KNOWN_SYMBOLS.add(value)
    return value


_MAX_TICKS = 5000

if TYPE_CHECKING:
    WireDecimal = Decimal
    WireTimestamp = datetime
else:
    # What msgspec decodes these fields into: the JSON string, which __post_init__ replaces
    # with the value the model's own parser gives (schemas.common.WireText). Any other
    # JSON token is msgspec's refusal, and the reference words the 422.
    WireDecimal = str
    WireTimestamp = str


_TICK_DECIMALS: dict[object, Decimal] = {}
"""Decimals already converted, by their JSON string. A batch of ticks repeats a few hundred
prices and sizes (they sit on the tick and lot grid) thousands of times, and a lookup costs
a fraction of a conversion; bounded, cleared when full. A price is kept only once it is
positive, so a size of 0 (valid) is never taken for a valid price."""
_TICK_DECIMALS_MAX = 100_000


_V = TypeVar("_V")


def _parsed(kind: common.WireText[_V], value: object) -> _V:
    """``kind.parse(value)``; a value already parsed is kept: the struct is being built from
    the model, which parsed it (its UTC form of a timestamp is not always a form it takes)."""
    return value if isinstance(value, kind.kind) else kind.parse(value)


def _optional(kind: common.WireText[Decimal], value: object) -> Decimal | None:
    return None if value is None else _parsed(kind, value)


def _new_tick_decimal(kind: common.WireText[Decimal], value: object) -> Decimal:
    """``kind`` (``POSITIVE`` or ``NON_NEGATIVE``) of a value not in ``_TICK_DECIMALS`` (the
    batch looks there first), remembered when positive: a string that made a positive decimal
    is valid for both."""
    number = _parsed(kind, value)
    if number and type(value) is str:
        if len(_TICK_DECIMALS) >= _TICK_DECIMALS_MAX:
            _TICK_DECIMALS.clear()
        _TICK_DECIMALS[value] = number
    return number


_OFFSETS = frozenset(
    [
        "Z",
        *(f"{sign}{hour:02d}:{minute:02d}" for sign in "+-" for hour in range(24) for minute in range(60)),
    ]
)
"""Every zone the TIMESTAMP pattern admits."""
_SECONDS: set[str] = set()
"""The first 19 characters (date, ``T``, hours, minutes and seconds) of timestamps that matched
the TIMESTAMP pattern. Its date and time are fixed width, so a timestamp matches it exactly when
those 19 characters are the start of one that did and the rest is a fraction of 1 to 9 ASCII
digits (or none) and a zone. A batch spans a few seconds: checking that is a set lookup and a
few string tests where the pattern costs most of a tick's decoding. Bounded, cleared when full."""


def _tick_timestamp(value: object) -> datetime:
    """``_parsed(common.TIMESTAMP, value)``, with the pattern's work skipped for a second
    already seen (see ``_SECONDS``).

    The shortcut checks only the rest's shape: a zone (``Z`` or one of ``_OFFSETS``, the
    last 6 characters) and between it and the second either nothing or ``.`` and 1 to 9
    more characters. The pattern's reader (``datetime.fromisoformat``) then decides the first 6, and it
    takes there only ASCII digits (a comma, letters, signs, colons and other scripts'
    digits are its refusal); it ignores whatever follows a 6th digit, so a 7th to 9th are
    checked here. Its other leniencies (``,5``, ``.`` alone, 10 digits and more, ``+05``
    or ``+0530``, seconds in an offset) all fail the shape. Every refusal goes to the
    pattern, which words the error. (Each test here is a few dozen nanoseconds; a method
    call or a regex costs more than a tick's whole check.)"""
    if type(value) is str and value[:19] in _SECONDS:
        zone = 1 if value[-1] == "Z" else 6 if value[-6:] in _OFFSETS else 0
        fraction = len(value) - 19 - zone  # with its point
        if zone and (
            fraction == 0
            or (2 <= fraction <= 7 and value[19] == ".")
            or (
                8 <= fraction <= 10
                and value[19] == "."
                and value.isascii()
                and value[26 : 19 + fraction].isdigit()
            )
        ):
            try:  # not contextlib.suppress: its object per call costs more than the whole check
                return common.TIMESTAMP.read(value)
            except ValueError:
                pass  # a refusal: the pattern decides, in its words
    moment = _parsed(common.TIMESTAMP, value)
    if type(value) is str:  # it matched: its first 19 characters are a valid second
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS.add(value[:19])
    return moment


class AttachedWire(msgspec.Struct, forbid_unknown_fields=True):
    """``schemas.orders.AttachedCreate``, field for field."""

    stop_price: WireDecimal | None = None
    stop_bps: WireDecimal | None = None
    trail_amount: WireDecimal | None = None
    trail_bps: WireDecimal | None = None
    take_profit_price: WireDecimal | None = None
    take_profit_bps: WireDecimal | None = None

    def __post_init__(self) -> None:
        self.stop_price = _optional(common.POSITIVE, self.stop_price)
        self.stop_bps = _optional(common.BPS, self.stop_bps)
        self.trail_amount = _optional(common.POSITIVE, self.trail_amount)
        self.trail_bps = _optional(common.BPS, self.trail_bps)
        self.take_profit_price = _optional(common.POSITIVE, self.take_profit_price)
        self.take_profit_bps = _optional(common.WIDE_BPS, self.take_profit_bps)


class OrderCreateWire(msgspec.Struct, forbid_unknown_fields=True):
    """``schemas.orders.OrderCreate``, field for field."""

    client_order_id: ClientOrderId
    symbol: str
    side: Side
    type: OrderType
    quantity: WireDecimal
    limit_price: WireDecimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    agent: Name | None = None
    stop_price: WireDecimal | None = None
    trail_amount: WireDecimal | None = None
    trail_bps: WireDecimal | None = None
    oco_group: Name | None = None
    attached: AttachedWire | None = None

    def __post_init__(self) -> None:
        _symbol(self.symbol)
        self.quantity = _parsed(common.POSITIVE, self.quantity)
        self.limit_price = _optional(common.POSITIVE, self.limit_price)
        self.stop_price = _optional(common.POSITIVE, self.stop_price)
        self.trail_amount = _optional(common.POSITIVE, self.trail_amount)
        self.trail_bps = _optional(common.BPS, self.trail_bps)
        problem = shape_problem(self)
        if problem is not None:
            raise ValueError(problem)


class TickCreateWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``schemas.market.TickCreate``. ``gc=False``: only scalars, and up to 5000 per batch.
    Its values are checked and converted by its batch (:class:`TickBatchWire`), in one loop."""

    symbol: str
    bid: WireDecimal
    ask: WireDecimal
    last: WireDecimal
    size: WireDecimal
    ts: WireTimestamp


class TickBatchWire(msgspec.Struct, forbid_unknown_fields=True):
    """``schemas.market.TickBatch``."""

    ticks: Annotated[list[TickCreateWire], msgspec.Meta(min_length=1, max_length=_MAX_TICKS)]

    def __post_init__(self) -> None:
        # The checks of schemas.market.TickCreate for every tick, in one loop rather than a
        # __post_init__ per tick: a batch is thousands of ticks, and a known decimal string
        # (a positive one, valid for every field) is one dict lookup.
        known = _TICK_DECIMALS.get
        for tick in self.ticks:
            if tick.symbol not in _KNOWN_SYMBOLS:
                _symbol(tick.symbol)
            bid = known(tick.bid) or _new_tick_decimal(common.POSITIVE, tick.bid)
            ask = known(tick.ask) or _new_tick_decimal(common.POSITIVE, tick.ask)
            last = known(tick.last) or _new_tick_decimal(common.POSITIVE, tick.last)
            size = known(tick.size) or _new_tick_decimal(common.NON_NEGATIVE, tick.size)
            tick.ts = _tick_timestamp(tick.ts)
            if bid > ask:
                raise ValueError(f"ask: must be >= bid ({bid}), got {ask}")
            tick.bid, tick.ask, tick.last, tick.size = bid, ask, last, size

    def quotes(self) -> list[domain.Quote]:
        """The ticks as the engine takes them, in arrival order."""
        return [
            domain.Quote(symbol=t.symbol, bid=t.bid, ask=t.ask, last=t.last, size=t.size, ts=t.ts)
            for t in self.ticks
        ]


_W = TypeVar("_W", bound=msgspec.Struct)
_M = TypeVar("_M", bound=BaseModel)

_MISSING_BODY = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


def is_json(content_type: str | None) -> bool:
    """FastAPI's test (``strict_content_type``, its default): ``application/json`` or
    ``application/*+json``; without a Content-Type the body is not parsed as JSON."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _Codec(Generic[_W, _M]):
    """msgspec first; on refusal, exactly what FastAPI does for a ``model``-typed body."""

    def __init__(self, wire: type[_W], model: type[_M], from_model: Callable[[_M], _W]) -> None:
        self._decoder = msgspec.json.Decoder(wire)
        self._reference = TypeAdapter(model)
        self._from_model = from_model

    def decode(self, body: bytes, content_type: str | None) -> _W:
        json_body = is_json(content_type)
        if body and json_body:
            try:
                return self._decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # the reference decides, and words the 422
        return self._from_model(self._validate(body, json_body))

    def _validate(self, body: bytes, is_json: bool) -> _M:
        """fastapi.routing.get_request_handler + fastapi._compat.v2.ModelField.validate."""
        if not body:
            raise RequestValidationError([dict(_MISSING_BODY)])
        value: Any = body
        if is_json:
            try:
                value = json.loads(body)
            except json.JSONDecodeError as error:
                detail = {
                    "type": "json_invalid",
                    "loc": ("body", error.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": error.msg},
                }
                raise RequestValidationError([detail], body=error.doc) from error
            except Exception as error:  # not text at all, too deep, too long an integer...
                raise HTTPException(status_code=400, detail="There was an error parsing the body") from error
        try:
            return self._reference.validate_python(value, from_attributes=True)
        except ValidationError as error:
            errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
            raise RequestValidationError(errors, body=value) from None


def _order_from_model(model: OrderCreate) -> OrderCreateWire:
    fields = dict(model)
    if model.attached is not None:
        fields["attached"] = AttachedWire(**dict(model.attached))
    return OrderCreateWire(**fields)


def _ticks_from_model(model: TickBatch) -> TickBatchWire:
    return TickBatchWire(ticks=[TickCreateWire(**dict(tick)) for tick in model.ticks])


_ORDER = _Codec(OrderCreateWire, OrderCreate, _order_from_model)
_TICKS = _Codec(TickBatchWire, TickBatch, _ticks_from_model)


def decode_order(body: bytes, *, content_type: str | None = "application/json") -> OrderCreateWire:
    """The body of ``POST /v1/orders``. Raises ``RequestValidationError`` (422, FastAPI's
    shape and words) or ``HTTPException`` (400, a body that is not text) as FastAPI would."""
    return _ORDER.decode(body, content_type)


def decode_ticks(body: bytes, *, content_type: str | None = "application/json") -> TickBatchWire:
    """The body of ``POST /v1/ticks``; errors as :func:`decode_order`."""
    return _TICKS.decode(body, content_type)


async def _order_body(request: Request) -> OrderCreateWire:
    return decode_order(await request.body(), content_type=request.headers.get("content-type"))


async def _ticks_body(request: Request) -> TickBatchWire:
    return decode_ticks(await request.body(), content_type=request.headers.get("content-type"))


OrderBody = Annotated[OrderCreateWire, Depends(_order_body)]
"""An endpoint parameter: the decoded order. Register the endpoint with :func:`post`."""
TickBatchBody = Annotated[TickBatchWire, Depends(_ticks_body)]
"""An endpoint parameter: the decoded tick batch. Register the endpoint with :func:`post`."""

_DOCUMENTED_AS: dict[Callable[..., Any], type[BaseModel]] = {_order_body: OrderCreate, _ticks_body: TickBatch}
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def _documented_model(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is not Annotated:
        return None
    for meta in annotation.__metadata__:
        if isinstance(meta, params.Depends) and meta.dependency in _DOCUMENTED_AS:
            return _DOCUMENTED_AS[meta.dependency]
    return None


def _documentation_twin(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in with ``endpoint``'s name, docstring and signature, except that each
    ``OrderBody``/``TickBatchBody`` parameter takes the pydantic model instead: FastAPI
    derives from it the very requestBody, components, 422 and operationId of today."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    parameters = []
    for parameter in signature.parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        parameters.append(parameter.replace(annotation=_documented_model(annotation) or annotation))
    if all(_documented_model(hints.get(name)) is None for name in signature.parameters):
        raise TypeError(f"{endpoint.__qualname__} takes no OrderBody or TickBatchBody parameter")

    async def twin(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"the documentation twin of {endpoint.__qualname__} was routed to")

    twin.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    twin.__name__, twin.__qualname__ = endpoint.__name__, endpoint.__qualname__
    twin.__doc__, twin.__module__ = endpoint.__doc__, endpoint.__module__
    return twin


def post(router: APIRouter, path: str, **route: Any) -> Callable[[_Endpoint], _Endpoint]:
    """``@router.post(path, **route)`` for an endpoint taking ``OrderBody``/``TickBatchBody``,
    keeping the OpenAPI document of the pydantic-typed endpoint it replaces.

    FastAPI puts a model into ``components.schemas`` only when a route's signature uses it;
    ``openapi_extra`` can patch an operation but not add components. So the endpoint that
    serves is registered with ``include_in_schema=False``, and a twin taking the pydantic
    model is registered after it for the same path and method: Starlette routes to the
    first match, FastAPI documents only the twin."""
    documented = route.pop("include_in_schema", True)

    def register(endpoint: _Endpoint) -> _Endpoint:
        twin = _documentation_twin(endpoint)
        router.add_api_route(path, endpoint, methods=["POST"], include_in_schema=False, **route)
        router.add_api_route(path, twin, methods=["POST"], include_in_schema=documented, **route)
        return endpoint

    return register
