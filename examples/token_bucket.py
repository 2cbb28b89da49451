"""TokenBucket: a burst, then a steady rate, with waiting, refusing and fair queueing.

A bucket of ``capacity`` tokens refills at ``rate`` tokens a second; each request
takes tokens. It starts full, so the first ``capacity`` requests pass at once, and
after that they pass at ``rate`` a second. Time is a ``ManualClock``: a blocking
``acquire_sync`` moves it on instead of waiting, and the async part advances it by
hand, so the example runs instantly and prints the same thing every time.

Run it with ``python examples/token_bucket.py``.
"""

from __future__ import annotations

import anyio

from resilio import EventBus, ManualClock, RateLimited, RateLimitExceeded, TokenBucket

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def burst_then_steady() -> None:
    print("1. A new bucket is full: a burst of 5 at once, then 2 a second.")
    bucket = TokenBucket(rate=2, capacity=5, name="api", clock=clock, bus=bus)
    print(f"  {bucket!r}")
    start = clock.monotonic()
    for i in range(8):
        bucket.acquire_sync()  # blocks until a token is free (here: advances the clock)
        print(f"  request {i + 1} admitted at t={clock.monotonic() - start:.1f}s")
    print(f"  {bucket!r}")


def weighted() -> None:
    print("2. Weighted requests: a batch of 3 takes 3 tokens.")
    bucket = TokenBucket(rate=2, capacity=5, name="batch", clock=clock, bus=bus)
    start = clock.monotonic()
    bucket.acquire_sync(3)
    print(f"  batch of 3 at t={clock.monotonic() - start:.1f}s, {bucket.available:g} left")
    print(f"  try_acquire(3) now: {bucket.try_acquire(3)} (never waits)")
    bucket.acquire_sync(3)  # needs 1 more token: half a second at 2 a second
    print(f"  batch of 3 at t={clock.monotonic() - start:.1f}s, {bucket.available:g} left")
    try:
        bucket.try_acquire(6)
    except ValueError as exc:
        print(f"  a request larger than the bucket can never pass: ValueError: {exc}")


async def timeout_fails_at_once() -> None:
    print("3. A timeout that cannot be met fails at once, saying how long to wait.")
    bucket = TokenBucket(rate=2, capacity=2, name="search", clock=clock, bus=bus)
    await bucket.acquire(2)  # empties the bucket
    start = clock.monotonic()
    try:
        await bucket.acquire(timeout=0.2)  # the next token is 0.5s away
    except RateLimitExceeded as exc:
        waited = clock.monotonic() - start
        print(f"  {type(exc).__name__}: {exc} (retry_after={exc.retry_after}, waited {waited}s)")

    async def patient() -> None:
        await bucket.acquire(timeout=0.5)  # 0.5s is enough: it waits, and is admitted
        print(f"  with timeout=0.5 it waits, and is admitted at t={clock.monotonic() - start}s")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(patient)
        await anyio.wait_all_tasks_blocked()  # patient() is queued now
        clock.advance(0.5)  # on a real clock, time passes by itself


def reject_decorator() -> None:
    print("4. reject=True: the guard forms refuse at once instead of waiting.")
    limit = TokenBucket(rate=1, capacity=2, reject=True, name="signup", clock=clock, bus=bus)

    @limit  # also `with limit:`, `async with limit:`, limit.call(fn), limit.call_async(fn)
    def sign_up(user: str) -> str:
        return f"welcome, {user}"

    def attempt(user: str) -> None:
        try:
            print(f"  {sign_up(user)}")
        except RateLimitExceeded as exc:
            print(f"  {user}: refused, retry after {exc.retry_after:g}s")

    for user in ("ada", "bob", "cy"):
        attempt(user)
    clock.advance(1.0)
    print("  one second later:")
    attempt("cy")


def events() -> None:
    print("5. RateLimited events: rejected=False for a request that waits, True for a refusal.")
    bucket = TokenBucket(rate=1, capacity=1, name="events", clock=clock, bus=bus)
    unsubscribe = bus.subscribe(
        RateLimited,
        lambda e: print(
            f"  event from {e.source!r}: amount={e.amount}, "
            f"retry_after={e.retry_after}, rejected={e.rejected}"
        ),
    )
    bucket.acquire_sync()  # admitted at once: no event
    print(f"  try_acquire(): {bucket.try_acquire()}")
    bucket.acquire_sync()  # waits one second
    unsubscribe()


async def fair_queue() -> None:
    print("6. Async tasks share one bucket and are admitted in arrival order.")
    bucket = TokenBucket(rate=1, capacity=3, name="shared", clock=clock, bus=bus)
    start = clock.monotonic()
    cancel_me = anyio.CancelScope()

    async def request(label: str, n: int = 1) -> None:
        with cancel_me if label == "e" else anyio.CancelScope():
            await bucket.acquire(n)
            print(f"  {label} (n={n}) admitted at t={clock.monotonic() - start:.0f}s")
            return
        print(f"  {label} was cancelled while waiting: its place is freed")

    async with anyio.create_task_group() as tasks:
        for label, n in (("a", 2), ("b", 1), ("c", 3), ("d", 1), ("e", 1), ("f", 1)):
            tasks.start_soon(request, label, n)
            await anyio.wait_all_tasks_blocked()  # so each one arrives in this order
        # a and b took the burst; c (3 tokens) is first in line, and d, e and f,
        # which need less, wait behind it rather than overtake it.
        print(f"  {bucket!r}")
        cancel_me.cancel()
        await anyio.wait_all_tasks_blocked()
        while bucket.waiting:  # move virtual time on, a second at a time
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()


async def no_blocking_on_the_loop() -> None:
    print("7. In async code a sync form that would wait refuses to block the event loop.")
    bucket = TokenBucket(rate=1, capacity=1, name="loop", clock=clock, bus=bus)
    start = clock.monotonic()
    with bucket:  # a token is free: admitted at once, nothing waits
        print("  with bucket: admitted at once (a token was free)")
    try:
        with bucket:  # the next token is a second away
            pass
    except RuntimeError as exc:
        print(f"  RuntimeError: {exc}")

    async def patient() -> None:
        async with bucket:  # the async form waits without stalling the loop's other tasks
            print(f"  async with bucket: admitted at t={clock.monotonic() - start:g}s")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(patient)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
    # A worker thread runs no loop: there the blocking form may wait (on a ManualClock,
    # the thread at the head of the queue moves the clock to its turn itself).
    await anyio.to_thread.run_sync(bucket.acquire_sync)
    print(f"  acquire_sync in a worker thread: admitted at t={clock.monotonic() - start:g}s")


def main() -> None:
    burst_then_steady()
    weighted()
    anyio.run(timeout_fails_at_once)
    reject_decorator()
    events()
    anyio.run(fair_queue)
    anyio.run(no_blocking_on_the_loop)


if __name__ == "__main__":
    main()
