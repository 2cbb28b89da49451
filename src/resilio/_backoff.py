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

Randomness comes from a ``random`` callable returning floats in [0, 1), so tests can
pass a seeded ``random.Random(0).random`` and get exact sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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
