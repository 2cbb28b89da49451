"""Retry with jittered exponential backoff, retry budgets and retry-after hints.

A [`Retry`][resilio.Retry] policy is configuration plus cumulative counters: every
call through it keeps its own count of tries in local variables, so concurrent calls
through one decorated function never share or clobber state, and adds to the
policy's counters only with lock-free ``next()`` calls. The success path costs one
``try`` block and one such ``next()``: the per-call state is created only after a
first failure.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import numbers
import random as _random
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

import attrs
from anyio.lowlevel import checkpoint

from . import _validate
from ._backoff import JITTERS, Jitter, Schedule, between, jittered, seconds, spread
from ._clock import SYSTEM_CLOCK, Clock, check_clock
from ._counters import count_of, counter
from ._errors import MisuseError
from ._events import (
    EventBus,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    check_bus,
    default_bus,
)
from ._guard import is_async_callable
from ._instant import SWITCH
from ._registry import track
from ._waiters import running_loop

P = ParamSpec("P")
T = TypeVar("T")

_DEFAULT_BASE_DELAY = 0.1  # what Retry's signature says; given with delay=, they go unused
_DEFAULT_MULTIPLIER = 2.0


def _counted(tickets: itertools.count[int]) -> int:
    """How many numbers *tickets* (started at 0) has handed out, read without taking one.

    ``next()`` on an `itertools.count` is one C call, atomic under the GIL and, since
    CPython 3.13, on a free-threaded build too (a compare-and-swap): threads taking
    tickets at once lose none and need no lock. Its ``repr`` reads the count as one
    machine word: perhaps a few tickets stale while threads take them, never torn.
    """
    return int(repr(tickets)[6:-1])


@attrs.frozen(kw_only=True)
class BudgetStats:
    """A frozen view of a [`RetryBudget`][resilio.RetryBudget]: counts since it was built.

    The counts are cumulative and never go down (they ignore the window, which only
    decides ``available``): read them as Prometheus counters, by their rate.

    Attributes:
        deposits: First tries counted (`RetryBudget.deposit`, one per call through a
            policy that uses the budget).
        withdrawals: Retries the budget allowed (`RetryBudget.try_withdraw` answered
            ``True``).
        refusals: Retries the budget refused (`RetryBudget.try_withdraw` answered
            ``False``); through a policy, one per [`RetryRefused`][resilio.RetryRefused].
        available: Retries the budget would allow now, as
            [`RetryBudget.available`][resilio.RetryBudget.available]: the one
            point-in-time value here.
    """

    deposits: int
    withdrawals: int
    refusals: int
    available: float


@attrs.frozen(kw_only=True)
class RetryStats:
    """A frozen view of a [`Retry`][resilio.Retry] policy: counts since it was built.

    Every call through the policy (the decorator, `Retry.call`, `Retry.call_async`
    and inline loops alike) counts once, when it ends. A call that returns or
    raises falls in one of resilience4j's four kinds: it ``succeeded`` or
    ``failed``, ``without_retry`` (after one try) or ``with_retry`` (after more).
    A call ended by cancellation counts as ``cancelled`` instead. So ``calls ==
    succeeded + failed + cancelled``, and ``succeeded`` and ``failed`` are each the
    sum of their two kinds. Retries count as they start, so a call still retrying
    shows in ``retries`` before it shows in ``calls``.

    The counts are cumulative and never go down; each is read whole, without a
    lock, though while threads are calling two counts may be a call apart.

    Attributes:
        calls: Calls through the policy that have ended.
        tries: Tries made: a first try for each call that has ended, plus
            ``retries``.
        retries: Tries after the first, counted as each starts (after its sleep;
            one per [`RetryScheduled`][resilio.RetryScheduled], unless the sleep was
            cancelled).
        succeeded: Calls that returned a result the policy accepted.
        failed: Calls that raised an exception, or returned a result ``if_result``
            still asked to retry when the retrying ended. An error ``on`` does not
            match counts here as soon as it is raised: on the first try it is a
            failure without retry.
        cancelled: Calls ended by cancellation, ``KeyboardInterrupt`` or another
            ``BaseException`` that is not an ``Exception`` (in a try or a sleep):
            neither succeeded nor failed.
        exhausted: Failed calls whose retrying ran out: of attempts, of
            ``timeout``, or with a ``retry_after`` hint beyond ``max_delay`` or
            past the timeout; one per [`RetryExhausted`][resilio.RetryExhausted].
        refused: Failed calls whose next retry the ``budget`` refused; one per
            [`RetryRefused`][resilio.RetryRefused].
        succeeded_without_retry: Calls that succeeded on the first try.
        succeeded_with_retry: Calls that succeeded after one retry or more.
        failed_without_retry: Calls that failed after one try: an error ``on`` does
            not match, or no retry was allowed (``attempts=1``, a refusal, a hint).
        failed_with_retry: Calls that failed after one retry or more.
    """

    calls: int
    tries: int
    retries: int
    succeeded: int
    failed: int
    cancelled: int
    exhausted: int
    refused: int
    succeeded_without_retry: int
    succeeded_with_retry: int
    failed_without_retry: int
    failed_with_retry: int


class RetryBudget:
    """Caps retries at a fraction of recent first tries, so an outage cannot multiply load.

    Every call through a policy that uses the budget deposits one first try; every
    retry withdraws one. Over the last ``window`` seconds, retries are allowed up to
    ``ratio`` times the first tries plus ``min_per_second`` per second; beyond that a
    retry is refused and the caller gets the error at once. Deposits expire as the
    window slides (Finagle's retry budget), so a burst of traffic long ago buys
    nothing now. Share one budget between every policy that calls the same
    dependency, across threads and tasks alike. `stats` counts every deposit,
    withdrawal and refusal since the budget was built.

    A deposit is cheap: it takes no lock, and under heavy traffic it reads the clock
    only once in many first tries (at most once in 32 of the current slice's, at
    least once in 512). The first tries counted in between are given the slice of the
    last reading, so a few made just as a slice begins may be counted in the slice
    before and leave the window early: the budget then errs on the strict side, never
    the generous one.

    Args:
        ratio: Retries allowed per first try, e.g. ``0.2`` for 20 %.
        min_per_second: Retries allowed per second whatever the traffic, so that a
            quiet service can still retry.
        window: Seconds over which first tries and retries are counted, at least
            ``0.001``.
        name: Appears in ``repr`` and names the budget's metrics.
        clock: Where time comes from.
    """

    BUCKETS = 10
    """Slices the window is kept in; counts leave it a slice at a time."""

    MIN_WINDOW = 0.001
    """The shortest ``window``, in seconds."""

    _SAMPLE = 32  # a deposit reads the clock once per this many of its slice's first tries
    _MAX_STRIDE = 512  # ... and at least once per this many

    __slots__ = (
        "__weakref__",
        "_clock",
        "_deposits",
        "_due",
        "_epoch",
        "_lock",
        "_min_per_second",
        "_name",
        "_now",
        "_ratio",
        "_refused",
        "_ring_deposits",
        "_ring_withdrawals",
        "_tickets",
        "_unfolded",
        "_width",
        "_window",
        "_withdrawals",
        "_withdrawn",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        *,
        window: float | timedelta = 10.0,
        name: str = "retry-budget",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ratio = _validate.number("ratio", ratio, ge=0)
        self._min_per_second = _validate.number("min_per_second", min_per_second, ge=0)
        self._window = _validate.duration("window", window, ge=self.MIN_WINDOW)
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._now = clock.monotonic
        self._lock = threading.Lock()
        self._width = self._window / self.BUCKETS
        self._ring_deposits = [0] * self.BUCKETS
        self._ring_withdrawals = [0] * self.BUCKETS
        self._deposits = self._withdrawals = 0
        self._epoch = int(self._now() // self._width)
        # Deposits take tickets from one counter, without the lock: ``next()`` on an
        # itertools.count is one atomic step (see `_counted`), so no deposit is lost,
        # and the tickets handed out are the deposits made since construction. The
        # tickets from ``_unfolded`` on are not in the ring yet; a deposit whose ticket
        # reaches ``_due`` folds them in, reading the clock to know their slice.
        self._tickets = itertools.count()
        self._unfolded = 0
        self._due = 0
        self._withdrawn = self._refused = 0  # since construction; written under the lock
        track(self)

    def deposit(self) -> None:
        """Count one first try."""
        ticket = next(self._tickets)
        if ticket >= self._due:
            self._fold_due(ticket)

    def _fold_due(self, ticket: int) -> None:
        with self._lock:
            self._fold(ticket)

    def _fold(self, ticket: int | None) -> None:
        """Bring the ring up to now and fold in the deposits not yet in it; lock held.

        The deposits with tickets from *ticket* on (a deposit that found its ticket
        due, and any taken since) are counted now. Those before it (every one, for
        ``ticket=None``) were made between the last fold and now: if a slice began in
        between, they go to the older slice.
        """
        mark = _counted(self._tickets)  # every ticket below it belongs to a deposit made
        first, self._unfolded = self._unfolded, mark
        epoch = int(self._now() // self._width)
        ring = self._ring_deposits
        if epoch > self._epoch:
            split = mark if ticket is None else min(max(ticket, first), mark)
            ring[self._epoch % self.BUCKETS] += split - first
            self._deposits += split - first
            first = split
            self._advance(epoch)
        index = self._epoch % self.BUCKETS
        ring[index] += mark - first
        self._deposits += mark - first
        stride = ring[index] // self._SAMPLE
        # the deposit that takes ticket ``mark`` is the first after this fold
        self._due = mark + (0 if stride < 1 else min(stride, self._MAX_STRIDE) - 1)

    def _advance(self, epoch: int) -> None:
        """Move the ring on to slice *epoch*, dropping the slices that left the window."""
        deposits, withdrawals = self._ring_deposits, self._ring_withdrawals
        for step in range(1, min(epoch - self._epoch, self.BUCKETS) + 1):
            index = (self._epoch + step) % self.BUCKETS
            self._deposits -= deposits[index]
            self._withdrawals -= withdrawals[index]
            deposits[index] = withdrawals[index] = 0
        self._epoch = epoch

    def try_withdraw(self) -> bool:
        """Take one retry from the budget if it allows it; never waits."""
        with self._lock:
            self._fold(None)
            if self._withdrawals + 1 > self._allowed():
                self._refused += 1
                return False
            self._ring_withdrawals[self._epoch % self.BUCKETS] += 1
            self._withdrawals += 1
            self._withdrawn += 1
            return True

    def _allowed(self) -> float:
        return self._ratio * self._deposits + self._min_per_second * self._window

    @property
    def available(self) -> float:
        """Retries the budget would allow now."""
        with self._lock:
            self._fold(None)
            return max(0.0, self._allowed() - self._withdrawals)

    @property
    def name(self) -> str:
        """The name that appears in ``repr`` and labels the budget's metrics."""
        return self._name

    def stats(self) -> BudgetStats:
        """Return the counts since the budget was built, and the retries it allows now.

        Safe to call from any thread (an exporter's): the counts are read without a
        lock, each whole; ``available`` takes the budget's lock for a moment, as the
        property does.
        """
        deposits = _counted(self._tickets)
        return BudgetStats(
            deposits=deposits,
            withdrawals=self._withdrawn,
            refusals=self._refused,
            available=self.available,
        )

    def __repr__(self) -> str:
        with self._lock:
            self._fold(None)
            deposits, withdrawals = self._deposits, self._withdrawals
        return (
            f"<RetryBudget {self._name!r} ratio={self._ratio:g} "
            f"min_per_second={self._min_per_second:g}: "
            f"{withdrawals} retries for {deposits} first tries in the last {self._window:g}s>"
        )


def _hint(error: BaseException | None) -> float | None:
    """The usable ``retry_after`` of *error*: a finite number of seconds ``>= 0``, or ``None``.

    A ``bool``, a string, a negative number, ``nan`` and ``inf`` are no hint at all.
    """
    hint = getattr(error, "retry_after", None)
    if hint is None or isinstance(hint, bool) or not isinstance(hint, numbers.Real):
        return None
    try:
        seconds = float(hint)
    except OverflowError:  # an int too large for a float: finite, and longer than any cap
        return sys.float_info.max if cast("float", hint) > 0 else None
    return seconds if 0.0 <= seconds < math.inf else None


class _Run:
    """The state of one call after its first failure: which try, the last delay, the deadline.

    ``instant`` says whether the delay last returned is to be skipped, not slept: it was
    decided under `resilio.testing.instant`, which the run reads only here, after a
    failure, never on the success path. ``tries`` counts the tries made, which
    ``attempt`` (the try the schedule is at) runs ahead of while a retry sleeps.
    """

    __slots__ = ("attempt", "deadline", "instant", "policy", "previous", "tries")

    def __init__(self, policy: Retry, started: float) -> None:
        self.policy = policy
        self.attempt = self.tries = 1
        self.previous = policy._base_delay
        self.deadline = None if policy._timeout is None else started + policy._timeout
        self.instant = False

    def sleep(self, delay: float) -> None:
        """Sleep *delay* (unless ``instant``) before the next try; count that try."""
        policy = self.policy
        if not self.instant:
            policy._clock.sleep(delay)
        self.tries += 1
        next(policy._retries)

    async def sleep_async(self, delay: float) -> None:
        """Sleep *delay* (only a checkpoint if ``instant``) before the next try; count it."""
        policy = self.policy
        if self.instant:
            await checkpoint()
        else:
            await policy._clock.sleep_async(delay)
        self.tries += 1
        next(policy._retries)

    def next_delay(self, error: BaseException | None, *, sync: bool = False) -> float | None:
        """After the current try failed: the delay before the next, or ``None`` to stop.

        With *sync*, the caller will block its thread for the delay: on a thread that
        runs an event loop that is refused with `RuntimeError` instead.
        """
        policy = self.policy
        attempt = self.attempt
        limit = policy._attempts
        instant = self.instant = SWITCH.on and SWITCH.here()
        if instant and (cap := SWITCH.attempts) is not None and (limit is None or cap < limit):
            limit = cap
        if limit is not None and attempt >= limit:
            policy._exhaust(attempt, error, "attempts")
            return None
        if policy._delay is None:
            delay = self.previous = jittered(
                attempt,
                self.previous,
                base_delay=policy._base_delay,
                multiplier=policy._multiplier,
                max_delay=policy._max_delay,
                jitter=policy._jitter,
                random=policy._random,
            )
        else:
            delay = policy._scheduled(attempt, error)
        deadline = self.deadline
        hint = _hint(error)
        if hint is not None and hint > delay:  # never sooner than the rejection said
            if hint > policy._max_delay:
                policy._exhaust(attempt, error, "retry_after_over_max_delay")
                return None
            delay = spread(hint, policy._random)
            if deadline is not None:
                left = deadline - policy._now()
                if hint > left:
                    policy._exhaust(attempt, error, "retry_after_past_timeout")
                    return None
                delay = min(delay, left)  # the hint fits; the spread may not
        elif deadline is not None and policy._now() + delay > deadline:
            policy._exhaust(attempt, error, "timeout")
            return None
        if instant:  # the sleep is skipped, but counts against the timeout as if slept
            if deadline is not None:
                self.deadline = deadline - delay
            delay = 0.0
        if sync and delay > 0 and (loop := running_loop()) is not None:
            # Refused before the budget or the events hear of a retry that won't happen.
            raise _blocking_refused(policy, loop, error) from error
        budget = policy._budget
        if budget is not None and not budget.try_withdraw():
            next(policy._refused)
            bus = policy._bus
            if bus.wants(RetryRefused):
                bus.publish(
                    RetryRefused(
                        source=policy._name, at=policy._now(), attempt=attempt, error=error
                    )
                )
            return None
        bus = policy._bus
        if bus.wants(RetryScheduled):
            bus.publish(
                RetryScheduled(
                    source=policy._name, at=policy._now(), attempt=attempt, delay=delay, error=error
                )
            )
        self.attempt = attempt + 1
        return delay


class Attempt:
    """One try in an inline retry loop; use it as ``with attempt:``.

    Leaving the block with an exception the policy retries on swallows it and lets
    the loop go round again; any other outcome ends the loop.

    Attributes:
        number: Which try this is, from 1.
    """

    __slots__ = ("_loop", "number")

    def __init__(self, loop: _Attempts, number: int) -> None:
        self._loop = loop
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        loop = self._loop
        policy = loop.policy
        if isinstance(exc, Exception) and not isinstance(exc, MisuseError) and policy._on(exc):
            loop.error = exc
            return True
        loop.done = True
        if exc is None:  # policy._count_succeeded(self.number), inlined
            next(
                policy._succeeded_without_retry
                if self.number == 1
                else policy._succeeded_with_retry
            )
        else:
            policy._count_raised(exc, self.number)
        return False

    def __repr__(self) -> str:
        attempts = self._loop.policy._attempts
        return (
            f"<Attempt {self.number}>"
            if attempts is None
            else f"<Attempt {self.number} of {attempts}>"
        )


class _Attempts:
    """The iterator behind ``for attempt in policy:``."""

    __slots__ = ("done", "error", "policy", "run")

    def __init__(self, policy: Retry) -> None:
        self.policy = policy
        self.run: _Run | None = None
        self.error: BaseException | None = None
        self.done = False

    def _next_delay(self, *, sync: bool) -> float | Attempt:
        """The first attempt, or the delay before the next one; raises when it is over."""
        if self.done:
            raise StopIteration
        policy = self.policy
        run = self.run
        if run is None:
            if policy._budget is not None:
                policy._budget.deposit()
            self.run = _Run(policy, policy._now())
            return Attempt(self, 1)
        error = self.error
        if error is None:  # the last attempt's block was never entered: nothing failed
            self.done = True
            policy._count_succeeded(run.tries)
            raise StopIteration
        self.error = None
        try:
            delay = run.next_delay(error, sync=sync)
        except BaseException as exc:
            self.done = True
            policy._count_raised(exc, run.tries)
            raise
        if delay is None:
            self.done = True
            policy._count_raised(error, run.tries)
            raise error
        return delay

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        step = self._next_delay(sync=True)
        if isinstance(step, Attempt):
            return step
        run = self.run
        assert run is not None
        try:
            run.sleep(step)
        except BaseException as exc:
            self.done = True
            self.policy._count_raised(exc, run.tries)
            raise
        return Attempt(self, run.tries)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self

    async def __anext__(self) -> Attempt:
        try:
            step = self._next_delay(sync=False)
        except StopIteration:
            raise StopAsyncIteration from None
        if isinstance(step, Attempt):
            return step
        run = self.run
        assert run is not None
        try:
            await run.sleep_async(step)
        except BaseException as exc:
            self.done = True
            self.policy._count_raised(exc, run.tries)
            raise
        return Attempt(self, run.tries)


class Retry:
    """A retry policy: try again, after a growing, jittered delay, when a call fails.

    The delay before try ``k + 1`` is ``min(max_delay, base_delay * multiplier ** (k - 1))``,
    or ``min(max_delay, delay(k))`` for a ``delay`` function such as
    [`resilio.backoff.exponential`][resilio.backoff.exponential], jittered (see
    ``jitter``). Under [`resilio.testing.instant`][resilio.testing.instant] the
    sleeps are skipped. When tries run out, or the next sleep would end past
    ``timeout``, the last exception is re-raised exactly as it was: never wrapped.
    Cancellation, ``KeyboardInterrupt`` and other ``BaseException`` subclasses that
    are not ``Exception`` are never retried, and neither is a
    [`MisuseError`][resilio.MisuseError] (a guard used in a way that cannot work):
    trying again cannot help.

    An exception that carries ``retry_after`` (an open
    [`CircuitBreaker`][resilio.CircuitBreaker], a rate limiter, or one of your own) is
    not retried sooner than that, plus a random extra of up to 10 % so that callers
    told the same moment do not come back together. Only a finite number ``>= 0`` is
    such a hint (read an HTTP header with
    [`parse_retry_after`][resilio.parse_retry_after]). A hint longer than
    ``max_delay``, or one that would end past ``timeout``, ends the retrying at once:
    the exception is re-raised without a sleep.

    Use it as a decorator on ``def`` and ``async def`` (signatures kept), through
    `call` / `call_async`, or inline::

        for attempt in policy:
            with attempt:
                ...

    (``async for`` in async code). Each call keeps its own count of tries;
    `stats` counts every call and retry since the policy was built.

    Args:
        on: Exception types (one or a tuple), or a predicate
            ``(exception) -> bool``, that ask for another try.
        if_result: A predicate on the return value that asks for another try; when
            tries run out the last result is returned.
        attempts: Tries in all, the first included (``>= 1``), or ``None`` for no
            limit: then only ``timeout``, the ``budget``, a ``retry_after`` hint
            longer than ``max_delay`` or an error ``on=`` does not match ends the
            retrying, so give it a ``timeout``.
        delay: A function ``(attempt) -> seconds`` (or a `datetime.timedelta`)
            giving the delay after try ``attempt`` failed, before jitter, in place of
            the exponential schedule: one of the builders of
            [`resilio.backoff`][resilio.backoff], or your own. ``max_delay`` still
            caps it. It must answer a finite number ``>= 0``; anything else raises
            [`MisuseError`][resilio.MisuseError] when it is asked, chained to the
            error of the try that failed.
        base_delay: Seconds (or a `datetime.timedelta`) before the first retry,
            before jitter; not with ``delay``.
        max_delay: The longest delay from the schedule, at least ``base_delay`` (or
            the ``min`` of a ``delay`` schedule); a ``retry_after`` hint longer than it
            ends the retrying.
        multiplier: How much each delay grows (``>= 1``); not with ``delay``.
        jitter: ``"full"``, ``"equal"``, ``"decorrelated"`` or ``None``. Over a
            ``delay`` function, ``"full"`` and ``"equal"`` spread its delay (never
            below a schedule's ``min``), and ``"decorrelated"``, which grows a
            schedule of its own, is refused.
        timeout: Seconds the retrying may take, from the first try: no sleep is
            started that would end past it (a try already running is not
            interrupted; wrap it in a [`Timeout`][resilio.Timeout] for that).
            ``None`` for no limit.
        budget: A [`RetryBudget`][resilio.RetryBudget] to draw retries from.
        random: A callable returning floats in [0, 1) for jitter and the spread of
            hints; pass a seeded ``random.Random(...).random`` for exact tests.
        name: Appears in events and ``repr``.
        clock: Where time comes from; on a [`ManualClock`][resilio.ManualClock]
            a sync retry loop runs instantly.
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus]
            by default.

    Raises:
        TypeError: The class is used as a decorator without parentheses
            (``@Retry``; write ``@Retry()``), or an argument has the wrong type.
        ValueError: An argument is out of range, ``max_delay < base_delay``, or
            ``delay`` comes with ``base_delay``, ``multiplier`` or
            ``jitter="decorrelated"``.
    """

    __slots__ = (
        "__weakref__",
        "_attempts",
        "_base_delay",
        "_budget",
        "_bus",
        "_cancelled",
        "_clock",
        "_delay",
        "_exhausted",
        "_failed_with_retry",
        "_failed_without_retry",
        "_floor",
        "_if_result",
        "_jitter",
        "_max_delay",
        "_multiplier",
        "_name",
        "_now",
        "_on",
        "_random",
        "_refused",
        "_retries",
        "_succeeded_with_retry",
        "_succeeded_without_retry",
        "_timeout",
    )

    def __init__(
        self,
        fn: None = None,
        /,
        *,
        on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = Exception,
        if_result: Callable[[Any], bool] | None = None,
        attempts: int | None = 5,
        delay: Callable[[int], float | timedelta] | None = None,
        base_delay: float | timedelta = 0.1,
        max_delay: float | timedelta = 10.0,
        multiplier: float = 2.0,
        jitter: Jitter = "full",
        timeout: float | timedelta | None = None,
        budget: RetryBudget | None = None,
        random: Callable[[], float] | None = None,
        name: str = "retry",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        if fn is not None:
            msg = (
                f"Retry takes keyword arguments only: to decorate {fn!r}, "
                "use @Retry() (with parentheses) or @retry"
            )
            raise TypeError(msg)
        self._on = _validate.exception_matcher("on", on)
        if if_result is not None:
            _validate.callable_("if_result", if_result)
        self._if_result = if_result
        self._attempts = None if attempts is None else _validate.integer("attempts", attempts, ge=1)
        self._base_delay = _validate.duration("base_delay", base_delay, ge=0)
        self._max_delay = _validate.duration("max_delay", max_delay, ge=0)
        self._multiplier = _validate.number("multiplier", multiplier, ge=1)
        if jitter not in JITTERS:
            msg = f"'jitter' must be one of 'full', 'equal', 'decorrelated' or None: {jitter!r}"
            raise ValueError(msg)
        self._jitter = jitter
        self._delay = delay
        self._floor = 0.0
        if delay is None:
            if self._max_delay < self._base_delay:
                msg = (
                    f"'max_delay' must be >= 'base_delay': max_delay={max_delay!r}, "
                    f"base_delay={base_delay!r}"
                )
                raise ValueError(msg)
        else:
            self._check_delay(delay, base_delay, multiplier, max_delay)
        self._timeout = _validate.optional_duration("timeout", timeout, gt=0)
        if budget is not None and not isinstance(budget, RetryBudget):
            msg = f"'budget' must be a RetryBudget: {budget!r}"
            raise TypeError(msg)
        self._budget = budget
        if random is not None:
            _validate.callable_("random", random)
        self._random = _random.random if random is None else random
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._now = clock.monotonic
        self._bus = default_bus() if bus is None else check_bus(bus)
        # The counts behind `stats`, each advanced by one lock-free ``next()`` (see
        # `counter`). A first-try success costs exactly that: one ``next()``.
        self._succeeded_without_retry = counter()
        self._succeeded_with_retry = counter()
        self._failed_without_retry = counter()
        self._failed_with_retry = counter()
        self._cancelled = counter()
        self._retries = counter()
        self._exhausted = counter()
        self._refused = counter()
        track(self)

    def _check_delay(
        self,
        delay: Callable[[int], float | timedelta],
        base_delay: float | timedelta,
        multiplier: float,
        max_delay: float | timedelta,
    ) -> None:
        """Refuse a ``delay`` function that is not callable, or that comes with options it
        replaces; take a schedule's ``min`` as the floor of the jitter."""
        _validate.callable_("delay", delay)
        for option, value, default in (
            ("base_delay", base_delay, _DEFAULT_BASE_DELAY),
            ("multiplier", multiplier, _DEFAULT_MULTIPLIER),
        ):
            if value != default and not (
                isinstance(value, timedelta) and value.total_seconds() == default
            ):
                msg = (
                    f"'delay' replaces the exponential schedule, so {option!r} is not used: "
                    f"{option}={value!r}; drop it, or build the schedule with it, e.g. "
                    "delay=resilio.backoff.exponential(base=..., multiplier=...)"
                )
                raise ValueError(msg)
        if self._jitter == "decorrelated":
            msg = (
                "'jitter' cannot be 'decorrelated' with 'delay': decorrelated jitter grows "
                f"a schedule of its own from base_delay; use 'full', 'equal' or None: "
                f"delay={delay!r}"
            )
            raise ValueError(msg)
        if isinstance(delay, Schedule):
            self._floor = delay.min
            if self._max_delay < delay.min:
                msg = (
                    f"'max_delay' must be >= the min of 'delay': max_delay={max_delay!r}, "
                    f"delay={delay!r}"
                )
                raise ValueError(msg)

    def _scheduled(self, attempt: int, error: BaseException | None) -> float:
        """The delay after try *attempt* failed, from the ``delay`` function, jittered.

        Raises:
            MisuseError: The function answered something that is not a delay.
        """
        fn = self._delay
        assert fn is not None
        answer = fn(attempt)
        wanted = seconds(answer)
        if wanted is None:
            msg = (
                f"{self._name!r}: the delay function {_describe(fn)} answered {answer!r} after try "
                f"{attempt}; a delay is a finite number of seconds >= 0 or a timedelta"
            )
            raise MisuseError(msg) from error
        wanted = min(wanted, self._max_delay)
        return between(self._floor, wanted, self._jitter, self._random)

    @property
    def name(self) -> str:
        """The name that appears in events and ``repr``."""
        return self._name

    def stats(self) -> RetryStats:
        """Return the counts of calls, tries and retries since the policy was built.

        Safe to call from any thread (an exporter's): nothing is locked, and each
        count is read whole, though two counts may be a call apart while threads
        are calling.
        """
        ok_first = count_of(self._succeeded_without_retry)
        ok_later = count_of(self._succeeded_with_retry)
        failed_first = count_of(self._failed_without_retry)
        failed_later = count_of(self._failed_with_retry)
        cancelled = count_of(self._cancelled)
        retries = count_of(self._retries)
        calls = ok_first + ok_later + failed_first + failed_later + cancelled
        return RetryStats(
            calls=calls,
            tries=calls + retries,
            retries=retries,
            succeeded=ok_first + ok_later,
            failed=failed_first + failed_later,
            cancelled=cancelled,
            exhausted=count_of(self._exhausted),
            refused=count_of(self._refused),
            succeeded_without_retry=ok_first,
            succeeded_with_retry=ok_later,
            failed_without_retry=failed_first,
            failed_with_retry=failed_later,
        )

    def _count_succeeded(self, tries: int) -> None:
        """Count a call that ended with an accepted result after *tries* tries."""
        next(self._succeeded_without_retry if tries == 1 else self._succeeded_with_retry)

    def _count_raised(self, error: BaseException, tries: int) -> None:
        """Count a call that ended raising *error* after *tries* tries."""
        if not isinstance(error, Exception):
            next(self._cancelled)
        else:
            next(self._failed_without_retry if tries == 1 else self._failed_with_retry)

    def _count_failed(self, tries: int) -> None:
        """Count a call that ended with a result ``if_result`` still rejected."""
        next(self._failed_without_retry if tries == 1 else self._failed_with_retry)

    def _retries_first(self, result: object) -> bool:
        """Whether ``if_result`` asks for another try after a first try returned
        *result*; a predicate that raises ends the call, counted."""
        assert self._if_result is not None
        try:
            return self._if_result(result)
        except BaseException as exc:
            self._count_raised(exc, 1)
            raise

    # -- the decorator --------------------------------------------------------------

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate a ``def`` or an ``async def``; its signature is kept.

        Raises:
            MisuseError: *fn* is not callable, or is a generator function.
        """
        check_callable(fn, owner="Retry")
        if is_async_callable(fn):
            return cast("Callable[P, T]", self._wrap_async(fn))  # type: ignore[arg-type]
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T]:
        retry_sync = self._retry_sync
        if_result = None if self._if_result is None else self._retries_first
        budget = self._budget
        tickets = itertools.count() if budget is None else budget._tickets
        succeeded, cancelled = self._succeeded_without_retry, self._cancelled
        now = self._now
        timed = self._timeout is not None

        @functools.wraps(fn)
        def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            started = now() if timed else 0.0
            if budget is not None:  # budget.deposit(), inlined
                ticket = next(tickets)
                if ticket >= budget._due:
                    budget._fold_due(ticket)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                error: Exception | None = exc
            except BaseException:
                next(cancelled)
                raise
            else:
                if if_result is None or not if_result(result):
                    next(succeeded)
                    return result
                error = None
            try:  # outside the except block, so later errors are not chained to this one
                return retry_sync(fn, args, kwargs, started, error, None if error else result)
            finally:
                error = None

        return retried

    def _wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        retry_async = self._retry_async
        if_result = None if self._if_result is None else self._retries_first
        budget = self._budget
        tickets = itertools.count() if budget is None else budget._tickets
        succeeded, cancelled = self._succeeded_without_retry, self._cancelled
        now = self._now
        timed = self._timeout is not None

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            started = now() if timed else 0.0
            if budget is not None:  # budget.deposit(), inlined
                ticket = next(tickets)
                if ticket >= budget._due:
                    budget._fold_due(ticket)
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                error: Exception | None = exc
            except BaseException:
                next(cancelled)
                raise
            else:
                if if_result is None or not if_result(result):
                    next(succeeded)
                    return result
                error = None
            try:
                return await retry_async(
                    fn, args, kwargs, started, error, None if error else result
                )
            finally:
                error = None

        return retried

    # -- the loops after a first failure --------------------------------------------

    def _retry_sync(  # noqa: PLR0917 - private, called from one place
        self,
        fn: Callable[..., T],
        args: Any,
        kwargs: Any,
        started: float,
        error: BaseException | None,
        result: Any,
    ) -> T:
        run = _Run(self, started)
        if_result = self._if_result
        try:
            while True:
                if error is not None and (isinstance(error, MisuseError) or not self._on(error)):
                    raise error
                delay = run.next_delay(error, sync=True)
                if delay is None:
                    if error is not None:
                        raise error
                    self._count_failed(run.tries)
                    return result  # type: ignore[no-any-return]
                run.sleep(delay)
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    error = exc
                    continue
                if if_result is None or not if_result(result):
                    next(self._succeeded_with_retry)
                    return result  # type: ignore[no-any-return]
                error = None
        except BaseException as exc:
            self._count_raised(exc, run.tries)
            raise

    async def _retry_async(  # noqa: PLR0917 - private, called from one place
        self,
        fn: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
        started: float,
        error: BaseException | None,
        result: Any,
    ) -> T:
        run = _Run(self, started)
        if_result = self._if_result
        try:
            while True:
                if error is not None and (isinstance(error, MisuseError) or not self._on(error)):
                    raise error
                delay = run.next_delay(error)
                if delay is None:
                    if error is not None:
                        raise error
                    self._count_failed(run.tries)
                    return result  # type: ignore[no-any-return]
                await run.sleep_async(delay)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    error = exc
                    continue
                if if_result is None or not if_result(result):
                    next(self._succeeded_with_retry)
                    return result  # type: ignore[no-any-return]
                error = None
        except BaseException as exc:
            self._count_raised(exc, run.tries)
            raise

    # -- the other forms ------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` under this policy and return its result.

        Raises:
            MisuseError: *fn* is async (use `call_async`) or a generator function;
                nothing is called. It is a `TypeError`.
        """
        check_callable(fn, owner="Retry", want_async=False)
        return self._wrap_sync(fn)(*args, **kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under this policy and return its result.

        Raises:
            MisuseError: *fn* is not async (use `call`) or is an async generator
                function; nothing is called. It is a `TypeError`.
        """
        check_callable(fn, owner="Retry", want_async=True)
        return await self._wrap_async(fn)(*args, **kwargs)

    def __iter__(self) -> Iterator[Attempt]:
        """Tries for an inline loop: ``for attempt in policy: with attempt: ...``."""
        return _Attempts(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """Tries for an async inline loop: ``async for attempt in policy: with attempt: ...``."""
        return _Attempts(self)

    # -- events ---------------------------------------------------------------------

    def _exhaust(self, attempts: int, error: BaseException | None, reason: str) -> None:
        """Count a call whose retrying ran out, and publish `RetryExhausted` for it."""
        next(self._exhausted)
        bus = self._bus
        if bus.wants(RetryExhausted):
            bus.publish(
                RetryExhausted(
                    source=self._name,
                    at=self._now(),
                    attempts=attempts,
                    error=error,
                    reason=reason,
                )
            )

    def __repr__(self) -> str:
        attempts = "unlimited" if self._attempts is None else self._attempts
        schedule = (
            f"{self._base_delay:g}s x{self._multiplier:g}"
            if self._delay is None
            else f"delay={_describe(self._delay)}"
        )
        return (
            f"<Retry {self._name!r}: {attempts} attempts, {schedule} "
            f"up to {self._max_delay:g}s, jitter={self._jitter!r}"
            + (f", timeout {self._timeout:g}s" if self._timeout is not None else "")
            + ">"
        )


def _describe(fn: object) -> str:
    """A function by its qualified name, anything else (a schedule) by its repr."""
    return fn.__qualname__ if inspect.isfunction(fn) else repr(fn)


def check_callable(fn: object, *, owner: str, want_async: bool | None = None) -> None:
    """Refuse, with `MisuseError`, what *owner* cannot call (again): a non-callable, a
    generator function, or, when *want_async* says which, a function of the other colour.
    Shared by `Retry` and `compose()`, whose ``call``/``call_async`` check before calling."""
    if not callable(fn):
        msg = f"{owner} calls callables, not {fn!r}"
        raise MisuseError(msg)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        msg = f"{owner} guards calls, not generators: {fn!r}; guard the work inside it instead"
        raise MisuseError(msg)
    if want_async is not None and is_async_callable(fn) != want_async:
        msg = (
            f"{fn!r} is not async: use call() for it"
            if want_async
            else f"{fn!r} is async: use call_async() for it"
        )
        raise MisuseError(msg)


@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry(
    *,
    on: type[BaseException]
    | tuple[type[BaseException], ...]
    | Callable[[BaseException], bool] = ...,
    if_result: Callable[[Any], bool] | None = ...,
    attempts: int | None = ...,
    delay: Callable[[int], float | timedelta] | None = ...,
    base_delay: float | timedelta = ...,
    max_delay: float | timedelta = ...,
    multiplier: float = ...,
    jitter: Jitter = ...,
    timeout: float | timedelta | None = ...,
    budget: RetryBudget | None = ...,
    random: Callable[[], float] | None = ...,
    name: str = ...,
    clock: Clock = ...,
    bus: EventBus | None = ...,
) -> Retry: ...


def retry(fn: Callable[P, T] | None = None, /, **options: Any) -> Retry | Callable[P, T]:
    """Retry a function on failure: ``@retry`` or ``@retry(on=..., attempts=...)``.

    ``retry(**options)`` is [`Retry(**options)`][resilio.Retry]; the bare ``@retry``
    uses the defaults. See [`Retry`][resilio.Retry] for every option.
    """
    if fn is None:
        return Retry(**options)
    if options:
        msg = "retry() takes either a function or options, not both"
        raise TypeError(msg)
    return Retry()(fn)


def _blocking_refused(policy: Retry, loop: str, error: BaseException | None) -> RuntimeError:
    """The error for a sync retry about to sleep on a thread that runs an event loop."""
    msg = (
        f"{policy._name!r} would block the {loop} event loop running on this "
        "thread while it sleeps before the next try; retry an async def instead "
        "(decorate it, `await policy.call_async(fn)` or `async for attempt in policy:`)"
    )
    if error is not None:
        msg += f"; the last try raised {type(error).__name__}: {error}"
    return RuntimeError(msg)
