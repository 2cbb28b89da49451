"""Fair, cancellation-safe waiting for tasks and threads alike.

The rate limiters (and later the worker pool) queue requests they cannot serve yet
in one strict FIFO `WaitQueue`, whatever the caller is: an asyncio task, a trio
task or a blocked thread. The owner of the queue hands out what it guards *to* the
waiters (``grant``), under its own lock, in queue order; a waiter only wakes up to
find it has been served. Nothing is ever polled: the head of the queue is the only
waiter with a timer, armed for the moment the owner says its request can be met, and
any waiter with a timeout also wakes at its deadline.

A waiter that leaves early (cancelled, timed out, interrupted) is marked and skipped,
so it blocks nobody behind it; if it had been served in the instant before it left,
the owner takes the grant back, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
from asyncio import _get_running_loop
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from ._clock import AsyncWaker, Clock, ManualClock

T = TypeVar("T")


class _NoLoop:
    """The loop of a future finished at birth: it schedules nothing, so needs none."""

    __slots__ = ()

    def get_debug(self) -> bool:
        return False


def finished(value: T) -> Awaitable[T]:
    """An awaitable that hands back *value* at once, on any loop, as often as awaited.

    A finished `asyncio.Future`: awaiting it never suspends, so it never reaches a
    scheduler (trio's included), and it costs less than creating and running a
    coroutine. For hot paths that usually have nothing to wait for (``async with
    bucket:`` with a token free).
    """
    future: asyncio.Future[T] = asyncio.Future(loop=_NoLoop())  # type: ignore[arg-type]
    future.set_result(value)
    return future


class SyncWaker:
    """A wake-up for a blocked thread; the counterpart of `AsyncWaker`. Strictly private."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        """Wake the waiting thread; safe from any thread, idempotent."""
        self._event.set()

    def reset(self) -> None:
        """Arm the waker again after it has fired."""
        self._event.clear()

    def wake_after(self, seconds: float) -> None:
        """Wake the waiting thread at once: it times its own wait (see `AsyncWaker`)."""
        self._event.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until woken, or for at most *timeout* seconds of real time."""
        self._event.wait(timeout)


class Waiter:
    """One queued request. Strictly private."""

    __slots__ = ("amount", "failed", "gone", "granted", "mark", "waker")

    def __init__(self, amount: float, waker: AsyncWaker | SyncWaker) -> None:
        self.amount = amount
        self.waker = waker
        self.granted = False  # served: the owner has taken `amount` for it
        self.gone = False  # left the queue without being served
        self.failed = False  # can never be served (the owner shrank below `amount`)
        self.mark: Any = None  # owner's bookkeeping for taking a grant back


class WaitQueue:
    """A FIFO of waiters with their total demand; the owner holds its lock around every call."""

    __slots__ = ("_live", "_queue", "demand")

    def __init__(self) -> None:
        self._queue: collections.deque[Waiter] = collections.deque()
        self._live = 0  # waiters queued and not gone
        self.demand = 0.0  # the sum of `amount` over them

    def __len__(self) -> int:
        return self._live

    def append(self, waiter: Waiter) -> None:
        """Queue *waiter* at the back."""
        self._queue.append(waiter)
        self._live += 1
        self.demand += waiter.amount

    def head(self) -> Waiter | None:
        """The first waiter still queued, dropping the ones that left."""
        queue = self._queue
        while queue:
            waiter = queue[0]
            if not waiter.gone:
                return waiter
            queue.popleft()
        return None

    def _forget(self, waiter: Waiter) -> None:
        self._live -= 1
        self.demand = self.demand - waiter.amount if self._live else 0.0

    def grant(self, waiter: Waiter) -> None:
        """Mark the head *waiter* as served, remove it and wake it."""
        waiter.granted = True
        self._queue.popleft()
        self._forget(waiter)
        waiter.waker.wake()

    def leave(self, waiter: Waiter) -> bool:
        """Take *waiter* out of the queue (lazily); return whether it was the head."""
        was_head = self.head() is waiter
        waiter.gone = True
        self._forget(waiter)
        return was_head

    def fail_above(self, limit: float) -> None:
        """Fail (and wake) every waiter asking for more than *limit*."""
        for waiter in self._queue:
            if not waiter.gone and waiter.amount > limit:
                waiter.failed = waiter.gone = True
                self._forget(waiter)
                waiter.waker.wake()

    def wake_head(self) -> None:
        """Wake the head so that it re-arms its timer (the head or the rate changed)."""
        head = self.head()
        if head is not None:
            head.waker.wake()


def running_loop() -> str | None:
    """Name the event loop running on the calling thread: ``"asyncio"``, ``"trio"``, or ``None``.

    For refusing a blocking wait on a loop's own thread; cheap enough for any waiting
    path. Trio is looked for only when something already imported it; a worker
    thread of either loop (``anyio.to_thread``, ``run_in_executor``) runs no loop.
    """
    if _get_running_loop() is not None:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None
        return "trio"
    return None


async def wait_async(clock: Clock, waker: AsyncWaker, deadline: float | None) -> None:
    """Wait until *waker* fires or the clock reaches *deadline* (``None``: no deadline)."""
    if deadline is None:
        await waker.wait()
    elif isinstance(clock, ManualClock):
        entry = clock.schedule(deadline, waker.wake)
        try:
            await waker.wait()
        finally:
            clock.cancel(entry)
    else:
        delay = deadline - clock.monotonic()
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
        else:
            await waker.wait_at_most(delay)


def wait_sync(clock: Clock, waker: SyncWaker, deadline: float | None, *, head: bool) -> None:
    """Block until *waker* fires or the clock reaches *deadline* (``None``: no deadline).

    On a [`ManualClock`][resilio.ManualClock] a blocked thread cannot wait for virtual
    time to pass by itself, so, like ``ManualClock.sleep``, the head of the queue
    advances the clock to its deadline; any other waiter with a deadline (a timeout)
    waits for the clock to be moved by someone else.
    """
    if deadline is None:
        waker.wait()
    elif isinstance(clock, ManualClock):
        delay = deadline - clock.monotonic()
        if head:
            if delay > 0:
                clock.advance(delay)
            return
        entry = clock.schedule(deadline, waker.wake)
        try:
            waker.wait()
        finally:
            clock.cancel(entry)
    else:
        delay = deadline - clock.monotonic()
        if delay > 0:
            waker.wait(delay)
