"""compose() and Timeout: stacking order, the retry + breaker + limiter + timeout recipe,
timeouts on asyncio and trio, the ``with`` / ``async with`` forms, cancellation and
configuration checks.

Time is a ManualClock moved by the test (another task) between
``anyio.wait_all_tasks_blocked()`` checkpoints; nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import math
import subprocess
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from random import Random
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from resilio import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Composed,
    Event,
    EventBus,
    Fallback,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    RejectedError,
    Retry,
    RetryBudget,
    RetryScheduled,
    TimedOut,
    Timeout,
    TokenBucket,
    compose,
    default_bus,
    retry,
)
from resilio._compose import TimeoutStats
from resilio._guard import Guard
from resilio._registry import live

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class Boom(Exception):
    """The failure the guarded functions raise."""


class Recorder(Guard):
    """A guard that writes each step of the permission protocol to a shared log."""

    def __init__(self, name: str, log: list[str], *, reject: bool = False) -> None:
        self.name = name
        self.log = log
        self.reject = reject

    def _acquire(self) -> object:
        if self.reject:
            self.log.append(f"{self.name} rejects")
            raise RejectedError(self.name, None)
        self.log.append(f"{self.name} acquire")
        return self.name

    def _on_success(self, token: Any) -> None:
        self.log.append(f"{self.name} success")

    def _on_error(self, token: Any, exc: Exception) -> None:
        self.log.append(f"{self.name} error {type(exc).__name__}")

    def _release(self, token: Any) -> None:
        self.log.append(f"{self.name} release")


class Outcome:
    """What a task running a guarded call ended with; ``done`` stays False if cancelled."""

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: Exception | None = None

    async def run(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.value = await fn()
        except Exception as exc:
            self.error = exc
        self.done = True


def half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    """Trip *breaker* (failure_threshold=1), wait out its timeout, let one probe succeed."""
    breaker.record_failure()
    clock.advance(30.0)
    breaker.call(lambda: None)
    assert breaker.state is HALF_OPEN
    assert breaker.snapshot().half_open_calls == 0


def probe_breaker(clock: ManualClock, bus: EventBus, **options: Any) -> CircuitBreaker:
    """A half-open breaker with one free probe slot and one success already counted."""
    breaker = CircuitBreaker(
        name="b", failure_threshold=1, success_threshold=3, clock=clock, bus=bus, **options
    )
    half_open(breaker, clock)
    return breaker


def empty_bucket(clock: ManualClock, bus: EventBus, *, reject: bool = False) -> TokenBucket:
    """A one-token bucket, refilling at one token a second, whose token is taken."""
    bucket = TokenBucket(1.0, 1, reject=reject, name="tb", clock=clock, bus=bus)
    assert bucket.try_acquire()
    return bucket


def normalized(events: list[Event]) -> list[tuple[Any, ...]]:
    """Events as comparable tuples: exceptions become (type, message), sources are dropped."""
    rows = []
    for event in events:
        fields = attrs.asdict(event, recurse=False)
        fields.pop("source")
        fields.pop("wall")  # when it ran, not what happened
        row = [type(event).__name__]
        for key, value in sorted(fields.items()):
            shown = (
                (type(value).__name__, str(value)) if isinstance(value, BaseException) else value
            )
            row.append((key, shown))
        rows.append(tuple(row))
    return rows


async def drive(clock: ManualClock, fn: Callable[[], Awaitable[Any]], step: float = 0.25) -> Any:
    """Await ``fn()`` in a task, advancing the clock by *step* whenever every task is blocked."""
    outcome = Outcome()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, fn)
            while True:
                await anyio.wait_all_tasks_blocked()
                if outcome.done:
                    break
                clock.advance(step)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def timed_form(
    timeout: Timeout, form: str, body: Callable[[], Awaitable[str]]
) -> Callable[[], Awaitable[str]]:
    """Run *body* under *timeout* through one of its forms."""
    if form == "decorator":
        return timeout(body)
    if form == "compose":
        return compose(timeout)(body)
    if form == "call_async":

        async def called() -> str:
            return await timeout.call_async(body)

        return called

    async def block() -> str:
        async with timeout:
            return await body()

    return block


TIMEOUT_FORMS = ["decorator", "compose", "call_async", "async_with"]

# Enters ``compose(Timeout(...), bucket)`` as a block whose bucket refuses ("rejected")
# or makes it wait past the timeout ("slow"), then checks nothing is left behind.
ENTRY_SCRIPT = """
import sys
import anyio
import anyio.lowlevel
from resilio import EventBus, ManualClock, RateLimitExceeded, Timeout, TokenBucket, compose

async def main(scenario):
    clock = ManualClock()
    bucket = TokenBucket(1.0, 1, reject=scenario == "rejected", clock=clock, bus=EventBus())
    assert bucket.try_acquire()

    async def enter():
        try:
            async with compose(Timeout(0.5, clock=clock), bucket):
                print("block ran")
        except (RateLimitExceeded, TimeoutError) as exc:
            print(type(exc).__name__)

    async with anyio.create_task_group() as tg:
        tg.start_soon(enter)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
    if scenario == "slow":
        print("waiting", bucket.waiting)
    print("sleepers", clock.sleepers)
    clock.advance(5.0)
    await anyio.lowlevel.checkpoint()
    print("later work ran")

anyio.run(main, sys.argv[2], backend=sys.argv[1])
"""


class TestStacking:
    def test_order_matches_stacked_decorators_sync(self) -> None:
        """compose(a, b, c)(fn) runs a, b, c around fn exactly as a(b(c(fn))) does."""
        composed_log: list[str] = []
        stacked_log: list[str] = []

        def make(log: list[str]) -> tuple[Recorder, Recorder, Recorder]:
            return Recorder("a", log), Recorder("b", log), Recorder("c", log)

        def work(x: int) -> int:
            return x + 1

        a, b, c = make(composed_log)
        assert compose(a, b, c)(work)(1) == 2
        a2, b2, c2 = make(stacked_log)
        assert a2(b2(c2(work)))(1) == 2
        assert composed_log == stacked_log
        assert composed_log == [
            "a acquire",
            "b acquire",
            "c acquire",
            "c success",
            "b success",
            "a success",
        ]

    @pytest.mark.anyio
    async def test_order_matches_stacked_decorators_async(self) -> None:
        """For async def too: acquired outer to inner, settled inner to outer, errors included."""
        log: list[str] = []
        a, b = Recorder("a", log), Recorder("b", log)

        async def fail() -> None:
            await anyio.lowlevel.checkpoint()
            log.append("fn")
            raise Boom

        with pytest.raises(Boom):
            await compose(a, b)(fail)()
        assert log == ["a acquire", "b acquire", "fn", "b error Boom", "a error Boom"]

    def test_inner_rejection_reaches_outer_as_in_stacked_decorators(self) -> None:
        """A rejection by an inner guard is an error of the call for the guards outside it."""
        log: list[str] = []
        policy = compose(Recorder("a", log), Recorder("b", log, reject=True))
        with pytest.raises(RejectedError):
            policy(lambda: None)()
        assert log == ["a acquire", "b rejects", "a error RejectedError"]

    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_signature_and_metadata_kept(
        self, clock: ManualClock, bus: EventBus, kind: str
    ) -> None:
        """The composed function keeps the name, docstring, signature and colour of the original."""

        def plain(a: int, b: str = "x", *, c: float = 1.0) -> str:
            """Plain docstring."""
            return f"{a}{b}{c}"

        async def coro(a: int, b: str = "x", *, c: float = 1.0) -> str:
            """Coroutine docstring."""
            return f"{a}{b}{c}"

        policies: list[Any] = [
            Retry(clock=clock, bus=bus),
            CircuitBreaker(clock=clock, bus=bus),
            TokenBucket(1, 1, clock=clock, bus=bus),
        ]
        fn: Callable[..., Any] = plain
        if kind == "async":
            fn = coro
            policies.append(Timeout(1.0, clock=clock))
        wrapped = compose(*policies)(fn)
        assert wrapped is not fn
        assert wrapped.__name__ == fn.__name__
        assert wrapped.__qualname__ == fn.__qualname__
        assert wrapped.__doc__ == fn.__doc__
        assert wrapped.__module__ == fn.__module__
        assert inspect.signature(wrapped) == inspect.signature(fn)
        assert inspect.iscoroutinefunction(wrapped) is (kind == "async")

    def test_same_events_as_stacked_decorators_sync(self) -> None:
        """retry + breaker + bucket on a def: same result, calls, time and events as stacking."""
        runs = [self._sync_world(composed=True), self._sync_world(composed=False)]
        assert runs[0] == runs[1]
        result, calls, _, seen = runs[0]
        assert result == "ok"
        assert calls == 4
        assert {row[0] for row in seen} >= {
            "RetryScheduled",
            "CircuitStateChanged",
            "CallRejected",
            "RateLimited",
        }

    @staticmethod
    def _sync_world(*, composed: bool) -> tuple[Any, int, float, list[tuple[Any, ...]]]:
        clock, bus = ManualClock(), EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        policy = Retry(
            attempts=6, base_delay=0.5, jitter=None, random=Random(7).random, clock=clock, bus=bus
        )
        breaker = CircuitBreaker(failure_threshold=3, open_timeout=5.0, clock=clock, bus=bus)
        bucket = TokenBucket(1.0, 1, clock=clock, bus=bus)
        outcomes: list[Any] = [Boom, Boom, Boom, "ok"]
        calls = 0

        def work() -> str:
            nonlocal calls
            outcome = outcomes[calls]
            calls += 1
            if outcome is Boom:
                raise Boom(f"try {calls}")
            return str(outcome)

        fn = compose(policy, breaker, bucket)(work) if composed else policy(breaker(bucket(work)))
        result = fn()
        return result, calls, clock.monotonic(), normalized(seen)

    @pytest.mark.anyio
    async def test_same_events_as_stacked_decorators_async(self) -> None:
        """retry + breaker + bucket + Timeout on an async def: the same as stacking them."""
        runs = [await self._async_world(composed=True), await self._async_world(composed=False)]
        assert runs[0] == runs[1]
        result, starts, seen = runs[0]
        assert result == "ok"
        assert len(starts) == 3
        assert [row[0] for row in seen].count("RetryScheduled") == 3

    @staticmethod
    async def _async_world(*, composed: bool) -> tuple[Any, list[float], list[tuple[Any, ...]]]:
        clock, bus = ManualClock(), EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        policy = Retry(
            attempts=6, base_delay=0.5, jitter=None, random=Random(7).random, clock=clock, bus=bus
        )
        breaker = CircuitBreaker(failure_threshold=2, open_timeout=4.0, clock=clock, bus=bus)
        bucket = TokenBucket(1.0, 1, clock=clock, bus=bus)
        timeout = Timeout(1.0, clock=clock)
        starts: list[float] = []

        async def work() -> str:
            starts.append(clock.monotonic())
            if len(starts) < 3:
                await anyio.sleep_forever()
            return "ok"

        if composed:
            fn = compose(policy, breaker, bucket, timeout)(work)
        else:
            fn = policy(breaker(bucket(timeout(work))))
        result = await drive(clock, fn)
        return result, starts, normalized(seen)

    def test_call_passes_arguments(self, clock: ManualClock, bus: EventBus) -> None:
        """call(fn, *args, **kwargs) runs fn under every policy and returns its result."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        bucket = TokenBucket(1, 2, clock=clock, bus=bus)
        policy = compose(Retry(clock=clock, bus=bus), breaker, bucket)
        assert policy.call(lambda a, *, b: a + b, 2, b=3) == 5
        assert bucket.available == 1.0
        with pytest.raises(Boom):
            compose(breaker, bucket).call(self._raise, Boom("x"))
        assert breaker.snapshot().consecutive_failures == 1

    @staticmethod
    def _raise(exc: Exception) -> None:
        raise exc

    @pytest.mark.anyio
    async def test_call_async_passes_arguments(self, clock: ManualClock, bus: EventBus) -> None:
        """call_async(fn, *args, **kwargs) awaits fn under every policy, Timeout included."""
        bucket = TokenBucket(1, 2, clock=clock, bus=bus)
        policy = compose(CircuitBreaker(clock=clock, bus=bus), bucket, Timeout(1.0, clock=clock))

        async def add(a: int, *, b: int) -> int:
            await anyio.lowlevel.checkpoint()
            return a + b

        assert await policy.call_async(add, 2, b=3) == 5
        assert bucket.available == 1.0
        assert clock.sleepers == 0  # the timeout's timer is gone

    @pytest.mark.anyio
    async def test_timeout_outside_retry_bounds_the_whole_call(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """compose(Timeout, retry) times the whole retry loop, sleeps included."""
        calls = 0

        async def fail() -> None:
            nonlocal calls
            calls += 1
            await anyio.lowlevel.checkpoint()
            raise Boom

        policy = compose(
            Timeout(2.5, clock=clock),
            Retry(attempts=10, base_delay=1.0, multiplier=1.0, jitter=None, clock=clock, bus=bus),
        )
        with pytest.raises(TimeoutError):
            await drive(clock, policy(fail), step=0.5)
        assert clock.monotonic() == 2.5
        assert calls == 3  # at t=0, 1 and 2; cancelled in the sleep before the fourth


class TestRecipe:
    @pytest.mark.anyio
    async def test_retry_breaker_bucket_timeout(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Each try passes the breaker, then the bucket, under its own timeout; the open
        breaker's retry_after paces the retry."""
        breaker = CircuitBreaker(
            name="b",
            failure_threshold=2,
            success_threshold=1,
            open_timeout=8.0,
            clock=clock,
            bus=bus,
        )
        bucket = TokenBucket(1.0, 1, name="tb", clock=clock, bus=bus)
        policy = compose(
            Retry(
                name="r",
                attempts=5,
                base_delay=0.25,
                jitter=None,
                random=lambda: 0.0,  # no spread on the breaker's hint: exact times below
                clock=clock,
                bus=bus,
            ),
            breaker,
            bucket,
            Timeout(2.0, clock=clock),
        )
        starts: list[float] = []

        async def fetch(x: int) -> int:
            starts.append(clock.monotonic())
            if len(starts) <= 2:
                await anyio.sleep_forever()
            return 2 * x

        outcome = Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, lambda: policy(fetch)(21))
            await anyio.wait_all_tasks_blocked()
            assert starts == [0.0]
            assert bucket.available == 0.0  # the first try took the token
            clock.advance(1.75)
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().consecutive_failures == 0  # not timed out yet
            clock.advance(0.25)  # t=2: the first try times out, a failure for the breaker
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().consecutive_failures == 1
            assert starts == [0.0]
            clock.advance(0.25)  # t=2.25: the second try, with a fresh timeout
            await anyio.wait_all_tasks_blocked()
            assert starts == [0.0, 2.25]
            clock.advance(1.75)  # t=4: past the first deadline, within its own
            await anyio.wait_all_tasks_blocked()
            assert breaker.state is CLOSED
            clock.advance(0.25)  # t=4.25: the second timeout opens the breaker
            await anyio.wait_all_tasks_blocked()
            assert breaker.state is OPEN
            clock.advance(0.5)  # t=4.75: the third try is rejected by the breaker
            await anyio.wait_all_tasks_blocked()
            assert starts == [0.0, 2.25]
            clock.advance(7.25)  # t=12: the retry still waits for the breaker
            await anyio.wait_all_tasks_blocked()
            assert starts == [0.0, 2.25]
            assert not outcome.done
            clock.advance(0.25)  # t=12.25: the open timeout is over; a probe passes
            await anyio.wait_all_tasks_blocked()
        assert outcome.error is None
        assert outcome.value == 42
        assert starts == [0.0, 2.25, 12.25]
        assert breaker.state is CLOSED
        retries = [e for e in events if isinstance(e, RetryScheduled)]
        assert [e.delay for e in retries] == [0.25, 0.5, 7.5]
        assert [type(e.error) for e in retries] == [TimeoutError, TimeoutError, CircuitOpenError]
        assert [e.at for e in retries] == [2.0, 4.25, 4.75]
        changes = [(e.old, e.new) for e in events if isinstance(e, CircuitStateChanged)]
        assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
        rejected = [e for e in events if isinstance(e, CallRejected)]
        assert [e.retry_after for e in rejected] == [7.5]

    @pytest.mark.anyio
    async def test_timeout_starts_after_admission(self, clock: ManualClock, bus: EventBus) -> None:
        """An inner Timeout does not count the wait for a token; an outer one does."""
        bucket = empty_bucket(clock, bus)
        release = anyio.Event()
        starts: list[float] = []

        async def work() -> str:
            starts.append(clock.monotonic())
            await release.wait()
            return "ok"

        outcome = Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, compose(bucket, Timeout(1.0, clock=clock))(work))
            await anyio.wait_all_tasks_blocked()
            assert starts == []
            clock.advance(1.0)  # the token arrives at t=1; the timeout starts now
            await anyio.wait_all_tasks_blocked()
            assert starts == [1.0]
            clock.advance(0.75)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert (outcome.value, outcome.error) == ("ok", None)

        clock.advance(0.25)  # t=2: full again
        assert bucket.try_acquire()  # and empty, the next token at t=3
        outer = Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outer.run, compose(Timeout(0.5, clock=clock), bucket)(work))
            await anyio.wait_all_tasks_blocked()
            clock.advance(0.5)
            await anyio.wait_all_tasks_blocked()
        assert isinstance(outer.error, TimeoutError)
        assert starts == [1.0]
        assert bucket.waiting == 0  # the timed-out waiter left the queue
        clock.advance(0.5)  # t=3
        assert bucket.available == 1.0  # and took no token

    @pytest.mark.parametrize("form", ["decorator", "with"])
    def test_outer_rejects_first(self, clock: ManualClock, bus: EventBus, form: str) -> None:
        """With both refusing, the outermost refuses and the inner one is never asked."""

        def run(policy: Composed) -> None:
            if form == "decorator":
                policy(lambda: None)()
            else:
                with policy:
                    pass

        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        breaker.record_failure()
        bucket = empty_bucket(clock, bus, reject=True)
        seen.clear()
        with pytest.raises(CircuitOpenError):
            run(compose(breaker, bucket))
        assert [type(e) for e in seen] == [CallRejected]
        seen.clear()
        with pytest.raises(RateLimitExceeded):
            run(compose(bucket, breaker))
        assert [type(e) for e in seen] == [RateLimited]


class TestTimeout:
    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_times_out_past_seconds_not_before(self, clock: ManualClock, form: str) -> None:
        """A call still running after `seconds` raises TimeoutError; not a moment before."""
        started = anyio.Event()

        async def hang() -> str:
            started.set()
            await anyio.sleep_forever()
            return "never"

        outcome = Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, timed_form(Timeout(2.0, clock=clock), form, hang))
            await started.wait()
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.999)
            await anyio.wait_all_tasks_blocked()
            assert not outcome.done
            clock.advance(0.002)
            await anyio.wait_all_tasks_blocked()
        assert outcome.done
        assert isinstance(outcome.error, TimeoutError)
        assert clock.sleepers == 0

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_fast_call_passes_through(self, clock: ManualClock, form: str) -> None:
        """A call that finishes in time returns its result and leaves no timer behind."""
        release = anyio.Event()

        async def work() -> str:
            await release.wait()
            return "ok"

        outcome = Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, timed_form(Timeout(2.0, clock=clock), form, work))
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.5)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert (outcome.value, outcome.error) == ("ok", None)
        assert clock.sleepers == 0

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_own_errors_pass_unchanged(self, clock: ManualClock, form: str) -> None:
        """An exception raised in time propagates as it is, not as a TimeoutError."""
        error = Boom("mine")

        async def fail() -> str:
            await anyio.lowlevel.checkpoint()
            raise error

        with pytest.raises(Boom) as info:
            await timed_form(Timeout(2.0, clock=clock), form, fail)()
        assert info.value is error

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_outer_cancellation_is_not_a_timeout(self, clock: ManualClock, form: str) -> None:
        """Cancelled from outside, the call is cancelled: no TimeoutError, no timer left."""
        outcome = Outcome()

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome.run, timed_form(Timeout(2.0, clock=clock), form, hang))
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert not outcome.done
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_real_clock_fast_call(self) -> None:
        """On the system clock a fast call returns its result."""

        async def work(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x

        assert await Timeout(60.0)(work)(7) == 7
        async with Timeout(60.0) as entered:
            await anyio.lowlevel.checkpoint()
        assert isinstance(entered, Timeout)

    @pytest.mark.anyio
    async def test_async_with_returns_the_timeout(self, clock: ManualClock) -> None:
        """``async with timeout as t`` binds the Timeout itself."""
        timeout = Timeout(1.0, clock=clock)
        async with timeout as entered:
            pass
        assert entered is timeout

    @pytest.mark.anyio
    async def test_nested_blocks_of_one_timeout(self, clock: ManualClock) -> None:
        """Nested blocks of one Timeout keep their own deadlines; the outer survives the inner."""
        timeout = Timeout(5.0, clock=clock)
        reached: list[float] = []

        async def body() -> None:
            async with timeout:  # deadline 5
                await clock.sleep_async(1.0)
                async with timeout:  # deadline 6
                    await clock.sleep_async(1.0)
                reached.append(clock.monotonic())  # t=2, the inner left in time
                try:
                    async with timeout:  # deadline 7, but the outer ends first
                        await anyio.sleep_forever()
                except TimeoutError:
                    reached.append(-1.0)  # the inner block did not time out
                    raise

        with pytest.raises(TimeoutError):
            await drive(clock, body, step=0.5)
        assert reached == [2.0]
        assert clock.monotonic() == 5.0
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_concurrent_blocks_of_one_timeout(self, clock: ManualClock) -> None:
        """Blocks of one Timeout in several tasks time out independently, in any exit order."""
        timeout = Timeout(2.0, clock=clock)
        releases = {name: anyio.Event() for name in "abc"}
        outcomes = {name: Outcome() for name in "abc"}

        def block(name: str) -> Callable[[], Awaitable[str]]:
            async def run() -> str:
                async with timeout:
                    await releases[name].wait()
                return name

            return run

        async with anyio.create_task_group() as tg:
            tg.start_soon(outcomes["a"].run, block("a"))  # deadline 2
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
            tg.start_soon(outcomes["b"].run, block("b"))  # deadline 3
            tg.start_soon(outcomes["c"].run, block("c"))  # deadline 3
            await anyio.wait_all_tasks_blocked()
            releases["c"].set()  # the last entered leaves first
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.5)  # t=2.5: a times out, b does not
            await anyio.wait_all_tasks_blocked()
            assert isinstance(outcomes["a"].error, TimeoutError)
            assert not outcomes["b"].done
            releases["b"].set()
        assert (outcomes["b"].value, outcomes["b"].error) == ("b", None)
        assert (outcomes["c"].value, outcomes["c"].error) == ("c", None)
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_decorated_calls_time_out_independently(self, clock: ManualClock) -> None:
        """Concurrent calls of one timed function each get their own deadline."""

        @Timeout(2.0, clock=clock)
        async def hang(name: str) -> str:
            await anyio.sleep_forever()
            return name

        first, second = Outcome(), Outcome()
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run, lambda: hang("a"))
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
            tg.start_soon(second.run, lambda: hang("b"))
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
            assert isinstance(first.error, TimeoutError)
            assert not second.done
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
        assert isinstance(second.error, TimeoutError)

    def test_sync_function_is_a_type_error(self, clock: ManualClock) -> None:
        """Timeout on a plain def fails at decoration and points to running it in a thread."""

        def blocking() -> None:
            """Never called."""

        with pytest.raises(TypeError, match="thread"):
            Timeout(1.0, clock=clock)(blocking)

    @pytest.mark.parametrize("first", ["timeout", "breaker"])
    def test_sync_function_in_a_composition_is_a_type_error(
        self, clock: ManualClock, bus: EventBus, first: str
    ) -> None:
        """A composition holding a Timeout refuses a plain def at decoration, wherever it sits."""
        timeout = Timeout(1.0, clock=clock)
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(timeout, breaker) if first == "timeout" else compose(breaker, timeout)
        calls = 0

        def blocking() -> None:
            nonlocal calls
            calls += 1

        with pytest.raises(TypeError, match="thread"):
            policy(blocking)
        with pytest.raises(TypeError):
            compose(Retry(clock=clock, bus=bus), policy)(blocking)
        assert calls == 0

    @pytest.mark.parametrize(
        ("value", "error"),
        [(0, ValueError), (-1, ValueError), (math.nan, ValueError), ("1", TypeError)],
    )
    def test_bad_seconds(self, value: Any, error: type[Exception]) -> None:
        """A bad 'seconds' fails at construction, naming the parameter and the value."""
        with pytest.raises(error, match="'seconds'") as info:
            Timeout(value)
        assert repr(value) in str(info.value)

    def test_bad_clock(self) -> None:
        """A clock= that is not a clock is a TypeError naming 'clock'."""
        with pytest.raises(TypeError, match="'clock'"):
            Timeout(1.0, clock=object())  # type: ignore[arg-type]

    def test_seconds_and_repr(self) -> None:
        """seconds is a float; repr shows the name, the seconds and the count."""
        timeout = Timeout(2, name="api")
        assert timeout.seconds == 2.0
        assert isinstance(timeout.seconds, float)
        assert repr(timeout) == "<Timeout 'api' 2s: 0 timed out>"
        assert repr(Timeout(0.25)) == "<Timeout 'timeout' 0.25s: 0 timed out>"

    @pytest.mark.parametrize(
        ("options", "error", "text"),
        [
            ({"name": ""}, ValueError, "'name'"),
            ({"name": 3}, TypeError, "'name'"),
            ({"bus": object()}, TypeError, "'bus'"),
        ],
    )
    def test_bad_name_or_bus(
        self, options: dict[str, Any], error: type[Exception], text: str
    ) -> None:
        """A bad name= or bus= fails at construction, naming the parameter."""
        with pytest.raises(error, match=text):
            Timeout(1.0, **options)

    def test_publishes_on_the_default_bus_by_default(self, clock: ManualClock) -> None:
        """Without bus=, a Timeout publishes on default_bus()."""
        assert Timeout(1.0, clock=clock)._bus is default_bus()


# Task.cancelling() and Task.uncancel(), which asyncio.timeout and Timeout's loop timer use.
NEEDS_UNCANCEL = pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.11+")


class TestTimeoutCounters:
    """TimedOut events and the timed_out count, in every form and on both clocks."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_timed_out_call_publishes_and_counts(
        self, clock: ManualClock, bus: EventBus, events: list[Event], form: str
    ) -> None:
        """A call cancelled by the timeout publishes TimedOut(source, at, seconds) and counts."""
        timeout = Timeout(2.0, name="api", clock=clock, bus=bus)

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        with pytest.raises(TimeoutError, match="timed out after 2s"):
            await drive(clock, timed_form(timeout, form, hang))
        assert events == [TimedOut(source="api", at=2.0, seconds=2.0)]
        assert timeout.stats() == TimeoutStats(timed_out=1)
        assert "1 timed out" in repr(timeout)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_other_endings_publish_nothing(
        self, clock: ManualClock, bus: EventBus, events: list[Event], form: str
    ) -> None:
        """A result, the call's own error (a TimeoutError too) and an outer cancellation
        are no timeouts: nothing published, nothing counted."""
        timeout = Timeout(2.0, clock=clock, bus=bus)

        async def ok() -> str:
            await anyio.lowlevel.checkpoint()
            return "ok"

        async def own_timeout() -> str:
            await anyio.lowlevel.checkpoint()
            raise TimeoutError("the call's own")

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        assert await timed_form(timeout, form, ok)() == "ok"
        with pytest.raises(TimeoutError, match="the call's own"):
            await timed_form(timeout, form, own_timeout)()
        with anyio.move_on_after(0.001):  # the real clock ends it, not the timeout
            await timed_form(timeout, form, hang)()
        assert events == []
        assert timeout.stats().timed_out == 0

    @pytest.mark.anyio
    async def test_counter_totals_equal_the_events(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """A scripted mix of fast and slow calls: the count equals the TimedOut events."""
        timeout = Timeout(1.0, name="t", clock=clock, bus=bus)
        durations = [0.5, 1.5, 0.25, 3.0, 0.75, 2.0, 0.1]

        async def work(seconds: float) -> float:
            await clock.sleep_async(seconds)
            return seconds

        for seconds in durations:
            with contextlib.suppress(TimeoutError):
                await drive(clock, lambda s=seconds: timeout.call_async(work, s))
        assert timeout.stats().timed_out == len(events) == 3
        assert all(isinstance(e, TimedOut) and e.source == "t" for e in events)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_system_clock_times_out(
        self, bus: EventBus, events: list[Event], form: str
    ) -> None:
        """On the system clock (a loop timer on asyncio, a cancel scope on trio) a call past
        its time raises TimeoutError, publishes and counts, and leaves no cancellation."""
        timeout = Timeout(0.002, name="real", bus=bus)

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        with anyio.fail_after(5), pytest.raises(TimeoutError, match=r"timed out after 0\.002s"):
            await timed_form(timeout, form, hang)()
        assert [(type(e), e.source, e.seconds) for e in events] == [(TimedOut, "real", 0.002)]
        assert timeout.stats().timed_out == 1
        assert_no_pending_cancellation()
        await anyio.lowlevel.checkpoint()  # the task is not cancelled later

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", TIMEOUT_FORMS)
    async def test_system_clock_outer_cancellation(
        self, bus: EventBus, events: list[Event], form: str
    ) -> None:
        """On the system clock, a scope outside that ends first cancels the call: it is no
        timeout, and the scope outside catches its own cancellation."""
        timeout = Timeout(60.0, bus=bus)

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        with anyio.move_on_after(0.002) as scope:
            await timed_form(timeout, form, hang)()
        assert scope.cancelled_caught
        assert events == []
        assert timeout.stats().timed_out == 0
        assert_no_pending_cancellation()

    @pytest.mark.anyio
    async def test_system_clock_own_errors_and_results(self, bus: EventBus) -> None:
        """On the system clock, a result and the call's own TimeoutError pass unchanged."""
        timeout = Timeout(60.0, bus=bus)
        error = TimeoutError("mine")

        async def fail() -> None:
            await anyio.lowlevel.checkpoint()
            raise error

        async def ok(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x

        with pytest.raises(TimeoutError) as info:
            await timeout.call_async(fail)
        assert info.value is error
        assert await timeout.call_async(ok, 3) == 3
        assert timeout.stats().timed_out == 0
        assert_no_pending_cancellation()

    @pytest.mark.anyio
    async def test_system_clock_nested(self, bus: EventBus, events: list[Event]) -> None:
        """Nested timeouts on the system clock: the one that runs out raises, the other
        goes on (inner first), or is cancelled without a timeout of its own (outer first)."""
        inner, outer = Timeout(0.002, name="inner", bus=bus), Timeout(60.0, name="outer", bus=bus)

        async def hang() -> str:
            await anyio.sleep_forever()
            return "never"

        async def survives_inner() -> str:
            with pytest.raises(TimeoutError):
                await inner.call_async(hang)
            await anyio.lowlevel.checkpoint()
            return "outer went on"

        assert await outer.call_async(survives_inner) == "outer went on"
        short, long = Timeout(0.002, name="short", bus=bus), Timeout(60.0, name="long", bus=bus)

        async def inside_long() -> str:
            return await long.call_async(hang)

        with pytest.raises(TimeoutError):
            await short.call_async(inside_long)
        assert [e.source for e in events] == ["inner", "short"]
        assert_no_pending_cancellation()

    @NEEDS_UNCANCEL
    def test_system_clock_swallowed_cancellation_asyncio(self, bus: EventBus) -> None:
        """On asyncio, a call that absorbs the timeout's cancellation and returns gives its
        value, counts no timeout, and leaves the task with no cancellation pending."""
        timeout = Timeout(0.002, bus=bus)

        async def stubborn() -> str:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass
            return "kept"

        async def main() -> tuple[str, int]:
            value = await timeout.call_async(stubborn)
            task = asyncio.current_task()
            assert task is not None
            return value, task.cancelling()

        assert asyncio.run(main()) == ("kept", 0)
        assert timeout.stats().timed_out == 0

    @NEEDS_UNCANCEL
    def test_system_clock_inside_a_cancelled_task_asyncio(self, bus: EventBus) -> None:
        """On asyncio, a timeout in the clean-up of a task being cancelled still times out,
        and the task's own cancellation stays pending for it to honour."""
        timeout = Timeout(0.002, bus=bus)

        async def hang() -> str:
            await asyncio.sleep(60)
            return "never"

        async def cleanup() -> tuple[str, int]:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                try:
                    await timeout.call_async(hang)
                except TimeoutError:
                    task = asyncio.current_task()
                    assert task is not None
                    return "timed out in clean-up", task.cancelling()
            return "not cancelled", 0

        async def main() -> tuple[str, int]:
            task = asyncio.create_task(cleanup())
            await asyncio.sleep(0)
            task.cancel()
            return await task

        assert asyncio.run(main()) == ("timed out in clean-up", 1)
        assert timeout.stats().timed_out == 1

    def test_exact_totals_from_threads(self, bus: EventBus, events: list[Event]) -> None:
        """Eight threads, each with its own event loop, timing calls out through one
        Timeout: the count is exact and equals the events."""
        timeout = Timeout(0.001, bus=bus)
        per_thread = 20

        async def hang() -> None:
            await anyio.sleep_forever()

        async def loop() -> None:
            for _ in range(per_thread):
                with pytest.raises(TimeoutError):
                    await timeout.call_async(hang)

        threads = [
            threading.Thread(target=anyio.run, args=(loop,), kwargs={"backend": backend})
            for backend in ["asyncio", "trio"] * 4
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert timeout.stats().timed_out == len(events) == 8 * per_thread

    def test_tracked_while_alive(self) -> None:
        """A Timeout is in the registry of live primitives until it is dropped."""
        timeout = Timeout(1.0, name="tracked")
        assert any(p is timeout for p in live())
        ref = weakref.ref(timeout)
        del timeout
        gc.collect()
        assert ref() is None


def assert_no_pending_cancellation() -> None:
    """On asyncio, the current task has no cancellation left pending (uncancel balanced)."""
    if sys.version_info < (3, 11):  # no Task.cancelling() to ask
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not on asyncio
        return
    assert task is not None
    assert task.cancelling() == 0


class TestBlocks:
    def test_with_acquires_outer_to_inner_and_releases_in_reverse(self) -> None:
        """``with compose(a, b)`` enters a then b, and settles b then a."""
        log: list[str] = []
        policy = compose(Recorder("a", log), Recorder("b", log))
        with policy as entered:
            log.append("body")
        assert entered is policy
        with pytest.raises(Boom), policy:
            raise Boom
        assert log == [
            *["a acquire", "b acquire", "body", "b success", "a success"],
            *["a acquire", "b acquire", "b error Boom", "a error Boom"],
        ]

    @pytest.mark.anyio
    async def test_async_with_acquires_outer_to_inner_and_releases_in_reverse(
        self, clock: ManualClock
    ) -> None:
        """``async with compose(a, Timeout, b)`` enters in order and settles in reverse."""
        log: list[str] = []
        policy = compose(Recorder("a", log), Timeout(1.0, clock=clock), Recorder("b", log))
        async with policy as entered:
            log.append("body")
        assert entered is policy
        with pytest.raises(Boom):
            async with policy:
                raise Boom
        assert log == [
            *["a acquire", "b acquire", "body", "b success", "a success"],
            *["a acquire", "b acquire", "b error Boom", "a error Boom"],
        ]
        assert clock.sleepers == 0

    def test_with_real_guards(self, clock: ManualClock, bus: EventBus) -> None:
        """A with block takes a token and reports its outcome to the breaker."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        bucket = TokenBucket(1, 3, clock=clock, bus=bus)
        policy = compose(breaker, bucket)
        with policy:
            pass
        with pytest.raises(Boom), policy:
            raise Boom
        assert bucket.available == 1.0
        assert breaker.snapshot().consecutive_failures == 1

    @pytest.mark.anyio
    async def test_async_with_timeout_counts_as_a_failure(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """A block that runs past the inner Timeout raises TimeoutError; the breaker counts it."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(
            breaker, TokenBucket(1, 1, clock=clock, bus=bus), Timeout(1.0, clock=clock)
        )

        async def slow() -> None:
            async with policy:
                await anyio.sleep_forever()

        async def fast() -> str:
            async with policy:
                await anyio.lowlevel.checkpoint()
            return "ok"

        with pytest.raises(TimeoutError):
            await drive(clock, slow)
        assert breaker.snapshot().consecutive_failures == 1
        assert await drive(clock, fast) == "ok"
        assert breaker.snapshot().consecutive_failures == 0
        assert clock.sleepers == 0

    def test_inner_rejection_leaks_nothing_with(self, clock: ManualClock, bus: EventBus) -> None:
        """A ``with`` block refused by the inner bucket gives the breaker's probe slot back."""
        breaker = probe_breaker(clock, bus, ignore=RateLimitExceeded)
        bucket = empty_bucket(clock, bus, reject=True)
        with pytest.raises(RateLimitExceeded), compose(breaker, bucket):
            pytest.fail("the block must not run")
        assert breaker.snapshot().half_open_calls == 0
        clock.advance(1.0)
        breaker.call(lambda: None)  # the slot is free for the next probe
        assert breaker.snapshot().consecutive_successes == 2

    @pytest.mark.anyio
    async def test_inner_rejection_leaks_nothing_async_with(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """An ``async with`` block refused by the inner bucket gives the probe slot back."""
        breaker = probe_breaker(clock, bus, ignore=RateLimitExceeded)
        bucket = empty_bucket(clock, bus, reject=True)
        with pytest.raises(RateLimitExceeded):
            async with compose(breaker, bucket, Timeout(1.0, clock=clock)):
                pytest.fail("the block must not run")
        assert breaker.snapshot().half_open_calls == 0
        assert clock.sleepers == 0

    def test_inner_rejection_settles_outer_guard_with(self) -> None:
        """A with block refused by an inner guard settles what the outer one granted."""
        log: list[str] = []
        with (
            pytest.raises(RejectedError),
            compose(Recorder("a", log), Recorder("b", log, reject=True)),
        ):
            log.append("body")
        assert log[:2] == ["a acquire", "b rejects"]
        assert log[2:] in (["a error RejectedError"], ["a release"])

    @pytest.mark.parametrize(
        ("scenario", "expected"),
        [
            ("rejected", ["RateLimitExceeded", "sleepers 0", "later work ran"]),
            ("slow", ["TimeoutError", "waiting 0", "sleepers 0", "later work ran"]),
        ],
    )
    def test_failed_entry_inside_timeout_closes_its_scope(
        self, anyio_backend: str, scenario: str, expected: list[str]
    ) -> None:
        """A block whose inner entry fails inside an outer Timeout leaves no cancel scope open.

        Refused by the bucket, the block raises the refusal; timed out waiting for a token,
        it raises TimeoutError; either way no timer is left to cancel later work. Run in a
        subprocess: an unclosed cancel scope corrupts a trio run beyond one test.
        """
        done = subprocess.run(
            [sys.executable, "-c", ENTRY_SCRIPT, anyio_backend, scenario],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.stdout.splitlines() == expected, done.stderr
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr

    def test_with_timeout_is_a_type_error(self, clock: ManualClock, bus: EventBus) -> None:
        """``with`` on a composition holding a Timeout is a TypeError, and takes nothing."""
        breaker = probe_breaker(clock, bus)
        bucket = TokenBucket(1, 1, clock=clock, bus=bus)
        with (
            pytest.raises(TypeError, match="async with"),
            compose(breaker, bucket, Timeout(1.0, clock=clock)),
        ):
            pytest.fail("the block must not run")
        assert bucket.available == 1.0
        assert breaker.snapshot().half_open_calls == 0

    @pytest.mark.parametrize("where", ["outer", "inner"])
    def test_with_retry_is_a_type_error(
        self, clock: ManualClock, bus: EventBus, where: str
    ) -> None:
        """``with`` on a composition holding a Retry says a block cannot be run again."""
        bucket = TokenBucket(1, 1, clock=clock, bus=bus)
        policy_retry = Retry(clock=clock, bus=bus)
        policy = (
            compose(policy_retry, bucket) if where == "outer" else compose(bucket, policy_retry)
        )
        with pytest.raises(TypeError, match=r"Retry.*again"), policy:
            pytest.fail("the block must not run")
        assert bucket.available == 1.0

    @pytest.mark.anyio
    async def test_async_with_retry_is_a_type_error(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """``async with`` on a composition holding a Retry is a TypeError too, and takes nothing."""
        bucket = TokenBucket(1, 1, clock=clock, bus=bus)
        policy = compose(bucket, Retry(clock=clock, bus=bus), Timeout(1.0, clock=clock))
        with pytest.raises(TypeError, match=r"Retry.*again"):
            async with policy:
                pytest.fail("the block must not run")
        assert bucket.available == 1.0
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_one_policy_in_concurrent_blocks(self, clock: ManualClock, bus: EventBus) -> None:
        """One composed policy held by several tasks at once: each block settles its own."""
        breaker = probe_breaker(clock, bus, half_open_max_calls=2)
        policy = compose(breaker, TokenBucket(10, 10, clock=clock, bus=bus))
        releases = [anyio.Event(), anyio.Event()]

        async def hold(index: int) -> None:
            async with policy:
                await releases[index].wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold, 0)
            tg.start_soon(hold, 1)
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().half_open_calls == 2
            releases[0].set()
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().half_open_calls == 1
            releases[1].set()
        assert breaker.state is CLOSED


class TestCancellation:
    @staticmethod
    def _enter(policy: Composed, form: str) -> Callable[[], Awaitable[None]]:
        """A task body that runs anyio.sleep_forever under *policy* through *form*."""

        async def body() -> None:
            if form == "call_async":
                await policy.call_async(anyio.sleep_forever)
            elif form == "decorator":
                await policy(anyio.sleep_forever)()
            else:
                async with policy:
                    await anyio.sleep_forever()

        return body

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ["call_async", "decorator", "async_with"])
    async def test_cancel_while_running(self, clock: ManualClock, bus: EventBus, form: str) -> None:
        """A call cancelled inside frees the probe slot and takes no token beyond its own."""
        breaker = probe_breaker(clock, bus)
        bucket = TokenBucket(1.0, 1, clock=clock, bus=bus)
        policy = compose(breaker, bucket, Timeout(10.0, clock=clock))
        finished: list[str] = []

        async def task() -> None:
            await self._enter(policy, form)()
            finished.append("returned")

        async with anyio.create_task_group() as tg:
            tg.start_soon(task)
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().half_open_calls == 1
            assert bucket.available == 0.0
            tg.cancel_scope.cancel()
        assert finished == []
        snap = breaker.snapshot()
        assert (snap.state, snap.half_open_calls, snap.consecutive_successes) == (HALF_OPEN, 0, 1)
        assert bucket.available == 0.0
        assert clock.sleepers == 0
        clock.advance(1.0)
        assert bucket.available == 1.0

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ["call_async", "decorator", "async_with"])
    async def test_cancel_while_waiting_for_a_token(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """A call cancelled in the bucket's queue frees the probe slot and leaves the queue."""
        breaker = probe_breaker(clock, bus)
        bucket = empty_bucket(clock, bus)
        policy = compose(breaker, bucket, Timeout(10.0, clock=clock))
        finished: list[str] = []

        async def task() -> None:
            await self._enter(policy, form)()
            finished.append("returned")

        async with anyio.create_task_group() as tg:
            tg.start_soon(task)
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().half_open_calls == 1
            assert bucket.waiting == 1
            tg.cancel_scope.cancel()
        assert finished == []
        snap = breaker.snapshot()
        assert (snap.state, snap.half_open_calls, snap.consecutive_successes) == (HALF_OPEN, 0, 1)
        assert bucket.waiting == 0
        clock.advance(1.0)
        assert bucket.available == 1.0  # the cancelled waiter took nothing
        assert await policy.call_async(anyio.lowlevel.checkpoint) is None  # the slot is back


class TestCompose:
    def test_flattens_nested_compositions(self, clock: ManualClock, bus: EventBus) -> None:
        """compose(compose(a, b), c) and compose(a, compose(b, c)) are compose(a, b, c)."""
        a = Retry(clock=clock, bus=bus)
        b = CircuitBreaker(clock=clock, bus=bus)
        c = TokenBucket(1, 1, clock=clock, bus=bus)
        assert compose(compose(a, b), c).policies == (a, b, c)
        assert compose(a, compose(b, c)).policies == (a, b, c)
        assert compose(compose(compose(a)), compose(b, c)).policies == (a, b, c)
        assert isinstance(compose(c), Composed)
        assert compose(c).policies == (c,)

    def test_no_policies(self) -> None:
        """compose() with nothing to compose is a TypeError."""
        with pytest.raises(TypeError):
            compose()

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "breaker",
            lambda fn: fn,
            Retry,
            retry,
            RetryBudget(),
            CircuitBreaker,
        ],
    )
    def test_non_primitive(self, clock: ManualClock, bus: EventBus, value: Any) -> None:
        """Anything but a resilio primitive is a TypeError naming it, wherever it is."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        for args in [(value,), (breaker, value), (value, breaker)]:
            with pytest.raises(TypeError) as info:
                compose(*args)
            assert repr(value) in str(info.value)

    def test_repr(self, clock: ManualClock, bus: EventBus) -> None:
        """repr names every policy, outermost first."""
        parts = [
            Retry(name="r", clock=clock, bus=bus),
            CircuitBreaker(name="b", clock=clock, bus=bus),
            Timeout(2.5, clock=clock),
        ]
        text = repr(compose(*parts))
        assert text.startswith("compose(")
        positions = [text.index(repr(part)) for part in parts]
        assert positions == sorted(positions)
        assert "2.5" in text

    def test_the_same_primitive_twice_is_refused(self, clock: ManualClock, bus: EventBus) -> None:
        """A primitive given twice would count each call twice: a ValueError naming it."""
        breaker = CircuitBreaker(name="twice", clock=clock, bus=bus)
        bucket = TokenBucket(1, 1, clock=clock, bus=bus)
        timeout = Timeout(1.0, clock=clock)
        policy = Retry(clock=clock, bus=bus)
        cases = [
            (breaker, breaker),
            (breaker, bucket, breaker),
            (compose(breaker, bucket), breaker),
            (compose(bucket), compose(bucket)),
            (timeout, timeout),
            (policy, breaker, policy),
        ]
        for args in cases:
            with pytest.raises(ValueError, match="twice") as info:
                compose(*args)
            assert repr(args[-1] if not isinstance(args[-1], Composed) else bucket) in str(
                info.value
            )
        # Two primitives that are equal in configuration are still two primitives.
        other = CircuitBreaker(name="twice", clock=clock, bus=bus)
        assert compose(breaker, other).policies == (breaker, other)

    def test_timeout_takes_a_timedelta(self, clock: ManualClock) -> None:
        """Timeout's seconds may be a datetime.timedelta."""
        assert Timeout(timedelta(milliseconds=1500), clock=clock).seconds == 1.5


@pytest.mark.anyio
class TestMisuse:
    """Calling through a composition with the wrong kind of function runs nothing."""

    async def test_call_async_refuses_a_plain_function(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """A plain def given to call_async is refused before any policy or the call runs."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        calls = 0

        def plain() -> int:
            nonlocal calls
            calls += 1
            return 1

        policy = compose(Retry(attempts=3, clock=clock, bus=bus), breaker)
        with pytest.raises(TypeError, match=r"use call\(\)"):
            await policy.call_async(plain)  # type: ignore[arg-type]
        assert calls == 0
        assert breaker.state is CLOSED
        assert clock.monotonic() == 0

    def test_call_refuses_an_async_function(self, clock: ManualClock, bus: EventBus) -> None:
        """An async def given to call is refused before anything runs."""

        async def coro() -> None:
            """Never called."""

        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        with pytest.raises(TypeError, match=r"use call_async\(\)"):
            compose(breaker).call(coro)
        assert breaker.state is CLOSED

    async def test_generators_are_refused(self, clock: ManualClock, bus: EventBus) -> None:
        """Generator functions are refused by call and call_async, as by the decorators."""

        def gen() -> Iterator[int]:
            yield 1

        async def agen() -> AsyncIterator[int]:
            yield 1

        policy = compose(CircuitBreaker(clock=clock, bus=bus))
        with pytest.raises(TypeError, match="generator"):
            policy.call(gen)
        with pytest.raises(TypeError, match="generator"):
            await policy.call_async(agen)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            policy.call(42)  # type: ignore[arg-type]


class TestFailFast:
    """The defaults fail fast: an open breaker ends the retrying; rejections are neutral."""

    def test_retry_around_an_open_breaker_does_not_sleep(self, clock: ManualClock) -> None:
        """compose(Retry(), CircuitBreaker()) with defaults: once open, no sleep at all."""
        bus = EventBus()
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(Retry(clock=clock, bus=bus), breaker)

        def always_fails() -> None:
            raise ConnectionError

        for _ in range(3):
            with pytest.raises((ConnectionError, CircuitOpenError)):
                policy.call(always_fails)
            while breaker.state is not OPEN:
                with pytest.raises((ConnectionError, CircuitOpenError)):
                    policy.call(always_fails)
            before = clock.monotonic()
            with pytest.raises(CircuitOpenError):
                policy.call(always_fails)
            assert clock.monotonic() == before

    @pytest.mark.anyio
    async def test_retry_around_an_open_breaker_does_not_sleep_async(
        self, clock: ManualClock
    ) -> None:
        """The same on asyncio and trio: an open breaker's 30 s hint ends the retrying."""
        bus = EventBus()
        breaker = CircuitBreaker(clock=clock, bus=bus)
        while breaker.state is not OPEN:
            breaker.record_failure()
        policy = compose(Retry(clock=clock, bus=bus), breaker)

        async def always_fails() -> None:
            raise ConnectionError

        with anyio.fail_after(5):  # a hang detector only: the clock never moves by itself
            with pytest.raises(CircuitOpenError):
                await policy.call_async(always_fails)
        assert clock.monotonic() == 0

    @pytest.mark.parametrize("failure_on", [(Exception,), (ConnectionError,)])
    def test_a_rejecting_bucket_inside_a_breaker_is_neutral(
        self, clock: ManualClock, bus: EventBus, failure_on: tuple[type[Exception], ...]
    ) -> None:
        """A reject=True bucket's rejections count neither way in the breaker around it."""
        breaker = CircuitBreaker(failure_threshold=2, failure_on=failure_on, clock=clock, bus=bus)
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=bus)
        policy = compose(breaker, bucket)
        failing = True

        def work() -> None:
            if failing:
                raise ConnectionError

        for _ in range(5):  # one admitted failure, then rejections
            with pytest.raises((ConnectionError, RateLimitExceeded)):
                policy.call(work)
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 1
        clock.advance(1)
        with pytest.raises(ConnectionError):
            policy.call(work)  # the second real failure in a row opens it
        assert breaker.state is OPEN


class TestFallbackInCompose:
    """A Fallback stacks in compose() like every primitive, but not in with blocks."""

    def test_compose_takes_a_fallback(self, clock: ManualClock, bus: EventBus) -> None:
        """compose() accepts a Fallback; the decorator and call() replace the final error."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(Fallback(lambda exc: "cached", bus=bus), breaker)
        assert isinstance(policy, Composed)
        assert policy.policies[1] is breaker

        def down() -> None:
            raise Boom

        assert policy(down)() == "cached"
        assert policy.call(down) == "cached"
        assert "Fallback 'fallback'" in repr(policy)

    @pytest.mark.anyio
    async def test_call_async_with_a_fallback(self, clock: ManualClock, bus: EventBus) -> None:
        """call_async of a composed policy awaits the async handler's value."""

        async def cached(exc: Exception) -> str:
            await anyio.lowlevel.checkpoint()
            return "cached"

        async def down() -> None:
            await anyio.lowlevel.checkpoint()
            raise Boom

        policy = compose(Fallback(cached, bus=bus), CircuitBreaker(clock=clock, bus=bus))
        assert await policy.call_async(down) == "cached"

    def test_with_block_is_refused(self, bus: EventBus) -> None:
        """A block has no value to replace: a composed Fallback refuses ``with``, enters
        nothing."""
        breaker = CircuitBreaker(bus=bus)
        policy = compose(breaker, Fallback(lambda exc: None, bus=bus))
        with pytest.raises(TypeError, match="Fallback works only as a decorator"), policy:
            pass  # pragma: no cover
        assert breaker.snapshot().consecutive_failures == 0

    @pytest.mark.anyio
    async def test_async_with_block_is_refused(self, bus: EventBus) -> None:
        """``async with`` refuses a composed Fallback too."""
        policy = compose(Fallback(lambda exc: None, bus=bus), CircuitBreaker(bus=bus))
        with pytest.raises(TypeError, match="Fallback works only as a decorator"):
            async with policy:
                pass  # pragma: no cover

    def test_the_same_fallback_twice_is_refused(self, bus: EventBus) -> None:
        """One Fallback twice in a policy is a ValueError, as for every primitive."""
        fallback = Fallback(lambda exc: None, bus=bus)
        with pytest.raises(ValueError, match="twice"):
            compose(fallback, CircuitBreaker(bus=bus), fallback)

    def test_nested_composed_with_a_fallback_flattens(self, bus: EventBus) -> None:
        """A composed policy holding a Fallback composes again, flattened."""
        fallback, breaker = Fallback(lambda exc: None, bus=bus), CircuitBreaker(bus=bus)
        assert compose(compose(fallback), breaker).policies == (fallback, breaker)
