"""Structured log records for resilio's events: `log_events`.

One subscription per event class (never one to ``Event`` itself, which would make
every primitive time every call for ``CallCompleted``), one handler that turns an
event into a `logging` record: a readable message, a level chosen by the event's
class, and the event's fields in ``extra`` under ``resilio_`` names, for JSON
formatters and log pipelines. Nothing is formatted for a level the logger would drop.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._events import (
    CallCompleted,
    CallRejected,
    CircuitStateChanged,
    DestroyHookFailed,
    Event,
    EventBus,
    FallbackUsed,
    RateLimited,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    TaskFailed,
    TaskRejected,
    TimedOut,
    check_bus,
    default_bus,
)

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR

#: The level of each event class when ``level_map`` says nothing of it. A circuit
#: breaker's state change is WARNING when it opens and INFO otherwise (see `_level`).
DEFAULT_LEVELS: dict[type[Event], int] = {
    CircuitStateChanged: WARNING,
    CallRejected: INFO,
    RateLimited: INFO,
    RetryScheduled: INFO,
    RetryExhausted: WARNING,
    RetryRefused: WARNING,
    FallbackUsed: WARNING,
    TimedOut: WARNING,
    TaskRejected: INFO,
    TaskFailed: ERROR,
    SessionCreated: DEBUG,
    SessionExpired: DEBUG,
    SessionDestroyed: DEBUG,
    DestroyHookFailed: ERROR,
}

# Events whose error is logged with its traceback: a failure nobody else reports.
_WITH_TRACEBACK = (TaskFailed, DestroyHookFailed)

LevelMap = Mapping[type[Event], "int | None"]


def log_events(
    logger: logging.Logger | logging.LoggerAdapter[Any] | str | None = None,
    *,
    level_map: LevelMap | None = None,
    bus: EventBus | None = None,
) -> Callable[[], None]:
    """Log every event published on *bus* as one structured `logging` record.

    Each record has a readable message (``breaker 'db': closed -> open
    (consecutive_failures)``), a level chosen by the event's class, and the event's
    fields in ``extra``, prefixed with ``resilio_`` so that none clashes with a
    `logging.LogRecord` attribute: ``resilio_event`` (the class name),
    ``resilio_source``, ``resilio_at``, ``resilio_seq``, ``resilio_wall`` and one
    ``resilio_<field>`` per field of the event (``resilio_reason``,
    ``resilio_retry_after`` ...). Enum values (a breaker's states) are given as their
    string values; an event with an ``error`` also has ``resilio_error_type``, the
    exception's class name. The errors of [`TaskFailed`][resilio.TaskFailed] and
    [`DestroyHookFailed`][resilio.DestroyHookFailed], which nobody else reports, are
    logged with their tracebacks.

    Default levels: a breaker opening WARNING, closing or half-opening INFO;
    rejections ([`CallRejected`][resilio.CallRejected],
    [`RateLimited`][resilio.RateLimited], [`TaskRejected`][resilio.TaskRejected]) and
    retries scheduled INFO; a retry exhausted or refused by its budget, a fallback
    used and a timeout WARNING; a task or a destroy hook failing ERROR; sessions
    created, expired and destroyed DEBUG.
    [`CallCompleted`][resilio.CallCompleted] is not logged unless ``level_map``
    names it: subscribing to it makes the primitives time every call.

    Args:
        logger: Where records go: a `logging.Logger`, a `logging.LoggerAdapter`, or
            a logger's name; ``logging.getLogger("resilio")`` by default.
        level_map: Levels that replace the defaults, by event class: a level, or
            ``None`` to leave that class out (it is then not even subscribed to).
            A class stands for its subclasses (``{Event: logging.DEBUG}`` logs
            everything at DEBUG), the nearest one in the event's class hierarchy
            winning; a class of your own is subscribed to as well.
        bus: The bus to listen on; the process-wide
            [`default_bus`][resilio.default_bus] by default.

    Returns:
        A function that removes every subscription made; calling it twice is
        harmless.

    Raises:
        TypeError: ``logger`` is not a logger or a name, ``level_map`` is not a
            mapping of event classes to levels (``int``) or ``None``, or ``bus`` is
            not an [`EventBus`][resilio.EventBus].

    Example:
        >>> import logging
        >>> from resilio import CircuitStateChanged, EventBus, log_events
        >>> bus = EventBus()
        >>> stop = log_events(level_map={CircuitStateChanged: logging.ERROR}, bus=bus)
        >>> stop()
    """
    target = _check_logger(logger)
    user = _check_level_map(level_map)
    events_bus = default_bus() if bus is None else check_bus(bus)
    levels = _Levels(user)
    # Resilio's own classes, CallCompleted only when named, and the user's own classes.
    classes = [cls for cls in DEFAULT_LEVELS if cls not in user or user[cls] is not None]
    classes += [
        cls
        for cls in user
        if cls is not Event and cls not in DEFAULT_LEVELS and user[cls] is not None
    ]
    handler = _RecordMaker(target, levels)
    subscriptions = [events_bus.subscribe(cls, handler) for cls in classes]

    def unsubscribe() -> None:
        for remove in subscriptions:
            remove()

    return unsubscribe


def _check_logger(value: Any) -> logging.Logger | logging.LoggerAdapter[Any]:
    if value is None:
        return logging.getLogger("resilio")
    if isinstance(value, str):
        return logging.getLogger(value)
    if isinstance(value, (logging.Logger, logging.LoggerAdapter)):
        return value
    msg = f"'logger' must be a logging.Logger, a LoggerAdapter or a logger's name: {value!r}"
    raise TypeError(msg)


def _check_level_map(value: Any) -> dict[type[Event], int | None]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"'level_map' must map event classes to levels: {value!r}"
        raise TypeError(msg)
    checked: dict[type[Event], int | None] = {}
    for cls, level in value.items():
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            msg = f"'level_map' keys must be Event classes: {cls!r}"
            raise TypeError(msg)
        if level is not None and type(level) is not int:
            msg = (
                "'level_map' values must be logging levels (int) or None: "
                f"{cls.__name__}: {level!r}"
            )
            raise TypeError(msg)
        checked[cls] = level
    return checked


class _Levels:
    """The level of each event class, worked out once per class."""

    __slots__ = ("_cache", "_user")

    def __init__(self, user: dict[type[Event], int | None]) -> None:
        self._user = user
        self._cache: dict[type[Event], int | None] = {}

    def of(self, event: Event) -> int | None:
        cls = type(event)
        try:
            level = self._cache[cls]
        except KeyError:
            level = self._cache[cls] = self._resolve(cls)
        if level == -1:  # a state change with no level of the user's
            return WARNING if _value(event.new) == "open" else INFO  # type: ignore[attr-defined]
        return level

    def _resolve(self, cls: type[Event]) -> int | None:
        for base in cls.__mro__:
            if base in self._user:
                return self._user[base]
        for base in cls.__mro__:
            if base is CircuitStateChanged:
                return -1
            if base in DEFAULT_LEVELS:
                return DEFAULT_LEVELS[base]
        # CallCompleted is met here only when the user named it, with a level then.
        return INFO


class _RecordMaker:
    """The bus handler: one log record per event the logger is enabled for."""

    __slots__ = ("_fields", "_levels", "_logger")

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[Any], levels: _Levels
    ) -> None:
        self._logger = logger
        self._levels = levels
        self._fields: dict[type[Event], tuple[str, ...]] = {}

    def __call__(self, event: Event) -> None:
        level = self._levels.of(event)
        if level is None or not self._logger.isEnabledFor(level):
            return
        cls = type(event)
        names = self._fields.get(cls)
        if names is None:
            names = self._fields[cls] = tuple(f.name for f in attrs.fields(cls))
        extra: dict[str, Any] = {"resilio_event": cls.__name__}
        for name in names:
            extra["resilio_" + name] = _value(getattr(event, name))
        error = getattr(event, "error", None)
        if isinstance(error, BaseException):
            extra["resilio_error_type"] = type(error).__name__
        exc_info = (
            (type(error), error, error.__traceback__)
            if isinstance(error, BaseException) and isinstance(event, _WITH_TRACEBACK)
            else None
        )
        self._logger.log(level, _message(event), extra=extra, exc_info=exc_info)

    def __repr__(self) -> str:
        return f"<log_events handler on {self._logger!r}>"


def _value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3g}s"


def _message(event: Event) -> str:  # noqa: PLR0911 - one readable line per class
    """A one-line, human-readable account of *event*."""
    name = repr(event.source)
    if isinstance(event, CircuitStateChanged):
        old, new = _value(event.old), _value(event.new)
        return f"breaker {name}: {old} -> {new} ({event.reason})"
    if isinstance(event, CallRejected):
        state = _value(event.state)
        return (
            f"breaker {name} rejected a call ({state}, retry after {_seconds(event.retry_after)})"
        )
    if isinstance(event, RateLimited):
        if event.rejected:
            return (
                f"limiter {name} refused {event.amount:g} "
                f"(retry after {_seconds(event.retry_after)})"
            )
        return (
            f"limiter {name} queued a request for {event.amount:g} "
            f"(ready in {_seconds(event.retry_after)})"
        )
    if isinstance(event, RetryScheduled):
        cause = "its result asked for another" if event.error is None else repr(event.error)
        return (
            f"retry {name}: try {event.attempt} failed ({cause}); "
            f"next try in {_seconds(event.delay)}"
        )
    if isinstance(event, RetryExhausted):
        cause = "returning the last result" if event.error is None else repr(event.error)
        return f"retry {name} gave up after {event.attempts} tries ({event.reason}): {cause}"
    if isinstance(event, RetryRefused):
        cause = "the result" if event.error is None else repr(event.error)
        return f"retry {name}: the budget refused a retry after try {event.attempt}: {cause}"
    if isinstance(event, FallbackUsed):
        return f"fallback {name} replaced {event.error!r}"
    if isinstance(event, TimedOut):
        return f"timeout {name} cancelled a call after {event.seconds:g}s"
    if isinstance(event, TaskRejected):
        return f"pool {name} rejected a task ({event.queued} queued)"
    if isinstance(event, TaskFailed):
        return f"pool {name}: a task failed: {event.error!r}"
    if isinstance(event, SessionCreated):
        return f"sessions {name} created session {event.session_id!r}"
    if isinstance(event, SessionExpired):
        return (
            f"sessions {name}: session {event.session_id!r} expired "
            f"({event.reason}, {event.late:.3g}s late)"
        )
    if isinstance(event, SessionDestroyed):
        return f"sessions {name} destroyed session {event.session_id!r} ({event.reason})"
    if isinstance(event, DestroyHookFailed):
        return (
            f"sessions {name}: a destroy hook of session {event.session_id!r} "
            f"failed: {event.error!r}"
        )
    if isinstance(event, CallCompleted):
        return f"{name}: a call {event.outcome} in {event.duration:.3g}s"
    fields = ", ".join(
        f"{f.name}={getattr(event, f.name)!r}"
        for f in attrs.fields(type(event))
        if f.name not in ("source", "at", "seq", "wall")
    )
    return f"{type(event).__name__} from {name}" + (f": {fields}" if fields else "")
