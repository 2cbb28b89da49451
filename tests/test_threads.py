"""Both breakers under many threads: exact counters, bounded half-open admission,
no leaked probe slots, and no lock held across the protected call.

Threads start together on a Barrier and the interpreter switches threads very
often, so races show up; nothing waits on wall-clock time except generous timeouts.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    SlidingWindowBreaker,
)
from resilio._breaker import BreakerBase

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

THREADS = 8
TIMEOUT = 10.0


class Boom(Exception):
    """A failure (in failure_on)."""


class Skip(Exception):
    """An ignored error."""


class Odd(Exception):
    """Outside failure_on: counts as a success."""


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Make the interpreter switch threads every few microseconds."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def hammer(target: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``target(i)`` in *threads* threads started together; re-raise the first error."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            target(index)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    if errors:
        raise errors[0]


def guarded(breaker: BreakerBase, form: str, fn: Callable[[], Any]) -> Any:
    """Run *fn* under *breaker* through one of the three sync forms."""
    if form == "call":
        return breaker.call(fn)
    if form == "decorator":
        return breaker(fn)()
    with breaker:
        return fn()


def outcome_fn(kind: str) -> Callable[[], Any]:
    """A function that returns or raises according to *kind*."""

    def fn() -> str:
        if kind == "fail":
            raise Boom
        if kind == "ignored":
            raise Skip
        if kind == "odd":
            raise Odd
        return "ok"

    return fn


EXPECTED: dict[str, type[Exception] | None] = {
    "ok": None,
    "fail": Boom,
    "ignored": Skip,
    "odd": Odd,
}
FORMS = ("call", "decorator", "with")


def run_one(breaker: BreakerBase, kind: str, form: str) -> None:
    """One guarded call of *kind*; anything but the expected exception fails the test."""
    expected = EXPECTED[kind]
    if expected is None:
        assert guarded(breaker, form, outcome_fn(kind)) == "ok"
    else:
        with pytest.raises(expected):
            guarded(breaker, form, outcome_fn(kind))


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time (shared by every thread)."""
    return ManualClock()


class TestCounters:
    def test_successes_never_count_as_failures(self, clock: ManualClock) -> None:
        """With only successes, ignored and non-failure errors, failure counters stay 0."""
        breaker = CircuitBreaker(
            failure_threshold=1, failure_on=Boom, ignore=Skip, clock=clock, bus=EventBus()
        )

        def work(index: int) -> None:
            for i in range(1500):
                run_one(breaker, ("ok", "ignored", "odd")[i % 3], FORMS[(i + index) % 3])

        hammer(work)
        snap = breaker.snapshot()
        assert (snap.state, snap.consecutive_failures, snap.failure_rate) == (CLOSED, 0, 0.0)

    def test_every_failure_is_counted(self, clock: ManualClock) -> None:
        """Concurrent failures under a high threshold add up exactly."""
        breaker = CircuitBreaker(
            failure_threshold=10**9, failure_rate_threshold=1.0, clock=clock, bus=EventBus()
        )
        per_thread = 600

        def work(index: int) -> None:
            for i in range(per_thread):
                if i % 4 == 3:
                    breaker.record_failure()
                else:
                    run_one(breaker, "fail", FORMS[(i + index) % 3])

        hammer(work)
        total = THREADS * per_thread
        rate = 0.0
        for _ in range(total):
            rate = 0.9 * rate + 0.1
        snap = breaker.snapshot()
        assert snap.state is CLOSED
        assert snap.consecutive_failures == total
        assert snap.failure_rate == rate

    @pytest.mark.parametrize("window_duration", [None, 60.0])
    def test_sliding_window_totals_are_exact(
        self, clock: ManualClock, window_duration: float | None
    ) -> None:
        """A window big enough for every outcome counts calls and failures exactly."""
        per_thread = 1000
        kinds = ["ignored" if i % 5 == 0 else "fail" if i % 3 == 0 else "ok" for i in range(999)]
        kinds += ["odd"]
        calls = THREADS * sum(kind != "ignored" for kind in kinds)
        failures = THREADS * kinds.count("fail")
        assert len(kinds) == per_thread
        breaker = SlidingWindowBreaker(
            **({"window_size": calls} if window_duration is None else {}),
            window_duration=window_duration,
            min_calls=calls,  # only the very last outcome may judge the rate
            failure_rate_threshold=1.0,
            failure_on=Boom,
            ignore=Skip,
            clock=clock,
            bus=EventBus(),
        )

        def work(index: int) -> None:
            for i, kind in enumerate(kinds):
                run_one(breaker, kind, FORMS[(i + index) % 3])

        hammer(work)
        snap = breaker.snapshot()
        assert snap.state is CLOSED
        assert (snap.calls, snap.failed_calls, snap.slow_calls) == (calls, failures, 0)
        if window_duration is None:
            assert len(breaker._ring) == calls


def make_breaker(kind: str, clock: ManualClock, bus: EventBus, **options: Any) -> BreakerBase:
    """A CircuitBreaker, or a SlidingWindowBreaker tuned to trip as easily."""
    if kind == "ewma":
        return CircuitBreaker(clock=clock, bus=bus, **options)
    options.pop("failure_threshold", None)
    return SlidingWindowBreaker(
        window_size=4, min_calls=2, slow_call_duration=5.0, clock=clock, bus=bus, **options
    )


BREAKERS = ["ewma", "sliding"]


class TestMixedOutcomes:
    @pytest.mark.parametrize("kind", BREAKERS)
    def test_nothing_leaks_through_trips_and_recoveries(
        self, clock: ManualClock, kind: str
    ) -> None:
        """Random outcomes, trips and timeouts from many threads leave no probe slot taken."""
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        breaker = make_breaker(
            kind,
            clock,
            bus,
            failure_threshold=3,
            success_threshold=2,
            open_timeout=1.0,
            half_open_max_calls=2,
            failure_on=Boom,
            ignore=Skip,
        )
        rejected = [0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(index)
            for i in range(1500):
                if index == 0 and i % 10 == 0:
                    clock.advance(0.25)
                kind = rng.choice(["ok", "ok", "ok", "fail", "ignored", "odd"])
                try:
                    run_one(breaker, kind, FORMS[i % 3])
                except CircuitOpenError:
                    rejected[index] += 1

        hammer(work)
        assert sum(rejected) > 0
        assert breaker.snapshot().half_open_calls == 0  # type: ignore[attr-defined]
        assert any(isinstance(e, CircuitStateChanged) for e in seen)
        # It still recovers normally.
        breaker.force_open()
        breaker.reset()
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.state is OPEN
        clock.advance(1.0)
        for _ in range(2):
            breaker.call(outcome_fn("ok"))
        assert breaker.state is CLOSED


class TestHalfOpenRace:
    @pytest.mark.parametrize("kind", BREAKERS)
    @pytest.mark.parametrize("limit", [1, 3])
    def test_exactly_half_open_max_calls_run(
        self, clock: ManualClock, kind: str, limit: int
    ) -> None:
        """16 threads race into a half-open breaker: exactly half_open_max_calls get in."""
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(CircuitStateChanged, seen.append)
        breaker = make_breaker(
            kind,
            clock,
            bus,
            failure_threshold=1,
            half_open_max_calls=limit,
            success_threshold=limit,
            open_timeout=10.0,
        )
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.state is OPEN
        clock.advance(10.0)
        threads = 16
        cond = threading.Condition()
        release = threading.Event()
        entered = 0
        rejections: list[float | None] = []

        def blocking() -> str:
            nonlocal entered
            with cond:
                entered += 1
                cond.notify_all()
            assert release.wait(timeout=TIMEOUT)
            return "ok"

        def work(index: int) -> None:
            try:
                breaker.call(blocking)
            except CircuitOpenError as error:
                with cond:
                    rejections.append(error.retry_after)
                    cond.notify_all()

        def release_when_all_arrived() -> None:
            with cond:
                assert cond.wait_for(lambda: entered + len(rejections) == threads, TIMEOUT)
            release.set()

        releaser = threading.Thread(target=release_when_all_arrived)
        releaser.start()
        try:
            hammer(work, threads)
        finally:
            release.set()
            releaser.join(timeout=TIMEOUT)
        assert entered == limit
        assert rejections == [None] * (threads - limit)
        assert breaker.state is CLOSED
        reasons = [e.reason for e in seen]  # type: ignore[attr-defined]
        assert reasons[-2:] == ["open_timeout_elapsed", "probe_succeeded"]
        assert reasons.count("open_timeout_elapsed") == 1


class TestNoLockAcrossTheCall:
    @pytest.mark.parametrize("kind", BREAKERS)
    @pytest.mark.parametrize("state", [CLOSED, HALF_OPEN])
    @pytest.mark.parametrize("form", FORMS)
    def test_two_calls_run_at_once(
        self, clock: ManualClock, kind: str, state: CircuitState, form: str
    ) -> None:
        """Two threads can be inside guarded calls at the same time."""
        breaker = make_breaker(
            kind,
            clock,
            EventBus(),
            failure_threshold=1,
            half_open_max_calls=2,
            success_threshold=5,
        )
        if state is HALF_OPEN:
            breaker.force_open()
            breaker.reset()
            breaker.record_failure()
            breaker.record_failure()
            clock.advance(30.0)
        inside = threading.Barrier(2)

        def meet() -> str:
            inside.wait(timeout=5.0)  # BrokenBarrierError if the other call cannot get in
            return "ok"

        def work(index: int) -> None:
            assert guarded(breaker, form, meet) == "ok"

        hammer(work, threads=2)
        assert breaker.state is state
        if state is HALF_OPEN:
            assert breaker.snapshot().consecutive_successes == 2  # type: ignore[attr-defined]


class TestOrderedStateChanges:
    """State changes reach subscribers in the order they happened."""

    @pytest.mark.parametrize("kind", BREAKERS)
    def test_each_new_state_is_the_next_old_state(self, clock: ManualClock, kind: str) -> None:
        """Eight threads tripping, probing, resetting and forcing: the events form one chain."""
        bus = EventBus()
        seen: list[CircuitStateChanged] = []
        bus.subscribe(CircuitStateChanged, seen.append)
        breaker = make_breaker(
            kind,
            clock,
            bus,
            failure_threshold=1,
            success_threshold=1,
            open_timeout=0.5,
            half_open_max_calls=2,
            failure_on=Boom,
        )

        def work(index: int) -> None:
            rng = random.Random(index)
            for i in range(600):
                if index == 0 and i % 5 == 0:
                    clock.advance(0.25)
                roll = rng.random()
                if roll < 0.03:
                    breaker.reset()
                elif roll < 0.04:
                    breaker.force_open()
                    breaker.reset()
                else:
                    with contextlib.suppress(CircuitOpenError):
                        run_one(breaker, "fail" if roll < 0.5 else "ok", FORMS[i % 3])

        hammer(work)
        assert len(seen) > 200
        assert [e.seq for e in seen] == sorted(e.seq for e in seen)
        broken = [(a, b) for a, b in itertools.pairwise(seen) if a.new is not b.old]
        assert broken == []
        assert seen[-1].new is breaker.state

    def test_a_handler_may_change_the_state(self, clock: ManualClock) -> None:
        """A handler that resets the breaker it hears from sees its own change next."""
        bus = EventBus()
        seen: list[tuple[Any, Any]] = []
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)

        def on_change(event: CircuitStateChanged) -> None:
            seen.append((event.old, event.new))
            if event.new is OPEN:
                breaker.reset()

        bus.subscribe(CircuitStateChanged, on_change)
        breaker.record_failure()
        assert seen == [(CLOSED, OPEN), (OPEN, CLOSED)]
        assert breaker.state is CLOSED
