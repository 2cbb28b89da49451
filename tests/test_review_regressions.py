"""Regression tests for defects found in review of the foundation and the breakers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    EventBus,
    ManualClock,
    SlidingWindowBreaker,
)


class Boom(Exception):
    """The failure the guarded functions raise."""


class TestOverlappingCalls:
    """The decorator reports every outcome, even when calls overlap."""

    @pytest.mark.anyio
    async def test_success_after_overlapping_failure_is_counted(self, clock: ManualClock) -> None:
        """A call that started clean and succeeds after another failed resets the count."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), failure_threshold=2)
        release = anyio.Event()

        @breaker
        async def slow_success() -> None:
            await release.wait()

        @breaker
        async def fail() -> None:
            raise Boom

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(slow_success)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(Boom):
                await fail()
            release.set()
        assert breaker.snapshot().consecutive_failures == 0
        with pytest.raises(Boom):
            await fail()
        assert breaker.state is CircuitState.CLOSED

    def test_sync_success_after_overlapping_failure_is_counted(self, clock: ManualClock) -> None:
        """The same holds for a sync function running in another thread."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), failure_threshold=2)
        started, release = threading.Event(), threading.Event()

        @breaker
        def slow_success() -> None:
            started.set()
            release.wait(5)

        worker = threading.Thread(target=slow_success)
        worker.start()
        assert started.wait(5)
        with pytest.raises(Boom):
            breaker.call(_raise_boom)
        release.set()
        worker.join(5)
        assert breaker.snapshot().consecutive_failures == 0


class TestOrphanedBlocks:
    """A ``with`` block left from another task still settles its permit."""

    @pytest.mark.anyio
    async def test_async_generator_closed_elsewhere(self, clock: ManualClock) -> None:
        """Closing a generator that holds a half-open probe slot frees the slot."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), open_timeout=1)
        breaker.force_open()
        breaker.reset()
        for _ in range(5):
            breaker.record_failure()
        clock.advance(1)

        async def stream() -> AsyncIterator[int]:
            async with breaker:
                yield 1
                yield 2

        gen = stream()
        entered = anyio.Event()

        async def consume() -> None:
            await gen.__anext__()
            entered.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            await entered.wait()
        assert breaker.snapshot().half_open_calls == 1
        await gen.aclose()
        assert breaker.snapshot().half_open_calls == 0
        assert breaker.call(lambda: 3) == 3


class TestHealthCheckGeneration:
    """A probe answers only for the open period it was started in."""

    @pytest.mark.anyio
    async def test_stale_probe_does_not_half_open_a_later_period(self, clock: ManualClock) -> None:
        """A probe from an earlier open period that returns late changes nothing."""
        breaker = CircuitBreaker(
            clock=clock, bus=EventBus(), failure_threshold=1, success_threshold=1, open_timeout=10
        )
        probe_may_return = anyio.Event()
        probes = 0

        async def probe() -> bool:
            nonlocal probes
            probes += 1
            if probes == 1:
                await probe_may_return.wait()
                return True
            await anyio.sleep_forever()
            return False  # pragma: no cover

        with pytest.raises(Boom):
            breaker.call(_raise_boom)
        async with breaker.health_check(probe, interval=1):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1)
            await anyio.wait_all_tasks_blocked()
            assert probes == 1
            clock.advance(10)
            breaker.call(lambda: None)  # half-open, then closed by one success
            with pytest.raises(Boom):
                breaker.call(_raise_boom)  # open again: a new period
            probe_may_return.set()
            await anyio.wait_all_tasks_blocked()
            assert breaker.state is CircuitState.OPEN
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: None)


class TestManualClockRace:
    """A sleeper whose deadline passed before it was scheduled still wakes."""

    @pytest.mark.anyio
    async def test_past_deadline_wakes_at_once(self, clock: ManualClock) -> None:
        """schedule() of a deadline already reached fires immediately."""
        fired = anyio.Event()
        clock.advance(10)
        clock.schedule(5, fired.set)
        with anyio.fail_after(1):
            await fired.wait()


class TestSlidingReset:
    """reset() empties the window, whatever runs concurrently."""

    def test_reset_clears_fast_path_before_new_counter(self, clock: ManualClock) -> None:
        """After reset, a token from before it does not tick the new window."""
        breaker = SlidingWindowBreaker(clock=clock, bus=EventBus(), window_size=4, min_calls=2)
        for _ in range(4):
            breaker.call(lambda: None)
        token = breaker._free
        breaker.reset()
        breaker._on_success(token)
        assert breaker.snapshot().calls == 0


class TestPredicateErrors:
    """A failure_on or ignore predicate that raises does not wedge the breaker."""

    def test_raising_predicate_counts_a_failure_and_keeps_the_error(
        self, clock: ManualClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The caller sees its own exception; the probe slot is given back."""

        def predicate(exc: BaseException) -> bool:
            raise RuntimeError("bad predicate")

        breaker = CircuitBreaker(
            clock=clock, bus=EventBus(), failure_on=predicate, failure_threshold=1
        )
        with pytest.raises(Boom):
            breaker.call(_raise_boom)
        assert breaker.state is CircuitState.OPEN
        assert "failure_on/ignore raised" in caplog.text


class TestMisuse:
    """Forms that cannot work are refused loudly."""

    def test_call_with_async_function_is_type_error(self, clock: ManualClock) -> None:
        """call() refuses a coroutine function instead of returning an unawaited coroutine."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())

        async def work() -> None:
            pass

        with pytest.raises(TypeError, match="call_async"):
            breaker.call(work)

    def test_generator_functions_are_refused(self, clock: ManualClock) -> None:
        """Decorating a generator function is a TypeError at decoration."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())

        def numbers() -> object:
            yield 1

        with pytest.raises(TypeError, match="generators"):
            breaker(numbers)

    def test_huge_number_names_the_parameter(self) -> None:
        """An int too large for a float is a ValueError naming the parameter."""
        with pytest.raises(ValueError, match="'open_timeout'"):
            CircuitBreaker(open_timeout=10**400)


def _raise_boom() -> None:
    raise Boom
