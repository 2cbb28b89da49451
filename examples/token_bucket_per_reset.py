"""TokenBucket.per and reset(): a limit per minute, and starting afresh.

``TokenBucket.per(count, period)`` builds a bucket from a limit as people state it,
"100 requests a minute": it refills at ``count / period`` a second and, unless told
otherwise, holds ``count`` tokens, so a whole period's allowance may pass at once.
``reset()`` fills the bucket again, as if it were new, and serves the requests
already waiting from it, in their order. Time is a ``ManualClock``, so nothing here
really waits.

Run it with ``python examples/token_bucket_per_reset.py``.
"""

from __future__ import annotations

from datetime import timedelta

import anyio

from resilio import EventBus, ManualClock, TokenBucket

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def per_minute() -> None:
    print("1. 100 a minute: the minute's allowance at once, then one every 0.6s.")
    # --8<-- [start:per]
    quota = TokenBucket.per(100, timedelta(minutes=1), name="quota", clock=clock, bus=bus)
    admitted = sum(quota.try_acquire() for _ in range(150))
    print(f"  150 requests at once: {admitted} admitted; {quota!r}")
    clock.advance(0.6)
    print(f"  0.6s later: try_acquire() = {quota.try_acquire()}")

    # The same rate with a burst of 10 at most:
    smooth = TokenBucket.per(100, 60, capacity=10, name="smooth", clock=clock, bus=bus)
    print(f"  {smooth!r}")
    # --8<-- [end:per]


async def reset_serves_the_queue() -> None:
    print("2. reset(): a full bucket again, and the waiting requests served from it.")
    # --8<-- [start:reset]
    bucket = TokenBucket.per(6, 60, name="partner", clock=clock, bus=bus)  # one per 10s
    bucket.try_acquire(6)  # the burst is spent
    start = clock.monotonic()

    async def request(label: str, n: int) -> None:
        await bucket.acquire(n)
        print(f"  {label} (n={n}) admitted at t={clock.monotonic() - start:g}s")

    async with anyio.create_task_group() as tasks:
        for label, n in (("a", 2), ("b", 3), ("c", 4)):
            tasks.start_soon(request, label, n)
            await anyio.wait_all_tasks_blocked()  # so each one arrives in this order
        clock.advance(1)
        bucket.reset()  # 6 tokens: a and b pass now; c needs 3 more, 30s away
        await anyio.wait_all_tasks_blocked()
        print(f"  after the reset: {bucket!r}")
        clock.advance(30)
    # --8<-- [end:reset]


def main() -> None:
    per_minute()
    anyio.run(reset_serves_the_queue)


if __name__ == "__main__":
    main()
