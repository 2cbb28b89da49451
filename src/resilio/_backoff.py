"""Backoff delays as pure functions: exponential growth, a cap, and jitter.

The delay before try ``k + 1`` (after try ``k`` failed, ``k >= 1``) is
``min(max_delay, base_delay * multiplier ** (k - 1))``, then jittered:

* ``"full"``: uniform between 0 and the delay (the AWS "full jitter"): spreads
  clients the most, the best default when many retry at once;
* ``"equal"``: half the delay plus uniform up to the other half: never much shorter
  than the schedule;
* ``"decorrelated"``: uniform between ``base_delay`` and three times the previous
  delay, capped at ``max_delay`` (the AWS "decorrelated jitter"); it ignores
  ``multiplier``;
* ``None``: exactly the schedule.

A ``retry_after`` hint that a policy waits out is spread too, by `spread`: a random
extra of up to `HINT_SPREAD` (10 %) of the hint, never less than the hint, so that
callers told the same moment do not all come back at that moment.

A ``delay=`` function (one of the `Schedule` builders of ``resilio.backoff``, or any
``fn(attempt)``) replaces the exponential formula; `seconds` reads its answer, and `between`
jitters it over ``[floor, delay]``, where the floor is a schedule's ``min`` (0 for
any other function).

Randomness comes from a ``random`` callable returning floats in [0, 1), so tests can
pass a seeded ``random.Random(0).random`` and get exact sequences.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from datetime import timedelta
from typing import Literal, cast

import attrs

from . import _validate

_INF = float("inf")

Jitter = Literal["full", "equal", "decorrelated"] | None
JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated", None)

HINT_SPREAD = 0.1
"""The largest random extra added to a ``retry_after`` hint, as a fraction of the hint."""


def exponential(attempt: int, base_delay: float, multiplier: float, max_delay: float) -> float:
    """The delay after try *attempt* failed, before jitter."""
    try:
        delay = base_delay * multiplier ** (attempt - 1)
    except OverflowError:  # a huge power: the cap, unless there is nothing to grow
        return max_delay if base_delay else 0.0
    return delay if delay < max_delay else max_delay


def jittered(
    attempt: int,
    previous: float,
    *,
    base_delay: float,
    multiplier: float,
    max_delay: float,
    jitter: Jitter,
    random: Callable[[], float],
) -> float:
    """The delay after try *attempt* failed, jittered; *previous* is the last delay used.

    For the first retry, pass ``previous=base_delay``.
    """
    if jitter == "decorrelated":
        high = previous * 3
        delay = base_delay + random() * (high - base_delay) if high > base_delay else base_delay
        return delay if delay < max_delay else max_delay
    delay = exponential(attempt, base_delay, multiplier, max_delay)
    if jitter is None:
        return delay
    if jitter == "full":
        return random() * delay
    return delay / 2 + random() * delay / 2


def spread(hint: float, random: Callable[[], float]) -> float:
    """*hint* plus a random extra of up to `HINT_SPREAD` of itself: in ``[hint, 1.1 * hint)``.

    A hint so large that the extra would overflow to infinity is returned as it is.
    """
    delay = hint + hint * HINT_SPREAD * random()
    return delay if delay != _INF else hint


def delays(
    attempts: int,
    *,
    base_delay: float,
    multiplier: float,
    max_delay: float,
    jitter: Jitter,
    random: Callable[[], float],
) -> list[float]:
    """The delays between *attempts* tries (``attempts - 1`` of them)."""
    result = []
    previous = base_delay
    for attempt in range(1, attempts):
        previous = jittered(
            attempt,
            previous,
            base_delay=base_delay,
            multiplier=multiplier,
            max_delay=max_delay,
            jitter=jitter,
            random=random,
        )
        result.append(previous)
    return result


def between(low: float, high: float, jitter: Jitter, random: Callable[[], float]) -> float:
    """A delay of *high* jittered over ``[low, high]``: ``"full"`` or ``"equal"``, or *high*."""
    if jitter is None or high <= low:
        return high
    if jitter == "full":
        return low + random() * (high - low)
    return (low + high) / 2 + random() * (high - low) / 2


def seconds(value: object) -> float | None:
    """A ``delay=`` function's answer in seconds; ``None`` when it is no delay at all.

    A `datetime.timedelta` is taken as its seconds, and an int too large for a float as
    the largest float (longer than any cap). A negative number, ``nan``, ``inf``, a
    ``bool`` and anything that is not a real number are ``None``.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        result = float(value)
    except OverflowError:
        return _MAX_FLOAT if cast("int", value) > 0 else None
    return result if 0.0 <= result < _INF else None


_MAX_FLOAT = float.fromhex("0x1.fffffffffffffp+1023")


def _repr_seconds(value: float | None) -> str:
    return "None" if value is None else f"{value:g}"


@attrs.frozen(repr=False)
class Schedule:
    """A delay schedule for ``Retry(delay=...)``: ``schedule(attempt)`` is the delay, in
    seconds, after try *attempt* failed (from 1), before jitter.

    Build one with [`exponential`][resilio.backoff.exponential],
    [`linear`][resilio.backoff.linear] or [`constant`][resilio.backoff.constant]; a
    schedule is immutable, and one may serve any number of policies. Every delay lies
    between `min` and `max`, and a [`Retry`][resilio.Retry] keeps its jitter within
    them too: ``"full"`` jitter is uniform between `min` and the delay.

    Attributes:
        min: The shortest delay, in seconds.
        max: The longest delay, in seconds, or ``None`` for no cap of the schedule's own
            (the policy's ``max_delay`` still caps it).
    """

    min: float
    max: float | None

    def __call__(self, attempt: int) -> float:
        """The delay, in seconds, after try *attempt* failed (``attempt >= 1``)."""
        raise NotImplementedError

    def _clamp(self, delay: float) -> float:
        if self.max is not None and delay > self.max:
            return self.max
        return delay if delay > self.min else self.min


@attrs.frozen(repr=False)
class Exponential(Schedule):
    """``base * multiplier ** (attempt - 1)``, between ``min`` and ``max``."""

    base: float
    multiplier: float

    def __call__(self, attempt: int) -> float:
        """The delay, in seconds, after try *attempt* failed (``attempt >= 1``)."""
        try:
            delay = self.base * self.multiplier ** (attempt - 1)
        except OverflowError:  # a huge power: longer than any cap, unless nothing grows
            delay = _MAX_FLOAT if self.base else 0.0
        return self._clamp(delay if delay < _INF else _MAX_FLOAT)  # base * power overflowed

    def __repr__(self) -> str:
        return (
            f"exponential(base={self.base:g}, multiplier={self.multiplier:g}, "
            f"max={_repr_seconds(self.max)}, min={self.min:g})"
        )


@attrs.frozen(repr=False)
class Linear(Schedule):
    """``start + step * (attempt - 1)``, between ``min`` and ``max``."""

    start: float
    step: float

    def __call__(self, attempt: int) -> float:
        """The delay, in seconds, after try *attempt* failed (``attempt >= 1``)."""
        delay = self.start + self.step * (attempt - 1)
        return self._clamp(delay if delay < _INF else _MAX_FLOAT)

    def __repr__(self) -> str:
        return (
            f"linear(start={self.start:g}, step={self.step:g}, "
            f"max={_repr_seconds(self.max)}, min={self.min:g})"
        )


@attrs.frozen(repr=False)
class Constant(Schedule):
    """The same delay after every try."""

    delay: float

    def __call__(self, attempt: int) -> float:
        """The delay, in seconds, after try *attempt* failed (``attempt >= 1``)."""
        return self.delay

    def __repr__(self) -> str:
        return f"constant({self.delay:g})"


def bounds(min_: float | timedelta, max_: float | timedelta | None) -> tuple[float, float | None]:
    """Check a schedule's ``min`` and ``max``, naming them; return them in seconds."""
    low = _validate.duration("min", min_, ge=0)
    high = _validate.optional_duration("max", max_, ge=0)
    if high is not None and high < low:
        msg = f"'max' must be >= 'min': max={max_!r}, min={min_!r}"
        raise ValueError(msg)
    return low, high
