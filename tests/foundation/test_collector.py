"""The garbage collector's settings for service processes (``sapphire.collector``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sapphire import collector


class _Node:
    def __init__(self) -> None:
        self.partner: _Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's own collector as it was: this process is not a service."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_collections_spaced_out() -> None:
    before = _Node()
    assert gc.get_freeze_count() == 0
    assert gc.is_tracked(before)
    assert gc.get_threshold()[0] != collector.YOUNG_THRESHOLD

    collector.settle_for_service()

    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
    assert not any(item is before for item in gc.get_objects())  # frozen: never walked again


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_afterwards_are_still_collected() -> None:
    collector.settle_for_service()
    first, second = _Node(), _Node()
    first.partner, second.partner = second, first
    alive = weakref.ref(first)
    del first, second
    assert alive() is not None  # a cycle: reference counting alone keeps it
    gc.collect()
    assert alive() is None
