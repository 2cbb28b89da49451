"""Static checks of the observability surface: Timeout's name, bus and stats, Fallback's
stats, the events' stamps and log_events; never executed, checked by ``mypy --strict``.

The ``# type: ignore[...]`` lines are deliberate misuse: with ``warn_unused_ignores``
(part of ``--strict``) mypy fails if they stop being errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from typing_extensions import assert_type

from resilio import (
    CallCompleted,
    Event,
    EventBus,
    Fallback,
    ManualClock,
    RetryScheduled,
    TimedOut,
    Timeout,
    log_events,
)

bus = EventBus()
timeout = Timeout(2.0, name="inventory", clock=ManualClock(), bus=bus)
assert_type(timeout.name, str)
assert_type(timeout.seconds, float)
assert_type(timeout.stats().timed_out, int)

fallback = Fallback(lambda exc: 0, name="prices", bus=bus)
assert_type(fallback.stats().used, int)

event = TimedOut(source="inventory", at=0.0, seconds=2.0)
assert_type(event.seq, int)
assert_type(event.wall, float)

stop = log_events()
assert_type(stop, Callable[[], None])
log_events(logging.getLogger("app"), bus=bus)
log_events("app.resilience", level_map={RetryScheduled: None, CallCompleted: logging.DEBUG})
log_events(logging.LoggerAdapter(logging.getLogger("app"), {"service": "shop"}))
log_events(level_map={Event: logging.DEBUG})

# Deliberate misuse: each line must stay a type error.
Timeout(2.0, name=3)  # type: ignore[arg-type]
log_events(level_map={RetryScheduled: "DEBUG"})  # type: ignore[dict-item]
log_events(bus="default")  # type: ignore[arg-type]
