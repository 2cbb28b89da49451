"""The event bus: subscribe by class, unsubscribe, and a handler that breaks.

Every primitive publishes frozen events on an ``EventBus`` (the process-wide
``default_bus()`` unless given ``bus=``). Subscribing to a class receives its
subclasses too, so ``Event`` receives everything. A handler that raises is logged on
the ``resilio`` logger and never breaks the call that published. The bus numbers
the events it delivers (``seq``) and stamps them with the Unix time (``wall``).

Run it with ``python examples/events.py``.
"""

from __future__ import annotations

import logging

from resilio import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
)


class PrintHandler(logging.Handler):
    """Show what the ``resilio`` logger receives, one short line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        print(f"  logged on {record.name!r} at {record.levelname}: {error!r}")


logging.getLogger("resilio").addHandler(PrintHandler())

clock = ManualClock()
bus = EventBus()
breaker = CircuitBreaker(name="db", failure_threshold=2, clock=clock, bus=bus)


def trip_and_knock() -> None:
    """Two failures open the breaker; a third call is rejected."""
    for _ in range(2):
        breaker.record_failure()
    try:
        breaker.call(print, "never printed: the breaker is open")
    except CircuitOpenError:
        pass
    breaker.reset()


def main() -> None:
    print("1. Nobody listens yet: the breaker does not even build its events.")
    print(f"  bus.wants(CallRejected) = {bus.wants(CallRejected)}")
    trip_and_knock()

    print("2. One handler for state changes only, one for every event.")
    unsubscribe_changes = bus.subscribe(
        CircuitStateChanged,
        lambda e: print(f"  state change: {e.old.value} -> {e.new.value} ({e.reason})"),
    )
    unsubscribe_all = bus.subscribe(
        Event,
        lambda e: print(
            f"  any event:    #{e.seq} {type(e).__name__} from {e.source!r} at t={e.at}"
            f"{', wall clock set' if e.wall > 0 else ''}"
        ),
    )
    print(f"  bus.wants(CallRejected) = {bus.wants(CallRejected)}")
    trip_and_knock()

    print("3. Unsubscribe the catch-all; only state changes are left.")
    unsubscribe_all()
    unsubscribe_all()  # a second call is harmless
    trip_and_knock()
    unsubscribe_changes()

    print("4. A handler that raises is logged, and the breaker carries on.")

    def broken(event: Event) -> None:
        raise RuntimeError("bug in a metrics exporter")

    bus.subscribe(CallRejected, broken)
    bus.subscribe(
        CallRejected, lambda e: print(f"  next handler still runs: retry_after={e.retry_after}")
    )
    trip_and_knock()
    print(f"  {bus!r}")


if __name__ == "__main__":
    main()
