"""Static checks of the breakers' result predicates, last failures and growing timeouts.

Never executed; checked by ``mypy --strict tests/typing``. The ``# type: ignore``
lines are deliberate misuse: with ``warn_unused_ignores`` mypy fails if they stop
being errors.
"""

from __future__ import annotations

from datetime import timedelta

from typing_extensions import assert_type

from resilio import CallCompleted, CircuitBreaker, CircuitOpenError, EventBus, SlidingWindowBreaker


class Response:
    """A stand-in for an HTTP response."""

    status: int = 200


def unavailable(response: Response) -> bool:
    """A predicate on one result type."""
    return response.status == 503


breaker = CircuitBreaker(
    failure_if=unavailable, open_timeout=10, open_timeout_max=timedelta(minutes=5)
)
sliding = SlidingWindowBreaker(failure_if=lambda result: result is None, open_timeout_max=60.0)
untyped = CircuitBreaker(failure_if=None)


@breaker
def fetch(url: str) -> Response:
    """A decorated def keeps its signature."""
    return Response()


@sliding
async def fetch_async(url: str, *, retries: int = 0) -> Response:
    """A decorated async def keeps its signature."""
    return Response()


assert_type(fetch("/"), Response)
assert_type(breaker.call(fetch, "/"), Response)
assert_type(breaker.snapshot().last_failure, object)
assert_type(sliding.snapshot().last_failure, object)
assert_type(breaker.snapshot().open_timeout, float)
assert_type(CircuitOpenError("db", 1.0, last_failure=ValueError()).last_failure, object)


async def uses_async() -> None:
    """The async forms keep the result type."""
    assert_type(await fetch_async("/", retries=1), Response)
    assert_type(await sliding.call_async(fetch_async, "/"), Response)
    fetch_async(1)  # type: ignore[arg-type,unused-coroutine]


breaker.record_failure()
breaker.record_failure(Response())

CircuitBreaker(failure_if=ValueError)  # runtime TypeError too: exception types go in failure_on
CircuitBreaker(open_timeout_max="60")  # type: ignore[arg-type]

# Cumulative counters in both snapshots, and CallCompleted for subscribers.
for snap in (breaker.snapshot(), sliding.snapshot()):
    assert_type(snap.succeeded, int)
    assert_type(snap.failed, int)
    assert_type(snap.ignored, int)
    assert_type(snap.rejected, int)
    assert_type(snap.transitions, int)


def on_completed(event: CallCompleted) -> None:
    """A latency handler sees the outcome and the duration in seconds."""
    assert_type(event.outcome, str)
    assert_type(event.duration, float)


breaker_bus = EventBus()
breaker_bus.subscribe(CallCompleted, on_completed)
