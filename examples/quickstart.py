"""resilio in thirty seconds: one composed policy on an async def that calls an HTTP API.

The part between the ``--8<--`` markers is what a service would paste: a retry for
dropped connections and hung tries, a circuit breaker, a token bucket and a timeout on
each try, around a real ``httpx`` call, on the real clock. The rest is scaffolding: an
inventory API served on 127.0.0.1 by the example itself, where one item's first request
is dropped and another item's requests always fail with a 503.

Run it with ``python examples/quickstart.py`` (it needs httpx: ``pip install httpx``).
"""

# --8<-- [start:service]
import httpx

from resilio import CircuitBreaker, Retry, Timeout, TokenBucket, compose

# One policy per dependency, built once and shared by every request.
inventory = compose(
    Retry(on=(httpx.TransportError, TimeoutError), attempts=3),  # outermost
    CircuitBreaker(name="inventory", failure_threshold=5, open_timeout=30.0),
    TokenBucket(rate=50, capacity=10),  # 50 calls a second, bursts of 10
    Timeout(2.0),  # seconds, for each try
)


@inventory
async def stock_level(client: httpx.AsyncClient, sku: str) -> int:
    response = await client.get(f"/stock/{sku}")
    response.raise_for_status()
    return int(response.json()["level"])
    # --8<-- [end:service]


def main() -> None:
    """Call the policy against the example's own server, and say what happened."""
    import anyio
    from _loopback import Reply, Request, loopback

    from resilio import CircuitOpenError, CircuitStateChanged, RetryScheduled, default_bus

    def answer(request: Request) -> Reply:
        if request.path == "/stock/sku-2" and request.count == 1:
            return None  # the first request for sku-2 loses its connection
        if request.path == "/stock/sku-9":
            return 503, {"error": "warehouse offline"}
        return 200, {"level": 7 if request.path == "/stock/sku-1" else 3}

    def on_retry(event: RetryScheduled) -> None:
        what = "a transport error" if isinstance(event.error, httpx.TransportError) else "a timeout"
        print(f"  retrying after {what}")

    def on_change(event: CircuitStateChanged) -> None:
        print(f"  {event.source}: {event.old.value} -> {event.new.value}")

    async def show(client: httpx.AsyncClient, sku: str) -> None:
        try:
            print(f"{sku}: {await stock_level(client, sku)} in stock")
        except httpx.HTTPStatusError as exc:
            print(f"{sku}: failed, HTTP {exc.response.status_code}")
        except CircuitOpenError as exc:
            print(f"{sku}: rejected at once, retry after {exc.retry_after:.0f}s")

    async def run(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for sku in ["sku-1", "sku-2"] + ["sku-9"] * 6:
                await show(client, sku)

    default_bus().subscribe(RetryScheduled, on_retry)
    default_bus().subscribe(CircuitStateChanged, on_change)
    with loopback(answer) as base_url:
        anyio.run(run, base_url)


if __name__ == "__main__":
    main()
