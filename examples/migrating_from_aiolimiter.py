"""The same rate limit written with aiolimiter, then with resilio.

"3 requests a minute, in bursts of up to 3": aiolimiter's ``AsyncLimiter(3, 60)``
and resilio's ``TokenBucket.per(3, 60)``. Both let a burst of three through at once
and then admit one request every 20 seconds. resilio also answers without
waiting (``try_acquire``), gives up when the wait would be too long
(``acquire(timeout=...)`` raises ``RateLimitExceeded`` with a ``retry_after``), and
can be filled again with ``reset()``. Last, the order of waiters: aiolimiter serves
smaller requests first, resilio serves everyone in arrival order.

aiolimiter reads the event loop's clock, so where its side must wait it gets a
limiter 200 times faster (3 per 0.3 s) and waits for real, about half a second in all;
resilio's side runs on a ``ManualClock`` moved on by hand, and prints exact times.
aiolimiter is not a dependency of resilio: install it with ``pip install aiolimiter``
(CI gets it through the ``bench`` extra). Run it with
``python examples/migrating_from_aiolimiter.py``.
"""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter

from resilio import ManualClock, RateLimitExceeded, TokenBucket

# -- before: aiolimiter --------------------------------------------------------------
# --8<-- [start:before]
limiter = AsyncLimiter(max_rate=3, time_period=60)  # 3 a minute, in bursts of up to 3


async def fetch_before(n: int) -> str:
    async with limiter:  # waits for room
        return f"page {n}"


# --8<-- [end:before]

# -- after: resilio ------------------------------------------------------------------
# --8<-- [start:after]
clock = ManualClock()  # virtual time, moved on by hand below
bucket = TokenBucket.per(3, 60, clock=clock)  # 3 a minute, in bursts of up to 3


async def fetch_after(n: int) -> str:
    async with bucket:  # waits for a token
        return f"page {n}"


# --8<-- [end:after]


async def burst() -> None:
    print("1. A burst of three passes at once; then there is no room:")
    print(f"  aiolimiter -> {[await fetch_before(n) for n in range(3)]}")
    print(f"  resilio    -> {[await fetch_after(n) for n in range(3)]}")
    print(f"  room for one more? aiolimiter {limiter.has_capacity()}, ", end="")
    print(f"resilio {bucket.available >= 1} ({bucket.available:g} tokens)")


async def wait_for_room() -> None:
    print("2. The fourth request waits 20 s (resilio's clock is moved by hand):")
    fast = AsyncLimiter(3, 0.3)  # 200 times faster: waits 0.1 s for real
    for _ in range(3):
        await fast.acquire()
    await fast.acquire()
    print("  aiolimiter -> admitted after its wait")
    task = asyncio.create_task(fetch_after(3))
    await asyncio.sleep(0)  # let it start and queue
    print(f"  resilio    -> waiting: {bucket.waiting}; moving the clock on 20 s")
    clock.advance(20.0)
    print(f"  resilio    -> {await task!r} at t={clock.monotonic():g}s")


async def without_waiting() -> None:
    print("3. Only resilio answers without waiting, or refuses a wait that is too long:")
    print(f"  try_acquire() -> {bucket.try_acquire()}")
    try:
        await bucket.acquire(timeout=0.1)
    except RateLimitExceeded as error:
        print(f"  acquire(timeout=0.1) -> RateLimitExceeded, retry_after={error.retry_after:g}s")
    # aiolimiter has no timeout of its own: asyncio.wait_for(limiter.acquire(), 0.1)
    # waits the 0.1 s, then raises TimeoutError.
    bucket.reset()  # full again; aiolimiter has no reset: make a new limiter
    print(f"  after reset(): {bucket.available:g} tokens")


async def order_of_waiters() -> None:
    print("4. A request for 3 arrives before a request for 1; who is served first?")
    served: list[str] = []

    async def take(limit: AsyncLimiter | TokenBucket, amount: int) -> None:
        await limit.acquire(amount)
        served.append(f"{amount} token(s)")

    fast = AsyncLimiter(3, 0.3)
    await fast.acquire(3)  # empty it
    first = asyncio.create_task(take(fast, 3))
    await asyncio.sleep(0)  # it queues first
    second = asyncio.create_task(take(fast, 1))
    await asyncio.gather(first, second)
    print(f"  aiolimiter -> {served} (smaller requests first)")

    served.clear()
    await bucket.acquire(3)  # empty it
    first = asyncio.create_task(take(bucket, 3))
    await asyncio.sleep(0)  # it queues first
    second = asyncio.create_task(take(bucket, 1))
    await asyncio.sleep(0)
    for _ in range(4):  # a token every 20 s
        clock.advance(20.0)
        for _ in range(3):
            await asyncio.sleep(0)
    await asyncio.gather(first, second)
    print(f"  resilio    -> {served} (first come, first served)")


async def main() -> None:
    await burst()
    await wait_for_room()
    await without_waiting()
    await order_of_waiters()


if __name__ == "__main__":
    asyncio.run(main())
