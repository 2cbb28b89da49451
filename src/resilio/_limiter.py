"""The machinery both rate limiters share: admission, fair waiting, events.

[`TokenBucket`][resilio.TokenBucket] and [`LeakyBucket`][resilio.LeakyBucket] differ
only in how they decide that a request can be admitted now (``_take``), when a
request behind a queue could be (``_ready_at``), how a grant is taken back and how
much may wait. Everything else lives here, once: ``try_acquire``, the async and
blocking ``acquire``, timeouts that fail at once when they cannot be met, the FIFO
of waiters (see `_waiters`), ``reject=True`` and the guard protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable
from datetime import timedelta
from types import TracebackType
from typing import Any

import attrs
from typing_extensions import Self

from . import _validate
from ._clock import AsyncWaker, Clock, ManualClock, check_clock
from ._errors import RateLimitExceeded
from ._events import EventBus, RateLimited, check_bus, default_bus
from ._guard import Guard
from ._waiters import (
    SyncWaker,
    Waiter,
    WaitQueue,
    finished,
    running_loop,
    wait_async,
    wait_sync,
)

# Float slack when comparing a refilled level or a slot time with what is asked for:
# a waiter woken at the exact moment its request can be met must not miss it by an
# ulp and sleep again.
EPSILON = 1e-9

_new_exceeded = RateLimitExceeded.__new__
_INFINITY = float("inf")
_NOTHING = finished(None)


def per_period(count: Any, period: Any) -> float:
    """The rate of *count* admissions per *period*, for the ``per`` constructors.

    Raises:
        TypeError: *count* is not a number, or *period* not a number or `timedelta`.
        ValueError: either is not positive and finite, or their ratio is not a
            usable rate (it underflows to 0 or overflows).
    """
    amount = _validate.number("count", count, gt=0)
    seconds = _validate.duration("period", period, gt=0)
    rate = amount / seconds
    if not 0.0 < rate < _INFINITY:
        msg = f"'count' / 'period' is not a usable rate: {count!r} / {period!r} = {rate!r}/s"
        raise ValueError(msg)
    return rate


def per_capacity(count: Any, capacity: Any) -> Any:
    """The capacity of a ``per`` constructor: *capacity* if given, else *count*."""
    if capacity is not None:
        return capacity
    if count < 1:
        msg = (
            f"'count' must be >= 1 when 'capacity' is not given (it defaults to 'count'): {count!r}"
        )
        raise ValueError(msg)
    return count


@attrs.frozen(kw_only=True)
class LimiterStats:
    """What a rate limiter has done since it was made, and where it stands now.

    Returned by [`TokenBucket.stats()`][resilio.TokenBucket.stats] and
    [`LeakyBucket.stats()`][resilio.LeakyBucket.stats]. Every request ends in exactly
    one of ``granted``, ``refused`` and ``cancelled``; until then it is ``waiting``
    (or, for the instant between its admission and its caller resuming, in none of
    them). A call that raises before the bucket considers it (an ``n`` that is not
    positive or exceeds the capacity; a blocking wait asked on a thread that runs an
    event loop) counts nowhere.

    Attributes:
        granted: Requests admitted since the bucket was made, at once or after
            waiting: ``try_acquire`` calls that returned ``True``, ``acquire`` and
            ``acquire_sync`` calls that returned, guarded calls let through.
        tokens: The sum of the amounts (``n``) of the granted requests: equal to
            ``granted`` when every request asks for 1. For a `LeakyBucket`, the
            units of its schedule (each occupies ``1 / rate`` seconds).
        refused: Requests refused since the bucket was made: ``try_acquire`` calls
            that returned ``False``, and every
            [`RateLimitExceeded`][resilio.RateLimitExceeded] raised, at once
            (``reject=True``, a timeout too short to be met, a full leaky-bucket
            queue) or after waiting (the timeout passed, or a smaller capacity made
            the request impossible).
        cancelled: Queued requests that left before being admitted because their
            task was cancelled or their thread interrupted. One admitted in the very
            instant before its cancellation counts here, not in ``granted``: its
            caller never went through, and its tokens are given back.
        waited: Total seconds the granted requests spent queued, from their arrival
            to their admission; a request admitted at once adds nothing.
            ``waited / granted`` is the mean wait per admission. Time spent by
            requests that were then refused or cancelled is not included.
        wait_max: The longest wait, in seconds, of a single granted request; ``0.0``
            until one has waited.
        available: Now: the tokens in a `TokenBucket`; the free room in a
            `LeakyBucket`'s queue (as their ``available`` properties).
        waiting: Now: the requests queued for admission.
        rate: Now: admissions (tokens) per second.
        capacity: Now: the burst size of a `TokenBucket`, the queue size of a
            `LeakyBucket`.

    The first six are cumulative since the bucket was made: ``reset()``,
    ``set_rate()`` and ``set_capacity()`` never lower them, so they can be exported as
    counters as they are. ``stats()`` reads them without taking the bucket's lock:
    each value is exact, but two of them may be a few requests apart when requests
    run meanwhile.
    """

    granted: int
    tokens: float
    refused: int
    cancelled: int
    waited: float
    wait_max: float
    available: float
    waiting: int
    rate: float
    capacity: float


class RateLimiter(Guard):
    """Shared base of the rate limiters; strictly private."""

    __slots__ = (
        "__weakref__",
        "_bus",
        "_cancelled",
        "_capacity",
        "_clock",
        "_entered",
        "_era",
        "_granted",
        "_granted_other",
        "_lock",
        "_name",
        "_now",
        "_rate",
        "_real_time",
        "_refused",
        "_reject",
        "_tokens_other",
        "_wait_max",
        "_waited",
        "_waiters",
    )

    _acquire_waits = True
    _outcomes = False  # a limiter admits; what the call does next is not its business

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        reject: bool,
        name: str,
        clock: Clock,
        bus: EventBus | None,
    ) -> None:
        self._rate = _validate.number("rate", rate, gt=0)
        self._capacity = _validate.number("capacity", capacity, ge=1)
        if not isinstance(reject, bool):
            msg = f"'reject' must be a bool: {reject!r}"
            raise TypeError(msg)
        self._reject = reject
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._now = clock.monotonic
        self._real_time = not isinstance(clock, ManualClock)
        self._bus = default_bus() if bus is None else check_bus(bus)
        self._lock = threading.Lock()
        self._waiters = WaitQueue()
        self._era = 0  # counts resets: a grant made before one is not given back after it
        self._entered: Awaitable[Any] = finished(self)  # awaited by an admitted ``async with``
        # The counters of `stats`. Each only grows, and only while the lock is held, so
        # it is exact under threads (on free-threaded builds too: the lock serialises
        # the writes) at no cost beyond the increment; `stats` reads them without the
        # lock (one attribute read is atomic, with or without a GIL). A grant of 1 on a
        # fast path costs one increment: ``granted = _granted + _granted_other`` and
        # ``tokens = _granted + _tokens_other``, where the ``_other`` pair counts the
        # grants of any other amount and those made after waiting. Sums of counts that
        # only grow never go down between two reads, so exported counters never do.
        # The counts are floats, exact up to 2**53: adding 1.0 to a float costs a third
        # of adding 1 to an int past 256, which allocates a new int each time.
        self._granted = 0.0
        self._granted_other = 0.0
        self._tokens_other = 0.0
        self._refused = 0.0
        self._cancelled = 0.0
        self._waited = 0.0
        self._wait_max = 0.0

    # -- what each limiter decides (the lock is held) --------------------------------

    def _take(self, amount: float, now: float) -> bool:
        """Admit *amount* now if possible, and account for it."""
        raise NotImplementedError

    def _take_queued(self, amount: float, now: float) -> bool:
        """Admit the head of the queue now if possible (`_take` unless overridden)."""
        return self._take(amount, now)

    def _ready_at(self, ahead: float, amount: float, now: float) -> float:
        """When *amount* could be admitted, after *ahead* queued in front of it."""
        raise NotImplementedError

    def _give_back(self, waiter: Waiter, now: float) -> None:
        """Undo the admission of a waiter that was granted, then cancelled."""
        raise NotImplementedError

    def _room(self, amount: float) -> bool:
        """Whether a request of *amount* may join the queue."""
        return True

    def _room_after(self, amount: float, now: float) -> float:
        """Seconds until a request of *amount* could join a full queue."""
        return 0.0

    def _grant_mark(self) -> Any:
        """Bookkeeping stored on a waiter when it is granted (for `_give_back`)."""
        return self._era

    # -- public surface ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name that appears in events, errors and ``repr``."""
        return self._name

    @property
    def rate(self) -> float:
        """Admissions (tokens) per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The burst size of a `TokenBucket`; the queue size of a `LeakyBucket`."""
        return self._capacity

    @property
    def waiting(self) -> int:
        """How many requests are queued, waiting for admission."""
        return len(self._waiters)

    def stats(self) -> LimiterStats:
        """What the bucket has done since it was made, and where it stands now.

        The counts are cumulative: ``reset()`` does not lower them. Read without
        taking the bucket's lock, so reading them never delays a request; see
        [`LimiterStats`][resilio.LimiterStats] for what each one counts.
        """
        # Each counter only grows, so no sum of them read here is ever below the
        # same sum read by an earlier call.
        granted = self._granted
        return LimiterStats(
            granted=int(granted + self._granted_other),
            tokens=granted + self._tokens_other,
            refused=int(self._refused),
            cancelled=int(self._cancelled),
            waited=self._waited,
            wait_max=self._wait_max,
            available=self._available_unlocked(),
            waiting=self._waiters._live,
            rate=self._rate,
            capacity=self._capacity,
        )

    def _available_unlocked(self) -> float:
        """``available``, read without the lock for `stats` (a level a moment old)."""
        raise NotImplementedError

    def _try_acquire_amount(self, n: float) -> bool:
        """`try_acquire` for any amount but the int 1; each bucket's ``try_acquire``
        inlines its own ``_take(1, now)`` for the int 1, the common case."""
        self._check_amount(n)
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not self._waiters._live and self._take(n, now):
                self._granted_other += 1.0
                self._tokens_other += n
                return True
            self._refused += 1.0
            retry_after = self._ready_at(self._waiters.demand, n, now) - now
        finally:
            lock.release()
        self._limited(n, retry_after, rejected=True, now=now)
        return False

    async def acquire(self, n: float = 1, timeout: float | timedelta | None = None) -> None:
        """Wait until *n* can be admitted, in FIFO order with every other waiter.

        Returns at once, without yielding to the event loop, when the request can be
        admitted now. Cancelling a waiting call leaves nothing behind.

        Args:
            n: How much to take.
            timeout: The most seconds (or a `timedelta`) to wait, or ``None`` to wait as
                long as it takes.

        Raises:
            RateLimitExceeded: at once, without waiting, when the request cannot be
                admitted within *timeout* (or, for a leaky bucket, its queue is full);
                also if a later change of rate or capacity makes the deadline pass.
            ValueError: *n* is not positive or exceeds the capacity.
        """
        queued = self._join(n, timeout, AsyncWaker)
        if queued is None:
            return
        waiter, deadline, since = queued
        waker = waiter.waker
        try:
            while True:
                waker.reset()
                wake = self._poll(waiter, deadline, since)
                if wake is None:
                    return
                await wait_async(self._clock, waker, wake[0])  # type: ignore[arg-type]
        except BaseException:
            self._abandon(waiter)
            raise

    def acquire_sync(self, n: float = 1, timeout: float | timedelta | None = None) -> None:
        """Block the calling thread until *n* can be admitted; the sync twin of `acquire`.

        Never on a thread that runs an asyncio or trio event loop: a request that
        would have to wait there raises `RuntimeError` instead of stalling every task
        of the loop (``await bucket.acquire()`` is the form for async code; a worker
        thread, such as ``anyio.to_thread.run_sync`` starts, may block). A request
        admitted or refused at once behaves the same on any thread. The guard forms
        ``with bucket:``, ``call`` and the decorator on a ``def`` follow the same rule.

        On a [`ManualClock`][resilio.ManualClock] the thread at the head of the
        queue advances the clock to its turn instead of waiting, as
        ``ManualClock.sleep`` does, so single-threaded tests run instantly. The rule
        above holds there too, so a test sees what production would.

        Raises:
            RateLimitExceeded: as for `acquire`.
            RuntimeError: the request would wait, on a thread running an event loop.
            ValueError: *n* is not positive or exceeds the capacity.
        """
        queued = self._join(n, timeout, SyncWaker)
        if queued is None:
            return
        waiter, deadline, since = queued
        waker = waiter.waker
        try:
            while True:
                waker.reset()
                wake = self._poll(waiter, deadline, since)
                if wake is None:
                    return
                wait_sync(self._clock, waker, wake[0], head=wake[1])  # type: ignore[arg-type]
        except BaseException:
            self._abandon(waiter)
            raise

    # -- waiting ----------------------------------------------------------------------

    def _join(
        self, n: float, timeout: float | timedelta | None, waker: type[AsyncWaker | SyncWaker]
    ) -> tuple[Waiter, float | None, float] | None:
        """Admit a request now (``None``), or queue it: ``(waiter, deadline, now)``.

        Raises [`RateLimitExceeded`][resilio.RateLimitExceeded] at once when the
        request cannot be met in time or cannot queue.
        """
        if n != 1 or n.__class__ is not int:
            self._check_amount(n)
        if timeout is not None:
            timeout = _validate.duration("timeout", timeout, ge=0, finite=False)
            if timeout == _INFINITY:
                timeout = None
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not self._waiters._live and self._take(n, now):
                if n == 1:
                    self._granted += 1.0
                else:
                    self._granted_other += 1.0
                    self._tokens_other += n
                return None
            waiter, wait = self._enqueue(n, timeout, now, waker)
            if waiter is None:
                self._refused += 1.0
        finally:
            lock.release()
        self._limited(n, wait, rejected=waiter is None, now=now)
        if waiter is None:
            raise _new_exceeded(RateLimitExceeded, self._name, wait)
        return waiter, None if timeout is None else now + timeout, now

    def _enqueue(
        self, n: float, timeout: float | None, now: float, waker: type[AsyncWaker | SyncWaker]
    ) -> tuple[Waiter | None, float]:
        """Queue a request that cannot be admitted now (lock held), or refuse it.

        Returns the waiter (``None`` if refused) and the expected wait.
        """
        queue = self._waiters
        wait = max(0.0, self._ready_at(queue.demand, n, now) - now)
        if not self._room(n):
            return None, self._room_after(n, now)
        if timeout is not None and wait > timeout + EPSILON:
            return None, wait
        if waker is SyncWaker:
            loop = running_loop()
            if loop is not None:
                raise self._blocking_refused(loop)
        waiter = Waiter(n, waker())
        queue.append(waiter)
        return waiter, wait

    def _poll(
        self, waiter: Waiter, deadline: float | None, since: float
    ) -> tuple[float | None, bool] | None:
        """Serve what can be served; say how long *waiter* (queued at *since*) should sleep.

        Returns ``None`` once *waiter* is granted, else ``(wake_at, head)``: the clock
        time to wake at (``None``: only when woken; the head's turn or the waiter's
        deadline, whichever comes first) and whether the waiter heads the queue (on
        a `ManualClock`, a blocked head thread moves the clock itself). Raises
        [`RateLimitExceeded`][resilio.RateLimitExceeded] when the waiter failed or
        its deadline passed.
        """
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not waiter.granted and not waiter.failed:
                self._dispatch(now)
            if waiter.granted:  # count it: its caller goes through now
                waited = now - since
                self._granted_other += 1.0
                self._tokens_other += waiter.amount
                self._waited += waited
                if waited > self._wait_max:  # noqa: PLR1730 - max() costs a call
                    self._wait_max = waited
                return None
            if not waiter.failed:
                if deadline is None or now < deadline - EPSILON:
                    head = self._waiters.head() is waiter
                    wake = self._ready_at(0.0, waiter.amount, now) if head else None
                    if deadline is not None and (wake is None or deadline < wake):
                        wake = deadline
                    return (wake, head)
                self._remove(waiter, now)  # timed out
            self._refused += 1.0
            retry_after = None if waiter.failed else self._ready_at(0.0, waiter.amount, now) - now
        finally:
            lock.release()
        raise _new_exceeded(RateLimitExceeded, self._name, retry_after)

    def _dispatch(self, now: float) -> None:
        """Grant, in order, every queued request that can be admitted now (lock held)."""
        queue = self._waiters
        granted = False
        while True:
            head = queue.head()
            if head is None or not self._take_queued(head.amount, now):
                break
            head.mark = self._grant_mark()
            queue.grant(head)
            granted = True
        if granted:
            # The new head must wake at its turn. On real time, its waker is told
            # when (a task on this loop then sleeps on a timer armed here, without
            # being resumed just to arm it); on a ManualClock it wakes to wait for
            # virtual time.
            head = queue.head()
            if head is not None:
                if self._real_time:
                    head.waker.wake_after(self._ready_at(0.0, head.amount, now) - now)
                else:
                    head.waker.wake()

    def _remove(self, waiter: Waiter, now: float) -> None:
        """Take a waiter that is leaving out of the queue (lock held)."""
        if self._waiters.leave(waiter):
            self._dispatch(now)
            self._waiters.wake_head()

    def _abandon(self, waiter: Waiter) -> None:
        """A waiter left by an exception (cancelled, interrupted): nothing may leak."""
        with self._lock:
            now = self._now()
            if waiter.granted:  # granted in the instant before: its caller never saw it
                self._cancelled += 1.0
                self._give_back(waiter, now)
                self._dispatch(now)
                self._waiters.wake_head()
            elif not waiter.gone:  # (gone: refused, and counted, by `_poll`)
                self._cancelled += 1.0
                self._remove(waiter, now)

    def _restarted(self) -> None:
        """The bucket was reset (lock held): serve the queue from the new state.

        A grant made before the reset is never given back after it: the reset has
        already put back everything, and giving it back again would admit it twice.
        """
        self._era += 1
        self._changed()

    def _changed(self) -> None:
        """The rate or capacity changed (lock held): serve and re-time the head."""
        now = self._now()
        self._dispatch(now)
        self._waiters.wake_head()

    # -- helpers ----------------------------------------------------------------------

    def _blocking_refused(self, loop: str) -> RuntimeError:
        kind = type(self).__name__
        msg = (
            f"{kind} {self._name!r} would block the {loop} event loop running in this "
            "thread while it waits for its turn; in async code use the async forms "
            "(`await bucket.acquire()`, `async with bucket:`, `await bucket.call_async(fn)`, "
            "or decorate an `async def`), or call the sync form from a worker thread"
        )
        return RuntimeError(msg)

    def _check_amount(self, n: Any) -> None:
        amount = _validate.number("n", n, gt=0)
        if amount > self._capacity:
            msg = f"'n' must be <= capacity ({self._capacity:g}): {n!r}"
            raise ValueError(msg)

    def _limited(self, amount: float, retry_after: float, *, rejected: bool, now: float) -> None:
        bus = self._bus
        if bus.wants(RateLimited):
            bus.publish(
                RateLimited(
                    source=self._name,
                    at=now,
                    amount=amount,
                    retry_after=retry_after,
                    rejected=rejected,
                )
            )

    # -- the guard protocol -----------------------------------------------------------

    def __aenter__(self) -> Awaitable[Self]:  # type: ignore[override] # see below
        # The hot path of ``async with bucket:``, inlined: admitting with a token
        # free costs one lock and one clock read, and never yields to the loop. It
        # is the same with ``reject=True``; only a request that cannot be admitted
        # now takes the general path. Not a coroutine: a finished awaitable made
        # once costs less than a coroutine made per call. (Each bucket inlines its
        # own `_take` here.)
        lock = self._lock
        lock.acquire()
        try:
            if not self._waiters._live and self._take(1.0, self._now()):
                self._granted += 1.0
                return self._entered
        finally:
            lock.release()
        return self._enter_waiting()

    async def _enter_waiting(self) -> Self:
        await self._acquire_async()
        return self

    def __aexit__(  # type: ignore[override] # an awaitable, not a coroutine
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        return _NOTHING  # a limiter has nothing to do on exit: skip making a coroutine

    def _acquire(self) -> object:
        lock = self._lock
        lock.acquire()  # the common case first: a token free, nobody queued
        try:
            if not self._waiters._live and self._take(1.0, self._now()):
                self._granted += 1.0
                return None
        finally:
            lock.release()
        if self._reject:
            self._admit_or_reject()
        else:
            self.acquire_sync()
        return None

    async def _acquire_async(self) -> object:
        lock = self._lock
        lock.acquire()
        try:
            if not self._waiters._live and self._take(1.0, self._now()):
                self._granted += 1.0
                return None
        finally:
            lock.release()
        if self._reject:
            self._admit_or_reject()
        else:
            await self.acquire()
        return None

    def _admit_or_reject(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not self._waiters._live and self._take(1.0, now):
                self._granted += 1.0
                return
            self._refused += 1.0
            retry_after = self._ready_at(self._waiters.demand, 1, now) - now
        finally:
            lock.release()
        self._limited(1, retry_after, rejected=True, now=now)
        raise _new_exceeded(RateLimitExceeded, self._name, retry_after)

    def _on_success(self, token: Any) -> None:
        pass

    def _on_error(self, token: Any, exc: Exception) -> None:
        pass

    def _release(self, token: Any) -> None:
        pass
