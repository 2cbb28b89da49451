"""A worker pool running real HTTP calls: twenty pages, never more than four at once.

The part between the ``--8<--`` markers is what a service would write: a pool of four
workers with room for eight more tasks, fetching pages with ``httpx`` and yielding the
results in input order. The rest is scaffolding: a server on 127.0.0.1, started by the
example itself, that takes 20 ms per page and counts how many requests it serves at
once.

Run it with ``python examples/http_worker_pool.py`` (it needs httpx).
"""

# --8<-- [start:use]
import httpx

from resilio import WorkerPool


async def page_sizes(base_url: str, paths: list[str]) -> list[int]:
    async with (
        httpx.AsyncClient(base_url=base_url) as client,
        WorkerPool(workers=4, queue_size=8) as pool,  # 4 requests at most
    ):
        pages = pool.map(client.get, paths)  # in input order
        return [len(page.content) async for page in pages]
    # --8<-- [end:use]


def main() -> None:
    """Fetch twenty pages from the example's own server."""
    import threading
    import time

    import anyio
    from _loopback import Reply, Request, loopback

    lock = threading.Lock()
    busy = peak = 0

    def answer(request: Request) -> Reply:
        nonlocal busy, peak
        with lock:
            busy += 1
            peak = max(peak, busy)
        time.sleep(0.02)  # the page takes a while to build
        with lock:
            busy -= 1  # before the reply is sent, so the client cannot overtake it
        return 200, {"page": request.path}

    with loopback(answer) as base_url:
        sizes = anyio.run(page_sizes, base_url, [f"/pages/{n}" for n in range(20)])
    assert len(sizes) == 20
    assert peak <= 4, peak
    print(f"{len(sizes)} pages fetched in order, never more than 4 at once")


if __name__ == "__main__":
    main()
