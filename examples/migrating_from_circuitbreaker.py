"""The same circuit breaker written with circuitbreaker, then with resilio.

A currency service fails with ``ConnectionError``. Both breakers open after three
failures in a row, answer from a cache while open (circuitbreaker's
``fallback_function``, resilio's ``Fallback`` on ``CircuitOpenError``), remember the
error that tripped them, and close after one good call once the recovery timeout is
over. Last, one breaker per host: circuitbreaker keeps every breaker it ever made in
its global ``CircuitBreakerMonitor``; resilio's ``Keyed`` makes them on first use and
forgets the least recently used ones.

resilio reads a ``ManualClock``, so its timeout passes at once; circuitbreaker reads
``time.monotonic()``, so it gets a 200 ms ``recovery_timeout`` and a real sleep.
circuitbreaker is not a dependency of resilio: install it with
``pip install circuitbreaker`` (CI gets it through the ``bench`` extra). Run it with
``python examples/migrating_from_circuitbreaker.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import circuitbreaker

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Fallback,
    Keyed,
    ManualClock,
    compose,
)

CACHED: dict[str, object] = {"EUR": 1.08, "stale": True}


class RatesService:
    """A stand-in for a remote service that is either up or down."""

    up = False

    def rates(self) -> dict[str, object]:
        if not self.up:
            raise ConnectionError("rates.example: connection refused")
        return {"EUR": 1.09}


service = RatesService()


def cached_rates() -> dict[str, object]:
    """What to answer while the breaker is open."""
    return CACHED


# -- before: circuitbreaker ----------------------------------------------------------
# --8<-- [start:before]
@circuitbreaker.circuit(
    name="rates",
    failure_threshold=3,
    recovery_timeout=0.2,  # seconds; circuitbreaker reads time.monotonic()
    expected_exception=ConnectionError,
    fallback_function=cached_rates,  # called with the call's arguments, while open only
)
def rates_before() -> dict[str, object]:
    return service.rates()


# --8<-- [end:before]

# -- after: resilio ------------------------------------------------------------------
# --8<-- [start:after]
clock = ManualClock()  # virtual time: the open timeout passes at once
breaker = CircuitBreaker(
    name="rates",
    failure_threshold=3,  # failure_threshold=3
    failure_rate_threshold=1.0,  # circuitbreaker has no failure-rate rule: turn it off
    success_threshold=1,  # one good call closes it, as in circuitbreaker
    open_timeout=0.2,  # recovery_timeout=0.2
    failure_on=ConnectionError,  # expected_exception=ConnectionError
    clock=clock,
)
# fallback_function: a Fallback outside the breaker that answers its rejections only,
# so a failure while closed still reaches the caller, as in circuitbreaker.
fallback = Fallback(lambda error: cached_rates(), on=CircuitOpenError)


@compose(fallback, breaker)
def rates_after() -> dict[str, object]:
    return service.rates()


# --8<-- [end:after]


def attempt(name: str, call: Callable[[], object]) -> None:
    try:
        print(f"  {name} -> {call()!r}")
    except Exception as error:
        print(f"  {name} -> {type(error).__name__}: {error}")


# --8<-- [start:registry]
def breaker_for_before(host: str) -> circuitbreaker.CircuitBreaker:
    """circuitbreaker: one breaker per host, registered by name, kept forever."""
    found = circuitbreaker.CircuitBreakerMonitor.get(host)
    if found is None:
        found = circuitbreaker.CircuitBreaker(name=host, failure_threshold=2)
        circuitbreaker.CircuitBreakerMonitor.register(found)
    return found


# resilio: one breaker per host, made on first use; beyond 1,000 hosts the least
# recently used breaker is dropped, and so is one unused for ten minutes.
breakers = Keyed(
    lambda host: CircuitBreaker(name=host, failure_threshold=2, clock=clock),
    max_keys=1_000,
    idle_timeout=600.0,
    clock=clock,
)
# --8<-- [end:registry]


def fail() -> None:
    raise ConnectionError("connection refused")


def main() -> None:
    print("1. Three failures open both breakers; each failure reaches the caller:")
    for _ in range(3):
        attempt("circuitbreaker", rates_before)
        attempt("resilio       ", rates_after)

    print("2. While open, both answer from the cache without calling the service:")
    attempt("circuitbreaker", rates_before)
    attempt("resilio       ", rates_after)
    monitor = circuitbreaker.CircuitBreakerMonitor
    print(f"  last failure: circuitbreaker {monitor.get('rates').last_failure!r}")
    print(f"                resilio        {breaker.snapshot().last_failure!r}")

    print("3. After the recovery timeout the service is back; one call closes them:")
    service.up = True
    time.sleep(0.21)  # circuitbreaker reads the real clock
    clock.advance(0.21)  # resilio reads its own
    attempt("circuitbreaker", rates_before)
    attempt("resilio       ", rates_after)
    print(f"  states: circuitbreaker {monitor.get('rates').state}, resilio {breaker.state.value}")
    print(f"  last failure: circuitbreaker {monitor.get('rates').last_failure!r} (cleared),")
    print(f"                resilio        {breaker.snapshot().last_failure!r} (kept)")

    print("4. One breaker per host; two failures open the one for b.example only:")
    for host in ("a.example", "b.example", "b.example"):
        try:
            breaker_for_before(host).call(fail if host == "b.example" else service.rates)
        except ConnectionError:
            pass
        try:
            breakers[host].call(fail if host == "b.example" else service.rates)
        except ConnectionError:
            pass
    opened = sorted(b.name for b in monitor.get_open() if b.name.endswith(".example"))
    print(f"  circuitbreaker open: {opened}")
    print(f"  resilio open:        {[h for h, b in breakers if b.state is CircuitState.OPEN]}")


if __name__ == "__main__":
    main()
