"""CircuitBreaker basics: the four ways to guard a call, and what an open breaker says.

A breaker guards a flaky "payments" dependency. Three failures in a row trip it; while
it is open, calls are rejected at once with ``CircuitOpenError`` and a ``retry_after``;
once ``open_timeout`` has passed, probe calls find out whether the dependency is back
(other calls meanwhile are told the breaker is half-open). A rate limiter's rejections
inside the breaker count neither as failures nor as successes.
Time is a ``ManualClock``, so the ten-second timeout passes instantly.

Run it with ``python examples/breaker_basics.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitStateChanged,
    EventBus,
    ManualClock,
    MisuseError,
    RateLimitExceeded,
    TokenBucket,
)

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this breaker's events


def show_change(event: CircuitStateChanged) -> None:
    """Print every state change as it happens."""
    print(
        f"    [t={event.at:4.1f}s] {event.source}: "
        f"{event.old.value} -> {event.new.value} ({event.reason})"
    )


bus.subscribe(CircuitStateChanged, show_change)

breaker = CircuitBreaker(
    name="payments",
    failure_threshold=3,  # three failures in a row trip it
    success_threshold=2,  # two good probes close it again
    open_timeout=10.0,  # seconds to stay open before probing
    clock=clock,
    bus=bus,
)


class Payments:
    """A stand-in for a remote service that is either up or down."""

    up = False

    def ping(self) -> str:
        if not self.up:
            raise ConnectionError("payments unreachable")
        return "pong"


payments = Payments()


@breaker  # 1. a decorator on a def ...
def charge(amount: int) -> str:
    return f"charged {amount} ({payments.ping()})"


@breaker  # ... and on an async def, with the same breaker
async def refund(amount: int) -> str:
    await anyio.sleep(0)
    return f"refunded {amount} ({payments.ping()})"


def attempt(label: str, fn: Callable[..., object], *args: object) -> None:
    """Run one call and print how it ended."""
    try:
        result = fn(*args)
    except (CircuitOpenError, RateLimitExceeded) as exc:
        print(f"  {label}: rejected, {exc} (retry_after={exc.retry_after})")
    except ConnectionError as exc:
        print(f"  {label}: failed, {exc}")
    except MisuseError:  # a TypeError: the calling code is wrong, not the dependency
        print(f"  {label}: MisuseError, an async def given to call(); use call_async()")
    else:
        print(f"  {label}: {result}")


def main() -> None:
    print("1. The dependency is down: three failures in a row trip the breaker.")
    for i in range(3):
        attempt(f"charge #{i + 1}", charge, 10)
    print(f"  state: {breaker.state}")

    print("2. While open, calls are rejected without running.")
    attempt("charge", charge, 10)
    clock.advance(4.0)
    attempt("refund (async, via anyio.run)", anyio.run, refund, 5)

    print("3. The dependency recovers; after open_timeout the next call is a probe.")
    payments.up = True
    clock.advance(6.0)
    attempt("call()", breaker.call, payments.ping)  # 2. breaker.call(fn, *args)
    with breaker:  # 3. a with-block: an exception inside counts as a failure
        print(f"  with-block: {payments.ping()}")
        # The block holds the only probe slot: other calls are rejected meanwhile.
        attempt("charge during the probe", charge, 1)
    print(f"  state: {breaker.state}")

    print("4. Closed again: everything passes.")
    attempt("charge", charge, 20)
    attempt("refund (async, via anyio.run)", anyio.run, refund, 7)
    print(f"  {breaker!r}")

    print("5. A rate limiter's rejections inside the breaker count neither way.")
    bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=bus)
    for i in range(5):
        attempt(f"call #{i + 1}", breaker.call, bucket.call, payments.ping)
    print(f"  state: {breaker.state}, {breaker.snapshot().consecutive_failures} failures")

    print("6. A mistake in the calling code is a MisuseError, and counts neither way.")
    for i in range(3):  # as many as failure_threshold: three failures would trip it
        attempt(f"call(refund) #{i + 1}", breaker.call, refund, 1)  # async def: use call_async
    print(f"  state: {breaker.state}")


if __name__ == "__main__":
    main()
