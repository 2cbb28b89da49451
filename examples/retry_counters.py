"""Retry counters: what a policy and its budget have done since they were built.

A stock lookup through a retry policy with a retry budget, on a ``ManualClock`` (a
blocking sleep moves it on at once) with exact delays, so the example runs instantly
and prints the same thing every time. Six calls meet a dependency that answers, fails
once, fails for good, and refuses an unknown item; the policy's ``stats()`` then
shows each call in one of resilience4j's four kinds, and the budget's shows the
first tries it counted and the retries it allowed and refused.

Run it with ``python examples/retry_counters.py``.
"""

from __future__ import annotations

import contextlib

from resilio import EventBus, ManualClock, Retry, RetryBudget

clock = ManualClock()
bus = EventBus()

# What the inventory service answers to each try, in order.
answers = iter(["12", "down", "7", "down", "down", "down", "down", "unknown", "3"])


# --8<-- [start:counters]
budget = RetryBudget(ratio=0.0, min_per_second=0.3, name="inventory", clock=clock)  # 3 in 10 s
inventory = Retry(
    name="inventory",
    on=ConnectionError,
    attempts=3,
    base_delay=0.2,
    jitter=None,
    budget=budget,
    clock=clock,
    bus=bus,
)


@inventory
def stock(item: str) -> int:
    answer = next(answers)
    if answer == "down":
        raise ConnectionError("inventory did not answer")
    if answer == "unknown":
        raise KeyError(item)  # not in on=: never retried
    return int(answer)


for item in ["apples", "pears", "plums", "figs", "kiwis", "limes"]:
    with contextlib.suppress(ConnectionError, KeyError):
        stock(item)

stats = inventory.stats()
print(f"calls={stats.calls} tries={stats.tries} retries={stats.retries}")
print(f"exhausted={stats.exhausted} refused={stats.refused} cancelled={stats.cancelled}")
for kind in (
    "succeeded_without_retry",
    "succeeded_with_retry",
    "failed_without_retry",
    "failed_with_retry",
):
    print(f"  {kind}: {getattr(stats, kind)}")
print(budget.stats())
# --8<-- [end:counters]

assert (stats.succeeded, stats.failed) == (3, 3)
assert budget.stats().deposits == stats.calls
assert budget.stats().withdrawals == stats.retries
