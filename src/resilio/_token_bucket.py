"""The token bucket: a steady rate with bursts up to a capacity.

Tokens drip in at ``rate`` per second up to ``capacity``; each admission takes some.
The level is computed lazily from the clock whenever the bucket is asked, so there
is no background thread or task, and an idle bucket costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta

from typing_extensions import Self

from ._clock import SYSTEM_CLOCK, Clock
from ._events import EventBus
from ._limiter import EPSILON, RateLimiter, per_capacity, per_period
from ._registry import track
from ._validate import number
from ._waiters import Waiter


class TokenBucket(RateLimiter):
    """Admits ``rate`` requests per second on average, with bursts up to ``capacity``.

    The bucket holds up to ``capacity`` tokens and gains ``rate`` tokens a second. A
    request for ``n`` takes ``n`` tokens, at once if they are there, or waits in FIFO
    order until they are: a large request is never starved by small ones behind it.

    **It starts full**: a new bucket admits a burst of ``capacity`` requests at once,
    then settles to ``rate`` a second. Pick ``capacity`` as the burst you accept
    (``capacity=1`` allows no burst at all; see [`LeakyBucket`][resilio.LeakyBucket]
    for strict spacing). ``capacity`` is a burst size, not a queue size: however
    many requests wait for tokens, none is refused for want of room. (On a
    ``LeakyBucket``, ``capacity`` means the opposite: how many may wait.)

    As ``@bucket``, ``with bucket:``, ``async with bucket:``, ``call`` and
    ``call_async`` it waits for one token before the call; built with
    ``reject=True`` those forms raise [`RateLimitExceeded`][resilio.RateLimitExceeded]
    at once instead. The sync forms never wait on a thread that runs an event loop:
    there a call that would wait raises `RuntimeError` naming the async form, rather
    than stall every task of the loop. Use one bucket per limit, shared by every
    caller: a bucket made per request limits nothing.

    Args:
        rate: Tokens added per second.
        capacity: The burst size: the most tokens the bucket holds, so the most
            requests admitted at once, and the largest single request. It does not
            bound the queue of waiting requests (a ``LeakyBucket``'s does).
        reject: Make the guard forms refuse instead of waiting.
        name: Appears in events, errors and ``repr``.
        clock: Where time comes from.
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus]
            by default.
    """

    __slots__ = ("_stamp", "_tokens")

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        reject: bool = False,
        name: str = "token-bucket",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        super().__init__(rate, capacity, reject=reject, name=name, clock=clock, bus=bus)
        self._tokens = self._capacity
        self._stamp = self._now()
        track(self)

    @classmethod
    def per(
        cls,
        count: float,
        period: float | timedelta,
        *,
        capacity: float | None = None,
        reject: bool = False,
        name: str = "token-bucket",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> Self:
        """A bucket that admits *count* requests per *period*: "100 a minute".

        ``TokenBucket.per(100, 60)`` refills at ``100 / 60`` tokens a second, and,
        unless told otherwise, holds ``count`` tokens: it starts full, so the whole
        period's allowance may pass at once, the burst a limit of "100 per minute"
        usually allows, and after that one request every ``60 / 100`` seconds.
        Give ``capacity`` for a smaller burst (``capacity=1``: none).

        Args:
            count: Admissions (tokens) per *period*; a positive number, at least 1
                unless *capacity* is given.
            period: Seconds, or a `timedelta`.
            capacity: The burst size; *count* by default.
            reject: As for [`TokenBucket`][resilio.TokenBucket].
            name: As for [`TokenBucket`][resilio.TokenBucket].
            clock: As for [`TokenBucket`][resilio.TokenBucket].
            bus: As for [`TokenBucket`][resilio.TokenBucket].

        Raises:
            TypeError: *count* or *period* is not a number (or *period* a
                `timedelta`), or another option has the wrong type.
            ValueError: *count* or *period* is not positive and finite, or the
                capacity (given, or *count*) is below 1.
        """
        rate = per_period(count, period)
        capacity = per_capacity(count, capacity)
        return cls(rate, capacity, reject=reject, name=name, clock=clock, bus=bus)

    def _refill(self, now: float) -> float:
        tokens = self._tokens
        if tokens < self._capacity:
            tokens += (now - self._stamp) * self._rate
            if tokens > self._capacity:  # noqa: PLR1730 - min() costs a call on the hot path
                tokens = self._capacity
            self._tokens = tokens
        self._stamp = now
        return tokens

    def _take(self, amount: float, now: float) -> bool:
        # _refill(), inlined: this runs on every admission.
        tokens = self._tokens
        capacity = self._capacity
        if tokens < capacity:
            tokens += (now - self._stamp) * self._rate
            if tokens > capacity:  # noqa: PLR1730 - min() costs a call on the hot path
                tokens = capacity
        self._stamp = now
        if tokens >= amount:
            self._tokens = tokens - amount
            return True
        if tokens + EPSILON >= amount:  # short by float dust only: admit, and empty
            self._tokens = 0.0
            return True
        self._tokens = tokens
        return False

    def try_acquire(self, n: float = 1) -> bool:
        """Take *n* tokens now if the bucket holds them and nobody is queued; never waits.

        A refusal publishes [`RateLimited`][resilio.RateLimited] with
        ``rejected=True``.

        Returns:
            Whether the request was admitted.

        Raises:
            ValueError: *n* is not positive or exceeds the capacity.
        """
        # `_try_acquire_amount` for the int 1, with `_take(1, now)` inlined, as in
        # `__aenter__`: the call would cost a fifth of the whole.
        if n != 1 or n.__class__ is not int:
            return self._try_acquire_amount(n)
        lock = self._lock
        lock.acquire()
        try:
            now = self._now()
            if not self._waiters._live:
                tokens = self._tokens
                capacity = self._capacity
                if tokens < capacity:
                    tokens += (now - self._stamp) * self._rate
                    if tokens > capacity:  # noqa: PLR1730 - min() costs a call
                        tokens = capacity
                self._stamp = now
                if tokens >= 1.0:
                    self._tokens = tokens - 1.0
                    self._granted += 1.0
                    return True
                if tokens + EPSILON >= 1.0:  # short by float dust only: admit, and empty
                    self._tokens = 0.0
                    self._granted += 1.0
                    return True
                self._tokens = tokens
            self._refused += 1.0
            retry_after = self._ready_at(self._waiters.demand, 1, now) - now
        finally:
            lock.release()
        self._limited(1, retry_after, rejected=True, now=now)
        return False

    def __aenter__(self) -> Awaitable[Self]:  # type: ignore[override] # as RateLimiter's
        # `RateLimiter.__aenter__` with `_take(1.0, now)` inlined: the call would cost
        # a tenth of ``async with bucket:``. Whatever is not "a token free, nobody
        # queued" takes the general path.
        lock = self._lock
        lock.acquire()
        try:
            if not self._waiters._live:
                now = self._now()
                tokens = self._tokens
                capacity = self._capacity
                if tokens < capacity:
                    tokens += (now - self._stamp) * self._rate
                    if tokens > capacity:  # noqa: PLR1730 - min() costs a call
                        tokens = capacity
                self._stamp = now
                if tokens >= 1.0:  # a float: float-with-int arithmetic is slower
                    self._tokens = tokens - 1.0
                    self._granted += 1.0
                    return self._entered
                self._tokens = tokens
        finally:
            lock.release()
        return self._enter_waiting()

    def _ready_at(self, ahead: float, amount: float, now: float) -> float:
        missing = ahead + amount - self._refill(now)
        return now + missing / self._rate if missing > 0 else now

    def _give_back(self, waiter: Waiter, now: float) -> None:
        if waiter.mark == self._era:  # granted since the last reset, if any
            self._tokens = min(self._capacity, self._refill(now) + waiter.amount)

    def reset(self) -> None:
        """Fill the bucket to capacity, as if it were new; the queue is served from it.

        Requests already waiting are admitted from the full bucket at once, in
        their order, as many as it holds; the rest keep their places and wait for
        tokens at ``rate`` from now. Safe from any thread, with waiters of any kind
        queued. A request admitted before the reset and cancelled after it gives
        nothing back: the reset has already refilled the bucket. Publishes no event.
        """
        with self._lock:
            self._tokens = self._capacity
            self._stamp = self._now()
            self._restarted()

    @property
    def available(self) -> float:
        """Tokens in the bucket now (queued requests take them first)."""
        with self._lock:
            return self._refill(self._now())

    def _available_unlocked(self) -> float:
        # The level before the stamp: `_take` writes the stamp first, so a take made
        # between these two reads makes the level look as it was before it (an older
        # level, refilled for less time), never fuller than the bucket ever was.
        tokens = self._tokens
        stamp = self._stamp
        capacity = self._capacity
        if tokens < capacity:
            tokens += (self._now() - stamp) * self._rate
        return min(tokens, capacity) if tokens > 0.0 else 0.0

    def set_rate(self, rate: float) -> None:
        """Change the refill rate; waiters are re-timed at once."""
        rate = number("rate", rate, gt=0)
        with self._lock:
            self._refill(self._now())
            self._rate = rate
            self._changed()

    def set_capacity(self, capacity: float) -> None:
        """Change the capacity; a fuller bucket is trimmed to it.

        Queued requests larger than the new capacity can never be met: they fail
        with [`RateLimitExceeded`][resilio.RateLimitExceeded].
        """
        capacity = number("capacity", capacity, ge=1)
        with self._lock:
            self._refill(self._now())
            self._capacity = capacity
            self._tokens = min(self._tokens, capacity)
            self._waiters.fail_above(capacity)
            self._changed()

    def __repr__(self) -> str:
        with self._lock:
            tokens = self._refill(self._now())
            waiting = len(self._waiters)
        return (
            f"<TokenBucket {self._name!r} {tokens:.2f}/{self._capacity:g} tokens, "
            f"{self._rate:g}/s, {waiting} waiting>"
        )
