"""The same per-client rate limit written with limits, then with resilio.

"3 requests a minute per client": limits keeps one counter per identifier in a
storage (``hit(limit, "alice")``); resilio keeps one ``TokenBucket`` per client in a
``Keyed`` registry (``clients["alice"].try_acquire()``). Both admit alice three times
and refuse the fourth while bob is still free, can test for room without using it,
and can clear one client. Then the difference in how room comes back: limits' moving
window frees alice's first hit a whole minute after it; a token bucket gives her one
request back every 20 seconds. Last, a handler guarded per client, refused with
``RateLimitExceeded`` and its ``retry_after`` (what an HTTP 429 needs).

limits reads ``time.time()``, which cannot be faked, so its side shows no time
passing; resilio's side runs on a ``ManualClock``. limits is not a dependency of
resilio: install it with ``pip install limits`` (CI gets it through the ``bench``
extra). Run it with ``python examples/migrating_from_limits.py``.
"""

from __future__ import annotations

from datetime import timedelta

from limits import parse, storage, strategies

from resilio import Keyed, ManualClock, RateLimitExceeded, TokenBucket

# -- before: limits ------------------------------------------------------------------
# --8<-- [start:before]
per_client = parse("3/minute")
limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())


def allowed_before(client: str) -> bool:
    return limiter.hit(per_client, client)


# --8<-- [end:before]

# -- after: resilio ------------------------------------------------------------------
# --8<-- [start:after]
clock = ManualClock()  # virtual time, moved on by hand below
clients = Keyed(
    lambda client: TokenBucket.per(3, timedelta(minutes=1), name=client, clock=clock),
    max_keys=100_000,  # the least recently used client's bucket goes beyond that
    idle_timeout=timedelta(minutes=5),  # and so does one unused for 5 minutes
    clock=clock,
)


def allowed_after(client: str) -> bool:
    return clients[client].try_acquire()


# --8<-- [end:after]

# --8<-- [start:guard]
api_limits = Keyed(
    lambda client: TokenBucket.per(3, 60.0, reject=True, name=client, clock=clock),
    clock=clock,
)


@api_limits.guard(lambda client, query: client)  # picks the bucket from the arguments
def search(client: str, query: str) -> str:
    return f"results for {query!r}"


def respond(client: str, query: str) -> str:
    """What an HTTP handler would answer."""
    try:
        return f"200 OK: {search(client, query)}"
    except RateLimitExceeded as error:
        return f"429 Too Many Requests, Retry-After: {error.retry_after:.0f}"


# --8<-- [end:guard]


def main() -> None:
    print("1. alice four times, then bob once:")
    calls = ["alice"] * 4 + ["bob"]
    print(f"  limits  -> {[allowed_before(c) for c in calls]}")
    print(f"  resilio -> {[allowed_after(c) for c in calls]}")

    print("2. Room for alice, without using it? (limits' test(), resilio's available)")
    print(f"  limits  -> {limiter.test(per_client, 'alice')}, ", end="")
    print(f"remaining {limiter.get_window_stats(per_client, 'alice').remaining}")
    print(f"  resilio -> {clients['alice'].available >= 1}, ", end="")
    print(f"remaining {int(clients['alice'].available)}")

    print("3. Clear alice (limits' clear(), resilio's reset()):")
    limiter.clear(per_client, "alice")
    clients["alice"].reset()
    print(f"  limits  -> {[allowed_before('alice') for _ in range(4)]}")
    print(f"  resilio -> {[allowed_after('alice') for _ in range(4)]}")

    print("4. 20 s later: a moving window frees nothing until a minute after the first hit;")
    print("   a token bucket has refilled one token (3 a minute):")
    clock.advance(20.0)
    print(f"  resilio -> {[allowed_after('alice') for _ in range(2)]}")

    print("5. A guarded handler per client; the fourth call is refused:")
    for _ in range(4):
        print(f"  {respond('carol', 'pumps')}")
    print(f"  clients with a bucket: {sorted(key for key, _ in clients)}")


if __name__ == "__main__":
    main()
