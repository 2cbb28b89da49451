"""Counters: what a WorkerPool and a SessionManager have done since they were built.

``pool.stats()`` and ``sessions.stats()`` return frozen snapshots whose counts only
ever grow (a dashboard plots their rates), read without a lock from any thread, an
exporter's included. Time is a ``ManualClock`` and the tasks wait on events, so the
example runs instantly and prints the same thing every time.

Run it with ``python examples/pool_session_counters.py``.
"""

from __future__ import annotations

import contextlib
import logging

import anyio

from resilio import CallCompleted, EventBus, ManualClock, PoolFullError, SessionManager, WorkerPool

clock = ManualClock()
bus = EventBus()  # a private bus: only this example's events


async def pool_counters() -> None:
    print("1. WorkerPool.stats(): every accepted task ends one way.")
    gate = anyio.Event()

    async def fetch(n: int) -> int:
        await gate.wait()
        if n == 3:
            raise ConnectionError("host down")
        return n

    # --8<-- [start:pool]
    async with WorkerPool(workers=2, queue_size=3, name="fetch", clock=clock, bus=bus) as pool:
        handles = [pool.submit_nowait(fetch, n) for n in range(5)]  # 2 run, 3 wait
        try:
            pool.submit_nowait(fetch, 5)
        except PoolFullError:
            pass  # counted in rejected
        handles[4].cancel()  # still queued: dropped, counted in cancelled
        print(f"  {pool.stats()}")
        gate.set()
    stats = pool.stats()
    print(f"  {stats}")
    ended = stats.completed + stats.failed + stats.cancelled
    print(f"  submitted {stats.submitted} = completed + failed + cancelled = {ended}")
    # --8<-- [end:pool]
    for handle in handles[:4]:
        with contextlib.suppress(ConnectionError):
            await handle


async def call_durations() -> None:
    print("2. CallCompleted: each task's outcome and duration, once somebody listens.")
    # --8<-- [start:durations]
    durations: list[float] = []
    bus.subscribe(CallCompleted, lambda e: durations.append(e.duration))

    async def slow(seconds: float) -> None:
        await clock.sleep_async(seconds)

    async with WorkerPool(workers=2, name="timed", clock=clock, bus=bus) as pool:
        await pool.submit(slow, 0.25)
        await pool.submit(slow, 1.5)
        for step in (0.25, 1.25):  # virtual time: 0.25 s, then 1.5 s
            await anyio.wait_all_tasks_blocked()
            clock.advance(step)
    print(f"  durations {durations} (seconds on the pool's clock)")
    # --8<-- [end:durations]


async def session_counters() -> None:
    print("3. SessionManager.stats(): created, destroyed by reason, lateness.")

    def close_socket(session: object) -> None:
        raise OSError("socket already closed")

    # --8<-- [start:sessions]
    async with SessionManager(idle_timeout=30, name="web", clock=clock, bus=bus) as sessions:
        alice = await sessions.create({"user": "alice"}, on_destroy=close_socket)
        bob = await sessions.create({"user": "bob"})
        await sessions.create({"user": "carol"})
        await sessions.touch(bob.id)
        await sessions.complete(alice.id)  # its hook raises: a hook failure
        await sessions.destroy(bob.id, reason="logout")  # a reason of your own
        clock.advance(31)  # carol idles past 30 s; acted on 1 s late
        await anyio.wait_all_tasks_blocked()
        stats = sessions.stats()
    print(f"  created {stats.created}, live {stats.live}, touched {stats.touched}")
    used = {reason: count for reason, count in stats.destroyed.items() if count}
    print(f"  destroyed {used}")
    print(f"  hook failures {stats.hook_failures}, worst lateness {stats.lateness_max} s")
    # --8<-- [end:sessions]


async def main() -> None:
    await pool_counters()
    await call_durations()
    await session_counters()


if __name__ == "__main__":
    logging.disable(logging.ERROR)  # the failing hook is logged too: keep the output short
    anyio.run(main)
