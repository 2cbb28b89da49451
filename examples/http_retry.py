"""A retry around real HTTP calls: dropped connections tried again, then given up on.

The part between the ``--8<--`` markers is what a service would write: a retry of up
to three tries on transport errors, on the real clock, as a decorator on an ``httpx``
call. The rest is scaffolding: a report API served on 127.0.0.1 by the example itself,
which drops the first two connections for report 7 and every connection for report 13.

Run it with ``python examples/http_retry.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import retry


# A dropped, refused or timed-out connection is tried again, 3 tries in all.
@retry(on=httpx.TransportError, attempts=3)
async def fetch_report(client: httpx.AsyncClient, n: int) -> dict[str, int]:
    response = await client.get(f"/reports/{n}")
    response.raise_for_status()  # a 4xx or 5xx is not retried
    return dict(response.json())
    # --8<-- [end:use]


def main() -> None:
    """Fetch two reports from the example's own server, and say what happened."""
    import anyio
    from _loopback import Reply, Request, loopback

    from resilio import RetryScheduled, default_bus

    def answer(request: Request) -> Reply:
        if request.path == "/reports/13" or (request.path == "/reports/7" and request.count <= 2):
            return None  # the connection drops before any answer
        return 200, {"id": 7, "rows": 42}

    def on_retry(event: RetryScheduled) -> None:
        print(f"  try {event.attempt} lost its connection; retrying")

    async def run(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            print("report 7:", await fetch_report(client, 7))
            try:
                await fetch_report(client, 13)
            except httpx.TransportError:
                print("report 13: gave up after 3 tries; the last error is raised unchanged")

    default_bus().subscribe(RetryScheduled, on_retry)
    with loopback(answer) as base_url:
        anyio.run(run, base_url)


if __name__ == "__main__":
    main()
