"""Rate limiters: resilio's buckets against aiolimiter, limits and pyrate-limiter.

Targets:
- sync ``try_acquire`` + call: resilio <= 0.15x limits' fixed-window ``hit()`` (added
  cost, on the path that never blocks). Like for like: ``hit()`` is limits' only call
  that takes from a limit, and it is keyed: it builds the item's storage key and
  increments a counter in a storage (here ``MemoryStorage``, behind a lock, with
  expiry), where a resilio bucket is one object with no key. Two more cases bound the
  comparison: limits' ``test()``, its cheapest call (a keyed read that takes nothing),
  and resilio with a key, a bucket looked up in a dict by key before ``try_acquire``;
- ``async with bucket`` with a token free: resilio <= 0.5x aiolimiter's ``async with``
  (added cost);
- waiting grants on the real clock (a rate at which every request waits): resilio's
  CPU time per grant <= 1.1x aiolimiter's, paired runs interleaved, median ratio;
- 1,000 tasks contending for 10,000 tokens/s on the real clock for 2 s: admitted count
  within 1% of rate x time + capacity; the leaky bucket's spacing error is reported.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

from _harness import Case, Result, Target, check, report, run_async, run_sync

import resilio

HUGE = 1e12  # a rate no benchmark loop can exhaust: measures the never-blocking path


def f() -> int:
    return 1


async def af() -> int:
    return 1


def try_acquire_sync(quick: bool) -> Result:
    import limits
    import pyrate_limiter

    token = resilio.TokenBucket(HUGE, HUGE)
    leaky = resilio.LeakyBucket(HUGE, 1)
    storage = limits.storage.MemoryStorage()
    fixed = limits.strategies.FixedWindowRateLimiter(storage)
    moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(10**12)
    pyrate = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND))

    def resilio_token() -> None:
        if token.try_acquire():
            f()

    def resilio_leaky() -> None:
        if leaky.try_acquire():
            f()

    def limits_fixed() -> None:
        if fixed.hit(item):
            f()

    def limits_fixed_test() -> None:
        if fixed.test(item):
            f()

    buckets = {"client-1": resilio.TokenBucket(HUGE, HUGE)}
    key = "client-1"

    def resilio_keyed() -> None:
        if buckets[key].try_acquire():
            f()

    def limits_moving() -> None:
        if moving.hit(item):
            f()

    def pyrate_try() -> None:
        if pyrate.try_acquire("bench", blocking=False):
            f()

    cases = [
        Case("baseline: f()", f, "baseline"),
        Case("resilio TokenBucket.try_acquire", resilio_token, "resilio"),
        Case("resilio LeakyBucket.try_acquire", resilio_leaky, "resilio"),
        Case("resilio buckets[key].try_acquire", resilio_keyed, "resilio"),
        Case("limits fixed window hit()", limits_fixed),
        Case("limits fixed window test(), takes nothing", limits_fixed_test),
        Case("limits moving window hit()", limits_moving),
        Case("pyrate-limiter try_acquire", pyrate_try),
    ]
    result = run_sync("Sync: admit (never blocking) and call", cases, **_opts(quick))
    return check(
        result,
        [Target("resilio TokenBucket.try_acquire", "limits fixed window hit()", 0.15)],
    )


def async_with(quick: bool) -> Result:
    import aiolimiter

    token = resilio.TokenBucket(HUGE, HUGE)
    aio = aiolimiter.AsyncLimiter(10**12, 1)

    async def resilio_async_with() -> int:
        async with token:
            return await af()

    async def resilio_acquire() -> int:
        await token.acquire()
        return await af()

    decorated = token(af)

    async def aiolimiter_async_with() -> int:
        async with aio:
            return await af()

    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case("resilio async with TokenBucket", resilio_async_with, "resilio"),
        Case("resilio await acquire()", resilio_acquire, "resilio"),
        Case("resilio @TokenBucket", decorated, "resilio"),
        Case("aiolimiter async with", aiolimiter_async_with),
    ]
    result = run_async("Async: admit with a token free, then call", cases, **_opts(quick))
    return check(result, [Target("resilio async with TokenBucket", "aiolimiter async with", 0.5)])


async def _grants(bucket: Any, tasks: int, grants: int) -> float:
    """CPU seconds per grant while *tasks* wait in turn for *grants* admissions."""
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < grants:
            await bucket.acquire()
            done += 1

    await bucket.acquire()  # the bucket starts empty: every request below waits
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.process_time() - started) / done


def waiting_grants(quick: bool) -> str:
    import aiolimiter

    rate, tasks = 2_000.0, 20
    grants, pairs = (100, 3) if quick else (1_000, 9)
    makers = {
        "resilio": lambda: resilio.TokenBucket(rate, 1),
        "aiolimiter": lambda: aiolimiter.AsyncLimiter(1, 1 / rate),
    }
    cpu: dict[str, list[float]] = {name: [] for name in makers}
    for pair in range(pairs):  # interleaved, each side first in turn
        for name in sorted(makers, reverse=pair % 2 == 1):
            cpu[name].append(asyncio.run(_grants(makers[name](), tasks, grants)))
    ratios = sorted(r / a for r, a in zip(cpu["resilio"], cpu["aiolimiter"], strict=True))
    ratio = statistics.median(ratios)
    target = 1.1
    return (
        f"\n## Waiting grants: {tasks} tasks, {rate:,.0f} tokens/s, capacity 1 "
        f"(asyncio, real clock; CPU time per grant)\n\n"
        f"resilio TokenBucket: {statistics.median(cpu['resilio']) * 1e6:.1f} µs per grant; "
        f"aiolimiter: {statistics.median(cpu['aiolimiter']) * 1e6:.1f} µs per grant "
        f"(medians of {pairs} paired runs of {grants:,} grants)\n"
        f"ratio per pair: median {ratio:.3f}×, range {ratios[0]:.3f}–{ratios[-1]:.3f}×\n"
        f"target: resilio ≤ {target}× aiolimiter's CPU per grant: "
        f"{'met' if ratio <= target else 'MISSED'}\n"
    )


async def _contend(bucket: Any, tasks: int, seconds: float) -> list[float]:
    stamps: list[float] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while True:
            await bucket.acquire()
            now = time.monotonic()
            if now >= stop:
                return
            stamps.append(now)

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return stamps


def throughput(quick: bool) -> str:
    rate, capacity, tasks = 10_000.0, 100.0, 1_000
    seconds = 0.5 if quick else 2.0
    token = resilio.TokenBucket(rate, capacity)
    stamps = asyncio.run(_contend(token, tasks, seconds))
    expected = rate * seconds + capacity
    error = (len(stamps) - expected) / expected

    leaky = resilio.LeakyBucket(rate, tasks)
    leaky_stamps = asyncio.run(_contend(leaky, tasks, seconds))
    gaps = [b - a for a, b in itertools.pairwise(leaky_stamps)]
    spacing = 1 / rate
    mean_gap = statistics.fmean(gaps) if gaps else float("nan")
    errors = sorted(abs(g - spacing) for g in gaps) or [float("nan")]
    p50, p99 = errors[len(errors) // 2], errors[int(len(errors) * 0.99)]
    ok = abs(error) <= 0.01
    return (
        f"\n## {tasks:,} tasks contending for {rate:,.0f} tokens/s for {seconds:g} s "
        f"(asyncio, real clock)\n\n"
        f"TokenBucket(capacity={capacity:g}): admitted {len(stamps):,}, expected "
        f"{expected:,.0f} (rate x time + capacity): error {error:+.2%}\n"
        f"target: within 1%: {'met' if ok else 'MISSED'}\n"
        f"LeakyBucket: admitted {len(leaky_stamps):,} in {seconds:g} s "
        f"({len(leaky_stamps) / seconds:,.0f}/s); mean spacing {mean_gap * 1e6:.1f} µs "
        f"for {spacing * 1e6:.0f} µs asked; |error| p50 {p50 * 1e6:.1f} µs, "
        f"p99 {p99 * 1e6:.1f} µs\n"
    )


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}


SECTIONS: list[str] = []  # text sections of the last main() run


def main(quick: bool = False) -> list[Result]:
    results = [try_acquire_sync(quick), async_with(quick)]
    for result in results:
        report(result)
    texts = [waiting_grants(quick), throughput(quick)]
    SECTIONS[:] = texts  # for run.py --report
    for text in texts:
        print(text)
    return results
