"""Circuit breakers: cumulative counters for a dashboard, and call durations on request.

Two short scenes on a ``ManualClock``, so nothing sleeps:

* a breaker's counters (succeeded, failed, ignored, rejected, transitions) after a
  dependency fails, recovers and is reset, with the time spent in the current state;
* ``CallCompleted`` events, published only once somebody subscribes, feeding a
  latency summary per outcome.

Run it with ``python examples/breaker_counters.py``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

from resilio import (
    CallCompleted,
    CircuitBreaker,
    CircuitOpenError,
    EventBus,
    ManualClock,
    SlidingWindowBreaker,
)

clock = ManualClock()
bus = EventBus()


# --8<-- [start:counters]
payments = CircuitBreaker(
    name="payments", failure_threshold=2, open_timeout=10, ignore=KeyError, clock=clock, bus=bus
)


@payments
def charge(outcome: str) -> str:
    if outcome == "down":
        raise ConnectionError("payments is down")
    if outcome == "unknown card":
        raise KeyError(outcome)  # ignore=: says nothing about the dependency
    return "charged"


for outcome in ["ok", "ok", "unknown card", "down", "down", "ok", "ok"]:
    with contextlib.suppress(ConnectionError, KeyError, CircuitOpenError):
        charge(outcome)
clock.advance(10)
charge("ok")  # the probe that closes it
payments.reset()  # clears the state, never the totals
clock.advance(42)

snap = payments.snapshot()
print(
    f"succeeded={snap.succeeded} failed={snap.failed} ignored={snap.ignored} "
    f"rejected={snap.rejected} transitions={snap.transitions}"
)
print(f"{snap.state.value} for {clock.monotonic() - snap.last_change:g}s")
# --8<-- [end:counters]
assert (snap.succeeded, snap.failed, snap.ignored, snap.rejected) == (3, 2, 1, 2)

print()

# --8<-- [start:durations]
search = SlidingWindowBreaker(name="search", window_size=10, min_calls=5, clock=clock, bus=bus)
durations: dict[str, list[float]] = defaultdict(list)


def record(event: CallCompleted) -> None:
    durations[event.outcome].append(event.duration)


@search
def find(seconds: float, fails: bool = False) -> list[str]:
    clock.advance(seconds)  # stands in for the real request
    if fails:
        raise TimeoutError("search did not answer")
    return ["result"]


find(0.2)  # nobody subscribes yet: no event is built, the call is only counted
unsubscribe = bus.subscribe(CallCompleted, record)
for seconds, fails in [(0.1, False), (0.3, False), (2.0, True), (0.2, False)]:
    with contextlib.suppress(TimeoutError):
        find(seconds, fails)
unsubscribe()

for outcome, seen in sorted(durations.items()):
    print(f"{outcome}: {len(seen)} calls, slowest {max(seen):g}s")
print(f"counted: {search.snapshot().succeeded} succeeded, {search.snapshot().failed} failed")
# --8<-- [end:durations]
assert sum(len(seen) for seen in durations.values()) == 4
