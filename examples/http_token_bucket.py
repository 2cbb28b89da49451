"""A token bucket around real HTTP calls: a search API's quota, bursts included.

The part between the ``--8<--`` markers is what a service would write: a bucket of 20
requests a second with bursts of 5, on the real clock, as a decorator on an ``httpx``
call. The rest is scaffolding: a search API served on 127.0.0.1 by the example itself,
and ten searches at once, of which five pass at once and five wait for tokens.

Run it with ``python examples/http_token_bucket.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import TokenBucket

# 20 requests a second, in bursts of up to 5; one bucket, shared by all.
search_quota = TokenBucket(rate=20, capacity=5)


@search_quota  # waits for a token; reject=True raises RateLimitExceeded
async def search(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get("/search", params={"q": query})
    response.raise_for_status()
    return list(response.json()["hits"])
    # --8<-- [end:use]


def main() -> None:
    """Search ten times at once against the example's own server."""
    import time

    import anyio
    from _loopback import Reply, Request, loopback

    def answer(request: Request) -> Reply:
        return 200, {"hits": [f"{request.query['q']}-{n}" for n in range(2)]}

    async def run(base_url: str) -> None:
        hits: list[str] = []
        start = time.monotonic()

        async def one(client: httpx.AsyncClient, n: int) -> None:
            hits.extend(await search(client, f"q{n}"))

        async with httpx.AsyncClient(base_url=base_url) as client, anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(one, client, n)
        elapsed = time.monotonic() - start
        # Five tokens at once, then one every 50 ms: the tenth search cannot start
        # before 0.25 s.
        assert elapsed >= 0.25 - 0.01, elapsed
        print(f"10 searches, {len(hits)} hits: 5 passed at once, 5 waited for tokens")

    with loopback(answer) as base_url:
        anyio.run(run, base_url)


if __name__ == "__main__":
    main()
