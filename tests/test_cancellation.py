"""Cancellation on asyncio and trio: a cancelled call is neither a success nor a
failure, and gives its half-open probe slot back.

Shaped like anyio's ``test_cancel_during_acquire``: start a task that holds the
breaker, cancel the task group, then check what it left behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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
from resilio._breaker import BreakerBase

pytestmark = pytest.mark.anyio

CLOSED = CircuitState.CLOSED
HALF_OPEN = CircuitState.HALF_OPEN

FORMS = ["call_async", "async_with", "decorator"]
BREAKERS = ["ewma", "sliding"]


async def ok() -> str:
    return "ok"


def make_breaker(kind: str, clock: ManualClock, **options: Any) -> BreakerBase:
    """A CircuitBreaker or a SlidingWindowBreaker that trips on its first failure."""
    if kind == "ewma":
        return CircuitBreaker(failure_threshold=1, clock=clock, bus=EventBus(), **options)
    return SlidingWindowBreaker(
        window_size=1, min_calls=1, slow_call_duration=100.0, clock=clock, bus=EventBus(), **options
    )


def hold(breaker: BreakerBase, form: str) -> Callable[[], Awaitable[None]]:
    """A task body that enters *breaker* through *form* and waits forever inside it."""

    async def body() -> None:
        if form == "call_async":
            await breaker.call_async(anyio.sleep_forever)
        elif form == "decorator":
            await breaker(anyio.sleep_forever)()
        else:
            async with breaker:
                await anyio.sleep_forever()

    return body


async def cancel_while_inside(breaker: BreakerBase, form: str) -> list[str]:
    """Start a task inside the breaker, check it holds it, cancel it; return what ran after."""
    finished: list[str] = []

    async def task() -> None:
        try:
            await hold(breaker, form)()
        finally:
            finished.append("cancelled")

    async with anyio.create_task_group() as tg:
        tg.start_soon(task)
        await anyio.wait_all_tasks_blocked()
        assert finished == []
        tg.cancel_scope.cancel()
    return finished


def half_open(breaker: BreakerBase, clock: ManualClock) -> None:
    """Trip the breaker, wait out its timeout and let one successful probe in."""
    breaker.record_failure()
    clock.advance(30.0)
    breaker.call(lambda: None)
    assert breaker.state is HALF_OPEN


class TestCancelInHalfOpen:
    @pytest.mark.parametrize("kind", BREAKERS)
    @pytest.mark.parametrize("form", FORMS)
    async def test_cancelled_probe_frees_its_slot(
        self, clock: ManualClock, kind: str, form: str
    ) -> None:
        """A probe cancelled while running gives its slot back and counts neither way."""
        breaker = make_breaker(kind, clock, success_threshold=3, half_open_max_calls=1)
        half_open(breaker, clock)

        async def task() -> None:
            await hold(breaker, form)()

        async with anyio.create_task_group() as tg:
            tg.start_soon(task)
            await anyio.wait_all_tasks_blocked()
            snap = breaker.snapshot()  # type: ignore[attr-defined]
            assert snap.half_open_calls == 1
            with pytest.raises(CircuitOpenError):
                await breaker.call_async(ok)  # the only slot is taken
            tg.cancel_scope.cancel()

        snap = breaker.snapshot()  # type: ignore[attr-defined]
        assert snap.state is HALF_OPEN
        assert snap.half_open_calls == 0
        assert snap.consecutive_successes == 1
        assert await breaker.call_async(ok) == "ok"  # admitted: the slot came back
        assert breaker.snapshot().consecutive_successes == 2  # type: ignore[attr-defined]

    @pytest.mark.parametrize("kind", BREAKERS)
    async def test_many_cancelled_probes(self, clock: ManualClock, kind: str) -> None:
        """Cancelling every running probe at once gives back every slot."""
        breaker = make_breaker(kind, clock, success_threshold=2, half_open_max_calls=3)
        half_open(breaker, clock)
        async with anyio.create_task_group() as tg:
            for form in FORMS:
                tg.start_soon(hold(breaker, form))
            await anyio.wait_all_tasks_blocked()
            assert breaker.snapshot().half_open_calls == 3  # type: ignore[attr-defined]
            tg.cancel_scope.cancel()
        snap = breaker.snapshot()  # type: ignore[attr-defined]
        assert (snap.state, snap.half_open_calls, snap.consecutive_successes) == (HALF_OPEN, 0, 1)
        assert await breaker.call_async(ok) == "ok"
        assert breaker.state is CLOSED

    @pytest.mark.parametrize("form", FORMS)
    async def test_cancelled_probe_after_its_replacement(
        self, clock: ManualClock, form: str
    ) -> None:
        """A hung probe cancelled after a replacement was admitted frees nothing of the new one."""
        breaker = make_breaker("ewma", clock, success_threshold=1, half_open_max_calls=1)
        breaker.record_failure()
        clock.advance(30.0)
        async with anyio.create_task_group() as hung:
            hung.start_soon(hold(breaker, form))  # the probe, admitted at t=30
            await anyio.wait_all_tasks_blocked()
            clock.advance(30.0)
            async with anyio.create_task_group() as fresh:
                fresh.start_soon(hold(breaker, form))  # its replacement, at t=60
                await anyio.wait_all_tasks_blocked()
                hung.cancel_scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert breaker.snapshot().half_open_calls == 1  # type: ignore[attr-defined]
                with pytest.raises(CircuitOpenError):
                    await breaker.call_async(ok)
                fresh.cancel_scope.cancel()
        assert breaker.snapshot().half_open_calls == 0  # type: ignore[attr-defined]
        assert await breaker.call_async(ok) == "ok"
        assert breaker.state is CLOSED


class TestCancelInClosed:
    @pytest.mark.parametrize("kind", BREAKERS)
    @pytest.mark.parametrize("form", FORMS)
    async def test_cancelled_call_is_not_a_failure(
        self, clock: ManualClock, kind: str, form: str
    ) -> None:
        """A call cancelled while closed does not count as a failure."""
        breaker = make_breaker(kind, clock)  # one failure would trip it
        assert await cancel_while_inside(breaker, form) == ["cancelled"]
        assert breaker.state is CLOSED
        snap = breaker.snapshot()  # type: ignore[attr-defined]
        if kind == "ewma":
            assert (snap.consecutive_failures, snap.failure_rate) == (0, 0.0)
        else:
            assert (snap.calls, snap.failed_calls) == (0, 0)

    @pytest.mark.parametrize("form", FORMS)
    async def test_cancelled_call_is_not_a_success(self, clock: ManualClock, form: str) -> None:
        """A cancelled call does not reset the consecutive-failure count."""
        breaker = CircuitBreaker(failure_threshold=3, clock=clock, bus=EventBus())
        breaker.record_failure()
        breaker.record_failure()
        await cancel_while_inside(breaker, form)
        assert breaker.snapshot().consecutive_failures == 2
        breaker.record_failure()
        assert breaker.state is CircuitState.OPEN

    @pytest.mark.parametrize("form", FORMS)
    async def test_cancelled_call_leaves_the_window_empty(
        self, clock: ManualClock, form: str
    ) -> None:
        """A cancelled call is not an outcome in the sliding window."""
        breaker = SlidingWindowBreaker(window_size=4, min_calls=4, clock=clock, bus=EventBus())
        breaker.record_success()
        await cancel_while_inside(breaker, form)
        assert breaker.snapshot().calls == 1


class TestCancelByTimeout:
    async def test_timeout_inside_the_call(self, clock: ManualClock) -> None:
        """anyio.move_on_after() around a half-open probe frees the slot the same way."""
        breaker = make_breaker("ewma", clock, success_threshold=2)
        half_open(breaker, clock)
        with anyio.move_on_after(0):
            await breaker.call_async(anyio.sleep_forever)
        snap = breaker.snapshot()  # type: ignore[attr-defined]
        assert (snap.state, snap.half_open_calls, snap.consecutive_successes) == (HALF_OPEN, 0, 1)
        await breaker.call_async(ok)
        assert breaker.state is CLOSED


class TestCancelHealthCheck:
    async def test_outer_cancellation_ends_the_block(self, clock: ManualClock) -> None:
        """Cancelling a scope around a health_check block ends it and its task cleanly."""
        breaker = make_breaker("ewma", clock)
        breaker.record_failure()
        probes: list[int] = []

        async def probe() -> bool:
            probes.append(1)
            return False

        with anyio.CancelScope() as scope:
            async with breaker.health_check(probe, interval=1.0):
                await anyio.wait_all_tasks_blocked()
                assert clock.sleepers == 1
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert clock.sleepers == 0
        assert probes == []

    async def test_cancelled_during_a_probe(self, clock: ManualClock) -> None:
        """Leaving the block while a probe runs cancels the probe; the breaker stays open."""
        breaker = make_breaker("ewma", clock)
        breaker.record_failure()
        started = anyio.Event()

        async def probe() -> bool:
            started.set()
            await anyio.sleep_forever()
            return True

        async with breaker.health_check(probe, interval=1.0):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
            await started.wait()
        assert breaker.state is CircuitState.OPEN
        assert clock.sleepers == 0
