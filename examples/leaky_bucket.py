"""LeakyBucket: admissions spaced evenly, no burst, and a bounded queue.

A leaky bucket admits one request every ``1 / rate`` seconds. An idle bucket admits
a request at once; every later one waits for its slot, in arrival order, and at most
``capacity`` requests may wait: beyond that a request is refused at once with
``RateLimitExceeded``. Time is a ``ManualClock``, so nothing here really waits.

Run it with ``python examples/leaky_bucket.py``.
"""

from __future__ import annotations

import anyio

from resilio import EventBus, LeakyBucket, ManualClock, RateLimited, RateLimitExceeded

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def even_spacing() -> None:
    print("1. Four a second means one every 0.25s, from the very first request.")
    shaper = LeakyBucket(rate=4, capacity=10, name="smtp", clock=clock, bus=bus)
    start = clock.monotonic()
    for i in range(5):
        shaper.acquire_sync()  # blocks until its slot (here: advances the clock)
        print(f"  email {i + 1} sent at t={clock.monotonic() - start:.2f}s")
    print(f"  try_acquire() right after: {shaper.try_acquire()} (the next slot is not due)")
    print(f"  {shaper!r}")


async def bounded_queue() -> None:
    print("2. Six requests at once: one goes, three queue (capacity=3), two are refused.")
    shaper = LeakyBucket(rate=2, capacity=3, name="export", clock=clock, bus=bus)
    unsubscribe = bus.subscribe(
        RateLimited,
        lambda e: print(
            f"  event: amount={e.amount}, retry_after={e.retry_after}, rejected={e.rejected}"
        ),
    )
    start = clock.monotonic()

    async def request(label: str) -> None:
        try:
            await shaper.acquire()
        except RateLimitExceeded as exc:
            print(f"  {label} refused: {exc}")
        else:
            print(f"  {label} admitted at t={clock.monotonic() - start:.1f}s")

    async with anyio.create_task_group() as tasks:
        for label in "abcdef":
            tasks.start_soon(request, label)
            await anyio.wait_all_tasks_blocked()  # so each one arrives in this order
        unsubscribe()
        print(f"  {shaper!r}, room for {shaper.available:g} more")
        while shaper.waiting:  # move virtual time on, a quarter second at a time
            clock.advance(0.25)
            await anyio.wait_all_tasks_blocked()


async def no_blocking_on_the_loop() -> None:
    print("3. In async code a sync form that would wait raises instead of blocking the loop.")
    shaper = LeakyBucket(rate=4, capacity=10, name="smtp-async", clock=clock, bus=bus)
    shaper.acquire_sync()  # an idle bucket admits at once, on any thread
    try:
        shaper.acquire_sync()  # the next slot is 0.25s away
    except RuntimeError as exc:
        print(f"  RuntimeError: {str(exc).split(';')[0]}")
    await anyio.to_thread.run_sync(shaper.acquire_sync)  # a worker thread may wait
    print(f"  acquire_sync in a worker thread: admitted, {shaper!r}")


def main() -> None:
    even_spacing()
    anyio.run(bounded_queue)
    anyio.run(no_blocking_on_the_loop)


if __name__ == "__main__":
    main()
