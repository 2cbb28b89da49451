"""Short fallback snippets that the Fallback page shows, each run here so they stay true.

Run it with ``python examples/fallback_snippets.py``.
"""

from __future__ import annotations

import anyio

from resilio import CircuitBreaker, CircuitOpenError, Fallback, ManualClock, Retry, compose

clock = ManualClock()  # virtual time: the retries of lookup() sleep on it, instantly

# --8<-- [start:call-site]
cached_prices = {"sku-1": 9.5}  # filled by earlier successful calls


async def fetch_price(sku: str) -> float:
    raise ConnectionError("pricing API unreachable")


async def price(sku: str) -> float:
    return await Fallback(lambda exc: cached_prices[sku]).call_async(fetch_price, sku)
    # --8<-- [end:call-site]


def cached(exc: Exception) -> str:
    return "cached"


# --8<-- [start:order]
policy = compose(Fallback(cached), Retry(), CircuitBreaker())
# --8<-- [end:order]


# --8<-- [start:migrate]
# circuitbreaker's @circuit(fallback_function=...): an answer while the circuit is open
@compose(Fallback(lambda exc: "closed for now", on=CircuitOpenError), CircuitBreaker())
def opening_hours() -> str:
    return "9 to 5"


# tenacity's retry_error_callback, backoff's raise_on_giveup=False: None once the
# retries give up; an error the retry does not retry is raised, as there
@compose(
    Fallback(lambda exc: None, on=ConnectionError),
    Retry(on=ConnectionError, attempts=3, clock=clock),
)
def lookup(key: str) -> str | None:
    raise ConnectionError(f"cannot look up {key}")
    # --8<-- [end:migrate]


def main() -> None:
    print(f"await price('sku-1') = {anyio.run(price, 'sku-1')}")
    print(f"policy.call(opening_hours) = {policy.call(opening_hours)!r}")
    print(f"opening_hours() = {opening_hours()!r}")
    print(f"lookup('x') = {lookup('x')!r}")


if __name__ == "__main__":
    main()
