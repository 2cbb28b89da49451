"""Composition: ``compose(breaker, bucket)`` against the two decorators stacked.

Target: the composed policy's added cost <= 1.1x the stacked decorators' (the sum of
its parts, not more).
"""

from __future__ import annotations

from typing import Any

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


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


def main(quick: bool = False) -> list[Result]:
    results = [composed_sync(quick), composed_async(quick)]
    for result in results:
        report(result)
    return results
