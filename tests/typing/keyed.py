"""Type checks for Keyed; checked by `mypy --strict tests/typing`, never run."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from resilio import CircuitBreaker, Keyed, Retry, TokenBucket, compose
from resilio._compose import Composed


def breaker_for(host: str) -> CircuitBreaker:
    return CircuitBreaker(name=f"db:{host}")


def check() -> None:
    # The key and primitive types come from an annotated factory.
    breakers = Keyed(breaker_for)
    assert_type(breakers, Keyed[str, CircuitBreaker])
    assert_type(breakers["primary"], CircuitBreaker)
    assert_type(breakers.get("primary"), CircuitBreaker | None)
    assert_type(breakers.pop("primary"), CircuitBreaker | None)
    assert_type(breakers.keys(), list[str])
    for host, breaker in breakers:
        assert_type(host, str)
        assert_type(breaker, CircuitBreaker)
    breakers[1]  # type: ignore[index]

    # A lambda's key is Any; the primitive type is still the lambda's.
    limits = Keyed(lambda client: TokenBucket(5, 10))
    assert_type(limits, Keyed[Any, TokenBucket])
    assert_type(limits[("tenant", 42)], TokenBucket)

    # Or say the key type.
    policies: Keyed[int, Composed] = Keyed(lambda n: compose(Retry(), CircuitBreaker()))
    assert_type(policies[3], Composed)

    # A factory must return a primitive.
    Keyed(lambda key: 42)  # type: ignore[type-var]

    # The decorator keeps the signature of def (and of async def, below).
    @breakers.guard(lambda host, path: host)
    def fetch(host: str, path: str) -> bytes:
        return b""

    assert_type(fetch("a", "/"), bytes)
    fetch("a", 1)  # type: ignore[arg-type]

    # key_fn returns the registry's key type.
    breakers.guard(lambda host: 1)  # type: ignore[arg-type,return-value]


async def check_async(breakers: Keyed[str, CircuitBreaker]) -> None:
    @breakers.guard(lambda host, **_: host)
    async def fetch(host: str, *, path: str) -> bytes:
        return b""

    assert_type(await fetch("a", path="/"), bytes)
    await fetch(1, path="/")  # type: ignore[arg-type]
