"""Composition: ``compose(breaker, bucket)`` against the two decorators stacked, and
``Timeout`` against asyncio's and anyio's own timeouts.

Targets: the composed policy's added cost <= 1.1x the stacked decorators' (the sum of
its parts, not more); a ``Timeout`` on asyncio with the system clock <= 1.0x
``asyncio.timeout`` on a call that returns at once.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from _harness import Case, Result, Target, check, report, run_async, run_sync

import resilio

HUGE = 1e12


def f() -> int:
    return 1


async def af() -> int:
    return 1


def _parts() -> tuple[resilio.CircuitBreaker, resilio.TokenBucket]:
    return resilio.CircuitBreaker(), resilio.TokenBucket(HUGE, HUGE)


def composed_sync(quick: bool) -> Result:
    breaker, bucket = _parts()
    stacked = breaker(bucket(f))
    composed = resilio.compose(*_parts())(f)
    cases = [
        Case("baseline: f()", f, "baseline"),
        Case("resilio compose(breaker, bucket)", composed, "resilio"),
        Case("breaker and bucket decorators stacked", stacked),
    ]
    result = run_sync("Sync: a composed policy against its parts stacked", cases, **_opts(quick))
    return check(
        result,
        [Target("resilio compose(breaker, bucket)", "breaker and bucket decorators stacked", 1.1)],
    )


def composed_async(quick: bool) -> Result:
    breaker, bucket = _parts()
    stacked = breaker(bucket(af))
    composed = resilio.compose(*_parts())(af)
    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case("resilio compose(breaker, bucket)", composed, "resilio"),
        Case("breaker and bucket decorators stacked", stacked),
    ]
    result = run_async("Async: a composed policy against its parts stacked", cases, **_opts(quick))
    return check(
        result,
        [Target("resilio compose(breaker, bucket)", "breaker and bucket decorators stacked", 1.1)],
    )


def timeout_async(quick: bool) -> Result:
    """A Timeout on a call that returns at once, next to the loop's and anyio's timeouts."""
    decorated = resilio.Timeout(5.0)(af)
    timeout = resilio.Timeout(5.0)

    async def call_async() -> int:
        return await timeout.call_async(af)

    async def asyncio_timeout() -> int:
        async with asyncio.timeout(5.0):  # type: ignore[attr-defined,unused-ignore]
            return await af()

    async def anyio_scope() -> int:
        with anyio.move_on_after(5.0):
            return await af()
        return 0

    cases = [
        Case("baseline: await af()", _turning(af), "baseline"),
        Case("resilio @Timeout(5)", _turning(decorated), "resilio"),
        Case("resilio Timeout(5).call_async", _turning(call_async), "resilio"),
        Case("asyncio.timeout(5)", _turning(asyncio_timeout)),
        Case("anyio.move_on_after(5)", _turning(anyio_scope)),
    ]
    result = run_async("Async: a Timeout on a call that returns at once", cases, **_opts(quick))
    return check(
        result,
        [
            Target("resilio @Timeout(5)", "asyncio.timeout(5)", 1.0),
            Target("resilio @Timeout(5)", "anyio.move_on_after(5)", 1.0),
        ],
    )


def _turning(fn: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """*fn*, letting the event loop turn once every 64 calls, as a service's loop does.

    Each of the timeouts arms a loop timer and cancels it; a loop that never turns
    (a timing loop of calls that never suspend) keeps every cancelled timer in its
    heap, and each new one then costs a push onto a heap of 100,000, which is no
    service's case. Every case, the baseline included, turns the loop as often.
    """
    calls = itertools.count()

    async def turning() -> int:
        if not next(calls) & 63:
            await asyncio.sleep(0)
        return await fn()

    return turning


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


def main(quick: bool = False) -> list[Result]:
    results = [composed_sync(quick), composed_async(quick)]
    if sys.version_info >= (3, 11):  # asyncio.timeout, and Timeout's loop timer
        results.append(timeout_async(quick))
    for result in results:
        report(result)
    return results
