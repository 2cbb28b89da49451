"""The clocks: the real one, and the virtual one every other test drives by hand."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from resilio import Clock, ManualClock, SystemClock

BAD_SECONDS: list[tuple[Any, type[Exception]]] = [
    (-1.0, ValueError),
    (-0.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    ("1", TypeError),
    (None, TypeError),
    (True, TypeError),
    ([1.0], TypeError),
]


async def _sleep_then_record(clock: ManualClock, seconds: float, woken: list[float]) -> None:
    """Sleep on *clock*, then note the virtual time at which the task woke."""
    await clock.sleep_async(seconds)
    woken.append(clock.monotonic())


class TestSystemClock:
    """The real clock delegates to time.monotonic, time.sleep and anyio.sleep."""

    def test_is_a_clock(self) -> None:
        """SystemClock satisfies the runtime-checkable Clock protocol."""
        assert isinstance(SystemClock(), Clock)

    def test_monotonic_follows_time_monotonic(self) -> None:
        """monotonic() reads the same monotonic source as time.monotonic()."""
        clock = SystemClock()
        before = time.monotonic()
        now = clock.monotonic()
        after = time.monotonic()
        assert before <= now <= after

    def test_monotonic_never_goes_backwards(self) -> None:
        """Successive readings never decrease."""
        clock = SystemClock()
        readings = [clock.monotonic() for _ in range(1000)]
        assert readings == sorted(readings)

    def test_sleep_zero_returns(self) -> None:
        """A blocking sleep of 0 (and of a millisecond) returns."""
        clock = SystemClock()
        clock.sleep(0)
        clock.sleep(0.001)

    @pytest.mark.parametrize(("seconds", "error"), [(-1.0, ValueError), (math.nan, ValueError)])
    def test_sleep_rejects_bad_delay(self, seconds: float, error: type[Exception]) -> None:
        """A negative or NaN blocking sleep raises, naming 'seconds'."""
        with pytest.raises(error, match="'seconds'"):
            SystemClock().sleep(seconds)

    def test_sleep_rejects_non_number(self) -> None:
        """A blocking sleep of a non-number is a TypeError naming 'seconds'."""
        bad: Any = "1"
        with pytest.raises(TypeError, match="'seconds'"):
            SystemClock().sleep(bad)

    @pytest.mark.anyio
    async def test_sleep_async_zero_returns(self) -> None:
        """An async sleep of 0 returns on both backends."""
        await SystemClock().sleep_async(0)

    @pytest.mark.anyio
    async def test_sleep_async_zero_is_a_checkpoint(self) -> None:
        """An async sleep of 0 is a cancellation point."""
        reached = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await SystemClock().sleep_async(0)
            reached = True
        assert scope.cancelled_caught
        assert not reached

    @pytest.mark.anyio
    async def test_sleep_async_rejects_negative(self) -> None:
        """A negative async sleep raises ValueError naming 'seconds'."""
        with pytest.raises(ValueError, match="'seconds'"):
            await SystemClock().sleep_async(-1.0)

    def test_repr(self) -> None:
        """The repr names the class."""
        assert repr(SystemClock()) == "SystemClock()"


class TestManualClock:
    """Virtual time that moves only through advance() or a blocking sleep."""

    def test_is_a_clock(self) -> None:
        """ManualClock satisfies the runtime-checkable Clock protocol."""
        assert isinstance(ManualClock(), Clock)

    def test_monotonic_returns_start(self) -> None:
        """monotonic() starts at 0 by default, or at the given start."""
        assert ManualClock().monotonic() == 0.0
        assert ManualClock(start=123.5).monotonic() == 123.5
        assert ManualClock(7).monotonic() == 7.0

    def test_time_stands_still(self) -> None:
        """Without advance() the time does not move, whatever real time passes."""
        clock = ManualClock(start=5.0)
        time.sleep(0.001)
        assert clock.monotonic() == 5.0

    def test_advance_moves_time(self, clock: ManualClock) -> None:
        """advance() moves the time forward by exactly the given amount, cumulatively."""
        clock.advance(1.5)
        assert clock.monotonic() == 1.5
        clock.advance(2)
        assert clock.monotonic() == 3.5
        clock.advance(0)
        assert clock.monotonic() == 3.5

    @pytest.mark.parametrize(("seconds", "error"), BAD_SECONDS)
    def test_advance_rejects_bad_seconds(
        self, clock: ManualClock, seconds: Any, error: type[Exception]
    ) -> None:
        """advance() of a negative, NaN, infinite or non-number amount raises, naming it."""
        clock.advance(2.0)
        with pytest.raises(error, match="'seconds'") as info:
            clock.advance(seconds)
        assert repr(seconds) in str(info.value)
        assert clock.monotonic() == 2.0

    @pytest.mark.parametrize(
        ("start", "error"),
        [(math.nan, ValueError), (math.inf, ValueError), ("0", TypeError), (None, TypeError)],
    )
    def test_start_is_validated(self, start: Any, error: type[Exception]) -> None:
        """A NaN, infinite or non-number start is rejected, naming 'start'."""
        with pytest.raises(error, match="'start'"):
            ManualClock(start=start)

    def test_time_never_goes_backwards(self, clock: ManualClock) -> None:
        """Through advances, sleeps and rejected advances, readings never decrease."""
        readings = [clock.monotonic()]
        for step in (0.25, 0.0, 3.0, 1e-9, 10.0):
            clock.advance(step)
            readings.append(clock.monotonic())
            clock.sleep(step)
            readings.append(clock.monotonic())
            with pytest.raises(ValueError):
                clock.advance(-step - 1.0)
            readings.append(clock.monotonic())
        assert readings == sorted(readings)

    def test_blocking_sleep_advances_the_clock(self, clock: ManualClock) -> None:
        """A blocking sleep moves the virtual time itself and returns at once."""
        clock.sleep(365 * 24 * 3600)
        assert clock.monotonic() == 365 * 24 * 3600
        clock.sleep(0)
        assert clock.monotonic() == 365 * 24 * 3600

    def test_blocking_sleep_fires_due_callbacks(self, clock: ManualClock) -> None:
        """A blocking sleep wakes what its advance makes due, like advance() does."""
        fired: list[str] = []
        clock.schedule(2.0, lambda: fired.append("due"))
        clock.schedule(9.0, lambda: fired.append("later"))
        clock.sleep(2.0)
        assert fired == ["due"]

    @pytest.mark.parametrize(("seconds", "error"), [(-1.0, ValueError), (math.nan, ValueError)])
    def test_blocking_sleep_rejects_bad_delay(
        self, clock: ManualClock, seconds: float, error: type[Exception]
    ) -> None:
        """A negative or NaN blocking sleep raises, naming 'seconds', and leaves time alone."""
        with pytest.raises(error, match="'seconds'"):
            clock.sleep(seconds)
        assert clock.monotonic() == 0.0

    def test_repr_shows_the_time(self) -> None:
        """The repr shows the virtual time (and the number of sleepers)."""
        clock = ManualClock(start=42.5)
        assert "ManualClock" in repr(clock)
        assert "42.5" in repr(clock)
        clock.advance(1.0)
        assert "43.5" in repr(clock)


class TestManualClockLimits:
    def test_advance_refuses_to_reach_infinity(self) -> None:
        clock = ManualClock()
        clock.advance(1e308)
        with pytest.raises(ValueError, match="'seconds'"):
            clock.advance(1e308)
        assert clock.monotonic() == 1e308

    def test_durations_take_timedelta(self) -> None:
        clock = ManualClock()
        clock.advance(timedelta(minutes=1))
        clock.sleep(timedelta(milliseconds=500))
        assert clock.monotonic() == 60.5

    def test_negative_timedelta_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'seconds' must be >= 0"):
            ManualClock().advance(timedelta(seconds=-1))


class TestManualClockSchedule:
    """schedule() and cancel(): the callback layer beneath every sleeper."""

    def test_callback_fires_when_deadline_reached(self, clock: ManualClock) -> None:
        """A callback fires at the advance that reaches its deadline, not before."""
        fired: list[float] = []
        clock.schedule(5.0, lambda: fired.append(clock.monotonic()))
        assert clock.sleepers == 1
        clock.advance(4.5)
        assert fired == []
        clock.advance(0.5)
        assert fired == [5.0]
        assert clock.sleepers == 0
        clock.advance(10.0)
        assert fired == [5.0]

    def test_past_deadline_fires_at_once(self, clock: ManualClock) -> None:
        """A deadline already reached fires at once, and never again."""
        clock.advance(10.0)
        fired: list[str] = []
        handle = clock.schedule(3.0, lambda: fired.append("late"))
        assert fired == ["late"]
        assert clock.sleepers == 0
        clock.advance(0)
        clock.cancel(handle)
        assert fired == ["late"]

    def test_callbacks_fire_in_deadline_order(self, clock: ManualClock) -> None:
        """Callbacks due at one advance fire by deadline, ties in scheduling order."""
        fired: list[str] = []
        for deadline, label in [(3.0, "c"), (1.0, "a"), (2.0, "b1"), (2.0, "b2"), (9.0, "z")]:
            clock.schedule(deadline, functools.partial(fired.append, label))
        clock.advance(5.0)
        assert fired == ["a", "b1", "b2", "c"]
        assert clock.sleepers == 1

    def test_cancel_prevents_firing(self, clock: ManualClock) -> None:
        """A cancelled callback never fires and no longer counts as a sleeper."""
        fired: list[str] = []
        handle = clock.schedule(1.0, lambda: fired.append("cancelled"))
        clock.schedule(1.0, lambda: fired.append("kept"))
        clock.cancel(handle)
        assert clock.sleepers == 1
        clock.advance(1.0)
        assert fired == ["kept"]
        assert clock.sleepers == 0

    def test_cancel_is_idempotent_and_fired_cancel_is_noop(self, clock: ManualClock) -> None:
        """Cancelling twice, or cancelling a callback that already fired, is harmless."""
        fired: list[str] = []
        handle = clock.schedule(1.0, lambda: fired.append("x"))
        clock.advance(1.0)
        clock.cancel(handle)
        clock.cancel(handle)
        other = clock.schedule(2.0, lambda: fired.append("y"))
        clock.cancel(other)
        clock.cancel(other)
        clock.advance(5.0)
        assert fired == ["x"]
        assert clock.sleepers == 0

    def test_raising_callback_does_not_lose_other_due_callbacks(self, clock: ManualClock) -> None:
        """A callback that raises does not stop the other callbacks due at the same advance."""

        def boom() -> None:
            raise RuntimeError("callback failed")

        fired: list[str] = []
        clock.schedule(1.0, boom)
        clock.schedule(1.0, lambda: fired.append("second"))
        with contextlib.suppress(RuntimeError):
            clock.advance(1.0)
        clock.advance(0)
        assert fired == ["second"]

    def test_nan_deadline_is_rejected(self, clock: ManualClock) -> None:
        """schedule() rejects a NaN deadline, which would otherwise block every later timer."""
        with pytest.raises(ValueError, match="'deadline'"):
            clock.schedule(math.nan, lambda: None)
        fired: list[str] = []
        clock.schedule(1.0, lambda: fired.append("ok"))
        clock.advance(1.0)
        assert fired == ["ok"]


class TestManualClockAsync:
    """sleep_async() on asyncio and trio wakes exactly when the virtual time says so."""

    @pytest.mark.anyio
    async def test_wakes_exactly_at_deadline(self) -> None:
        """Advancing short of the deadline leaves the task asleep; reaching it wakes it."""
        clock = ManualClock(start=100.0)
        woken: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sleep_then_record, clock, 5.0, woken)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            clock.advance(4.5)
            await anyio.wait_all_tasks_blocked()
            assert woken == []
            assert clock.sleepers == 1
            clock.advance(0.5)
            await anyio.wait_all_tasks_blocked()
            assert woken == [105.0]
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_advance_past_deadline_wakes(self, clock: ManualClock) -> None:
        """Advancing beyond the deadline in one step wakes the sleeper too."""
        woken: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sleep_then_record, clock, 2.0, woken)
            await anyio.wait_all_tasks_blocked()
            clock.advance(50.0)
        assert woken == [50.0]

    @pytest.mark.anyio
    async def test_sleepers_wake_in_deadline_order(self, clock: ManualClock) -> None:
        """Several sleepers wake in deadline order, and each advance wakes only the due ones."""
        woken: list[float] = []
        async with anyio.create_task_group() as tg:
            for seconds in (3.0, 1.0, 10.0, 2.0):
                tg.start_soon(_sleep_then_record, clock, seconds, woken)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 4
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
            assert woken == [1.0]
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
            assert woken == [1.0, 2.0]
            clock.advance(1.5)
            await anyio.wait_all_tasks_blocked()
            assert woken == [1.0, 2.0, 3.5]
            assert clock.sleepers == 1
            clock.advance(6.0)
            await anyio.wait_all_tasks_blocked()
            assert woken == [1.0, 2.0, 3.5]
            clock.advance(0.5)
        assert woken == [1.0, 2.0, 3.5, 10.0]

    @pytest.mark.anyio
    async def test_one_advance_wakes_all_due_and_no_more(self, clock: ManualClock) -> None:
        """One advance wakes every sleeper whose deadline it reaches and none beyond."""
        done: list[float] = []

        async def sleeper(seconds: float) -> None:
            await clock.sleep_async(seconds)
            done.append(seconds)

        async with anyio.create_task_group() as tg:
            for seconds in (4.0, 1.0, 3.0, 5.0):
                tg.start_soon(sleeper, seconds)
            await anyio.wait_all_tasks_blocked()
            clock.advance(4.0)
            await anyio.wait_all_tasks_blocked()
            assert sorted(done) == [1.0, 3.0, 4.0]
            assert clock.sleepers == 1
            tg.cancel_scope.cancel()
        assert sorted(done) == [1.0, 3.0, 4.0]
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_cancelled_sleep_removes_itself(self, clock: ManualClock) -> None:
        """A sleep cancelled through its scope leaves no sleeper and later advances still work."""
        woken: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sleep_then_record, clock, 10.0, woken)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            tg.cancel_scope.cancel()
        assert clock.sleepers == 0
        clock.advance(20.0)
        assert woken == []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sleep_then_record, clock, 1.0, woken)
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
        assert woken == [21.0]

    @pytest.mark.anyio
    async def test_cancel_during_sleep_in_own_scope(self, clock: ManualClock) -> None:
        """Cancelling a scope around one sleeper leaves its sibling asleep and counted."""
        woken: list[float] = []
        scope = anyio.CancelScope()

        async def cancellable() -> None:
            with scope:
                await clock.sleep_async(5.0)
                woken.append(-1.0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancellable)
            tg.start_soon(_sleep_then_record, clock, 5.0, woken)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 2
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            clock.advance(5.0)
        assert woken == [5.0]
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_advance_from_another_thread_wakes_sleeper(self, clock: ManualClock) -> None:
        """advance() called from a worker thread wakes an async sleeper on either backend."""
        woke = anyio.Event()
        woken: list[float] = []

        async def sleeper() -> None:
            await _sleep_then_record(clock, 3.0, woken)
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(clock.advance, 2.0)
            await anyio.wait_all_tasks_blocked()
            assert woken == []
            await anyio.to_thread.run_sync(clock.advance, 1.0)
            with anyio.fail_after(10):
                await woke.wait()
        assert woken == [3.0]
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_blocking_sleep_in_thread_wakes_sleeper(self, clock: ManualClock) -> None:
        """A blocking sleep in a worker thread advances the clock and wakes async sleepers."""
        woken: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sleep_then_record, clock, 4.0, woken)
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(clock.sleep, 4.0)
            with anyio.fail_after(10):
                while not woken:
                    await anyio.lowlevel.checkpoint()
        assert woken == [4.0]

    @pytest.mark.anyio
    async def test_sleep_async_zero_is_a_checkpoint(self, clock: ManualClock) -> None:
        """sleep_async(0) returns without an advance, and is a cancellation point."""
        await clock.sleep_async(0)
        assert clock.sleepers == 0
        reached = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await clock.sleep_async(0)
            reached = True
        assert scope.cancelled_caught
        assert not reached
        assert clock.monotonic() == 0.0

    @pytest.mark.anyio
    async def test_sleep_async_zero_lets_others_run(self, clock: ManualClock) -> None:
        """sleep_async(0) yields to other ready tasks."""
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            for _ in range(10):
                if ran:
                    break
                await clock.sleep_async(0)
            assert ran == ["other"]

    @pytest.mark.anyio
    @pytest.mark.parametrize(("seconds", "error"), [(-1.0, ValueError), (math.nan, ValueError)])
    async def test_sleep_async_rejects_bad_delay(
        self, clock: ManualClock, seconds: float, error: type[Exception]
    ) -> None:
        """A negative or NaN async sleep raises, naming 'seconds', and registers nothing."""
        with pytest.raises(error, match="'seconds'"):
            await clock.sleep_async(seconds)
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_sleeper_counted_and_shown_in_repr(self, clock: ManualClock) -> None:
        """An async sleeper counts in sleepers and in the repr while it waits."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep_async, 1.0)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            assert "sleepers=1" in repr(clock)
            clock.advance(1.0)
        assert "sleepers=0" in repr(clock)


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
