"""The short snippets shown in the docs, each runnable here (the docs include them).

Run: python examples/doc_snippets.py
"""

from __future__ import annotations

from contextlib import aclosing

import anyio

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    Retry,
    RetryBudget,
    Timeout,
    TokenBucket,
    WorkerPool,
    compose,
)

clock = ManualClock()
breaker = CircuitBreaker(clock=clock)
bucket = limiter = TokenBucket(100, 10, clock=clock)
retry_policy = policy = Retry(on=ConnectionError, jitter=None, clock=clock)
seconds = 2.0


async def fetch(url: str = "https://example.invalid/") -> str:
    return f"page at {url}"


class Client:
    """A stand-in for an HTTP client."""

    def get(self, url: str) -> str:
        return f"GET {url}"

    async def get_async(self, url: str) -> str:
        return f"GET {url}"


client = Client()
url = "https://example.invalid/items"


def composition() -> None:
    # --8<-- [start:compose-equivalence]
    policy = compose(retry_policy, breaker, bucket, Timeout(2.0))
    guarded = policy(fetch)  # the same as retry_policy(breaker(bucket(Timeout(2.0)(fetch))))
    # --8<-- [end:compose-equivalence]
    assert anyio.run(guarded) == "page at https://example.invalid/"
    # --8<-- [start:compose-order]
    policy = compose(retry_policy, breaker, limiter, Timeout(seconds))
    # --8<-- [end:compose-order]
    print("composed:", policy)


async def retry_a_block() -> str:
    reply = ""
    # --8<-- [start:compose-retry-block]
    async for attempt in retry_policy:
        with attempt:
            async with compose(breaker, bucket):
                reply = await client.get_async(url)
    # --8<-- [end:compose-retry-block]
    return reply


def retry_outside_breaker() -> None:
    # --8<-- [start:retry-outside]
    @Retry(on=(ConnectionError, CircuitOpenError), clock=clock)
    @breaker
    def charge() -> str: ...

    # --8<-- [end:retry-outside]

    print("charge():", charge())


def budgets() -> None:
    # --8<-- [start:retry-budget]
    budget = RetryBudget(ratio=0.2, min_per_second=10.0)  # one per dependency
    reads = Retry(on=ConnectionError, budget=budget)
    writes = Retry(on=ConnectionError, attempts=3, budget=budget)
    # --8<-- [end:retry-budget]
    print("budget shared by", reads.name, "and", writes.name, "->", budget)


def inline_loop() -> str:
    response = ""
    # --8<-- [start:retry-inline]
    for attempt in policy:
        with attempt:
            response = client.get(url)
    # --8<-- [end:retry-inline]
    return response


async def map_cut_short() -> None:
    urls = [f"https://example.invalid/{n}" for n in range(100)]
    async with WorkerPool(4, 8) as pool:
        # --8<-- [start:pool-aclosing]
        async with aclosing(pool.map(fetch, urls)) as pages:
            async for page in pages:
                if "needle" in page or page.endswith("/3"):
                    break  # the fetches not yet started are dropped here
        # --8<-- [end:pool-aclosing]
        print("stopped at:", page)


def main() -> None:
    composition()
    print("retried block:", anyio.run(retry_a_block))
    retry_outside_breaker()
    budgets()
    print("inline:", inline_loop())
    anyio.run(map_cut_short)


if __name__ == "__main__":
    main()
