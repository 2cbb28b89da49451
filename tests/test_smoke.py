"""The smallest end-to-end checks, kept as a canary."""

from __future__ import annotations

import pytest

from resilio import CircuitBreaker, CircuitOpenError, CircuitState, ManualClock


def test_breaker_opens_and_recovers(clock: ManualClock) -> None:
    """Five failures open the breaker; after the timeout three probes close it."""
    breaker = CircuitBreaker(clock=clock)

    @breaker
    def fail() -> None:
        raise ConnectionError

    for _ in range(5):
        with pytest.raises(ConnectionError):
            fail()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        fail()
    clock.advance(30)
    for _ in range(3):
        breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_async_breaker(clock: ManualClock) -> None:
    """The decorator works on an async function on both backends."""
    breaker = CircuitBreaker(clock=clock)

    @breaker
    async def ok(x: int) -> int:
        return x + 1

    assert await ok(1) == 2
