"""Static checks of Fallback's types; never executed, checked by ``mypy --strict tests/typing``.

The ``# type: ignore[...]`` lines are deliberate misuse: with ``warn_unused_ignores``
(part of ``--strict``) mypy fails if they stop being errors.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from typing_extensions import assert_type

from resilio import CircuitBreaker, Fallback, Retry, compose


def cached(exc: Exception) -> float:
    """A sync handler."""
    return 0.0


async def cached_async(exc: Exception) -> float:
    """An async handler."""
    return 0.0


def on_connection(exc: ConnectionError) -> float:
    """A handler that only ever sees the exceptions ``on=`` names."""
    return float(exc.errno or 0)


# The handler's value type is the Fallback's parameter, sync or async alike.
assert_type(Fallback(cached), Fallback[float])
assert_type(Fallback(cached_async), Fallback[float])
assert_type(Fallback(lambda exc: None), Fallback[None])
assert_type(Fallback(on_connection, on=ConnectionError), Fallback[float])
assert_type(
    Fallback(on_connection, on=(ConnectionRefusedError, ConnectionResetError)), Fallback[float]
)
assert_type(Fallback(cached, on=lambda exc: isinstance(exc, OSError)), Fallback[float])
assert_type(Fallback(cached, on=Exception, name="n"), Fallback[float])

# A handler that takes a narrower exception than on= can deliver is an error.
Fallback(on_connection)  # type: ignore[arg-type]
Fallback(on_connection, on=OSError)  # type: ignore[arg-type]
Fallback(on_connection, on=lambda exc: True)  # type: ignore[arg-type]
Fallback(cached, on="ValueError")  # type: ignore[call-overload]
Fallback(cached, nme="x")  # type: ignore[call-overload]


@Fallback(cached)
def price(sku: str, *, currency: str = "EUR") -> float:
    """A decorated def."""
    return 1.0


@Fallback(cached_async)
async def price_async(sku: str) -> float:
    """A decorated async def."""
    return 1.0


@Fallback(lambda exc: None)
def maybe(sku: str) -> int:
    """A decorated def whose handler returns another type."""
    return 1


@Fallback(lambda exc: None)
async def maybe_async(sku: str) -> int:
    """A decorated async def whose handler returns another type."""
    return 1


# Parameters are kept; the return type is the function's or the handler's.
keep: Callable[[str], float] = price
assert_type(price("a"), float)
assert_type(price("a", currency="USD"), float)
assert_type(maybe("a"), int | None)
keep_async: Callable[[str], Coroutine[Any, Any, float]] = price_async
keep_maybe_async: Callable[[str], Coroutine[Any, Any, int | None]] = maybe_async
wrong_maybe_async: Callable[[str], Coroutine[Any, Any, int]] = maybe_async  # type: ignore[assignment]
price(1)  # type: ignore[arg-type]
price("a", cur="USD")  # type: ignore[call-arg]
not_an_int: int = maybe("a")  # type: ignore[assignment]


def plain(sku: str) -> int:
    """An undecorated def, for call()."""
    return 1


async def aplain(sku: str) -> int:
    """An undecorated async def, for call_async()."""
    return 1


fallback = Fallback(cached)
assert_type(fallback.call(plain, "a"), int | float)
assert_type(fallback.name, str)
fallback.call(plain, 1)  # type: ignore[arg-type]


async def use_async() -> None:
    """call_async keeps the arguments and joins the return types."""
    assert_type(await fallback.call_async(aplain, "a"), int | float)
    await fallback.call_async(aplain, 1)  # type: ignore[arg-type]


# It composes like every primitive.
policy = compose(Fallback(cached), Retry(), CircuitBreaker())
assert_type(policy(plain)("a"), int)
