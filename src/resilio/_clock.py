"""Time, as every resilio primitive sees it.

No primitive reads the real time or sleeps on its own: each takes ``clock=`` and asks it.
[`SystemClock`][resilio.SystemClock] is the real thing; [`ManualClock`][resilio.ManualClock] is
virtual time for tests, moved only by [`ManualClock.advance`][resilio.ManualClock.advance], so a
test of a thirty-second open timeout or a ten-attempt retry runs instantly and the same way every
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.lowlevel

from . import _validate


@runtime_checkable
class Clock(Protocol):
    """What resilio needs from a clock: a monotonic time and two ways to sleep.

    Implement these three methods to drive resilio from any time source; the
    library ships [`SystemClock`][resilio.SystemClock] and [`ManualClock`][resilio.ManualClock].
    """

    def monotonic(self) -> float:
        """Return the current time in seconds; it never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for *seconds*."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for *seconds* (asyncio or trio)."""
        ...


def _check_delay(seconds: float) -> None:
    _validate.number("seconds", seconds, ge=0, finite=False)


class SystemClock:
    """The real clock: `time.monotonic()`, `time.sleep()` and `anyio.sleep()`.

    It holds no state; every primitive uses one shared instance unless given another.
    """

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for *seconds* of real time."""
        _check_delay(seconds)
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for *seconds* of real time."""
        _check_delay(seconds)
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class AsyncWaker:
    """A wake-up for the current task that any thread may trigger.

    Strictly private: the clock and the waiting layer use it so that a sleeper can be
    woken from the event loop's own thread (directly) or from another one (through the
    loop's thread-safe callback queue), on asyncio and trio alike. `reset` arms it
    again after a wake-up; a wake that races with a reset is never lost, because
    callers reset *before* they re-check whatever they wait for. It uses the running
    loop's own event type (anyio's wrapper costs several times more to create, and
    wakers are created and re-armed on hot paths), and `wait_at_most` sleeps on the
    loop's own timer rather than a cancel scope.
    """

    __slots__ = ("_call_soon", "_event", "_loop", "_new_event", "_thread")

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        new_event: Callable[[], Any]
        self._call_soon: Callable[[Callable[[], object]], object]
        self._loop: asyncio.AbstractEventLoop | None
        try:
            self._loop = loop = asyncio.get_running_loop()
        except RuntimeError:
            import trio

            self._loop = None
            new_event = trio.Event
            self._call_soon = trio.lowlevel.current_trio_token().run_sync_soon
        else:
            new_event = asyncio.Event
            self._call_soon = loop.call_soon_threadsafe
        self._new_event = new_event
        self._event = new_event()

    def wake(self) -> None:
        """Wake the waiting task; safe from any thread, idempotent."""
        if threading.get_ident() == self._thread:
            self._event.set()
        else:
            self._call_soon(self._set)

    def wake_after(self, seconds: float) -> None:
        """Wake the waiting task after *seconds* of real time, or sooner.

        Called on an asyncio loop's own thread, this arms a loop timer that fires the
        event, so a task that only needs to wake at a known time is not resumed twice
        (once to learn the time, once when it comes). Anywhere else it wakes the task
        at once, and the task arms its own timer.
        """
        loop = self._loop
        if loop is not None and seconds > 0 and threading.get_ident() == self._thread:
            loop.call_later(seconds, self._event.set)
        else:
            self.wake()

    def _set(self) -> None:
        self._event.set()

    def reset(self) -> None:
        """Arm the waker again after it has fired."""
        if self._event.is_set():
            self._event = self._new_event()

    async def wait(self) -> None:
        """Wait until `wake` is called."""
        await self._event.wait()

    async def wait_at_most(self, seconds: float) -> None:
        """Wait until `wake` is called, or for *seconds* (> 0) of real time at most.

        On asyncio the time limit is a loop timer that fires the event, on trio a
        cancel scope of trio's own: no exception is raised into the task when the
        time runs out on asyncio, and no anyio scope is built on either (a waiting
        rate limiter sleeps here once per admission).
        """
        event = self._event
        loop = self._loop
        if loop is None:
            import trio

            with trio.move_on_after(seconds):
                await event.wait()
            return
        timer = loop.call_later(seconds, event.set)
        try:
            await event.wait()
        finally:
            timer.cancel()


class ManualClock:
    """Virtual time for tests: it moves only when you say so.

    ``monotonic()`` returns the virtual time. `advance()` moves it forward and wakes
    every sleeper, sync or async, on asyncio or trio, whose deadline has come. A
    blocking `sleep()` advances the clock by itself and returns at once, so
    single-threaded sync code such as a retry loop runs instantly and deterministically.
    Time never goes backwards.

    Args:
        start: The virtual time to start at, in seconds.

    Example:
        >>> clock = ManualClock()
        >>> clock.sleep(365 * 24 * 3600)  # a year passes, instantly
        >>> clock.monotonic()
        31536000.0
    """

    __slots__ = ("__weakref__", "_cancelled", "_lock", "_now", "_seq", "_timers")

    def __init__(self, start: float = 0.0) -> None:
        self._now = _validate.number("start", start)
        self._lock = threading.Lock()
        # A heap of [deadline, seq, callback]; a cancelled entry has callback None.
        self._timers: list[list[Any]] = []
        self._cancelled = 0  # cancelled entries still in the heap
        self._seq = itertools.count()

    def monotonic(self) -> float:
        """Return the virtual time in seconds."""
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward by *seconds* and wake every sleeper now due.

        Raises:
            ValueError: if *seconds* is negative (time can't go backwards), NaN or
                infinite, or if the time it leads to is not a finite number.
        """
        seconds = _validate.duration("seconds", seconds, ge=0)
        due: list[Callable[[], object]] = []
        with self._lock:
            now = self._now + seconds
            if math.isinf(now):
                msg = f"'seconds' would move the clock past any finite time: {seconds!r}"
                raise ValueError(msg)
            self._now = now
            timers = self._timers
            while timers and timers[0][0] <= self._now:
                entry = heapq.heappop(timers)
                callback = entry[2]
                if callback is None:
                    self._cancelled -= 1
                else:
                    entry[2] = None  # fired: a later cancel() is a no-op
                    due.append(callback)
        error: BaseException | None = None
        for callback in due:
            try:
                callback()
            except BaseException as exc:  # noqa: PERF203 - every due callback runs; first error wins
                error = error or exc
        if error is not None:
            raise error

    def sleep(self, seconds: float | timedelta) -> None:
        """Advance the clock by *seconds* (finite) and return at once."""
        self.advance(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task until the clock has been advanced by *seconds*."""
        _check_delay(seconds)
        if seconds == 0:
            await anyio.lowlevel.checkpoint()
            return
        waker = AsyncWaker()
        entry = self._schedule(seconds, waker.wake, relative=True)
        try:
            await waker.wait()
        finally:
            self.cancel(entry)

    def schedule(self, deadline: float, callback: Callable[[], object]) -> list[Any]:
        """Call *callback* once the time reaches *deadline*, from `advance()`.

        A deadline already reached fires at once, in the calling thread. Returns a
        handle for `cancel()`.
        """
        _validate.number("deadline", deadline, finite=False)
        return self._schedule(deadline, callback, relative=False)

    def _schedule(
        self, when: float, callback: Callable[[], object], *, relative: bool
    ) -> list[Any]:
        entry = [when, 0, callback]
        with self._lock:
            if relative:
                entry[0] = when = self._now + when
            due = when <= self._now
            if due:
                entry[2] = None
            else:
                entry[1] = next(self._seq)
                heapq.heappush(self._timers, entry)
        if due:
            callback()
        return entry

    def cancel(self, handle: list[Any]) -> None:
        """Forget a callback registered with `schedule()`; a fired one is a no-op."""
        with self._lock:
            if handle[2] is None:
                return  # already fired or cancelled
            handle[2] = None
            self._cancelled += 1
            timers = self._timers
            if self._cancelled > 32 and self._cancelled * 2 > len(timers):
                # Mostly cancelled: rebuild, so abandoned sleeps don't pile up.
                self._timers = [entry for entry in timers if entry[2] is not None]
                heapq.heapify(self._timers)
                self._cancelled = 0

    @property
    def sleepers(self) -> int:
        """How many sleepers and scheduled callbacks are waiting for the time to move."""
        with self._lock:
            return sum(1 for entry in self._timers if entry[2] is not None)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r}, sleepers={self.sleepers})"


def check_clock(value: Any) -> Clock:
    """Validate a ``clock=`` argument."""
    if not isinstance(value, Clock):
        msg = f"'clock' must provide monotonic(), sleep() and sleep_async(): {value!r}"
        raise TypeError(msg)
    return value


class _ScopeCanceller:
    """Cancels a cancel scope from `ManualClock.advance`, whichever thread calls it."""

    __slots__ = ("_call_soon", "_scope", "_thread")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self._scope = scope
        self._thread = threading.get_ident()
        self._call_soon = AsyncWaker()._call_soon

    def __call__(self) -> None:
        if threading.get_ident() == self._thread:
            self._scope.cancel()
        else:
            self._call_soon(self._scope.cancel)


@contextlib.contextmanager
def move_on_after(clock: Clock, seconds: float | None) -> Iterator[anyio.CancelScope]:
    """`anyio.move_on_after`, on *clock*'s time: a `ManualClock` moves it on when advanced.

    Strictly private. ``scope.cancelled_caught`` tells whether the time ran out.
    """
    if seconds is None or not isinstance(clock, ManualClock):
        with anyio.move_on_after(seconds if seconds is not None else math.inf) as scope:
            yield scope
        return
    with anyio.CancelScope() as scope:
        entry = clock._schedule(seconds, _ScopeCanceller(scope), relative=True)
        try:
            yield scope
        finally:
            clock.cancel(entry)
