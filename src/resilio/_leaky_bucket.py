"""The leaky bucket as a shaper: admissions evenly spaced, no bursts, a bounded queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from typing_extensions import Self

from ._clock import SYSTEM_CLOCK, Clock
from ._events import EventBus
from ._limiter import EPSILON, RateLimiter, per_capacity, per_period
from ._registry import track
from ._validate import number
from ._waiters import Waiter


class LeakyBucket(RateLimiter):
    """Spaces admissions ``1 / rate`` seconds apart: a smooth rate, with no burst.

    Requests leave the bucket at ``rate`` per second, one at a time: an idle bucket
    admits a request at once, and every later one waits its turn, ``1 / rate``
    seconds after the one before (a request for ``n`` occupies ``n / rate``).
    Event loops and threads wake a little late (about a millisecond); queued
    requests keep their schedule through such delays (up to `CATCH_UP`), so the
    rate holds even when the spacing is finer than the wake-up granularity.
    Waiting requests queue in FIFO order, ``capacity`` of them at most (in units of
    ``n``); beyond that a request is refused with
    [`RateLimitExceeded`][resilio.RateLimitExceeded]. ``capacity`` is a queue size,
    not a burst size: a leaky bucket never admits a burst. (On a ``TokenBucket``,
    ``capacity`` means the opposite: the burst it admits at once.) Use it to shape
    traffic to a smooth rate; use a [`TokenBucket`][resilio.TokenBucket] to allow
    bursts.

    The guard forms (``@bucket``, ``with``, ``async with``, ``call``,
    ``call_async``) wait for a slot, or refuse at once when built with
    ``reject=True``. The sync forms never wait on a thread that runs an event loop:
    there a call that would wait raises `RuntimeError` naming the async form.

    Args:
        rate: Admissions per second.
        capacity: The queue size: how many requests (of ``n=1``) may wait for their
            slot, not counting the one admitted at once; also the largest single
            request. Not a burst size, as a ``TokenBucket``'s is.
        reject: Make the guard forms refuse instead of waiting.
        name: Appears in events, errors and ``repr``.
        clock: Where time comes from.
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus]
            by default.
    """

    __slots__ = ("_next",)

    CATCH_UP = 0.005
    """Seconds by which queued requests may be admitted late and keep their schedule."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        reject: bool = False,
        name: str = "leaky-bucket",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        super().__init__(rate, capacity, reject=reject, name=name, clock=clock, bus=bus)
        self._next = self._now()  # the earliest time of the next admission
        track(self)

    @classmethod
    def per(
        cls,
        count: float,
        period: float | timedelta,
        *,
        capacity: float | None = None,
        reject: bool = False,
        name: str = "leaky-bucket",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> Self:
        """A bucket that admits *count* requests per *period*, evenly spaced.

        ``LeakyBucket.per(100, 60)`` admits one request every ``60 / 100``
        seconds. Unless told otherwise, its queue holds ``count`` requests, one
        period's allowance, so a request that finds room waits at most about
        *period*, and one that would wait longer is refused at once. Give
        ``capacity`` for a shorter or longer queue.

        Args:
            count: Admissions per *period*; a positive number, at least 1 unless
                *capacity* is given.
            period: Seconds, or a `timedelta`.
            capacity: The queue size; *count* by default.
            reject: As for [`LeakyBucket`][resilio.LeakyBucket].
            name: As for [`LeakyBucket`][resilio.LeakyBucket].
            clock: As for [`LeakyBucket`][resilio.LeakyBucket].
            bus: As for [`LeakyBucket`][resilio.LeakyBucket].

        Raises:
            TypeError: *count* or *period* is not a number (or *period* a
                `timedelta`), or another option has the wrong type.
            ValueError: *count* or *period* is not positive and finite, or the
                capacity (given, or *count*) is below 1.
        """
        rate = per_period(count, period)
        capacity = per_capacity(count, capacity)
        return cls(rate, capacity, reject=reject, name=name, clock=clock, bus=bus)

    def _take(self, amount: float, now: float) -> bool:
        slot = self._next
        if now + EPSILON < slot:
            return False
        self._next = (now if now > slot else slot) + amount / self._rate
        return True

    def try_acquire(self, n: float = 1) -> bool:
        """Take a slot for *n* now if one is free and nobody is queued; never waits.

        A refusal publishes [`RateLimited`][resilio.RateLimited] with
        ``rejected=True``.

        Returns:
            Whether the request was admitted.

        Raises:
            ValueError: *n* is not positive or exceeds the capacity.
        """
        # `_try_acquire_amount` for the int 1, with `_take(1, now)` inlined: the call
        # would cost a fifth of the whole.
        if n != 1 or n.__class__ is not int:
            return self._try_acquire_amount(n)
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not self._waiters._live:
                slot = self._next
                if now + EPSILON >= slot:
                    self._next = (now if now > slot else slot) + 1.0 / self._rate
                    self._granted += 1.0
                    return True
            self._refused += 1.0
            retry_after = self._ready_at(self._waiters.demand, 1, now) - now
        finally:
            lock.release()
        self._limited(1, retry_after, rejected=True, now=now)
        return False

    def _take_queued(self, amount: float, now: float) -> bool:
        # A queued request whose slot has come is admitted on the schedule, not
        # from the moment its waiter got to run: event loops wake timers a
        # millisecond or so late, and restarting the spacing from the late wake-up
        # would lose that time at every admission (at 10,000/s, nine tenths of the
        # rate). Slots missed by up to CATCH_UP seconds are still honoured, so a
        # late wake-up admits the few requests that were due; an idle bucket or a
        # longer stall starts afresh, with no burst.
        slot = self._next
        if now + EPSILON < slot:
            return False
        start = slot if now - slot <= self.CATCH_UP else now
        self._next = start + amount / self._rate
        return True

    def _ready_at(self, ahead: float, amount: float, now: float) -> float:
        slot = self._next
        return (now if now > slot else slot) + ahead / self._rate

    def _room(self, amount: float) -> bool:
        return self._waiters.demand + amount <= self._capacity + EPSILON

    def _room_after(self, amount: float, now: float) -> float:
        # Room appears as the queue drains: the first admission comes at the next
        # slot, then one unit every 1 / rate seconds.
        excess = self._waiters.demand + amount - self._capacity
        slot = self._next
        start = slot if slot > now else now
        return start - now + max(0.0, excess - 1.0) / self._rate

    def _grant_mark(self) -> Any:
        return (self._era, self._next)

    def _give_back(self, waiter: Waiter, now: float) -> None:
        # Free its slot only if nobody was admitted after it and no reset came since.
        if waiter.mark == (self._era, self._next):
            self._next -= waiter.amount / self._rate

    def reset(self) -> None:
        """Forget the schedule, as if the bucket were new: the next slot is now.

        A request arriving at an idle bucket is admitted at once. Requests already
        waiting keep their places and their spacing: the first is admitted at once,
        each next one ``n / rate`` after the one before. They are not released
        together, which would be the very burst a leaky bucket exists to prevent.
        Safe from any thread, with waiters of any kind queued. A request admitted
        before the reset and cancelled after it frees no slot: the reset already
        has. Publishes no event.
        """
        with self._lock:
            self._next = self._now()
            self._restarted()

    @property
    def available(self) -> float:
        """Free room in the queue now."""
        with self._lock:
            return max(0.0, self._capacity - self._waiters.demand)

    def _available_unlocked(self) -> float:
        room = self._capacity - self._waiters.demand
        return room if room > 0.0 else 0.0

    def set_rate(self, rate: float) -> None:
        """Change the rate; the next slots are spaced by the new rate at once."""
        rate = number("rate", rate, gt=0)
        with self._lock:
            now = self._now()
            if self._next > now:  # re-space the slot already promised
                self._next = now + (self._next - now) * self._rate / rate
            self._rate = rate
            self._changed()

    def set_capacity(self, capacity: float) -> None:
        """Change how much may queue; queued requests larger than it fail."""
        capacity = number("capacity", capacity, ge=1)
        with self._lock:
            self._capacity = capacity
            self._waiters.fail_above(capacity)
            self._changed()

    def __repr__(self) -> str:
        with self._lock:
            waiting = len(self._waiters)
            wait = max(0.0, self._next - self._now())
        return (
            f"<LeakyBucket {self._name!r} {self._rate:g}/s, next slot in {wait:.3f}s, "
            f"{waiting}/{self._capacity:g} waiting>"
        )
