"""Static checks of the public types; never executed, checked by ``mypy --strict tests/typing``.

The two ``# type: ignore[arg-type]`` lines are deliberate misuse: with
``warn_unused_ignores`` (part of ``--strict``) mypy fails if they stop being errors.
"""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import assert_type

from resilio import CircuitBreaker, Composed, SlidingWindowBreaker, Timeout, TokenBucket, compose

breaker = CircuitBreaker()
sliding = SlidingWindowBreaker()


@CircuitBreaker()
def f(a: int, b: str = "") -> float:
    """A decorated def."""
    return float(a) + len(b)


@CircuitBreaker()
async def g(x: int) -> bytes:
    """A decorated async def."""
    return bytes(x)


@SlidingWindowBreaker()
def sf(a: int, b: str = "") -> float:
    """A def decorated by the sliding-window breaker."""
    return float(a) + len(b)


@SlidingWindowBreaker()
async def sg(x: int) -> bytes:
    """An async def decorated by the sliding-window breaker."""
    return bytes(x)


def plain(a: int, b: str = "") -> float:
    """An undecorated def, for call()."""
    return float(a)


async def aplain(x: int) -> bytes:
    """An undecorated async def, for call_async()."""
    return bytes(x)


# The decorated functions keep their signatures.
keep_f: Callable[[int, str], float] = f
keep_sf: Callable[[int, str], float] = sf
assert_type(f(1, "x"), float)
assert_type(f(1), float)
assert_type(f(1, b="x"), float)
assert_type(sf(1, "x"), float)


composed = compose(CircuitBreaker(), TokenBucket(1, 1))
assert_type(composed, Composed)


@composed
def cf(a: int, b: str = "") -> float:
    """A def decorated by a composed policy."""
    return float(a) + len(b)


@composed
async def cg(x: int) -> bytes:
    """An async def decorated by a composed policy."""
    return bytes(x)


@Timeout(1.0)
async def tg(x: int) -> bytes:
    """An async def decorated by a timeout."""
    return bytes(x)


keep_cf: Callable[[int, str], float] = cf
assert_type(cf(1, "x"), float)
assert_type(cf(1, b="x"), float)
assert_type(composed.call(plain, 1, b="x"), float)


async def check_async() -> None:
    """Awaiting the decorated coroutines and call_async gives the return types."""
    assert_type(await g(1), bytes)
    assert_type(await sg(1), bytes)
    assert_type(await breaker.call_async(g, 1), bytes)
    assert_type(await breaker.call_async(aplain, 1), bytes)
    assert_type(await sliding.call_async(sg, 1), bytes)
    assert_type(await sliding.call_async(aplain, x=1), bytes)
    async with breaker as entered:
        assert_type(entered, CircuitBreaker)
    async with sliding as sentered:
        assert_type(sentered, SlidingWindowBreaker)
    assert_type(await cg(1), bytes)
    assert_type(await tg(1), bytes)
    assert_type(await composed.call_async(aplain, 1), bytes)
    assert_type(await Timeout(1.0).call_async(aplain, x=1), bytes)
    async with composed as centered:
        assert_type(centered, Composed)
    async with Timeout(1.0) as tentered:
        assert_type(tentered, Timeout)


assert_type(breaker.call(f, 1, b="x"), float)
assert_type(breaker.call(plain, 1, b="x"), float)
assert_type(sliding.call(sf, 1, b="x"), float)
assert_type(sliding.call(plain, 1), float)

with breaker as entered:
    assert_type(entered, CircuitBreaker)

# Deliberate misuse: each line must stay a type error.
f("not an int")  # type: ignore[arg-type]
breaker.call(plain, "not an int", b="x")  # type: ignore[arg-type]
