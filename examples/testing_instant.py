"""Instant mode: test code that retries, on the real clock, without waiting.

The application below retries on the system clock with long delays, as production
code does; it knows nothing about tests. The test functions turn on
``resilio.testing.instant()`` and its retries skip their sleeps: the whole file runs
in a moment (without instant mode, the first test alone would sleep over a minute),
and breakers stay closed.
They are test functions as you would write them for pytest, run here as a script.

Run it with ``python examples/testing_instant.py``, or copy the functions into a test
module and run ``pytest``.
"""

from __future__ import annotations

import time
from contextlib import suppress
from importlib.util import find_spec

import anyio
import anyio.lowlevel

from resilio import CircuitBreaker, CircuitState, EventBus, Retry, RetryScheduled, retry
from resilio.testing import instant, is_instant, set_instant

# -- the application: nothing here knows about tests ---------------------------------

calls: list[str] = []
bus = EventBus()


# --8<-- [start:app]
@retry(on=ConnectionError, attempts=5, base_delay=20, max_delay=60, bus=bus)
def fetch_user(user_id: int) -> str:
    calls.append("fetch")
    if len(calls) < 4:
        raise ConnectionError("connection reset")
    return f"user {user_id}"


@retry(on=ConnectionError, attempts=None, timeout=300)
async def publish(message: str) -> None:
    calls.append("publish")
    await anyio.lowlevel.checkpoint()
    raise ConnectionError("broker down")
    # --8<-- [end:app]


# -- the tests ------------------------------------------------------------------------


# --8<-- [start:context]
def test_fetch_recovers() -> None:
    """Three failures, then the user: four tries, no sleep."""
    calls.clear()
    started = time.monotonic()
    with instant():
        assert fetch_user(42) == "user 42"
    assert calls == ["fetch"] * 4
    assert time.monotonic() - started < 5  # not the 20 + 40 + 60 seconds of backoff
    # --8<-- [end:context]


# --8<-- [start:attempts]
def test_fetch_gives_up() -> None:
    """With attempts=2 every retry stops after two tries: the error comes at once."""
    calls.clear()
    with instant(attempts=2):
        try:
            fetch_user(42)
        except ConnectionError:
            pass
        else:
            raise AssertionError("expected ConnectionError")
    assert calls == ["fetch"] * 2
    # --8<-- [end:attempts]


# --8<-- [start:decorator]
@instant(attempts=3)
async def test_publish_gives_up() -> None:
    """An async test: an unbounded retry is capped too, and sleeps nothing."""
    calls.clear()
    try:
        await publish("hello")
    except ConnectionError:
        pass
    assert calls == ["publish"] * 3
    # --8<-- [end:decorator]


# --8<-- [start:events]
def test_events_still_published() -> None:
    """Each retry is still announced, with a delay of zero."""
    calls.clear()
    delays: list[float] = []
    unsubscribe = bus.subscribe(RetryScheduled, lambda e: delays.append(e.delay))
    with instant():
        fetch_user(7)
    unsubscribe()
    assert delays == [0.0, 0.0, 0.0]
    # --8<-- [end:events]


# --8<-- [start:timeout]
def test_timeout_still_ends_an_unbounded_retry() -> None:
    """Skipped sleeps count against timeout: the retrying ends, at once, after the tries
    it would have made in real time (about 60 s / 1 s; the tries' own time counts too)."""
    tries = 0

    def down() -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError

    policy = Retry(attempts=None, base_delay=1, max_delay=1, jitter=None, timeout=60)
    with instant():
        try:
            policy.call(down)
        except ConnectionError:
            pass
    assert 55 <= tries <= 61
    # --8<-- [end:timeout]


# --8<-- [start:breaker]
def test_breaker_stays_closed() -> None:
    """Failures that would open a breaker leave it closed, so the next test is not
    rejected by what this one did."""
    breaker = CircuitBreaker(failure_threshold=2)

    @breaker
    def charge() -> None:
        raise ConnectionError("payments down")

    with instant():
        for _ in range(5):
            with suppress(ConnectionError):
                charge()
    assert breaker.state is CircuitState.CLOSED
    # --8<-- [end:breaker]


# --8<-- [start:switch]
def test_set_instant_for_a_whole_suite() -> None:
    """set_instant(True) in a fixture's setup, set_instant(False) in its teardown."""
    set_instant(True, attempts=2)
    try:
        assert is_instant()
    finally:
        set_instant(False)
    assert not is_instant()
    # --8<-- [end:switch]


def main() -> None:
    for test in (
        test_fetch_recovers,
        test_fetch_gives_up,
        test_events_still_published,
        test_timeout_still_ends_an_unbounded_retry,
        test_breaker_stays_closed,
        test_set_instant_for_a_whole_suite,
    ):
        test()
        print(f"passed: {test.__name__}")
    anyio.run(test_publish_gives_up, backend="asyncio")
    if find_spec("trio"):  # instant mode holds under trio just the same
        anyio.run(test_publish_gives_up, backend="trio")
    print("passed: test_publish_gives_up")
    assert not is_instant()


if __name__ == "__main__":
    main()
