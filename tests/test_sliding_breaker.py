"""SlidingWindowBreaker: count- and time-based windows, slow calls, bounded memory,
events and configuration checks.

Every test drives time with a ManualClock; nothing sleeps for real.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

import pytest

from resilio import (
    CallRejected,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    SlidingWindowBreaker,
)

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class Boom(Exception):
    """The failure the guarded functions raise."""


def succeed() -> str:
    return "ok"


def fail() -> NoReturn:
    raise Boom


def drive(breaker: SlidingWindowBreaker, outcomes: str) -> None:
    """Run one guarded call per letter: ``F`` fails with Boom, ``S`` succeeds."""
    for outcome in outcomes:
        if outcome == "F":
            with pytest.raises(Boom):
                breaker.call(fail)
        else:
            assert breaker.call(succeed) == "ok"


def window(breaker: SlidingWindowBreaker) -> tuple[int, int, int]:
    """The (calls, failed_calls, slow_calls) in the window now."""
    snap = breaker.snapshot()
    return snap.calls, snap.failed_calls, snap.slow_calls


def changes(events: list[Event]) -> list[tuple[CircuitState, CircuitState, str, float]]:
    """The (old, new, reason, at) of every CircuitStateChanged recorded."""
    return [(e.old, e.new, e.reason, e.at) for e in events if isinstance(e, CircuitStateChanged)]


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., SlidingWindowBreaker]:
    """Build a SlidingWindowBreaker on the test's clock and bus."""

    def factory(**options: Any) -> SlidingWindowBreaker:
        options.setdefault("name", "sw")
        return SlidingWindowBreaker(clock=clock, bus=bus, **options)

    return factory


def slow_call(
    breaker: SlidingWindowBreaker, clock: ManualClock, took: float, *, ok: bool, form: str = "call"
) -> None:
    """A guarded call that takes *took* seconds of virtual time, then succeeds or fails."""

    def work() -> str:
        clock.advance(took)
        if not ok:
            raise Boom
        return "ok"

    guarded = functools.partial(breaker.call, work) if form == "call" else breaker(work)
    if ok:
        assert guarded() == "ok"
    else:
        with pytest.raises(Boom):
            guarded()


class TestCountWindow:
    def test_does_not_trip_before_min_calls(
        self, make: Callable[..., SlidingWindowBreaker]
    ) -> None:
        """Below min_calls outcomes, even a 100% failure rate keeps it closed."""
        breaker = make(window_size=10, min_calls=5)
        drive(breaker, "FFFF")
        assert breaker.state is CLOSED
        assert window(breaker) == (4, 4, 0)
        drive(breaker, "F")
        assert breaker.state is OPEN

    @pytest.mark.parametrize(
        ("outcomes", "trips"),
        [
            ("SSSF", False),  # 0.25
            ("SSFF", True),  # 0.50: at the threshold trips
            ("SFFF", True),  # 0.75
            ("FFFS", True),  # already 3/3 failed, tripping on the 4th outcome
        ],
    )
    def test_trips_at_or_above_the_threshold(
        self,
        make: Callable[..., SlidingWindowBreaker],
        events: list[Event],
        outcomes: str,
        trips: bool,
    ) -> None:
        """Once min_calls outcomes are in, a failure rate at or above the threshold trips."""
        breaker = make(window_size=10, min_calls=4, failure_rate_threshold=0.5)
        drive(breaker, outcomes[:-1])
        assert breaker.state is CLOSED
        drive(breaker, outcomes[-1])
        assert breaker.state is (OPEN if trips else CLOSED)
        expected = [(CLOSED, OPEN, "failure_rate", 0.0)] if trips else []
        assert changes(events) == expected

    def test_window_slides(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """Only the last window_size outcomes count: old ones leave as new ones come."""
        breaker = make(window_size=4, min_calls=4, failure_rate_threshold=0.75)
        steps = [
            ("FFSS", (4, 2)),
            ("S", (4, 1)),  # the first F left
            ("S", (4, 0)),  # the second F left
            ("FF", (4, 2)),
        ]
        for outcomes, (calls, failed) in steps:
            drive(breaker, outcomes)
            assert window(breaker)[:2] == (calls, failed)
            assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN  # S F F F: 0.75

    def test_old_failures_do_not_trip(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """Failures that have slid out of the window no longer count."""
        breaker = make(window_size=5, min_calls=5, failure_rate_threshold=0.6)
        drive(breaker, "FFSSS" + "SS" + "FF")  # window: S S S F F -> 0.4
        assert breaker.state is CLOSED
        assert window(breaker)[:2] == (5, 2)

    def test_snapshot_rates(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """The snapshot reports the window's failure rate, and 0 for an empty window."""
        breaker = make(window_size=8, min_calls=8)
        assert breaker.snapshot().failure_rate == 0.0
        drive(breaker, "FSSS")
        snap = breaker.snapshot()
        assert (snap.calls, snap.failed_calls, snap.failure_rate) == (4, 1, 0.25)
        assert snap.slow_call_rate == 0.0

    def test_ignored_errors_stay_out_of_the_window(
        self, make: Callable[..., SlidingWindowBreaker]
    ) -> None:
        """Ignored errors are not outcomes; errors outside failure_on count as successes."""
        breaker = make(window_size=4, min_calls=2, failure_on=Boom, ignore=KeyError)
        with pytest.raises(KeyError):
            breaker.call({}.__getitem__, "x")
        with pytest.raises(ValueError):
            breaker.call(int, "x")
        assert window(breaker) == (1, 0, 0)
        drive(breaker, "F")
        assert breaker.state is OPEN

    def test_defaults(self, clock: ManualClock) -> None:
        """Defaults: 100-call window, 20 calls minimum, 50% threshold."""
        breaker = SlidingWindowBreaker(clock=clock)
        assert breaker.name == "sliding-breaker"
        drive(breaker, "F" * 19)
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN
        breaker.reset()
        drive(breaker, "SF" * 9 + "S")
        assert breaker.state is CLOSED
        drive(breaker, "F")  # 10 of 20: at the threshold
        assert breaker.state is OPEN
        assert window(breaker)[:2] == (20, 10)


class TestTimeWindow:
    def test_outcomes_leave_a_bucket_at_a_time(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A 10 s window is 10 buckets of 1 s: outcomes leave when their bucket does."""
        breaker = make(window_duration=10.0, min_calls=100)
        clock.advance(0.25)
        drive(breaker, "SS")  # bucket [0, 1)
        clock.advance(0.75)
        drive(breaker, "F")  # bucket [1, 2)
        clock.advance(4.5)
        drive(breaker, "SSS")  # bucket [5, 6)
        assert window(breaker)[:2] == (6, 1)
        clock.advance(4.25)
        assert window(breaker)[:2] == (6, 1)  # t = 9.75: all still in
        clock.advance(0.25)
        assert window(breaker)[:2] == (4, 1)  # t = 10: bucket [0, 1) left
        clock.advance(0.75)
        assert window(breaker)[:2] == (4, 1)
        clock.advance(0.25)
        assert window(breaker)[:2] == (3, 0)  # t = 11: bucket [1, 2) left
        clock.advance(5.0)
        assert window(breaker)[:2] == (0, 0)  # t = 16: everything left

    @pytest.mark.parametrize(("gap", "trips"), [(9.5, True), (10.0, False)])
    def test_expired_failures_do_not_trip(
        self,
        make: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        gap: float,
        trips: bool,
    ) -> None:
        """Failures older than the window no longer count towards the rate."""
        breaker = make(window_duration=10.0, min_calls=3, failure_rate_threshold=0.5)
        drive(breaker, "FF")
        clock.advance(gap)
        drive(breaker, "S")
        assert breaker.state is (OPEN if trips else CLOSED)  # FFS = 0.67, or just S
        if not trips:
            drive(breaker, "SF")  # S S F = 0.33
            assert breaker.state is CLOSED

    def test_a_long_gap_empties_the_window(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """After more than a whole window of silence the window is empty."""
        breaker = make(window_duration=2.0, min_calls=3)
        drive(breaker, "FF")
        clock.advance(1000.0)
        drive(breaker, "FS")
        assert breaker.state is CLOSED
        assert window(breaker)[:2] == (2, 1)

    def test_min_calls_may_exceed_window_size(
        self, make: Callable[..., SlidingWindowBreaker]
    ) -> None:
        """With a time window min_calls is not bound by the default window_size."""
        breaker = make(window_duration=60.0, min_calls=150)
        drive(breaker, "F" * 149)
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN

    def test_trips_at_or_above_the_threshold(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """A time window trips at the threshold once min_calls outcomes are in."""
        breaker = make(window_duration=5.0, min_calls=4, failure_rate_threshold=0.5)
        clock.advance(1)
        drive(breaker, "SF")
        clock.advance(2)
        drive(breaker, "S")
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN
        assert changes(events) == [(CLOSED, OPEN, "failure_rate", 3.0)]


class TestSlowCalls:
    @pytest.mark.parametrize(
        ("durations", "trips"),
        [
            ([2.0, 1.0, 2.0, 1.0], True),  # 2/4 slow: at the threshold
            ([2.0, 1.0, 1.9, 1.0], False),  # 1/4 slow
            ([3.0, 5.0, 1.0, 0.0], True),  # 2/4
            ([2.0, 2.0, 2.0], False),  # all slow, but only 3 calls
        ],
    )
    def test_trips_on_slow_call_rate(
        self,
        make: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        events: list[Event],
        durations: list[float],
        trips: bool,
    ) -> None:
        """Calls lasting slow_call_duration or longer are slow; their rate trips at or above."""
        breaker = make(
            window_size=10, min_calls=4, slow_call_duration=2.0, slow_call_rate_threshold=0.5
        )
        for took in durations:
            slow_call(breaker, clock, took, ok=True)
        assert breaker.state is (OPEN if trips else CLOSED)
        if trips:
            assert changes(events) == [(CLOSED, OPEN, "slow_call_rate", clock.monotonic())]
            assert breaker.snapshot().open_reason == "slow_call_rate"

    @pytest.mark.parametrize("form", ["call", "decorator"])
    def test_slow_calls_are_counted(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, form: str
    ) -> None:
        """The snapshot counts slow calls, failed or not, and their rate."""
        breaker = make(window_size=10, min_calls=10, slow_call_duration=1.0)
        slow_call(breaker, clock, 1.0, ok=True, form=form)
        slow_call(breaker, clock, 1.5, ok=False, form=form)
        slow_call(breaker, clock, 0.5, ok=False, form=form)
        slow_call(breaker, clock, 0.0, ok=True, form=form)
        snap = breaker.snapshot()
        assert (snap.calls, snap.failed_calls, snap.slow_calls) == (4, 2, 2)
        assert snap.slow_call_rate == 0.5

    @pytest.mark.parametrize("how", ["reset", "forced open, then reset"])
    @pytest.mark.parametrize("form", ["call", "decorator"])
    def test_timed_call_outliving_its_generation_is_ignored(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, form: str, how: str
    ) -> None:
        """A slow call admitted before a reset() (or a trip and recovery) counts for nothing."""
        breaker = make(window_size=4, min_calls=1, slow_call_duration=1.0)

        def reset_then_fail() -> None:
            if how != "reset":
                breaker.force_open()
            breaker.reset()
            clock.advance(2.0)
            raise Boom

        guarded = functools.partial(breaker.call, reset_then_fail)
        if form == "decorator":
            guarded = breaker(reset_then_fail)
        with pytest.raises(Boom):
            guarded()
        assert window(breaker) == (0, 0, 0)
        assert breaker.state is CLOSED
        slow_call(breaker, clock, 2.0, ok=True, form=form)  # the new generation times calls
        assert breaker.state is OPEN

    def test_failure_rate_is_reported_first(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """Slow failures that break both thresholds report "failure_rate"."""
        breaker = make(window_size=4, min_calls=2, slow_call_duration=1.0)
        slow_call(breaker, clock, 2.0, ok=False)
        slow_call(breaker, clock, 2.0, ok=False)
        assert [c[2] for c in changes(events)] == ["failure_rate"]

    def test_durations_are_not_measured_without_slow_call_duration(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """Without slow_call_duration no call is slow, however long it takes."""
        breaker = make(window_size=4, min_calls=2)
        slow_call(breaker, clock, 1000.0, ok=True)
        slow_call(breaker, clock, 1000.0, ok=True)
        assert breaker.state is CLOSED
        assert window(breaker) == (2, 0, 0)

    def test_slow_calls_in_a_time_window(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A time window counts slow calls too, and they expire with their bucket."""
        breaker = make(
            window_duration=20.0, min_calls=3, slow_call_duration=1.0, slow_call_rate_threshold=0.6
        )
        slow_call(breaker, clock, 1.0, ok=True)  # ends at t=1, bucket [0, 2)
        slow_call(breaker, clock, 1.0, ok=True)  # ends at t=2, bucket [2, 4)
        assert window(breaker) == (2, 0, 2)
        clock.advance(18.0)  # t=20: the first has left
        assert window(breaker) == (1, 0, 1)
        slow_call(breaker, clock, 0.0, ok=True)  # 3 would be 2 of 3 slow
        assert breaker.state is CLOSED
        slow_call(breaker, clock, 1.0, ok=True)  # 2 of 3 slow
        assert breaker.state is OPEN
        assert breaker.snapshot().open_reason == "slow_call_rate"

    def test_slow_probe_reopens(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """A successful but slow probe counts as failed: the breaker re-opens."""
        breaker = make(window_size=4, min_calls=1, slow_call_duration=2.0, open_timeout=10.0)
        drive(breaker, "F")
        clock.advance(10)
        slow_call(breaker, clock, 1.0, ok=True)
        assert breaker.state is HALF_OPEN
        slow_call(breaker, clock, 2.0, ok=True)
        assert breaker.state is OPEN
        assert changes(events)[-1] == (HALF_OPEN, OPEN, "probe_failed", 13.0)
        assert breaker.snapshot().retry_after == 10.0


class TestStateMachine:
    def test_open_rejects_with_time_left(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """An open window breaker rejects without calling, with the time left."""
        breaker = make(window_size=2, min_calls=1, open_timeout=20.0)
        drive(breaker, "F")
        clock.advance(5)
        ran: list[int] = []
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ran.append, 1)
        assert ran == []
        assert info.value.retry_after == 15.0
        assert [e for e in events if isinstance(e, CallRejected)] == [
            CallRejected(source="sw", at=5.0, state=OPEN, retry_after=15.0)
        ]

    def test_half_open_limits_and_closes(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """HALF_OPEN bounds probes and closes after success_threshold successes."""
        breaker = make(window_size=2, min_calls=1, success_threshold=2, open_timeout=1.0)
        drive(breaker, "F")
        clock.advance(1)
        with breaker:
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(succeed)
            assert info.value.retry_after is None
        drive(breaker, "S")
        assert breaker.state is CLOSED
        assert [c[2] for c in changes(events)] == [
            "failure_rate",
            "open_timeout_elapsed",
            "probe_succeeded",
        ]

    @pytest.mark.parametrize("window_duration", [None, 10.0])
    def test_closing_starts_an_empty_window(
        self,
        make: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        window_duration: float | None,
    ) -> None:
        """After the probes close it, the window is empty: old failures are forgotten."""
        breaker = make(
            **({"window_size": 4} if window_duration is None else {}),
            window_duration=window_duration,
            min_calls=2,
            success_threshold=1,
            open_timeout=1.0,
        )
        drive(breaker, "SF")
        assert breaker.state is OPEN
        clock.advance(1)
        drive(breaker, "S")
        assert breaker.state is CLOSED
        assert window(breaker) == (0, 0, 0)
        drive(breaker, "SSF")  # with the old outcomes still in: F S S F, 0.5
        assert breaker.state is CLOSED
        assert window(breaker)[:2] == (3, 1)

    def test_reset_starts_an_empty_window(
        self, make: Callable[..., SlidingWindowBreaker], events: list[Event]
    ) -> None:
        """reset() closes the breaker with an empty window."""
        breaker = make(window_size=4, min_calls=4)
        drive(breaker, "FSS")
        breaker.reset()
        assert window(breaker) == (0, 0, 0)
        breaker.force_open()
        breaker.reset()
        assert window(breaker) == (0, 0, 0)
        assert [c[2] for c in changes(events)] == ["forced_open", "reset"]

    def test_force_open_rejects_without_retry_after(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A forced-open window breaker stays open with retry_after None."""
        breaker = make()
        breaker.force_open()
        clock.advance(10_000)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(succeed)
        assert info.value.retry_after is None
        assert breaker.snapshot().retry_after is None

    def test_record_success_and_failure(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """record_success() and record_failure() are outcomes in the window."""
        breaker = make(window_size=4, min_calls=4)
        breaker.record_success()
        breaker.record_failure()
        breaker.record_success()
        assert window(breaker)[:2] == (3, 1)
        breaker.record_failure()
        assert breaker.state is OPEN

    def test_stale_outcome_is_ignored(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A call admitted while closed that fails after the breaker half-opened is ignored."""
        breaker = make(window_size=2, min_calls=1, success_threshold=2, open_timeout=1.0)

        def outlive() -> NoReturn:
            breaker.record_failure()
            clock.advance(1)
            breaker.call(succeed)
            raise Boom

        with pytest.raises(Boom):
            breaker.call(outlive)
        assert breaker.state is HALF_OPEN
        assert breaker.snapshot().consecutive_successes == 1

    def test_snapshot_and_repr(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """The snapshot is consistent and frozen; repr shows name and window."""
        import attrs

        breaker = make(name="api", window_size=4, min_calls=4)
        drive(breaker, "FS")
        snap = breaker.snapshot()
        assert (snap.name, snap.state, snap.calls, snap.failed_calls) == ("api", CLOSED, 2, 1)
        assert (snap.consecutive_successes, snap.half_open_calls) == (0, 0)
        assert (snap.open_reason, snap.retry_after, snap.last_change) == (None, None, 0.0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            snap.calls = 0  # type: ignore[misc]
        assert "'api'" in repr(breaker)
        assert "closed" in repr(breaker)


class TestAfterClosing:
    """The window must keep working the same way after the breaker has closed again."""

    @pytest.fixture
    def recovered(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> Callable[..., SlidingWindowBreaker]:
        """Build a breaker, trip it and let a probe close it again."""

        def factory(**options: Any) -> SlidingWindowBreaker:
            breaker = make(success_threshold=1, open_timeout=1.0, **options)
            breaker.force_open()
            clock.advance(1)
            breaker.reset()
            assert breaker.state is CLOSED
            return breaker

        return factory

    @pytest.mark.parametrize("window_duration", [None, 10.0])
    def test_decorated_successes_still_count(
        self, recovered: Callable[..., SlidingWindowBreaker], window_duration: float | None
    ) -> None:
        """After reset(), successes through the decorator are still outcomes in the window."""
        size = {"window_size": 10} if window_duration is None else {}
        breaker = recovered(**size, window_duration=window_duration, min_calls=4)
        ok = breaker(succeed)
        bad = breaker(fail)
        for _ in range(6):
            ok()
        for _ in range(4):
            with pytest.raises(Boom):
                bad()
        assert window(breaker)[:2] == (10, 4)
        assert breaker.state is CLOSED  # 4 of 10 failed

    @pytest.mark.parametrize("form", ["call", "decorator", "with"])
    def test_slow_calls_still_measured(
        self,
        recovered: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        form: str,
    ) -> None:
        """After reset(), a breaker with slow_call_duration still guards and times calls."""
        breaker = recovered(window_size=4, min_calls=2, slow_call_duration=1.0)

        def work() -> str:
            clock.advance(2.0)
            return "ok"

        for _ in range(2):
            if form == "call":
                assert breaker.call(work) == "ok"
            elif form == "decorator":
                assert breaker(work)() == "ok"
            else:
                with breaker:
                    work()
        assert breaker.state is OPEN
        assert breaker.snapshot().open_reason == "slow_call_rate"

    def test_slow_call_failure_after_closing_by_probe(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """After probes close it, failures are recorded (not a TypeError from the guard)."""
        breaker = make(
            window_size=4, min_calls=1, slow_call_duration=5.0, success_threshold=1, open_timeout=1
        )
        drive(breaker, "F")
        clock.advance(1)
        drive(breaker, "S")
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN


class TestBoundedMemory:
    def test_count_window_ring_does_not_grow(
        self, make: Callable[..., SlidingWindowBreaker]
    ) -> None:
        """After 100k calls the count window's ring still holds window_size outcomes."""
        breaker = make(window_size=50, min_calls=50, failure_rate_threshold=1.0)
        size = len(breaker._ring)
        assert size == 50

        def maybe_fail(i: int) -> None:
            if i % 7 == 0:
                raise Boom

        for i in range(100_000):
            with contextlib.suppress(Boom):
                breaker.call(maybe_fail, i)
        assert len(breaker._ring) == size
        assert window(breaker)[:2] == (50, sum(1 for i in range(99_950, 100_000) if i % 7 == 0))

    def test_time_window_buckets_do_not_grow(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """After 100k calls spread over time the time window still has 10 buckets."""
        breaker = make(
            window_duration=1.0, min_calls=1, failure_rate_threshold=1.0, slow_call_duration=0.5
        )
        assert breaker.BUCKETS == 10
        for _ in range(100_000):
            clock.advance(0.001)
            breaker.call(succeed)
        assert len(breaker._ring_calls) == 10
        assert len(breaker._ring_failures) == 10
        assert len(breaker._ring_slows) == 10
        assert window(breaker)[0] in range(900, 1001)


BAD_INTS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    ("5", TypeError),
    (True, TypeError),
    (5.0, TypeError),
    (None, TypeError),
]
BAD_RATES: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-0.1, ValueError),
    (1.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    ("0.5", TypeError),
    (True, TypeError),
    (None, TypeError),
]
BAD_OPTIONAL_DURATIONS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1.0, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    ("10", TypeError),
    (True, TypeError),
]
BAD_EXCEPTION_SETS: list[tuple[Any, type[Exception]]] = [
    (42, TypeError),
    ("Boom", TypeError),
    ((ValueError, int), TypeError),
    ((ValueError(),), TypeError),
]
INT_PARAMS = ["window_size", "min_calls", "success_threshold", "half_open_max_calls"]
BAD_CONFIGS: list[tuple[str, Any, type[Exception]]] = [
    *[(param, value, error) for param in INT_PARAMS for value, error in BAD_INTS],
    *[
        (param, value, error)
        for param in ("failure_rate_threshold", "slow_call_rate_threshold")
        for value, error in BAD_RATES
    ],
    *[
        (param, value, error)
        for param in ("window_duration", "slow_call_duration")
        for value, error in BAD_OPTIONAL_DURATIONS
    ],
    *[("open_timeout", value, error) for value, error in BAD_OPTIONAL_DURATIONS],
    ("open_timeout", None, TypeError),
    *[
        (param, value, error)
        for param in ("failure_on", "ignore")
        for value, error in BAD_EXCEPTION_SETS
    ],
    ("name", "", ValueError),
    ("name", 3, TypeError),
    ("clock", object(), TypeError),
    ("bus", "bus", TypeError),
]


class TestConfiguration:
    @pytest.mark.parametrize(("param", "value", "error"), BAD_CONFIGS)
    def test_bad_values_are_rejected(
        self, clock: ManualClock, param: str, value: Any, error: type[Exception]
    ) -> None:
        """Each bad constructor argument fails at once, naming the parameter."""
        options: dict[str, Any] = {"clock": clock, "min_calls": 1, param: value}
        with pytest.raises(error, match=f"'{param}'"):
            SlidingWindowBreaker(**options)

    @pytest.mark.parametrize(("window_size", "min_calls"), [(10, 11), (1, 2), (100, 20_000)])
    def test_min_calls_above_window_size(
        self, clock: ManualClock, window_size: int, min_calls: int
    ) -> None:
        """A count window can never hold min_calls outcomes if min_calls > window_size."""
        with pytest.raises(ValueError, match="'min_calls'"):
            SlidingWindowBreaker(clock=clock, window_size=window_size, min_calls=min_calls)

    @pytest.mark.parametrize(
        "options",
        [
            {"window_size": 1, "min_calls": 1},
            {"window_size": 20, "min_calls": 20},
            {"window_duration": 0.01},
            {"window_duration": None},
            {"slow_call_duration": None},
            {"slow_call_duration": 1e-6},
            {"failure_rate_threshold": 1.0},
            {"slow_call_duration": 1.0, "slow_call_rate_threshold": 1},
            {"window_duration": 0.001},
            {"window_duration": timedelta(milliseconds=1)},
            {"failure_on": ConnectionError, "ignore": [KeyError]},
        ],
    )
    def test_edge_values_are_accepted(self, clock: ManualClock, options: dict[str, Any]) -> None:
        """Values on the edge of their range are valid."""
        breaker = SlidingWindowBreaker(clock=clock, **options)
        assert breaker.state is CLOSED


class TestSlidingReset:
    """reset() empties the window, whatever runs concurrently."""

    def test_reset_clears_fast_path_before_new_counter(self, clock: ManualClock) -> None:
        """After reset, a token from before it does not tick the new window."""
        breaker = SlidingWindowBreaker(clock=clock, bus=EventBus(), window_size=4, min_calls=2)
        for _ in range(4):
            breaker.call(lambda: None)
        token = breaker._free
        breaker.reset()
        breaker._on_success(token)
        assert breaker.snapshot().calls == 0


class TestConstructionErrors:
    """Options that cannot work together, or values that cannot work, fail at construction."""

    @pytest.mark.parametrize("size", [10, 100])
    def test_window_size_with_window_duration(self, clock: ManualClock, size: int) -> None:
        """window_size given with window_duration is refused, even at its default value."""
        with pytest.raises(ValueError, match=f"'window_size'.*window_size={size}.*=5"):
            SlidingWindowBreaker(clock=clock, window_size=size, window_duration=5)

    def test_slow_call_threshold_without_duration(self, clock: ManualClock) -> None:
        """slow_call_rate_threshold means nothing without slow_call_duration."""
        with pytest.raises(ValueError, match=r"'slow_call_rate_threshold'.*0\.5"):
            SlidingWindowBreaker(clock=clock, slow_call_rate_threshold=0.5)

    @pytest.mark.parametrize("duration", [5e-324, 1e-310, 1e-9, 0.000999])
    def test_tiny_window_duration(self, clock: ManualClock, duration: float) -> None:
        """A window under 1 ms is a ValueError naming the parameter, not a crash later."""
        with pytest.raises(ValueError, match=r"'window_duration' must be >= 0\.001"):
            SlidingWindowBreaker(clock=clock, window_duration=duration)

    def test_decorator_without_parentheses(self) -> None:
        """@SlidingWindowBreaker on a function says to write @SlidingWindowBreaker()."""
        with pytest.raises(TypeError, match=r"use @SlidingWindowBreaker\(\)"):
            SlidingWindowBreaker(succeed)  # type: ignore[misc]

    @pytest.mark.parametrize("param", ["failure_on", "ignore"])
    @pytest.mark.parametrize("value", ["Boom", b"Boom"])
    def test_strings_are_refused(self, param: str, value: Any) -> None:
        """A str or bytes is refused whole, not read as its characters."""
        with pytest.raises(TypeError, match=f"'{param}'.*string"):
            SlidingWindowBreaker(**{param: value})

    @pytest.mark.parametrize("param", ["failure_on", "ignore"])
    @pytest.mark.parametrize("value", [GeneratorExit, (Boom, KeyboardInterrupt)])
    def test_non_exception_classes_are_refused(self, param: str, value: Any) -> None:
        """A BaseException subclass outside Exception could never match."""
        with pytest.raises(ValueError, match=f"'{param}'.*never match"):
            SlidingWindowBreaker(**{param: value})


class TestDurationsAsTimedelta:
    """Every duration takes a datetime.timedelta."""

    def test_window_duration(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """window_duration=timedelta(minutes=1) is a 60 s window."""
        breaker = make(window_duration=timedelta(minutes=1), min_calls=1)
        assert "60s window" in repr(breaker)

    def test_slow_call_duration(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """slow_call_duration=timedelta(...) is that many seconds."""
        breaker = make(window_size=4, min_calls=4, slow_call_duration=timedelta(seconds=2))
        slow_call(breaker, clock, 1.5, ok=True)
        slow_call(breaker, clock, 2.0, ok=True)
        assert window(breaker) == (2, 0, 1)

    def test_open_timeout(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """open_timeout=timedelta(...) is that many seconds."""
        breaker = make(window_size=1, min_calls=1, open_timeout=timedelta(seconds=90))
        drive(breaker, "F")
        assert breaker.snapshot().retry_after == 90.0


class TestNeutralRejections:
    """resilio's rejections and misuse inside a call leave the window untouched."""

    def test_rejections_are_not_outcomes(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """An inner breaker's rejection is neither a failure nor a success in the window."""
        breaker = make(window_size=4, min_calls=2)
        inner = make(name="inner", window_size=4, min_calls=1)
        inner.force_open()
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                breaker.call(inner.call, succeed)
        assert window(breaker) == (0, 0, 0)
        assert breaker.state is CLOSED

    def test_failure_on_may_name_them(self, make: Callable[..., SlidingWindowBreaker]) -> None:
        """A rejection class named in failure_on counts as a failure."""
        breaker = make(window_size=2, min_calls=2, failure_on=(Boom, CircuitOpenError))
        inner = make(name="inner", window_size=4, min_calls=1)
        inner.force_open()
        for _ in range(2):
            with pytest.raises(CircuitOpenError):
                breaker.call(inner.call, succeed)
        assert breaker.state is OPEN

    def test_half_open_rejection(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A saturated half-open window breaker rejects with a half-open error."""
        breaker = make(name="w", window_size=1, min_calls=1, open_timeout=1)
        drive(breaker, "F")
        clock.advance(1)
        with breaker, pytest.raises(CircuitOpenError, match="'w' is half-open") as info:
            breaker.call(succeed)
        assert info.value.half_open
        assert info.value.retry_after is None


class TestTimeWindowHotPath:
    """Successes in a clean time window skip the lock, and still land in their bucket."""

    def test_successes_expire_with_their_bucket(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """Successes counted without the lock leave the window when their bucket does."""
        breaker = make(window_duration=10.0, min_calls=1)
        ok = breaker(succeed)
        for _ in range(5):
            ok()
        clock.advance(5.0)
        for _ in range(3):
            ok()
        assert window(breaker) == (8, 0, 0)
        clock.advance(5.5)  # the first five are now older than 10 s
        assert window(breaker) == (3, 0, 0)
        for _ in range(2):
            ok()
        clock.advance(5.0)
        assert window(breaker) == (2, 0, 0)

    def test_a_failure_sees_every_success_before_it(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """The rate a failure is judged by counts the successes of the hot path."""
        breaker = make(window_duration=10.0, min_calls=4, failure_rate_threshold=0.5)
        ok = breaker(succeed)
        for _ in range(3):
            ok()
        drive(breaker, "F")
        assert breaker.state is CLOSED  # 1 of 4 failed
        drive(breaker, "FF")
        assert breaker.state is OPEN  # 3 of 6 failed

    @pytest.mark.parametrize("form", ["call", "decorator"])
    @pytest.mark.parametrize("window_duration", [None, 10.0])
    def test_slow_successes_still_count_as_slow(
        self,
        make: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        window_duration: float | None,
        form: str,
    ) -> None:
        """With slow calls measured, only quick successes skip the lock; slow ones count."""
        size = {"window_size": 6} if window_duration is None else {}
        breaker = make(
            **size,
            window_duration=window_duration,
            min_calls=2,
            slow_call_duration=1.0,
            slow_call_rate_threshold=0.5,
        )
        for _ in range(4):
            slow_call(breaker, clock, 0.5, ok=True, form=form)
        assert window(breaker) == (4, 0, 0)
        slow_call(breaker, clock, 1.0, ok=True, form=form)
        assert window(breaker) == (5, 0, 1)
        assert breaker.state is CLOSED
        slow = 1
        while breaker.state is CLOSED and slow < 4:
            slow_call(breaker, clock, 2.0, ok=True, form=form)
            slow += 1
        assert breaker.state is OPEN
        # Half of the window was slow: 3 of the last 6 calls, or 4 of 8 in 10 s.
        assert slow == (3 if window_duration is None else 4)


class TestFailureIfTimed:
    """failure_if on a breaker that also times its calls."""

    @pytest.mark.parametrize("form", ["call", "decorator"])
    @pytest.mark.parametrize("window_duration", [None, 60.0])
    def test_results_are_judged_and_timed(
        self,
        make: Callable[..., SlidingWindowBreaker],
        clock: ManualClock,
        form: str,
        window_duration: float | None,
    ) -> None:
        """A bad result is a failed call; a slow one is slow too; a slow good one only slow."""
        shape: dict[str, Any] = (
            {"window_size": 10} if window_duration is None else {"window_duration": window_duration}
        )
        breaker = make(
            **shape,
            min_calls=10,
            slow_call_duration=2.0,
            failure_if=lambda result: result == "bad",
        )

        def call(result: str, took: float) -> None:
            def work() -> str:
                clock.advance(took)
                return result

            guarded = functools.partial(breaker.call, work) if form == "call" else breaker(work)
            assert guarded() == result

        call("bad", 0.0)  # failed, fast
        call("bad", 3.0)  # failed and slow
        call("ok", 3.0)  # slow only
        call("ok", 0.0)  # neither
        assert window(breaker) == (4, 2, 2)
        assert breaker.snapshot().last_failure == "bad"

    @pytest.mark.anyio
    async def test_async_judged_and_timed(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """call_async and the async decorator time and judge the same way."""
        breaker = make(
            window_size=10, min_calls=10, slow_call_duration=2.0, failure_if=lambda r: r is None
        )

        async def slow_none() -> None:
            clock.advance(2.5)

        await breaker.call_async(slow_none)
        await breaker(slow_none)()
        assert window(breaker) == (2, 2, 2)

    def test_slow_success_is_not_the_last_failure(
        self, make: Callable[..., SlidingWindowBreaker], clock: ManualClock
    ) -> None:
        """A slow probe reopens the breaker but is no failure: last_failure stays."""
        breaker = make(window_size=2, min_calls=2, slow_call_duration=1.0, success_threshold=1)
        error = Boom("down")
        breaker.record_failure(error)
        breaker.record_failure(error)
        clock.advance(30)
        slow_call(breaker, clock, 2.0, ok=True)
        assert breaker.state is OPEN
        assert breaker.snapshot().last_failure is error
