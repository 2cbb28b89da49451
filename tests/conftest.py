"""Shared fixtures: a ManualClock, a private EventBus and a recorder of its events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilio import Event, EventBus, ManualClock


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio; a missing trio fails, not skips."""
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time starting at 0."""
    return ManualClock()


@pytest.fixture
def bus() -> EventBus:
    """A bus of the test's own, so tests never see each other's events."""
    return EventBus()


@pytest.fixture
def events(bus: EventBus) -> Iterator[list[Event]]:
    """Every event published on ``bus`` during the test, in order."""
    seen: list[Event] = []
    unsubscribe = bus.subscribe(Event, seen.append)
    yield seen
    unsubscribe()
