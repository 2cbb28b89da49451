"""Delay schedules for ``Retry(delay=...)``: exponential, linear and constant.

Each builder checks its arguments and returns a [`Schedule`][resilio.backoff.Schedule]:
an immutable callable that maps the number of the try that failed (from 1) to the
delay before the next one, in seconds, between a minimum and a maximum::

    from datetime import timedelta

    from resilio import Retry
    from resilio.backoff import exponential, linear, constant

    Retry(delay=exponential(base=0.5, multiplier=2, max=30, min=1))  # 1, 1, 2, 4, ... 30
    Retry(delay=linear(start=1, step=timedelta(seconds=2)))  # 1, 3, 5, 7, ...
    Retry(delay=constant(0.25), jitter=None)  # 0.25 s every time

The policy still applies its jitter (kept within the schedule's ``min`` and the
delay), its ``max_delay`` cap and ``retry_after`` hints. Every duration takes seconds
or a `datetime.timedelta`.
"""

from __future__ import annotations

from datetime import timedelta

from . import _validate
from ._backoff import Constant, Exponential, Linear, Schedule, bounds

__all__ = ["Schedule", "constant", "exponential", "linear"]

Schedule.__module__ = __name__


def exponential(
    *,
    base: float | timedelta = 0.1,
    multiplier: float = 2.0,
    max: float | timedelta | None = None,
    min: float | timedelta = 0.0,
) -> Schedule:
    """Delays that grow by *multiplier* after each try: ``base * multiplier ** (attempt - 1)``.

    With the defaults this is the schedule `Retry` uses without ``delay=``: 0.1, 0.2,
    0.4, 0.8 seconds... Like tenacity's ``wait_exponential(multiplier=base,
    exp_base=multiplier, min=min, max=max)`` and backoff's ``expo(base=multiplier,
    factor=base, max_value=max)``.

    Args:
        base: Seconds after the first try failed, at least 0.
        multiplier: How much each delay grows, at least 1.
        max: The longest delay, in seconds, at least *min*; ``None`` for no cap of the
            schedule's own (the policy's ``max_delay`` still caps it).
        min: The shortest delay, in seconds, at least 0: no retry comes sooner, jitter
            included.

    Raises:
        TypeError: An argument is not a number (or a `datetime.timedelta`).
        ValueError: An argument is out of range, NaN or infinite, or ``max < min``.
    """
    low, high = bounds(min, max)
    return Exponential(
        min=low,
        max=high,
        base=_validate.duration("base", base, ge=0),
        multiplier=_validate.number("multiplier", multiplier, ge=1),
    )


def linear(
    *,
    start: float | timedelta,
    step: float | timedelta,
    max: float | timedelta | None = None,
    min: float | timedelta = 0.0,
) -> Schedule:
    """Delays that grow by *step* after each try: ``start + step * (attempt - 1)``.

    Like tenacity's ``wait_incrementing(start=start, increment=step, max=max)``.

    Args:
        start: Seconds after the first try failed, at least 0.
        step: Seconds added after each further try, at least 0.
        max: The longest delay, in seconds, at least *min*; ``None`` for no cap of the
            schedule's own (the policy's ``max_delay`` still caps it).
        min: The shortest delay, in seconds, at least 0: no retry comes sooner, jitter
            included.

    Raises:
        TypeError: An argument is not a number (or a `datetime.timedelta`).
        ValueError: An argument is out of range, NaN or infinite, or ``max < min``.
    """
    low, high = bounds(min, max)
    return Linear(
        min=low,
        max=high,
        start=_validate.duration("start", start, ge=0),
        step=_validate.duration("step", step, ge=0),
    )


def constant(delay: float | timedelta, /) -> Schedule:
    """The same delay after every try, like tenacity's ``wait_fixed`` and backoff's
    ``constant``.

    A policy's jitter still spreads it (``"full"``: uniform between 0 and *delay*);
    pass ``jitter=None`` to the policy to sleep exactly *delay* every time.

    Args:
        delay: Seconds between tries, at least 0.

    Raises:
        TypeError: *delay* is not a number (or a `datetime.timedelta`).
        ValueError: *delay* is negative, NaN or infinite.
    """
    seconds = _validate.duration("delay", delay, ge=0)
    return Constant(min=0.0, max=seconds, delay=seconds)
