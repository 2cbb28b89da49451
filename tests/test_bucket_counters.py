"""The counters of both rate limiters: ``stats()`` against what callers and subscribers saw.

A scripted run on a ManualClock makes requests that are admitted at once, wait,
time out, are cancelled, find a full queue or are refused outright; the counters
must equal the admissions the callers observed and the ``RateLimited`` events a
subscriber received, on asyncio and trio and from blocked threads. Counts are
cumulative: ``reset()`` and re-configuration never lower them. ``stats()`` never
takes the bucket's lock, and every bucket joins the registry of live primitives.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from bucket_lines import line_of, settle
from resilio import (
    Event,
    EventBus,
    LeakyBucket,
    LimiterStats,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    TokenBucket,
)
from resilio._registry import live

Bucket = TokenBucket | LeakyBucket
THREADS = 8


def rate_limited(events: list[Event]) -> tuple[int, int]:
    """How many RateLimited events refused at once, and how many made a request wait."""
    limited = [e for e in events if isinstance(e, RateLimited)]
    rejected = sum(e.rejected for e in limited)
    return rejected, len(limited) - rejected


def counts(stats: LimiterStats) -> tuple[int, float, int, int, float, float]:
    return (
        stats.granted,
        stats.tokens,
        stats.refused,
        stats.cancelled,
        stats.waited,
        stats.wait_max,
    )


async def af() -> int:
    return 1


class TestShape:
    def test_a_new_bucket_counts_nothing(self, clock: ManualClock, bus: EventBus) -> None:
        stats = TokenBucket(4, 8, clock=clock, bus=bus).stats()
        assert stats == LimiterStats(
            granted=0,
            tokens=0.0,
            refused=0,
            cancelled=0,
            waited=0.0,
            wait_max=0.0,
            available=8.0,
            waiting=0,
            rate=4.0,
            capacity=8.0,
        )
        leaky = LeakyBucket(4, 3, clock=clock, bus=bus).stats()
        assert (leaky.available, leaky.waiting, leaky.rate, leaky.capacity) == (3.0, 0, 4.0, 3.0)

    def test_stats_are_frozen_and_typed(self, clock: ManualClock, bus: EventBus) -> None:
        stats = TokenBucket(4, 8, clock=clock, bus=bus).stats()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.granted = 1  # type: ignore[misc]
        assert {type(stats.granted), type(stats.refused), type(stats.cancelled)} == {int}
        assert type(stats.tokens) is float

    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    def test_stats_never_wait_for_the_lock(
        self, kind: type[Bucket], clock: ManualClock, bus: EventBus
    ) -> None:
        """Read while another thread holds the bucket's lock: answered at once."""
        bucket = kind(4, 4, clock=clock, bus=bus)
        bucket.try_acquire()
        with bucket._lock:
            result: list[LimiterStats] = []
            reader = threading.Thread(target=lambda: result.append(bucket.stats()))
            reader.start()
            reader.join(timeout=5)
            assert not reader.is_alive()
        assert result[0].granted == 1

    def test_available_follows_the_refill(self, clock: ManualClock, bus: EventBus) -> None:
        bucket = TokenBucket(4, 8, clock=clock, bus=bus)
        assert bucket.try_acquire(8)
        assert bucket.stats().available == 0.0
        clock.advance(0.5)
        assert bucket.stats().available == 2.0 == bucket.available
        clock.advance(100)
        assert bucket.stats().available == 8.0


class TestScriptedRuns:
    @pytest.mark.anyio
    async def test_token_bucket(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Every way a request can end, each counted once, as the callers and events saw it."""
        bucket = TokenBucket(4, 4, clock=clock, bus=bus)
        assert bucket.try_acquire(4)  # granted at once: 4 tokens
        assert not bucket.try_acquire()  # refused at once
        with pytest.raises(RateLimitExceeded):
            await bucket.acquire(timeout=0.125)  # cannot be met in time: refused at once
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)  # waits 0.5
            c = await line.join("c", 1, timeout=10)
            await line.join("d", 1, timeout=1.0)  # due at 1.0 exactly: it may wait
            c.cancel()
            await settle()  # c: cancelled; d is now due at 0.75
            bucket.set_rate(2)  # re-timed: a at 1.0, d at 1.5, past its deadline
            await line.advance_to(1.0)
            await line.join("e")  # waits 0.5
            assert bucket.stats().waiting == 1
            await line.advance_to(1.5)
        assert line.served == [("a", 1.0), ("e", 1.5)]
        assert set(line.refused) == {"d"}
        assert line.cancelled == ["c"]
        clock.advance(2)  # full again: two guarded calls pass at once
        async with bucket:
            pass
        assert await bucket.call_async(af) == 1

        stats = bucket.stats()
        assert counts(stats) == (5, 9.0, 3, 1, 1.5, 1.0)
        rejected, queued = rate_limited(events)
        assert (rejected, queued) == (2, 4)  # a, c, d, e queued
        # What the callers saw: 5 through, 3 refused (2 at once, d after waiting), 1
        # cancelled; every queued request ended as a waited grant, a refusal or a
        # cancellation.
        assert stats.refused == rejected + len(line.refused)
        assert queued == len(line.served) + len(line.refused) + stats.cancelled
        assert (stats.waiting, stats.available, stats.rate) == (0, 2.0, 2.0)

    @pytest.mark.anyio
    async def test_leaky_bucket(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Slots, a full queue and a cancelled waiter, counted as the callers saw them."""
        bucket = LeakyBucket(4, 3, clock=clock, bus=bus)
        assert bucket.try_acquire()  # the slot at 0
        assert not bucket.try_acquire()  # the next is at 0.25: refused
        async with line_of(bucket, clock) as line:
            await line.join("a")  # 0.25
            b = await line.join("b")  # 0.5
            await line.join("c")  # 0.75: the queue of 3 is full
            with pytest.raises(RateLimitExceeded):
                await bucket.acquire()  # refused at once: no room
            assert bucket.stats().available == 0.0
            b.cancel()
            await settle()
            await line.run_to(0.25, 0.5)  # c takes b's slot
        assert line.served == [("a", 0.25), ("c", 0.5)]
        assert line.cancelled == ["b"]

        stats = bucket.stats()
        assert counts(stats) == (3, 3.0, 2, 1, 0.75, 0.5)
        rejected, queued = rate_limited(events)
        assert (rejected, queued) == (2, 3)
        assert queued == len(line.served) + stats.cancelled
        assert (stats.waiting, stats.available) == (0, 3.0)

    def test_blocking_acquires(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """The sync forms: the head thread moves the ManualClock; its waits are counted."""
        bucket = TokenBucket(4, 4, clock=clock, bus=bus)
        bucket.acquire_sync(4)
        bucket.acquire_sync(2)  # waits 0.5
        with pytest.raises(RateLimitExceeded):
            bucket.acquire_sync(timeout=0.125)  # refused at once
        with bucket:  # waits 0.25
            pass
        assert bucket.call(lambda: 7) == 7  # waits 0.25
        assert counts(bucket.stats()) == (4, 8.0, 1, 0, 1.0, 0.5)
        assert rate_limited(events) == (1, 3)

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    async def test_reject_mode(
        self, kind: type[Bucket], clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """``reject=True`` guard forms: each pass is granted, each refusal refused."""
        bucket = kind(1, 1, clock=clock, bus=bus, reject=True)
        decorated = bucket(af)
        assert await decorated() == 1
        with pytest.raises(RateLimitExceeded):
            await decorated()
        with pytest.raises(RateLimitExceeded), bucket:
            pass
        with pytest.raises(RateLimitExceeded):
            async with bucket:
                pass
        clock.advance(1)
        with bucket:
            pass
        assert counts(bucket.stats()) == (2, 2.0, 3, 0, 0.0, 0.0)
        assert rate_limited(events) == (3, 0)

    @pytest.mark.anyio
    async def test_a_request_the_capacity_can_no_longer_meet_is_refused(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        bucket = TokenBucket(1, 4, clock=clock, bus=bus)
        assert bucket.try_acquire(4)
        async with line_of(bucket, clock) as line:
            await line.join("big", 4)
            bucket.set_capacity(2)
            await settle()
        assert set(line.refused) == {"big"}
        assert counts(bucket.stats()) == (1, 4.0, 1, 0, 0.0, 0.0)

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    async def test_granted_in_the_instant_before_a_cancellation_counts_as_cancelled(
        self, kind: type[Bucket], clock: ManualClock, bus: EventBus
    ) -> None:
        """Its caller never went through, and what it took was given back."""
        bucket = kind(4, 4, clock=clock, bus=bus)
        assert bucket.try_acquire(4)
        async with line_of(bucket, clock) as line:
            head = await line.join("a")
            head.cancel()  # pending: a has not run since
            clock.advance(1)
            bucket.set_rate(4)  # re-dispatch: a is granted before it sees its cancellation
            assert bucket.stats().waiting == 0
            await settle()
        assert line.cancelled == ["a"]
        assert counts(bucket.stats()) == (1, 4.0, 0, 1, 0.0, 0.0)

    @pytest.mark.anyio
    async def test_cancelled_with_the_task_group(self, clock: ManualClock, bus: EventBus) -> None:
        bucket = LeakyBucket(4, 3, clock=clock, bus=bus)
        async with line_of(bucket, clock) as line:
            for name in "xabc":
                await line.join(name)
        assert line.served == [("x", 0.0)]
        assert counts(bucket.stats()) == (1, 1.0, 0, 3, 0.0, 0.0)
        assert bucket.stats().waiting == 0


class TestCumulative:
    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    def test_reset_and_reconfiguration_lower_nothing(
        self, kind: type[Bucket], clock: ManualClock, bus: EventBus
    ) -> None:
        bucket = kind(2, 2, clock=clock, bus=bus)
        bucket.acquire_sync(2)
        bucket.acquire_sync()  # waits
        assert not bucket.try_acquire()
        before = counts(bucket.stats())
        assert (before[0], before[2]) == (2, 1)
        assert before[4] > 0
        bucket.reset()
        bucket.set_rate(8)
        bucket.set_capacity(4)
        assert counts(bucket.stats()) == before
        assert bucket.try_acquire()
        after = counts(bucket.stats())
        assert (after[0], after[1]) == (3, before[1] + 1)
        assert (bucket.stats().rate, bucket.stats().capacity) == (8.0, 4.0)

    def test_fractional_amounts_sum_exactly(self, clock: ManualClock, bus: EventBus) -> None:
        bucket = TokenBucket(1, 5, clock=clock, bus=bus)
        for n in (0.5, 1, 1.0, 2.25):
            assert bucket.try_acquire(n)
        assert (bucket.stats().granted, bucket.stats().tokens) == (4, 4.75)


class TestThreads:
    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    def test_exact_totals_from_eight_threads(self, kind: type[Bucket], bus: EventBus) -> None:
        """Every form, from 8 threads at once, with a rate no loop can exhaust."""
        bucket = kind(1e12, 8, bus=bus)
        barrier = threading.Barrier(THREADS)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait(timeout=10)
                for i in range(500):
                    assert bucket.try_acquire()
                    assert bucket.try_acquire(2)
                    bucket.acquire_sync(0.5)
                    with bucket:
                        pass
                    if i % 100 == 0:
                        bucket.stats()  # reading races nothing
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        stats = bucket.stats()
        assert (stats.granted, stats.tokens) == (THREADS * 500 * 4, THREADS * 500 * 4.5)
        assert (stats.refused, stats.cancelled) == (0, 0)

    def test_exact_refusals_from_eight_threads(self, clock: ManualClock) -> None:
        """With no refill, exactly the capacity is granted; every other try is refused."""
        bus = EventBus()
        refusals: list[RateLimited] = []
        lock = threading.Lock()

        def seen(event: RateLimited) -> None:
            with lock:
                refusals.append(event)

        bus.subscribe(RateLimited, seen)
        bucket = TokenBucket(1, 100, clock=clock, bus=bus)
        got = [0] * THREADS

        def work(index: int) -> None:
            for _ in range(200):
                got[index] += bucket.try_acquire()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stats = bucket.stats()
        assert stats.granted == sum(got) == 100
        assert stats.refused == len(refusals) == THREADS * 200 - 100


class TestRegistry:
    @pytest.mark.parametrize("kind", [TokenBucket, LeakyBucket])
    def test_a_bucket_is_live_until_dropped(self, kind: Callable[..., Any]) -> None:
        bucket = kind(1, 1, name="registered", bus=EventBus())
        assert sum(p is bucket for p in live()) == 1  # tracked once
        per = kind.per(10, 60, name="registered-per", bus=EventBus())
        assert any(p is per for p in live())
        del bucket, per
        gc.collect()
        assert not any(getattr(p, "name", "").startswith("registered") for p in live())
