"""``records.evolve``: what ``dataclasses.replace`` gives, for the records it takes."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sapphire.trader_api.core import domain, records
from tests.trader_api.test_dump import orders


@given(
    orders, st.sampled_from(domain.OrderStatus), st.text(max_size=10), st.datetimes(timezones=st.just(UTC))
)
def test_an_evolved_order_is_the_replaced_one(
    order: records.Order, status: domain.OrderStatus, reason: str, now: datetime
) -> None:
    before = dict(vars(order))
    evolved = records.evolve(order, status=status, reason=reason, updated_at=now)
    assert evolved == dataclasses.replace(order, status=status, reason=reason, updated_at=now)
    assert type(evolved) is records.Order
    assert vars(order) == before  # the old one is untouched
    assert records.evolve(order) == order


@given(orders)
def test_a_name_that_is_not_a_field_is_refused(order: records.Order) -> None:
    with pytest.raises(TypeError, match="no field 'stauts'"):
        records.evolve(order, stauts=domain.OrderStatus.FILLED)


def test_a_record_with_a_cache_or_a_post_init_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Cached:
        value: Decimal

        @functools.cached_property
        def doubled(self) -> Decimal:
            return self.value * 2

    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: Decimal

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    cached = Cached(Decimal(1))
    assert cached.doubled == 2  # the cache now holds a value evolve would carry over, stale
    with pytest.raises(TypeError, match="Cached"):
        records.evolve(cached, value=Decimal(2))
    with pytest.raises(TypeError, match="Checked"):
        records.evolve(Checked(Decimal(1)), value=Decimal(-1))
