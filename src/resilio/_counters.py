"""Counters that many threads advance without a lock, and that read without one.

A counter is an `itertools.repeat` of ``None`` that runs down from ``sys.maxsize``
(which no process reaches): ``next(counter)`` is one C call that lowers a C integer
and returns ``None``, half the cost of an `itertools.count`, which makes a new int on
each call past 256. Under the GIL that call is one indivisible step, so totals
counted from many threads are exact, and `count_of` reads them without a lock. On a
free-threaded build the step is not promised to be atomic, and totals counted under
contention may fall short (never over).
"""

from __future__ import annotations

import itertools
import operator
import sys

Counter = itertools.repeat  # of None: see `counter`


def counter() -> Counter[None]:
    """A counter that ``next()`` advances by one; `count_of` reads it."""
    return itertools.repeat(None, sys.maxsize)


def count_of(counter: Counter[None]) -> int:
    """How many times ``next()`` was called on *counter*; reading it does not move it."""
    return sys.maxsize - operator.length_hint(counter)
