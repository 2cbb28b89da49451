"""TokenBucket: a full start and bursts, lazy refill, weighted and FIFO waiting, timeouts
that fail at once, cancellation that leaves nothing behind, live re-configuration,
``reject=True``, the guard forms, events, ``repr`` and configuration checks.

Time is a ManualClock throughout (rates are powers of two, so the arithmetic is exact);
tasks are ordered with ``anyio.wait_all_tasks_blocked()``, never with sleeps.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio

from bucket_lines import limited, line_of, settle
from resilio import (
    Event,
    EventBus,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    RejectedError,
    ResilioError,
    SystemClock,
    TokenBucket,
)

NAN = float("nan")
INF = float("inf")
BEFORE = 1e-6  # "just before" a turn: far more than the bucket's float slack


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., TokenBucket]:
    """Build a TokenBucket (4 tokens/s, capacity 4 unless told) on the test's clock and bus."""

    def factory(rate: float = 4.0, capacity: float = 4.0, **options: Any) -> TokenBucket:
        options.setdefault("name", "tb")
        return TokenBucket(rate, capacity, clock=clock, bus=bus, **options)

    return factory


def drain(bucket: TokenBucket) -> None:
    """Take every token of a full bucket."""
    assert bucket.try_acquire(bucket.capacity)
    assert bucket.available == 0


class TestBurst:
    def test_starts_full_and_allows_a_burst_of_capacity(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A new bucket admits `capacity` requests at once, then refuses the next."""
        bucket = make(capacity=5)
        assert bucket.available == 5
        assert [bucket.try_acquire() for _ in range(6)] == [True] * 5 + [False]
        assert bucket.available == 0
        assert clock.monotonic() == 0

    def test_capacity_one_allows_no_burst(self, make: Callable[..., TokenBucket]) -> None:
        """capacity=1 admits one request, then one per 1/rate."""
        bucket = make(capacity=1)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()

    def test_properties_and_defaults(self, clock: ManualClock) -> None:
        """rate, capacity, name (default "token-bucket") and waiting read back."""
        bucket = TokenBucket(2.5, 7, clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity, bucket.name, bucket.waiting) == (
            2.5,
            7,
            "token-bucket",
            0,
        )
        assert bucket.available == 7

    def test_burst_then_steady_rate(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """After the burst, exactly one request per 1/rate is admitted."""
        bucket = make(rate=4, capacity=3)
        admitted = 0
        for _ in range(20):
            while bucket.try_acquire():
                admitted += 1
            clock.advance(0.25)
        # the last advance is not used: 3 + 4 * 4.75 s
        assert admitted == 3 + 19


class TestRefill:
    def test_fractional_tokens(self, make: Callable[..., TokenBucket], clock: ManualClock) -> None:
        """Tokens accrue continuously: half a token is not enough, a whole one is."""
        bucket = make()
        drain(bucket)
        clock.advance(0.125)
        assert bucket.available == 0.5
        assert not bucket.try_acquire()
        assert bucket.try_acquire(0.5)
        assert bucket.available == 0
        clock.advance(0.375)
        assert bucket.available == 1.5
        assert bucket.try_acquire()
        assert bucket.available == 0.5

    def test_never_above_capacity(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """However long the bucket is idle, it holds at most `capacity` tokens."""
        bucket = make()
        drain(bucket)
        clock.advance(1000)
        assert bucket.available == 4
        assert bucket.try_acquire(4)
        assert not bucket.try_acquire(0.5)

    def test_time_spent_full_is_not_banked(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Idle time while full earns nothing: after draining, refill starts from zero."""
        bucket = make()
        clock.advance(100)
        drain(bucket)
        clock.advance(0.25)
        assert bucket.available == 1
        clock.advance(100)
        assert bucket.try_acquire(3)
        clock.advance(0.25)
        assert bucket.available == 2

    def test_many_small_steps_add_up(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Refill over a thousand tiny steps equals rate * elapsed."""
        bucket = make(rate=3, capacity=10)
        drain(bucket)
        for _ in range(1000):
            clock.advance(0.001)
            bucket.available  # noqa: B018 - each read refills lazily
        assert bucket.available == pytest.approx(3.0)

    def test_reading_available_does_not_change_the_level(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """`available` is a pure read: reading it often or rarely gives the same level."""
        often, rarely = make(), make()
        drain(often)
        drain(rarely)
        for _ in range(8):
            clock.advance(0.0625)
            often.available  # noqa: B018
        assert often.available == rarely.available == 2


class TestWeighted:
    def test_try_acquire_n(self, make: Callable[..., TokenBucket]) -> None:
        """try_acquire(n) takes n tokens or none."""
        bucket = make()
        assert bucket.try_acquire(3)
        assert bucket.available == 1
        assert not bucket.try_acquire(2)
        assert bucket.available == 1
        assert bucket.try_acquire(1)

    def test_n_equal_to_capacity_is_allowed(self, make: Callable[..., TokenBucket]) -> None:
        """A request for exactly `capacity` is fine."""
        bucket = make(capacity=4)
        assert bucket.try_acquire(4)

    @pytest.mark.anyio
    async def test_acquire_n_waits_for_n_tokens(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire(3) on an empty bucket at 4/s is served at 0.75 s."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 3)
            await line.advance_to(0.5)
            assert line.served == []
            await line.advance_to(0.75)
            assert line.served == [("a", 0.75)]
        assert bucket.available == 0

    def test_acquire_sync_n_advances_exactly(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire_sync(3) on an empty bucket at 4/s moves a ManualClock by 0.75 s."""
        bucket = make()
        drain(bucket)
        bucket.acquire_sync(3)
        assert clock.monotonic() == 0.75
        assert bucket.available == 0


BAD_AMOUNTS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (NAN, ValueError),
    (INF, ValueError),
    (4.5, ValueError),
    (5, ValueError),
    ("1", TypeError),
    (None, TypeError),
    ([1], TypeError),
    (False, TypeError),
    (Decimal(2), TypeError),
]


class TestAmountChecks:
    @pytest.mark.parametrize(("n", "error"), BAD_AMOUNTS)
    def test_try_acquire_rejects_bad_n(
        self, make: Callable[..., TokenBucket], n: Any, error: type[Exception]
    ) -> None:
        """try_acquire refuses a bad n, naming 'n', and takes nothing."""
        bucket = make()
        with pytest.raises(error, match="'n'"):
            bucket.try_acquire(n)
        assert bucket.available == 4

    @pytest.mark.parametrize(("n", "error"), BAD_AMOUNTS)
    def test_acquire_sync_rejects_bad_n(
        self, make: Callable[..., TokenBucket], n: Any, error: type[Exception], clock: ManualClock
    ) -> None:
        """acquire_sync refuses a bad n, naming 'n', without waiting."""
        bucket = make()
        drain(bucket)
        with pytest.raises(error, match="'n'"):
            bucket.acquire_sync(n)
        assert clock.monotonic() == 0
        assert bucket.waiting == 0

    @pytest.mark.anyio
    @pytest.mark.parametrize(("n", "error"), BAD_AMOUNTS)
    async def test_acquire_rejects_bad_n(
        self, make: Callable[..., TokenBucket], n: Any, error: type[Exception]
    ) -> None:
        """acquire refuses a bad n, naming 'n', without queueing."""
        bucket = make()
        drain(bucket)
        with pytest.raises(error, match="'n'"):
            await bucket.acquire(n)
        assert bucket.waiting == 0

    def test_too_large_names_the_capacity(self, make: Callable[..., TokenBucket]) -> None:
        """n > capacity is a ValueError that says what the capacity is."""
        with pytest.raises(ValueError, match=r"'n'.*4"):
            make().try_acquire(6)

    @pytest.mark.parametrize(
        "n", [True, Fraction(1), Decimal(1)], ids=["True", "Fraction", "Decimal"]
    )
    def test_odd_types_equal_to_one_are_refused_too(
        self, make: Callable[..., TokenBucket], n: Any
    ) -> None:
        """A non-number equal to 1 (True, Fraction(1), Decimal(1)) is a TypeError naming 'n'."""
        bucket = make()
        with pytest.raises(TypeError, match="'n'"):
            bucket.try_acquire(n)
        assert bucket.available == 4


@pytest.mark.anyio
class TestWaiting:
    async def test_woken_exactly_when_the_request_can_be_met(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Just before its turn a waiter still waits; at the exact time it is served."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            assert bucket.waiting == 1
            await line.advance_to(0.5 - BEFORE)
            assert line.served == []
            assert bucket.waiting == 1
            await line.advance_to(0.5)
            assert line.served == [("a", 0.5)]
            assert bucket.waiting == 0
        assert bucket.available == 0

    async def test_served_in_arrival_order(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Waiters are served one per 1/rate, in the order they arrived."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            for name in "abcde":
                await line.join(name)
            assert bucket.waiting == 5
            for step in range(1, 6):
                await line.advance_to(step * 0.25)
            assert line.served == [(name, (i + 1) * 0.25) for i, name in enumerate("abcde")]

    async def test_big_request_is_not_starved_by_small_ones(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A request for the whole capacity queued first goes before small ones behind it."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("big", 4)
            await line.join("b", 1)
            await line.join("c", 1)
            for when in (0.25, 0.5, 0.75, 1.0 - BEFORE):
                await line.advance_to(when)
                assert line.served == []  # enough for b long ago, but big is first
            await line.advance_to(1.0)
            assert line.served == [("big", 1.0)]
            await line.advance_to(1.25)
            await line.advance_to(1.5)
            assert line.served == [("big", 1.0), ("b", 1.25), ("c", 1.5)]

    async def test_try_acquire_does_not_jump_the_queue(
        self, make: Callable[..., TokenBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """With a waiter queued, try_acquire refuses even though tokens are there."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.advance_to(0.25)
            assert bucket.available == 1
            assert not bucket.try_acquire(1)
            # a's 2 and this 1, with 1 in the bucket: 2 more tokens, 0.5 s
            assert limited(events)[-1] == (1, 0.5, True, 0.25)
            assert bucket.available == 1
            await line.advance_to(0.5)
            assert line.served == [("a", 0.5)]

    async def test_a_new_acquire_queues_behind_the_waiter(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire() does not take tokens that a queued waiter is waiting for."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.advance_to(0.25)
            await line.join("b", 1)  # one token is there, but a is first
            assert line.served == []
            assert bucket.waiting == 2
            await line.advance_to(0.5)
            await line.advance_to(0.75)
            assert line.served == [("a", 0.5), ("b", 0.75)]

    async def test_acquire_with_tokens_returns_without_waiting(
        self, make: Callable[..., TokenBucket], events: list[Event]
    ) -> None:
        """acquire() on a bucket with tokens takes them at once and publishes nothing."""
        bucket = make()
        await bucket.acquire(3)
        await bucket.acquire()
        assert bucket.available == 0
        assert limited(events) == []

    async def test_idle_bucket_after_waiters_refills_to_capacity(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Once the queue is empty the bucket refills up to capacity again."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a")
            await line.advance_to(0.25)
            assert line.served == [("a", 0.25)]
        clock.advance(10)
        assert bucket.available == 4


@pytest.mark.anyio
class TestTimeout:
    async def test_timeout_that_cannot_be_met_fails_at_once(
        self, make: Callable[..., TokenBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """acquire(timeout=) too short raises at once with the wait it would have needed."""
        bucket = make()
        drain(bucket)
        with anyio.fail_after(5):  # a wait on the ManualClock would never end
            with pytest.raises(RateLimitExceeded) as info:
                await bucket.acquire(2, timeout=0.25)
        assert info.value.retry_after == 0.5
        assert info.value.name == "tb"
        assert clock.monotonic() == 0
        assert bucket.waiting == 0
        assert bucket.available == 0
        assert limited(events) == [(2, 0.5, True, 0.0)]

    async def test_retry_after_counts_queued_demand(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """The wait a refused request needed includes everything queued ahead of it."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.join("b", 1)
            with pytest.raises(RateLimitExceeded) as info:
                await bucket.acquire(1, timeout=0.5)
            assert info.value.retry_after == 1.0  # 2 + 1 + 1 tokens at 4/s
            assert bucket.waiting == 2
            await line.join("c", 1, timeout=1.0)  # exactly the wait: accepted
            assert bucket.waiting == 3
            for step in (0.25, 0.5, 0.75, 1.0):
                await line.advance_to(step)
            assert line.served == [("a", 0.5), ("b", 0.75), ("c", 1.0)]

    async def test_timeout_that_can_be_met_waits_and_succeeds(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A generous timeout waits for the turn and succeeds."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2, timeout=3.0)
            await line.advance_to(0.5 - BEFORE)
            assert line.served == []
            await line.advance_to(0.5)
            assert line.served == [("a", 0.5)]
            assert line.refused == {}
        assert clock.sleepers == 0

    async def test_timeout_equal_to_the_wait_succeeds(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A timeout exactly as long as the wait is met."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 1, timeout=0.25)
            await line.advance_to(0.25)
            assert line.served == [("a", 0.25)]

    async def test_timeout_zero(self, make: Callable[..., TokenBucket], clock: ManualClock) -> None:
        """timeout=0 takes tokens that are there and otherwise fails at once."""
        bucket = make()
        await bucket.acquire(4, timeout=0)
        with pytest.raises(RateLimitExceeded) as info:
            await bucket.acquire(1, timeout=0)
        assert info.value.retry_after == 0.25
        assert bucket.waiting == 0
        clock.advance(0.25)
        await bucket.acquire(1, timeout=0)

    async def test_infinite_timeout_waits_as_long_as_it_takes(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """timeout=inf behaves like no timeout."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 1)
            await line.join("b", 4, timeout=INF)
            await line.advance_to(0.25)
            await line.advance_to(1.25)
            assert line.served == [("a", 0.25), ("b", 1.25)]

    @pytest.mark.parametrize(
        ("timeout", "error"), [(-1, ValueError), (NAN, ValueError), ("1", TypeError)]
    )
    async def test_bad_timeout(
        self, make: Callable[..., TokenBucket], timeout: Any, error: type[Exception]
    ) -> None:
        """A negative, NaN or non-number timeout is refused, naming 'timeout'."""
        bucket = make()
        with pytest.raises(error, match="'timeout'"):
            await bucket.acquire(1, timeout=timeout)
        with pytest.raises(error, match="'timeout'"):
            bucket.acquire_sync(1, timeout=timeout)
        assert bucket.available == 4

    async def test_set_rate_slower_times_out_a_queued_deadline(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A rate cut that makes a queued deadline unreachable fails the waiter by it."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2, timeout=1.0)
            bucket.set_rate(1)  # now 2 s away
            await settle()
            await line.advance_to(1.0)
            assert "a" in line.refused
            assert bucket.waiting == 0
            assert line.served == []
        assert bucket.available == 1  # nothing was taken


class TestSyncTimeout:
    def test_unmeetable_timeout_fails_at_once(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire_sync(timeout=) too short raises at once; the clock does not move."""
        bucket = make()
        drain(bucket)
        with pytest.raises(RateLimitExceeded) as info:
            bucket.acquire_sync(3, timeout=0.5)
        assert info.value.retry_after == 0.75
        assert clock.monotonic() == 0
        assert bucket.waiting == 0

    def test_meetable_timeout_advances_and_succeeds(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire_sync with enough timeout moves the ManualClock to its turn."""
        bucket = make()
        drain(bucket)
        bucket.acquire_sync(2, timeout=0.5)
        assert clock.monotonic() == 0.5
        bucket.acquire_sync(1, timeout=10)
        assert clock.monotonic() == 0.75

    def test_timeout_a_hair_under_the_wait_does_not_hang(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A timeout within float slack of the wait (accepted) is served, not stuck forever."""
        bucket = make()
        drain(bucket)
        outcome: list[str] = []

        def attempt() -> None:
            try:
                bucket.acquire_sync(1, timeout=0.25 - 1e-10)
                outcome.append("served")
            except RateLimitExceeded:
                outcome.append("refused")

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(0.5)
        assert not worker.is_alive(), "acquire_sync blocked forever on the ManualClock"
        assert outcome in (["served"], ["refused"])

    def test_infinite_timeout_on_the_system_clock(self) -> None:
        """acquire_sync(timeout=inf) behind another waiter waits, it does not overflow."""
        bucket = TokenBucket(50, 1, bus=EventBus())
        assert bucket.try_acquire()
        errors: list[BaseException] = []

        def head() -> None:
            try:
                bucket.acquire_sync()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        first = threading.Thread(target=head)
        first.start()
        deadline = time.monotonic() + 5
        while bucket.waiting == 0 and first.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0005)
        try:
            bucket.acquire_sync(timeout=INF)
        finally:
            first.join(5)
        assert errors == []


@pytest.mark.anyio
class TestCancellation:
    async def test_cancel_during_acquire(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A waiter cancelled by its task group takes nothing and leaves no trace."""
        bucket = make()
        drain(bucket)
        acquired = False

        async def task(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            nonlocal acquired
            task_status.started()
            await bucket.acquire(2)
            acquired = True

        async with anyio.create_task_group() as tg:
            await tg.start(task)
            await settle()
            assert bucket.waiting == 1
            tg.cancel_scope.cancel()
        assert not acquired
        assert bucket.waiting == 0
        assert bucket.available == 0
        assert clock.sleepers == 0
        clock.advance(0.25)
        assert bucket.try_acquire()  # nobody in the way any more

    async def test_cancelling_the_head_serves_the_next_at_its_own_time(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """With the head cancelled, the next waiter is served as if the head never came."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            head = await line.join("a", 3)
            await line.join("b", 1)
            await line.join("c", 1)
            await line.advance_to(0.125)
            head.cancel()
            await settle()
            assert line.cancelled == ["a"]
            assert bucket.waiting == 2
            assert bucket.available == 0.5
            await line.advance_to(0.25 - BEFORE)
            assert line.served == []
            await line.advance_to(0.25)
            assert line.served == [("b", 0.25)]
            await line.advance_to(0.5)
            assert line.served == [("b", 0.25), ("c", 0.5)]
        assert bucket.available == 0

    async def test_cancelling_a_middle_waiter(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A cancelled waiter in the middle delays nobody behind it."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 1)
            middle = await line.join("b", 2)
            await line.join("c", 1)
            middle.cancel()
            await settle()
            assert line.cancelled == ["b"]
            assert bucket.waiting == 2
            await line.advance_to(0.25)
            await line.advance_to(0.5 - BEFORE)
            assert line.served == [("a", 0.25)]
            await line.advance_to(0.5)
            assert line.served == [("a", 0.25), ("c", 0.5)]
        assert bucket.waiting == 0

    async def test_cancelled_timed_waiter_leaves_no_timer(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Cancelling waiters with timeouts removes their clock timers too."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            first = await line.join("a", 1, timeout=5)
            second = await line.join("b", 1, timeout=5)
            assert clock.sleepers == 2  # the head's turn and b's deadline
            second.cancel()
            first.cancel()
            await settle()
            assert sorted(line.cancelled) == ["a", "b"]
        assert clock.sleepers == 0
        assert bucket.waiting == 0
        assert bucket.available == 0

    async def test_move_on_after_leaves_nothing_behind(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A wait abandoned by move_on_after (real time; the virtual clock stands still)."""
        bucket = make()
        drain(bucket)
        with anyio.move_on_after(0.002) as scope:
            await bucket.acquire(1)
        assert scope.cancelled_caught
        assert bucket.waiting == 0
        assert clock.sleepers == 0
        clock.advance(0.25)
        assert bucket.try_acquire()

    async def test_granted_and_cancelled_in_the_same_instant_gives_tokens_back(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A waiter served while its cancellation is pending returns its tokens."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            head = await line.join("a", 2)  # turn at 0.5
            await line.join("b", 3)
            head.cancel()  # pending: a has not run since
            clock.advance(0.5)
            bucket.set_rate(4)  # re-dispatch: a is granted before it sees its cancellation
            assert bucket.waiting == 1
            assert bucket.available == 0
            await settle()
            assert line.cancelled == ["a"]
            assert bucket.available == 2  # given back
            assert bucket.waiting == 1
            await line.advance_to(0.75 - BEFORE)
            assert line.served == []
            await line.advance_to(0.75)
            assert line.served == [("b", 0.75)]
        assert bucket.available == 0

    async def test_cancelling_everyone_restores_an_idle_bucket(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """After all waiters are cancelled the bucket refills to capacity as if idle."""
        bucket = make()
        drain(bucket)
        async with anyio.create_task_group() as tg:
            for n in (1, 2, 3, 4):
                tg.start_soon(bucket.acquire, n)
            await settle()
            assert bucket.waiting == 4
            tg.cancel_scope.cancel()
        assert bucket.waiting == 0
        assert clock.sleepers == 0
        clock.advance(1)
        assert bucket.available == 4
        assert bucket.try_acquire(4)


@pytest.mark.anyio
class TestSetRate:
    async def test_faster_rate_retimes_the_head(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Raising the rate mid-wait brings the head's turn forward at once."""
        bucket = make(rate=1)
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 4)  # at 1/s: t = 4
            await line.advance_to(1.0)  # 1 token so far
            bucket.set_rate(4)  # 3 more at 4/s: t = 1.75
            assert bucket.rate == 4
            await settle()
            await line.advance_to(1.75 - BEFORE)
            assert line.served == []
            await line.advance_to(1.75)
            assert line.served == [("a", 1.75)]

    async def test_slower_rate_retimes_the_head(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Lowering the rate mid-wait pushes the head's turn back; the old time passes quietly."""
        bucket = make(rate=4)
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 4)  # at 4/s: t = 1
            await line.join("b", 1)
            await line.advance_to(0.5)  # 2 tokens so far
            bucket.set_rate(0.5)  # 2 more at 0.5/s: t = 4.5
            await settle()
            await line.advance_to(1.0)
            await line.advance_to(4.5 - BEFORE)
            assert line.served == []
            await line.advance_to(4.5)
            assert line.served == [("a", 4.5)]
            await line.advance_to(6.5)
            assert line.served == [("a", 4.5), ("b", 6.5)]

    def test_rate_change_keeps_tokens_earned_at_the_old_rate(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Tokens accrued before set_rate are kept; the new rate applies from then on."""
        bucket = make(rate=2)
        drain(bucket)
        clock.advance(0.5)
        bucket.set_rate(4)
        clock.advance(0.25)
        assert bucket.available == 2


class TestSetCapacity:
    def test_trims_tokens(self, make: Callable[..., TokenBucket]) -> None:
        """A smaller capacity trims a fuller bucket at once."""
        bucket = make(capacity=10)
        bucket.set_capacity(3)
        assert bucket.capacity == 3
        assert bucket.available == 3
        with pytest.raises(ValueError, match="'n'"):
            bucket.try_acquire(4)
        assert bucket.try_acquire(3)

    def test_growing_starts_refilling_from_the_current_level(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A larger capacity does not fill the bucket; refill continues to the new cap."""
        bucket = make(capacity=4)
        clock.advance(100)
        bucket.set_capacity(8)
        assert bucket.available == 4
        clock.advance(0.5)
        assert bucket.available == 6
        clock.advance(100)
        assert bucket.available == 8

    @pytest.mark.anyio
    async def test_fails_queued_requests_above_the_new_capacity(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Queued requests larger than the new capacity fail; the rest are re-timed."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("big", 3)
            await line.join("b", 1)
            await line.join("huge", 4)
            await line.join("c", 2)
            bucket.set_capacity(2)
            await settle()
            assert sorted(line.refused) == ["big", "huge"]
            assert line.refused["big"].retry_after is None
            assert bucket.waiting == 2
            await line.advance_to(0.25)
            assert line.served == [("b", 0.25)]
            await line.advance_to(0.75)
            assert line.served == [("b", 0.25), ("c", 0.75)]


class TestAvailable:
    @pytest.mark.anyio
    async def test_reports_tokens_while_waiters_queue(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """available is the bucket's level now, including tokens a waiter will take."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 3)
            await line.advance_to(0.5)
            assert bucket.available == 2
            await line.advance_to(0.75)
            assert bucket.available == 0

    def test_never_negative_after_a_request_short_by_float_dust(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A request admitted a hair before its token is whole empties the bucket, no lower."""
        bucket = make(rate=1, capacity=1)
        assert bucket.try_acquire()
        clock.advance(0.9999999995)
        assert bucket.try_acquire()  # within the float slack of a whole token
        assert bucket.available == 0.0
        assert "0.00/1 tokens" in repr(bucket)
        assert "-" not in repr(bucket).replace("'tb'", "")
        clock.advance(0.5)
        assert bucket.available == pytest.approx(0.5)


def guarded_sync(bucket: TokenBucket, form: str, ran: list[str]) -> None:
    """Run one sync call through *form* of the guard."""

    def work(tag: str) -> str:
        ran.append(tag)
        return tag

    if form == "decorator":
        assert bucket(work)("x") == "x"
    elif form == "with":
        with bucket:
            work("x")
    else:
        assert bucket.call(work, "x") == "x"


async def guarded_async(bucket: TokenBucket, form: str, ran: list[str]) -> None:
    """Run one async call through *form* of the guard."""

    async def work(tag: str) -> str:
        ran.append(tag)
        return tag

    if form == "decorator":
        assert await bucket(work)("x") == "x"
    elif form == "async_with":
        async with bucket:
            await work("x")
    else:
        assert await bucket.call_async(work, "x") == "x"


SYNC_FORMS = ["decorator", "with", "call"]
ASYNC_FORMS = ["decorator", "async_with", "call_async"]


class TestGuard:
    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_sync_forms_take_one_token(
        self, make: Callable[..., TokenBucket], form: str, clock: ManualClock
    ) -> None:
        """Each sync guarded call takes one token; with none left it waits for the next."""
        bucket = make(capacity=2)
        ran: list[str] = []
        for _ in range(2):
            guarded_sync(bucket, form, ran)
        assert bucket.available == 0
        assert clock.monotonic() == 0
        guarded_sync(bucket, form, ran)  # waits: the ManualClock moves to the next token
        assert clock.monotonic() == 0.25
        assert ran == ["x"] * 3

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_async_forms_wait_for_a_token(
        self, make: Callable[..., TokenBucket], form: str, clock: ManualClock
    ) -> None:
        """Each async guarded call takes one token; with none left it waits for the next."""
        bucket = make(capacity=1)
        ran: list[str] = []
        await guarded_async(bucket, form, ran)
        async with anyio.create_task_group() as tg:
            tg.start_soon(guarded_async, bucket, form, ran)
            await settle()
            assert ran == ["x"]
            assert bucket.waiting == 1
            clock.advance(0.25)
        assert ran == ["x", "x"]

    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_reject_true_sync_forms_raise_at_once(
        self, make: Callable[..., TokenBucket], form: str, clock: ManualClock, events: list[Event]
    ) -> None:
        """With reject=True an empty bucket raises RateLimitExceeded and never runs the call."""
        bucket = make(reject=True, capacity=1)
        ran: list[str] = []
        guarded_sync(bucket, form, ran)
        with pytest.raises(RateLimitExceeded) as info:
            guarded_sync(bucket, form, ran)
        assert info.value.retry_after == 0.25
        assert ran == ["x"]
        assert clock.monotonic() == 0
        assert limited(events) == [(1, 0.25, True, 0.0)]
        clock.advance(0.25)
        guarded_sync(bucket, form, ran)
        assert ran == ["x", "x"]

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_reject_true_async_forms_raise_at_once(
        self, make: Callable[..., TokenBucket], form: str, clock: ManualClock, events: list[Event]
    ) -> None:
        """With reject=True the async forms raise at once too, without running the call."""
        bucket = make(reject=True, capacity=1)
        ran: list[str] = []
        await guarded_async(bucket, form, ran)
        with anyio.fail_after(5), pytest.raises(RateLimitExceeded) as info:
            await guarded_async(bucket, form, ran)
        assert info.value.retry_after == 0.25
        assert ran == ["x"]
        assert bucket.waiting == 0
        assert limited(events) == [(1, 0.25, True, 0.0)]

    @pytest.mark.anyio
    async def test_reject_true_does_not_jump_the_queue(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A reject=True guard refuses while acquire() waiters are queued, counting them."""
        bucket = make(reject=True)
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.advance_to(0.25)
            with pytest.raises(RateLimitExceeded) as info:
                bucket.call(lambda: None)
            assert info.value.retry_after == 0.5
            await line.advance_to(0.5)
            assert line.served == [("a", 0.5)]

    def test_reject_true_acquire_still_waits(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """reject=True changes the guard forms only: acquire_sync still waits."""
        bucket = make(reject=True, capacity=1)
        bucket.acquire_sync()
        bucket.acquire_sync()
        assert clock.monotonic() == 0.25

    def test_decorator_keeps_name_and_signature(self, make: Callable[..., TokenBucket]) -> None:
        """The decorator keeps the wrapped function's name, doc and signature."""
        bucket = make()

        def fetch(url: str, *, retries: int = 3) -> str:
            """Fetch it."""
            return url * retries

        async def fetch_async(url: str, *, retries: int = 3) -> str:
            """Fetch it later."""
            return url * retries

        for fn in (fetch, fetch_async):
            wrapped = bucket(fn)
            assert wrapped.__name__ == fn.__name__
            assert wrapped.__doc__ == fn.__doc__
            assert inspect.signature(wrapped) == inspect.signature(fn)
        assert inspect.iscoroutinefunction(bucket(fetch_async))
        assert bucket(fetch)("a", retries=2) == "aa"

    def test_errors_propagate_and_keep_the_token_spent(
        self, make: Callable[..., TokenBucket]
    ) -> None:
        """A failing guarded call raises its own error; its token stays taken."""
        bucket = make()

        def boom() -> None:
            raise KeyError("x")

        with pytest.raises(KeyError):
            bucket.call(boom)
        assert bucket.available == 3


class TestEvents:
    def test_try_acquire_refusal(
        self, make: Callable[..., TokenBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """A refused try_acquire publishes RateLimited(rejected=True) with the wait needed."""
        bucket = make(name="api")
        drain(bucket)
        clock.advance(0.125)
        assert not bucket.try_acquire(2)
        (event,) = events
        assert isinstance(event, RateLimited)
        assert event.source == "api"
        assert event.at == 0.125
        assert event.amount == 2
        assert event.retry_after == 0.375
        assert event.rejected is True

    def test_admissions_publish_nothing(
        self, make: Callable[..., TokenBucket], events: list[Event]
    ) -> None:
        """Requests admitted at once publish no event."""
        bucket = make()
        bucket.try_acquire()
        bucket.acquire_sync(3)
        assert events == []

    @pytest.mark.anyio
    async def test_a_wait_publishes_rejected_false(
        self, make: Callable[..., TokenBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """A request that queues publishes RateLimited(rejected=False) with its expected wait."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.join("b", 1, timeout=1)
            await line.advance_to(0.5)
            await line.advance_to(0.75)
        assert limited(events) == [(2, 0.5, False, 0.0), (1, 0.75, False, 0.0)]
        assert {e.source for e in events} == {"tb"}

    def test_acquire_sync_wait_publishes_rejected_false(
        self, make: Callable[..., TokenBucket], events: list[Event]
    ) -> None:
        """acquire_sync that waits publishes RateLimited(rejected=False)."""
        bucket = make()
        drain(bucket)
        bucket.acquire_sync(1)
        assert limited(events) == [(1, 0.25, False, 0.0)]

    def test_default_bus_is_used_without_bus(self, clock: ManualClock) -> None:
        """Without bus=, events go to resilio.default_bus()."""
        import resilio

        seen: list[RateLimited] = []
        unsubscribe = resilio.default_bus().subscribe(RateLimited, seen.append)
        try:
            bucket = TokenBucket(1, 1, name="default-bus-bucket", clock=clock)
            bucket.try_acquire()
            bucket.try_acquire()
        finally:
            unsubscribe()
        assert [e.source for e in seen] == ["default-bus-bucket"]


class TestRepr:
    @pytest.mark.anyio
    async def test_repr_shows_level_rate_and_waiters(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """repr names the bucket and shows tokens/capacity, rate and how many wait."""
        bucket = make(name="search")
        assert repr(bucket) == "<TokenBucket 'search' 4.00/4 tokens, 4/s, 0 waiting>"
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 3)
            await line.advance_to(0.625)
            text = repr(bucket)
            assert "'search'" in text
            assert "2.50/4" in text
            assert "1 waiting" in text
            await line.advance_to(0.75)


class TestErrors:
    def test_rate_limit_exceeded_is_a_rejection(self, make: Callable[..., TokenBucket]) -> None:
        """RateLimitExceeded derives from RejectedError and ResilioError and names the bucket."""
        bucket = make(name="pay", reject=True, capacity=1)
        bucket.call(lambda: None)
        with pytest.raises(RateLimitExceeded) as info:
            bucket.call(lambda: None)
        assert isinstance(info.value, RejectedError)
        assert isinstance(info.value, ResilioError)
        assert info.value.name == "pay"
        assert "'pay'" in str(info.value)


class TestSyncWaiting:
    def test_acquire_sync_advances_the_manual_clock_exactly(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A blocking acquire on a ManualClock moves it by exactly the wait needed."""
        bucket = make(rate=8, capacity=2)
        bucket.acquire_sync(2)
        assert clock.monotonic() == 0
        for i in range(1, 9):
            bucket.acquire_sync()
            assert clock.monotonic() == i * 0.125
        bucket.acquire_sync(2)
        assert clock.monotonic() == 1.25
        assert bucket.available == 0

    def test_acquire_sync_uses_tokens_already_earned(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Part of the wait already passed counts: only the rest is advanced."""
        bucket = make()
        drain(bucket)
        clock.advance(0.125)
        bucket.acquire_sync(1)
        assert clock.monotonic() == 0.25

    def test_worker_thread_with_the_test_thread_advancing(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A worker blocked in acquire_sync finishes while the test thread moves time too."""
        bucket = make(rate=4, capacity=4)
        drain(bucket)
        done = threading.Event()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(5):
                    bucket.acquire_sync(2)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        for _ in range(10_000):
            if done.is_set():
                break
            clock.advance(0.01)
        thread.join(10)
        assert not thread.is_alive()
        assert errors == []
        # 10 tokens taken, none lost: level = 4 * elapsed - 10
        assert bucket.available == pytest.approx(4 * clock.monotonic() - 10, abs=1e-6)

    def test_worker_threads_on_the_system_clock(self) -> None:
        """Blocking acquires on the real clock (tiny waits) all complete."""
        bucket = TokenBucket(2000, 1, bus=EventBus())
        count = 0
        lock = threading.Lock()

        def worker() -> None:
            nonlocal count
            for _ in range(4):
                bucket.acquire_sync()
                with lock:
                    count += 1

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads)
        assert count == 12
        assert bucket.waiting == 0

    @pytest.mark.anyio
    async def test_async_waits_on_the_system_clock(self) -> None:
        """acquire() on the real clock (tiny waits) completes, in order."""
        bucket = TokenBucket(2000, 1, bus=EventBus(), clock=SystemClock())
        order: list[int] = []

        async def one(i: int) -> None:
            await bucket.acquire()
            order.append(i)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(one, i)
                    await settle()
        assert order == [0, 1, 2, 3, 4]


def sync_form(bucket: TokenBucket, form: str) -> None:
    """Take one token through a sync *form*: the guard forms, or ``acquire_sync``."""
    if form == "acquire_sync":
        bucket.acquire_sync()
    else:
        guarded_sync(bucket, form, [])


@pytest.mark.anyio
class TestNoBlockingOnALoop:
    """A sync form that would wait, on a thread running an event loop, refuses to block it."""

    @pytest.mark.parametrize("form", ["acquire_sync", *SYNC_FORMS])
    async def test_a_sync_form_that_would_wait_raises(
        self,
        make: Callable[..., TokenBucket],
        form: str,
        clock: ManualClock,
        events: list[Event],
        anyio_backend: str,
    ) -> None:
        """RuntimeError names the loop and the async forms; nothing queued, taken or moved."""
        bucket = make(capacity=1)
        sync_form(bucket, form)  # a token free: taken without waiting, even on the loop
        with pytest.raises(RuntimeError, match=anyio_backend) as info:
            sync_form(bucket, form)
        message = str(info.value)
        assert "'tb'" in message
        assert "async with bucket:" in message
        assert "await bucket.acquire()" in message
        assert bucket.waiting == 0
        assert clock.monotonic() == 0  # a ManualClock is not advanced either
        assert limited(events) == []
        clock.advance(0.25)
        sync_form(bucket, form)  # the refusal cost nothing: the next token is there
        assert bucket.available == 0

    async def test_a_timeout_that_cannot_be_met_still_raises_rate_limit_exceeded(
        self, make: Callable[..., TokenBucket], events: list[Event]
    ) -> None:
        """A request refused at once (it would not wait) keeps its usual error."""
        bucket = make()
        drain(bucket)
        with pytest.raises(RateLimitExceeded):
            bucket.acquire_sync(timeout=0.1)
        assert limited(events) == [(1, 0.25, True, 0.0)]

    @pytest.mark.parametrize("form", SYNC_FORMS)
    async def test_reject_true_raises_rate_limit_exceeded(
        self, make: Callable[..., TokenBucket], form: str
    ) -> None:
        """reject=True never waits, so it refuses as always, loop or not."""
        bucket = make(reject=True, capacity=1)
        sync_form(bucket, form)
        with pytest.raises(RateLimitExceeded):
            sync_form(bucket, form)

    async def test_the_real_clock_refuses_at_once(self) -> None:
        """On the system clock the refusal comes at once, instead of a second's stall."""
        bucket = TokenBucket(1, 1, bus=EventBus(), clock=SystemClock())
        bucket.acquire_sync()
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="would block"):
            with bucket:
                pass  # pragma: no cover - never entered
        assert time.monotonic() - started < 0.5

    async def test_a_worker_thread_of_the_loop_may_wait(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """anyio.to_thread workers run no loop: there the sync forms wait as always."""
        bucket = make(capacity=1)
        bucket.acquire_sync()

        def blocking() -> float:
            with bucket:
                return clock.monotonic()  # the head thread moved the ManualClock itself

        with anyio.fail_after(5):
            assert await anyio.to_thread.run_sync(blocking) == 0.25

    async def test_a_worker_thread_on_the_real_clock(self) -> None:
        """A worker thread blocks on the real clock while the loop keeps running."""
        bucket = TokenBucket(2000, 1, bus=EventBus(), clock=SystemClock())

        def blocking() -> int:
            for _ in range(3):
                bucket.acquire_sync()
            return 3

        with anyio.fail_after(5):
            assert await anyio.to_thread.run_sync(blocking) == 3


class TestTimedelta:
    def test_acquire_sync_timeout_takes_a_timedelta(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A timedelta timeout is the same number of seconds."""
        bucket = make()
        drain(bucket)
        with pytest.raises(RateLimitExceeded):
            bucket.acquire_sync(timeout=timedelta(milliseconds=200))
        bucket.acquire_sync(timeout=timedelta(milliseconds=250))
        assert clock.monotonic() == 0.25

    @pytest.mark.anyio
    async def test_acquire_timeout_takes_a_timedelta(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """acquire() takes a timedelta timeout too, and refuses a negative one."""
        bucket = make()
        drain(bucket)
        with anyio.fail_after(5), pytest.raises(RateLimitExceeded):
            await bucket.acquire(timeout=timedelta(milliseconds=200))
        with pytest.raises(ValueError, match="'timeout'"):
            await bucket.acquire(timeout=timedelta(seconds=-1))
        async with line_of(bucket, clock) as line:
            await line.join("a", timeout=timedelta(seconds=1))
            await line.advance_to(0.25)
            assert line.served == [("a", 0.25)]


BAD_NUMBERS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    (NAN, ValueError),
    (INF, ValueError),
    ("5", TypeError),
    (None, TypeError),
    (True, TypeError),
]


class TestConfiguration:
    @pytest.mark.parametrize(("rate", "error"), BAD_NUMBERS)
    def test_bad_rate(self, clock: ManualClock, rate: Any, error: type[Exception]) -> None:
        """rate must be a finite number > 0; the error names 'rate' and the value."""
        with pytest.raises(error, match="'rate'") as info:
            TokenBucket(rate, 5, clock=clock)
        assert repr(rate) in str(info.value)

    @pytest.mark.parametrize(("capacity", "error"), [*BAD_NUMBERS, (0.5, ValueError)])
    def test_bad_capacity(self, clock: ManualClock, capacity: Any, error: type[Exception]) -> None:
        """capacity must be a finite number >= 1; the error names 'capacity' and the value."""
        with pytest.raises(error, match="'capacity'") as info:
            TokenBucket(1, capacity, clock=clock)
        assert repr(capacity) in str(info.value)

    @pytest.mark.parametrize("reject", [1, 0, "yes", None])
    def test_bad_reject(self, clock: ManualClock, reject: Any) -> None:
        """reject must be a bool."""
        with pytest.raises(TypeError, match="'reject'"):
            TokenBucket(1, 1, reject=reject, clock=clock)

    @pytest.mark.parametrize(
        ("name", "error"), [("", ValueError), (None, TypeError), (3, TypeError)]
    )
    def test_bad_name(self, clock: ManualClock, name: Any, error: type[Exception]) -> None:
        """name must be a non-empty str."""
        with pytest.raises(error, match="'name'"):
            TokenBucket(1, 1, name=name, clock=clock)

    @pytest.mark.parametrize("bad", [None, object(), time.monotonic, "clock"])
    def test_bad_clock(self, bad: Any) -> None:
        """clock must provide monotonic(), sleep() and sleep_async()."""
        with pytest.raises(TypeError, match="'clock'"):
            TokenBucket(1, 1, clock=bad)

    @pytest.mark.parametrize("bad", [object(), "bus", []])
    def test_bad_bus(self, clock: ManualClock, bad: Any) -> None:
        """bus must be an EventBus (None means the default bus)."""
        with pytest.raises(TypeError, match="'bus'"):
            TokenBucket(1, 1, clock=clock, bus=bad)
        TokenBucket(1, 1, clock=clock, bus=None)

    def test_options_are_keyword_only(self, clock: ManualClock) -> None:
        """Only rate and capacity are positional."""
        with pytest.raises(TypeError):
            TokenBucket(1, 1, True)  # type: ignore[call-arg]

    def test_fractional_capacity_is_accepted(self, clock: ManualClock) -> None:
        """Any capacity >= 1 works, fractional ones too."""
        bucket = TokenBucket(1, 2.5, clock=clock, bus=EventBus())
        assert bucket.try_acquire(2.5)

    @pytest.mark.parametrize(("rate", "error"), BAD_NUMBERS)
    def test_bad_set_rate_changes_nothing(
        self, make: Callable[..., TokenBucket], rate: Any, error: type[Exception]
    ) -> None:
        """set_rate checks its value like the constructor and keeps the old rate."""
        bucket = make()
        with pytest.raises(error, match="'rate'"):
            bucket.set_rate(rate)
        assert bucket.rate == 4

    @pytest.mark.parametrize(("capacity", "error"), [*BAD_NUMBERS, (0.5, ValueError)])
    def test_bad_set_capacity_changes_nothing(
        self, make: Callable[..., TokenBucket], capacity: Any, error: type[Exception]
    ) -> None:
        """set_capacity checks its value like the constructor and keeps the old capacity."""
        bucket = make()
        with pytest.raises(error, match="'capacity'"):
            bucket.set_capacity(capacity)
        assert bucket.capacity == 4
        assert bucket.available == 4


MODULE_CLOCK = ManualClock()
MODULE_BUCKET = TokenBucket(4, 2, name="module", clock=MODULE_CLOCK, bus=EventBus())
MODULE_REAL_BUCKET = TokenBucket(2000, 1, name="module-real", bus=EventBus())


async def use_module_buckets() -> list[float]:
    """Drain the module-level buckets and queue three waiters on each; return the waits."""
    start = MODULE_CLOCK.monotonic()
    clock_waits: list[float] = []
    while MODULE_BUCKET.try_acquire():
        pass
    while MODULE_REAL_BUCKET.try_acquire():
        pass

    async def one() -> None:
        await MODULE_BUCKET.acquire()
        clock_waits.append(MODULE_CLOCK.monotonic() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
            tg.start_soon(MODULE_REAL_BUCKET.acquire)
        await settle()
        for _ in range(3):
            MODULE_CLOCK.advance(0.25)
            await settle()
    return clock_waits


class TestModuleLevel:
    def test_bucket_made_at_import_works_under_every_loop(self) -> None:
        """A bucket built with no loop running serves asyncio.run twice and trio.run."""
        expected = pytest.approx([0.25, 0.5, 0.75])
        assert asyncio.run(use_module_buckets()) == expected
        assert asyncio.run(use_module_buckets()) == expected
        assert trio.run(use_module_buckets) == expected
        assert MODULE_BUCKET.waiting == MODULE_REAL_BUCKET.waiting == 0
        assert not math.isnan(MODULE_BUCKET.available)


@pytest.mark.anyio
class TestReset:
    def test_fills_an_empty_bucket_to_capacity(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """reset() puts the level back to capacity at once; refilling starts afresh from then."""
        bucket = make()
        drain(bucket)
        clock.advance(0.125)
        bucket.reset()
        assert bucket.available == 4
        assert bucket.try_acquire(4)
        clock.advance(0.25)
        assert bucket.available == 1

    def test_keeps_the_settings(self, make: Callable[..., TokenBucket]) -> None:
        """Rate and capacity (as last set) and the name survive a reset."""
        bucket = make()
        bucket.set_rate(2)
        bucket.set_capacity(3)
        drain(bucket)
        bucket.reset()
        assert (bucket.rate, bucket.capacity, bucket.name, bucket.available) == (2, 3, "tb", 3)
        assert repr(bucket) == "<TokenBucket 'tb' 3.00/3 tokens, 2/s, 0 waiting>"

    def test_publishes_nothing(self, make: Callable[..., TokenBucket], events: list[Event]) -> None:
        """A reset is not a decision on a request: no event."""
        bucket = make()
        drain(bucket)
        bucket.reset()
        bucket.reset()
        assert events == []

    async def test_waiters_are_served_from_the_refill_in_order(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Queued requests take the refill at once, first come first served; the rest re-time."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 2)
            await line.join("b", 1)
            await line.join("c", 3)
            await line.advance_to(0.1)
            assert line.served == []
            bucket.reset()
            await settle()
            assert sorted(line.served) == [("a", 0.1), ("b", 0.1)]  # granted a, then b
            assert bucket.waiting == 1
            assert bucket.available == 1
            # c needs 3: 1 is there, 2 more drip in at 4/s.
            await line.advance_to(0.6 - BEFORE)
            assert len(line.served) == 2
            await line.advance_to(0.6)
            assert line.served[-1] == ("c", 0.6)
        assert bucket.available == 0
        assert clock.sleepers == 0

    async def test_a_head_that_does_not_fit_keeps_its_place(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A small request behind one the refill cannot meet waits for it: FIFO holds."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 3)
            await line.join("b", 2)
            await line.join("c", 1)
            bucket.reset()
            await settle()
            assert line.served == [("a", 0)]
            assert bucket.available == 1  # enough for c, who still waits behind b
            assert bucket.waiting == 2
            await line.advance_to(0.25)
            assert line.served == [("a", 0), ("b", 0.25)]
            await line.advance_to(0.5)
            assert line.served[-1] == ("c", 0.5)

    async def test_timed_waiters_served_by_a_reset_leave_no_timer(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Waiters with timeouts served by a reset cancel their deadlines."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 1, timeout=5)
            await line.join("b", 1, timeout=5)
            assert clock.sleepers == 2
            bucket.reset()
            await settle()
            assert sorted(line.served) == [("a", 0), ("b", 0)]
        assert clock.sleepers == 0
        assert bucket.available == 2

    async def test_a_cancelled_waiter_is_skipped(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A waiter cancelled before the reset takes nothing from the refill."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            await line.join("a", 1)
            gone = await line.join("b", 2)
            await line.join("c", 3)
            gone.cancel()
            await settle()
            bucket.reset()
            await settle()
            assert line.cancelled == ["b"]
            assert sorted(line.served) == [("a", 0), ("c", 0)]
        assert bucket.available == 0

    async def test_granted_before_and_cancelled_after_gives_nothing_back(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """Tokens granted before a reset are not returned after it: the reset refilled them."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            head = await line.join("a", 2)  # turn at 0.5
            await line.join("b", 4)
            head.cancel()  # pending: a has not run since
            clock.advance(0.5)
            bucket.set_rate(4)  # re-dispatch: a is granted before it sees its cancellation
            bucket.reset()  # a full bucket again: b takes all of it
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("b", 0.5)]
            assert bucket.available == 0  # not a's 2 on top of the refill
            assert not bucket.try_acquire()

    async def test_granted_after_and_cancelled_gives_back(
        self, make: Callable[..., TokenBucket], clock: ManualClock
    ) -> None:
        """A grant made by the reset itself is given back as usual when cancelled."""
        bucket = make()
        drain(bucket)
        async with line_of(bucket, clock) as line:
            head = await line.join("a", 3)
            await line.join("b", 2)
            head.cancel()  # pending: a has not run since
            bucket.reset()  # a is granted 3 of the refill before it sees its cancellation
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("b", 0)]  # a's 3 came back: b took 2 of them
            assert bucket.available == 2

    async def test_reset_from_a_thread_wakes_an_async_waiter(self) -> None:
        """On the real clock a reset from another thread serves a task waiting for ages."""
        bucket = TokenBucket(0.001, 1, bus=EventBus())
        assert bucket.try_acquire()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bucket.acquire)
                await settle()
                assert bucket.waiting == 1
                await anyio.to_thread.run_sync(bucket.reset)
        assert bucket.waiting == 0
        assert bucket.available < 1

    def test_reset_wakes_a_blocked_thread(self) -> None:
        """On the real clock a reset serves a thread blocked in acquire_sync."""
        bucket = TokenBucket(0.001, 1, bus=EventBus())
        assert bucket.try_acquire()
        worker = threading.Thread(target=bucket.acquire_sync, daemon=True)
        worker.start()
        deadline = time.monotonic() + 5
        while bucket.waiting == 0:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        bucket.reset()
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert bucket.waiting == 0


class TestPer:
    def test_count_per_period(self, clock: ManualClock) -> None:
        """per(10, 60): 10/60 tokens a second; a full bucket of 10 to start with."""
        bucket = TokenBucket.per(10, 60, clock=clock, bus=EventBus())
        assert bucket.rate == 10 / 60
        assert bucket.capacity == 10
        assert bucket.name == "token-bucket"
        assert bucket.try_acquire(10)
        assert not bucket.try_acquire()
        clock.advance(6)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()

    def test_period_as_a_timedelta(self, clock: ManualClock) -> None:
        """The period may be a timedelta: 100 a minute."""
        bucket = TokenBucket.per(100, timedelta(minutes=1), clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity) == (100 / 60, 100)

    def test_capacity_may_be_given(self, clock: ManualClock) -> None:
        """capacity=1 keeps the rate and allows no burst."""
        bucket = TokenBucket.per(10, 60, capacity=1, clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity) == (10 / 60, 1)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()

    def test_fractional_count_with_a_capacity(self, clock: ManualClock) -> None:
        """Half a request a second is fine once the capacity is said."""
        bucket = TokenBucket.per(0.5, 1, capacity=2, clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity) == (0.5, 2)

    def test_options_pass_through(self, clock: ManualClock, events: list[Event]) -> None:
        """reject, name, clock and bus reach the bucket."""
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        bucket = TokenBucket.per(1, 2, reject=True, name="quota", clock=clock, bus=bus)
        with bucket:
            pass
        with pytest.raises(RateLimitExceeded) as info, bucket:
            pass
        assert bucket.name == "quota"
        assert info.value.retry_after == 2
        assert limited(seen) == [(1, 2, True, 0)]
        clock.advance(2)
        with bucket:
            pass

    def test_a_subclass_builds_itself(self, clock: ManualClock) -> None:
        """per() on a subclass returns an instance of that subclass."""

        class Quota(TokenBucket):
            __slots__ = ()

        bucket = Quota.per(5, 1, clock=clock, bus=EventBus())
        assert type(bucket) is Quota

    def test_options_are_keyword_only(self, clock: ManualClock) -> None:
        """Only count and period are positional."""
        with pytest.raises(TypeError):
            TokenBucket.per(10, 60, 5)  # type: ignore[call-arg]

    @pytest.mark.parametrize(("count", "error"), BAD_NUMBERS)
    def test_bad_count(self, count: Any, error: type[Exception]) -> None:
        """count must be a finite number > 0; the error names 'count' and the value."""
        with pytest.raises(error, match="'count'") as info:
            TokenBucket.per(count, 60)
        assert repr(count) in str(info.value)

    @pytest.mark.parametrize(
        ("period", "error"),
        [
            *BAD_NUMBERS,
            (timedelta(0), ValueError),
            (timedelta(seconds=-1), ValueError),
            ("60", TypeError),
        ],
    )
    def test_bad_period(self, period: Any, error: type[Exception]) -> None:
        """period must be positive seconds or timedelta; the error names 'period' and the value."""
        with pytest.raises(error, match="'period'"):
            TokenBucket.per(10, period)

    def test_count_below_one_needs_a_capacity(self) -> None:
        """The default capacity is the count, so a count under 1 asks for a capacity."""
        with pytest.raises(ValueError, match="'count' must be >= 1 when 'capacity'") as info:
            TokenBucket.per(0.5, 1)
        assert "0.5" in str(info.value)

    def test_bad_capacity_is_named(self) -> None:
        """A capacity given to per() is checked as the constructor checks it."""
        with pytest.raises(ValueError, match=r"'capacity' must be >= 1: 0\.5"):
            TokenBucket.per(10, 60, capacity=0.5)

    @pytest.mark.parametrize(("count", "period"), [(1e-300, 1e300), (1e300, 1e-300)])
    def test_a_rate_that_underflows_or_overflows(self, count: float, period: float) -> None:
        """A ratio of valid numbers that is no usable rate names both parameters."""
        with pytest.raises(ValueError, match="'count' / 'period'"):
            TokenBucket.per(count, period, capacity=1)
