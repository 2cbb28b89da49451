"""resilio.testing: instant mode skips retries' sleeps, caps their tries, keeps breakers
closed, nests, holds only where it was turned on (and in the tasks started there),
and changes nothing until a test turns it on.

Every test leaves the switch off (an autouse fixture checks and clears it), so a
failure here cannot leak instant mode into other test files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilio
from resilio import (
    CircuitBreaker,
    CircuitState,
    Event,
    EventBus,
    ManualClock,
    Retry,
    RetryExhausted,
    RetryScheduled,
    SlidingWindowBreaker,
    backoff,
    compose,
    retry,
    testing,
)
from resilio._instant import SWITCH
from resilio.testing import Instant, instant, is_instant, set_instant


class Boom(Exception):
    """The failure the retried functions raise."""


class Hinted(Exception):
    """A failure carrying a retry_after hint."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@pytest.fixture(autouse=True)
def _switch_off() -> Iterator[None]:
    """Each test starts and must end with instant mode off."""
    assert not SWITCH.on
    yield
    left_on = SWITCH.on
    SWITCH.clear()
    assert not left_on, "the test left instant mode on"


class RecordingClock(ManualClock):
    """A ManualClock that records every sleep it is asked for, sync and async."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: Any) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep_async(seconds)


class Failing:
    """Fails *failures* times (forever by default), then returns "ok"."""

    def __init__(self, failures: float = float("inf"), error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error if self.error is not None else Boom(self.calls)
        return "ok"

    async def acall(self) -> str:
        await anyio.lowlevel.checkpoint()
        return self()


@pytest.fixture
def rclock() -> RecordingClock:
    return RecordingClock()


def policy(clock: ManualClock, bus: EventBus | None = None, **options: Any) -> Retry:
    options.setdefault("jitter", None)
    return Retry(clock=clock, bus=EventBus() if bus is None else bus, **options)


class TestOffByDefault:
    def test_nothing_changes_unless_turned_on(self, rclock: RecordingClock) -> None:
        """Without instant mode a retry sleeps its schedule on its clock, as always."""
        assert not is_instant()
        with pytest.raises(Boom):
            policy(rclock, attempts=3, base_delay=1).call(Failing())
        assert rclock.sleeps == [1.0, 2.0]

    def test_the_success_path_never_reads_the_switch(
        self, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
    ) -> None:
        """A call whose first try succeeds does not look at instant mode at all."""
        reads: list[str] = []

        class Watched:
            @property
            def on(self) -> bool:
                reads.append("on")
                return False

            attempts = None

        monkeypatch.setattr(resilio._retry, "SWITCH", Watched())
        decorated = policy(clock)(lambda: 1)
        for _ in range(100):
            decorated()
        assert reads == []
        with pytest.raises(Boom):
            policy(clock, attempts=2).call(Failing())
        assert reads == ["on", "on"]  # once per failed try


class TestInstant:
    def test_no_sleep_at_all(self, rclock: RecordingClock) -> None:
        """Under instant() the clock is never asked to sleep, and time does not move."""
        failing = Failing()
        with instant():
            with pytest.raises(Boom):
                policy(rclock, attempts=6, base_delay=5).call(failing)
        assert failing.calls == 6
        assert rclock.sleeps == []
        assert rclock.monotonic() == 0.0

    def test_attempts_caps_the_tries(self, clock: ManualClock) -> None:
        """instant(attempts=n) stops every retry after n tries, below its own attempts."""
        failing = Failing()
        with instant(attempts=2), pytest.raises(Boom):
            policy(clock, attempts=10).call(failing)
        assert failing.calls == 2
        fewer = Failing()
        with instant(attempts=5), pytest.raises(Boom):
            policy(clock, attempts=3).call(fewer)
        assert fewer.calls == 3  # a cap above the policy's own changes nothing

    def test_attempts_one_turns_retrying_off(self, clock: ManualClock) -> None:
        """instant(attempts=1): the first error is raised at once, RetryExhausted says so."""
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        with instant(attempts=1), pytest.raises(Boom):
            policy(clock, bus).call(Failing())
        assert [(type(e), getattr(e, "reason", None)) for e in seen] == [
            (RetryExhausted, "attempts")
        ]

    def test_the_cap_ends_an_unbounded_retry(self, clock: ManualClock) -> None:
        """attempts=None with a cap stops at the cap."""
        failing = Failing()
        with instant(attempts=4), pytest.raises(Boom):
            policy(clock, attempts=None).call(failing)
        assert failing.calls == 4

    def test_events_announce_zero_delays(self, clock: ManualClock) -> None:
        """RetryScheduled is still published, with delay=0.0."""
        bus = EventBus()
        seen: list[RetryScheduled] = []
        bus.subscribe(RetryScheduled, seen.append)
        with instant():
            assert policy(clock, bus, attempts=4, base_delay=1).call(Failing(3)) == "ok"
        assert [(e.attempt, e.delay) for e in seen] == [(1, 0.0), (2, 0.0), (3, 0.0)]

    def test_skipped_sleeps_count_against_the_timeout(self, clock: ManualClock) -> None:
        """An unbounded retry with a timeout ends after the tries it would make in real
        time: each skipped sleep counts as if slept."""
        bus = EventBus()
        ended: list[RetryExhausted] = []
        bus.subscribe(RetryExhausted, ended.append)
        failing = Failing()
        with instant(), pytest.raises(Boom):
            policy(clock, bus, attempts=None, base_delay=1, max_delay=1, timeout=10).call(failing)
        assert failing.calls == 11
        assert ended[0].reason == "timeout"
        assert clock.monotonic() == 0.0

    def test_decisions_are_unchanged(self, clock: ManualClock) -> None:
        """A retry_after hint longer than max_delay still ends the retrying at once."""
        failing = Failing(error=Hinted(60))
        with instant(), pytest.raises(Hinted):
            policy(clock, max_delay=10).call(failing)
        assert failing.calls == 1

    def test_delay_functions_are_skipped_too(self, rclock: RecordingClock) -> None:
        """A policy with delay= sleeps nothing either."""
        with instant():
            assert policy(rclock, delay=backoff.constant(30)).call(Failing(4)) == "ok"
        assert rclock.sleeps == []

    def test_inline_loop(self, rclock: RecordingClock) -> None:
        """for attempt in policy: skips its sleeps and honours the cap."""
        failing = Failing()

        def loop() -> None:
            for attempt in policy(rclock, attempts=None, base_delay=1):
                with attempt:
                    failing()

        with instant(attempts=3), pytest.raises(Boom):
            loop()
        assert failing.calls == 3
        assert rclock.sleeps == []

    def test_the_retry_decorator(self, rclock: RecordingClock) -> None:
        """@retry(...) functions are affected like policies built by hand."""

        @retry(attempts=5, base_delay=2, clock=rclock)
        def flaky(failing: Failing) -> str:
            return failing()

        with instant():
            assert flaky(Failing(4)) == "ok"
        assert rclock.sleeps == []

    def test_nesting(self, clock: ManualClock) -> None:
        """Uses nest: the innermost attempts holds; leaving it restores the outer one;
        leaving the outermost turns instant mode off."""
        with instant(attempts=5):
            with instant(attempts=2):
                assert SWITCH.attempts == 2
                failing = Failing()
                with pytest.raises(Boom):
                    policy(clock).call(failing)
                assert failing.calls == 2
            assert is_instant()
            assert SWITCH.attempts == 5
            with instant():
                assert SWITCH.attempts is None
            assert SWITCH.attempts == 5
        assert not is_instant()

    def test_leaving_on_an_error_turns_it_off(self) -> None:
        """An exception leaving the block still ends instant mode, and propagates."""
        with pytest.raises(KeyError), instant():
            raise KeyError
        assert not is_instant()

    def test_one_object_entered_again(self) -> None:
        """One instant() object may be entered any number of times."""
        mode = instant(attempts=2)
        for _ in range(3):
            with mode as entered:
                assert entered is mode
                assert is_instant()
            assert not is_instant()
        assert repr(mode) == "instant(attempts=2)"
        assert isinstance(mode, Instant)


class TestDecorator:
    def test_sync_test_function(self, rclock: RecordingClock) -> None:
        """@instant() runs a def in instant mode, with its arguments and signature kept."""

        @instant(attempts=2)
        def case(failing: Failing, *, label: str) -> tuple[str, bool]:
            with pytest.raises(Boom):
                policy(rclock).call(failing)
            return label, is_instant()

        failing = Failing()
        assert case(failing, label="x") == ("x", True)
        assert failing.calls == 2
        assert not is_instant()
        assert case.__name__ == "case"

    def test_bare_decorator(self) -> None:
        """@instant without parentheses works too."""

        @instant
        def case() -> bool:
            return is_instant()

        assert case() is True
        assert not is_instant()

    @pytest.mark.anyio
    async def test_async_test_function(self, rclock: RecordingClock) -> None:
        """@instant() on an async def stays an async def and holds for its whole run,
        across awaits; an async retry on a ManualClock does not stall."""

        @instant()
        async def case(failing: Failing) -> str:
            await anyio.lowlevel.checkpoint()
            return await policy(rclock, base_delay=10).call_async(failing.acall)

        assert await case(Failing(4)) == "ok"
        assert rclock.sleeps == []
        assert not is_instant()

    @pytest.mark.anyio
    async def test_async_inline_loop_stays_cancellable(self, rclock: RecordingClock) -> None:
        """An async for loop under instant mode still checkpoints at each retry: a scope
        cancelled by the tenth try ends an ever-failing unbounded loop there."""
        failing = Failing()
        with instant(), anyio.CancelScope() as scope:
            async for attempt in policy(rclock, attempts=None):
                with attempt:
                    if failing.calls == 9:
                        scope.cancel()
                    failing()
        assert scope.cancelled_caught
        assert failing.calls == 10
        assert rclock.sleeps == []

    @pytest.mark.anyio
    async def test_sync_retry_on_the_event_loop_thread(self, rclock: RecordingClock) -> None:
        """A sync retry that would refuse to block the loop runs, since it sleeps nothing."""
        with instant():
            assert policy(rclock, base_delay=1).call(Failing(2)) == "ok"

    def test_the_decorator_refuses_a_non_callable(self) -> None:
        """instant()(42) is a TypeError naming the value."""
        with pytest.raises(TypeError, match="42"):
            instant()(42)  # type: ignore[arg-type]


class TestScope:
    def test_other_threads_are_not_affected(self, rclock: RecordingClock) -> None:
        """Instant mode turned on in one thread leaves retries in other threads alone."""
        results: list[tuple[bool, int]] = []
        lock = threading.Lock()

        def worker() -> None:
            failing = Failing()
            with pytest.raises(Boom):
                policy(rclock, attempts=4, base_delay=1).call(failing)
            with lock:
                results.append((is_instant(), failing.calls))

        with instant(attempts=3):
            threads = [threading.Thread(target=worker) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert is_instant()
        assert results == [(False, 4)] * 8
        assert len(rclock.sleeps) == 8 * 3

    def test_each_thread_its_own_mode(self, rclock: RecordingClock) -> None:
        """Threads that each turn it on, with their own caps, get exactly their own."""
        barrier = threading.Barrier(8)
        seen: list[tuple[int, int]] = []
        lock = threading.Lock()

        def worker(cap: int) -> None:
            barrier.wait()
            for _ in range(50):
                with instant(attempts=cap):
                    failing = Failing()
                    with pytest.raises(Boom):
                        policy(rclock, attempts=10, base_delay=1).call(failing)
                    with lock:
                        seen.append((cap, failing.calls))
            assert not is_instant()

        threads = [threading.Thread(target=worker, args=(cap,)) for cap in range(1, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(set(seen)) == [(cap, cap) for cap in range(1, 9)]
        assert rclock.sleeps == []
        assert not SWITCH.on

    def test_concurrent_entries_all_leave(self) -> None:
        """Threads entering and leaving one instant() object at once leave it off."""
        mode = instant()
        barrier = threading.Barrier(8)
        inside: list[bool] = []

        def worker() -> None:
            barrier.wait()
            for _ in range(500):
                with mode:
                    inside.append(is_instant())
                inside.append(not is_instant())

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(inside)
        assert not is_instant()
        assert not SWITCH.on

    @pytest.mark.anyio
    async def test_tasks_started_inside_inherit_it(self, rclock: RecordingClock) -> None:
        """Tasks started under instant mode, and worker threads run through anyio, have it;
        a task started before it was turned on does not."""
        seen: dict[str, bool] = {}
        turned_on = anyio.Event()

        async def record(label: str) -> None:
            seen[label] = is_instant()

        async def started_before() -> None:
            await turned_on.wait()
            seen["before"] = is_instant()

        async with anyio.create_task_group() as outer:
            outer.start_soon(started_before)
            await anyio.lowlevel.checkpoint()
            with instant():
                turned_on.set()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(record, "task")
                seen["thread"] = await anyio.to_thread.run_sync(is_instant)
        assert seen == {"before": False, "task": True, "thread": True}
        assert not is_instant()


class TestSetInstant:
    def test_fixture_switch(self, rclock: RecordingClock) -> None:
        """set_instant(True) turns it on, set_instant(False) off."""
        set_instant(True, attempts=2)
        try:
            assert is_instant()
            failing = Failing()
            with pytest.raises(Boom):
                policy(rclock).call(failing)
            assert failing.calls == 2
        finally:
            set_instant(False)
        assert not is_instant()
        with pytest.raises(Boom):
            policy(rclock, attempts=2, base_delay=1).call(Failing())
        assert rclock.sleeps == [1.0]

    def test_on_again_replaces_rather_than_stacks(self) -> None:
        """set_instant(True) twice needs one set_instant(False); the latest attempts holds."""
        set_instant(True, attempts=3)
        set_instant(True)
        assert SWITCH.attempts is None
        set_instant(False)
        assert not is_instant()

    def test_off_ends_open_blocks_too(self) -> None:
        """set_instant(False) ends instant mode whatever is still open."""
        with instant(), instant():
            set_instant(False)
            assert not is_instant()

    @pytest.mark.parametrize(
        ("call", "error", "shown"),
        [
            (lambda: set_instant(1), TypeError, "'on'"),  # type: ignore[arg-type]
            (lambda: set_instant("yes"), TypeError, "'yes'"),  # type: ignore[arg-type]
            (lambda: set_instant(True, attempts=0), ValueError, "'attempts' must be >= 1: 0"),
            (lambda: set_instant(True, attempts=2.0), TypeError, "'attempts'"),  # type: ignore[arg-type]
            (lambda: set_instant(False, attempts=2), ValueError, "'attempts'"),
            (lambda: instant(attempts=0), ValueError, "'attempts' must be >= 1: 0"),
            (lambda: instant(attempts=True), TypeError, "'attempts'"),
        ],
    )
    def test_bad_input(self, call: Any, error: type[Exception], shown: str) -> None:
        """Bad arguments raise at once, naming the parameter and the value; nothing is
        turned on."""
        with pytest.raises(error, match=shown):
            call()
        assert not is_instant()


def test_public_surface() -> None:
    """resilio.testing lists what it offers, each with a docstring."""
    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name).__doc__


class TestNestingModel:
    @given(st.lists(st.none() | st.integers(1, 5), max_size=12))
    def test_nesting_follows_a_stack(self, caps: list[int | None]) -> None:
        """Blocks nested in any order and any caps: inside each, the innermost cap holds and
        a failing retry makes exactly min(cap, its own attempts) tries; after all, off."""
        clock = ManualClock()

        def nest(level: int) -> None:
            if level == len(caps):
                return
            with instant(attempts=caps[level]):
                cap = caps[level]
                expected = 4 if cap is None else cap
                failing = Failing()
                with pytest.raises(Boom):
                    policy(clock, attempts=4).call(failing)
                assert failing.calls == min(expected, 4)
                nest(level + 1)
                assert SWITCH.attempts == caps[level]
            assert is_instant() == (level > 0)

        nest(0)
        assert not is_instant()
        assert clock.monotonic() == 0.0


class TestBreakers:
    """Under instant mode breakers stay closed, so tests of failures do not trip them."""

    def test_a_circuit_breaker_stays_closed(self, clock: ManualClock) -> None:
        """Failures past the threshold leave it closed under instant(); after, one trips it."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=EventBus())
        failing = Failing()
        with instant():
            for _ in range(5):
                with pytest.raises(Boom):
                    breaker.call(failing)
            assert breaker.state is CircuitState.CLOSED
        assert failing.calls == 5
        with pytest.raises(Boom):
            breaker.call(failing)
        assert breaker.snapshot().state is CircuitState.OPEN

    def test_a_sliding_window_breaker_stays_closed(self, clock: ManualClock) -> None:
        """A failure rate past the threshold leaves a sliding-window breaker closed."""
        breaker = SlidingWindowBreaker(window_size=4, min_calls=2, clock=clock, bus=EventBus())
        with instant():
            for _ in range(10):
                with pytest.raises(Boom):
                    breaker.call(Failing())
            assert breaker.state is CircuitState.CLOSED

    def test_retry_around_a_breaker_reaches_the_dependency_every_try(
        self, rclock: RecordingClock
    ) -> None:
        """compose(Retry, CircuitBreaker) under instant(): every try reaches the dependency,
        no try is rejected, nothing sleeps."""
        failing = Failing()
        guarded = compose(
            Retry(attempts=6, clock=rclock, bus=EventBus()),
            CircuitBreaker(failure_threshold=2, clock=rclock, bus=EventBus()),
        )(failing)
        with instant(), pytest.raises(Boom):
            guarded()
        assert failing.calls == 6
        assert rclock.sleeps == []

    @pytest.mark.anyio
    async def test_async_breaker_stays_closed(self, clock: ManualClock) -> None:
        """The same for an async call, on asyncio and trio."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=EventBus())
        failing = Failing()
        with instant():
            for _ in range(3):
                with pytest.raises(Boom):
                    await breaker.call_async(failing.acall)
        assert breaker.state is CircuitState.CLOSED
