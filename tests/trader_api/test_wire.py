"""The msgspec codec of the hot routes against the pydantic models it replaces (no database).

The oracle is what FastAPI does today with a pydantic-typed body: ``json.loads`` and then
``TypeAdapter(model).validate_python`` (``fastapi/_compat/v2.py``); ``test_the_app_answers``
checks that oracle against a real FastAPI app as well."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import pytest
from fastapi import APIRouter, Depends, FastAPI, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from sapphire.trader_api import wire
from sapphire.trader_api.schemas.market import TickBatch, TickCreate, TicksAccepted
from sapphire.trader_api.schemas.orders import OrderCreate, OrderPublic
from tests.trader_api.wire_bodies import (
    ODD_DECIMALS,
    ODD_TOKENS,
    assert_agree,
    canonical,
    encode,
    order_bodies,
    raw,
    reference,
    tick_bodies,
    values,
    wrapped,
)

ORDER: dict[str, Any] = {
    "client_order_id": "c-1",
    "symbol": "BTC-USD",
    "side": "buy",
    "type": "limit",
    "quantity": "0.5",
    "limit_price": "100.10",
    "time_in_force": "ioc",
    "agent": "mom-1",
}
TICK: dict[str, Any] = {
    "symbol": "BTC-USD",
    "bid": "100.00",
    "ask": "100.10",
    "last": "100.05",
    "size": "0",
    "ts": "2026-03-02T14:30:00.123456+00:00",
}
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- (a) accept/reject, values and the 422 agree with pydantic -----------------------------------


@PROPERTY
@given(wrapped(order_bodies(), b'"quantity": "bad", '))
def test_order_bodies_agree_with_pydantic(case: tuple[bytes, str | None]) -> None:
    assert_agree(OrderCreate, wire.OrderCreateWire, wire.decode_order, *case)


@PROPERTY
@given(wrapped(st.lists(tick_bodies(), max_size=3).map(lambda ticks: {"ticks": ticks}), b'"ticks": 1, '))
def test_tick_batches_agree_with_pydantic(case: tuple[bytes, str | None]) -> None:
    assert_agree(TickBatch, wire.TickBatchWire, wire.decode_ticks, *case)


def _tick(**fields: Any) -> bytes:
    return encode(
        {"ticks": [{name: value for name, value in {**TICK, **fields}.items() if value is not ...}]}
    )


def _order(**fields: Any) -> bytes:
    return encode({name: value for name, value in {**ORDER, **fields}.items() if value is not ...})


ORDER_TABLE = [
    _order(),
    *(_order(**{field: ...}) for field in ORDER),
    *(_order(**{field: f"{ORDER[field]}\n"}) for field in ("client_order_id", "symbol", "agent", "side")),
    _order(symbol="BTC-USD "),
    _order(client_order_id="x" * 64),
    _order(client_order_id="x" * 65),
    _order(type="market"),
    _order(type="market", limit_price=None),
    _order(limit_price=None),
    _order(time_in_force=None),
    _order(time_in_force="GTC"),
    _order(agent=None),
    _order(surprise=1),
    *(_order(quantity=text) for text in ODD_DECIMALS),
    *(_order(quantity=token) for token in ODD_TOKENS),
    *(
        _order(quantity=raw(text))
        for text in ["1.10", "100.0", "1e2", "5e-324", "1e-13", "-0.0", "0.1", "1.0e12"]
    ),
    *(_order(quantity=number) for number in [10**12 - 1, 10**12, 10**24, 0, -1, 0.1, 1e-12, 1e12]),
    _order(quantity=raw("123456789012.123456789012")),
    _order(quantity="123456789012.123456789012"),
    _order(quantity="999999999999.999999999999"),
    _order(quantity="1" * 30),
    _order(quantity="0." + "0" * 30 + "1"),
    b'{"quantity": "bad", ' + _order()[1:],
    _order()[:-1] + b', "quantity": "bad"}',
]
TIMESTAMPS = [
    "2026-03-02T14:30:00Z", "2026-03-02t14:30:00z", "2026-03-02 14:30:00+01:00", "2026-03-02_14:30:00Z",
    "2026-03-02T14:30Z", "2026-03-02T14:30:00.1234567Z", "2026-03-02T14:30:00.999999999-00:00",
    "2026-03-02T14:30:00.Z", "2026-03-02T14:30:00,5Z", "2026-03-02T14:30:00+0100", "2026-03-02T14:30:00+01",
    "2026-03-02T14:30:00+05:60", "2026-03-02T14:30:00+23:59", "2026-03-02T14:30:00+24:00",
    "2026-03-02T14:30:00", "2026-03-02", "2026-03-02T14:30:00Z\n", " 2026-03-02T14:30:00Z",
    "2026-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2026-03-02T24:00:00Z", "2026-03-02T23:59:60Z",
    "2100-01-01T00:00:00Z", "2100-01-01T00:00:00.000001Z", "2100-01-01T01:00:00+01:00",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "1969-12-31T23:00:00-01:00",
    "1970-01-01T00:59:59+01:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-23:59",
    "\uff12026-03-02T14:30:00Z", "2026-03-02T14:30:00.12345\u0666Z", "2026-03-02T14:30:00+\uff10\uff11:00",
    "1700000000", 1_700_000_000, 1_700_000_000.5, 17_000_000_000_000, -1, 0, None,
]  # fmt: skip
TICK_TABLE = [
    _tick(),
    *(_tick(ts=ts) for ts in TIMESTAMPS),
    *(_tick(**{field: ...}) for field in TICK),
    _tick(bid="100.10"),
    _tick(bid="100.11"),
    _tick(size="-0"),
    _tick(size=raw("-0.0")),
    _tick(size=raw("0")),
    _tick(size="0E-20"),
    _tick(size="-1"),
    _tick(bid="1e-13", ask="1"),
    _tick(bid=raw("100.0"), ask=raw("1e2")),
    encode({"ticks": []}),
    encode({"ticks": {}}),
    encode({"ticks": [TICK, {**TICK, "bid": "-1"}, {**TICK, "ask": "x"}]}),
    encode({"ticks": [TICK], "more": []}),
]


@pytest.mark.parametrize("body", ORDER_TABLE)
def test_known_order_edges_agree_with_pydantic(body: bytes) -> None:
    assert_agree(OrderCreate, wire.OrderCreateWire, wire.decode_order, body, "application/json")


@pytest.mark.parametrize("body", TICK_TABLE)
def test_known_tick_edges_agree_with_pydantic(body: bytes) -> None:
    assert_agree(TickBatch, wire.TickBatchWire, wire.decode_ticks, body, "application/json")


@pytest.fixture
def no_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any use of pydantic validation fails the test: the body must be msgspec's alone."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydantic was asked")

    monkeypatch.setattr(TypeAdapter, "validate_python", refuse)


@pytest.mark.usefixtures("no_pydantic")
def test_msgspec_reads_decimal_strings_as_written() -> None:
    """A decimal string of the documented form is taken verbatim (trailing zeros kept), with
    no fallback to pydantic."""
    cases = {
        "1.10": "Decimal('1.10')",
        "100.0": "Decimal('100.0')",
        "42": "Decimal('42')",
        "0.000000000001": "Decimal('1E-12')",
        "123456789012.123456789012": "Decimal('123456789012.123456789012')",
        "1.000000000000": "Decimal('1.000000000000')",
    }
    for token, expected in cases.items():
        assert repr(wire.decode_order(_order(quantity=token)).quantity) == expected, token


@pytest.mark.parametrize(
    "token",
    [raw("1.10"), raw("42"), "1E+3", " 1_000 ", "1.0000000000000", "000123.45", "+1", "", ".5", "1."],
)
def test_a_decimal_in_another_form_is_refused_naming_its_field(token: str) -> None:
    """JSON numbers (they would go through a float), exponents, blanks, underscores, 13
    places, leading zeros or a sign: pydantic took them all, the documented form none."""
    with pytest.raises(RequestValidationError) as caught:
        wire.decode_order(_order(quantity=token))
    assert [error["loc"] for error in caught.value.errors()] == [("body", "quantity")]


def test_the_errors_name_the_field_in_pydantic_order_not_input_order() -> None:
    body = encode({"quantity": "-1", "surprise": 1, "symbol": "BTC-USD", "side": "buy", "type": "market"})
    with pytest.raises(RequestValidationError) as caught:
        wire.decode_order(body)
    locs = [error["loc"] for error in caught.value.errors()]
    assert locs == [("body", "client_order_id"), ("body", "quantity"), ("body", "surprise")]
    tick = {**TICK, "bid": "-1"}
    with pytest.raises(RequestValidationError) as caught:
        wire.decode_ticks(encode({"ticks": [TICK, tick]}))
    assert [error["loc"] for error in caught.value.errors()] == [("body", "ticks", 1, "bid")]


def test_a_bid_above_its_ask_is_refused_though_both_prices_are_known() -> None:
    """Known prices take the shortcut of a dict lookup (no parsing): the bid-ask rule still holds."""
    fine = {**TICK, "bid": "100.00", "ask": "100.01", "last": "100.00", "size": "1"}
    assert len(wire.decode_ticks(encode({"ticks": [fine]})).quotes()) == 1  # every value known now
    crossed = {**fine, "bid": "100.01", "ask": "100.00"}
    with pytest.raises(RequestValidationError) as caught:
        wire.decode_ticks(encode({"ticks": [fine, crossed]}))
    assert [error["loc"] for error in caught.value.errors()] == [("body", "ticks", 1)]


def test_a_batch_holds_at_most_5000_ticks() -> None:
    assert len(wire.decode_ticks(encode({"ticks": [TICK] * 5000})).ticks) == 5000
    with pytest.raises(RequestValidationError) as caught:
        wire.decode_ticks(encode({"ticks": [TICK] * 5001}))
    assert [(error["loc"], error["type"]) for error in caught.value.errors()] == [
        (("body", "ticks"), "too_long")
    ]


def test_the_structs_have_the_fields_and_defaults_of_the_models() -> None:
    pairs: list[tuple[type[msgspec.Struct], type[BaseModel]]] = [
        (wire.OrderCreateWire, OrderCreate),
        (wire.TickBatchWire, TickBatch),
        (wire.TickCreateWire, TickCreate),
    ]
    for struct, model in pairs:
        mirrored = {field.name: field.default for field in msgspec.structs.fields(struct)}
        declared = {
            name: msgspec.NODEFAULT if info.is_required() else info.default
            for name, info in model.model_fields.items()
        }
        assert list(mirrored.items()) == list(declared.items())
        assert struct.__struct_config__.forbid_unknown_fields


# -- (b) the OpenAPI document --------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Token with scope read, agent or admin.")


def scope(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    return "agent"


Scope = Annotated[str, Depends(scope)]
ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Reused client_order_id"},
    422: {"description": "Invalid field"},
}


def pydantic_app() -> FastAPI:
    """The routes as they are today: the pydantic model in the signature."""
    router = APIRouter(tags=["orders"])

    @router.post("/orders", response_model=OrderPublic, status_code=status.HTTP_201_CREATED, responses=ERRORS)
    async def submit_order(request: OrderCreate, _: Scope, response: Response) -> OrderPublic:
        """Submit an order to the paper venue: 201 when new, 200 when a retry of the same order."""
        raise NotImplementedError

    @router.post("/ticks", response_model=TicksAccepted)
    async def post_ticks(batch: TickBatch, _: Scope) -> TicksAccepted:
        """Ingest ticks."""
        return TicksAccepted(accepted=len(batch.ticks))

    app = FastAPI(title="Sapphire trader API", version="1")
    app.include_router(router, prefix="/v1")
    return app


def wire_app() -> FastAPI:
    """The same routes through ``wire.post`` and the ``OrderBody``/``TickBatchBody`` parameters."""
    router = APIRouter(tags=["orders"])

    @wire.post(
        router, "/orders", response_model=OrderPublic, status_code=status.HTTP_201_CREATED, responses=ERRORS
    )
    async def submit_order(request: wire.OrderBody, _: Scope, response: Response) -> OrderPublic:
        """Submit an order to the paper venue: 201 when new, 200 when a retry of the same order."""
        raise NotImplementedError

    @wire.post(router, "/ticks", response_model=TicksAccepted)
    async def post_ticks(batch: wire.TickBatchBody, _: Scope) -> TicksAccepted:
        """Ingest ticks."""
        return TicksAccepted(accepted=len(batch.ticks))

    app = FastAPI(title="Sapphire trader API", version="1")
    app.include_router(router, prefix="/v1")
    return app


def test_the_openapi_document_is_the_one_of_the_pydantic_routes() -> None:
    today, fast = pydantic_app().openapi(), wire_app().openapi()
    assert fast == today
    assert json.dumps(fast, sort_keys=True) == json.dumps(today, sort_keys=True)
    body = fast["paths"]["/v1/orders"]["post"]["requestBody"]
    assert body == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderCreate"}}},
        "required": True,
    }
    assert {"OrderCreate", "TickBatch", "TickCreate", "HTTPValidationError"} <= set(
        fast["components"]["schemas"]
    )


def test_post_wants_a_wire_body_parameter() -> None:
    async def submit_order(request: OrderCreate) -> None:
        raise NotImplementedError

    with pytest.raises(TypeError, match="OrderBody"):
        wire.post(APIRouter(), "/orders")(submit_order)


# -- the app answers as today --------------------------------------------------------------------


def echo_app_today() -> FastAPI:
    """Echoes the decoded values, with pydantic-typed bodies."""
    app = FastAPI()

    @app.post("/orders")
    async def order(body: OrderCreate) -> Any:
        return values(body)

    @app.post("/ticks")
    async def ticks(body: TickBatch) -> Any:
        return values(body)

    return app


def echo_app_wire() -> FastAPI:
    """Echoes the decoded values, with ``wire`` bodies."""
    router = APIRouter()

    @wire.post(router, "/orders")
    async def order(body: wire.OrderBody) -> Any:
        return values(body)

    @wire.post(router, "/ticks")
    async def ticks(body: wire.TickBatchBody) -> Any:
        return values(body)

    app = FastAPI()
    app.include_router(router)
    return app


def _b(body: Any) -> bytes:
    return encode(body)


APP_CASES: list[tuple[str, bytes, str | None]] = [
    ("/orders", _b(ORDER), "application/json"),
    (
        "/orders",
        _b({**ORDER, "type": "market", "limit_price": None, "quantity": raw("1.10")}),
        "application/json",
    ),
    ("/orders", _b({**ORDER, "type": "market"}), "application/json"),
    ("/orders", _b({**ORDER, "quantity": "0.0000000000001", "symbol": "btc"}), "application/json"),
    ("/orders", _b({**ORDER, "extra": 1}), "application/json; charset=utf-8"),
    ("/orders", _b(ORDER), "text/plain"),
    ("/orders", _b(ORDER), None),
    ("/orders", _b(ORDER), "application/json-seq"),
    ("/orders", _b(ORDER), "Application/JSON"),
    ("/orders", b"", "application/json"),
    ("/orders", b"{not json", "application/json"),
    ("/orders", b"[]", "application/json"),
    ("/orders", b'{"quantity": NaN}', "application/json"),
    ("/orders", b"\xef\xbb\xbf" + _b(ORDER), "application/json"),
    ("/orders", b'{"client_order_id": "\xff"}', "application/json"),
    ("/orders", b"[" * 100_000, "application/json"),
    (
        "/ticks",
        _b({"ticks": [TICK, {**TICK, "ts": "2026-03-02T14:30:00.1234567+01:00"}]}),
        "application/json",
    ),
    ("/ticks", _b({"ticks": [{**TICK, "ts": 1_700_000_000}]}), "application/json"),
    ("/ticks", _b({"ticks": [{**TICK, "ts": "2026-03-02T14:30:00"}]}), "application/json"),
    ("/ticks", _b({"ticks": [{**TICK, "bid": "101"}]}), "application/vnd.sapphire+json"),
    ("/ticks", _b({"ticks": []}), "application/json"),
    ("/ticks", _b({"ticks": [TICK], "ticks2": []}), "application/json"),
]


def test_the_app_answers_as_today() -> None:
    """Status and body of every request, against a FastAPI app with pydantic-typed bodies; and
    the oracle of the properties against that app."""
    today = TestClient(echo_app_today(), raise_server_exceptions=False)
    fast = TestClient(echo_app_wire(), raise_server_exceptions=False)
    for path, body, content_type in APP_CASES:
        headers = {"content-type": content_type} if content_type else {}
        expected, got = (
            today.post(path, content=body, headers=headers),
            fast.post(path, content=body, headers=headers),
        )
        assert (got.status_code, got.content) == (expected.status_code, expected.content), (path, body[:80])
        outcome = reference(OrderCreate if path == "/orders" else TickBatch, body, content_type)
        if isinstance(outcome, BaseModel):
            assert (expected.status_code, expected.json()) == (200, jsonable_encoder(values(outcome)))
        elif expected.status_code == 500:  # today too: FastAPI cannot render a NaN input in its 422
            assert isinstance(outcome, list)
            assert "NaN" in canonical(outcome)
        elif isinstance(outcome, list):
            assert (expected.status_code, canonical(expected.json())) == (422, canonical({"detail": outcome}))
        else:
            assert (expected.status_code, outcome) == (400, 400)


# -- (c) decoding is msgspec's -------------------------------------------------------------------


@pytest.mark.usefixtures("no_pydantic")
def test_valid_bodies_never_reach_pydantic() -> None:
    for body in [ORDER, {**ORDER, "type": "market", "limit_price": None, "agent": None}]:
        order = wire.decode_order(encode(body))
        assert type(order) is wire.OrderCreateWire
        assert isinstance(order, msgspec.Struct)
    zones = ["2026-03-02T14:30:00Z", "2026-03-02T14:30:00.1Z", "2026-03-02T14:30:00.123456789-05:30"]
    batch = wire.decode_ticks(encode({"ticks": [{**TICK, "ts": ts} for ts in zones]}))
    assert type(batch) is wire.TickBatchWire
    assert {type(tick) for tick in batch.ticks} == {wire.TickCreateWire}
    assert [tick.ts for tick in batch.ticks] == [
        datetime.fromisoformat(text).astimezone(UTC)
        for text in [
            "2026-03-02T14:30:00+00:00",
            "2026-03-02T14:30:00.100000+00:00",
            "2026-03-02T14:30:00.123456-05:30",
        ]
    ]
    assert type(batch.ticks[0].bid) is Decimal
    assert batch.ticks[0].bid == Decimal("100.00")


_DIGITS = st.sampled_from([*"0123456789", "\u0663", "\u00b2", "\uff15"])  # ASCII, and digits that are not
_ZONES = st.sampled_from(
    [
        "Z",
        "+00:00",
        "-05:30",
        "+23:59",
        "-23:59",
        "z",
        "+24:00",
        "+05:60",
        "+0530",
        "+05",
        "",
        "Z\n",
        "+05:30 ",
    ]
)


@PROPERTY
@given(
    second=st.sampled_from(["2026-03-02T14:30:00", "2028-02-29T23:59:59", "1970-01-02T00:00:00"]),
    fraction=st.none()
    | st.integers(min_value=0, max_value=11).map(lambda digits: "7" * digits)  # every length, 9 the most
    | st.lists(_DIGITS, max_size=11).map("".join),
    zone=_ZONES,
)
def test_a_timestamp_of_a_second_already_seen_is_decided_as_the_pattern_decides(
    second: str, fraction: str | None, zone: str
) -> None:
    """The shortcut for a second seen before (the first tick of the batch is of that second)
    accepts and reads exactly what the TIMESTAMP pattern does."""
    text = second + ("" if fraction is None else f".{fraction}") + zone
    body = encode({"ticks": [{**TICK, "ts": f"{second}Z"}, {**TICK, "ts": text}]})
    assert_agree(TickBatch, wire.TickBatchWire, wire.decode_ticks, body, "application/json")


_JUNK = st.sampled_from([*"059.,:+-Zz T_e\n", "\u0663", "\uff15", "+05:30", "00:00"])


@PROPERTY
@given(
    second=st.sampled_from(["2026-03-02T14:30:00", "2028-02-29T23:59:59", "1970-01-02T00:00:00"]),
    point=st.sampled_from([".", ",", ""]),
    digits=st.text(alphabet="0123456789", max_size=10),
    junk=st.lists(_JUNK, max_size=4).map("".join),
    zone=_ZONES,
)
def test_whatever_follows_a_second_already_seen_is_decided_as_the_pattern_decides(
    second: str, point: str, digits: str, junk: str, zone: str
) -> None:
    """The shortcut leaves the characters after the second to ``datetime.fromisoformat``,
    which is laxer than the pattern (a comma, a 10th digit, ``+05``, anything after a 6th
    fraction digit): whatever they are, the shortcut accepts and reads what the pattern does."""
    text = second + point + digits + junk + zone
    body = encode({"ticks": [{**TICK, "ts": f"{second}Z"}, {**TICK, "ts": text}]})
    assert_agree(TickBatch, wire.TickBatchWire, wire.decode_ticks, body, "application/json")
