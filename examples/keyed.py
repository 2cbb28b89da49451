"""Keyed: a breaker per host and a rate limit per client, made on first use.

A ``Keyed`` registry holds one primitive per key and makes it with ``factory(key)`` the
first time the key is used. ``keyed.guard(key_fn)`` picks the primitive from each
call's arguments. The registry evicts the least recently used keys beyond
``max_keys`` and drops keys idle past ``idle_timeout``. Time is a ``ManualClock``, so
the example runs instantly and prints the same every time.

Run it with ``python examples/keyed.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    EventBus,
    Keyed,
    ManualClock,
    RateLimitExceeded,
    TokenBucket,
)

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def attempt(call: Callable[[], str]) -> None:
    """Print what a call returned, or the error it raised."""
    try:
        print(f"   {call()}")
    except ConnectionError as exc:
        print(f"   ConnectionError: {exc}")
    except CircuitOpenError as exc:
        print(f"   CircuitOpenError from {exc.name!r}, retry after {exc.retry_after:g}s")
    except RateLimitExceeded as exc:
        print(f"   429 Too Many Requests, retry after {exc.retry_after:g}s")


def breaker_per_host() -> None:
    print("1. A breaker per host: one host's failures open its breaker only.")
    breakers = Keyed(
        lambda host: CircuitBreaker(name=f"db:{host}", failure_threshold=2, clock=clock, bus=bus)
    )

    @breakers.guard(lambda host, query: host)
    def run_query(host: str, query: str) -> str:
        if host == "replica-2":
            raise ConnectionError(f"{host} is down")
        return f"{query} on {host}: ok"

    for host in ["primary", "replica-2", "replica-2", "replica-2", "primary"]:
        attempt(functools.partial(run_query, host, "SELECT 1"))
    # Iterating yields (key, primitive): a monitor of every breaker.
    for host, breaker in breakers:
        print(f"   {host}: {breaker.state.value}")
    open_hosts = [host for host, b in breakers if b.state is CircuitState.OPEN]
    print(f"   open: {open_hosts}")


def limit_per_client() -> None:
    print("2. A rate limit per client: one client's burst leaves the others theirs.")
    # 1 request a second per client, in bursts of up to 3; refuse beyond that.
    limits = Keyed(
        lambda client: TokenBucket(rate=1, capacity=3, reject=True, clock=clock, bus=bus),
        max_keys=100_000,  # well above the clients active at once
        idle_timeout=60,  # a client quiet for a minute starts afresh (a full bucket)
        clock=clock,
    )

    @limits.guard(lambda client, **_: client)
    def handle(client: str, *, path: str) -> str:
        return f"200 {path} for {client}"

    for client in ["alice"] * 4 + ["bob"]:
        attempt(functools.partial(handle, client, path="/search"))
    clock.advance(1)
    print(f"   a second later: {handle('alice', path='/search')}")
    print(f"   {limits!r}")
    clock.advance(60)
    print(f"   a minute later, {len(limits)} clients held: idle keys are dropped")


def eviction() -> None:
    print("3. max_keys: the least recently used key goes first.")
    breakers = Keyed(lambda host: CircuitBreaker(name=host, clock=clock, bus=bus), max_keys=2)
    a = breakers["a"]
    breakers["b"]
    breakers["a"]  # a is now the most recently used
    breakers["c"]  # evicts b
    print(f"   keys, least recently used first: {breakers.keys()}")
    breakers["a"]  # "a" is still held...
    breakers["d"]  # ...so c goes, then a when one more key comes
    breakers["e"]
    print(f"   after d and e: {breakers.keys()}")
    print(f"   the evicted breaker still works for whoever holds it: {a.call(lambda: 'ok')}")
    print(f"   the next use of 'a' makes a fresh one: {breakers['a'] is not a}")
    print(
        f"   get() and `in` look without making or using: {breakers.get('zz')}, {'b' in breakers}"
    )


def mistakes() -> None:
    print("4. A factory must return a primitive.")
    keyed = Keyed(lambda key: {"rate": 10})  # type: ignore[type-var]
    try:
        keyed["x"]
    except TypeError as exc:
        print(f"   TypeError: {exc}")
    try:
        Keyed(lambda key: TokenBucket(1, 1), max_keys=0)
    except ValueError as exc:
        print(f"   ValueError: {exc}")


if __name__ == "__main__":
    breaker_per_host()
    limit_per_client()
    eviction()
    mistakes()
