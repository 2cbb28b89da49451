"""A composed policy on virtual time: every step of a retry, a breaker and a bucket, at once.

The policy of ``examples/quickstart.py`` waits on the real clock. Built with
``clock=`` on each primitive, the same kind of policy runs on a ``ManualClock``, which a
small driver moves on whenever every task is waiting: the backoffs and the breaker's
open timeout pass instantly, and the example prints the same lines on every run, which
is what a test of a policy needs. ``compose(outer, ..., inner)`` stacks primitives
outermost first: every try of the retry passes the breaker, then takes a token from
the bucket.

Run it with ``python examples/virtual_time_policy.py``.
"""

from __future__ import annotations

import anyio

from resilio import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitStateChanged,
    EventBus,
    ManualClock,
    Retry,
    RetryScheduled,
    TokenBucket,
    compose,
)

clock = ManualClock()  # virtual time: tests of long timeouts run in microseconds
bus = EventBus()  # a private event bus for this example
bus.subscribe(RetryScheduled, lambda e: print(f"  t={e.at:g}s retry in {e.delay:g}s"))
bus.subscribe(CallRejected, lambda e: print(f"  t={e.at:g}s breaker rejected the call"))
bus.subscribe(
    CircuitStateChanged, lambda e: print(f"  t={e.at:g}s breaker {e.old.value} -> {e.new.value}")
)

policy = compose(
    Retry(
        on=(ConnectionError, CircuitOpenError),
        attempts=4,
        base_delay=0.25,
        jitter=None,
        clock=clock,
        bus=bus,
    ),
    CircuitBreaker(
        failure_threshold=2, open_timeout=1.0, success_threshold=1, clock=clock, bus=bus
    ),
    TokenBucket(rate=10, capacity=2, clock=clock, bus=bus),  # 10 calls/s, bursts of 2
)
outcomes = ["reset", "reset", "ok"]  # the upstream fails twice, then recovers


@policy
async def fetch(key: str) -> str:
    outcome = outcomes.pop(0)
    print(f"  t={clock.monotonic():g}s upstream: {outcome}")
    if outcome == "reset":
        raise ConnectionError("connection reset")
    return f"value of {key}"


async def main() -> None:
    answer: list[str] = []

    async def call() -> None:
        answer.append(await fetch("user:42"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        while not answer:  # move virtual time on while the call waits
            clock.advance(0.25)
            await anyio.wait_all_tasks_blocked()
    print(f"answer: {answer[0]!r} at t={clock.monotonic():g}s of virtual time")


anyio.run(main)
