"""A circuit breaker around real HTTP calls: the four ways to guard one, and a fallback.

The part between the ``--8<--`` markers is what a service would write: one breaker for
a pricing API, on the real clock, guarding an ``httpx`` call as a decorator, around a
block, through ``call_async`` and, for sync code, through ``call``. The rest is
scaffolding: a pricing API served on 127.0.0.1 by the example itself, whose ``sku-0``
always fails with a 503, so that five calls open the breaker.

Run it with ``python examples/http_circuit_breaker.py`` (it needs httpx).
"""

# --8<-- [start:first-look]
# --8<-- [start:use]
import httpx

from resilio import CircuitBreaker, CircuitOpenError

# One breaker per dependency, created once and shared by every request.
pricing = CircuitBreaker(name="pricing", failure_threshold=5, open_timeout=30.0)


@pricing  # 1. a decorator, on an async def or a def
async def price(client: httpx.AsyncClient, sku: str) -> float:
    response = await client.get(f"/price/{sku}")
    response.raise_for_status()  # an error status is an exception: a failure
    return float(response.json()["price"])


async def price_or_none(client: httpx.AsyncClient, sku: str) -> float | None:
    try:
        return await price(client, sku)
    except CircuitOpenError:  # open: refused at once, without a request
        return None  # or a cached price, or a 503 with Retry-After
    # --8<-- [end:use]


async def ping(client: httpx.AsyncClient) -> None:
    async with pricing:  # 2. around a block (`with pricing:` in sync code)
        response = await client.get("/health")
        response.raise_for_status()


async def fetch(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await pricing.call_async(client.get, path)  # 3. a function you don't own


def price_sync(base_url: str, sku: str) -> float:
    response = pricing.call(httpx.get, f"{base_url}/price/{sku}")  # 4. the same, for a def
    response.raise_for_status()
    return float(response.json()["price"])
    # --8<-- [end:first-look]


def main() -> None:
    """Use the breaker against the example's own server, and say what happened."""
    import anyio
    from _loopback import Reply, Request, loopback

    def answer(request: Request) -> Reply:
        if request.path == "/price/sku-0":
            return 503, {"error": "pricing database offline"}
        return 200, {"price": 9.5, "status": "up"}

    async def forms(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            print("1. decorator:", await price(client, "sku-1"))
            await ping(client)
            print("2. async with: the health check passed")
            print("3. call_async:", (await fetch(client, "/price/sku-1")).json()["price"])

    async def failing(client: httpx.AsyncClient) -> None:
        try:
            await price(client, "sku-0")
        except httpx.HTTPStatusError as exc:
            print(f"   HTTP {exc.response.status_code}, the breaker is {pricing.state.value}")

    async def outage(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for _ in range(5):
                await failing(client)
            print("   price_or_none:", await price_or_none(client, "sku-1"))
            try:
                await price(client, "sku-1")
            except CircuitOpenError as exc:
                print(f"   CircuitOpenError, retry after {exc.retry_after:.0f}s")

    with loopback(answer) as base_url:
        anyio.run(forms, base_url)
        print("4. call:", price_sync(base_url, "sku-1"))
        print("Five failures in a row open the breaker:")
        anyio.run(outage, base_url)


if __name__ == "__main__":
    main()
