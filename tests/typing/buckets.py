"""Static checks of the buckets' ``per`` constructors, ``reset`` and ``stats``; never executed.

Checked by ``mypy --strict tests/typing``. The ``# type: ignore[...]`` lines are
deliberate misuse: with ``warn_unused_ignores`` (part of ``--strict``) mypy fails if
they stop being errors.
"""

from __future__ import annotations

from datetime import timedelta

from typing_extensions import assert_type

from resilio import EventBus, LeakyBucket, LimiterStats, ManualClock, TokenBucket


class Quota(TokenBucket):
    """A subclass: ``per`` builds one of these."""


class Relay(LeakyBucket):
    """A subclass: ``per`` builds one of these."""


assert_type(TokenBucket.per(100, 60), TokenBucket)
assert_type(TokenBucket.per(100, timedelta(minutes=1)), TokenBucket)
assert_type(TokenBucket.per(2.5, 1.0, capacity=5), TokenBucket)
assert_type(
    TokenBucket.per(
        10, 60, capacity=1, reject=True, name="api", clock=ManualClock(), bus=EventBus()
    ),
    TokenBucket,
)
assert_type(Quota.per(10, 60), Quota)
assert_type(LeakyBucket.per(100, timedelta(minutes=1)), LeakyBucket)
assert_type(LeakyBucket.per(4, 1, capacity=10, reject=False, name="relay"), LeakyBucket)
assert_type(Relay.per(10, 60), Relay)

assert_type(TokenBucket(1, 1).reset(), None)
assert_type(LeakyBucket(1, 1).reset(), None)

stats = TokenBucket(1, 1).stats()
assert_type(stats, LimiterStats)
assert_type(LeakyBucket(1, 1).stats(), LimiterStats)
assert_type(Quota.per(10, 60).stats(), LimiterStats)
assert_type(stats.granted, int)
assert_type(stats.tokens, float)
assert_type(stats.refused, int)
assert_type(stats.cancelled, int)
assert_type(stats.waited, float)
assert_type(stats.wait_max, float)
assert_type(stats.available, float)
assert_type(stats.waiting, int)
assert_type(stats.rate, float)
assert_type(stats.capacity, float)

TokenBucket.per("100", 60)  # type: ignore[arg-type]
LeakyBucket.per(100, "1m")  # type: ignore[arg-type]
TokenBucket.per(100, 60, 5)  # type: ignore[call-arg]
LeakyBucket.per(100, 60, burst=5)  # type: ignore[call-arg]
stats.granted = 1  # type: ignore[misc]
TokenBucket(1, 1).stats(True)  # type: ignore[call-arg]
