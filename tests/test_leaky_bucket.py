"""LeakyBucket: admissions spaced exactly 1/rate apart with no burst, a bounded FIFO
queue, timeouts that fail at once, cancellation that frees slots, live
re-configuration, ``reject=True``, the guard forms, events, ``repr`` and
configuration checks.

Time is a ManualClock (4 admissions a second: slots 0.25 s apart, exact in floats);
tasks are ordered with ``anyio.wait_all_tasks_blocked()``, never with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio

from bucket_lines import limited, line_of, settle
from resilio import (
    Event,
    EventBus,
    LeakyBucket,
    ManualClock,
    RateLimitExceeded,
)

NAN = float("nan")
INF = float("inf")
BEFORE = 1e-6  # "just before" a slot: far more than the bucket's float slack


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., LeakyBucket]:
    """Build a LeakyBucket (4/s, queue of 3 unless told) on the test's clock and bus."""

    def factory(rate: float = 4.0, capacity: float = 3.0, **options: Any) -> LeakyBucket:
        options.setdefault("name", "lb")
        return LeakyBucket(rate, capacity, clock=clock, bus=bus, **options)

    return factory


class TestSpacing:
    def test_idle_bucket_admits_at_once(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """The first request on an idle bucket is admitted without waiting."""
        assert make().try_acquire()
        make().acquire_sync()
        assert clock.monotonic() == 0

    def test_no_burst_even_after_a_long_idle(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Idle time is not banked: after an hour, still one admission, then 1/rate."""
        bucket = make()
        clock.advance(3600)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()
        clock.advance(0.25 - BEFORE)
        assert not bucket.try_acquire()
        clock.advance(BEFORE)
        assert bucket.try_acquire()

    def test_admissions_are_spaced_exactly(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Trying at every slot admits one each time; trying in between admits none."""
        bucket = make(rate=8)
        admitted: list[float] = []
        for _ in range(40):
            if bucket.try_acquire():
                admitted.append(clock.monotonic())
            clock.advance(0.0625)
        assert admitted == [i * 0.125 for i in range(20)]

    def test_weight_occupies_n_over_rate(
        self, make: Callable[..., LeakyBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """A request for n is admitted at its slot and pushes the next one n/rate later."""
        bucket = make()
        assert bucket.try_acquire(3)
        assert not bucket.try_acquire()
        assert limited(events) == [(1, 0.75, True, 0.0)]
        clock.advance(0.75)
        assert bucket.try_acquire(0.5)
        clock.advance(0.125)
        assert bucket.try_acquire()

    def test_acquire_sync_advances_to_each_slot(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Blocking acquires on a ManualClock move it exactly one slot each."""
        bucket = make()
        times = []
        for _ in range(5):
            bucket.acquire_sync()
            times.append(clock.monotonic())
        assert times == [0, 0.25, 0.5, 0.75, 1.0]
        bucket.acquire_sync(2)
        bucket.acquire_sync()
        assert clock.monotonic() == 1.75

    def test_properties_and_defaults(self, clock: ManualClock) -> None:
        """rate, capacity, name (default "leaky-bucket") and waiting read back."""
        bucket = LeakyBucket(2.5, 7, clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity, bucket.name, bucket.waiting) == (
            2.5,
            7,
            "leaky-bucket",
            0,
        )
        assert bucket.available == 7


@pytest.mark.anyio
class TestWaiting:
    async def test_waiters_are_served_one_slot_apart_in_order(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Queued requests leave one per 1/rate, first come first served."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")  # idle: admitted at once
            for name in "abc":
                await line.join(name)
            assert bucket.waiting == 3
            await line.run_to(0.25 - BEFORE)
            assert line.served == [("x", 0.0)]
            await line.run_to(0.25, 0.5, 0.75)
            assert line.served == [("x", 0), ("a", 0.25), ("b", 0.5), ("c", 0.75)]

    async def test_weighted_waiters(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Each waiter is admitted at its slot; a heavier one pushes the next further."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x", 2)
            await line.join("a", 2)  # slot 0.5
            await line.join("b", 1)  # slot 1.0
            await line.run_to(0.5 - BEFORE, 0.5, 1.0 - BEFORE)
            assert line.served == [("x", 0), ("a", 0.5)]
            await line.advance_to(1.0)
            assert line.served[-1] == ("b", 1.0)

    async def test_try_acquire_does_not_jump_the_queue(
        self, make: Callable[..., LeakyBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """With a waiter queued, try_acquire refuses and counts the queue in retry_after."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            assert not bucket.try_acquire()
            assert limited(events)[-1] == (1, 0.5, True, 0.0)
            await line.advance_to(0.25)
            assert line.served[-1] == ("a", 0.25)

    async def test_slot_left_unused_is_not_banked(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A waiter arriving long after the last slot is admitted at once, the next 1/rate on."""
        bucket = make()
        await bucket.acquire()
        clock.advance(10)
        async with line_of(bucket, clock) as line:
            await line.join("a")
            await line.join("b")
            await line.run_to(10.25)
            assert line.served == [("a", 10.0), ("b", 10.25)]


@pytest.mark.anyio
class TestQueueBound:
    async def test_beyond_capacity_is_rejected_at_once(
        self, make: Callable[..., LeakyBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """At most `capacity` wait; one more is refused at once with the wait it needed."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            for name in "abc":
                await line.join(name)
            assert bucket.available == 0
            with anyio.fail_after(5), pytest.raises(RateLimitExceeded) as info:
                await bucket.acquire()
            assert info.value.retry_after == 0.25  # room again once a is admitted
            assert info.value.name == "lb"
            with pytest.raises(RateLimitExceeded):
                bucket.acquire_sync()  # the blocking form refuses at once too
            assert clock.monotonic() == 0
            assert bucket.waiting == 3
            assert limited(events)[-2:] == [(1, 0.25, True, 0.0)] * 2
            await line.advance_to(0.25)
            await line.join("d")  # room again
            assert bucket.waiting == 3
            await line.run_to(0.5, 0.75, 1.0)
            assert [name for name, _ in line.served] == ["x", "a", "b", "c", "d"]
            assert line.served[-1] == ("d", 1.0)

    async def test_weights_count_against_the_queue(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """The queue holds `capacity` units: 2 + 2 does not fit in 3, 2 + 1 does."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", 2)
            assert bucket.available == 1
            await line.join("b", 2)
            assert "b" in line.refused
            await line.join("c", 1)
            assert bucket.available == 0
            assert bucket.waiting == 2
            await line.run_to(0.25, 0.75)
            assert line.served == [("x", 0), ("a", 0.25), ("c", 0.75)]

    async def test_a_request_of_capacity_fits_an_empty_queue(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """n == capacity may queue when nothing else waits."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", 3)
            assert bucket.waiting == 1
            await line.advance_to(0.25)
            assert line.served[-1] == ("a", 0.25)

    async def test_timeout_does_not_bypass_the_bound(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A full queue refuses even a request with a timeout long enough to wait."""
        bucket = make(capacity=1)
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            with pytest.raises(RateLimitExceeded) as info:
                await bucket.acquire(1, timeout=100)
            assert info.value.retry_after == 0.25  # room again once a is admitted
            await line.advance_to(0.25)


@pytest.mark.anyio
class TestTimeout:
    async def test_timeout_that_cannot_be_met_fails_at_once(
        self, make: Callable[..., LeakyBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """acquire(timeout=) shorter than the wait for a slot raises at once."""
        bucket = make()
        await bucket.acquire(2)
        with anyio.fail_after(5), pytest.raises(RateLimitExceeded) as info:
            await bucket.acquire(1, timeout=0.25)
        assert info.value.retry_after == 0.5
        assert clock.monotonic() == 0
        assert bucket.waiting == 0
        assert limited(events) == [(1, 0.5, True, 0.0)]

    async def test_timeout_counts_queued_requests(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """The wait a timed request needs includes the queue ahead of it."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", 2)
            await line.join("b", 1, timeout=0.5)
            assert line.refused["b"].retry_after == 0.75
            await line.join("c", 1, timeout=0.75)
            await line.run_to(0.25, 0.75 - BEFORE)
            assert line.served == [("x", 0), ("a", 0.25)]
            await line.advance_to(0.75)
            assert line.served[-1] == ("c", 0.75)
        assert clock.sleepers == 0

    async def test_timeout_zero(self, make: Callable[..., LeakyBucket], clock: ManualClock) -> None:
        """timeout=0 takes a free slot and otherwise fails at once."""
        bucket = make()
        await bucket.acquire(timeout=0)
        with pytest.raises(RateLimitExceeded) as info:
            await bucket.acquire(timeout=0)
        assert info.value.retry_after == 0.25
        clock.advance(0.25)
        await bucket.acquire(timeout=0)

    def test_sync_timeout(self, make: Callable[..., LeakyBucket], clock: ManualClock) -> None:
        """acquire_sync with a short timeout raises at once; a long enough one advances."""
        bucket = make()
        bucket.acquire_sync(2)
        with pytest.raises(RateLimitExceeded) as info:
            bucket.acquire_sync(timeout=0.25)
        assert info.value.retry_after == 0.5
        assert clock.monotonic() == 0
        bucket.acquire_sync(timeout=0.5)
        assert clock.monotonic() == 0.5

    @pytest.mark.parametrize(
        ("timeout", "error"), [(-0.1, ValueError), (NAN, ValueError), ("1", TypeError)]
    )
    async def test_bad_timeout(
        self, make: Callable[..., LeakyBucket], timeout: Any, error: type[Exception]
    ) -> None:
        """A negative, NaN or non-number timeout is refused, naming 'timeout'."""
        bucket = make()
        with pytest.raises(error, match="'timeout'"):
            await bucket.acquire(timeout=timeout)
        with pytest.raises(error, match="'timeout'"):
            bucket.acquire_sync(timeout=timeout)
        assert bucket.try_acquire()  # nothing was taken

    async def test_timeout_takes_a_timedelta(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A timedelta timeout is the same number of seconds, for both forms."""
        bucket = make()
        bucket.acquire_sync()
        with anyio.fail_after(5), pytest.raises(RateLimitExceeded):
            await bucket.acquire(timeout=timedelta(milliseconds=200))
        with pytest.raises(ValueError, match="'timeout'"):
            await bucket.acquire(timeout=timedelta(seconds=-1))
        async with line_of(bucket, clock) as line:
            await line.join("a", timeout=timedelta(milliseconds=250))
            await line.advance_to(0.25)
            assert line.served == [("a", 0.25)]


@pytest.mark.anyio
class TestCancellation:
    async def test_cancel_during_acquire(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A waiter cancelled by its task group leaves no trace: the slot stays free."""
        bucket = make()
        await bucket.acquire()
        acquired = False

        async def task(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            nonlocal acquired
            task_status.started()
            await bucket.acquire()
            acquired = True

        async with anyio.create_task_group() as tg:
            await tg.start(task)
            await settle()
            assert bucket.waiting == 1
            assert bucket.available == 2
            tg.cancel_scope.cancel()
        assert not acquired
        assert bucket.waiting == 0
        assert bucket.available == 3
        assert clock.sleepers == 0
        clock.advance(0.25)
        assert bucket.try_acquire()

    async def test_cancelling_the_head_moves_everyone_up(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """With the head cancelled, the next waiter takes its slot, and so on."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            head = await line.join("a")
            await line.join("b")
            await line.join("c")
            head.cancel()
            await settle()
            assert line.cancelled == ["a"]
            assert bucket.waiting == 2
            assert bucket.available == 1
            await line.run_to(0.25, 0.5 - BEFORE)
            assert line.served == [("x", 0), ("b", 0.25)]
            await line.advance_to(0.5)
            assert line.served[-1] == ("c", 0.5)

    async def test_cancelling_a_middle_waiter(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A cancelled waiter in the middle gives its slot to the one behind it."""
        bucket = make(capacity=4)
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            middle = await line.join("b", 2)
            await line.join("c")
            middle.cancel()
            await settle()
            assert line.cancelled == ["b"]
            assert bucket.available == 2
            await line.run_to(0.25, 0.5)
            assert line.served == [("x", 0), ("a", 0.25), ("c", 0.5)]
        assert bucket.waiting == 0
        assert clock.sleepers == 0

    async def test_granted_and_cancelled_in_the_same_instant_frees_its_slot(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A waiter admitted while its cancellation is pending gives its slot back."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            head = await line.join("a")  # slot 0.25
            await line.join("b")
            head.cancel()  # pending: a has not run since
            clock.advance(0.25)
            bucket.set_rate(4)  # re-dispatch: a is admitted before it sees its cancellation
            assert bucket.waiting == 1
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("x", 0), ("b", 0.25)]  # b got a's slot
            await line.join("c")
            await line.advance_to(0.5 - BEFORE)
            assert len(line.served) == 2
            await line.advance_to(0.5)
            assert line.served[-1] == ("c", 0.5)

    async def test_cancelling_everyone_restores_an_idle_bucket(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """After every waiter is cancelled the queue is empty and slots run on as before."""
        bucket = make()
        await bucket.acquire()
        async with anyio.create_task_group() as tg:
            for n in (1, 2):
                tg.start_soon(bucket.acquire, n)
            await settle()
            assert bucket.available == 0
            tg.cancel_scope.cancel()
        assert (bucket.waiting, bucket.available, clock.sleepers) == (0, 3, 0)
        assert not bucket.try_acquire()
        clock.advance(0.25)
        assert bucket.try_acquire()


@pytest.mark.anyio
class TestSetRate:
    async def test_faster_rate_brings_slots_forward(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Doubling the rate halves what is left of the current gap and every gap after."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            await line.join("b")
            bucket.set_rate(8)
            assert bucket.rate == 8
            await settle()
            await line.run_to(0.125 - BEFORE)
            assert line.served == [("x", 0)]
            await line.run_to(0.125, 0.25)
            assert line.served == [("x", 0), ("a", 0.125), ("b", 0.25)]

    async def test_slower_rate_pushes_slots_back(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Halving the rate mid-gap doubles what is left of it; the old slot passes quietly."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            await line.join("b")
            await line.advance_to(0.125)
            bucket.set_rate(2)  # 0.125 left at 4/s is 0.25 at 2/s
            await settle()
            await line.run_to(0.25, 0.375 - BEFORE)
            assert line.served == [("x", 0)]
            await line.run_to(0.375, 0.875 - BEFORE)
            assert line.served == [("x", 0), ("a", 0.375)]
            await line.advance_to(0.875)
            assert line.served[-1] == ("b", 0.875)

    def test_set_rate_while_idle(self, make: Callable[..., LeakyBucket]) -> None:
        """On an idle bucket the new rate spaces the next admissions."""
        bucket = make()
        bucket.set_rate(2)
        assert bucket.try_acquire()
        with pytest.raises(RateLimitExceeded) as info:
            bucket.acquire_sync(timeout=0.25)
        assert info.value.retry_after == 0.5


@pytest.mark.anyio
class TestSetCapacity:
    async def test_shrinking_fails_larger_queued_requests(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Queued requests larger than the new capacity fail; the rest move up."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", 2)
            await line.join("b", 1)
            bucket.set_capacity(1)
            await settle()
            assert list(line.refused) == ["a"]
            assert line.refused["a"].retry_after is None
            assert bucket.capacity == 1
            assert bucket.waiting == 1
            assert bucket.available == 0
            await line.advance_to(0.25)
            assert line.served == [("x", 0), ("b", 0.25)]
        assert bucket.available == 1

    async def test_shrinking_below_the_queue_refuses_newcomers(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Requests already queued stay; new ones wait until the queue fits the new bound."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            for name in "abc":
                await line.join(name)
            bucket.set_capacity(1)
            assert bucket.waiting == 3
            assert bucket.available == 0
            await line.join("d")
            await line.run_to(0.25, 0.5)
            await line.join("e")  # c still waits: no room for one more
            assert sorted(line.refused) == ["d", "e"]
            await line.advance_to(0.75)
            await line.join("f")
            assert bucket.waiting == 1
            await line.advance_to(1.0)
            assert [name for name, _ in line.served] == ["x", "a", "b", "c", "f"]
            assert line.served[-1] == ("f", 1.0)

    def test_growing_makes_room(self, make: Callable[..., LeakyBucket]) -> None:
        """A larger capacity allows larger requests and more room."""
        bucket = make()
        with pytest.raises(ValueError, match="'n'"):
            bucket.try_acquire(5)
        bucket.set_capacity(5)
        assert bucket.available == 5
        assert bucket.try_acquire(5)


class TestAmountChecks:
    @pytest.mark.parametrize(
        ("n", "error"),
        [(0, ValueError), (-1, ValueError), (NAN, ValueError), (4, ValueError), ("1", TypeError)],
    )
    def test_bad_n(self, make: Callable[..., LeakyBucket], n: Any, error: type[Exception]) -> None:
        """n <= 0, NaN, n > capacity or a non-number is refused, naming 'n'."""
        bucket = make()
        with pytest.raises(error, match="'n'"):
            bucket.try_acquire(n)
        with pytest.raises(error, match="'n'"):
            bucket.acquire_sync(n)
        assert bucket.try_acquire()

    @pytest.mark.anyio
    async def test_bad_n_async(self, make: Callable[..., LeakyBucket]) -> None:
        """acquire() checks n the same way."""
        bucket = make()
        with pytest.raises(ValueError, match="'n'"):
            await bucket.acquire(4)
        with pytest.raises(TypeError, match="'n'"):
            await bucket.acquire(None)  # type: ignore[arg-type]


SYNC_FORMS = ["decorator", "with", "call"]
ASYNC_FORMS = ["decorator", "async_with", "call_async"]


def guarded_sync(bucket: LeakyBucket, form: str, ran: list[str]) -> None:
    """Run one sync call through *form* of the guard."""
    if form == "decorator":
        bucket(ran.append)("x")
    elif form == "with":
        with bucket:
            ran.append("x")
    else:
        bucket.call(ran.append, "x")


async def guarded_async(bucket: LeakyBucket, form: str, ran: list[str]) -> None:
    """Run one async call through *form* of the guard."""

    async def work() -> None:
        ran.append("x")

    if form == "decorator":
        await bucket(work)()
    elif form == "async_with":
        async with bucket:
            await work()
    else:
        await bucket.call_async(work)


class TestGuard:
    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_sync_forms_wait_for_their_slot(
        self, make: Callable[..., LeakyBucket], form: str, clock: ManualClock
    ) -> None:
        """Sync guarded calls are spaced one slot apart."""
        bucket = make()
        ran: list[str] = []
        times = []
        for _ in range(3):
            guarded_sync(bucket, form, ran)
            times.append(clock.monotonic())
        assert times == [0, 0.25, 0.5]
        assert ran == ["x"] * 3

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_async_forms_wait_for_their_slot(
        self, make: Callable[..., LeakyBucket], form: str, clock: ManualClock
    ) -> None:
        """An async guarded call waits for the next slot."""
        bucket = make()
        ran: list[str] = []
        await guarded_async(bucket, form, ran)
        async with anyio.create_task_group() as tg:
            tg.start_soon(guarded_async, bucket, form, ran)
            await settle()
            assert ran == ["x"]
            clock.advance(0.25)
        assert ran == ["x", "x"]

    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_reject_true_sync_forms_raise_at_once(
        self, make: Callable[..., LeakyBucket], form: str, clock: ManualClock, events: list[Event]
    ) -> None:
        """With reject=True a busy bucket raises RateLimitExceeded without running the call."""
        bucket = make(reject=True)
        ran: list[str] = []
        guarded_sync(bucket, form, ran)
        with pytest.raises(RateLimitExceeded) as info:
            guarded_sync(bucket, form, ran)
        assert info.value.retry_after == 0.25
        assert ran == ["x"]
        assert clock.monotonic() == 0
        assert limited(events) == [(1, 0.25, True, 0.0)]

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_reject_true_async_forms_raise_at_once(
        self, make: Callable[..., LeakyBucket], form: str
    ) -> None:
        """With reject=True the async forms raise at once too."""
        bucket = make(reject=True)
        ran: list[str] = []
        await guarded_async(bucket, form, ran)
        with anyio.fail_after(5), pytest.raises(RateLimitExceeded) as info:
            await guarded_async(bucket, form, ran)
        assert info.value.retry_after == 0.25
        assert ran == ["x"]
        assert bucket.waiting == 0


@pytest.mark.anyio
class TestNoBlockingOnALoop:
    """A sync form that would wait, on a thread running an event loop, refuses to block it."""

    @pytest.mark.parametrize("form", ["acquire_sync", *SYNC_FORMS])
    async def test_a_sync_form_that_would_wait_raises(
        self,
        make: Callable[..., LeakyBucket],
        form: str,
        clock: ManualClock,
        events: list[Event],
        anyio_backend: str,
    ) -> None:
        """RuntimeError names the loop and the async forms; the slot stays free."""
        bucket = make()

        def take() -> None:
            if form == "acquire_sync":
                bucket.acquire_sync()
            else:
                guarded_sync(bucket, form, [])

        take()  # the bucket is idle: admitted at once, even on the loop
        with pytest.raises(RuntimeError, match=anyio_backend) as info:
            take()
        assert "LeakyBucket 'lb'" in str(info.value)
        assert "async with bucket:" in str(info.value)
        assert bucket.waiting == 0
        assert bucket.available == 3
        assert clock.monotonic() == 0
        assert limited(events) == []
        clock.advance(0.25)
        take()  # the refused request took no slot

    async def test_a_full_queue_still_raises_rate_limit_exceeded(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A request refused at once (it would not wait) keeps its usual error."""
        bucket = make(capacity=1)
        bucket.acquire_sync()
        async with line_of(bucket, clock) as line:
            await line.join("a")
            with pytest.raises(RateLimitExceeded):
                bucket.acquire_sync()
            await line.advance_to(0.25)
            assert line.served == [("a", 0.25)]

    async def test_a_worker_thread_of_the_loop_may_wait(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """anyio.to_thread workers run no loop: there the sync forms wait as always."""
        bucket = make()
        bucket.acquire_sync()

        def blocking() -> float:
            bucket.acquire_sync(timeout=timedelta(seconds=1))
            return clock.monotonic()

        with anyio.fail_after(5):
            assert await anyio.to_thread.run_sync(blocking) == 0.25


@pytest.mark.anyio
class TestEvents:
    async def test_waits_and_refusals(
        self, make: Callable[..., LeakyBucket], clock: ManualClock, events: list[Event]
    ) -> None:
        """Queued requests publish rejected=False; a full queue publishes rejected=True."""
        bucket = make(name="shaper", capacity=1)
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", 1)
            await line.join("b", 1)
            await line.advance_to(0.25)
        assert limited(events) == [(1, 0.25, False, 0.0), (1, 0.25, True, 0.0)]
        assert {e.source for e in events} == {"shaper"}


class TestRepr:
    @pytest.mark.anyio
    async def test_repr(self, make: Callable[..., LeakyBucket], clock: ManualClock) -> None:
        """repr names the bucket and shows the rate, the next slot and the queue."""
        bucket = make(name="out")
        assert repr(bucket) == "<LeakyBucket 'out' 4/s, next slot in 0.000s, 0/3 waiting>"
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")
            assert repr(bucket) == "<LeakyBucket 'out' 4/s, next slot in 0.250s, 1/3 waiting>"
            await line.advance_to(0.25)


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
            LeakyBucket(rate, 5, clock=clock)
        assert repr(rate) in str(info.value)

    @pytest.mark.parametrize(("capacity", "error"), [*BAD_NUMBERS, (0.5, ValueError)])
    def test_bad_capacity(self, clock: ManualClock, capacity: Any, error: type[Exception]) -> None:
        """capacity must be a finite number >= 1; the error names 'capacity' and the value."""
        with pytest.raises(error, match="'capacity'") as info:
            LeakyBucket(1, capacity, clock=clock)
        assert repr(capacity) in str(info.value)

    @pytest.mark.parametrize(
        ("option", "value", "error"),
        [
            ("reject", 1, TypeError),
            ("reject", None, TypeError),
            ("name", "", ValueError),
            ("name", 3, TypeError),
            ("clock", object(), TypeError),
            ("clock", time.monotonic, TypeError),
            ("bus", object(), TypeError),
        ],
    )
    def test_bad_options(
        self, clock: ManualClock, option: str, value: Any, error: type[Exception]
    ) -> None:
        """reject, name, clock and bus are checked at construction, naming the option."""
        options: dict[str, Any] = {"clock": clock, option: value}
        with pytest.raises(error, match=f"'{option}'"):
            LeakyBucket(1, 1, **options)

    @pytest.mark.parametrize(("value", "error"), BAD_NUMBERS)
    def test_bad_set_rate_and_set_capacity_change_nothing(
        self, make: Callable[..., LeakyBucket], value: Any, error: type[Exception]
    ) -> None:
        """set_rate and set_capacity check values like the constructor and keep the old ones."""
        bucket = make()
        with pytest.raises(error, match="'rate'"):
            bucket.set_rate(value)
        with pytest.raises(error, match="'capacity'"):
            bucket.set_capacity(value)
        assert (bucket.rate, bucket.capacity, bucket.available) == (4, 3, 3)


MODULE_CLOCK = ManualClock()
MODULE_BUCKET = LeakyBucket(4, 3, name="module-leaky", clock=MODULE_CLOCK, bus=EventBus())


async def use_module_bucket() -> list[float]:
    """Queue three waiters on the module-level bucket; return when each was admitted."""
    start = MODULE_CLOCK.monotonic()
    MODULE_CLOCK.advance(1)  # whatever came before is long past
    assert MODULE_BUCKET.try_acquire()
    times: list[float] = []

    async def one() -> None:
        await MODULE_BUCKET.acquire()
        times.append(MODULE_CLOCK.monotonic() - start - 1)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
            await settle()
        for _ in range(3):
            MODULE_CLOCK.advance(0.25)
            await settle()
    return times


class TestModuleLevel:
    def test_bucket_made_at_import_works_under_every_loop(self) -> None:
        """A bucket built with no loop running serves asyncio.run twice and trio.run."""
        expected = pytest.approx([0.25, 0.5, 0.75])
        assert asyncio.run(use_module_bucket()) == expected
        assert asyncio.run(use_module_bucket()) == expected
        assert trio.run(use_module_bucket) == expected
        assert MODULE_BUCKET.waiting == 0


@pytest.mark.anyio
class TestReset:
    def test_clears_the_schedule(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """After a reset the next request is admitted at once, and spacing starts from it."""
        bucket = make()
        assert bucket.try_acquire()
        assert not bucket.try_acquire()
        clock.advance(0.125)
        bucket.reset()
        assert bucket.try_acquire()
        assert not bucket.try_acquire()
        clock.advance(0.25 - BEFORE)
        assert not bucket.try_acquire()
        clock.advance(BEFORE)
        assert bucket.try_acquire()

    def test_an_idle_bucket_is_unchanged(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Resetting an idle bucket changes nothing: still one admission, then 1/rate."""
        bucket = make()
        clock.advance(10)
        bucket.reset()
        assert bucket.try_acquire()
        assert not bucket.try_acquire()

    def test_keeps_the_settings(self, make: Callable[..., LeakyBucket]) -> None:
        """Rate and capacity (as last set) and the name survive a reset."""
        bucket = make()
        bucket.set_rate(2)
        bucket.set_capacity(5)
        assert bucket.try_acquire()
        bucket.reset()
        assert (bucket.rate, bucket.capacity, bucket.name, bucket.available) == (2, 5, "lb", 5)
        assert repr(bucket) == "<LeakyBucket 'lb' 2/s, next slot in 0.000s, 0/5 waiting>"

    def test_publishes_nothing(self, make: Callable[..., LeakyBucket], events: list[Event]) -> None:
        """A reset is not a decision on a request: no event."""
        bucket = make()
        assert bucket.try_acquire()
        bucket.reset()
        assert events == []

    async def test_waiters_keep_their_places_and_spacing(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """Queued requests are not released together: the first goes now, the rest 1/rate apart."""
        bucket = make(capacity=4)
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a")  # slot 0.25
            await line.join("b", 2)  # slot 0.5, occupying two
            await line.join("c")  # slot 1.0
            await line.advance_to(0.125)
            bucket.reset()
            await settle()
            assert line.served == [("x", 0), ("a", 0.125)]
            assert bucket.waiting == 2
            assert bucket.available == 1  # b and c still hold three units of room
            await line.advance_to(0.375 - BEFORE)
            assert len(line.served) == 2
            await line.advance_to(0.375)
            assert line.served[-1] == ("b", 0.375)
            await line.advance_to(0.875 - BEFORE)
            assert len(line.served) == 3
            await line.advance_to(0.875)
            assert line.served[-1] == ("c", 0.875)
        assert bucket.available == 4
        assert clock.sleepers == 0

    async def test_timed_waiter_served_by_a_reset_leaves_no_timer(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A waiter with a timeout served by a reset cancels its deadline."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            await line.join("a", timeout=5)
            await line.join("b", timeout=5)
            assert clock.sleepers == 2  # a's slot, b's deadline
            bucket.reset()
            await settle()
            assert line.served == [("x", 0), ("a", 0)]
            assert clock.sleepers == 1  # b heads the queue: one timer, for its slot
            await line.advance_to(0.25)
            assert line.served[-1] == ("b", 0.25)
        assert clock.sleepers == 0

    async def test_a_cancelled_waiter_is_skipped(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A waiter cancelled before the reset holds no slot in the new schedule."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            gone = await line.join("a")
            await line.join("b")
            gone.cancel()
            await settle()
            bucket.reset()
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("x", 0), ("b", 0)]
            assert not bucket.try_acquire()

    async def test_granted_before_and_cancelled_after_frees_no_slot(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A slot granted before a reset is not freed after it: no two admissions at once."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            head = await line.join("a")  # slot 0.25
            await line.join("b")
            head.cancel()  # pending: a has not run since
            clock.advance(0.25)
            bucket.set_rate(4)  # re-dispatch: a is admitted before it sees its cancellation
            bucket.reset()  # b is admitted at once, the next slot is 0.5
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("x", 0), ("b", 0.25)]
            assert not bucket.try_acquire()
            await line.join("c")
            await line.advance_to(0.5 - BEFORE)
            assert len(line.served) == 2
            await line.advance_to(0.5)
            assert line.served[-1] == ("c", 0.5)

    async def test_granted_by_the_reset_and_cancelled_frees_its_slot(
        self, make: Callable[..., LeakyBucket], clock: ManualClock
    ) -> None:
        """A slot granted by the reset itself is freed as usual when its waiter is cancelled."""
        bucket = make()
        async with line_of(bucket, clock) as line:
            await line.join("x")
            head = await line.join("a")
            await line.join("b")
            head.cancel()  # pending: a has not run since
            bucket.reset()  # a is admitted before it sees its cancellation
            await settle()
            assert line.cancelled == ["a"]
            assert line.served == [("x", 0), ("b", 0)]  # b took a's slot
            assert not bucket.try_acquire()

    async def test_reset_from_a_thread_wakes_an_async_waiter(self) -> None:
        """On the real clock a reset from another thread serves a task waiting for ages."""
        bucket = LeakyBucket(0.001, 1, bus=EventBus())
        assert bucket.try_acquire()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bucket.acquire)
                await settle()
                assert bucket.waiting == 1
                await anyio.to_thread.run_sync(bucket.reset)
        assert bucket.waiting == 0

    def test_reset_wakes_a_blocked_thread(self) -> None:
        """On the real clock a reset serves a thread blocked in acquire_sync."""
        bucket = LeakyBucket(0.001, 1, bus=EventBus())
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


@pytest.mark.anyio
class TestPer:
    def test_count_per_period(self, clock: ManualClock) -> None:
        """per(10, 60): one admission every 6 s, and a queue of 10 by default."""
        bucket = LeakyBucket.per(10, 60, clock=clock, bus=EventBus())
        assert bucket.rate == 10 / 60
        assert bucket.capacity == 10
        assert bucket.name == "leaky-bucket"
        assert bucket.try_acquire()
        assert not bucket.try_acquire()
        clock.advance(6)
        assert bucket.try_acquire()

    async def test_the_default_queue_waits_at_most_a_period(self, clock: ManualClock) -> None:
        """With the default capacity the last request that finds room waits one period."""
        bucket = LeakyBucket.per(4, 1, clock=clock, bus=EventBus())
        async with line_of(bucket, clock) as line:
            for label in "xabcd":
                await line.join(label)
            with pytest.raises(RateLimitExceeded):
                await bucket.acquire()
            await line.run_to(0.25, 0.5, 0.75, 1.0)
            assert line.served == [("x", 0), ("a", 0.25), ("b", 0.5), ("c", 0.75), ("d", 1.0)]

    def test_period_as_a_timedelta(self, clock: ManualClock) -> None:
        """The period may be a timedelta: 100 a minute."""
        bucket = LeakyBucket.per(100, timedelta(minutes=1), clock=clock, bus=EventBus())
        assert (bucket.rate, bucket.capacity) == (100 / 60, 100)

    def test_options_pass_through(self, clock: ManualClock) -> None:
        """capacity, reject, name, clock and bus reach the bucket."""
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        bucket = LeakyBucket.per(
            1, timedelta(seconds=2), capacity=7, reject=True, name="relay", clock=clock, bus=bus
        )
        assert (bucket.rate, bucket.capacity, bucket.name) == (0.5, 7, "relay")
        with bucket:
            pass
        with pytest.raises(RateLimitExceeded) as info, bucket:
            pass
        assert info.value.retry_after == 2
        assert limited(seen) == [(1, 2, True, 0)]

    def test_a_subclass_builds_itself(self, clock: ManualClock) -> None:
        """per() on a subclass returns an instance of that subclass."""

        class Relay(LeakyBucket):
            __slots__ = ()

        assert type(Relay.per(5, 1, clock=clock, bus=EventBus())) is Relay

    def test_options_are_keyword_only(self) -> None:
        """Only count and period are positional."""
        with pytest.raises(TypeError):
            LeakyBucket.per(10, 60, 5)  # type: ignore[call-arg]

    @pytest.mark.parametrize(("count", "error"), BAD_NUMBERS)
    def test_bad_count(self, count: Any, error: type[Exception]) -> None:
        """count must be a finite number > 0; the error names 'count' and the value."""
        with pytest.raises(error, match="'count'") as info:
            LeakyBucket.per(count, 60)
        assert repr(count) in str(info.value)

    @pytest.mark.parametrize(
        ("period", "error"),
        [*BAD_NUMBERS, (timedelta(0), ValueError), (timedelta(seconds=-1), ValueError)],
    )
    def test_bad_period(self, period: Any, error: type[Exception]) -> None:
        """period must be positive seconds or timedelta; the error names 'period' and the value."""
        with pytest.raises(error, match="'period'"):
            LeakyBucket.per(10, period)

    def test_count_below_one_needs_a_capacity(self, clock: ManualClock) -> None:
        """The default queue size is the count, so a count under 1 asks for a capacity."""
        with pytest.raises(ValueError, match="'count' must be >= 1 when 'capacity'"):
            LeakyBucket.per(0.5, 1)
        assert LeakyBucket.per(0.5, 1, capacity=1, clock=clock).rate == 0.5

    def test_a_rate_that_overflows_is_refused(self) -> None:
        """A ratio of valid numbers that is no usable rate names both parameters."""
        with pytest.raises(ValueError, match="'count' / 'period'"):
            LeakyBucket.per(1, 1e-320)
