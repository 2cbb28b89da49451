"""A circuit breaker that judges the last N calls, or the last T seconds, by rate.

The window is pre-aggregated, as in resilience4j: a count-based window is a ring of
one-byte outcomes plus running totals; a time-based window is a ring of buckets, each
holding the totals for one slice of the window, plus running totals. Recording an
outcome subtracts whatever falls out of the window and adds the new one, so each
outcome costs O(1) and the memory is fixed at construction, whatever the call rate.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import attrs

from . import _validate
from ._breaker import (
    CLOSED,
    BreakerBase,
    CircuitState,
    ExceptionSpec,
    ResultPredicate,
)
from ._clock import SYSTEM_CLOCK, Clock
from ._counters import count_of, counter
from ._events import EventBus
from ._registry import track

# One byte per call in a count-based window: bit 0 "a call", bit 1 "failed",
# bit 2 "slow"; 0 is an empty slot. The window keeps a count per code.
_CALL = 1
_FAILED = 2
_SLOW = 4
_SUCCESS = bytes([_CALL])

# ``next()`` on a counter (see _counters.counter) is one indivisible step under the
# GIL; on a free-threaded build the hot path takes the lock instead.
_ATOMIC_TICKS = getattr(sys, "_is_gil_enabled", lambda: True)()

# The shortest time window: a narrower one would have buckets too thin for the
# clock's resolution, and its bucket numbers would overflow.
MIN_WINDOW_DURATION = 0.001


class _DefaultInt(int):
    """A default that reads as its value but tells "left out" from "passed"."""

    __slots__ = ()


class _DefaultFloat(float):
    """A default that reads as its value but tells "left out" from "passed"."""

    __slots__ = ()


_WINDOW_SIZE = _DefaultInt(100)
_SLOW_CALL_RATE = _DefaultFloat(1.0)


@attrs.frozen(kw_only=True)
class WindowSnapshot:
    """A consistent, frozen view of a sliding-window breaker at one instant.

    Attributes:
        name: The breaker's name.
        state: Its state.
        calls: Outcomes in the window now.
        failed_calls: Failures among them.
        slow_calls: Slow calls among them (failed or not).
        failure_rate: ``failed_calls / calls`` (0 when the window is empty).
        slow_call_rate: ``slow_calls / calls`` (0 when the window is empty).
        consecutive_successes: Successful probes in a row while half-open.
        half_open_calls: Probe calls running now.
        last_change: Clock time of the last state change.
        open_reason: Why it last opened, or ``None`` when closed.
        retry_after: Seconds until an open breaker admits a probe; ``None`` unless it
            is open with a timeout running.
        open_timeout: The open timeout now: ``open_timeout``, or longer after failed
            probes when ``open_timeout_max`` lets it grow.
        last_failure: What last counted as a failure: the exception, or the result
            ``failure_if`` judged a failure; ``None`` until something has, and after
            `reset()`. A slow call that succeeded is not a failure.
        succeeded: Calls that counted as successes since the breaker was made (slow
            ones included, and ``record_success()``).
        failed: Calls that counted as failures since it was made
            (``record_failure()`` included).
        ignored: Calls that ran and counted neither way since it was made: an
            exception in ``ignore``, a rejection by an inner primitive, a misused
            form, a cancelled or interrupted call.
        rejected: Calls this breaker refused without running them since it was
            made (open, or half-open with every probe slot taken).
        transitions: State changes since it was made.

    ``calls``, ``failed_calls`` and ``slow_calls`` describe the window, which
    closing and `reset()` empty; the five counts after them are cumulative and only
    grow. The time spent in the current state is ``clock.monotonic() - last_change``.
    """

    name: str
    state: CircuitState
    calls: int
    failed_calls: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_successes: int
    half_open_calls: int
    last_change: float
    open_reason: str | None
    retry_after: float | None
    open_timeout: float
    last_failure: object
    succeeded: int
    failed: int
    ignored: int
    rejected: int
    transitions: int


class SlidingWindowBreaker(BreakerBase):
    """A circuit breaker that trips on the failure rate over a sliding window.

    While closed it keeps the outcomes of the last ``window_size`` calls, or of the
    last ``window_duration`` seconds when that is given. Once at least ``min_calls``
    outcomes are in the window it trips open when the failure rate, or the rate of
    calls slower than ``slow_call_duration``, is at or above its threshold. Closing
    starts an empty window. Open and half-open behave as in
    [`CircuitBreaker`][resilio.CircuitBreaker]; while half-open a slow probe counts as a failed
    one.

    A time-based window is kept as 10 buckets of ``window_duration / 10`` seconds,
    so outcomes leave it a bucket at a time.

    Args:
        name: Appears in events, errors and ``repr``.
        window_size: Calls in a count-based window; not with ``window_duration``.
        window_duration: Seconds (or a `datetime.timedelta`, at least 1 ms) in a
            time-based window, or ``None`` for a count-based one.
        min_calls: Outcomes needed in the window before it can trip.
        failure_rate_threshold: Failure rate, in (0, 1], at or above which it trips.
        slow_call_duration: Seconds (or a `datetime.timedelta`) after which a call
            counts as slow, or ``None`` to not measure durations.
        slow_call_rate_threshold: Slow-call rate, in (0, 1], at or above which it
            trips; only with ``slow_call_duration``.
        success_threshold: Consecutive probe successes that close a half-open breaker.
        open_timeout: Seconds (or a `datetime.timedelta`) an open breaker rejects
            calls before probing.
        open_timeout_max: Lets the open timeout grow: each failed probe doubles it,
            up to this many seconds (or a `datetime.timedelta`), and closing brings
            it back to ``open_timeout``. ``None`` (the default) keeps it fixed.
            Must be at least ``open_timeout``.
        half_open_max_calls: Probes allowed at once while half-open; calls beyond
            it are rejected with a half-open
            [`CircuitOpenError`][resilio.CircuitOpenError] (``retry_after=None``).
        failure_on: Exception types, or a predicate ``(exception) -> bool``, for the
            exceptions that count as failures; others count as successes.
            resilio's own rejections ([`RejectedError`][resilio.RejectedError]) count
            neither way unless a class listed here names them.
        failure_if: A predicate ``(result) -> bool`` on what a call returns: a
            true answer counts the call as a failed one (the caller still gets the
            result); it is timed like any other call. Asked by the decorator and by
            `call()` / `call_async()`, not in a ``with`` block, which has no result.
            A predicate that raises is logged and the call counts as a failure.
        ignore: Exception types, or a predicate, for exceptions that count neither
            way; they win over ``failure_on``.
        clock: Where time comes from.
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus] by default.

    ``last_failure`` and instant mode ([`resilio.testing.instant`][resilio.testing.instant])
    work as in [`CircuitBreaker`][resilio.CircuitBreaker].
    """

    BUCKETS = 10
    """Buckets a time-based window is divided into."""

    __slots__ = (
        "_calls",
        "_counted",
        "_counts",
        "_failures",
        "_fast_gen",
        "_head",
        "_min_calls",
        "_rate_threshold",
        "_ring",
        "_ring_calls",
        "_ring_failures",
        "_ring_slows",
        "_slow_after",
        "_slow_threshold",
        "_slows",
        "_tick_until",
        "_ticks",
        "_ticks_folded",
        "_warm",
        "_width",
        "_window_duration",
        "_window_size",
    )

    def __init__(
        self,
        *,
        name: str = "sliding-breaker",
        window_size: int = _WINDOW_SIZE,
        window_duration: float | timedelta | None = None,
        min_calls: int = 20,
        failure_rate_threshold: float = 0.5,
        slow_call_duration: float | timedelta | None = None,
        slow_call_rate_threshold: float = _SLOW_CALL_RATE,
        success_threshold: int = 3,
        open_timeout: float | timedelta = 30.0,
        open_timeout_max: float | timedelta | None = None,
        half_open_max_calls: int = 1,
        failure_on: ExceptionSpec = (Exception,),
        failure_if: ResultPredicate | None = None,
        ignore: ExceptionSpec = (),
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self._calls = self._failures = self._slows = self._head = self._ticks_folded = 0
        self._warm = False
        self._fast_gen = -1
        self._tick_until: float | None = None  # None: a count window ticks at any time
        self._ticks = counter()
        self._window_size = int(_validate.integer("window_size", window_size, ge=1))
        self._window_duration = _validate.optional_duration(
            "window_duration", window_duration, ge=MIN_WINDOW_DURATION
        )
        if window_duration is not None and window_size is not _WINDOW_SIZE:
            msg = (
                "'window_size' and 'window_duration' exclude each other (a window "
                "counts calls or seconds): "
                f"window_size={window_size!r}, window_duration={window_duration!r}"
            )
            raise ValueError(msg)
        self._min_calls = _validate.integer("min_calls", min_calls, ge=1)
        if window_duration is None and min_calls > window_size:
            msg = f"'min_calls' must be <= window_size ({window_size}): {min_calls!r}"
            raise ValueError(msg)
        self._rate_threshold = _validate.number(
            "failure_rate_threshold", failure_rate_threshold, gt=0, le=1
        )
        self._slow_after = _validate.optional_duration(
            "slow_call_duration", slow_call_duration, gt=0
        )
        self._slow_threshold = _validate.number(
            "slow_call_rate_threshold", slow_call_rate_threshold, gt=0, le=1
        )
        if slow_call_duration is None and slow_call_rate_threshold is not _SLOW_CALL_RATE:
            msg = (
                "'slow_call_rate_threshold' needs 'slow_call_duration', which says "
                f"what a slow call is: slow_call_rate_threshold={slow_call_rate_threshold!r}"
            )
            raise ValueError(msg)
        super().__init__(
            name=name,
            success_threshold=success_threshold,
            open_timeout=open_timeout,
            half_open_max_calls=half_open_max_calls,
            failure_on=failure_on,
            failure_if=failure_if,
            ignore=ignore,
            open_timeout_max=open_timeout_max,
            clock=clock,
            bus=bus,
        )
        # Without slow-call tracking a closed breaker needs no start time, so calls
        # skip _acquire(); their outcomes are still recorded (_free_success). With
        # it, the decorator adds the start time itself (_timed_free).
        self._free_in_closed = self._slow_after is None
        self._free = 0 if self._free_in_closed else None
        self._timed = not self._free_in_closed
        self._timed_free = None if self._free_in_closed else 0
        self._counted = self._window_duration is None
        if self._window_duration is None:
            self._width = 0.0
            self._ring = bytearray(self._window_size)
            self._counts = [0] * 8
        else:
            self._width = self._window_duration / self.BUCKETS
            self._ring_calls = [0] * self.BUCKETS
            self._ring_failures = [0] * self.BUCKETS
            self._ring_slows = [0] * self.BUCKETS
        self._clear_counts()
        track(self)

    # -- guard protocol: carry the start time when durations matter ----------------

    def _acquire(self) -> Any:
        if self._slow_after is None:
            return BreakerBase._acquire(self)
        gen = self._gen
        if self._state is CLOSED:  # inlined: the common case of BreakerBase._acquire
            return (gen, self._now())
        return (BreakerBase._acquire(self), self._now())

    def _on_success(self, token: Any) -> None:
        # The hot path: once a closed count-based window holds min_calls outcomes,
        # a success can only lower the failure rate, so it needs no evaluation and
        # no lock: it ticks a counter (one atomic C call) and _fold() writes the
        # ticks into the ring, in one slice, before the window is next read. Any
        # transition changes the generation, so a stale token never matches.
        # A time window takes the same path while it holds no failure and no slow
        # call (a success cannot trip it then), as long as the clock has not left
        # the head bucket, which the ticks are folded into (until _tick_until); a
        # tick that races a move to the next bucket lands in that next bucket.
        # With slow calls measured, a success that was not slow takes it too.
        # The plain token (the generation, an int) is tested first: a (gen, start)
        # tuple never equals it, and the time window's hot path saves a type check.
        # The counter is read before the generation: a reset swaps in a new one, and
        # a tick for the old generation must land on the old counter.
        ticks = self._ticks
        if token == self._fast_gen:
            until = self._tick_until
            if until is None or self._now() < until:
                next(ticks)
                next(self._succeeded)
                return
        elif token.__class__ is tuple:
            self._on_timed_success(token)  # the call and with forms of a timed breaker
            return
        self._outcome(token, failed=False)

    def _on_timed_success(self, token: Any) -> None:
        # _on_success for the token of a breaker measuring slow calls, always
        # (gen, start), from the decorator (see _guard): the same hot path, without
        # asking what the token is.
        ticks = self._ticks
        gen, start = token
        if gen == self._fast_gen:
            now = self._now()
            if now - start < self._slow_after:
                until = self._tick_until
                if until is None or now < until:
                    next(ticks)
                    next(self._succeeded)
                    return
        self._outcome(token, failed=False)

    def _on_error(self, token: Any, exc: Exception) -> str:
        ignored, failed = self._classify(exc)
        if ignored:
            self._release(token)
            return "ignored"
        self._outcome(token, failed=failed, failure=exc)
        return "failed" if failed else "succeeded"

    def _orphan_token(self) -> Any:
        gen = self._gen
        return gen if self._slow_after is None else (gen, self._now())

    def _outcome(self, token: Any, *, failed: bool, failure: object = None) -> None:
        if self._slow_after is None:
            self._record(token, failed=failed, failure=failure)
        else:
            gen, start = token
            slow = self._now() - start >= self._slow_after
            self._record(gen, failed=failed, slow=slow, failure=failure)

    def _release(self, token: Any) -> None:
        BreakerBase._release(self, token if self._slow_after is None else token[0])

    def _move(self, new: CircuitState, reason: str, now: float | None = None) -> Any:
        self._fast_gen = -1
        return BreakerBase._move(self, new, reason, now)

    # -- the window -----------------------------------------------------------------

    def _closed_outcome(self, failed: bool, slow: bool) -> str | None:
        if self._width:
            self._expire(int(self._now() // self._width))
            index = self._head % self.BUCKETS
            self._ring_calls[index] += 1
            self._calls += 1
            if failed:
                self._ring_failures[index] += 1
                self._failures += 1
            if slow:
                self._ring_slows[index] += 1
                self._slows += 1
        else:
            self._fold()
            code = _CALL | (_FAILED if failed else 0) | (_SLOW if slow else 0)
            ring = self._ring
            head = self._head
            counts = self._counts
            counts[ring[head]] -= 1
            ring[head] = code
            counts[code] += 1
            head += 1
            self._head = 0 if head == self._window_size else head
        calls, failures, slows = self._totals()
        if self._width and _ATOMIC_TICKS:
            if failures or slows:
                self._fast_gen = -1
            else:
                self._tick_until = (self._head + 1) * self._width
                self._fast_gen = self._gen
        if calls < self._min_calls:
            return None
        if not self._warm:
            self._warm = True
            if self._counted and _ATOMIC_TICKS:
                self._fast_gen = self._gen
        if failures / calls >= self._rate_threshold:
            return "failure_rate"
        if self._slow_after is not None and slows / calls >= self._slow_threshold:
            return "slow_call_rate"
        return None

    def _totals(self) -> tuple[int, int, int]:
        """Calls, failures and slow calls in the window (lock held)."""
        if self._width:
            self._fold_time()
            return self._calls, self._failures, self._slows
        self._fold()
        counts = self._counts
        failed, slow, both = _CALL | _FAILED, _CALL | _SLOW, _CALL | _FAILED | _SLOW
        return (
            self._window_size - counts[0],
            counts[failed] + counts[both],
            counts[slow] + counts[both],
        )

    def _current_totals(self) -> tuple[int, int, int]:
        """Like `_totals`, after dropping what a time window has aged out (lock held)."""
        if self._width and self._state is CLOSED:
            self._expire(int(self._now() // self._width))
        return self._totals()

    def _fold(self) -> None:
        """Write the successes counted by the hot path into the ring (lock held)."""
        ticked = count_of(self._ticks)
        pending = ticked - self._ticks_folded
        self._ticks_folded = ticked
        if not pending:
            return
        size = self._window_size
        ring = self._ring
        counts = self._counts
        if pending >= size:
            ring[:] = _SUCCESS * size
            counts[:] = [0] * 8
            counts[_CALL] = size
            return
        head = self._head
        end = head + pending
        spans = [(head, end)] if end <= size else [(head, size), (0, end - size)]
        for start, stop in spans:
            evicted = ring[start:stop]
            for code in range(8):
                counts[code] -= evicted.count(code)
            ring[start:stop] = _SUCCESS * (stop - start)
        counts[_CALL] += pending
        self._head = end % size

    def _fold_time(self) -> None:
        """Add the successes ticked by the hot path to the head bucket (lock held).

        Ticks are counted while the clock is in the head bucket (``_tick_until``);
        every move of the head folds them first, so they land in their own bucket.
        """
        ticked = count_of(self._ticks)
        pending = ticked - self._ticks_folded
        self._ticks_folded = ticked
        if pending:
            self._ring_calls[self._head % self.BUCKETS] += pending
            self._calls += pending

    def _expire(self, epoch: int) -> None:
        """Move the head bucket to *epoch*, dropping the buckets that fall out."""
        self._fold_time()
        passed = epoch - self._head
        if passed <= 0:
            return
        if passed >= self.BUCKETS:
            self._clear_counts()
        else:
            calls, failures, slows = self._ring_calls, self._ring_failures, self._ring_slows
            for step in range(1, passed + 1):
                index = (self._head + step) % self.BUCKETS
                self._calls -= calls[index]
                self._failures -= failures[index]
                self._slows -= slows[index]
                calls[index] = failures[index] = slows[index] = 0
        self._head = epoch

    def _clear_counts(self) -> None:
        self._fast_gen = -1  # first: a hot path must not tick the new counter
        self._calls = self._failures = self._slows = self._ticks_folded = 0
        self._ticks = counter()
        self._warm = False
        if self._width:
            for ring in (self._ring_calls, self._ring_failures, self._ring_slows):
                ring[:] = [0] * self.BUCKETS
            self._head = int(self._now() // self._width)
        else:
            self._ring[:] = bytes(self._window_size)
            self._counts[:] = [0] * 8
            self._counts[0] = self._window_size
            self._head = 0

    def snapshot(self) -> WindowSnapshot:
        """Return a frozen, consistent view of the breaker's state and its window."""
        with self._lock:
            calls, failures, slows = self._current_totals()
            return WindowSnapshot(
                name=self._name,
                state=self._state,
                calls=calls,
                failed_calls=failures,
                slow_calls=slows,
                failure_rate=failures / calls if calls else 0.0,
                slow_call_rate=slows / calls if calls else 0.0,
                consecutive_successes=self._successes,
                half_open_calls=self._in_flight,
                last_change=self._changed_at,
                open_reason=self._open_reason,
                retry_after=self._retry_after_locked(),
                open_timeout=self._open_timeout,
                last_failure=self._last_failure,
                succeeded=count_of(self._succeeded),
                failed=count_of(self._failed),
                ignored=count_of(self._ignored),
                rejected=count_of(self._rejected),
                transitions=self._transitions,
            )

    def __repr__(self) -> str:
        with self._lock:
            calls, failures, _ = self._current_totals()
        rate = failures / calls if calls else 0.0
        window = (
            f"{self._window_size} calls"
            if self._window_duration is None
            else f"{self._window_duration:g}s"
        )
        return (
            f"<SlidingWindowBreaker {self._name!r} {self._state.value}: "
            f"{calls} calls in a {window} window, failure rate {rate:.2f}>"
        )
