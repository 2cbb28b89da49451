"""LeakyBucket.per and reset(): evenly spaced requests per minute, and starting afresh.

``LeakyBucket.per(count, period)`` spaces admissions ``period / count`` seconds
apart and, unless told otherwise, lets ``count`` requests wait: one period's
allowance, so a request that finds room waits at most about a period. ``reset()``
forgets the schedule: the next request passes at once, and requests already waiting
keep their places and their spacing. Time is a ``ManualClock``, so nothing here
really waits.

Run it with ``python examples/leaky_bucket_per_reset.py``.
"""

from __future__ import annotations

from datetime import timedelta

import anyio

from resilio import EventBus, LeakyBucket, ManualClock

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def per_minute() -> None:
    print("1. 30 a minute: one every 2s, and a queue of 30.")
    # --8<-- [start:per]
    relay = LeakyBucket.per(30, timedelta(minutes=1), name="relay", clock=clock, bus=bus)
    start = clock.monotonic()
    for i in range(3):
        relay.acquire_sync()  # blocks until its slot (here: advances the clock)
        print(f"  message {i + 1} sent at t={clock.monotonic() - start:g}s")
    print(f"  {relay!r}")
    # --8<-- [end:per]


async def reset_keeps_the_spacing() -> None:
    print("2. reset(): the schedule starts afresh; the waiting requests keep their spacing.")
    # --8<-- [start:reset]
    relay = LeakyBucket.per(30, 60, name="relay-2", clock=clock, bus=bus)  # one per 2s
    relay.try_acquire()  # the next slot is 2s away
    start = clock.monotonic()

    async def send(label: str) -> None:
        await relay.acquire()
        print(f"  {label} sent at t={clock.monotonic() - start:g}s")

    async with anyio.create_task_group() as tasks:
        for label in "abc":  # slots at 2, 4 and 6 seconds
            tasks.start_soon(send, label)
            await anyio.wait_all_tasks_blocked()  # so each one arrives in this order
        clock.advance(0.5)
        relay.reset()  # a goes now; b and c follow 2s apart, not all at once
        await anyio.wait_all_tasks_blocked()
        for _ in range(2):
            clock.advance(2)
            await anyio.wait_all_tasks_blocked()
    # --8<-- [end:reset]


def main() -> None:
    per_minute()
    anyio.run(reset_keeps_the_spacing)


if __name__ == "__main__":
    main()
