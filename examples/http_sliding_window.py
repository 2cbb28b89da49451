"""A sliding-window breaker around real HTTP calls: it trips on the recent failure rate.

The part between the ``--8<--`` markers is what a service would write: a breaker that
judges a search API by its last minute of calls, on the real clock, and opens when half
of them failed or when most of them took over a second. The rest is scaffolding: a
search API served on 127.0.0.1 by the example itself, which fails one request in three
(the breaker stays closed), and then every request (the breaker opens).

Run it with ``python examples/http_sliding_window.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import SlidingWindowBreaker

# Judge the last minute of calls, once it holds 20: open at 50 % failures,
# or when 80 % of the calls took longer than a second.
search_breaker = SlidingWindowBreaker(
    name="search",
    window_duration=60.0,
    min_calls=20,
    failure_rate_threshold=0.5,
    slow_call_duration=1.0,
    slow_call_rate_threshold=0.8,
)


@search_breaker
async def search(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get("/search", params={"q": query})
    response.raise_for_status()
    return list(response.json()["hits"])
    # --8<-- [end:use]


def main() -> None:
    """Search through a flaky API, then through a broken one, and show the window."""
    import anyio
    from _loopback import Reply, Request, loopback

    from resilio import CircuitOpenError, CircuitState

    broken = False

    def answer(request: Request) -> Reply:
        if broken or request.count % 3 == 0:
            return 500, {"error": "index unavailable"}
        return 200, {"hits": ["resilio"]}

    async def attempt(client: httpx.AsyncClient) -> None:
        try:
            await search(client, "breaker")
        except httpx.HTTPStatusError:
            pass  # counted as a failure; a real caller would handle it

    def show(label: str) -> None:
        window = search_breaker.snapshot()
        print(
            f"{label}: {window.failed_calls} of {window.calls} calls failed "
            f"({window.failure_rate:.0%}); the breaker is {window.state.value}"
        )

    async def run(base_url: str) -> None:
        nonlocal broken
        async with httpx.AsyncClient(base_url=base_url) as client:
            for _ in range(30):
                await attempt(client)
            show("one request in three fails")
            broken = True
            while search_breaker.state is CircuitState.CLOSED:
                await attempt(client)
            show("every request fails")
            try:
                await search(client, "breaker")
            except CircuitOpenError as exc:
                print(f"then: rejected at once, retry after {exc.retry_after:.0f}s")

    with loopback(answer) as base_url:
        anyio.run(run, base_url)


if __name__ == "__main__":
    main()
