"""Counters: what a bucket has done since it was made, from ``stats()``.

``bucket.stats()`` returns a frozen ``LimiterStats``: requests granted (and the
tokens they took), refused and cancelled, the seconds granted requests waited in all
and at most, and the bucket's level, queue, rate and capacity now. The counts only
grow: ``reset()`` refills the bucket and leaves them alone. Time is a
``ManualClock``, advanced in steps, so nothing here really waits.

Run it with ``python examples/bucket_counters.py``.
"""

from __future__ import annotations

import anyio

from resilio import EventBus, LeakyBucket, ManualClock, RateLimitExceeded, TokenBucket

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


async def step(seconds: float) -> None:
    """Move the clock, and let every task it wakes run."""
    clock.advance(seconds)
    await anyio.wait_all_tasks_blocked()


async def token_bucket() -> None:
    print("1. A token bucket: 2 tokens a second, a burst of 4.")
    # --8<-- [start:token]
    bucket = TokenBucket(rate=2, capacity=4, name="api", clock=clock, bus=bus)
    bucket.try_acquire(4)  # the burst: granted at once
    bucket.try_acquire()  # the bucket is empty: refused

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(bucket.acquire)  # its token comes in 0.5s
        tasks.start_soon(bucket.acquire, 2)  # its 2 tokens, 1s after that
        await anyio.wait_all_tasks_blocked()
        await step(0.5)
        await step(1)

    stats = bucket.stats()
    print(f"  granted {stats.granted} ({stats.tokens:g} tokens), refused {stats.refused}")
    print(
        f"  waited {stats.waited:g}s in all: {stats.waited / stats.granted:.2f}s per grant, "
        f"{stats.wait_max:g}s at most"
    )
    print(f"  now: {stats.available:g} of {stats.capacity:g} tokens, {stats.waiting} waiting")
    bucket.reset()  # full again; the counts stay
    stats = bucket.stats()
    print(f"  after reset(): {stats.available:g} tokens, still {stats.granted} granted")
    # --8<-- [end:token]


async def leaky_bucket() -> None:
    print("2. A leaky bucket: one request every 0.1s, 2 may wait.")
    # --8<-- [start:leaky]
    relay = LeakyBucket(rate=10, capacity=2, name="relay", clock=clock, bus=bus)

    async def send() -> None:
        try:
            await relay.acquire()
        except RateLimitExceeded:
            pass  # the queue was full

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(send)
        await anyio.wait_all_tasks_blocked()  # 1 admitted, 2 queued, 2 refused
        print(f"  queued: {relay.stats().waiting}, room left: {relay.stats().available:g}")
        await step(0.1)
        await step(0.1)

    stats = relay.stats()
    print(
        f"  granted {stats.granted}, refused {stats.refused}, cancelled {stats.cancelled}; "
        f"waited {stats.waited:g}s in all, {stats.wait_max:g}s at most"
    )
    # --8<-- [end:leaky]


async def main() -> None:
    await token_bucket()
    await leaky_bucket()


if __name__ == "__main__":
    anyio.run(main)
