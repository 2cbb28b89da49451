"""Type checks for the worker pool; checked by `mypy --strict tests/typing`, never run."""

from __future__ import annotations

from contextlib import aclosing

from typing_extensions import assert_type

from resilio import MapResults, PoolStats, TaskHandle, WorkerPool


async def double(x: int) -> int:
    return 2 * x


def triple(x: int) -> int:
    return 3 * x


async def check(pool: WorkerPool) -> None:
    assert_type(await pool.submit(double, 1), TaskHandle[int])
    assert_type(await pool.submit(triple, 1), TaskHandle[int])
    assert_type(pool.submit_nowait(double, 1), TaskHandle[int])
    assert_type(await pool.run(double, 1), int)
    assert_type(await pool.run(triple, 1), int)
    await pool.submit(double, "one")  # type: ignore[call-overload]
    async with aclosing(pool.map(double, [1])) as results:
        async for result in results:
            assert_type(result, int)
    # The type map returns is public, so it can be annotated.
    mapped: MapResults[int] = pool.map(triple, range(3))
    assert_type(pool.map(double, [1]), MapResults[int])
    assert_type(await anext(mapped), int)
    await mapped.aclose()
    strings(pool.map(double, [1]))  # type: ignore[arg-type]


def strings(results: MapResults[str]) -> None:
    """Takes the results of a map whose function returns str."""


def check_stats(pool: WorkerPool) -> None:
    """Counters are ints."""
    stats = pool.stats()
    assert_type(stats, PoolStats)
    assert_type(stats.submitted, int)
    assert_type(stats.cancelled, int)
    assert_type(stats.queue_peak, int)
