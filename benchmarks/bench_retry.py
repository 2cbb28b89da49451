"""Retry: resilio against tenacity, backoff and stamina on the success path.

Targets (ratios of *added* cost when the first try succeeds, so no retry happens):
- sync ``@retry``: resilio <= 0.1x backoff's added cost;
- async ``@retry``: resilio <= 0.15x backoff's added cost;
- ``@retry`` with a shared ``RetryBudget`` (which counts every first try): <= 1.5x the
  same policy without one, sync and async;
- eight threads calling one budgeted function get >= 0.8x the calls per second of one
  thread (the GIL allows no more than 1x; a lock taken on every call gave 0.47x).
"""

from __future__ import annotations

import statistics
from typing import Any

from _harness import (
    Case,
    Result,
    Target,
    calls_per_second,
    check,
    report,
    run_async,
    run_sync,
)

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
        Case("resilio @retry + RetryBudget", _budgeted(f), "resilio"),
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
    return check(
        result,
        [
            Target("resilio @retry", "backoff @on_exception", 0.1),
            Target("resilio @retry + RetryBudget", "resilio @retry", 1.5),
        ],
    )


def success_async(quick: bool) -> Result:
    import backoff
    import stamina
    import tenacity

    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case("resilio @retry", resilio.retry(on=ConnectionError)(af), "resilio"),
        Case("resilio @retry + RetryBudget", _budgeted(af), "resilio"),
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
    return check(
        result,
        [
            Target("resilio @retry", "backoff @on_exception", 0.15),
            Target("resilio @retry + RetryBudget", "resilio @retry", 1.5),
        ],
    )


def thread_scaling(quick: bool) -> str:
    """Eight threads against one through the same policy, interleaved; medians."""
    wrapped = {
        "resilio @retry": resilio.retry(on=ConnectionError)(f),
        "resilio @retry + RetryBudget": _budgeted(f),
    }
    seconds, repeats = (0.05, 3) if quick else (0.3, 7)
    rates: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in wrapped}
    for _ in range(repeats):
        for name, fn in wrapped.items():
            rates[name][0].append(calls_per_second(fn, 1, seconds, batch=100))
            rates[name][1].append(calls_per_second(fn, 8, seconds, batch=100))
    rows, scaling = [], {}
    for name, (one, eight) in rates.items():
        scaling[name] = statistics.median(e / o for o, e in zip(one, eight, strict=True))
        rows.append(
            f"| {name} | {statistics.median(one):,.0f}/s | {statistics.median(eight):,.0f}/s "
            f"| {scaling[name]:.2f}× |"
        )
    measured = scaling["resilio @retry + RetryBudget"]
    return (
        "\n## Eight threads calling one retried function (first try succeeds)\n\n"
        "| case | 1 thread | 8 threads | 8 ÷ 1 |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\ntarget: resilio @retry + RetryBudget, 8 threads >= 0.8x one thread's calls/s: "
        f"measured {measured:.2f}x — {'met' if measured >= 0.8 else 'MISSED'}\n"
    )


def _budgeted(fn: Any) -> Any:
    """*fn* under a retry policy that counts every first try in a shared budget."""
    return resilio.Retry(on=ConnectionError, budget=resilio.RetryBudget())(fn)


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


SECTIONS: list[str] = []  # text sections of the last main() run


def main(quick: bool = False) -> list[Result]:
    results = [success_sync(quick), success_async(quick)]
    for result in results:
        report(result)
    text = thread_scaling(quick)
    SECTIONS[:] = [text]  # for run.py --report
    print(text)
    return results
