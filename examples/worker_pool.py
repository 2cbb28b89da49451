"""WorkerPool: a bulkhead of fixed workers on a bounded queue.

At most ``workers`` tasks run at once; at most ``queue_size`` more wait in the queue.
``submit`` waits for room when the queue is full (backpressure), ``submit_nowait``
refuses with ``PoolFullError``. Leaving the ``async with`` block drains the pool;
``shutdown(cancel=True)`` cancels instead. The tasks here wait on events and
checkpoints rather than on real time, so the example runs instantly and prints the
same thing every time.

Run it with ``python examples/worker_pool.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
from contextlib import aclosing
from typing import Any

import anyio
import anyio.lowlevel

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from resilio import (
    EventBus,
    MapResults,
    PoolClosedError,
    PoolFullError,
    TaskFailed,
    TaskHandle,
    TaskRejected,
    WorkerPool,
)

bus = EventBus()  # a private bus: only this example's events
bus.subscribe(TaskRejected, lambda e: print(f"  event: {e.source!r} rejected a task"))
bus.subscribe(TaskFailed, lambda e: print(f"  event: {e.source!r} task failed: {e.error!r}"))


async def outcome(handle: TaskHandle[Any]) -> str:
    """What awaiting a handle gives: the task's result, or the error it raised."""
    try:
        return repr(await handle)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


async def double(x: int) -> int:
    await anyio.lowlevel.checkpoint()  # stands in for real async I/O
    return 2 * x


async def submit_and_run() -> None:
    print("1. submit() returns a handle; await it for the result. run() does both.")
    async with WorkerPool(workers=2, queue_size=4, name="math", bus=bus) as pool:
        handles = [await pool.submit(double, x) for x in range(4)]
        print(f"  results: {[await h for h in handles]}")
        print(f"  run(double, 21): {await pool.run(double, 21)}")
        print(f"  {pool!r}")


async def backpressure() -> None:
    print("2. A full pool: submit_nowait() refuses, submit() waits for room.")
    gate = anyio.Event()

    async def blocked(label: str) -> str:
        await gate.wait()
        return label

    async with WorkerPool(workers=2, queue_size=1, name="gated", bus=bus) as pool:
        handles = [pool.submit_nowait(blocked, label) for label in "abc"]  # 2 run, 1 queued
        await anyio.wait_all_tasks_blocked()  # the workers have taken their tasks
        print(f"  {pool!r}")
        try:
            pool.submit_nowait(blocked, "d")
        except PoolFullError as exc:
            print(f"  {type(exc).__name__}: {exc}")

        async def late_submitter() -> None:
            handles.append(await pool.submit(blocked, "d"))  # waits for room
            print("  room freed: 'd' is queued")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(late_submitter)
            await anyio.wait_all_tasks_blocked()
            print(f"  {pool!r}")
            gate.set()  # the running tasks finish; 'd' gets in
        print(f"  results: {[await h for h in handles]}")


async def mapping() -> None:
    print("3. map() keeps input order; an endless input, cut short with aclosing().")
    started: list[int] = []

    async def square(x: int) -> int:
        started.append(x)
        await anyio.lowlevel.checkpoint()
        return x * x

    async with WorkerPool(workers=3, queue_size=2, name="squares", bus=bus) as pool:
        results = []
        mapped: MapResults[int] = pool.map(square, itertools.count())  # annotatable
        async with aclosing(mapped) as squares:
            async for value in squares:
                results.append(value)
                if len(results) == 8:
                    break  # aclosing() drops the tasks not yet started, at once
        print(f"  first eight: {results}")
    print(f"  tasks started: {len(started)} (at most workers + queue_size = 5 in flight)")


async def failures() -> None:
    print("4. A failing task does not stop the pool or its siblings.")

    async def parse(text: str) -> int:
        await anyio.lowlevel.checkpoint()
        return int(text)

    async with WorkerPool(workers=2, name="parser", bus=bus) as pool:
        handles = [await pool.submit(parse, text) for text in ("1", "two", "3")]
        for text, handle in zip(("1", "two", "3"), handles, strict=True):
            print(f"  parse({text!r}): {await outcome(handle)}")


def digest(data: bytes) -> str:
    """A plain, blocking function: the pool runs it in a worker thread."""
    in_main = threading.current_thread() is threading.main_thread()
    return f"sha256 {hashlib.sha256(data).hexdigest()[:12]}..., in the main thread: {in_main}"


async def threads() -> None:
    print("5. A sync function runs in a worker thread, never on the event loop.")
    async with WorkerPool(workers=2, name="hashing", bus=bus) as pool:
        print(f"  {await pool.run(digest, b'resilio')}")


async def resize_and_stats() -> None:
    print("6. resize() while running; stats() counts everything.")
    gate = anyio.Event()

    async def blocked() -> None:
        await gate.wait()

    async with WorkerPool(workers=1, queue_size=10, name="resizable", bus=bus) as pool:
        for _ in range(4):
            pool.submit_nowait(blocked)
        await anyio.wait_all_tasks_blocked()
        print(f"  {pool.stats()}")
        pool.resize(3)
        await anyio.wait_all_tasks_blocked()
        print(f"  after resize(3): {pool.stats()}")
        gate.set()
    print(f"  after the block: {pool.stats()}")


async def shutdown() -> None:
    print("7. Leaving the block drains; shutdown(cancel=True) cancels.")

    async def slow(label: str) -> str:
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        return label

    async with WorkerPool(workers=1, name="draining", bus=bus) as pool:
        handles = [pool.submit_nowait(slow, label) for label in "abc"]
        stats = pool.stats()
        print(f"  leaving the block with {stats.busy} task busy and {stats.queued} queued")
    print(f"  drained: {[await h for h in handles]}")

    async with WorkerPool(workers=1, queue_size=1, name="cancelling", bus=bus) as pool:
        never = anyio.Event()
        running = pool.submit_nowait(never.wait)
        queued = pool.submit_nowait(never.wait)

        async def waiting_submitter() -> None:
            try:
                await pool.submit(never.wait)  # the pool is full: it waits for room
            except PoolClosedError as exc:
                print(f"  waiting submitter: {type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(waiting_submitter)
            await anyio.wait_all_tasks_blocked()
            await pool.shutdown(cancel=True)
        print(f"  running task: {await outcome(running)}")
        print(f"  queued task: {await outcome(queued)}")
        print(f"  {pool!r}")


async def cancelled_callers() -> None:
    print("8. A caller that gives up: a cancelled run() drops its task if it is queued.")
    gate = anyio.Event()
    ran: list[str] = []

    async def job(label: str) -> str:
        ran.append(label)
        await gate.wait()
        return label

    async with WorkerPool(workers=1, queue_size=1, name="patient", bus=bus) as pool:
        first = pool.submit_nowait(job, "first")  # takes the only worker

        scope = anyio.CancelScope()

        async def impatient_caller() -> None:
            with scope:
                await pool.run(job, "given up")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(impatient_caller)
            await anyio.wait_all_tasks_blocked()
            print(f"  while the caller waits: {pool.stats().queued} task queued")
            scope.cancel()  # the caller gives up (a timeout would do the same)
        print(f"  once it gave up: {pool.stats().queued} queued")
        gate.set()
        print(f"  first: {await first}")
    print(f"  tasks that ran: {ran}")


class Abort(BaseException):
    """Not an Exception: like KeyboardInterrupt or SystemExit, it ends the pool."""


async def base_exceptions() -> None:
    print("9. A BaseException in a task reaches its handle and ends the pool.")

    async def abort() -> None:
        await anyio.lowlevel.checkpoint()
        raise Abort("stop everything")

    try:
        async with WorkerPool(workers=2, name="fragile", bus=bus) as pool:
            aborting = pool.submit_nowait(abort)
            other = pool.submit_nowait(anyio.sleep_forever)
            await anyio.sleep_forever()
    except BaseExceptionGroup as group:
        print(f"  left the block: {group.exceptions!r}")
    try:
        await aborting
    except Abort as exc:
        print(f"  the aborting task's handle: {type(exc).__name__}: {exc}")
    print(f"  the other task's handle: {await outcome(other)}")


async def main() -> None:
    await submit_and_run()
    await backpressure()
    await mapping()
    await failures()
    await threads()
    await resize_and_stats()
    await shutdown()
    await cancelled_callers()
    await base_exceptions()


if __name__ == "__main__":
    anyio.run(main)
