"""Both rate limiters against reference models, driven by hypothesis.

Random sequences of ``try_acquire(n)``, fractional clock advances, ``set_rate``,
``set_capacity`` and ``reset`` run on a real bucket and on a few lines of arithmetic
that say what it must do: a token count for the TokenBucket, the time of the next
free slot for the LeakyBucket, and for both the counts ``stats()`` reports, which no
reset lowers. Outcomes within float noise of the boundary may go either way; the
model then follows the bucket.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from resilio import EventBus, LeakyBucket, ManualClock, RateLimited, TokenBucket

SETTINGS = settings(max_examples=100, stateful_step_count=40, deadline=None)
NOISE = 1e-6  # outcomes this close to the boundary may go either way

rates = st.floats(min_value=0.1, max_value=100.0)
capacities = st.floats(min_value=1.0, max_value=50.0)
steps = st.one_of(
    st.floats(min_value=0.0, max_value=5.0),
    st.sampled_from([0.0, 0.1, 0.25, 1 / 3, 1.0]),
)
fractions = st.floats(min_value=0.0, max_value=1.0)
# How far from an exact turn a clock step may land: the float dust of real arithmetic.
dusts = st.sampled_from([-5e-10, -1e-12, -1e-16, 0.0, 1e-16, 1e-12, 5e-10])


class TokenBucketMachine(RuleBasedStateMachine):
    """A TokenBucket next to a float model of its token count."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        bus = EventBus()
        self.refusals: list[RateLimited] = []
        bus.subscribe(RateLimited, self.refusals.append)
        self.bus = bus
        self.bucket: TokenBucket | None = None
        self.rate = 1.0
        self.capacity = 1.0
        self.tokens = 1.0
        self.granted = 0
        self.granted_tokens = 0.0
        self.refused = 0

    @initialize(rate=rates, capacity=capacities)
    def build(self, rate: float, capacity: float) -> None:
        self.bucket = TokenBucket(rate, capacity, clock=self.clock, bus=self.bus)
        self.rate, self.capacity, self.tokens = rate, capacity, capacity

    def built(self) -> TokenBucket:
        assert self.bucket is not None
        return self.bucket

    @rule(fraction=fractions)
    def try_acquire(self, fraction: float) -> None:
        n = min(self.capacity, 1.0 + fraction * (self.capacity - 1.0))
        before = len(self.refusals)
        got = self.built().try_acquire(n)
        if abs(self.tokens - n) > NOISE:
            assert got == (self.tokens > n)
        self.count(n, got)
        if got:
            self.tokens = max(0.0, self.tokens - n)
            assert len(self.refusals) == before
        else:
            (event,) = self.refusals[before:]
            assert event.rejected
            assert event.amount == n
            assert event.at == self.clock.monotonic()
            expected = max(0.0, n - self.tokens) / self.rate
            assert event.retry_after == pytest.approx(expected, rel=1e-6, abs=NOISE / self.rate)

    @rule()
    def try_acquire_one(self) -> None:
        """The fast path: one token, asked as the int 1."""
        got = self.built().try_acquire()
        if abs(self.tokens - 1.0) > NOISE:
            assert got == (self.tokens > 1.0)
        self.count(1, got)
        if got:
            self.tokens = max(0.0, self.tokens - 1.0)

    def count(self, n: float, got: bool) -> None:
        if got:
            self.granted += 1
            self.granted_tokens += n
        else:
            self.refused += 1

    @rule(seconds=steps)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.tokens = min(self.capacity, self.tokens + seconds * self.rate)

    @rule(fraction=fractions, dust=dusts)
    def advance_to_a_turn(self, fraction: float, dust: float) -> None:
        """Move the clock to within float dust of the moment a request of n can be met."""
        n = min(self.capacity, 1.0 + fraction * (self.capacity - 1.0))
        seconds = max(0.0, (n - self.tokens) / self.rate + dust)
        self.clock.advance(seconds)
        self.tokens = min(self.capacity, self.tokens + seconds * self.rate)

    @rule(rate=rates)
    def set_rate(self, rate: float) -> None:
        self.built().set_rate(rate)
        self.rate = rate

    @rule(capacity=capacities)
    def set_capacity(self, capacity: float) -> None:
        self.built().set_capacity(capacity)
        self.capacity = capacity
        self.tokens = min(self.tokens, capacity)

    @rule()
    def reset(self) -> None:
        """A reset fills the bucket, whatever its level, and publishes nothing."""
        before = len(self.refusals)
        self.built().reset()
        self.tokens = self.capacity
        assert len(self.refusals) == before

    @precondition(lambda self: self.bucket is not None)
    @invariant()
    def level_matches_the_model(self) -> None:
        bucket = self.built()
        assert bucket.available == pytest.approx(self.tokens, rel=1e-9, abs=NOISE)
        assert 0.0 <= bucket.available <= self.capacity
        assert " -" not in repr(bucket)  # never a negative level, not even -0.00
        assert (bucket.rate, bucket.capacity, bucket.waiting) == (self.rate, self.capacity, 0)

    @precondition(lambda self: self.bucket is not None)
    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.built().stats()
        assert (stats.granted, stats.refused, stats.cancelled) == (self.granted, self.refused, 0)
        assert stats.tokens == pytest.approx(self.granted_tokens, rel=1e-9)
        assert stats.refused == len(self.refusals)
        assert stats.available == pytest.approx(self.tokens, rel=1e-9, abs=NOISE)
        assert (stats.waited, stats.wait_max, stats.waiting) == (0.0, 0.0, 0)
        assert (stats.rate, stats.capacity) == (self.rate, self.capacity)


class LeakyBucketMachine(RuleBasedStateMachine):
    """A LeakyBucket next to a model of the time of its next free slot."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        bus = EventBus()
        self.refusals: list[RateLimited] = []
        bus.subscribe(RateLimited, self.refusals.append)
        self.bus = bus
        self.bucket: LeakyBucket | None = None
        self.rate = 1.0
        self.capacity = 1.0
        self.next_slot = 0.0
        self.granted = 0
        self.granted_tokens = 0.0
        self.refused = 0

    @initialize(rate=rates, capacity=capacities)
    def build(self, rate: float, capacity: float) -> None:
        self.bucket = LeakyBucket(rate, capacity, clock=self.clock, bus=self.bus)
        self.rate, self.capacity = rate, capacity

    def built(self) -> LeakyBucket:
        assert self.bucket is not None
        return self.bucket

    @rule(fraction=fractions)
    def try_acquire(self, fraction: float) -> None:
        n = min(self.capacity, 1.0 + fraction * (self.capacity - 1.0))
        now = self.clock.monotonic()
        before = len(self.refusals)
        got = self.built().try_acquire(n)
        if abs(now - self.next_slot) > NOISE:
            assert got == (now > self.next_slot)
        self.count(n, got)
        if got:
            self.next_slot = max(now, self.next_slot) + n / self.rate
            assert len(self.refusals) == before
        else:
            (event,) = self.refusals[before:]
            assert event.rejected
            assert event.amount == n
            expected = max(0.0, self.next_slot - now)
            assert event.retry_after == pytest.approx(expected, rel=1e-6, abs=NOISE)

    @rule()
    def try_acquire_one(self) -> None:
        """The fast path: one slot, asked as the int 1."""
        now = self.clock.monotonic()
        got = self.built().try_acquire()
        if abs(now - self.next_slot) > NOISE:
            assert got == (now > self.next_slot)
        self.count(1, got)
        if got:
            self.next_slot = max(now, self.next_slot) + 1 / self.rate

    def count(self, n: float, got: bool) -> None:
        if got:
            self.granted += 1
            self.granted_tokens += n
        else:
            self.refused += 1

    @rule(seconds=steps)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(rate=rates)
    def set_rate(self, rate: float) -> None:
        """What is left of the promised gap is re-spaced at the new rate."""
        now = self.clock.monotonic()
        self.built().set_rate(rate)
        if self.next_slot > now:
            self.next_slot = now + (self.next_slot - now) * self.rate / rate
        self.rate = rate

    @rule(capacity=capacities)
    def set_capacity(self, capacity: float) -> None:
        self.built().set_capacity(capacity)
        self.capacity = capacity

    @rule()
    def reset(self) -> None:
        """A reset makes the next slot now, and publishes nothing."""
        before = len(self.refusals)
        self.built().reset()
        self.next_slot = self.clock.monotonic()
        assert len(self.refusals) == before

    @precondition(lambda self: self.bucket is not None)
    @invariant()
    def queue_is_empty_and_free(self) -> None:
        bucket = self.built()
        assert (bucket.available, bucket.waiting) == (self.capacity, 0)
        assert (bucket.rate, bucket.capacity) == (self.rate, self.capacity)

    @precondition(lambda self: self.bucket is not None)
    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.built().stats()
        assert (stats.granted, stats.refused, stats.cancelled) == (self.granted, self.refused, 0)
        assert stats.tokens == pytest.approx(self.granted_tokens, rel=1e-9)
        assert stats.refused == len(self.refusals)
        assert (stats.available, stats.waiting) == (self.capacity, 0)
        assert (stats.waited, stats.wait_max) == (0.0, 0.0)
        assert (stats.rate, stats.capacity) == (self.rate, self.capacity)


class TestTokenBucketModel(TokenBucketMachine.TestCase):  # type: ignore[misc,name-defined]
    """try_acquire, advances, set_rate, set_capacity and reset keep the model's token count."""

    settings = SETTINGS


class TestLeakyBucketModel(LeakyBucketMachine.TestCase):  # type: ignore[misc,name-defined]
    """try_acquire, advances, set_rate, set_capacity and reset keep the model's next slot."""

    settings = SETTINGS
