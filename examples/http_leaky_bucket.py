"""A leaky bucket around real HTTP calls: a mail relay that takes one message at a time.

The part between the ``--8<--`` markers is what a service would write: a bucket that
spaces requests 100 ms apart and lets at most 100 wait, on the real clock, around an
``httpx`` POST. The rest is scaffolding: a relay served on 127.0.0.1 by the example
itself, and five messages sent at once, which reach it one slot apart.

Run it with ``python examples/http_leaky_bucket.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import LeakyBucket

# One request every 100 ms; `capacity` is how many may wait for their turn.
relay = LeakyBucket(rate=10, capacity=100)


async def send(client: httpx.AsyncClient, to: str, text: str) -> None:
    async with relay:  # waits its turn; RateLimitExceeded when 100 wait
        response = await client.post("/send", json={"to": to, "text": text})
    response.raise_for_status()
    # --8<-- [end:use]


def main() -> None:
    """Send five messages at once to the example's own relay."""
    import time

    import anyio
    from _loopback import Reply, Request, loopback

    received: list[str] = []

    def answer(request: Request) -> Reply:
        assert isinstance(request.body, dict)
        received.append(request.body["to"])
        return 202, {"queued": True}

    async def run(base_url: str) -> None:
        start = time.monotonic()
        async with httpx.AsyncClient(base_url=base_url) as client, anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(send, client, f"user{n}@example.com", "Your order has shipped.")
        elapsed = time.monotonic() - start
        # The first message passes at once, each of the others 100 ms after the one
        # before: the fifth cannot leave before 0.4 s.
        assert elapsed >= 0.4 - 0.01, elapsed
        print(f"{len(received)} messages relayed, one slot (100 ms) apart")

    with loopback(answer) as base_url:
        anyio.run(run, base_url)


if __name__ == "__main__":
    main()
