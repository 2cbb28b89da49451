"""Keyed registries: a key's primitive looked up, and a call limited per client.

Each case cycles through the same 1,000 keys (``next(keys)``, in the baseline too),
so every look-up moves a key from the old end of the order of use to the new one, as
a registry in service does.

Target:
- ``keyed[key]`` on a key in use: its added cost <= 1.5x that of an ``OrderedDict``'s
  ``get`` plus ``move_to_end``, written inline in the same kind of closure. A third
  case, the same with a subscript and ``move_to_end`` bound beforehand (the fastest a
  hand-written LRU can be), shows what is left: ``keyed[key]`` is a Python method,
  and that frame costs about half as much as the two dict operations themselves.

For context (no target): ``keyed.guard`` over a TokenBucket per client against limits'
``hit(limit, key)`` on its memory storage and pyrate-limiter's ``try_acquire(name)``
with a bucket per name, every limit so high that nothing is refused; and the same
bucket as a plain decorator, one bucket for everyone, for what the registry adds; in
async code, against a dict of aiolimiter limiters, one per client.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from typing import Any

from _harness import Case, Result, Target, check, report, run_async, run_sync

import resilio

HUGE = 1e12
KEYS = [f"client-{n}" for n in range(1_000)]


def f(client: str) -> str:
    return client


async def af(client: str) -> str:
    return client


def lookup(quick: bool) -> Result:
    keyed = resilio.Keyed(lambda key: resilio.TokenBucket(HUGE, HUGE))
    od: OrderedDict[str, resilio.TokenBucket] = OrderedDict()
    for key in KEYS:
        od[key] = keyed[key]
    move_to_end = od.move_to_end
    keys = itertools.cycle(KEYS).__next__

    def baseline() -> str:
        return keys()

    def resilio_keyed() -> resilio.TokenBucket:
        return keyed[keys()]

    def od_get() -> Any:
        key = keys()
        value = od.get(key)
        od.move_to_end(key)
        return value

    def od_subscript() -> Any:
        key = keys()
        value = od[key]
        move_to_end(key)
        return value

    cases = [
        Case("baseline: next(keys)", baseline, "baseline"),
        Case("resilio keyed[key]", resilio_keyed, "resilio"),
        Case("OrderedDict get + move_to_end", od_get),
        Case("OrderedDict [key] + bound move_to_end", od_subscript),
    ]
    result = run_sync("A key in use, among 1,000", cases, **_opts(quick))
    return check(result, [Target("resilio keyed[key]", "OrderedDict get + move_to_end", 1.5)])


def per_client(quick: bool) -> Result:
    import limits
    import pyrate_limiter

    keyed = resilio.Keyed(lambda client: resilio.TokenBucket(HUGE, HUGE, reject=True))
    guarded = keyed.guard(lambda client: client)(f)
    one_bucket = resilio.TokenBucket(HUGE, HUGE, reject=True)(f)

    storage = limits.storage.MemoryStorage()
    fixed = limits.strategies.FixedWindowRateLimiter(storage)
    item = limits.RateLimitItemPerSecond(10**12)

    pyrate = pyrate_limiter.Limiter(_PerName([pyrate_limiter.Rate(10**9, 1000)]))
    keys = itertools.cycle(KEYS).__next__
    for key in KEYS:  # every key exists before timing: the case is a key in use
        guarded(key)
        fixed.hit(item, key)
        pyrate.try_acquire(key, blocking=False)

    def baseline() -> str:
        return f(keys())

    def resilio_guard() -> str:
        return guarded(keys())

    def resilio_one() -> str:
        return one_bucket(keys())

    def limits_hit() -> str | None:
        key = keys()
        return f(key) if fixed.hit(item, key) else None

    def pyrate_try() -> str | None:
        key = keys()
        return f(key) if pyrate.try_acquire(key, blocking=False) else None

    cases = [
        Case("baseline: f(client)", baseline, "baseline"),
        Case("resilio keyed.guard, a TokenBucket per client", resilio_guard, "resilio"),
        Case("one TokenBucket decorator for everyone (no registry)", resilio_one),
        Case("limits fixed window hit(limit, client)", limits_hit),
        Case("pyrate-limiter try_acquire(client), a bucket per name", pyrate_try),
    ]
    try:
        return run_sync("A call limited per client, among 1,000", cases, **_opts(quick))
    finally:
        pyrate.close()


def per_client_async(quick: bool) -> Result:
    import aiolimiter

    keyed = resilio.Keyed(lambda client: resilio.TokenBucket(HUGE, HUGE))
    guarded = keyed.guard(lambda client: client)(af)
    one_bucket = resilio.TokenBucket(HUGE, HUGE)(af)
    # aiolimiter has no keys: a dict of limiters, one per client, is the usual way.
    limiters = {key: aiolimiter.AsyncLimiter(10**12, 1) for key in KEYS}
    keys = itertools.cycle(KEYS).__next__

    async def warm_up() -> None:  # every key exists before timing: a key in use
        for key in KEYS:
            await guarded(key)

    asyncio.run(warm_up())

    async def baseline() -> str:
        return await af(keys())

    async def resilio_guard() -> str:
        return await guarded(keys())

    async def resilio_one() -> str:
        return await one_bucket(keys())

    async def aiolimiter_dict() -> str:
        key = keys()
        async with limiters[key]:
            return await af(key)

    cases = [
        Case("baseline: await af(client)", baseline, "baseline"),
        Case("resilio keyed.guard, a TokenBucket per client", resilio_guard, "resilio"),
        Case("one TokenBucket decorator for everyone (no registry)", resilio_one),
        Case("aiolimiter, a dict of AsyncLimiter per client", aiolimiter_dict),
    ]
    return run_async("Async: a call limited per client, among 1,000", cases, **_opts(quick))


class _PerName:
    """pyrate-limiter's documented way to keep a bucket per item name: a BucketFactory."""

    def __new__(cls, rates: list[Any]) -> Any:
        import pyrate_limiter

        class PerName(pyrate_limiter.BucketFactory):
            def __init__(self) -> None:
                self.clock = pyrate_limiter.InMemoryBucket(rates)  # only for its now()
                self.buckets: dict[str, Any] = {}

            def wrap_item(self, name: str, weight: int = 1) -> Any:
                return pyrate_limiter.RateItem(name, self.clock.now(), weight=weight)

            def get(self, item: Any) -> Any:
                bucket = self.buckets.get(item.name)
                if bucket is None:
                    bucket = self.buckets[item.name] = pyrate_limiter.InMemoryBucket(rates)
                return bucket

        return PerName()


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 21, "budget": 0.05}


def main(quick: bool = False) -> list[Result]:
    results = [lookup(quick), per_client(quick), per_client_async(quick)]
    for result in results:
        report(result)
    return results
