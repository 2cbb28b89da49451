"""The same retry policy written with tenacity, then with resilio.

A flaky function fails twice with ``ConnectionError`` and then succeeds; a second
one returns ``None`` (a "not ready yet" result) twice before it has an answer. Both
libraries retry them on the same exponential schedule, report each sleep before it
starts, and re-raise the last error unchanged when tries run out. Last, a server
answers ``503`` with a ``Retry-After`` header: tenacity waits what the header says
through ``wait_exception``, resilio reads the header with ``parse_retry_after`` and
waits it out (plus up to 10 %), or fails at once when it is longer than ``max_delay``.
Then a growing linear schedule with no limit on the number of tries, a default value
when tries run out (tenacity's ``retry_error_callback``, resilio's ``Fallback``), and
tests that must not retry (``enabled=False``, ``resilio.testing.instant``).

tenacity is given a ``sleep=`` that only records the delay, and resilio a
``ManualClock``, so neither really waits and every run prints the same. tenacity is
not a dependency of resilio: install it with ``pip install tenacity`` (CI gets it
through the ``bench`` extra). Run it with ``python examples/migrating_from_tenacity.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity

from resilio import (
    EventBus,
    Fallback,
    ManualClock,
    Retry,
    RetryScheduled,
    compose,
    parse_retry_after,
)
from resilio.backoff import linear
from resilio.testing import instant


def flaky(failures: int) -> Callable[[], str]:
    """A function that raises ConnectionError *failures* times, then returns "ok"."""
    left = [failures]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise ConnectionError("connection reset")
        return "ok"

    return call


class ServiceUnavailable(Exception):
    """An HTTP 503 and its Retry-After header."""

    def __init__(self, header: str) -> None:
        super().__init__(f"503, Retry-After: {header}")
        self.header = header
        self.retry_after = parse_retry_after(header)  # seconds, or None if unreadable


def unavailable_once(header: str) -> Callable[[], str]:
    """A function that answers 503 with *header* once, then "ok"."""
    left = [1]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise ServiceUnavailable(header)
        return "ok"

    return call


def not_ready(nones: int) -> Callable[[], str | None]:
    """A function that returns None *nones* times, then "ready"."""
    left = [nones]

    def call() -> str | None:
        if left[0] > 0:
            left[0] -= 1
            return None
        return "ready"

    return call


# -- before: tenacity -------------------------------------------------------------

# --8<-- [start:before]
slept: list[float] = []


def log_sleep(state: tenacity.RetryCallState) -> None:
    assert state.next_action is not None
    print(f"  tenacity: try {state.attempt_number} failed, sleeping {state.next_action.sleep:g}s")


before = tenacity.Retrying(
    stop=tenacity.stop_after_attempt(4),
    wait=tenacity.wait_exponential(multiplier=0.5, exp_base=2, max=10),
    retry=tenacity.retry_if_exception_type(ConnectionError),
    reraise=True,
    before_sleep=log_sleep,
    sleep=slept.append,  # record the delay instead of sleeping
)
before_on_result = tenacity.Retrying(
    stop=tenacity.stop_after_attempt(4),
    wait=tenacity.wait_none(),
    retry=tenacity.retry_if_result(lambda result: result is None),
    before_sleep=log_sleep,
    sleep=slept.append,
)

before_on_503 = tenacity.Retrying(
    stop=tenacity.stop_after_attempt(4),
    # what the header says, whatever it says (a float() of it would also take "inf")
    wait=tenacity.wait_exception(lambda e: float(getattr(e, "header", 0.5))),
    retry=tenacity.retry_if_exception_type(ServiceUnavailable),
    reraise=True,
    before_sleep=log_sleep,
    sleep=slept.append,
)

before_linear = tenacity.Retrying(
    stop=tenacity.stop_never,  # tenacity's default
    wait=tenacity.wait_incrementing(start=1, increment=2),  # 1, 3, 5, ...
    reraise=True,
    before_sleep=log_sleep,
    sleep=slept.append,
)

before_with_default = tenacity.Retrying(
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_none(),
    retry_error_callback=lambda state: "default",  # when tries run out
    sleep=slept.append,
)

# --8<-- [end:before]

# -- after: resilio ---------------------------------------------------------------
# --8<-- [start:after]

clock = ManualClock()  # a blocking sleep on a ManualClock moves it on at once
bus = EventBus()
bus.subscribe(
    RetryScheduled,
    lambda e: print(f"  resilio:  try {e.attempt} failed, sleeping {e.delay:g}s"),
)
after = Retry(
    attempts=4,  # stop_after_attempt(4)
    base_delay=0.5,  # wait_exponential(multiplier=0.5, ...)
    multiplier=2.0,  # ... exp_base=2 ...
    max_delay=10.0,  # ... max=10)
    jitter=None,  # wait_exponential has no jitter; wait_random_exponential is "full"
    on=ConnectionError,  # retry_if_exception_type(ConnectionError)
    clock=clock,
    bus=bus,
)  # reraise=True is how resilio always behaves; before_sleep is RetryScheduled
after_on_result = Retry(
    attempts=4,
    base_delay=0.0,  # wait_none()
    if_result=lambda result: result is None,  # retry_if_result(...)
    jitter=None,
    clock=clock,
    bus=bus,
)


after_on_503 = Retry(
    attempts=4,
    on=ServiceUnavailable,  # its retry_after is the hint: waited out, plus up to 10 %
    max_delay=10.0,  # a hint longer than this ends the retrying at once
    random=lambda: 0.5,  # the spread of the hint: 5 % here, random in real life
    clock=clock,
    bus=bus,
)

after_linear = Retry(
    attempts=None,  # stop_never
    timeout=60.0,  # but resilio asks for an end: stop_before_delay(60)
    delay=linear(start=1, step=2),  # wait_incrementing(start=1, increment=2)
    jitter=None,
    clock=clock,
    bus=bus,
)

# retry_error_callback: a Fallback outside the retry, given the last error
after_with_default = compose(
    Fallback(lambda error: "default", on=ConnectionError),
    Retry(attempts=3, base_delay=0.0, jitter=None, clock=clock),
)

# --8<-- [end:after]


def report(name: str, call: Callable[[], str]) -> None:
    try:
        print(f"  {name} -> {call()!r}")
    except (ConnectionError, ServiceUnavailable) as error:
        print(f"  {name} -> {type(error).__name__}: {error}")


def main() -> None:
    print("1. ConnectionError twice, then success:")
    print(f"  tenacity -> {before(flaky(2))!r}")
    print(f"  resilio  -> {after.call(flaky(2))!r}")

    print("2. ConnectionError five times: four tries, then the error itself is re-raised:")
    report("tenacity", lambda: before(flaky(5)))
    report("resilio ", lambda: after.call(flaky(5)))

    print("3. A result that asks for another try (None twice, then an answer):")
    print(f"  tenacity -> {before_on_result(not_ready(2))!r}")
    print(f"  resilio  -> {after_on_result.call(not_ready(2))!r}")

    print("4. A 503 with Retry-After: 2, then success; then one with Retry-After: 120:")
    report("tenacity", lambda: before_on_503(unavailable_once("2")))
    report("resilio ", lambda: after_on_503.call(unavailable_once("2")))
    report("tenacity", lambda: before_on_503(unavailable_once("120")))
    report("resilio ", lambda: after_on_503.call(unavailable_once("120")))

    print("5. A linear schedule, and no limit on tries (three failures, then success):")
    report("tenacity", lambda: before_linear(flaky(3)))
    report("resilio ", lambda: after_linear.call(flaky(3)))

    print("6. A default value when tries run out:")
    report("tenacity", lambda: before_with_default(flaky(5)))
    report("resilio ", lambda: after_with_default.call(flaky(5)))

    print("7. In tests: one try and no sleep (tenacity's enabled=False; resilio's instant):")
    report("tenacity", lambda: before.copy(enabled=False)(flaky(1)))
    with instant(attempts=1):  # every Retry run in this thread or task, for this block
        report("resilio ", lambda: after.call(flaky(1)))

    print(f"tenacity slept {sum(slept):g}s in total; resilio's clock moved {clock.monotonic():g}s")


if __name__ == "__main__":
    main()
