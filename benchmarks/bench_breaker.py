"""Circuit breakers: resilio against pybreaker, circuitbreaker, aiobreaker and purgatory.

Cases (targets from the project's issue tracker, as ratios of *added* cost):
- sync decorator on a closed breaker: resilio <= 0.25x circuitbreaker and <= 0.125x
  pybreaker; ``with breaker:`` <= 0.75x and ``breaker.call(f)`` <= 0.5x circuitbreaker;
- async decorator on a closed breaker: resilio <= 0.5x purgatory's cheapest form
  (one breaker object fetched once and reused with ``async with``); ``async with``
  <= 1.0x and ``call_async`` <= 0.75x of it;
- a call rejected by an open breaker: <= 2.2x a plain function that raises a fresh
  exception and is caught by its caller (one frame crossed; a bare raise/except in
  the same frame is shown for scale);
- SlidingWindowBreaker, closed: <= 0.5x circuitbreaker, with a count window or a time
  window; with ``slow_call_duration`` <= 0.75x;
- two threads calling a wrapped function that sleeps 1 ms: >= 1.9x one thread;
- the cost of a ``CallCompleted`` subscriber (a handler that does nothing) on a closed
  breaker's decorator, against the same breaker nobody listens to: reported, no target.
"""

from __future__ import annotations

import asyncio
import time
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


def closed_sync(quick: bool) -> Result:
    import circuitbreaker
    import pybreaker

    resilio_f = resilio.CircuitBreaker()(f)
    window_f = resilio.SlidingWindowBreaker()(f)
    timed_f = resilio.SlidingWindowBreaker(window_duration=60.0)(f)
    slow_f = resilio.SlidingWindowBreaker(slow_call_duration=1.0)(f)
    block_breaker = resilio.CircuitBreaker()
    call_breaker = resilio.CircuitBreaker()

    def with_block() -> int:
        with block_breaker:
            return f()

    def call_form() -> int:
        return call_breaker.call(f)

    cb_f = circuitbreaker.CircuitBreaker()(f)
    pb = pybreaker.CircuitBreaker()
    pb_f = pb(f)
    cases = [
        Case("baseline: def f()", f, "baseline"),
        Case("resilio @CircuitBreaker", resilio_f, "resilio"),
        Case("resilio with CircuitBreaker", with_block, "resilio"),
        Case("resilio CircuitBreaker.call", call_form, "resilio"),
        Case("resilio @SlidingWindowBreaker", window_f, "resilio"),
        Case("resilio @SlidingWindowBreaker, time window", timed_f, "resilio"),
        Case("resilio @SlidingWindowBreaker, slow calls", slow_f, "resilio"),
        Case("circuitbreaker @circuit", cb_f),
        Case("pybreaker decorator", pb_f),
        Case("pybreaker .call", lambda: pb.call(f)),
    ]
    result = run_sync("Sync call through a closed breaker", cases, **_opts(quick))
    peer = "circuitbreaker @circuit"
    return check(
        result,
        [
            Target("resilio @CircuitBreaker", peer, 0.25),
            Target("resilio @CircuitBreaker", "pybreaker decorator", 0.125),
            Target("resilio with CircuitBreaker", peer, 0.75),
            Target("resilio CircuitBreaker.call", peer, 0.5),
            Target("resilio @SlidingWindowBreaker", peer, 0.5),
            Target("resilio @SlidingWindowBreaker, time window", peer, 0.5),
            Target("resilio @SlidingWindowBreaker, slow calls", peer, 0.75),
        ],
    )


def closed_async(quick: bool) -> Result:
    import aiobreaker
    import circuitbreaker
    import purgatory

    async def purgatory_breaker() -> Any:
        factory = purgatory.AsyncCircuitBreakerFactory()
        return await factory.get_breaker("bench")

    purg = asyncio.run(purgatory_breaker())

    async def purgatory_reused() -> int:
        async with purg:
            return await af()

    factory = purgatory.AsyncCircuitBreakerFactory()
    purgatory_decorated = factory("bench-decorated")(af)
    aio = aiobreaker.CircuitBreaker()
    block_breaker = resilio.CircuitBreaker()
    call_breaker = resilio.CircuitBreaker()

    async def async_with_block() -> int:
        async with block_breaker:
            return await af()

    async def call_async_form() -> int:
        return await call_breaker.call_async(af)

    cases = [
        Case("baseline: async def af()", af, "baseline"),
        Case("resilio @CircuitBreaker", resilio.CircuitBreaker()(af), "resilio"),
        Case("resilio async with CircuitBreaker", async_with_block, "resilio"),
        Case("resilio CircuitBreaker.call_async", call_async_form, "resilio"),
        Case("resilio @SlidingWindowBreaker", resilio.SlidingWindowBreaker()(af), "resilio"),
        Case("purgatory, breaker reused", purgatory_reused),
        Case("purgatory decorator", purgatory_decorated),
        Case("aiobreaker decorator", aio(af)),
        Case("circuitbreaker @circuit", circuitbreaker.CircuitBreaker()(af)),
    ]
    result = run_async("Async call through a closed breaker", cases, **_opts(quick))
    peer = "purgatory, breaker reused"
    return check(
        result,
        [
            Target("resilio @CircuitBreaker", peer, 0.5),
            Target("resilio async with CircuitBreaker", peer, 1.0),
            Target("resilio CircuitBreaker.call_async", peer, 0.75),
        ],
    )


def rejected(quick: bool) -> Result:
    import circuitbreaker
    import pybreaker

    def empty() -> None:
        pass

    # The floor raises a fresh built-in exception with the same two arguments.
    def bare_raise() -> None:
        try:
            raise LookupError("bench", 1.0)
        except LookupError:
            pass

    def raiser() -> None:
        raise LookupError("bench", 1.0)

    def one_frame() -> None:
        try:
            raiser()
        except LookupError:
            pass

    def boom() -> int:
        raise ConnectionError

    breaker = resilio.CircuitBreaker(open_timeout=3600)
    guarded = breaker(boom)
    for _ in range(5):
        try:
            guarded()
        except ConnectionError:
            pass
    assert breaker.state is resilio.CircuitState.OPEN

    def resilio_rejected() -> None:
        try:
            guarded()
        except resilio.CircuitOpenError:
            pass

    cb = circuitbreaker.CircuitBreaker(recovery_timeout=3600)
    cb_f = cb(boom)
    for _ in range(5):
        try:
            cb_f()
        except ConnectionError:
            pass

    def cb_rejected() -> None:
        try:
            cb_f()
        except circuitbreaker.CircuitBreakerError:
            pass

    pb = pybreaker.CircuitBreaker(reset_timeout=3600)
    pb_f = pb(boom)
    for _ in range(5):
        try:
            pb_f()
        except (ConnectionError, pybreaker.CircuitBreakerError):
            pass

    def pb_rejected() -> None:
        try:
            pb_f()
        except pybreaker.CircuitBreakerError:
            pass

    cases = [
        Case("baseline: empty call", empty, "baseline"),
        Case("floor: bare raise/except", bare_raise),
        Case("floor + 1 frame: a function that raises", one_frame),
        Case("resilio open breaker", resilio_rejected, "resilio"),
        Case("circuitbreaker open", cb_rejected),
        Case("pybreaker open", pb_rejected),
    ]
    result = run_sync("A call rejected by an open breaker", cases, **_opts(quick))
    return check(
        result, [Target("resilio open breaker", "floor + 1 frame: a function that raises", 2.2)]
    )


def completed(quick: bool) -> Result:
    import circuitbreaker

    def build(listened: bool, kind: type[resilio.CircuitBreaker] | type[Any]) -> Any:
        bus = resilio.EventBus()
        if listened:
            bus.subscribe(resilio.CallCompleted, lambda event: None)
        return kind(bus=bus)(f)

    cases = [
        Case("baseline: def f()", f, "baseline"),
        Case("resilio @CircuitBreaker, nobody listens", build(False, resilio.CircuitBreaker)),
        Case(
            "resilio @CircuitBreaker, CallCompleted subscriber",
            build(True, resilio.CircuitBreaker),
            "resilio",
        ),
        Case(
            "resilio @SlidingWindowBreaker, nobody listens",
            build(False, resilio.SlidingWindowBreaker),
        ),
        Case(
            "resilio @SlidingWindowBreaker, CallCompleted subscriber",
            build(True, resilio.SlidingWindowBreaker),
            "resilio",
        ),
        Case("circuitbreaker @circuit", circuitbreaker.CircuitBreaker()(f)),
    ]
    return run_sync(
        "Closed breaker with a CallCompleted subscriber (cost reported, no target)",
        cases,
        **_opts(quick),
    )


def _completed_cost(result: Result) -> str:
    rows = []
    for kind in ("CircuitBreaker", "SlidingWindowBreaker"):
        quiet = result.added[f"resilio @{kind}, nobody listens"]
        heard = result.added[f"resilio @{kind}, CallCompleted subscriber"]
        runs = result.ratio_runs(
            f"resilio @{kind}, CallCompleted subscriber", f"resilio @{kind}, nobody listens"
        )
        spread = f"{min(runs):.2f}–{max(runs):.2f}×" if runs else "—"
        rows.append(
            f"| @{kind} | {quiet * 1e9:,.0f} ns | {heard * 1e9:,.0f} ns | "
            f"{heard / quiet:.2f}× | {spread} |"
        )
    return (
        "\n## The cost of a CallCompleted subscriber (added cost per call)\n\n"
        "| decorator | nobody listens | subscriber | ratio | per-repeat range |\n"
        "|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )


def thread_scaling(quick: bool) -> str:
    import pybreaker

    def io() -> None:
        time.sleep(0.001)

    rows = []
    seconds = 0.3 if quick else 1.0
    wrapped = {
        "unwrapped": io,
        "resilio @CircuitBreaker": resilio.CircuitBreaker()(io),
        "resilio @SlidingWindowBreaker": resilio.SlidingWindowBreaker()(io),
        "pybreaker decorator": pybreaker.CircuitBreaker()(io),
    }
    scaling = {}
    for name, fn in wrapped.items():
        one = calls_per_second(fn, 1, seconds)
        two = calls_per_second(fn, 2, seconds)
        scaling[name] = two / one
        rows.append(f"| {name} | {one:,.0f}/s | {two:,.0f}/s | {two / one:.2f}× |")
    ok = scaling["resilio @CircuitBreaker"] >= 1.9
    return (
        "\n## Two threads, each calling a wrapped function that sleeps 1 ms\n\n"
        "| case | 1 thread | 2 threads | scaling |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\ntarget: resilio scales >= 1.9x: measured "
        f"{scaling['resilio @CircuitBreaker']:.2f}x — {'met' if ok else 'MISSED'}\n"
    )


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


SECTIONS: list[str] = []  # text sections of the last main() run


def main(quick: bool = False) -> list[Result]:
    results = [closed_sync(quick), closed_async(quick), rejected(quick), completed(quick)]
    for result in results:
        report(result)
    cost = _completed_cost(results[-1])
    print(cost)
    text = thread_scaling(quick)
    SECTIONS[:] = [cost, text]  # for run.py --report
    print(text)
    return results
