"""A circuit breaker per host around real HTTP calls, made on the first request to it.

The part between the ``--8<--`` markers is what a service would write: a ``Keyed``
registry of breakers, one per host, on the real clock, and an ``httpx`` call whose
breaker is picked from its URL. The rest is scaffolding: two services on 127.0.0.1
served by the example itself, an inventory that answers and a reviews service that
answers 503, so that three failed calls open the reviews breaker while the inventory
calls go on.

Run it with ``python examples/http_keyed.py`` (it needs httpx).
"""

# --8<-- [start:use]
from urllib.parse import urlsplit

import httpx

from resilio import CircuitBreaker, CircuitOpenError, Keyed

# One breaker per host, made on the first request to that host.
breakers = Keyed(lambda host: CircuitBreaker(name=f"http:{host}", failure_threshold=3))


@breakers.guard(lambda client, url: urlsplit(url).netloc)  # the key: host and port
async def get_json(client: httpx.AsyncClient, url: str) -> object:
    response = await client.get(url)
    response.raise_for_status()  # an error status counts as a failure
    return response.json()
    # --8<-- [end:use]


def main() -> None:
    """Call both services a few times, and show each host's breaker."""
    import anyio
    from _loopback import Reply, Request, loopback

    def inventory(request: Request) -> Reply:
        return 200, {"sku": request.path.rsplit("/", 1)[-1], "in_stock": 3}

    def reviews(request: Request) -> Reply:
        return 503, {"error": "reviews database offline"}

    async def run(inventory_url: str, reviews_url: str) -> None:
        async with httpx.AsyncClient() as client:
            for n in range(5):
                stock = await get_json(client, f"{inventory_url}/stock/sku-{n}")
                try:
                    await get_json(client, f"{reviews_url}/reviews/sku-{n}")
                except httpx.HTTPStatusError as exc:
                    outcome = f"HTTP {exc.response.status_code}"
                except CircuitOpenError:
                    outcome = "refused at once: its breaker is open"
                print(f"sku-{n}: inventory {stock}, reviews {outcome}")
        names = {
            urlsplit(inventory_url).netloc: "inventory",
            urlsplit(reviews_url).netloc: "reviews",
        }
        for host, breaker in breakers:  # (key, primitive), least recently used first
            print(f"the {names[host]} breaker is {breaker.state.value}")

    with loopback(inventory) as inventory_url, loopback(reviews) as reviews_url:
        anyio.run(run, inventory_url, reviews_url)


if __name__ == "__main__":
    main()
