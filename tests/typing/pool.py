"""Type checks for the worker pool; checked by `mypy --strict tests/typing`, never run."""

from __future__ import annotations

from contextlib import aclosing

from typing_extensions import assert_type

from resilio import TaskHandle, WorkerPool


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
