"""Retry schedules: delay= with the resilio.backoff builders or a function of your own,
and attempts=None bounded by a timeout.

Time is a ``ManualClock`` (a blocking sleep moves it on at once) and jitter is either
off or seeded, so the example runs instantly and prints the same thing every time.

Run it with ``python examples/retry_schedules.py``.
"""

from __future__ import annotations

import random
from datetime import timedelta

from resilio import EventBus, ManualClock, MisuseError, Retry, RetryExhausted, RetryScheduled
from resilio.backoff import constant, exponential, linear

clock = ManualClock()
bus = EventBus()
bus.subscribe(RetryScheduled, lambda e: print(f"  t={clock.monotonic():.4g}s sleep {e.delay:.3g}s"))
bus.subscribe(RetryExhausted, lambda e: print(f"  gave up after {e.attempts} tries: {e.reason}"))


def down() -> str:
    raise ConnectionError("connection refused")


def builders() -> None:
    print("1. The builders: each maps the try that failed to the delay before the next.")
    # --8<-- [start:builders]
    schedules = [
        exponential(base=0.5, multiplier=2, max=30, min=1),
        linear(start=1, step=timedelta(seconds=2), max=6),
        constant(0.25),
    ]
    for schedule in schedules:
        print(f"  {schedule!r}: {[schedule(attempt) for attempt in range(1, 8)]}")
    # --8<-- [end:builders]


def with_a_schedule() -> None:
    print("2. Retry(delay=...) sleeps the schedule; max_delay still caps it.")
    # --8<-- [start:delay]
    policy = Retry(
        attempts=5,
        delay=linear(start=1, step=2),
        max_delay=4,
        jitter=None,  # exactly the schedule; the default "full" jitter spreads it
        clock=clock,
        bus=bus,
    )
    # --8<-- [end:delay]
    try:
        policy.call(down)
    except ConnectionError as exc:
        print(f"  {exc!r}; {policy!r}")


def jitter_keeps_the_minimum() -> None:
    print("3. Full jitter spreads each delay between the schedule's min and the delay.")
    # --8<-- [start:jitter-min]
    policy = Retry(
        attempts=6,
        delay=exponential(base=1, max=8, min=2),  # 2, 2, 4, 8, 8 before jitter
        random=random.Random(0).random,  # seeded for the example; leave it out
        clock=clock,
        bus=bus,
    )
    # --8<-- [end:jitter-min]
    try:
        policy.call(down)
    except ConnectionError:
        pass


def own_function() -> None:
    print("4. Any function of the try number: here a delay from a table, as a timedelta.")
    # --8<-- [start:own]
    steps = [timedelta(seconds=1), timedelta(seconds=5), timedelta(seconds=30)]

    def from_table(attempt: int) -> timedelta:
        return steps[min(attempt, len(steps)) - 1]

    policy = Retry(attempts=5, delay=from_table, max_delay=60, jitter=None, clock=clock, bus=bus)
    # --8<-- [end:own]
    try:
        policy.call(down)
    except ConnectionError:
        pass


def a_bad_answer() -> None:
    print("5. A delay function that answers something else is a MisuseError.")
    policy = Retry(delay=lambda attempt: -1.0, clock=clock, bus=bus)
    try:
        policy.call(down)
    except MisuseError as exc:
        print(f"  MisuseError: {exc}")
        print(f"  caused by {exc.__cause__!r}")


def unbounded() -> None:
    print("6. attempts=None: no count limit; the timeout ends it.")
    start = clock.monotonic()
    # --8<-- [start:unbounded]
    policy = Retry(
        attempts=None,
        delay=constant(10),
        timeout=timedelta(minutes=1),
        jitter=None,
        clock=clock,
        bus=bus,
    )
    # --8<-- [end:unbounded]
    try:
        policy.call(down)
    except ConnectionError:
        print(f"  ConnectionError after {clock.monotonic() - start:g}s of retrying")


def main() -> None:
    builders()
    with_a_schedule()
    jitter_keeps_the_minimum()
    own_function()
    a_bad_answer()
    unbounded()


if __name__ == "__main__":
    main()
