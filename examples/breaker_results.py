"""Circuit breakers: results that count as failures, a growing open timeout, the last failure.

Three short scenes, each on a ``ManualClock`` so that nothing sleeps:

* a 503 response counted as a failure with ``failure_if``, though the caller still
  gets the response;
* an open timeout that doubles after each failed probe, up to ``open_timeout_max``,
  and is back to ``open_timeout`` once the breaker closes;
* the failure that opened a breaker, in a log line written when a call is refused.

Run it with ``python examples/breaker_results.py``.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from resilio import CircuitBreaker, CircuitOpenError, EventBus, ManualClock, SlidingWindowBreaker

clock = ManualClock()
bus = EventBus()


# --8<-- [start:failure-if]
class Response:
    """What an HTTP client returns: a status, whatever it is."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


def unavailable(response: Response) -> bool:
    return response.status in (502, 503, 504)


search = CircuitBreaker(
    name="search", failure_threshold=3, failure_if=unavailable, clock=clock, bus=bus
)


@search
def query(status: int) -> Response:
    return Response(status)  # stands in for httpx.get(...)


for status in [200, 503, 503, 503]:
    print(f"{status}: got {query(status)!r}, breaker {search.state.value}")
try:
    query(200)
except CircuitOpenError as exc:
    print(f"then: {exc}, after {exc.last_failure!r}")
# --8<-- [end:failure-if]
assert search.snapshot().last_failure.status == 503  # type: ignore[attr-defined]

print()

# --8<-- [start:growing]
payments = SlidingWindowBreaker(
    name="payments",
    window_size=4,
    min_calls=2,
    success_threshold=1,
    open_timeout=10.0,
    open_timeout_max=60.0,
    clock=clock,
    bus=bus,
)


def down() -> None:
    raise ConnectionError("payments is down")


for _ in range(2):
    with contextlib.suppress(ConnectionError):
        payments.call(down)
waits = []
for _ in range(4):
    wait = payments.snapshot().retry_after or 0.0
    waits.append(wait)
    clock.advance(wait)  # wait out the open timeout, then probe
    with contextlib.suppress(ConnectionError):
        payments.call(down)  # the probe fails: the breaker opens again
print(f"waits between probes: {waits} -> next {payments.snapshot().retry_after}")
clock.advance(60)
payments.call(lambda: "ok")  # a probe succeeds: closed, and the timeout is back to 10 s
print(f"{payments.state.value}, open timeout {payments.snapshot().open_timeout}")
# --8<-- [end:growing]
assert waits == [10.0, 20.0, 40.0, 60.0]

print()

# --8<-- [start:last-failure]
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
log = logging.getLogger("shop")

inventory = CircuitBreaker(name="inventory", failure_threshold=1, clock=clock, bus=bus)


def stock(sku: str) -> int:
    raise TimeoutError(f"inventory did not answer for {sku}")


def stock_or_unknown(sku: str) -> int | None:
    try:
        return inventory.call(stock, sku)
    except TimeoutError:
        return None
    except CircuitOpenError as exc:
        log.warning("inventory refused for %.0fs after: %r", exc.retry_after, exc.last_failure)
        return None


stock_or_unknown("A-1")
stock_or_unknown("B-2")
# --8<-- [end:last-failure]
assert isinstance(inventory.snapshot().last_failure, TimeoutError)
