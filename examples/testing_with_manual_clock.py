"""Testing with ManualClock: time moves only when the test says so.

These are test functions as you would write them for pytest (plain ``assert``, one
behaviour each), run here as a script so the example needs nothing but resilio.
Nothing in them waits for real time, and nothing depends on how fast the machine is.

Run it with ``python examples/testing_with_manual_clock.py``, or copy the functions
into a test module and run ``pytest``.
"""

from __future__ import annotations

import math
from importlib.util import find_spec

import anyio

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    EventBus,
    ManualClock,
)


# --8<-- [start:year]
def test_a_year_long_sleep_finishes_at_once() -> None:
    """A blocking sleep on a ManualClock moves the clock on and returns at once."""
    clock = ManualClock()
    clock.sleep(365 * 24 * 3600)  # a year
    assert clock.monotonic() == 31_536_000.0
    # --8<-- [end:year]


# --8<-- [start:async]
def test_advance_wakes_async_sleepers() -> None:
    """advance() wakes exactly the async sleepers whose deadline has come."""

    async def scenario() -> None:
        clock = ManualClock()
        woke: list[str] = []

        async def sleeper(label: str, seconds: float) -> None:
            await clock.sleep_async(seconds)
            woke.append(label)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sleeper, "short", 10.0)
            tasks.start_soon(sleeper, "long", 20.0)
            await anyio.wait_all_tasks_blocked()  # both are asleep now
            assert clock.sleepers == 2

            clock.advance(10.0)
            await anyio.wait_all_tasks_blocked()
            assert woke == ["short"]

            clock.advance(10.0)
            await anyio.wait_all_tasks_blocked()
            assert woke == ["short", "long"]

    anyio.run(scenario, backend="asyncio")
    if find_spec("trio"):  # the same clock drives trio, when it is installed
        anyio.run(scenario, backend="trio")
    # --8<-- [end:async]


# --8<-- [start:breaker]
def test_open_breaker_probes_after_open_timeout() -> None:
    """An open breaker rejects for exactly open_timeout seconds, then admits a probe."""
    clock = ManualClock()
    bus = EventBus()
    changes: list[CircuitStateChanged] = []
    bus.subscribe(CircuitStateChanged, changes.append)
    breaker = CircuitBreaker(
        failure_threshold=1, success_threshold=1, open_timeout=30.0, clock=clock, bus=bus
    )

    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN

    clock.advance(29.9)  # not yet: rejected, and told how long to wait
    rejection: CircuitOpenError | None = None
    try:
        breaker.call(lambda: "never runs")
    except CircuitOpenError as exc:  # with pytest: pytest.raises(CircuitOpenError)
        rejection = exc
    assert rejection is not None
    assert rejection.retry_after is not None
    assert math.isclose(rejection.retry_after, 0.1)

    clock.advance(0.1)  # thirty seconds in all, and the test took none of them
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED
    assert [(c.reason, c.at) for c in changes] == [
        ("consecutive_failures", 0.0),
        ("open_timeout_elapsed", 30.0),
        ("probe_succeeded", 30.0),
    ]
    # --8<-- [end:breaker]


if __name__ == "__main__":
    for test in (
        test_a_year_long_sleep_finishes_at_once,
        test_advance_wakes_async_sleepers,
        test_open_breaker_probes_after_open_timeout,
    ):
        test()
        print(f"PASSED {test.__name__}: {test.__doc__}")
