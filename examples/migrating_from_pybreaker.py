"""The same circuit breaker written with pybreaker, then with resilio.

Both breakers open after three failures in a row, treat a ``ValueError`` (a business
error, not an outage) as a success, reject calls while open, report their state
changes to a listener, and close again after one good probe. Last, two things
pybreaker has no option for: a returned HTTP 503 that counts as a failure
(``failure_if``), and an open timeout that doubles after each failed probe
(``open_timeout_max``).

resilio reads a ``ManualClock``, so its open timeout passes at once; pybreaker reads
the wall clock, so it gets a 200 ms ``reset_timeout`` and a real sleep. pybreaker is not
a dependency of resilio: install it with ``pip install pybreaker`` (CI gets it through
the ``bench`` extra). Run it with ``python examples/migrating_from_pybreaker.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pybreaker

from resilio import CircuitBreaker, CircuitOpenError, CircuitStateChanged, EventBus, ManualClock


def fail() -> str:
    raise ConnectionError("connection reset")


def bad_input() -> str:
    raise ValueError("no such user")


def ok() -> str:
    return "ok"


# -- before: pybreaker ------------------------------------------------------------
# --8<-- [start:before]


class PrintStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else None
        print(f"  pybreaker: {old} -> {new_state.name}")


before = pybreaker.CircuitBreaker(
    fail_max=3,
    reset_timeout=0.2,
    success_threshold=1,
    exclude=[ValueError],  # counts as a success
    listeners=[PrintStateChanges()],
    throw_new_error_on_trip=False,  # the tripping call raises its own error, as in resilio
)

# --8<-- [end:before]

# -- after: resilio ---------------------------------------------------------------
# --8<-- [start:after]

clock = ManualClock()
bus = EventBus()
bus.subscribe(
    CircuitStateChanged,
    lambda e: print(f"  resilio:   {e.old.value} -> {e.new.value} ({e.reason})"),
)
after = CircuitBreaker(
    failure_threshold=3,  # fail_max=3
    failure_rate_threshold=1.0,  # pybreaker has no failure-rate rule: turn it off
    open_timeout=0.2,  # reset_timeout=0.2
    success_threshold=1,  # success_threshold=1
    failure_on=lambda e: not isinstance(e, ValueError),  # exclude=[ValueError]
    clock=clock,
    bus=bus,
)  # listeners=[...] are subscriptions to `bus`
# --8<-- [end:after]


class Response:
    """An HTTP response: only its status matters here."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


# --8<-- [start:beyond]
api = CircuitBreaker(
    name="payments-api",
    failure_threshold=2,
    failure_rate_threshold=1.0,
    success_threshold=1,
    open_timeout=1.0,
    open_timeout_max=8.0,  # each failed probe doubles the open timeout: 1, 2, 4, 8 s
    failure_if=lambda response: response.status >= 500,  # a 503 returned is a failure
    clock=clock,
    bus=bus,
)
# --8<-- [end:beyond]


def attempt(name: str, call: Callable[[], str]) -> None:
    try:
        print(f"  {name} -> {call()!r}")
    except (pybreaker.CircuitBreakerError, CircuitOpenError) as error:
        print(f"  {name} -> rejected: {type(error).__name__}")
    except Exception as error:
        print(f"  {name} -> {type(error).__name__}: {error}")


def main() -> None:
    print("1. Two failures, then a ValueError, which counts as a success:")
    for fn in (fail, fail, bad_input):
        attempt("pybreaker", lambda fn=fn: before.call(fn))
        attempt("resilio  ", lambda fn=fn: after.call(fn))
    print(f"  failures in a row: pybreaker {before.fail_counter}, ", end="")
    print(f"resilio {after.snapshot().consecutive_failures}")

    print("2. Three failures in a row open both breakers; the next call is rejected:")
    for fn in (fail, fail, fail, ok):
        attempt("pybreaker", lambda fn=fn: before.call(fn))
        attempt("resilio  ", lambda fn=fn: after.call(fn))

    print("3. After the open timeout, one good probe closes them (a `with` block here):")
    time.sleep(0.21)  # pybreaker reads the wall clock
    clock.advance(0.21)  # resilio reads its clock
    with before.calling():
        print(f"  pybreaker -> {ok()!r}")
    with after:
        print(f"  resilio   -> {ok()!r}")
    print(f"  states: pybreaker {before.current_state}, resilio {after.state.value}")

    print("4. resilio only: two 503 responses open it; each failed probe doubles the wait:")
    unavailable = Response(503)
    for _ in range(2):
        print(f"  resilio   -> {api.call(lambda: unavailable)!r}")
    for _ in range(3):
        wait = api.snapshot().retry_after
        assert wait is not None
        clock.advance(wait)
        print(f"  {wait:g}s later, a probe -> {api.call(lambda: unavailable)!r}")
    snapshot = api.snapshot()
    print(f"  open timeout now {snapshot.open_timeout:g}s; last failure {snapshot.last_failure!r}")


if __name__ == "__main__":
    main()
