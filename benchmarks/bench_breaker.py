"""Circuit breakers: resilio against pybreaker, circuitbreaker, aiobreaker and purgatory.

Cases (targets from the project's issue tracker, as ratios of *added* cost):
- sync decorator on a closed breaker: resilio <= 0.25x circuitbreaker;
- async decorator on a closed breaker: resilio <= 0.5x purgatory's cheapest form
  (one breaker object fetched once and reused with ``async with``);
- a call rejected by an open breaker: <= 1.5x a bare raise/except of a fresh exception
  (for scale, the table also times a plain function that raises: every Python frame
  an exception crosses costs about half as much again as raising it);
- SlidingWindowBreaker, closed: <= 0.5x circuitbreaker;
- two threads calling a wrapped function that sleeps 1 ms: >= 1.9x one thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from _harness import Case, Result, Target, check, report, run_async, run_sync

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
    cb_f = circuitbreaker.CircuitBreaker()(f)
    pb = pybreaker.CircuitBreaker()
    pb_f = pb(f)
    cases = [
        Case("baseline: def f()", f, "baseline"),
        Case("resilio @CircuitBreaker", resilio_f, "resilio"),
        Case("resilio @SlidingWindowBreaker", window_f, "resilio"),
        Case("circuitbreaker @circuit", cb_f),
        Case("pybreaker decorator", pb_f),
        Case("pybreaker .call", lambda: pb.call(f)),
    ]
    result = run_sync("Sync call through a closed breaker", cases, **_opts(quick))
    return check(
        result,
        [
            Target("resilio @CircuitBreaker", "circuitbreaker @circuit", 0.25),
            Target("resilio @CircuitBreaker", "pybreaker decorator", 0.125),
            Target("resilio @SlidingWindowBreaker", "circuitbreaker @circuit", 0.5),
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
    cases = [
        Case("baseline: async def af()", af, "baseline"),
        Case("resilio @CircuitBreaker", resilio.CircuitBreaker()(af), "resilio"),
        Case("resilio @SlidingWindowBreaker", resilio.SlidingWindowBreaker()(af), "resilio"),
        Case("purgatory, breaker reused", purgatory_reused),
        Case("purgatory decorator", purgatory_decorated),
        Case("aiobreaker decorator", aio(af)),
        Case("circuitbreaker @circuit", circuitbreaker.CircuitBreaker()(af)),
    ]
    result = run_async("Async call through a closed breaker", cases, **_opts(quick))
    return check(result, [Target("resilio @CircuitBreaker", "purgatory, breaker reused", 0.5)])


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
    return check(result, [Target("resilio open breaker", "floor: bare raise/except", 1.5)])


def _calls_per_second(fn: Callable[[], object], threads: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def worker(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            fn()
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


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
        one = _calls_per_second(fn, 1, seconds)
        two = _calls_per_second(fn, 2, seconds)
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
    results = [closed_sync(quick), closed_async(quick), rejected(quick)]
    for result in results:
        report(result)
    text = thread_scaling(quick)
    SECTIONS[:] = [text]  # for run.py --report
    print(text)
    return results
