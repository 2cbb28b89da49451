"""Overhead of a composed policy on calls a service makes: a 1 ms wait and a loopback HTTP request.

The policy is ``compose(Retry(), CircuitBreaker(), TokenBucket(...), Timeout(5))``, every try
succeeding at once (the path every healthy call takes), on asyncio. Two figures per call:

- *direct*: the bare and the guarded call timed one after the other, alternating; the
  difference of their median times over the bare call's median, per repeat. This is what a
  caller sees; its median and its spread over the repeats are printed.
- *computed*: the policy's added cost measured on a call that returns at once, with the
  paired harness (precise to a few ns), over the bare call's median time. It is a floor:
  a call that really waits costs the policy a little more (on asyncio ``Timeout`` is one
  loop timer, armed and cancelled whatever the call does; the rest of the policy runs
  before and after the call, not while it waits).

The 1 ms call is ``anyio.sleep(0.001)``, standing in for a database or cache round trip.
The HTTP request is a GET to a stdlib ``http.server`` on 127.0.0.1 (run in a thread by
this script, keep-alive), sent with httpx when it is installed, else with a minimal
HTTP/1.1 client on an anyio TCP stream.

Target: the direct overhead is at most 2% of the 1 ms call (median of the repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
from _harness import Case, Result, report, run_async
from anyio.streams.buffered import BufferedByteReceiveStream

import resilio

HUGE = 1e12  # a rate no benchmark loop can exhaust
BODY = b'{"ok": true}'
TARGET_PERCENT = 2.0
POLICY = "resilio compose(Retry, CircuitBreaker, TokenBucket, Timeout)"


def policy() -> resilio.Composed:
    """The policy a service would put around an outbound call."""
    return resilio.compose(
        resilio.Retry(attempts=3),
        resilio.CircuitBreaker(),
        resilio.TokenBucket(HUGE, HUGE),
        resilio.Timeout(5.0),
    )


async def af() -> int:
    return 1


def added_cost(quick: bool) -> Result:
    """The policy's added cost on an async call that returns at once, and its parts."""
    guarded = policy()(af)
    untimed = resilio.compose(
        resilio.Retry(attempts=3), resilio.CircuitBreaker(), resilio.TokenBucket(HUGE, HUGE)
    )(af)

    timeout = resilio.Timeout(5.0)(af)

    async def cancel_scope() -> int:
        with anyio.move_on_after(5.0):
            return await af()
        return 0

    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case(POLICY, guarded, "resilio"),
        Case("resilio compose(Retry, CircuitBreaker, TokenBucket)", untimed, "resilio"),
        Case("resilio Timeout(5) alone (a loop timer on asyncio)", timeout, "resilio"),
        Case("anyio.move_on_after(5) alone, for comparison", cancel_scope),
    ]
    opts = {"repeats": 3, "budget": 0.005} if quick else {"repeats": 15, "budget": 0.05}
    return run_async("Async: a composed policy on a call that returns at once", cases, **opts)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection for every request
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _server() -> Iterator[int]:
    """A loopback HTTP server in a thread; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.asynccontextmanager
async def _client(port: int) -> AsyncIterator[tuple[str, Callable[[], Awaitable[bytes]]]]:
    """A named ``get()`` that fetches the server's body over one kept-alive connection."""
    try:
        import httpx
    except ImportError:
        httpx = None  # type: ignore[assignment]
    if httpx is not None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def get_httpx() -> bytes:
                response = await client.get("/")
                response.raise_for_status()
                return response.content

            yield f"httpx {httpx.__version__}", get_httpx
        return
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream:
        buffered = BufferedByteReceiveStream(stream)
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        async def get_raw() -> bytes:
            await stream.send(request)
            head = await buffered.receive_until(b"\r\n\r\n", 65536)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return await buffered.receive_exactly(length)

        yield "a raw HTTP/1.1 client on an anyio TCP stream", get_raw


async def _direct(
    bare: Callable[[], Awaitable[object]],
    guarded: Callable[[], Awaitable[object]],
    calls: int,
    repeats: int,
) -> tuple[float, list[float]]:
    """Median bare time per call and, per repeat, the guarded call's extra median time.

    Bare and guarded calls alternate one by one, so both see the same machine; medians
    keep a stray slow call (a scheduler hiccup, a garbage collection) out of the figure.
    """
    clock = time.perf_counter
    bare_medians: list[float] = []
    extra: list[float] = []
    for repeat in range(repeats):
        times: dict[str, list[float]] = {"bare": [], "guarded": []}
        order = [("bare", bare), ("guarded", guarded)]
        for _ in range(calls):
            for name, fn in order if repeat % 2 == 0 else order[::-1]:
                start = clock()
                await fn()
                times[name].append(clock() - start)
        bare_median = statistics.median(times["bare"])
        bare_medians.append(bare_median)
        extra.append(statistics.median(times["guarded"]) - bare_median)
    return statistics.median(bare_medians), extra


def _line(label: str, added: float, bare: float, extra: list[float]) -> str:
    direct = sorted(e / bare * 100 for e in extra)
    return (
        f"| {label} | {bare * 1e6:,.0f} µs | {statistics.median(direct):+.2f}% "
        f"({direct[0]:+.2f} to {direct[-1]:+.2f}%) | {added * 1e6:.2f} µs | "
        f"{added / bare * 100:.2f}% |"
    )


async def _measure(added: float, quick: bool) -> str:
    sleeps, requests, repeats = (20, 50, 2) if quick else (200, 500, 9)
    guarded_policy = policy()

    async def sleep_1ms() -> None:
        await anyio.sleep(0.001)

    guarded_sleep = guarded_policy(sleep_1ms)
    bare_sleep, sleep_extra = await _direct(sleep_1ms, guarded_sleep, sleeps, repeats)
    with _server() as port:
        async with _client(port) as (client_name, get):
            guarded_get = policy()(get)
            await get()  # connect once, outside the timing
            bare_http, http_extra = await _direct(get, guarded_get, requests, repeats)
    percent = statistics.median(sleep_extra) / bare_sleep * 100
    return "\n".join(
        [
            "",
            "## Overhead of compose(Retry, CircuitBreaker, TokenBucket, Timeout) "
            "on real calls (asyncio)",
            "",
            f"Direct: {repeats} repeats of {sleeps} waits and of {requests} requests, bare "
            f"and guarded alternating; median of the repeats, lowest to highest in "
            f"brackets. Floor: the policy's added cost on a call that returns at once. "
            f"HTTP client: {client_name}.",
            "",
            "| call | bare call | overhead, direct | floor: added cost | overhead, floor |",
            "|---|---:|---:|---:|---:|",
            _line("anyio.sleep(0.001)", added, bare_sleep, sleep_extra),
            _line("loopback HTTP GET", added, bare_http, http_extra),
            "",
            f"target: direct overhead ≤ {TARGET_PERCENT:g}% of a 1 ms call: "
            f"{percent:.2f}% — {'met' if percent <= TARGET_PERCENT else 'MISSED'}",
            "",
        ]
    )


SECTIONS: list[str] = []  # text sections of the last main() run


def main(quick: bool = False) -> list[Result]:
    result = added_cost(quick)
    report(result)
    added = result.added[POLICY]
    text = asyncio.run(_measure(added, quick))
    SECTIONS[:] = [text]  # for run.py --report
    print(text)
    return [result]
