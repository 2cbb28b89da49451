"""Circuit breakers: stop calling what is failing, and find out when it recovers.

[`CircuitBreaker`][resilio.CircuitBreaker] trips on consecutive failures or on an exponentially
weighted failure rate. The state machine it shares with
[`SlidingWindowBreaker`][resilio.SlidingWindowBreaker] lives in `BreakerBase`: OPEN rejects until
``open_timeout`` has passed, HALF_OPEN admits a bounded number of probes, and every transition
starts a new *generation*, so an outcome that arrives after the state it was admitted in has ended
is ignored (gobreaker's generation counter).

With ``open_timeout_max`` the open timeout doubles each time a probe fails, up to
that maximum, and is back to ``open_timeout`` once the breaker closes. Under
`resilio.testing.instant` a failure that would open a breaker does not (see ``_trip``),
and a call an open breaker would refuse runs, uncounted, unless it was forced open;
the switch is read on those paths only, never when a call succeeds.

No lock is ever held across a protected call: the lock guards a few counters and is
taken only to admit a call that needs a permit and to record an outcome.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, NoReturn

import anyio
import anyio.to_thread
import attrs

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, check_clock
from ._counters import count_of, counter
from ._errors import CircuitOpenError, MisuseError, RejectedError
from ._events import (
    CallCompleted,
    CallRejected,
    CircuitStateChanged,
    EventBus,
    check_bus,
    default_bus,
)
from ._guard import Guard, is_async_callable
from ._instant import SWITCH
from ._registry import track
from ._waiters import finished

logger = logging.getLogger("resilio")

# Creates a rejection without running its Python-level __init__ (see _errors).
_new_rejection = CircuitOpenError.__new__

# The token of a call that instant mode lets past an open breaker: no generation
# equals it, so its outcome is never counted (and it is never the sliding window's
# -1, "no fast path").
_UNCOUNTED = -2


class CircuitState(enum.Enum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    """Calls pass through; outcomes are counted."""
    OPEN = "open"
    """Calls are rejected with [`CircuitOpenError`][resilio.CircuitOpenError] without running."""
    HALF_OPEN = "half_open"
    """A bounded number of probe calls test whether the dependency has recovered."""

    def __repr__(self) -> str:
        return f"CircuitState.{self.name}"


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


@attrs.frozen(kw_only=True)
class BreakerSnapshot:
    """A consistent, frozen view of a [`CircuitBreaker`][resilio.CircuitBreaker] at one instant.

    Attributes:
        name: The breaker's name.
        state: Its state.
        consecutive_failures: Failures in a row while closed.
        consecutive_successes: Successful probes in a row while half-open.
        failure_rate: The exponentially weighted failure rate, between 0 and 1.
        half_open_calls: Probe calls running now.
        last_change: Clock time of the last state change.
        open_reason: Why it last opened (a `CircuitStateChanged` reason), or ``None``
            when closed.
        retry_after: Seconds until an open breaker admits a probe; ``None`` unless it
            is open with a timeout running.
        open_timeout: The open timeout now: ``open_timeout``, or longer after failed
            probes when ``open_timeout_max`` lets it grow.
        last_failure: What last counted as a failure: the exception, or the result
            ``failure_if`` judged a failure; ``None`` until something has, and after
            `reset()`.
        succeeded: Calls that counted as successes since the breaker was made
            (``record_success()`` included).
        failed: Calls that counted as failures since it was made
            (``record_failure()`` included).
        ignored: Calls that ran and counted neither way since it was made: an
            exception in ``ignore``, a rejection by an inner primitive, a misused
            form, a cancelled or interrupted call.
        rejected: Calls this breaker refused without running them since it was
            made (open, or half-open with every probe slot taken).
        transitions: State changes since it was made.

    The five counts are cumulative: `reset()` does not clear them. The time spent in
    the current state is ``clock.monotonic() - last_change``.
    """

    name: str
    state: CircuitState
    consecutive_failures: int
    consecutive_successes: int
    failure_rate: float
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


ExceptionSpec = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""Exception types (one or a tuple), or a predicate on the exception."""

ResultPredicate = Callable[[Any], object]
"""A predicate on a call's result: true when the result counts as a failure."""

# A state change to announce once the lock is released: (old, new, reason, at).
_Change = tuple[CircuitState, CircuitState, str, float]

# resilio's own errors that say nothing about the dependency: a rejection by an
# inner primitive, a guard used in a way that cannot work.
_NEUTRAL = (RejectedError, MisuseError)


def _result_predicate(failure_if: Any) -> ResultPredicate | None:
    """Check ``failure_if``: ``None``, or a plain function of the result."""
    if failure_if is None:
        return None
    if isinstance(failure_if, (type, tuple, list)):
        msg = (
            "'failure_if' takes a predicate on results, (result) -> bool; exception "
            f"types go in failure_on: {failure_if!r}"
        )
        raise TypeError(msg)
    if not callable(failure_if):
        msg = f"'failure_if' must be callable, (result) -> bool: {failure_if!r}"
        raise TypeError(msg)
    if is_async_callable(failure_if):
        msg = (
            "'failure_if' must be a plain function: it is called on each result and "
            f"never awaited: {failure_if!r}"
        )
        raise TypeError(msg)
    return failure_if  # type: ignore[no-any-return]


def _named_rejections(failure_on: Any) -> tuple[type[BaseException], ...]:
    """The `RejectedError` classes that *failure_on* names explicitly, as types."""
    if _validate.is_predicate(failure_on):
        return ()  # a predicate names no class
    types = _validate.exception_types("failure_on", failure_on)
    return tuple(t for t in types if issubclass(t, RejectedError))


class BreakerBase(Guard):
    """The state machine shared by both breakers; strictly private.

    Subclasses implement ``_closed_outcome`` (count one outcome while closed and
    return a reason to trip, or ``None``) and ``_clear_counts``.

    The cumulative counters (``_succeeded``, ``_failed``, ``_ignored``,
    ``_rejected``) are made by `counter`, once, and never replaced, so
    paths that hold no lock (a closed breaker's quiet successes in the guard, a
    refusal) count with one ``next()``; `count_of` reads them. Every call that ran
    lands in exactly one of the first three: ``_record`` counts what it is handed
    (before it asks whether the call's generation is still current),
    ``_release`` counts the calls that counted neither way, and the guard counts
    the successes it does not report. ``_transitions`` is a plain int, changed only
    in ``_move``, with the lock held.
    """

    _refused_type = CircuitOpenError

    # Admission never waits: ``async with`` makes no coroutine (see _guard).
    __aenter__ = Guard._aenter_at_once  # type: ignore[assignment]
    __aexit__ = Guard._aexit_at_once  # type: ignore[assignment]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Every option is keyword-only, so a positional argument is a decorated
        # function: ``@CircuitBreaker`` written without the parentheses.
        if args:
            _not_called(cls, args[0])
        return super().__new__(cls)

    __slots__ = (
        "__weakref__",
        "_bus",
        "_changed_at",
        "_clock",
        "_entered",
        "_failed",
        "_failure_if",
        "_failure_on",
        "_forced",
        "_free",
        "_free_in_closed",
        "_free_success",
        "_gen",
        "_half_open_max",
        "_ignore",
        "_ignored",
        "_in_flight",
        "_last_failure",
        "_lock",
        "_name",
        "_now",
        "_open_reason",
        "_open_timeout",
        "_open_timeout_base",
        "_open_timeout_max",
        "_open_until",
        "_pending",
        "_probe_deadline",
        "_publishing",
        "_refused_until",
        "_rejected",
        "_rejections_counted",
        "_state",
        "_succeeded",
        "_success_threshold",
        "_successes",
        "_timed",
        "_timed_free",
        "_transitions",
        "_unheard",
        "_untimed",
    )

    def __init__(
        self,
        *,
        name: str,
        success_threshold: int,
        open_timeout: float | timedelta,
        half_open_max_calls: int,
        failure_on: Any,
        failure_if: Any,
        ignore: Any,
        open_timeout_max: float | timedelta | None,
        clock: Clock,
        bus: EventBus | None,
    ) -> None:
        self._name = _validate.text("name", name)
        self._success_threshold = _validate.integer("success_threshold", success_threshold, ge=1)
        self._open_timeout = _validate.duration("open_timeout", open_timeout, gt=0)
        self._open_timeout_base = self._open_timeout
        longest = _validate.optional_duration("open_timeout_max", open_timeout_max, gt=0)
        if longest is not None and longest < self._open_timeout:
            msg = (
                "'open_timeout_max' must be >= 'open_timeout', the timeout it lets "
                f"grow: open_timeout={open_timeout!r}, open_timeout_max={open_timeout_max!r}"
            )
            raise ValueError(msg)
        # Without a maximum the timeout "grows" to itself: one rule, no branch.
        self._open_timeout_max = self._open_timeout if longest is None else longest
        self._failure_if = _result_predicate(failure_if)
        self._last_failure: object = None
        self._half_open_max = _validate.integer("half_open_max_calls", half_open_max_calls, ge=1)
        self._failure_on = _validate.exception_matcher("failure_on", failure_on)
        self._rejections_counted = _named_rejections(failure_on)
        self._ignore = _validate.exception_matcher("ignore", ignore)
        self._clock = check_clock(clock)
        self._now = clock.monotonic
        self._bus = default_bus() if bus is None else check_bus(bus)
        self._lock = threading.Lock()
        # State changes wait here, in the order they happened, for whichever thread
        # holds _publishing to announce them (only when someone subscribes).
        self._pending: collections.deque[_Change] = collections.deque()
        self._publishing = threading.RLock()
        self._state = CLOSED
        self._gen = 0
        self._free: int | None = 0
        self._free_in_closed = True
        # An instance slot, not the class attribute the guard protocol describes:
        # the guard's forms read it on every call, and a slot reads faster.
        self._free_success = True
        self._timed = False
        self._timed_free: int | None = None
        self._forced = False
        self._in_flight = 0
        self._successes = 0
        self._open_until = 0.0
        self._refused_until = 0.0
        self._unheard: object = None
        self._untimed: object = None
        self._succeeded = counter()
        self._failed = counter()
        self._ignored = counter()
        self._rejected = counter()
        self._transitions = 0
        self._entered = finished(self)  # what an admitted ``async with`` awaits
        self._probe_deadline = 0.0
        self._open_reason: str | None = None
        self._changed_at = self._now()

    # -- public surface shared by both breakers -------------------------------------

    @property
    def name(self) -> str:
        """The name that appears in events, errors and ``repr``."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state.

        An open breaker whose timeout has passed still reads ``OPEN``: the next call
        moves it to ``HALF_OPEN``.
        """
        return self._state

    def record_success(self) -> None:
        """Count a success measured by the caller, as if a guarded call had succeeded."""
        self._record(self._gen, failed=False, probe=False)

    def record_failure(self, failure: object = None) -> None:
        """Count a failure measured by the caller, as if a guarded call had failed.

        Args:
            failure: What failed (an exception, a response), kept as the
                ``last_failure`` of `snapshot()` and of the rejections that follow;
                ``None`` when not given.
        """
        self._record(self._gen, failed=True, probe=False, failure=failure)

    def force_open(self) -> None:
        """Open the breaker and keep it open, whatever the timeout, until `reset()`."""
        with self._lock:
            self._forced = True
            change = None if self._state is OPEN else self._move(OPEN, "forced_open")
            self._refused_until = 0.0  # no hint to give: _acquire() rejects
            self._open_reason = "forced_open"
        self._announce(change)

    def reset(self) -> None:
        """Close the breaker and clear its counts; outcomes of calls running now are ignored.

        The open timeout is back to ``open_timeout`` and ``last_failure`` to ``None``.
        The cumulative counters of `snapshot()` (``succeeded``, ``failed``,
        ``ignored``, ``rejected``, ``transitions``) are kept: they only grow.
        """
        with self._lock:
            self._forced = False
            self._last_failure = None
            if self._state is CLOSED:
                self._restart_closed()
                change = None
            else:
                change = self._move(CLOSED, "reset")
        self._announce(change)

    def _restart_closed(self) -> None:
        """Clear a closed breaker's counts in a new generation (lock held)."""
        self._gen += 1
        self._clear_counts()
        self._free = self._gen if self._free_in_closed else None
        self._timed_free = self._gen if self._timed else None

    @contextlib.asynccontextmanager
    async def health_check(
        self, probe: Callable[[], Any], interval: float | timedelta = 5.0
    ) -> AsyncIterator[None]:
        """Probe the dependency in the background while the breaker is open.

        Inside the block a task checks every *interval* seconds (on the breaker's
        clock); while the breaker is open (and not forced open) it calls *probe*. As
        soon as a probe returns without raising (and does not return ``False``) the
        breaker moves to HALF_OPEN, without waiting for ``open_timeout``. An ``async``
        probe runs on the event loop; a plain function runs in a worker thread. Give
        the probe its own timeout: the check waits for it.

        Args:
            probe: A callable taking no arguments, sync or async.
            interval: Seconds between checks (or a `datetime.timedelta`).
        """
        _validate.callable_("probe", probe)
        interval = _validate.duration("interval", interval, gt=0)
        error: BaseException | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._health_loop, probe, interval)
            try:
                yield
            except BaseException as exc:
                error = exc  # re-raised as it was, not inside an exception group
            finally:
                tasks.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _health_loop(self, probe: Callable[[], Any], interval: float) -> None:
        run: Callable[[], Awaitable[Any]]
        if is_async_callable(probe):
            run = probe
        else:

            async def run() -> Any:
                return await anyio.to_thread.run_sync(probe)

        while True:
            await self._clock.sleep_async(interval)
            if self._state is not OPEN or self._forced:
                continue
            gen = self._gen  # the open period this probe speaks for
            try:
                healthy = await run()
            except Exception:
                logger.debug("health check probe of %r failed", self._name, exc_info=True)
                continue
            if healthy is False:
                continue
            with self._lock:
                change = None
                if self._state is OPEN and not self._forced and self._gen == gen:
                    change = self._move(HALF_OPEN, "health_check")
            self._announce(change)

    # -- the guard protocol ---------------------------------------------------------

    def _acquire(self) -> Any:
        gen = self._gen
        state = self._state
        if state is CLOSED:
            return gen
        now = self._now()
        if state is OPEN and (self._forced or now < self._open_until):
            # The common rejection, decided without the lock (a racing reset or
            # timeout only orders this call just before it) and raised right here:
            # every frame an exception crosses costs as much as raising it.
            if self._forced:
                retry_after = None
            elif SWITCH.on and SWITCH.here():
                return _UNCOUNTED  # instant mode: let it through, count nothing
            else:
                retry_after = self._open_until - now
            next(self._rejected)
            if self._bus._routes is not self._unheard:
                self._announce_refusal(now, retry_after)
            raise _new_rejection(CircuitOpenError, self._name, retry_after, self._last_failure)
        with self._lock:
            token, change, rejection = self._admit_locked()
        self._announce(change)
        if rejection is not None:
            if SWITCH.on and SWITCH.here() and not self._forced:
                return _UNCOUNTED
            next(self._rejected)
            self._publish_rejected(*rejection)
            if rejection[0] is HALF_OPEN:
                # No hint: nobody knows when the running probes will report back.
                raise _new_rejection(CircuitOpenError, self._name, None, self._last_failure, True)
            raise _new_rejection(CircuitOpenError, self._name, rejection[1], self._last_failure)
        return token

    def _announce_refusal(self, now: float, retry_after: float | None) -> None:
        # The decorators reject a call to an open breaker themselves (see _guard),
        # with the same decision as the first one in _acquire, and call this unless
        # the bus's routing table is one known to send CallRejected nowhere.
        routes = self._bus._routes
        if routes.get(CallRejected) == ():
            self._unheard = routes  # never edited in place: replaced on any change
        else:
            self._publish_rejected(OPEN, retry_after, now)

    def _admit_locked(
        self,
    ) -> tuple[int, _Change | None, tuple[CircuitState, float | None, float] | None]:
        """Admit a call to an open or half-open breaker, or say why not (lock held)."""
        state = self._state
        gen = self._gen
        if state is CLOSED:
            return gen, None, None
        now = self._now()
        change = None
        if state is OPEN:
            if self._forced or now < self._open_until:
                return gen, None, (OPEN, None if self._forced else self._open_until - now, now)
            change = self._move(HALF_OPEN, "open_timeout_elapsed", now)
        if self._in_flight >= self._half_open_max:
            if now < self._probe_deadline:
                return gen, change, (HALF_OPEN, None, now)
            # Every probe has been out for a whole open_timeout: presume they hung,
            # start a fresh round of probes and ignore the old ones' outcomes.
            self._gen += 1
            self._in_flight = 0
            self._successes = 0
        self._in_flight += 1
        self._probe_deadline = now + self._open_timeout
        return self._gen, change, None

    def _publish_rejected(self, state: CircuitState, retry_after: float | None, now: float) -> None:
        bus = self._bus
        if bus.wants(CallRejected):
            bus.publish(
                CallRejected(source=self._name, at=now, state=state, retry_after=retry_after)
            )

    def _on_success(self, token: Any) -> None:
        self._record(token, failed=False)

    def _on_error(self, token: Any, exc: Exception) -> str:
        ignored, failed = self._classify(exc)
        if ignored:
            self._release(token)
            return "ignored"
        self._record(token, failed=failed, failure=exc)
        return "failed" if failed else "succeeded"

    def _on_result(self, token: Any, result: Any) -> str:
        """Count a call that returned *result*, a failure if ``failure_if`` says so."""
        try:
            failed = self._failure_if(result)
        except Exception:
            logger.exception("%r: failure_if raised; counting a failure", self._name)
            failed = True
        except BaseException:
            self._release(token)
            raise
        if failed:
            self._outcome(token, failed=True, failure=result)
            return "failed"
        if self._free_success or token is not self._free:
            self._on_success(token)
        else:
            next(self._succeeded)  # closed and clean: counted, nothing else to do
        return "succeeded"

    def _wants_completed(self) -> bool:
        """Whether anyone subscribes to `CallCompleted`; remembers a table that says no.

        The guard's forms ask this only when the bus's routing table is not
        ``_untimed``, the last one found to send `CallCompleted` nowhere (the bus
        replaces its table on every change, never edits it).
        """
        bus = self._bus
        handlers = bus._routes.get(CallCompleted)
        if handlers or (handlers is None and bus.wants(CallCompleted)):
            return True
        routes = bus._routes  # wants() has filled in the table's entry
        if routes.get(CallCompleted) == ():
            self._untimed = routes
        return False

    def _completed(self, outcome: str, start: float) -> None:
        """Publish the `CallCompleted` of a call that started at *start* on the clock."""
        now = self._now()
        self._bus.publish(
            CallCompleted(source=self._name, at=now, outcome=outcome, duration=now - start)
        )

    def _outcome(self, token: Any, *, failed: bool, failure: object = None) -> None:
        self._record(token, failed=failed, failure=failure)

    def _classify(self, exc: Exception) -> tuple[bool, bool]:
        """Whether *exc* is ignored, and whether it counts as a failure.

        resilio's own rejections and misuse errors are ignored, unless ``failure_on``
        names the rejection's class (or a base of it below `RejectedError`).
        """
        try:
            if self._ignore(exc):
                return True, False
            if isinstance(exc, _NEUTRAL):
                return (False, True) if isinstance(exc, self._rejections_counted) else (True, False)
            return False, bool(self._failure_on(exc))
        except Exception:
            logger.exception("%r: failure_on/ignore raised; counting a failure", self._name)
            return False, True

    def _orphan_token(self) -> Any:
        return self._gen

    def _release(self, token: Any) -> None:
        next(self._ignored)
        with self._lock:
            if token == self._gen and self._state is HALF_OPEN:
                self._in_flight -= 1

    # -- state machine --------------------------------------------------------------

    def _record(
        self,
        token: Any,
        *,
        failed: bool,
        slow: bool = False,
        probe: bool = True,
        failure: object = None,
    ) -> None:
        change = None
        next(self._failed if failed else self._succeeded)
        lock = self._lock
        lock.acquire()  # explicit acquire/release: ``with lock`` costs twice as much
        try:
            if token != self._gen:
                return  # admitted under a state that has since ended
            state = self._state
            if state is CLOSED:
                if failed:
                    self._last_failure = failure
                reason = self._closed_outcome(failed, slow)
                if reason is not None:
                    change = self._trip(reason)
            elif state is HALF_OPEN:
                if probe:
                    self._in_flight -= 1
                if failed:
                    self._last_failure = failure
                if failed or slow:
                    if not (SWITCH.on and SWITCH.here()):
                        change = self._move(OPEN, "probe_failed")
                    # else instant mode: the probe counts neither way
                else:
                    self._successes += 1
                    if self._successes >= self._success_threshold:
                        change = self._move(CLOSED, "probe_succeeded")
        finally:
            lock.release()
        if change is not None:
            self._announce(change)

    def _trip(self, reason: str) -> _Change | None:
        """Open a closed breaker for *reason*, unless instant mode is on (lock held).

        In instant mode the breaker stays closed and starts counting afresh, as if it
        had opened and been reset at once, so it never opens while the mode lasts and
        is not on the brink of opening when the mode ends.
        """
        if SWITCH.on and SWITCH.here():
            self._restart_closed()
            return None
        return self._move(OPEN, reason)

    def _move(self, new: CircuitState, reason: str, now: float | None = None) -> _Change | None:
        """Enter *new* (the lock is held); return the change to announce, if anyone listens."""
        if now is None:
            now = self._now()
        old = self._state
        self._state = new
        self._gen += 1
        self._transitions += 1
        self._changed_at = now
        self._in_flight = 0
        self._successes = 0
        if new is OPEN:
            if old is HALF_OPEN and not self._forced:
                # A failed probe: wait twice as long, up to open_timeout_max.
                self._open_timeout = min(2.0 * self._open_timeout, self._open_timeout_max)
            self._free = self._timed_free = None
            self._open_until = now + self._open_timeout
            self._refused_until = 0.0 if self._forced else self._open_until
            self._open_reason = reason
        elif new is HALF_OPEN:
            self._free = self._timed_free = None
            self._refused_until = 0.0
            self._probe_deadline = now + self._open_timeout
        else:
            self._refused_until = 0.0
            self._clear_counts()
            self._free = self._gen if self._free_in_closed else None
            self._timed_free = self._gen if self._timed else None
            self._open_reason = None
            self._open_timeout = self._open_timeout_base
        if not self._bus.wants(CircuitStateChanged):
            return None
        change = (old, new, reason, now)
        self._pending.append(change)
        return change

    def _announce(self, change: _Change | None) -> None:
        """Publish one queued state change, once the state lock is released.

        Each `_move` that queued a change is followed by one call here, which
        publishes the oldest change still queued (not necessarily its own): under
        ``_publishing`` the changes go out one at a time, in the order they
        happened, so every subscriber sees each ``new`` state become the next
        ``old``. ``_publishing`` is reentrant, so a handler may change the state.
        """
        if change is None:
            return
        with self._publishing:
            old, new, reason, at = self._pending.popleft()
            self._bus.publish(
                CircuitStateChanged(source=self._name, at=at, old=old, new=new, reason=reason)
            )

    def _retry_after_locked(self) -> float | None:
        if self._state is not OPEN or self._forced:
            return None
        return max(0.0, self._open_until - self._now())

    def _closed_outcome(self, failed: bool, slow: bool) -> str | None:
        raise NotImplementedError

    def _clear_counts(self) -> None:
        raise NotImplementedError


class CircuitBreaker(BreakerBase):
    """Stops calling a failing dependency, then lets a few probes find out when it is back.

    A closed breaker passes calls through and counts outcomes. It trips open after
    ``failure_threshold`` failures in a row, or when the exponentially weighted
    failure rate (a failure moves it to ``0.9·r + 0.1``, a success to ``0.5·r``,
    snapping to 0 under 0.01) exceeds ``failure_rate_threshold``. An open breaker
    rejects calls with [`CircuitOpenError`][resilio.CircuitOpenError] without running them; once
    ``open_timeout`` has passed the next call moves it to half-open, where at most
    ``half_open_max_calls`` probes run at once: ``success_threshold`` successes in a
    row close it, any failure opens it again.

    Use it as ``@breaker`` on a ``def`` or ``async def``, as ``with breaker:`` or
    ``async with breaker:``, or through `call()` / `call_async()`.

    Args:
        name: Appears in events, errors and ``repr``.
        failure_threshold: Consecutive failures that trip a closed breaker.
        failure_rate_threshold: Weighted failure rate above which a closed breaker
            trips, in (0, 1]; 1.0 turns this rule off.
        success_threshold: Consecutive probe successes that close a half-open breaker.
        open_timeout: Seconds (or a `datetime.timedelta`) an open breaker rejects
            calls before probing.
        open_timeout_max: Lets the open timeout grow: each failed probe doubles it,
            up to this many seconds (or a `datetime.timedelta`), and closing brings
            it back to ``open_timeout``. ``None`` (the default) keeps it fixed.
            Must be at least ``open_timeout``.
        half_open_max_calls: Probes allowed at once while half-open. A probe that
            has not reported back within the open timeout is presumed hung and its
            slot is handed to a new probe. Calls beyond it are rejected with a
            [`CircuitOpenError`][resilio.CircuitOpenError] whose ``half_open`` is
            true and whose ``retry_after`` is ``None``.
        failure_on: Exception types (one or a tuple), or a predicate
            ``(exception) -> bool``, saying which exceptions count as failures; any
            other exception counts as a success (and still propagates).
            resilio's own rejections raised inside the call (an inner breaker, a
            rate limiter, a pool: any [`RejectedError`][resilio.RejectedError])
            count neither way unless a class listed here is that rejection's class
            or one of its bases below `RejectedError`; a predicate is not asked
            about them.
        failure_if: A predicate ``(result) -> bool`` on what a call returns: a
            true answer counts the call as a failure (an HTTP 503 response), though
            the caller still gets the result. Asked by the decorator and by
            `call()` / `call_async()`; a ``with`` block has no result, so its
            successes are successes. A predicate that raises is logged on the
            ``resilio`` logger and the call counts as a failure.
        ignore: Exception types, or a predicate, for exceptions that count neither
            way (and propagate); they win over ``failure_on``.
        clock: Where time comes from (see [`ManualClock`][resilio.ManualClock] for tests).
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus] by default.

    Cancellation, ``KeyboardInterrupt`` and other `BaseException`s that are
    not `Exception`s count neither way and give back any probe slot; so does a
    form used in a way that cannot work (``call(async_fn)``,
    ``call_async(plain_fn)``), which raises a `TypeError`.

    The breaker keeps what last counted as a failure (``snapshot().last_failure``,
    and ``last_failure`` on each [`CircuitOpenError`][resilio.CircuitOpenError]),
    an exception with its traceback so that it can be logged, until a later failure
    replaces it or `reset()` drops it; the frames of that traceback, and what they
    hold, stay alive as long.

    Under [`resilio.testing.instant`][resilio.testing.instant] a failure that would
    open the breaker leaves it closed, its counts cleared; a breaker that was open
    lets calls through without counting them, unless it was forced open.

    Raises:
        TypeError: An option of the wrong type, such as exception types given as
            ``failure_if`` or an ``async`` predicate.
        ValueError: An option out of range, such as ``open_timeout_max`` below
            ``open_timeout``.
    """

    __slots__ = ("_consecutive", "_failure_threshold", "_rate", "_rate_threshold")

    def __init__(
        self,
        *,
        name: str = "breaker",
        failure_threshold: int = 5,
        failure_rate_threshold: float = 0.5,
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
        self._failure_threshold = _validate.integer("failure_threshold", failure_threshold, ge=1)
        self._rate_threshold = _validate.number(
            "failure_rate_threshold", failure_rate_threshold, gt=0, le=1
        )
        self._consecutive = 0
        self._rate = 0.0
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
        self._free_success = False  # closed and clean: a success changes nothing
        track(self)

    def _closed_outcome(self, failed: bool, slow: bool) -> str | None:
        if failed:
            self._free = None
            self._consecutive += 1
            self._rate = rate = 0.9 * self._rate + 0.1
            if self._consecutive >= self._failure_threshold:
                return "consecutive_failures"
            if rate > self._rate_threshold:
                return "failure_rate"
            return None
        self._consecutive = 0
        rate = 0.5 * self._rate
        if rate < 0.01:
            self._rate = 0.0
            self._free = self._gen
        else:
            self._rate = rate
        return None

    def _clear_counts(self) -> None:
        self._consecutive = 0
        self._rate = 0.0

    def snapshot(self) -> BreakerSnapshot:
        """Return a frozen, consistent view of the breaker's state and counters."""
        with self._lock:
            return BreakerSnapshot(
                name=self._name,
                state=self._state,
                consecutive_failures=self._consecutive,
                consecutive_successes=self._successes,
                failure_rate=self._rate,
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
        return (
            f"<CircuitBreaker {self._name!r} {self._state.value}: "
            f"{self._consecutive} consecutive failures, failure rate {self._rate:.2f}, "
            f"{self._in_flight}/{self._half_open_max} probes>"
        )


def _not_called(cls: type, fn: object) -> NoReturn:
    name = cls.__name__
    msg = f"use @{name}() with parentheses: {name} takes keyword options only, and was given {fn!r}"
    raise TypeError(msg)
