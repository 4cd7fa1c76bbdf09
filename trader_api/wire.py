"""Fast request bodies for the hot routes (``POST /v1/orders``, ``POST /v1/ticks``), with msgspec.

Why this is shaped the way it is:

* **Success path, no pydantic.** ``msgspec.json`` decodes the bytes straight into
  :class:`OrderCreateWire` / :class:`TickBatchWire` (enums, unknown fields, the list
  bounds, the client_order_id/agent patterns checked in C), and ``__post_init__`` checks
  the rest of the constraints of the pydantic models in ``schemas/``: symbol, decimal
  digits and sign, the 1970..2100 range, the cross-field rules. No ``json.loads``. About
  2x faster than json.loads + pydantic for an order and for a batch of 5000 ticks.
* **Same values as pydantic.** FastAPI feeds ``json.loads`` output to
  ``validate_python``, so a JSON *number* reaches a ``Decimal`` field as a Python
  float (``1.10`` becomes ``Decimal("1.1")``) while a JSON *string* goes to ``Decimal()``
  verbatim. msgspec's own ``Decimal`` cannot tell the two apart and its ``datetime``
  rounds a 7th fraction digit where pydantic truncates, so these fields are decoded as
  the raw JSON token and converted in ``__post_init__`` the way pydantic-core does.
* **Failure path, today's code.** msgspec stops at the first bad token in input order;
  pydantic reports every error in field order. When the fast path refuses a body, the
  body is run through what FastAPI runs today (``json.loads`` + ``validate_python``), so
  the 422 body is byte-for-byte FastAPI's. The fast path is deliberately conservative
  (e.g. unix-epoch ``ts``, UTF-16 bodies, lenient date forms): whatever it does not
  accept, the reference decides, so behaviour never differs from the pydantic route.
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
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, NoReturn, TypeVar

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Request, params
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from sapphire.domain.symbols import SYMBOL_PATTERN
from sapphire.trader_api.core.domain import OrderType, Side, TimeInForce
from sapphire.trader_api.schemas.common import EARLIEST, LATEST
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
_WHOLE_DIGITS, _DECIMAL_PLACES = 12, 12
"""``max_digits=24, decimal_places=12``: pydantic also bounds the digits before the point
by their difference, and 12 + 12 digits are then never more than 24."""
_PLACE = Decimal(1).scaleb(-_DECIMAL_PLACES)
_EXACT = Context(prec=64)
"""Remainders computed exactly whatever the thread's decimal context is."""

if TYPE_CHECKING:
    WireDecimal = Decimal
    WireTimestamp = datetime
else:
    # What msgspec decodes these fields into: the JSON token as json.loads would give it.
    # __post_init__ replaces it with the Decimal / UTC datetime that pydantic would produce.
    WireDecimal = str | int | float
    WireTimestamp = str


def _decimal(value: object, *, allow_zero: bool) -> Decimal:
    """The Decimal pydantic makes of a JSON token, checked against ``Price``/``Quantity``
    (``gt=0``) or ``Size`` (``ge=0``), ``max_digits=24, decimal_places=12``.

    Strings go to ``Decimal()`` as they are (so ``" 1_000 "`` passes, as with pydantic),
    floats through their ``repr``, ints exactly. pydantic-core refuses a value only when it
    breaks a digit limit both as written and without its trailing zeros; stripping zeros
    never adds digits, so that is: at most 12 digits before the point, and a multiple of
    1e-12. Three C calls, no digit tuple: this runs four times per tick."""
    if type(value) is str:
        try:
            number = Decimal(value)
        except ArithmeticError:
            raise ValueError("must be a valid decimal") from None
    elif type(value) is int:
        number = Decimal(value)
    elif type(value) is float:
        number = Decimal(repr(value))
    elif isinstance(value, Decimal):
        return value  # built from a model pydantic already validated
    else:
        raise ValueError("must be a decimal number")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number:
        adjusted = number.adjusted()  # 10**adjusted <= |number| < 10**(adjusted + 1)
        if not -_DECIMAL_PLACES <= adjusted < _WHOLE_DIGITS or _EXACT.remainder(number, _PLACE):
            raise ValueError(
                f"must have at most {_WHOLE_DIGITS} digits before the point and {_DECIMAL_PLACES} after"
            )
    if number > 0 or (allow_zero and not number):
        return number
    raise ValueError("must be greater than or equal to 0" if allow_zero else "must be greater than 0")


_TICK_DECIMALS: dict[str, Decimal] = {}
"""Positive decimals already converted, by their JSON string. A batch of ticks repeats a few
hundred prices and sizes (they sit on the tick and lot grid) thousands of times, and a
lookup costs a fraction of a conversion and its checks; bounded, cleared when full."""
_TICK_DECIMALS_MAX = 100_000


def _tick_decimal(value: object, *, allow_zero: bool) -> Decimal:
    """:func:`_decimal`, remembering the positive decimals of strings (valid either way)."""
    if type(value) is str:
        known = _TICK_DECIMALS.get(value)
        if known is not None:
            return known
        number = _decimal(value, allow_zero=allow_zero)
        if number > 0:
            if len(_TICK_DECIMALS) >= _TICK_DECIMALS_MAX:
                _TICK_DECIMALS.clear()
            _TICK_DECIMALS[value] = number
        return number
    return _decimal(value, allow_zero=allow_zero)


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
).fullmatch
"""The timestamps parsed here, by ``datetime.fromisoformat``: RFC 3339 with a zone, where it
agrees with pydantic's parser (both truncate past microseconds). What else pydantic accepts
(epoch numbers, ``t``/``z``, ``_``, ``HH:MM``, ``,5``) takes the reference path."""


def _timestamp(value: object) -> datetime:
    """``schemas.common.Timestamp``: an aware datetime in 1970..2100, converted to UTC."""
    if isinstance(value, datetime):
        return value  # built from a model pydantic already validated
    if not isinstance(value, str) or _RFC3339(value) is None:
        raise ValueError("must be an RFC 3339 timestamp with a zone")
    moment = datetime.fromisoformat(value)  # ValueError for a day or an hour out of range
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("must be between 1970-01-01 and 2100-01-01")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _bps(value: object, *, below: int, name: str) -> Decimal:
    number = _decimal(value, allow_zero=False)
    if number >= below:
        raise ValueError(f"{name}: must be less than {below}")
    return number


class AttachedWire(msgspec.Struct, forbid_unknown_fields=True):
    """``schemas.orders.AttachedCreate``, field for field."""

    stop_price: WireDecimal | None = None
    stop_bps: WireDecimal | None = None
    trail_amount: WireDecimal | None = None
    trail_bps: WireDecimal | None = None
    take_profit_price: WireDecimal | None = None
    take_profit_bps: WireDecimal | None = None

    def __post_init__(self) -> None:
        for name in ("stop_price", "trail_amount", "take_profit_price"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _decimal(value, allow_zero=False))
        for name, below in (("stop_bps", 10_000), ("trail_bps", 10_000), ("take_profit_bps", 100_000)):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _bps(value, below=below, name=name))


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
        self.quantity = _decimal(self.quantity, allow_zero=False)
        if self.limit_price is not None:
            self.limit_price = _decimal(self.limit_price, allow_zero=False)
        if self.stop_price is not None:
            self.stop_price = _decimal(self.stop_price, allow_zero=False)
        if self.trail_amount is not None:
            self.trail_amount = _decimal(self.trail_amount, allow_zero=False)
        if self.trail_bps is not None:
            self.trail_bps = _bps(self.trail_bps, below=10_000, name="trail_bps")
        problem = shape_problem(self)
        if problem is not None:
            raise ValueError(problem)


class TickCreateWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``schemas.market.TickCreate``. ``gc=False``: only scalars, and up to 5000 per batch."""

    symbol: str
    bid: WireDecimal
    ask: WireDecimal
    last: WireDecimal
    size: WireDecimal
    ts: WireTimestamp

    def __post_init__(self) -> None:
        _symbol(self.symbol)
        self.bid = _tick_decimal(self.bid, allow_zero=False)
        self.ask = _tick_decimal(self.ask, allow_zero=False)
        self.last = _tick_decimal(self.last, allow_zero=False)
        self.size = _tick_decimal(self.size, allow_zero=True)
        self.ts = _timestamp(self.ts)
        if self.bid > self.ask:
            raise ValueError(f"ask: must be >= bid ({self.bid}), got {self.ask}")


class TickBatchWire(msgspec.Struct, forbid_unknown_fields=True):
    """``schemas.market.TickBatch``."""

    ticks: Annotated[list[TickCreateWire], msgspec.Meta(min_length=1, max_length=_MAX_TICKS)]


_W = TypeVar("_W", bound=msgspec.Struct)
_M = TypeVar("_M", bound=BaseModel)

_MISSING_BODY = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


def _is_json(content_type: str | None) -> bool:
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
        is_json = _is_json(content_type)
        if body and is_json:
            try:
                return self._decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # the reference decides, and words the 422
        return self._from_model(self._validate(body, is_json))

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
