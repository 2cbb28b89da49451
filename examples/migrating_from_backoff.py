"""The same retries written with backoff, then with resilio.

backoff's ``on_exception(expo, ...)`` and ``on_predicate(constant, ...)`` become a
``Retry`` with ``delay=exponential(...)`` or ``delay=constant(...)``. The cases: a
function that fails twice; one that always fails, which both re-raise after four
tries; the same with ``raise_on_giveup=False``, which in resilio is a ``Fallback``
outside the retry; a result that asks for another try; ``giveup=`` for an error that
trying again cannot fix; and resilio's unbounded retries, which a ``timeout`` ends.

backoff always sleeps for real (``time.sleep``), and has no hook to fake it, so here
its ``jitter`` records the delay and returns 0 instead: nothing waits. resilio gets a
``ManualClock``. backoff is not a dependency of resilio: install it with
``pip install backoff`` (CI gets it through the ``bench`` extra). Run it with
``python examples/migrating_from_backoff.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import backoff

from resilio import EventBus, Fallback, ManualClock, Retry, RetryScheduled, compose
from resilio.backoff import constant, exponential

T = TypeVar("T")


def flaky(failures: int) -> Callable[[], str]:
    """A function that raises ConnectionError *failures* times, then returns "ok"."""
    left = [failures]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise ConnectionError("connection reset")
        return "ok"

    return call


def not_ready(empties: int) -> Callable[[], list[str]]:
    """A function that returns an empty list *empties* times, then a job."""
    left = [empties]

    def call() -> list[str]:
        if left[0] > 0:
            left[0] -= 1
            return []
        return ["job-1"]

    return call


class HTTPError(Exception):
    """An HTTP error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def http(*statuses: int) -> Callable[[], str]:
    """A function that fails with each of *statuses* in turn, then returns "200 OK"."""
    left = list(statuses)

    def call() -> str:
        if left:
            raise HTTPError(left.pop(0))
        return "200 OK"

    return call


# -- before: backoff -----------------------------------------------------------------

slept: list[float] = []


def record_instead_of_sleeping(delay: float) -> float:
    """A backoff jitter that notes the delay and makes the sleep zero."""
    slept.append(delay)
    return 0.0


def log_backoff(details: Any) -> None:
    print(f"  backoff: try {details['tries']} failed, sleeping {slept[-1]:g}s")


# --8<-- [start:before]
def retried_before(fn: Callable[[], T]) -> Callable[[], T]:
    decorate = backoff.on_exception(
        backoff.expo,  # factor * base ** n: 0.5, 1, 2, ... up to 10
        ConnectionError,
        factor=0.5,
        max_value=10,
        max_tries=4,
        jitter=record_instead_of_sleeping,  # in real code: the default, full_jitter
        on_backoff=log_backoff,
    )
    return decorate(fn)


def quiet_before(fn: Callable[[], T]) -> Callable[[], T | None]:
    decorate = backoff.on_exception(
        backoff.expo,
        ConnectionError,
        factor=0.5,
        max_tries=4,
        raise_on_giveup=False,  # give up by returning None
        jitter=record_instead_of_sleeping,
    )
    return decorate(fn)


def polled_before(fn: Callable[[], T]) -> Callable[[], T]:
    decorate = backoff.on_predicate(
        backoff.constant,  # the default predicate retries a falsy result
        interval=1,
        max_tries=3,
        jitter=record_instead_of_sleeping,
        on_backoff=log_backoff,
    )
    return decorate(fn)


def http_before(fn: Callable[[], T]) -> Callable[[], T]:
    decorate = backoff.on_exception(
        backoff.expo,
        HTTPError,
        factor=0.5,
        max_tries=4,
        giveup=lambda e: isinstance(e, HTTPError) and e.status == 404,  # cannot help
        jitter=record_instead_of_sleeping,
        on_backoff=log_backoff,
    )
    return decorate(fn)


# --8<-- [end:before]

# -- after: resilio ------------------------------------------------------------------
# --8<-- [start:after]
clock = ManualClock()  # a blocking sleep on a ManualClock moves it on at once
bus = EventBus()  # on_backoff=... is a subscription to RetryScheduled
bus.subscribe(
    RetryScheduled,
    lambda e: print(f"  resilio: try {e.attempt} failed, sleeping {e.delay:g}s"),
)

retried_after = Retry(
    on=ConnectionError,
    attempts=4,  # max_tries=4
    delay=exponential(base=0.5, multiplier=2, max=10),  # expo(factor=0.5, max_value=10)
    jitter=None,  # backoff's default is full jitter, as resilio's: "full"
    clock=clock,
    bus=bus,
)
# raise_on_giveup=False: a Fallback outside the retry turns the last error into None.
quiet_after = compose(
    Fallback(lambda error: None, on=ConnectionError),
    Retry(on=ConnectionError, attempts=4, base_delay=0.5, jitter=None, clock=clock),
)
polled_after = Retry(
    if_result=lambda result: not result,  # on_predicate's default: retry a falsy result
    on=(),  # and, as on_predicate, no exception
    attempts=3,
    delay=constant(1.0),  # constant(interval=1)
    jitter=None,
    clock=clock,
    bus=bus,
)
http_after = Retry(
    on=lambda e: isinstance(e, HTTPError) and e.status != 404,  # giveup=... on a 404
    attempts=4,
    base_delay=0.5,
    jitter=None,
    clock=clock,
    bus=bus,
)
# --8<-- [end:after]

# --8<-- [start:unbounded]
# max_tries=None, max_time=5: tries until the next sleep would end past 5 s.
until_deadline = Retry(
    on=ConnectionError,
    attempts=None,  # no limit on the number of tries
    timeout=5.0,  # max_time=5
    delay=constant(1.0),
    jitter=None,
    clock=clock,
)
# --8<-- [end:unbounded]


def report(name: str, call: Callable[[], object]) -> None:
    try:
        print(f"  {name} -> {call()!r}")
    except Exception as error:
        print(f"  {name} -> {type(error).__name__}: {error}")


def main() -> None:
    print("1. ConnectionError twice, then success:")
    report("backoff", retried_before(flaky(2)))
    report("resilio", lambda: retried_after.call(flaky(2)))

    print("2. ConnectionError every time: four tries, then the error itself:")
    report("backoff", retried_before(flaky(5)))
    report("resilio", lambda: retried_after.call(flaky(5)))

    print("3. The same, giving up with None instead of the error:")
    report("backoff", quiet_before(flaky(5)))
    report("resilio", lambda: quiet_after.call(flaky(5)))

    print("4. An empty result asks for another try; after three tries, the last one:")
    report("backoff", polled_before(not_ready(1)))
    report("resilio", lambda: polled_after.call(not_ready(1)))
    report("backoff", polled_before(not_ready(5)))
    report("resilio", lambda: polled_after.call(not_ready(5)))

    print("5. A 503 is retried; a 404 ends the retrying at once:")
    report("backoff", http_before(http(503, 404)))
    report("resilio", lambda: http_after.call(http(503, 404)))

    print("6. resilio only: no limit on the number of tries; a 5 s timeout ends them:")
    start = clock.monotonic()
    tries = [0]

    def down() -> str:
        tries[0] += 1
        raise ConnectionError("connection refused")

    report("resilio", lambda: until_deadline.call(down))
    print(f"  {tries[0]} tries, {clock.monotonic() - start:g}s of sleeps")

    print(f"backoff would have slept {sum(slept):g}s in all; resilio's clock moved ", end="")
    print(f"{clock.monotonic():g}s")


if __name__ == "__main__":
    main()
