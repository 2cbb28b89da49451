"""Events: what the primitives tell the world, and the bus that carries them.

Every primitive publishes frozen [`Event`][resilio.Event] objects on an
[`EventBus`][resilio.EventBus] (``bus=``, by default the process-wide
[`default_bus`][resilio.default_bus]). Handlers subscribe by event class; subscribing to a base
class receives its subclasses, and subscribing to [`Event`][resilio.Event] receives everything.
Publishing costs one dictionary look-up when nobody listens: primitives ask
[`EventBus.wants`][resilio.EventBus.wants] before they build an event.

The bus numbers the events it delivers (``seq``) and stamps them with the Unix
time (``wall``, for logs). A breaker publishes its state changes one at a time, in
the order they happened, so a subscriber sees each ``new`` state become the next
event's ``old`` even when many threads move it; across primitives and threads,
``seq`` gives the order of publication.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

logger = logging.getLogger("resilio")

E = TypeVar("E", bound="Event")


@attrs.frozen(kw_only=True)
class Event:
    """Base class of every resilio event.

    Attributes:
        source: The ``name`` of the primitive that published the event.
        at: The primitive's clock time (``clock.monotonic()``) when it happened.
        seq: Its number on the bus that delivered it: 1 for the first event the bus
            delivered, increasing by one with each event delivered to anyone. Set by
            [`EventBus.publish`][resilio.EventBus.publish]; 0 until then.
        wall: The Unix time (`time.time()`) when the bus delivered it, for log lines
            and for lining events up with other systems' records. Set by
            [`EventBus.publish`][resilio.EventBus.publish] with ``seq``; 0.0 until
            then. It is the system's time even under a
            [`ManualClock`][resilio.ManualClock]: ``at`` is the primitive's clock.

    ``seq`` and ``wall`` take no part in comparisons: two events that say the same
    thing are equal whichever bus delivered them, and when.
    """

    source: str
    at: float
    seq: int = attrs.field(default=0, eq=False)
    wall: float = attrs.field(default=0.0, eq=False)


@attrs.frozen(kw_only=True)
class CallCompleted(Event):
    """A guarded call finished; published only when somebody subscribes to it.

    Attributes:
        outcome: ``"succeeded"``, ``"failed"`` or ``"ignored"``.
        duration: How long the call ran, in seconds on the primitive's clock.
    """

    outcome: str
    duration: float


@attrs.frozen(kw_only=True)
class TimedOut(Event):
    """A [`Timeout`][resilio.Timeout] cancelled a call that ran past its time.

    Attributes:
        seconds: The time the call was allowed.
    """

    seconds: float


@attrs.frozen(kw_only=True)
class CircuitStateChanged(Event):
    """A circuit breaker moved from one state to another.

    Attributes:
        old: The state it left.
        new: The state it entered.
        reason: Why, as a short stable string: ``"consecutive_failures"``,
            ``"failure_rate"``, ``"slow_call_rate"``, ``"open_timeout_elapsed"``,
            ``"probe_succeeded"``, ``"probe_failed"``, ``"health_check"``,
            ``"forced_open"`` or ``"reset"``.
    """

    old: Any
    new: Any
    reason: str


@attrs.frozen(kw_only=True)
class CallRejected(Event):
    """A circuit breaker refused a call without running it.

    Attributes:
        state: The breaker's state when it refused (open or half-open).
        retry_after: Seconds until the breaker may admit a call, when known.
    """

    state: Any
    retry_after: float | None


@attrs.frozen(kw_only=True)
class RateLimited(Event):
    """A rate limiter could not admit a request at once.

    Attributes:
        amount: How much the request asked for (tokens, or queue room).
        retry_after: Seconds until it could be admitted, when known.
        rejected: ``True`` if the request was refused (``try_acquire``, a bucket
            built with ``reject=True``, a timeout that cannot be met, a full
            queue); ``False`` if it waits in the queue.
    """

    amount: float
    retry_after: float | None
    rejected: bool


@attrs.frozen(kw_only=True)
class RetryScheduled(Event):
    """A retry policy will try again after a delay.

    Attributes:
        attempt: The number of the try that just failed (1 for the first).
        delay: Seconds it waits before the next try.
        error: The exception that try raised, or ``None`` if its result asked for
            another try (``if_result``).
    """

    attempt: int
    delay: float
    error: BaseException | None


@attrs.frozen(kw_only=True)
class RetryExhausted(Event):
    """A retry policy gave up, and the last error (or result) goes to the caller.

    Attributes:
        attempts: How many tries were made.
        error: The last exception, re-raised to the caller, or ``None`` if the last
            result is returned.
        reason: Why, as a short stable string: ``"attempts"`` (no tries left),
            ``"timeout"`` (the next sleep would end past the policy's timeout),
            ``"retry_after_over_max_delay"`` (the error's ``retry_after`` is longer than
            ``max_delay``) or ``"retry_after_past_timeout"`` (waiting out the
            ``retry_after`` would end past the timeout).
    """

    attempts: int
    error: BaseException | None
    reason: str = "attempts"


@attrs.frozen(kw_only=True)
class RetryRefused(Event):
    """A retry budget refused a retry, so the error went to the caller at once.

    Attributes:
        attempt: The number of the try that just failed.
        error: The exception re-raised to the caller, or ``None`` for a result.
    """

    attempt: int
    error: BaseException | None


@attrs.frozen(kw_only=True)
class FallbackUsed(Event):
    """A [`Fallback`][resilio.Fallback] caught an error it replaces, and calls its handler.

    Published before the handler runs, so a handler that fails is seen too.

    Attributes:
        error: The exception the handler replaces.
    """

    error: Exception


@attrs.frozen(kw_only=True)
class TaskRejected(Event):
    """A worker pool refused a task because its queue was full (``submit_nowait``).

    Attributes:
        queued: Tasks in the queue at the time.
    """

    queued: int


@attrs.frozen(kw_only=True)
class TaskFailed(Event):
    """A task run by a worker pool raised; the pool and the other tasks go on.

    Attributes:
        error: The exception, which awaiting the task's handle also raises.
    """

    error: BaseException


@attrs.frozen(kw_only=True)
class SessionCreated(Event):
    """A session manager created a session.

    Attributes:
        session_id: The new session's id.
    """

    session_id: str


@attrs.frozen(kw_only=True)
class SessionExpired(Event):
    """A session passed its deadline; its destruction (reason ``"expired"``,
    ``"heartbeat"`` or ``"lifetime"``) follows at once.

    Attributes:
        session_id: The session's id.
        reason: Which deadline passed.
        late: Seconds between the deadline and the moment the manager acted on it.
    """

    session_id: str
    reason: str
    late: float


@attrs.frozen(kw_only=True)
class SessionDestroyed(Event):
    """A session was destroyed and its hooks have run (exactly once).

    Attributes:
        session_id: The session's id.
        reason: Why: ``"closed"`` (or what ``destroy`` was given), ``"completed"``,
            ``"expired"``, ``"lifetime"``, ``"heartbeat"``, ``"evicted"`` or
            ``"shutdown"``.
    """

    session_id: str
    reason: str


@attrs.frozen(kw_only=True)
class DestroyHookFailed(Event):
    """A destroy hook raised, or the awaitable it returned ran past ``hook_timeout``.

    The other hooks still ran, and the session was removed all the same.

    Attributes:
        session_id: The session being destroyed.
        error: What the hook raised (a ``TimeoutError`` if it ran too long).
    """

    session_id: str
    error: BaseException


Handler = Callable[[Any], object]


class EventBus:
    """Delivers events to the handlers subscribed to their class, synchronously.

    Handlers run in subscription order in the thread that published. A handler that
    raises is logged on the ``resilio`` logger and never breaks the primitive that
    published. Subscribing and unsubscribing are thread-safe. Each event delivered
    to at least one handler gets the bus's next ``seq`` number and its ``wall`` time.

    Example:
        >>> bus = EventBus()
        >>> seen = []
        >>> unsubscribe = bus.subscribe(Event, seen.append)
        >>> bus.publish(Event(source="demo", at=0.0))
        >>> unsubscribe()
        >>> len(seen)
        1
    """

    __slots__ = ("__weakref__", "_lock", "_routes", "_seq", "_subscriptions")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Subscription order matters: a list of (event class, handler, key) triples.
        self._subscriptions: list[tuple[type[Event], Handler, object]] = []
        # Event class -> handlers that receive it, rebuilt (copy-on-write) on change,
        # so publishing reads it without a lock.
        self._routes: dict[type[Event], tuple[Handler, ...]] = {}
        self._seq = itertools.count(1)  # next() is one indivisible step

    def subscribe(self, event_type: type[E], handler: Callable[[E], object]) -> Callable[[], None]:
        """Call *handler* with every published event that is an instance of *event_type*.

        Returns:
            A function that removes this subscription; calling it twice is harmless.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            msg = f"'event_type' must be an Event subclass: {event_type!r}"
            raise TypeError(msg)
        if not callable(handler):
            msg = f"'handler' must be callable: {handler!r}"
            raise TypeError(msg)
        key = object()
        with self._lock:
            self._subscriptions = [*self._subscriptions, (event_type, handler, key)]
            self._routes = {}

        def unsubscribe() -> None:
            with self._lock:
                kept = [s for s in self._subscriptions if s[2] is not key]
                if len(kept) != len(self._subscriptions):
                    self._subscriptions = kept
                    self._routes = {}

        return unsubscribe

    def _handlers(self, event_type: type[Event]) -> tuple[Handler, ...]:
        routes = self._routes
        try:
            return routes[event_type]
        except KeyError:
            pass
        with self._lock:
            handlers = tuple(h for t, h, _ in self._subscriptions if issubclass(event_type, t))
            self._routes = {**self._routes, event_type: handlers}
        return handlers

    def wants(self, event_type: type[Event]) -> bool:
        """Whether anyone would receive an event of *event_type*; check before building one."""
        handlers = self._routes.get(event_type)
        if handlers is None:
            handlers = self._handlers(event_type)
        return bool(handlers)

    def publish(self, event: Event) -> None:
        """Deliver *event* to its handlers, in subscription order; handler errors are logged.

        The event's ``seq`` and ``wall`` are set first, unless nobody receives it.
        """
        handlers = self._handlers(type(event))
        if not handlers:
            return
        # Events are frozen to their readers, not to the bus that numbers them.
        object.__setattr__(event, "seq", next(self._seq))
        object.__setattr__(event, "wall", _wall())
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # noqa: PERF203 - each handler is isolated
                _report(handler, event)

    def __repr__(self) -> str:
        return f"<EventBus with {len(self._subscriptions)} subscriptions>"


def _report(handler: Handler, event: Event) -> None:
    """Log a handler's failure; a logging handler that fails too breaks nothing either."""
    try:
        logger.exception("resilio event handler %r failed on %r", handler, event)
    except Exception:  # a broken log handler (the one log_events feeds, say)
        with contextlib.suppress(Exception):
            traceback.print_exc()


# The Unix time that stamps delivered events; a module global so tests can replace it.
_wall = time.time

_DEFAULT_BUS = EventBus()


def default_bus() -> EventBus:
    """Return the process-wide bus that primitives publish on unless given ``bus=``."""
    return _DEFAULT_BUS


def check_bus(value: Any) -> EventBus:
    """Validate a ``bus=`` argument."""
    if not isinstance(value, EventBus):
        msg = f"'bus' must be an EventBus: {value!r}"
        raise TypeError(msg)
    return value
