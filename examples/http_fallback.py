"""A fallback around real HTTP calls: the last known answer while the API is down.

The part between the ``--8<--`` markers is what a service would write: exchange rates
fetched with ``httpx`` through a circuit breaker, on the real clock, with a fallback
outside the breaker that answers with the last rates it saw when the call fails or the
breaker is open. The rest is scaffolding: a rates API served on 127.0.0.1 by the
example itself, which answers its first two requests and then fails with a 503.

Run it with ``python examples/http_fallback.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import CircuitBreaker, CircuitOpenError, Fallback, compose

last_rates: dict[str, float] = {}  # the last good answer, kept by fetch_rates


def last_known_rates(exc: Exception) -> dict[str, float]:
    return dict(last_rates)  # stale, but better than an error page


rates_api = compose(
    Fallback(last_known_rates, on=(httpx.HTTPError, CircuitOpenError), name="rates"),
    CircuitBreaker(name="rates-api", failure_threshold=3, open_timeout=30.0),
)


@rates_api
async def fetch_rates(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/rates")
    response.raise_for_status()  # a 503 is an httpx.HTTPStatusError: a failure
    last_rates.update(response.json())
    return dict(last_rates)
    # --8<-- [end:use]


def main() -> None:
    """Fetch the rates six times from the example's own server, and say what happened."""
    import anyio
    from _loopback import Reply, Request, loopback

    from resilio import FallbackUsed, default_bus

    requests: list[int] = []

    def answer(request: Request) -> Reply:
        requests.append(request.count)
        if request.count <= 2:
            return 200, {"EUR": 0.92, "GBP": 0.79 + request.count / 100}
        return 503, {"error": "rates database offline"}

    def explain(event: FallbackUsed) -> None:
        print(f"   fallback {event.source!r} replaced {type(event.error).__name__}")

    async def run(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for call in range(1, 7):
                sent = len(requests)
                rates = await fetch_rates(client)
                sent = len(requests) - sent
                print(f"{call}. rates {rates} ({sent} request{'' if sent == 1 else 's'} sent)")

    unsubscribe = default_bus().subscribe(FallbackUsed, explain)
    try:
        with loopback(answer) as base_url:
            anyio.run(run, base_url)
    finally:
        unsubscribe()
    print("Calls 3-5 failed with a 503 and got the last rates; three failures opened")
    print("the breaker, so call 6 got them at once, without a request.")


if __name__ == "__main__":
    main()
