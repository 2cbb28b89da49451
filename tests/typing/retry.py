"""Static checks of Retry's delay schedules, the retry counters and resilio.testing;
never executed, checked by ``mypy --strict tests/typing``.

The ``# type: ignore[...]`` lines are deliberate misuse: with ``warn_unused_ignores``
(part of ``--strict``) mypy fails if they stop being errors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from typing_extensions import assert_type

from resilio import BudgetStats, Retry, RetryBudget, RetryStats, retry
from resilio.backoff import Schedule, constant, exponential, linear
from resilio.testing import Instant, instant, is_instant, set_instant

assert_type(exponential(base=0.5, multiplier=2, max=30, min=timedelta(seconds=1)), Schedule)
assert_type(linear(start=1, step=timedelta(seconds=2)), Schedule)
assert_type(constant(timedelta(milliseconds=250)), Schedule)
assert_type(exponential()(3), float)

unbounded = Retry(attempts=None, timeout=timedelta(minutes=1))
scheduled = Retry(delay=exponential(base=1, max=60, min=0.5))
custom = Retry(delay=lambda attempt: 0.5 * attempt)
as_timedelta = Retry(delay=lambda attempt: timedelta(seconds=attempt))
decorator = retry(attempts=None, delay=constant(1))
assert_type(decorator, Retry)

Retry(delay=lambda attempt: "soon")  # type: ignore[arg-type,return-value]
Retry(delay=0.5)  # type: ignore[arg-type]
linear(start=1)  # type: ignore[call-arg]


@scheduled
def f(a: int, b: str = "") -> float:
    """A def retried on a custom schedule."""
    return float(a) + len(b)


kept: Callable[[int, str], float] = f
assert_type(f(1, b="x"), float)
f("1")  # type: ignore[arg-type]


@instant(attempts=2)
def test_sync(a: int, *, b: str) -> bytes:
    """A sync test in instant mode."""
    return bytes(a) + b.encode()


@instant
async def test_async(x: int) -> str:
    """An async test in instant mode, the bare decorator."""
    return str(x)


assert_type(test_sync(1, b="x"), bytes)
test_sync(1, "x")  # type: ignore[call-arg]


async def use() -> None:
    """The async test keeps its signature and its awaited result."""
    assert_type(await test_async(1), str)
    await test_async("1")  # type: ignore[arg-type]


assert_type(instant(), Instant)
assert_type(is_instant(), bool)
assert_type(set_instant(True, attempts=3), None)

with instant(attempts=3) as mode:
    assert_type(mode, Instant)

instant(attempts="2")  # type: ignore[call-overload]


# -- counters ----------------------------------------------------------------------

retry_stats = Retry().stats()
assert_type(retry_stats, RetryStats)
assert_type(retry_stats.calls, int)
assert_type(retry_stats.tries, int)
assert_type(retry_stats.retries, int)
assert_type(retry_stats.succeeded_without_retry, int)
assert_type(retry_stats.failed_with_retry, int)
assert_type(retry_stats.cancelled, int)
assert_type(retry_stats.exhausted, int)
assert_type(retry_stats.refused, int)
retry_stats.calls = 1  # type: ignore[misc]

assert_type(RetryBudget(name="db").name, str)
RetryBudget(name=1)  # type: ignore[arg-type]
budget_stats = RetryBudget().stats()
assert_type(budget_stats, BudgetStats)
assert_type(budget_stats.deposits, int)
assert_type(budget_stats.withdrawals, int)
assert_type(budget_stats.refusals, int)
assert_type(budget_stats.available, float)
budget_stats.available = 1.0  # type: ignore[misc]
