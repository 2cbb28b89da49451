"""log_events: every event as one structured ``logging`` record.

A policy of a fallback, a retry and a breaker around a dependency that goes down and
comes back. ``log_events()`` turns what the primitives publish into log records: a
readable message at a level chosen by the event's class, and the event's fields as
``resilio_*`` attributes of the record, which a JSON formatter can ship as they are.
Time is a ManualClock, so the example prints the same every time.

Run it with ``python examples/log_events.py``.
"""

from __future__ import annotations

import json
import logging
import sys

from resilio import (
    CallCompleted,
    CircuitBreaker,
    EventBus,
    Fallback,
    ManualClock,
    Retry,
    RetryScheduled,
    compose,
    log_events,
)

clock = ManualClock()
bus = EventBus()  # a private bus: only this example's events
breaker = CircuitBreaker(
    name="inventory", failure_threshold=2, success_threshold=1, clock=clock, bus=bus
)
retry = Retry(name="inventory", attempts=3, base_delay=0.5, jitter=None, clock=clock, bus=bus)
fallback = Fallback(lambda exc: [], name="inventory", clock=clock, bus=bus)
down = True


@compose(fallback, retry, breaker)
def list_items() -> list[str]:
    """The dependency: down, then up again."""
    if down:
        raise ConnectionError("inventory unreachable")
    return ["apple", "pear"]


def outage_and_recovery() -> None:
    """Two failing tries open the breaker; 30 s later a probe closes it."""
    global down
    down = True
    print(f"  -> {list_items()}")
    clock.advance(30.0)
    down = False
    print(f"  -> {list_items()}")


# --8<-- [start:setup]
class JsonLines(logging.Formatter):
    """One JSON object per record: the level, the message and the resilio_* fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k.startswith("resilio_")}
        fields.pop("resilio_wall")  # the Unix time: left out so the output never changes
        line = {"level": record.levelname, "message": record.getMessage(), **fields}
        return json.dumps(line, default=repr)


handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("  %(levelname)-7s %(name)s: %(message)s"))
logging.getLogger("resilio").addHandler(handler)
logging.getLogger("resilio").setLevel(logging.DEBUG)
# --8<-- [end:setup]


def main() -> None:
    print("1. log_events(): a readable line per event, at its default level.")
    # --8<-- [start:default]
    stop = log_events(bus=bus)  # the "resilio" logger; returns the unsubscribe function
    # --8<-- [end:default]
    outage_and_recovery()
    stop()

    print("2. The same events as JSON lines, with every field of the event.")
    handler.setFormatter(JsonLines())
    stop = log_events(bus=bus)
    breaker.force_open()
    stop()
    breaker.reset()
    handler.setFormatter(logging.Formatter("  %(levelname)-7s %(name)s: %(message)s"))

    print("3. level_map: retries left out, every call's duration at DEBUG.")
    # --8<-- [start:level-map]
    stop = log_events(
        logging.getLogger("resilio.calls"),
        level_map={RetryScheduled: None, CallCompleted: logging.DEBUG},
        bus=bus,
    )
    # --8<-- [end:level-map]
    outage_and_recovery()
    stop()
    print(f"  after stop(), bus.wants(CallCompleted) = {bus.wants(CallCompleted)}")


if __name__ == "__main__":
    main()
