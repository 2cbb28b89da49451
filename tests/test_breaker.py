"""CircuitBreaker: the consecutive-failure and weighted-rate rules, the OPEN / HALF_OPEN /
CLOSED state machine, events, snapshots, health checks and configuration checks.

Every test drives time with a ManualClock; nothing sleeps for real.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, NoReturn

import anyio
import attrs
import pytest

from resilio import (
    BreakerSnapshot,
    CallCompleted,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    RateLimitExceeded,
    RejectedError,
    ResilioError,
    SlidingWindowBreaker,
    TokenBucket,
)
from resilio._instant import SWITCH

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class Boom(Exception):
    """The failure the guarded functions raise."""


def succeed() -> str:
    return "ok"


def fail() -> NoReturn:
    raise Boom


def drive(breaker: CircuitBreaker, outcomes: str) -> None:
    """Run one guarded call per letter: ``F`` fails with Boom, ``S`` succeeds."""
    for outcome in outcomes:
        if outcome == "F":
            with pytest.raises(Boom):
                breaker.call(fail)
        else:
            assert breaker.call(succeed) == "ok"


def ewma(outcomes: str) -> float:
    """The weighted failure rate after *outcomes*, by the rule in API.md."""
    rate = 0.0
    for outcome in outcomes:
        if outcome == "F":
            rate = 0.9 * rate + 0.1
        else:
            rate = 0.5 * rate
            if rate < 0.01:
                rate = 0.0
    return rate


def changes(events: list[Event]) -> list[tuple[CircuitState, CircuitState, str, float]]:
    """The (old, new, reason, at) of every CircuitStateChanged recorded."""
    return [(e.old, e.new, e.reason, e.at) for e in events if isinstance(e, CircuitStateChanged)]


def rejections(events: list[Event]) -> list[tuple[CircuitState, float | None, float]]:
    """The (state, retry_after, at) of every CallRejected recorded."""
    return [(e.state, e.retry_after, e.at) for e in events if isinstance(e, CallRejected)]


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., CircuitBreaker]:
    """Build a CircuitBreaker on the test's clock and bus."""

    def factory(**options: Any) -> CircuitBreaker:
        options.setdefault("name", "cb")
        return CircuitBreaker(clock=clock, bus=bus, **options)

    return factory


def open_breaker(breaker: CircuitBreaker) -> None:
    """Trip a closed breaker with caller-measured failures."""
    while breaker.state is CLOSED:
        breaker.record_failure()


def half_open(breaker: CircuitBreaker, clock: ManualClock, timeout: float = 30.0) -> None:
    """Trip the breaker, wait out its timeout and let one successful probe in."""
    open_breaker(breaker)
    clock.advance(timeout)
    breaker.call(succeed)
    assert breaker.state is HALF_OPEN


class TestDefaults:
    def test_five_consecutive_failures_trip(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """With defaults, the fifth failure in a row opens the breaker."""
        breaker = make()
        drive(breaker, "FFFF")
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 4
        drive(breaker, "F")
        assert breaker.state is OPEN
        assert changes(events) == [(CLOSED, OPEN, "consecutive_failures", 0.0)]

    def test_a_success_restarts_the_consecutive_count(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """A success between failures resets the consecutive count (rate stays under 0.5)."""
        breaker = make()
        drive(breaker, "FFFFSFFFF")
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 4

    def test_default_timeout_probes_and_threshold(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """Defaults: 30 s open, one probe at a time, three successes to close."""
        breaker = make()
        drive(breaker, "FFFFF")
        assert breaker.snapshot().retry_after == 30.0
        clock.advance(29.5)
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        clock.advance(0.5)
        with breaker:
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(succeed)
            assert info.value.retry_after is None
        drive(breaker, "S")
        assert breaker.state is HALF_OPEN
        drive(breaker, "S")
        assert breaker.state is CLOSED

    def test_default_name(self, clock: ManualClock) -> None:
        """The default name is "breaker", and it is in the repr."""
        breaker = CircuitBreaker(clock=clock)
        assert breaker.name == "breaker"
        assert "'breaker'" in repr(breaker)
        assert "closed" in repr(breaker)


class TestFailureRate:
    @pytest.mark.parametrize(
        "outcomes", ["F", "FS", "FF", "FSSS", "FSSSS", "FFSFFSF", "FFFFSSFF", "SSSF"]
    )
    def test_rate_follows_the_weighted_rule(
        self, make: Callable[..., CircuitBreaker], outcomes: str
    ) -> None:
        """failure: r = 0.9r + 0.1; success: r = 0.5r, snapping to 0 under 0.01."""
        breaker = make(failure_threshold=100, failure_rate_threshold=1.0)
        drive(breaker, outcomes)
        assert breaker.snapshot().failure_rate == ewma(outcomes)

    def test_rate_snaps_to_zero_under_one_percent(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """0.1 halves to 0.05, 0.025, 0.0125, then 0.00625 snaps to exactly 0."""
        breaker = make()
        drive(breaker, "F")
        seen = []
        for _ in range(4):
            drive(breaker, "S")
            seen.append(breaker.snapshot().failure_rate)
        assert seen == [0.05, 0.025, 0.0125, 0.0]

    def test_trips_on_rate_without_five_consecutive_failures(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """With defaults, bursts of four failures between successes trip on the rate."""
        breaker = make()
        sequence = "FFFFS" * 3 + "FFFF"
        assert "FFFFF" not in sequence
        drive(breaker, sequence[:-1])
        assert breaker.state is CLOSED
        assert breaker.snapshot().failure_rate == ewma(sequence[:-1]) <= 0.5
        drive(breaker, "F")
        assert ewma(sequence) > 0.5
        assert breaker.state is OPEN
        assert changes(events) == [(CLOSED, OPEN, "failure_rate", 0.0)]
        assert breaker.snapshot().open_reason == "failure_rate"

    def test_trips_on_rate_with_a_lower_threshold(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """With threshold 0.25, the third failure (r = 0.271) trips on the rate."""
        breaker = make(failure_rate_threshold=0.25)
        drive(breaker, "FF")
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN
        assert changes(events) == [(CLOSED, OPEN, "failure_rate", 0.0)]

    @pytest.mark.parametrize(("threshold", "outcomes"), [(0.1, "F"), (0.19, "FF")])
    def test_rate_equal_to_threshold_does_not_trip(
        self, make: Callable[..., CircuitBreaker], threshold: float, outcomes: str
    ) -> None:
        """The rate must exceed the threshold: reaching it exactly keeps the breaker closed."""
        breaker = make(failure_rate_threshold=threshold)
        drive(breaker, outcomes)
        assert breaker.snapshot().failure_rate == threshold
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN
        assert breaker.snapshot().open_reason == "failure_rate"

    def test_threshold_one_turns_the_rate_rule_off(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """failure_rate_threshold=1.0 never trips, however many failures."""
        breaker = make(failure_threshold=10_000, failure_rate_threshold=1.0)
        drive(breaker, "F" * 500)
        assert breaker.state is CLOSED
        assert breaker.snapshot().failure_rate <= 1.0

    def test_consecutive_rule_is_reported_first(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """When both rules fire on one failure, the reason is consecutive_failures."""
        breaker = make(failure_threshold=3, failure_rate_threshold=0.2)
        drive(breaker, "FFF")
        assert changes(events) == [(CLOSED, OPEN, "consecutive_failures", 0.0)]


class TestOpen:
    def test_rejects_without_calling(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """An open breaker raises CircuitOpenError and never runs the function."""
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        calls = []
        clock.advance(12.5)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(calls.append, 1)
        assert calls == []
        assert info.value.retry_after == 17.5
        assert info.value.name == "cb"
        assert isinstance(info.value, RejectedError)
        assert isinstance(info.value, ResilioError)
        assert rejections(events) == [(OPEN, 17.5, 12.5)]
        event = next(e for e in events if isinstance(e, CallRejected))
        assert event.source == "cb"

    @pytest.mark.anyio
    @pytest.mark.parametrize("colour", ["sync", "async"])
    async def test_decorator_rejects_as_call_does(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        colour: str,
    ) -> None:
        """The decorators refuse an open breaker themselves: same error, hint and event.

        Forced open, the hint is None; once the timeout has passed the call is a probe.
        """
        breaker = make(failure_threshold=1, success_threshold=1, open_timeout=30)
        ran: list[int] = []

        async def attempt() -> None:
            if colour == "sync":
                breaker(ran.append)(1)
            else:

                async def record(value: int) -> None:
                    ran.append(value)

                await breaker(record)(1)

        drive(breaker, "F")
        clock.advance(12.5)
        with pytest.raises(CircuitOpenError) as info:
            await attempt()
        assert (info.value.name, info.value.retry_after, info.value.half_open) == (
            "cb",
            17.5,
            False,
        )
        breaker.force_open()
        clock.advance(100)
        with pytest.raises(CircuitOpenError) as info:
            await attempt()
        assert info.value.retry_after is None
        assert ran == []
        assert rejections(events) == [(OPEN, 17.5, 12.5), (OPEN, None, 112.5)]
        breaker.reset()
        drive(breaker, "F")
        clock.advance(30)
        await attempt()  # the probe closes it
        assert ran == [1]
        assert breaker.state is CLOSED

    def test_decorator_announces_to_later_subscribers(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """Rejections nobody hears are not announced; a subscriber added later hears them."""
        breaker = CircuitBreaker(name="cb", failure_threshold=1, clock=clock, bus=bus)
        breaker.record_failure()
        guarded = breaker(succeed)
        for _ in range(3):  # nobody listens
            with pytest.raises(CircuitOpenError):
                guarded()
        heard: list[CallRejected] = []
        unsubscribe = bus.subscribe(CallRejected, heard.append)
        clock.advance(1)
        with pytest.raises(CircuitOpenError):
            guarded()
        assert [(e.source, e.retry_after, e.at) for e in heard] == [("cb", 29.0, 1.0)]
        unsubscribe()
        with pytest.raises(CircuitOpenError):
            guarded()
        assert len(heard) == 1

    @pytest.mark.parametrize("form", ["call", "decorator", "with"])
    def test_every_sync_form_rejects(self, make: Callable[..., CircuitBreaker], form: str) -> None:
        """call(), the decorator and the with block all reject without running."""
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        ran: list[int] = []

        def attempt() -> None:
            if form == "call":
                breaker.call(ran.append, 1)
            elif form == "decorator":
                breaker(ran.append)(1)
            else:
                with breaker:
                    ran.append(1)

        with pytest.raises(CircuitOpenError):
            attempt()
        assert ran == []

    def test_state_reads_open_until_the_next_call(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """After open_timeout the state still reads OPEN; the next call moves it to HALF_OPEN."""
        breaker = make(failure_threshold=1, open_timeout=10.0)
        drive(breaker, "F")
        clock.advance(10.0)
        assert breaker.state is OPEN
        assert breaker.snapshot().retry_after == 0.0
        clock.advance(5.0)
        assert breaker.state is OPEN
        with breaker:
            assert breaker.state is HALF_OPEN
        assert changes(events)[-1] == (OPEN, HALF_OPEN, "open_timeout_elapsed", 15.0)

    def test_rejects_until_the_timeout(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """A call just before open_timeout is rejected with the time left."""
        breaker = make(failure_threshold=1, open_timeout=8.0)
        drive(breaker, "F")
        for left in (8.0, 4.0, 1.0, 0.5):
            clock.advance(breaker.snapshot().retry_after - left)  # type: ignore[operator]
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(succeed)
            assert info.value.retry_after == left
        assert [r[1] for r in rejections(events)] == [8.0, 4.0, 1.0, 0.5]

    def test_rejection_pickles(self, make: Callable[..., CircuitBreaker]) -> None:
        """A CircuitOpenError survives pickling with its name and retry_after."""
        breaker = make(name="db", failure_threshold=1)
        drive(breaker, "F")
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(succeed)
        copy = pickle.loads(pickle.dumps(info.value))
        assert type(copy) is CircuitOpenError
        assert (copy.name, copy.retry_after) == ("db", 30.0)
        assert str(copy) == str(info.value)

    def test_error_message_names_the_breaker(self, make: Callable[..., CircuitBreaker]) -> None:
        """The rejection's message names the breaker and the time left."""
        breaker = make(name="payments", failure_threshold=1)
        drive(breaker, "F")
        with pytest.raises(CircuitOpenError, match=r"'payments'.*30"):
            breaker.call(succeed)


class TestHalfOpen:
    @pytest.mark.parametrize("limit", [1, 2, 4])
    def test_bounds_concurrent_probes(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        limit: int,
    ) -> None:
        """At most half_open_max_calls probes run at once; others are rejected."""
        breaker = make(failure_threshold=1, half_open_max_calls=limit, success_threshold=10)
        drive(breaker, "F")
        clock.advance(30)
        with contextlib.ExitStack() as stack:
            for _ in range(limit):
                stack.enter_context(breaker)
            assert breaker.snapshot().half_open_calls == limit
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(succeed)
            assert info.value.retry_after is None
            assert rejections(events) == [(HALF_OPEN, None, 30.0)]
        assert breaker.snapshot().half_open_calls == 0
        assert breaker.snapshot().consecutive_successes == limit
        drive(breaker, "S")  # the slots came back

    def test_a_finished_probe_frees_its_slot(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """Once one probe returns, another call is admitted."""
        breaker = make(failure_threshold=1, half_open_max_calls=2, success_threshold=5)
        drive(breaker, "F")
        clock.advance(30)
        with breaker:
            with breaker:
                pass
            with breaker:
                with pytest.raises(CircuitOpenError):
                    breaker.call(succeed)
        assert breaker.snapshot().consecutive_successes == 3

    @pytest.mark.parametrize("threshold", [1, 2, 3])
    def test_consecutive_successes_close(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        threshold: int,
    ) -> None:
        """success_threshold successful probes in a row close the breaker, counters cleared."""
        breaker = make(failure_threshold=1, success_threshold=threshold)
        drive(breaker, "F")
        clock.advance(30)
        for done in range(1, threshold):
            drive(breaker, "S")
            assert breaker.state is HALF_OPEN
            assert breaker.snapshot().consecutive_successes == done
        drive(breaker, "S")
        assert breaker.state is CLOSED
        snap = breaker.snapshot()
        assert (snap.consecutive_failures, snap.consecutive_successes) == (0, 0)
        assert snap.failure_rate == 0.0
        assert snap.open_reason is None
        assert changes(events)[-1] == (HALF_OPEN, CLOSED, "probe_succeeded", 30.0)

    @pytest.mark.parametrize("successes_first", [0, 1, 2])
    def test_any_failure_reopens(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        successes_first: int,
    ) -> None:
        """A failed probe re-opens the breaker for a fresh open_timeout."""
        breaker = make(failure_threshold=1, success_threshold=3, open_timeout=10.0)
        drive(breaker, "F")
        clock.advance(10)
        drive(breaker, "S" * successes_first)
        clock.advance(1)
        drive(breaker, "F")
        assert breaker.state is OPEN
        assert breaker.snapshot().retry_after == 10.0
        assert breaker.snapshot().open_reason == "probe_failed"
        assert changes(events)[-1] == (HALF_OPEN, OPEN, "probe_failed", 11.0)

    def test_closing_needs_successes_in_a_row(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """After a failed probe, the success count starts again from zero."""
        breaker = make(failure_threshold=1, success_threshold=2, open_timeout=1.0)
        drive(breaker, "F")
        clock.advance(1)
        drive(breaker, "SF")
        clock.advance(1)
        drive(breaker, "S")
        assert breaker.state is HALF_OPEN
        assert breaker.snapshot().consecutive_successes == 1
        drive(breaker, "S")
        assert breaker.state is CLOSED


class TestClassification:
    def test_ignored_errors_count_neither_way(self, make: Callable[..., CircuitBreaker]) -> None:
        """An ignored error propagates and changes no count but ``ignored``."""
        breaker = make(ignore=(KeyError,))
        drive(breaker, "FFFF")
        before = breaker.snapshot()
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["x"])
        assert breaker.snapshot() == attrs.evolve(before, ignored=before.ignored + 1)
        drive(breaker, "F")
        assert breaker.state is OPEN

    def test_ignored_errors_count_neither_way_in_half_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """An ignored error in a probe neither closes nor re-opens, and frees the slot."""
        breaker = make(ignore=KeyError)
        half_open(breaker, clock)
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["x"])
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.consecutive_successes == 1
        assert snap.half_open_calls == 0

    def test_errors_outside_failure_on_count_as_success(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """An exception not in failure_on propagates and counts as a success."""
        breaker = make(failure_on=(ConnectionError,))

        def refused() -> NoReturn:
            raise ConnectionRefusedError

        def bad_value() -> NoReturn:
            raise ValueError

        for _ in range(4):
            with pytest.raises(ConnectionRefusedError):
                breaker.call(refused)
        with pytest.raises(ValueError):
            breaker.call(bad_value)
        snap = breaker.snapshot()
        assert snap.consecutive_failures == 0
        assert snap.failure_rate == ewma("FFFFS")
        assert snap.state is CLOSED

    def test_errors_outside_failure_on_count_as_success_in_half_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A probe raising an exception outside failure_on counts towards closing."""
        breaker = make(failure_on=Boom, success_threshold=2)
        half_open(breaker, clock)
        with pytest.raises(ValueError):
            breaker.call(int, "x")
        assert breaker.state is CLOSED

    def test_ignore_wins_over_failure_on(self, make: Callable[..., CircuitBreaker]) -> None:
        """An exception in both ignore and failure_on is ignored."""
        breaker = make(failure_threshold=1, failure_on=(LookupError,), ignore=(KeyError,))
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["x"])
        assert breaker.state is CLOSED
        with pytest.raises(IndexError):
            breaker.call([].pop)
        assert breaker.state is OPEN

    def test_base_exceptions_count_neither_way(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """KeyboardInterrupt counts neither way and gives back the probe slot."""
        breaker = make(failure_threshold=1)

        def interrupt() -> NoReturn:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            breaker.call(interrupt)
        assert breaker.state is CLOSED
        drive(breaker, "F")
        clock.advance(30)
        with pytest.raises(KeyboardInterrupt):
            breaker.call(interrupt)
        assert breaker.state is HALF_OPEN
        assert breaker.snapshot().half_open_calls == 0
        assert breaker.snapshot().consecutive_successes == 0

    def test_the_users_exception_is_not_wrapped(self, make: Callable[..., CircuitBreaker]) -> None:
        """The guarded function's exception propagates as the same object."""
        breaker = make()
        error = Boom("original")

        def raise_it() -> NoReturn:
            raise error

        with pytest.raises(Boom) as info:
            breaker.call(raise_it)
        assert info.value is error


class TestForms:
    @pytest.mark.parametrize("form", ["call", "decorator", "with"])
    def test_sync_forms_count_outcomes(
        self, make: Callable[..., CircuitBreaker], form: str
    ) -> None:
        """call(), @breaker and `with breaker:` all count failures and pass results."""
        breaker = make(failure_threshold=2)

        def run(fn: Callable[[], Any]) -> Any:
            if form == "call":
                return breaker.call(fn)
            if form == "decorator":
                return breaker(fn)()
            with breaker:
                return fn()

        assert run(succeed) == "ok"
        with pytest.raises(Boom):
            run(fail)
        assert breaker.snapshot().consecutive_failures == 1
        with pytest.raises(Boom):
            run(fail)
        assert breaker.state is OPEN

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ["call_async", "decorator", "async_with"])
    async def test_async_forms_count_outcomes(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, form: str
    ) -> None:
        """call_async(), @breaker on async def and `async with` count outcomes alike."""
        breaker = make(failure_threshold=2, success_threshold=1)

        async def ok() -> str:
            return "ok"

        async def bad() -> NoReturn:
            raise Boom

        async def run(fn: Callable[[], Any]) -> Any:
            if form == "call_async":
                return await breaker.call_async(fn)
            if form == "decorator":
                return await breaker(fn)()
            async with breaker:
                return await fn()

        assert await run(ok) == "ok"
        for _ in range(2):
            with pytest.raises(Boom):
                await run(bad)
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError):
            await run(ok)
        clock.advance(30)
        assert await run(ok) == "ok"
        assert breaker.state is CLOSED

    def test_decorator_keeps_the_signature(self, make: Callable[..., CircuitBreaker]) -> None:
        """@breaker keeps the function's name and passes arguments through."""
        breaker = make()

        @breaker
        def add(a: int, b: int = 0) -> int:
            """Add."""
            return a + b

        assert add.__name__ == "add"
        assert add.__doc__ == "Add."
        assert add(1, b=2) == 3


class TestManualRecording:
    def test_record_failure_trips(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """record_failure() counts like a failed call."""
        breaker = make(failure_threshold=3)
        for _ in range(3):
            breaker.record_failure()
        assert breaker.state is OPEN
        assert changes(events) == [(CLOSED, OPEN, "consecutive_failures", 0.0)]

    def test_record_success_counts_like_a_success(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """record_success() resets the consecutive count and halves the rate."""
        breaker = make(failure_threshold=3)
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
        snap = breaker.snapshot()
        assert snap.consecutive_failures == 0
        assert snap.failure_rate == ewma("FFS")

    def test_record_in_half_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """While half-open, record_success() counts towards closing, record_failure() re-opens."""
        breaker = make(success_threshold=3)
        half_open(breaker, clock)
        breaker.record_success()
        assert breaker.snapshot().consecutive_successes == 2
        breaker.record_failure()
        assert breaker.state is OPEN
        clock.advance(30)
        breaker.call(succeed)
        breaker.record_success()
        breaker.record_success()
        assert breaker.state is CLOSED

    def test_record_while_open_changes_nothing(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """Outcomes recorded while open neither extend nor end the open period."""
        breaker = make(failure_threshold=1)
        breaker.record_failure()
        clock.advance(10)
        breaker.record_failure()
        breaker.record_success()
        snap = breaker.snapshot()
        assert snap.state is OPEN
        assert snap.retry_after == 20.0


class TestForceOpenAndReset:
    def test_force_open_stays_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """A forced-open breaker rejects with retry_after None, long past open_timeout."""
        breaker = make(open_timeout=5.0)
        clock.advance(1)
        breaker.force_open()
        assert breaker.state is OPEN
        clock.advance(1000)
        ran = []
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ran.append, 1)
        assert ran == []
        assert info.value.retry_after is None
        snap = breaker.snapshot()
        assert (snap.state, snap.retry_after, snap.open_reason) == (OPEN, None, "forced_open")
        assert changes(events) == [(CLOSED, OPEN, "forced_open", 1.0)]
        assert rejections(events) == [(OPEN, None, 1001.0)]

    def test_force_open_an_open_breaker(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """Forcing an already open breaker keeps it open past its timeout."""
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        breaker.force_open()
        clock.advance(100)
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        assert breaker.snapshot().retry_after is None

    def test_force_open_ignores_running_probes(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A probe that succeeds after force_open() does not count."""
        breaker = make(success_threshold=1)
        open_breaker(breaker)
        clock.advance(30)
        with breaker:
            breaker.force_open()
        assert breaker.state is OPEN

    def test_reset_closes_and_clears(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """reset() closes a forced-open breaker and clears its counts, not the totals."""
        breaker = make()
        drive(breaker, "FFF")
        breaker.force_open()
        clock.advance(2)
        breaker.reset()
        snap = breaker.snapshot()
        assert snap == BreakerSnapshot(
            name="cb",
            state=CLOSED,
            consecutive_failures=0,
            consecutive_successes=0,
            failure_rate=0.0,
            half_open_calls=0,
            last_change=2.0,
            open_reason=None,
            retry_after=None,
            open_timeout=snap.open_timeout,
            last_failure=None,
            succeeded=0,
            failed=3,
            ignored=0,
            rejected=0,
            transitions=2,
        )
        assert changes(events) == [(CLOSED, OPEN, "forced_open", 0.0), (OPEN, CLOSED, "reset", 2.0)]
        assert breaker.call(succeed) == "ok"
        drive(breaker, "FFFF")
        assert breaker.state is CLOSED

    def test_reset_from_half_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """reset() closes a half-open breaker."""
        breaker = make()
        half_open(breaker, clock)
        breaker.reset()
        assert breaker.state is CLOSED
        assert changes(events)[-1] == (HALF_OPEN, CLOSED, "reset", 30.0)

    def test_reset_while_closed_clears_counters(
        self, make: Callable[..., CircuitBreaker], events: list[Event]
    ) -> None:
        """reset() on a closed breaker clears its counters without an event."""
        breaker = make()
        drive(breaker, "FFFF")
        breaker.reset()
        snap = breaker.snapshot()
        assert (snap.consecutive_failures, snap.failure_rate) == (0, 0.0)
        assert changes(events) == []
        drive(breaker, "FFFF")
        assert breaker.state is CLOSED

    def test_reset_ignores_calls_admitted_before(self, make: Callable[..., CircuitBreaker]) -> None:
        """A call admitted before reset() that fails afterwards is not counted."""
        breaker = make(failure_threshold=1)

        def fail_after_reset() -> NoReturn:
            breaker.reset()
            raise Boom

        with pytest.raises(Boom):
            breaker.call(fail_after_reset)
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 0

    def test_reset_ignores_probes_admitted_before(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A probe admitted before reset() that fails afterwards does not re-open."""
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        clock.advance(30)

        def probe() -> NoReturn:
            with breaker:
                breaker.reset()
                raise Boom

        with pytest.raises(Boom):
            probe()
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 0


class TestSnapshot:
    def test_snapshot_is_frozen(self, make: Callable[..., CircuitBreaker]) -> None:
        """A snapshot cannot be modified."""
        snap = make().snapshot()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            snap.state = OPEN  # type: ignore[misc]

    def test_snapshot_is_a_copy(self, make: Callable[..., CircuitBreaker]) -> None:
        """A snapshot keeps its values when the breaker moves on."""
        breaker = make()
        drive(breaker, "FF")
        snap = breaker.snapshot()
        drive(breaker, "FFF")
        assert snap.state is CLOSED
        assert snap.consecutive_failures == 2
        assert breaker.snapshot().state is OPEN

    def test_snapshot_in_every_state(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """The snapshot reports state, counters, last change, reason and retry_after."""
        breaker = make(name="db", success_threshold=3, half_open_max_calls=2)
        clock.advance(1)
        drive(breaker, "FF")
        snap = breaker.snapshot()
        assert snap.name == "db"
        assert (snap.state, snap.consecutive_failures, snap.failure_rate) == (
            CLOSED,
            2,
            ewma("FF"),
        )
        assert (snap.last_change, snap.open_reason, snap.retry_after) == (0.0, None, None)
        drive(breaker, "FFF")
        clock.advance(4)
        snap = breaker.snapshot()
        assert (snap.state, snap.last_change, snap.open_reason, snap.retry_after) == (
            OPEN,
            1.0,
            "consecutive_failures",
            26.0,
        )
        clock.advance(26)
        with breaker:
            drive(breaker, "S")
            snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert (snap.consecutive_successes, snap.half_open_calls) == (1, 1)
        assert (snap.last_change, snap.retry_after) == (31.0, None)
        assert snap.open_reason == "consecutive_failures"


class TestEvents:
    def test_a_whole_cycle(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, events: list[Event]
    ) -> None:
        """Each transition and rejection is published once, with source and clock time."""
        breaker = make(name="svc", failure_threshold=2, success_threshold=2, open_timeout=10)
        clock.advance(1)
        drive(breaker, "FF")
        clock.advance(3)
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        clock.advance(7)
        drive(breaker, "F")
        clock.advance(10)
        drive(breaker, "S")
        clock.advance(1)
        drive(breaker, "S")
        assert [e for e in events if not isinstance(e, CallCompleted)] == [
            CircuitStateChanged(
                source="svc", at=1.0, old=CLOSED, new=OPEN, reason="consecutive_failures"
            ),
            CallRejected(source="svc", at=4.0, state=OPEN, retry_after=7.0),
            CircuitStateChanged(
                source="svc", at=11.0, old=OPEN, new=HALF_OPEN, reason="open_timeout_elapsed"
            ),
            CircuitStateChanged(
                source="svc", at=11.0, old=HALF_OPEN, new=OPEN, reason="probe_failed"
            ),
            CircuitStateChanged(
                source="svc", at=21.0, old=OPEN, new=HALF_OPEN, reason="open_timeout_elapsed"
            ),
            CircuitStateChanged(
                source="svc", at=22.0, old=HALF_OPEN, new=CLOSED, reason="probe_succeeded"
            ),
        ]

    def test_a_raising_handler_does_not_break_the_breaker(
        self, make: Callable[..., CircuitBreaker], bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A handler that raises is logged; the breaker still trips and rejects."""

        def broken(event: Event) -> None:
            raise RuntimeError("handler bug")

        bus.subscribe(Event, broken)
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        assert breaker.state is OPEN
        assert "handler bug" in caplog.text

    def test_publishes_on_the_default_bus(self, clock: ManualClock) -> None:
        """Without bus=, events go to resilio.default_bus()."""
        from resilio import default_bus

        seen: list[Event] = []
        unsubscribe = default_bus().subscribe(CircuitStateChanged, seen.append)
        try:
            breaker = CircuitBreaker(name="default-bus-test", clock=clock)
            breaker.force_open()
        finally:
            unsubscribe()
        assert [(e.source, e.reason) for e in seen] == [("default-bus-test", "forced_open")]


class TestStaleOutcomes:
    def test_failure_after_reopening_is_ignored(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A call admitted while closed that fails once the breaker is half-open is ignored."""
        breaker = make(success_threshold=3)

        def slow_failure() -> NoReturn:
            open_breaker(breaker)
            clock.advance(30)
            breaker.call(succeed)  # a probe: now HALF_OPEN
            raise Boom

        with pytest.raises(Boom):
            breaker.call(slow_failure)
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.consecutive_successes == 1

    def test_success_after_reopening_is_ignored(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A stale success does not count towards closing a half-open breaker."""
        breaker = make(success_threshold=2)
        with breaker:
            half_open(breaker, clock)
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.consecutive_successes == 1

    def test_failure_from_an_earlier_closed_period_is_ignored(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A failure admitted in one closed period does not count in the next one."""
        breaker = make(failure_threshold=1, success_threshold=1)

        def outlive_a_cycle() -> NoReturn:
            breaker.record_failure()
            clock.advance(30)
            breaker.call(succeed)  # closes again
            raise Boom

        with pytest.raises(Boom):
            breaker.call(outlive_a_cycle)
        assert breaker.state is CLOSED
        assert breaker.snapshot().consecutive_failures == 0

    def test_stale_failure_while_open_keeps_the_timeout(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A stale failure while open does not restart the open timeout."""
        breaker = make()

        def outlive_the_closed_period() -> NoReturn:
            with breaker:
                open_breaker(breaker)
                clock.advance(10)
                raise Boom

        with pytest.raises(Boom):
            outlive_the_closed_period()
        assert breaker.snapshot().retry_after == 20.0


class TestHungProbe:
    def test_a_new_probe_after_another_timeout(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A probe silent for open_timeout is presumed hung; its late failure is ignored."""
        breaker = make(failure_threshold=1, open_timeout=10.0, success_threshold=2)
        drive(breaker, "F")
        clock.advance(10)

        def hung_probe() -> NoReturn:  # admitted at t=10
            clock.advance(9.5)
            with pytest.raises(CircuitOpenError):
                breaker.call(succeed)
            clock.advance(0.5)
            drive(breaker, "S")  # a fresh probe at t=20
            assert breaker.snapshot().consecutive_successes == 1
            raise Boom

        with pytest.raises(Boom):
            breaker.call(hung_probe)
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.consecutive_successes == 1
        assert snap.half_open_calls == 0
        drive(breaker, "S")
        assert breaker.state is CLOSED

    def test_late_success_of_a_hung_probe_is_ignored(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A hung probe's late success does not count towards closing."""
        breaker = make(failure_threshold=1, open_timeout=10.0, success_threshold=2)
        drive(breaker, "F")
        clock.advance(10)
        with contextlib.ExitStack() as stack:
            stack.enter_context(breaker)  # the hung probe, admitted at t=10
            clock.advance(10)
            stack.enter_context(breaker)  # its replacement at t=20
            with pytest.raises(CircuitOpenError):
                breaker.call(succeed)
        # Both returned successfully, but only the replacement counts.
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.consecutive_successes == 1
        assert snap.half_open_calls == 0

    @pytest.mark.anyio
    async def test_late_outcome_does_not_free_the_new_probes_slot(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """When the hung probe returns first, the replacement still holds the only slot."""
        breaker = make(failure_threshold=1, open_timeout=10.0, success_threshold=1)
        drive(breaker, "F")
        clock.advance(10)
        release_hung, release_new = anyio.Event(), anyio.Event()

        async def probe(release: anyio.Event) -> None:
            async with breaker:
                await release.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, release_hung)
            await anyio.wait_all_tasks_blocked()
            clock.advance(10)
            tg.start_soon(probe, release_new)
            await anyio.wait_all_tasks_blocked()
            release_hung.set()
            await anyio.wait_all_tasks_blocked()
            assert breaker.state is HALF_OPEN
            assert breaker.snapshot().half_open_calls == 1
            with pytest.raises(CircuitOpenError):
                breaker.call(succeed)
            release_new.set()
        assert breaker.state is CLOSED


@pytest.fixture
def probe_log() -> list[str]:
    """A record of health-check probe calls."""
    return []


async def settle(clock: ManualClock) -> None:
    """Let every task run until the health-check task sleeps on the clock again."""
    with anyio.fail_after(5):
        while True:
            await anyio.wait_all_tasks_blocked()
            if clock.sleepers:
                return
            await anyio.sleep(0.001)  # a sync probe is still running in its thread


async def tick(clock: ManualClock, seconds: float) -> None:
    """Advance the clock and let the health-check task act on it."""
    clock.advance(seconds)
    await settle(clock)


def make_probe(kind: str, result: Any, log: list[str]) -> Callable[[], Any]:
    """A sync or async probe that logs each call and returns or raises *result*."""

    def outcome() -> Any:
        log.append("probe")
        if isinstance(result, BaseException):
            raise result
        return result

    if kind == "sync":
        return outcome

    async def probe() -> Any:
        await anyio.lowlevel.checkpoint()
        return outcome()

    return probe


@pytest.mark.anyio
class TestHealthCheck:
    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.parametrize("result", [True, None, "up"])
    async def test_a_healthy_probe_half_opens_early(
        self,
        *,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        probe_log: list[str],
        kind: str,
        result: Any,
    ) -> None:
        """A probe that returns (anything but False) moves an open breaker to HALF_OPEN."""
        breaker = make(failure_threshold=1, open_timeout=30.0)
        drive(breaker, "F")
        async with breaker.health_check(make_probe(kind, result, probe_log), interval=2.0):
            await settle(clock)
            await tick(clock, 1.0)
            assert probe_log == []
            await tick(clock, 1.0)
            assert probe_log == ["probe"]
            assert breaker.state is HALF_OPEN
            assert changes(events)[-1] == (OPEN, HALF_OPEN, "health_check", 2.0)
            await tick(clock, 2.0)
            assert probe_log == ["probe"]  # no probing while half-open
        assert breaker.call(succeed) == "ok"
        assert breaker.snapshot().consecutive_successes == 1

    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.parametrize("result", [False, ConnectionError("down"), Boom()])
    async def test_an_unhealthy_probe_keeps_it_open(
        self,
        *,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        events: list[Event],
        probe_log: list[str],
        kind: str,
        result: Any,
    ) -> None:
        """A probe that raises or returns False leaves the breaker open; it is tried again."""
        breaker = make(failure_threshold=1, open_timeout=30.0)
        drive(breaker, "F")
        async with breaker.health_check(make_probe(kind, result, probe_log), interval=1.0):
            await settle(clock)
            for _ in range(3):
                await tick(clock, 1.0)
        assert probe_log == ["probe"] * 3
        assert breaker.state is OPEN
        assert breaker.snapshot().retry_after == 27.0
        assert [c[2] for c in changes(events)] == ["consecutive_failures"]

    async def test_probing_stops_when_the_probe_recovers(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, probe_log: list[str]
    ) -> None:
        """Failing probes keep it open until the first healthy one."""
        breaker = make(failure_threshold=1)
        drive(breaker, "F")
        healthy = [False, False, True]

        async def probe() -> bool:
            probe_log.append("probe")
            return healthy[len(probe_log) - 1]

        async with breaker.health_check(probe, interval=1.0):
            await settle(clock)
            await tick(clock, 1.0)
            await tick(clock, 1.0)
            assert breaker.state is OPEN
            await tick(clock, 1.0)
            assert breaker.state is HALF_OPEN
        assert len(probe_log) == 3

    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_no_probes_while_closed(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        probe_log: list[str],
        kind: str,
    ) -> None:
        """The probe is never called while the breaker is closed."""
        breaker = make()
        async with breaker.health_check(make_probe(kind, True, probe_log), interval=1.0):
            await settle(clock)
            for _ in range(5):
                await tick(clock, 1.0)
        assert probe_log == []
        assert breaker.state is CLOSED

    async def test_no_probes_while_forced_open(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        probe_log: list[str],
    ) -> None:
        """A forced-open breaker is never probed and stays open."""
        breaker = make()
        breaker.force_open()
        async with breaker.health_check(make_probe("async", True, probe_log), interval=1.0):
            await settle(clock)
            for _ in range(5):
                await tick(clock, 1.0)
        assert probe_log == []
        assert breaker.state is OPEN

    async def test_probing_starts_when_it_opens(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        probe_log: list[str],
    ) -> None:
        """A breaker that trips inside the block is probed at the next interval."""
        breaker = make(failure_threshold=1)
        async with breaker.health_check(make_probe("async", True, probe_log), interval=1.0):
            await settle(clock)
            await tick(clock, 1.0)
            drive(breaker, "F")
            await tick(clock, 1.0)
            assert probe_log == ["probe"]
            assert breaker.state is HALF_OPEN

    async def test_the_task_stops_with_the_block(
        self,
        make: Callable[..., CircuitBreaker],
        clock: ManualClock,
        probe_log: list[str],
    ) -> None:
        """Leaving the block stops the health-check task."""
        breaker = make(failure_threshold=1)
        async with breaker.health_check(make_probe("async", True, probe_log), interval=1.0):
            await settle(clock)
            assert clock.sleepers == 1
        assert clock.sleepers == 0
        drive(breaker, "F")
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        assert probe_log == []
        assert breaker.state is OPEN

    async def test_the_task_stops_when_the_block_raises(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """An error in the block propagates and stops the health-check task."""
        breaker = make()

        async def fail_inside() -> NoReturn:
            async with breaker.health_check(lambda: True, interval=1.0):
                await settle(clock)
                raise Boom

        with pytest.raises(Boom):
            await fail_inside()
        assert clock.sleepers == 0

    @pytest.mark.parametrize(
        ("probe", "interval", "error", "param"),
        [
            (None, 1.0, TypeError, "probe"),
            ("probe", 1.0, TypeError, "probe"),
            (succeed, 0, ValueError, "interval"),
            (succeed, -1.0, ValueError, "interval"),
            (succeed, math.nan, ValueError, "interval"),
            (succeed, math.inf, ValueError, "interval"),
            (succeed, "1", TypeError, "interval"),
        ],
    )
    async def test_bad_arguments(
        self,
        make: Callable[..., CircuitBreaker],
        probe: Any,
        interval: Any,
        error: type[Exception],
        param: str,
    ) -> None:
        """health_check() rejects a non-callable probe and a bad interval."""
        breaker = make()
        with pytest.raises(error, match=f"'{param}'"):
            async with breaker.health_check(probe, interval=interval):
                pass


INT_PARAMS = ["failure_threshold", "success_threshold", "half_open_max_calls"]
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
    (0.0, ValueError),
    (-0.5, ValueError),
    (1.01, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    ("0.5", TypeError),
    (True, TypeError),
    (None, TypeError),
]
BAD_DURATIONS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1.0, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    ("30", TypeError),
    (True, TypeError),
    (None, TypeError),
]
BAD_EXCEPTION_SETS: list[tuple[Any, type[Exception]]] = [
    (42, TypeError),
    ("ValueError", TypeError),
    ((ValueError, int), TypeError),
    ((ValueError, "KeyError"), TypeError),
    ((ValueError(),), TypeError),
    (None, TypeError),
]
BAD_CONFIGS: list[tuple[str, Any, type[Exception]]] = [
    *[(param, value, error) for param in INT_PARAMS for value, error in BAD_INTS],
    *[("failure_rate_threshold", value, error) for value, error in BAD_RATES],
    *[("open_timeout", value, error) for value, error in BAD_DURATIONS],
    *[
        (param, value, error)
        for param in ("failure_on", "ignore")
        for value, error in BAD_EXCEPTION_SETS
    ],
    ("name", "", ValueError),
    ("name", 5, TypeError),
    ("name", None, TypeError),
    ("clock", object(), TypeError),
    ("clock", None, TypeError),
    ("bus", object(), TypeError),
]


class TestConfiguration:
    @pytest.mark.parametrize(("param", "value", "error"), BAD_CONFIGS)
    def test_bad_values_are_rejected(
        self, clock: ManualClock, param: str, value: Any, error: type[Exception]
    ) -> None:
        """Each bad constructor argument fails at once, naming the parameter."""
        options: dict[str, Any] = {"clock": clock, param: value}
        with pytest.raises(error, match=f"'{param}'"):
            CircuitBreaker(**options)

    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("failure_threshold", 0),
            ("failure_rate_threshold", 1.5),
            ("open_timeout", -2.5),
            ("open_timeout", math.nan),
        ],
    )
    def test_message_shows_the_value(self, clock: ManualClock, param: str, value: Any) -> None:
        """The error message also shows the bad value."""
        with pytest.raises(ValueError) as info:
            CircuitBreaker(clock=clock, **{param: value})
        assert repr(value) in str(info.value)

    @pytest.mark.parametrize(
        "options",
        [
            {"failure_threshold": 1},
            {"failure_rate_threshold": 1.0},
            {"failure_rate_threshold": 1},
            {"failure_rate_threshold": 1e-9},
            {"success_threshold": 1},
            {"open_timeout": 1e-3},
            {"open_timeout": 1},
            {"half_open_max_calls": 1},
            {"failure_on": ConnectionError},
            {"failure_on": [ConnectionError, TimeoutError]},
            {"ignore": KeyError},
            {"ignore": ()},
            {"name": "x"},
        ],
    )
    def test_edge_values_are_accepted(self, clock: ManualClock, options: dict[str, Any]) -> None:
        """Values on the edge of their range are valid."""
        breaker = CircuitBreaker(clock=clock, **options)
        assert breaker.state is CLOSED


class TestPredicates:
    """``failure_on`` and ``ignore`` also take a predicate on the exception."""

    def test_failure_on_predicate(self, clock: ManualClock) -> None:
        """Only exceptions the predicate accepts count as failures."""
        breaker = CircuitBreaker(
            clock=clock,
            failure_threshold=2,
            failure_on=lambda exc: isinstance(exc, OSError) and exc.errno == 503,
        )
        for _ in range(3):
            with pytest.raises(OSError):
                breaker.call(_raise, OSError(404, "not found"))
        assert breaker.state is CircuitState.CLOSED
        for _ in range(2):
            with pytest.raises(OSError):
                breaker.call(_raise, OSError(503, "unavailable"))
        assert breaker.state is CircuitState.OPEN

    def test_ignore_predicate(self, clock: ManualClock) -> None:
        """Exceptions the ignore predicate accepts count neither way."""
        breaker = CircuitBreaker(
            clock=clock, failure_threshold=1, ignore=lambda exc: "ignored" in str(exc)
        )
        with pytest.raises(ValueError):
            breaker.call(_raise, ValueError("ignored"))
        assert breaker.state is CircuitState.CLOSED
        with pytest.raises(ValueError):
            breaker.call(_raise, ValueError("counted"))
        assert breaker.state is CircuitState.OPEN


def _raise(exc: BaseException) -> None:
    raise exc


class TestOverlappingCalls:
    """The decorator reports every outcome, even when calls overlap."""

    @pytest.mark.anyio
    async def test_success_after_overlapping_failure_is_counted(self, clock: ManualClock) -> None:
        """A call that started clean and succeeds after another failed resets the count."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), failure_threshold=2)
        release = anyio.Event()

        @breaker
        async def slow_success() -> None:
            await release.wait()

        @breaker
        async def afail() -> None:
            raise Boom

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(slow_success)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(Boom):
                await afail()
            release.set()
        assert breaker.snapshot().consecutive_failures == 0
        with pytest.raises(Boom):
            await afail()
        assert breaker.state is CLOSED

    def test_sync_success_after_overlapping_failure_is_counted(self, clock: ManualClock) -> None:
        """The same holds for a sync function running in another thread."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), failure_threshold=2)
        started, release = threading.Event(), threading.Event()

        @breaker
        def slow_success() -> None:
            started.set()
            release.wait(5)

        worker = threading.Thread(target=slow_success)
        worker.start()
        assert started.wait(5)
        with pytest.raises(Boom):
            breaker.call(fail)
        release.set()
        worker.join(5)
        assert breaker.snapshot().consecutive_failures == 0


class TestHealthCheckGeneration:
    """A probe answers only for the open period it was started in."""

    @pytest.mark.anyio
    async def test_stale_probe_does_not_half_open_a_later_period(self, clock: ManualClock) -> None:
        """A probe from an earlier open period that returns late changes nothing."""
        breaker = CircuitBreaker(
            clock=clock, bus=EventBus(), failure_threshold=1, success_threshold=1, open_timeout=10
        )
        probe_may_return = anyio.Event()
        probes = 0

        async def probe() -> bool:
            nonlocal probes
            probes += 1
            if probes == 1:
                await probe_may_return.wait()
                return True
            await anyio.sleep_forever()
            return False  # pragma: no cover

        with pytest.raises(Boom):
            breaker.call(fail)
        async with breaker.health_check(probe, interval=1):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1)
            await anyio.wait_all_tasks_blocked()
            assert probes == 1
            clock.advance(10)
            breaker.call(lambda: None)  # half-open, then closed by one success
            with pytest.raises(Boom):
                breaker.call(fail)  # open again: a new period
            probe_may_return.set()
            await anyio.wait_all_tasks_blocked()
            assert breaker.state is OPEN
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: None)

    @pytest.mark.anyio
    async def test_interval_takes_a_timedelta(self, clock: ManualClock) -> None:
        """health_check(interval=timedelta(...)) probes at that interval."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus(), failure_threshold=1)
        breaker.record_failure()
        probed: list[float] = []

        async def probe() -> None:
            probed.append(clock.monotonic())

        async with breaker.health_check(probe, interval=timedelta(seconds=2)):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1)
            await anyio.wait_all_tasks_blocked()
            assert probed == []
            clock.advance(1)
            await anyio.wait_all_tasks_blocked()
        assert probed == [2.0]
        assert breaker.state is HALF_OPEN

    @pytest.mark.anyio
    async def test_interval_is_checked(self, clock: ManualClock) -> None:
        """A bad interval names the parameter."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())
        with pytest.raises(ValueError, match="'interval'"):
            async with breaker.health_check(lambda: None, interval=timedelta(0)):
                pass  # pragma: no cover


class TestPredicateErrors:
    """A failure_on or ignore predicate that raises does not wedge the breaker."""

    def test_raising_predicate_counts_a_failure_and_keeps_the_error(
        self, clock: ManualClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The caller sees its own exception; the failure is counted."""

        def predicate(exc: BaseException) -> bool:
            raise RuntimeError("bad predicate")

        breaker = CircuitBreaker(
            clock=clock, bus=EventBus(), failure_on=predicate, failure_threshold=1
        )
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.state is OPEN
        assert "failure_on/ignore raised" in caplog.text


class TestHalfOpenRejection:
    """A half-open breaker with its probe slots taken says so."""

    def test_message_and_retry_after(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """The rejection says half-open, not open, and gives no time hint."""
        breaker = make(name="db", failure_threshold=1, open_timeout=5)
        breaker.record_failure()
        clock.advance(5)
        with breaker, pytest.raises(CircuitOpenError) as info:
            breaker.call(succeed)
        error = info.value
        assert error.half_open
        assert error.retry_after is None
        assert str(error) == "'db' is half-open and its probe slots are taken"

    def test_open_rejection_is_not_half_open(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """An open breaker's rejection says open and gives the time left."""
        breaker = make(name="db", failure_threshold=1, open_timeout=5)
        breaker.record_failure()
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(succeed)
        assert not info.value.half_open
        assert str(info.value) == "'db' is open; retry after 5.000s"

    @pytest.mark.anyio
    async def test_async_half_open_rejection(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """``async with`` on a saturated half-open breaker raises the same rejection."""
        breaker = make(failure_threshold=1, open_timeout=5)
        breaker.record_failure()
        clock.advance(5)
        async with breaker:
            with pytest.raises(CircuitOpenError, match="half-open") as info:
                async with breaker:
                    pass  # pragma: no cover
        assert info.value.half_open


class TestNeutralRejections:
    """resilio's own rejections inside a guarded call count neither way by default."""

    def test_inner_breaker_rejection_does_not_trip(
        self, make: Callable[..., CircuitBreaker]
    ) -> None:
        """An open inner breaker's CircuitOpenError does not trip the outer breaker."""
        outer = make(name="outer", failure_threshold=2)
        inner = make(name="inner", failure_threshold=1)
        inner.force_open()
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                outer.call(inner.call, succeed)
        assert outer.state is CLOSED

    def test_rejecting_bucket_inside_does_not_trip(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A reject=True bucket's RateLimitExceeded counts neither way."""
        outer = make(failure_threshold=2)
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=EventBus())
        outer.call(bucket.call, succeed)
        for _ in range(5):
            with pytest.raises(RateLimitExceeded):
                outer.call(bucket.call, succeed)
        assert outer.state is CLOSED

    def test_rejections_are_not_successes_either(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """With failure_on=(ConnectionError,), rejections do not hide real failures."""
        breaker = make(failure_threshold=3, failure_on=(ConnectionError,))
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=EventBus())

        def down() -> None:
            raise ConnectionError

        bucket.try_acquire()
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(down)
            with pytest.raises(RateLimitExceeded):
                breaker.call(bucket.call, succeed)
        assert breaker.snapshot().consecutive_failures == 2
        with pytest.raises(ConnectionError):
            breaker.call(down)
        assert breaker.state is OPEN

    @pytest.mark.parametrize(
        "named",
        [
            RateLimitExceeded,
            RejectedError,
            (KeyError, RejectedError),
            [RateLimitExceeded],
            frozenset({RateLimitExceeded}),  # any iterable of types names them too
        ],
    )
    def test_failure_on_may_name_them(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock, named: Any
    ) -> None:
        """A rejection class (or a base below ResilioError) named in failure_on counts."""
        breaker = make(failure_threshold=2, failure_on=named)
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=EventBus())
        bucket.try_acquire()
        for _ in range(2):
            with pytest.raises(RateLimitExceeded):
                breaker.call(bucket.call, succeed)
        assert breaker.state is OPEN

    @pytest.mark.parametrize("named", [Exception, ResilioError, lambda exc: True])
    def test_broad_failure_on_does_not_name_them(
        self, make: Callable[..., CircuitBreaker], named: Any
    ) -> None:
        """Exception, ResilioError or a predicate do not name rejections explicitly."""
        breaker = make(failure_threshold=1, failure_on=named)
        inner = make(name="inner")
        inner.force_open()
        with pytest.raises(CircuitOpenError):
            breaker.call(inner.call, succeed)
        assert breaker.state is CLOSED

    def test_neutral_rejection_gives_back_the_probe_slot(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """A rejection inside a probe frees its slot and leaves the breaker half-open."""
        breaker = make(failure_threshold=1, open_timeout=5)
        breaker.record_failure()
        clock.advance(5)
        inner = make(name="inner")
        inner.force_open()
        with pytest.raises(CircuitOpenError):
            breaker.call(inner.call, succeed)
        snap = breaker.snapshot()
        assert snap.state is HALF_OPEN
        assert snap.half_open_calls == 0
        breaker.call(succeed)
        assert breaker.snapshot().consecutive_successes == 1

    @pytest.mark.anyio
    async def test_async_forms_are_neutral_too(self, make: Callable[..., CircuitBreaker]) -> None:
        """Decorator, ``async with`` and call_async() all leave rejections uncounted."""
        breaker = make(failure_threshold=1)
        inner = make(name="inner")
        inner.force_open()

        @breaker
        async def guarded() -> None:
            await inner.call_async(asucceed)

        with pytest.raises(CircuitOpenError):
            await guarded()
        with pytest.raises(CircuitOpenError):
            async with breaker:
                await inner.call_async(asucceed)
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(inner.call_async, asucceed)
        assert breaker.state is CLOSED


async def asucceed() -> str:
    return "ok"


class TestConstructionErrors:
    """Mistakes in configuration fail at construction, naming what is wrong."""

    def test_huge_number_names_the_parameter(self) -> None:
        """An int too large for a float is a ValueError naming the parameter."""
        with pytest.raises(ValueError, match="'open_timeout'"):
            CircuitBreaker(open_timeout=10**400)

    def test_decorator_without_parentheses(self) -> None:
        """@CircuitBreaker on a function says to write @CircuitBreaker()."""
        with pytest.raises(TypeError, match=r"use @CircuitBreaker\(\)"):
            CircuitBreaker(succeed)  # type: ignore[misc]

    @pytest.mark.parametrize("param", ["failure_on", "ignore"])
    @pytest.mark.parametrize("value", ["ConnectionError", b"ConnectionError"])
    def test_strings_are_refused(self, param: str, value: Any) -> None:
        """A str or bytes is refused whole, not read as its characters."""
        with pytest.raises(TypeError, match=f"'{param}'.*string"):
            CircuitBreaker(**{param: value})

    @pytest.mark.parametrize("param", ["failure_on", "ignore"])
    @pytest.mark.parametrize("value", [KeyboardInterrupt, (ValueError, SystemExit)])
    def test_non_exception_classes_are_refused(self, param: str, value: Any) -> None:
        """A BaseException subclass outside Exception could never match."""
        with pytest.raises(ValueError, match=f"'{param}'.*never match"):
            CircuitBreaker(**{param: value})

    def test_open_timeout_takes_a_timedelta(
        self, make: Callable[..., CircuitBreaker], clock: ManualClock
    ) -> None:
        """open_timeout=timedelta(...) is that many seconds."""
        breaker = make(failure_threshold=1, open_timeout=timedelta(minutes=1))
        breaker.record_failure()
        assert breaker.snapshot().retry_after == 60.0
        clock.advance(59.5)
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        clock.advance(0.5)
        breaker.call(succeed)
        assert breaker.state is HALF_OPEN

    def test_zero_timedelta_is_refused(self) -> None:
        """A timedelta is checked like seconds."""
        with pytest.raises(ValueError, match="'open_timeout'"):
            CircuitBreaker(open_timeout=timedelta(0))


# -- results counted as failures, the last failure, growing open timeouts, instant mode --


class Response:
    """A stand-in for an HTTP response."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


def unavailable(response: Response) -> bool:
    return response.status == 503


BREAKER_KINDS = ["circuit", "sliding"]


@pytest.fixture(params=BREAKER_KINDS)
def make_any(
    request: pytest.FixtureRequest, clock: ManualClock, bus: EventBus
) -> Callable[..., Any]:
    """Build either breaker so that two failures in a row open it, and one success closes it."""

    def factory(**options: Any) -> Any:
        options.setdefault("name", "any")
        options.setdefault("success_threshold", 1)
        options.setdefault("open_timeout", 10.0)
        if request.param == "circuit":
            return CircuitBreaker(failure_threshold=2, clock=clock, bus=bus, **options)
        options.setdefault("window_size", 2)
        return SlidingWindowBreaker(
            min_calls=2, failure_rate_threshold=1.0, clock=clock, bus=bus, **options
        )

    return factory


@pytest.fixture
def instant_mode() -> Iterator[None]:
    """Instant mode for the test; off again afterwards, whatever happens."""
    SWITCH.push(None)
    try:
        yield
    finally:
        SWITCH.clear()


class TestFailureIf:
    """failure_if counts returned results as failures; the caller still gets them."""

    def test_decorator_and_call_count_bad_results(self, make_any: Callable[..., Any]) -> None:
        """Two 503 responses open the breaker, through the decorator and call()."""
        breaker = make_any(failure_if=unavailable)
        bad = Response(503)
        fetch = breaker(lambda: bad)
        assert fetch() is bad
        assert breaker.state is CLOSED
        assert breaker.call(lambda: bad) is bad
        assert breaker.state is OPEN
        assert breaker.snapshot().last_failure is bad

    def test_good_results_are_successes(self, make_any: Callable[..., Any]) -> None:
        """A result the predicate rejects counts as a success between two bad ones."""
        breaker = make_any(failure_if=unavailable)
        for status in [503, 200, 503, 200, 503]:
            breaker.call(Response, status)
        assert breaker.state is CLOSED

    @pytest.mark.anyio
    async def test_async_forms(self, make_any: Callable[..., Any]) -> None:
        """The async decorator and call_async judge results too."""
        breaker = make_any(failure_if=unavailable)
        bad = Response(503)

        async def fetch() -> Response:
            return bad

        assert await breaker(fetch)() is bad
        assert await breaker.call_async(fetch) is bad
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError) as info:
            await breaker(fetch)()
        assert info.value.last_failure is bad

    def test_with_block_has_no_result(self, make_any: Callable[..., Any]) -> None:
        """A with block cannot be judged: its clean exits are successes."""
        breaker = make_any(failure_if=lambda result: True)
        for _ in range(3):
            with breaker:
                pass
        assert breaker.state is CLOSED

    def test_bad_result_probe_reopens(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """A half-open probe that returns a bad result opens the breaker again."""
        breaker = make_any(failure_if=unavailable)
        breaker.record_failure()
        breaker.record_failure()
        clock.advance(10)
        assert breaker.call(Response, 503).status == 503
        assert breaker.state is OPEN
        assert breaker.snapshot().open_reason == "probe_failed"

    def test_predicate_that_raises_counts_a_failure(
        self, make_any: Callable[..., Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failure_if that raises is logged; the call counts as failed and still returns."""

        def broken(result: object) -> bool:
            raise KeyError("status")

        breaker = make_any(failure_if=broken)
        with caplog.at_level("ERROR", logger="resilio"):
            assert breaker.call(succeed) == "ok"
            assert breaker(succeed)() == "ok"
        assert breaker.state is OPEN
        assert breaker.snapshot().last_failure == "ok"
        assert "failure_if raised" in caplog.text
        assert "KeyError" in caplog.text

    def test_predicate_interrupted_gives_back_the_probe(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """A BaseException from failure_if propagates and frees the probe slot."""

        def interrupted(result: object) -> bool:
            raise KeyboardInterrupt

        breaker = make_any(failure_if=interrupted)
        breaker.record_failure()
        breaker.record_failure()
        clock.advance(10)
        with pytest.raises(KeyboardInterrupt):
            breaker.call(succeed)
        assert breaker.state is HALF_OPEN
        assert breaker.snapshot().half_open_calls == 0

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (ValueError, "failure_on"),
            ((ValueError,), "failure_on"),
            ([ValueError], "failure_on"),
            (503, "callable"),
            ("503", "callable"),
        ],
    )
    def test_refuses_what_is_not_a_predicate(
        self, make_any: Callable[..., Any], value: Any, words: str
    ) -> None:
        """Exception types or a non-callable fail at construction, naming failure_if."""
        with pytest.raises(TypeError, match="failure_if") as info:
            make_any(failure_if=value)
        assert words in str(info.value)
        assert repr(value) in str(info.value)

    def test_refuses_an_async_predicate(self, make_any: Callable[..., Any]) -> None:
        """An async predicate would never be awaited: refused at construction."""

        async def judge(result: object) -> bool:
            return True

        with pytest.raises(TypeError, match="'failure_if' must be a plain function"):
            make_any(failure_if=judge)

    def test_counts_from_threads(self, clock: ManualClock, bus: EventBus) -> None:
        """Eight threads: every bad result is counted once, every good one once."""
        breaker = SlidingWindowBreaker(
            window_size=2000, min_calls=2000, failure_if=unavailable, clock=clock, bus=bus
        )
        fetch = breaker(Response)
        start = threading.Barrier(8)

        def worker(index: int) -> None:
            start.wait()
            for call in range(200):
                status = 503 if (index + call) % 2 else 200
                (fetch if call % 3 else lambda s: breaker.call(Response, s))(status)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        snap = breaker.snapshot()
        assert (snap.calls, snap.failed_calls) == (1600, 800)


class TestLastFailure:
    """snapshot().last_failure and CircuitOpenError.last_failure."""

    def test_none_until_a_failure(self, make_any: Callable[..., Any]) -> None:
        """A new breaker, and one with successes only, has no last failure."""
        breaker = make_any()
        assert breaker.snapshot().last_failure is None
        breaker.call(succeed)
        assert breaker.snapshot().last_failure is None

    def test_rejections_carry_the_exception(self, make_any: Callable[..., Any]) -> None:
        """Each form's rejection carries the exception that last counted, traceback included."""
        breaker = make_any()
        errors = [Boom("first"), Boom("second")]
        for error in errors:
            with pytest.raises(Boom):
                breaker.call(_raise, error)
        assert breaker.snapshot().last_failure is errors[1]
        assert errors[1].__traceback__ is not None
        rejections = []
        for form in (lambda: breaker.call(succeed), breaker(succeed), lambda: _in_block(breaker)):
            with pytest.raises(CircuitOpenError) as info:
                form()
            rejections.append(info.value)
        assert all(r.last_failure is errors[1] for r in rejections)
        assert "last_failure=Boom('second')" in repr(rejections[0])

    def test_what_does_not_count_leaves_it(self, make_any: Callable[..., Any]) -> None:
        """Ignored errors, errors outside failure_on and resilio's rejections leave it."""
        breaker = make_any(failure_on=Boom, ignore=KeyError)
        first = Boom("counted")
        with pytest.raises(Boom):
            breaker.call(_raise, first)
        for error in (KeyError("ignored"), ValueError("success"), RejectedError("inner")):
            with pytest.raises(type(error)):
                breaker.call(_raise, error)
        assert breaker.snapshot().last_failure is first

    def test_stale_outcome_leaves_it(self, make_any: Callable[..., Any]) -> None:
        """A failure from a call admitted before a reset is not counted, nor kept."""
        breaker = make_any()

        def admitted_then_reset() -> None:
            with breaker:
                breaker.reset()
                raise Boom

        with pytest.raises(Boom):
            admitted_then_reset()
        assert breaker.snapshot().last_failure is None

    def test_record_failure_and_reset(self, make_any: Callable[..., Any]) -> None:
        """record_failure(x) keeps x, record_failure() keeps None, reset() clears it."""
        breaker = make_any()
        response = Response(500)
        breaker.record_failure(response)
        assert breaker.snapshot().last_failure is response
        breaker.record_failure()
        assert breaker.snapshot().last_failure is None
        breaker.record_failure(response)
        breaker.reset()
        assert breaker.snapshot().last_failure is None

    def test_half_open_rejection_carries_it(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """A rejection for want of a probe slot carries it too."""
        breaker = make_any()
        error = Boom("down")
        breaker.record_failure(error)
        breaker.record_failure(error)
        clock.advance(10)
        with breaker:
            with pytest.raises(CircuitOpenError) as info:
                breaker.call(succeed)
            assert info.value.half_open
            assert info.value.last_failure is error

    def test_kept_after_closing(self, make_any: Callable[..., Any], clock: ManualClock) -> None:
        """Recovering keeps the last failure: it is still the last one there was."""
        breaker = make_any()
        error = Boom("down")
        breaker.record_failure(error)
        breaker.record_failure(error)
        clock.advance(10)
        breaker.call(succeed)
        assert breaker.state is CLOSED
        assert breaker.snapshot().last_failure is error


class TestOpenTimeoutMax:
    """open_timeout_max: the open timeout doubles after each failed probe."""

    def reopen(self, breaker: Any, clock: ManualClock) -> float:
        """Wait out the open timeout, fail the probe; return the new retry_after."""
        clock.advance(breaker.snapshot().retry_after)
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(succeed)
        assert info.value.retry_after == breaker.snapshot().retry_after
        return float(breaker.snapshot().open_timeout)

    def test_doubles_up_to_the_maximum_and_resets_on_close(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """10, 20, 40, 60, 60 ... and 10 again once a probe closes it."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=60.0)
        open_breaker(breaker)
        assert breaker.snapshot().open_timeout == 10.0
        assert breaker.snapshot().retry_after == 10.0
        assert [self.reopen(breaker, clock) for _ in range(4)] == [20.0, 40.0, 60.0, 60.0]
        assert breaker.snapshot().retry_after == 60.0
        clock.advance(60)
        breaker.call(succeed)
        assert breaker.state is CLOSED
        assert breaker.snapshot().open_timeout == 10.0
        open_breaker(breaker)
        assert breaker.snapshot().retry_after == 10.0

    def test_events_carry_the_grown_timeout(
        self, make_any: Callable[..., Any], clock: ManualClock, events: list[Event]
    ) -> None:
        """CallRejected's retry_after follows the open timeout in force."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=25.0)
        open_breaker(breaker)
        self.reopen(breaker, clock)
        self.reopen(breaker, clock)
        assert [r[1] for r in rejections(events)] == [20.0, 25.0]

    @pytest.mark.anyio
    async def test_health_check_probe_failure_grows_it(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """A breaker half-opened by the health check doubles its timeout if the probe fails."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=60.0)
        open_breaker(breaker)
        async with breaker.health_check(_healthy, interval=1.0):
            for _ in range(100):
                if breaker.state is HALF_OPEN:
                    break
                clock.advance(1.0)
                await anyio.wait_all_tasks_blocked()
        assert breaker.state is HALF_OPEN
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.snapshot().open_timeout == 20.0

    def test_reset_brings_it_back(self, make_any: Callable[..., Any], clock: ManualClock) -> None:
        """reset() closes the breaker and the timeout starts over."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=timedelta(minutes=5))
        open_breaker(breaker)
        self.reopen(breaker, clock)
        breaker.reset()
        assert breaker.snapshot().open_timeout == 10.0

    def test_fixed_without_a_maximum(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """Without open_timeout_max a failed probe waits open_timeout again."""
        breaker = make_any(open_timeout=10.0)
        open_breaker(breaker)
        assert [self.reopen(breaker, clock) for _ in range(2)] == [10.0, 10.0]

    def test_force_open_does_not_grow_it(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """Forcing a half-open breaker open is not a failed probe."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=60.0)
        open_breaker(breaker)
        clock.advance(10)
        with breaker:
            breaker.force_open()
        assert breaker.snapshot().open_timeout == 10.0

    def test_hung_probe_waits_the_current_timeout(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """A probe is presumed hung after the open timeout now in force, not the first one."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=60.0)
        open_breaker(breaker)
        assert self.reopen(breaker, clock) == 20.0
        clock.advance(20)
        with breaker:  # the probe hangs
            clock.advance(15)
            with pytest.raises(CircuitOpenError):
                breaker.call(succeed)
            clock.advance(5)
            breaker.call(succeed)  # a fresh probe, which closes the breaker
        assert breaker.state is CLOSED

    @pytest.mark.parametrize(
        ("longest", "error"),
        [
            (5.0, ValueError),
            (timedelta(seconds=9), ValueError),
            (0.0, ValueError),
            (math.nan, ValueError),
            ("60", TypeError),
        ],
    )
    def test_refuses_bad_values(
        self, make_any: Callable[..., Any], longest: Any, error: type[Exception]
    ) -> None:
        """Below open_timeout, not positive, NaN or not a number: refused, naming it."""
        with pytest.raises(error, match="open_timeout_max"):
            make_any(open_timeout=10.0, open_timeout_max=longest)

    def test_message_names_both(self, make_any: Callable[..., Any]) -> None:
        """The message says which two options disagree, with their values."""
        with pytest.raises(ValueError, match="open_timeout") as info:
            make_any(open_timeout=10.0, open_timeout_max=5.0)
        assert "open_timeout=10.0" in str(info.value)
        assert "open_timeout_max=5.0" in str(info.value)

    def test_equal_to_open_timeout_is_fine(self, make_any: Callable[..., Any]) -> None:
        """open_timeout_max == open_timeout is accepted (it never grows)."""
        make_any(open_timeout=10.0, open_timeout_max=10.0)


@pytest.mark.usefixtures("instant_mode")
class TestInstantMode:
    """Under instant mode breakers stay closed."""

    def test_failures_never_open_it(
        self, make_any: Callable[..., Any], events: list[Event]
    ) -> None:
        """Any number of failures: every call runs, and no state change is published."""
        breaker = make_any()
        ran = []
        for _ in range(7):
            with pytest.raises(Boom):
                breaker.call(lambda: ran.append(1) or fail())
        assert breaker.state is CLOSED
        assert len(ran) == 7
        assert changes(events) == []
        assert isinstance(breaker.snapshot().last_failure, Boom)

    def test_not_on_the_brink_when_it_ends(self, make_any: Callable[..., Any]) -> None:
        """The counts start over after each trip it stops, so one failure later is not enough."""
        breaker = make_any()
        drive(breaker, "FF")
        SWITCH.clear()
        drive(breaker, "F")
        assert breaker.state is CLOSED
        drive(breaker, "F")
        assert breaker.state is OPEN

    @pytest.mark.parametrize("form", ["call", "decorator", "with"])
    def test_an_open_breaker_lets_calls_through(
        self, make_any: Callable[..., Any], clock: ManualClock, form: str
    ) -> None:
        """Opened before instant mode: calls run uncounted, and it is open again afterwards."""
        breaker = make_any()
        SWITCH.clear()
        open_breaker(breaker)
        SWITCH.push(None)
        calls = {
            "call": lambda: breaker.call(succeed),
            "decorator": breaker(succeed),
            "with": lambda: _in_block(breaker),
        }
        assert calls[form]() == "ok"
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.state is OPEN
        SWITCH.pop()
        with pytest.raises(CircuitOpenError):
            calls[form]()

    @pytest.mark.anyio
    async def test_async_forms_pass_an_open_breaker(self, make_any: Callable[..., Any]) -> None:
        """The async decorator, call_async and async with pass too."""
        breaker = make_any()
        SWITCH.clear()
        open_breaker(breaker)
        SWITCH.push(None)

        async def work() -> str:
            return "ok"

        assert await breaker(work)() == "ok"
        assert await breaker.call_async(work) == "ok"
        async with breaker:
            pass
        assert breaker.state is OPEN

    def test_forced_open_stays_forced(self, make_any: Callable[..., Any]) -> None:
        """force_open() is the test's own choice: it still rejects."""
        breaker = make_any()
        breaker.force_open()
        with pytest.raises(CircuitOpenError):
            breaker.call(succeed)
        with pytest.raises(CircuitOpenError):
            breaker(succeed)()

    def test_failed_probe_does_not_reopen(
        self, make_any: Callable[..., Any], clock: ManualClock
    ) -> None:
        """Half-open when the mode starts: a failed probe leaves it half-open, slot freed."""
        breaker = make_any(open_timeout=10.0, open_timeout_max=40.0)
        SWITCH.clear()
        open_breaker(breaker)
        SWITCH.push(None)
        clock.advance(10)
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.state is HALF_OPEN
        assert breaker.snapshot().half_open_calls == 0
        assert breaker.snapshot().open_timeout == 10.0
        breaker.call(succeed)
        assert breaker.state is CLOSED

    def test_bad_results_never_open_it(self, make_any: Callable[..., Any]) -> None:
        """failure_if's failures are stopped the same way."""
        breaker = make_any(failure_if=unavailable)
        for _ in range(5):
            breaker.call(Response, 503)
        assert breaker.state is CLOSED


async def _healthy() -> bool:
    return True


def _in_block(breaker: Any) -> str:
    with breaker:
        return succeed()
