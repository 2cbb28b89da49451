"""Worker pool: resilio's WorkerPool against the ways people run many tasks with a bound.

100,000 trivial tasks (``async def work(): return 1``) with at most 64 in flight:
- raw floor: 64 worker coroutines reading an ``asyncio.Queue(128)``;
- ``asyncio.Semaphore(64)`` + a ``TaskGroup`` (a task per item);
- ``anyio.CapacityLimiter(64)`` + an anyio task group (a task per item): every task is
  spawned up front and waits on the limiter, so all 100,000 exist at once;
- the same, bounded: the producer takes the limiter's token before spawning each task,
  so at most 64 tasks exist (the like-for-like anyio bulkhead);
- 64 anyio workers reading a memory object stream of 128 items (anyio's raw floor);
- resilio ``WorkerPool(64, 128)`` through ``map`` and through ``submit``.

Targets on asyncio: throughput >= 0.5x the raw queue workers and >= 10x the
CapacityLimiter spawning every task up front; peak Python heap of the 100k run <= 5 MB
(tracemalloc, measured in a separate run since tracing slows everything). Trio
throughput is reported too.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import resilio

WORKERS, QUEUE = 64, 128


async def work() -> int:
    return 1


async def raw_queue(n: int) -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue(QUEUE)

    async def worker() -> None:
        while await queue.get() is not None:
            await work()

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    for i in range(n):
        await queue.put(i)
    for _ in tasks:
        await queue.put(None)
    await asyncio.gather(*tasks)


async def semaphore_taskgroup(n: int) -> None:
    semaphore = asyncio.Semaphore(WORKERS)

    async def one() -> None:
        async with semaphore:
            await work()

    async with asyncio.TaskGroup() as tasks:
        for _ in range(n):
            tasks.create_task(one())


async def capacity_limiter(n: int) -> None:
    limiter = anyio.CapacityLimiter(WORKERS)

    async def one() -> None:
        async with limiter:
            await work()

    async with anyio.create_task_group() as tasks:
        for _ in range(n):
            tasks.start_soon(one)


async def capacity_limiter_bounded(n: int) -> None:
    limiter = anyio.CapacityLimiter(WORKERS)

    async def one(borrower: object) -> None:
        try:
            await work()
        finally:
            limiter.release_on_behalf_of(borrower)

    async with anyio.create_task_group() as tasks:
        for _ in range(n):
            borrower = object()
            await limiter.acquire_on_behalf_of(borrower)
            tasks.start_soon(one, borrower)


async def anyio_stream_workers(n: int) -> None:
    send, receive = anyio.create_memory_object_stream[int](QUEUE)

    async def worker(stream: anyio.abc.ObjectReceiveStream[int]) -> None:
        async with stream:
            async for _ in stream:
                await work()

    async with anyio.create_task_group() as tasks:
        async with receive:
            for _ in range(WORKERS):
                tasks.start_soon(worker, receive.clone())
        async with send:
            for i in range(n):
                await send.send(i)


async def pool_map(n: int) -> None:
    async with resilio.WorkerPool(WORKERS, QUEUE) as pool:
        async for _ in pool.map(lambda _: work(), range(n)):
            pass


async def pool_map_async_fn(n: int) -> None:
    async def job(_: int) -> int:
        return 1

    async with resilio.WorkerPool(WORKERS, QUEUE) as pool:
        async for _ in pool.map(job, range(n)):
            pass


async def pool_submit(n: int) -> None:
    async with resilio.WorkerPool(WORKERS, QUEUE) as pool:
        for _ in range(n):
            await pool.submit(work)


CASES: dict[str, Callable[[int], Awaitable[None]]] = {
    "raw: 64 workers on asyncio.Queue(128)": raw_queue,
    "asyncio.Semaphore(64) + TaskGroup": semaphore_taskgroup,
    "anyio.CapacityLimiter(64) + task group": capacity_limiter,
    "anyio.CapacityLimiter(64), bounded spawning": capacity_limiter_bounded,
    "anyio: 64 workers on a memory stream(128)": anyio_stream_workers,
    "resilio WorkerPool.map": pool_map_async_fn,
    "resilio WorkerPool.submit": pool_submit,
}


def _rate(fn: Callable[[int], Awaitable[None]], n: int, backend: str = "asyncio") -> float:
    gc.collect()
    start = time.perf_counter()
    if backend == "asyncio":
        asyncio.run(fn(n))  # type: ignore[arg-type]
    else:
        anyio.run(fn, n, backend=backend)
    return n / (time.perf_counter() - start)


def _peak_heap(fn: Callable[[int], Awaitable[None]], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        asyncio.run(fn(n))  # type: ignore[arg-type]
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 100_000
    repeats = 1 if quick else 3
    rates: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(repeats):  # interleaved, median of the repeats
        for name, fn in CASES.items():
            rates[name].append(_rate(fn, n))
    median = {name: statistics.median(r) for name, r in rates.items()}
    heaps = {name: _peak_heap(fn, n) for name, fn in CASES.items()}
    trio_map = _rate(pool_map_async_fn, n, "trio")
    trio_submit = _rate(pool_submit, n, "trio")
    raw = median["raw: 64 workers on asyncio.Queue(128)"]
    limiter = median["anyio.CapacityLimiter(64) + task group"]
    bounded = median["anyio.CapacityLimiter(64), bounded spawning"]
    print(f"\n## {n:,} trivial tasks, at most {WORKERS} in flight (asyncio)\n")
    print("| approach | tasks/s | ÷ raw queue | peak heap |\n|---|---:|---:|---:|")
    for name in CASES:
        print(
            f"| {name} | {median[name]:,.0f} | {median[name] / raw:.2f}× | {heaps[name]:.1f} MB |"
        )
    targets = []
    for name in ("resilio WorkerPool.map", "resilio WorkerPool.submit"):
        ok_raw = median[name] >= 0.5 * raw
        ok_lim = median[name] >= 10 * limiter
        ok_heap = heaps[name] <= 5.0
        targets.append(
            f"target {name}: >= 0.5x raw: {median[name] / raw:.2f}x "
            f"{'met' if ok_raw else 'MISSED'}; >= 10x CapacityLimiter spawning up front: "
            f"{median[name] / limiter:.1f}x {'met' if ok_lim else 'MISSED'}; "
            f"heap <= 5 MB: {heaps[name]:.1f} MB {'met' if ok_heap else 'MISSED'} "
            f"(against the bounded CapacityLimiter: {median[name] / bounded:.1f}x, no target)"
        )
        print(f"\n{targets[-1]}")
    trio = f"WorkerPool.map {trio_map:,.0f} tasks/s, WorkerPool.submit {trio_submit:,.0f} tasks/s"
    print(f"\ntrio: {trio}")
    return {
        "rates": median,
        "ranges": {name: (min(r), max(r)) for name, r in rates.items()},
        "repeats": repeats,
        "n": n,
        "heaps": heaps,
        "trio": (trio_map, trio_submit),
        "targets": targets,
    }
