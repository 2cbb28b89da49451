"""Retry: resilio against tenacity, backoff and stamina on the success path.

Targets (ratios of *added* cost when the first try succeeds, so no retry happens):
- sync ``@retry``: resilio <= 0.1x backoff's added cost;
- async ``@retry``: resilio <= 0.15x backoff's added cost.
"""

from __future__ import annotations

from typing import Any

from _harness import Case, Result, Target, check, report, run_async, run_sync

import resilio


def f() -> int:
    return 1


async def af() -> int:
    return 1


def success_sync(quick: bool) -> Result:
    import backoff
    import stamina
    import tenacity

    cases = [
        Case("baseline: f()", f, "baseline"),
        Case("resilio @retry", resilio.retry(on=ConnectionError)(f), "resilio"),
        Case("backoff @on_exception", backoff.on_exception(backoff.expo, ConnectionError)(f)),
        Case("stamina @retry", stamina.retry(on=ConnectionError)(f)),
        Case(
            "tenacity @retry",
            tenacity.retry(retry=tenacity.retry_if_exception_type(ConnectionError))(f),
        ),
    ]
    result = run_sync(
        "Sync call through a retry decorator, first try succeeds", cases, **_opts(quick)
    )
    return check(result, [Target("resilio @retry", "backoff @on_exception", 0.1)])


def success_async(quick: bool) -> Result:
    import backoff
    import stamina
    import tenacity

    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case("resilio @retry", resilio.retry(on=ConnectionError)(af), "resilio"),
        Case("backoff @on_exception", backoff.on_exception(backoff.expo, ConnectionError)(af)),
        Case("stamina @retry", stamina.retry(on=ConnectionError)(af)),
        Case(
            "tenacity @retry",
            tenacity.retry(retry=tenacity.retry_if_exception_type(ConnectionError))(af),
        ),
    ]
    result = run_async(
        "Async call through a retry decorator, first try succeeds", cases, **_opts(quick)
    )
    return check(result, [Target("resilio @retry", "backoff @on_exception", 0.15)])


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


def main(quick: bool = False) -> list[Result]:
    results = [success_sync(quick), success_async(quick)]
    for result in results:
        report(result)
    return results
