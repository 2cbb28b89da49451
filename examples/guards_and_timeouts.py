"""Any guard as a parameter, and a timeout that reports itself.

``resilio.Guard`` is the base class of every primitive that guards a call in the four
ways (breakers and buckets), so a helper can take "any guard" and type-check. A
``Timeout`` with a name publishes ``TimedOut`` when it cancels a call, and counts it
in ``stats()``. Time is a ManualClock moved on by a driver task, so nothing waits.

Run it with ``python examples/guards_and_timeouts.py``.
"""

from __future__ import annotations

import anyio

from resilio import (
    CircuitBreaker,
    EventBus,
    Guard,
    ManualClock,
    TimedOut,
    Timeout,
    TokenBucket,
)

clock = ManualClock()
bus = EventBus()


def guarded_twice(guard: Guard, value: int) -> int:
    """Any guard works here: a breaker, a bucket."""
    return guard.call(lambda: value) + guard.call(lambda: value)


print(guarded_twice(CircuitBreaker(name="db", clock=clock, bus=bus), 1))
print(guarded_twice(TokenBucket(10, 5, name="api", clock=clock, bus=bus), 2))

bus.subscribe(TimedOut, lambda e: print(f"{e.source}: timed out after {e.seconds:g}s"))
timeout = Timeout(2.0, name="upstream", clock=clock, bus=bus)


async def slow() -> str:
    await clock.sleep_async(10.0)
    return "late"


async def main() -> None:
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            try:
                await timeout.call_async(slow)
            except TimeoutError as exc:
                print(f"caller saw: {exc}")

        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        clock.advance(2.0)
    print(f"timed out so far: {timeout.stats().timed_out}")


anyio.run(main)
