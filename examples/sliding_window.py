"""SlidingWindowBreaker: trip on the failure rate, or the slow-call rate, over a window.

Two breakers, each on a ``ManualClock``:

* a count-based window of the last 10 calls that trips once at least 5 calls are in
  and half or more of them failed;
* a 60-second time-based window that trips when half or more of the calls took 1 s
  or longer, even though every one of them succeeded.

Run it with ``python examples/sliding_window.py``.
"""

from __future__ import annotations

from resilio import (
    CircuitOpenError,
    CircuitStateChanged,
    EventBus,
    ManualClock,
    SlidingWindowBreaker,
)

clock = ManualClock()
bus = EventBus()
bus.subscribe(
    CircuitStateChanged,
    lambda e: print(f"    -> {e.source}: {e.old.value} -> {e.new.value} ({e.reason})"),
)


def count_window() -> None:
    print("1. A count-based window: the last 10 calls, judged once 5 are in.")
    breaker = SlidingWindowBreaker(
        name="search",
        window_size=10,
        min_calls=5,
        failure_rate_threshold=0.5,
        clock=clock,
        bus=bus,
    )

    @breaker
    def search(ok: bool) -> str:
        if not ok:
            raise TimeoutError("search backend timed out")
        return "results"

    for ok in [True, False, True, True, False, False, True, False]:
        try:
            search(ok)
        except CircuitOpenError as exc:
            print(f"  rejected: {exc}")
            continue
        except TimeoutError:
            pass
        snap = breaker.snapshot()
        print(
            f"  {'ok  ' if ok else 'fail'}  window: {snap.failed_calls}/{snap.calls} failed"
            f" = {snap.failure_rate:.0%}"
        )


def slow_calls() -> None:
    print("2. A 60 s time-based window that also watches latency (slow = 1 s or more).")
    breaker = SlidingWindowBreaker(
        name="reports",
        window_duration=60.0,
        min_calls=4,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        clock=clock,
        bus=bus,
    )

    @breaker
    def report(seconds: float) -> str:
        clock.sleep(seconds)  # a ManualClock "sleep" just moves virtual time on
        return "report"

    def run(latencies: list[float]) -> None:
        for seconds in latencies:
            try:
                report(seconds)
            except CircuitOpenError as exc:
                print(f"  rejected: {exc}")
                continue
            snap = breaker.snapshot()
            print(
                f"  took {seconds:3.1f}s  window: {snap.slow_calls}/{snap.calls} slow"
                f" = {snap.slow_call_rate:.0%}"
            )

    run([2.0, 0.1, 2.0])
    clock.advance(61.0)
    print(f"  ...61 s later the window holds {breaker.snapshot().calls} calls: the old ones left")
    run([0.1, 0.2, 1.5, 3.0, 0.1])


if __name__ == "__main__":
    count_window()
    slow_calls()
