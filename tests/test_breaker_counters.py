"""Both breakers' cumulative counters and their CallCompleted events.

The counters of ``snapshot()`` (succeeded, failed, ignored, rejected, transitions)
must equal what a subscriber saw in the same run: the outcomes of ``CallCompleted``,
the ``CallRejected`` and the ``CircuitStateChanged`` events, in every form, sync and
async (asyncio and trio), and exactly from eight threads. ``CallCompleted`` is built
only when somebody subscribes to it, and its durations, on a ManualClock, are exact.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
import pytest

import resilio._breaker
from resilio import (
    CallCompleted,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    MisuseError,
    SlidingWindowBreaker,
    TokenBucket,
)
from resilio._breaker import BreakerBase
from resilio._counters import count_of, counter
from resilio._registry import live

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
COUNTERS = ("succeeded", "failed", "ignored", "rejected", "transitions")


class Boom(Exception):
    """Counts as a failure."""


class Skipped(Exception):
    """In ``ignore``: counts neither way."""


class Other(Exception):
    """Outside ``failure_on``: counts as a success."""


BAD = "bad"

# Each kind of breaker, built so that a script of outcomes moves it the same way:
# two failures in a row open it, one probe success closes it.
KINDS: dict[str, Callable[..., BreakerBase]] = {
    "ewma": lambda **kw: CircuitBreaker(
        failure_threshold=2, failure_rate_threshold=1.0, success_threshold=1, **kw
    ),
    "count-window": lambda **kw: SlidingWindowBreaker(
        window_size=2, min_calls=2, failure_rate_threshold=1.0, success_threshold=1, **kw
    ),
    "time-window": lambda **kw: SlidingWindowBreaker(
        window_duration=2.0,
        min_calls=2,
        failure_rate_threshold=1.0,
        success_threshold=1,
        **kw,
    ),
    "slow-calls": lambda **kw: SlidingWindowBreaker(
        window_size=2,
        min_calls=2,
        failure_rate_threshold=1.0,
        slow_call_duration=100.0,
        success_threshold=1,
        **kw,
    ),
}


def build(kind: str, clock: ManualClock, bus: EventBus, **options: Any) -> BreakerBase:
    options.setdefault("open_timeout", 10.0)
    return KINDS[kind](
        name="svc",
        clock=clock,
        bus=bus,
        failure_on=(Boom,),
        ignore=(Skipped,),
        failure_if=options.pop("failure_if", None),
        **options,
    )


def counters(breaker: BreakerBase) -> dict[str, int]:
    snap = breaker.snapshot()  # type: ignore[attr-defined]
    return {name: getattr(snap, name) for name in COUNTERS}


def seen_counts(events: list[Event]) -> dict[str, int]:
    """The counters a subscriber can rebuild from the events it received."""
    outcomes = Counter(e.outcome for e in events if isinstance(e, CallCompleted))
    return {
        "succeeded": outcomes["succeeded"],
        "failed": outcomes["failed"],
        "ignored": outcomes["ignored"],
        "rejected": sum(isinstance(e, CallRejected) for e in events),
        "transitions": sum(isinstance(e, CircuitStateChanged) for e in events),
    }


# A script: (what the call does, virtual seconds it takes, seconds to wait after).
# "ok" returns, "bad" returns BAD (a failure to failure_if), "boom" raises Boom,
# "skip" raises an ignored error, "other" raises an error outside failure_on.
SCRIPT = [
    ("ok", 1.0, 0.0),
    ("other", 0.5, 0.0),
    ("skip", 2.0, 0.0),
    ("boom", 0.5, 0.0),
    ("boom", 1.5, 0.0),  # opens
    ("ok", 0.0, 3.0),  # rejected
    ("ok", 0.0, 10.0),  # rejected; the timeout passes after it
    ("boom", 4.0, 0.0),  # a failed probe: open again
    ("ok", 0.0, 10.0),  # rejected
    ("ok", 2.5, 0.0),  # a successful probe: closed
    ("bad", 1.0, 0.0),
    ("ok", 0.5, 0.0),
]


def work(clock: ManualClock, action: str, took: float) -> Callable[[], str]:
    def run() -> str:
        clock.advance(took)
        if action == "boom":
            raise Boom
        if action == "skip":
            raise Skipped
        if action == "other":
            raise Other
        return BAD if action == "bad" else "ok"

    return run


def awork(clock: ManualClock, action: str, took: float) -> Callable[[], Awaitable[str]]:
    run = work(clock, action, took)

    async def arun() -> str:
        await anyio.lowlevel.checkpoint()
        return run()

    return arun


def run_sync(breaker: BreakerBase, form: str, fn: Callable[[], str]) -> str:
    if form == "decorator":
        return breaker(fn)()
    if form == "call":
        return breaker.call(fn)
    with breaker:
        return fn()


async def run_async(breaker: BreakerBase, form: str, fn: Callable[[], Awaitable[str]]) -> str:
    if form == "decorator":
        return await breaker(fn)()
    if form == "call_async":
        return await breaker.call_async(fn)
    async with breaker:
        return await fn()


def expected_completions(form: str) -> list[tuple[str, float]]:
    """(outcome, duration) of each call of SCRIPT that runs, as the breaker counts it."""
    judged = form not in ("with", "async_with")  # a block has no result to judge
    outcome = {"ok": "succeeded", "other": "succeeded", "skip": "ignored", "boom": "failed"}
    return [
        ("failed" if judged else "succeeded", took) if action == "bad" else (outcome[action], took)
        for action, took, _ in SCRIPT
        if not (action == "ok" and took == 0.0)
    ]


def check_script_run(breaker: BreakerBase, form: str, events: list[Event]) -> None:
    assert counters(breaker) == seen_counts(events)
    completions = [(e.outcome, e.duration) for e in events if isinstance(e, CallCompleted)]
    assert completions == expected_completions(form)
    assert counters(breaker)["rejected"] == 3
    assert counters(breaker)["transitions"] == 5  # open, half-open, open, half-open, closed
    assert breaker.state is CLOSED
    assert all(e.source == "svc" for e in events)


class TestCountersMatchEvents:
    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call", "with"])
    def test_sync_forms(self, clock: ManualClock, bus: EventBus, kind: str, form: str) -> None:
        """After a scripted run the counters equal what a subscriber saw, durations exact."""
        events: list[Event] = []
        bus.subscribe(Event, events.append)
        breaker = build(kind, clock, bus, failure_if=lambda result: result == BAD)
        for action, took, wait in SCRIPT:
            try:
                run_sync(breaker, form, work(clock, action, took))
            except (Boom, Skipped, Other, CircuitOpenError):
                pass
            clock.advance(wait)
        check_script_run(breaker, form, events)

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call_async", "async_with"])
    async def test_async_forms(
        self, clock: ManualClock, bus: EventBus, kind: str, form: str
    ) -> None:
        """The same run through the async forms, on asyncio and trio."""
        events: list[Event] = []
        bus.subscribe(Event, events.append)
        breaker = build(kind, clock, bus, failure_if=lambda result: result == BAD)
        for action, took, wait in SCRIPT:
            try:
                await run_async(breaker, form, awork(clock, action, took))
            except (Boom, Skipped, Other, CircuitOpenError):
                pass
            clock.advance(wait)
        check_script_run(breaker, form, events)

    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call", "with"])
    def test_unheard_runs_count_the_same(
        self, clock: ManualClock, bus: EventBus, kind: str, form: str
    ) -> None:
        """Without any subscriber (the quiet paths) the counters come out the same."""
        breaker = build(kind, clock, bus, failure_if=lambda result: result == BAD)
        for action, took, wait in SCRIPT:
            try:
                run_sync(breaker, form, work(clock, action, took))
            except (Boom, Skipped, Other, CircuitOpenError):
                pass
            clock.advance(wait)
        outcomes = Counter(outcome for outcome, _ in expected_completions(form))
        assert counters(breaker) == {
            "succeeded": outcomes["succeeded"],
            "failed": outcomes["failed"],
            "ignored": outcomes["ignored"],
            "rejected": 3,
            "transitions": 5,
        }

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_half_open_rejections_count(self, clock: ManualClock, bus: EventBus, kind: str) -> None:
        """A call refused because every probe slot is taken counts as rejected."""
        events: list[CallRejected] = []
        bus.subscribe(CallRejected, events.append)
        breaker = build(kind, clock, bus)
        breaker.force_open()
        breaker.reset()
        while breaker.state is CLOSED:
            breaker.record_failure()
        clock.advance(10.0)
        with breaker:  # the one probe, still running
            with pytest.raises(CircuitOpenError) as refused:
                breaker.call(lambda: "ok")
            assert refused.value.half_open
        snap = breaker.snapshot()  # type: ignore[attr-defined]
        assert (snap.rejected, len(events)) == (1, 1)
        assert events[0].state is HALF_OPEN

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_recorded_outcomes_count(self, clock: ManualClock, bus: EventBus, kind: str) -> None:
        """record_success() and record_failure() count, in any state; no CallCompleted."""
        events: list[Event] = []
        bus.subscribe(CallCompleted, events.append)
        breaker = build(kind, clock, bus)
        breaker.record_success()
        clock.advance(2.5)  # out of a time window
        breaker.record_failure()
        breaker.record_failure()  # opens
        breaker.record_failure()  # open: counted all the same
        assert counters(breaker) == {
            "succeeded": 1,
            "failed": 3,
            "ignored": 0,
            "rejected": 0,
            "transitions": 1,
        }
        assert events == []

    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call", "with"])
    @pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
    def test_interruptions_are_ignored(
        self, clock: ManualClock, bus: EventBus, kind: str, form: str, error: type
    ) -> None:
        """An interrupted call counts as ignored, and its CallCompleted says so."""
        events: list[CallCompleted] = []
        for subscribed in (False, True):
            if subscribed:
                bus.subscribe(CallCompleted, events.append)
            breaker = build(kind, clock, bus)

            def interrupted() -> str:
                clock.advance(0.5)
                raise error

            with pytest.raises(error):
                run_sync(breaker, form, interrupted)
            assert counters(breaker)["ignored"] == 1
            assert sum(counters(breaker).values()) == 1
        assert [(e.outcome, e.duration) for e in events] == [("ignored", 0.5)]

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call_async", "async_with"])
    async def test_cancelled_calls_are_ignored(
        self, clock: ManualClock, bus: EventBus, kind: str, form: str
    ) -> None:
        """A cancelled call counts as ignored, subscribed or not."""
        events: list[CallCompleted] = []
        for subscribed in (False, True):
            if subscribed:
                bus.subscribe(CallCompleted, events.append)
            breaker = build(kind, clock, bus)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await run_async(breaker, form, anyio.sleep_forever)  # type: ignore[arg-type]
            assert scope.cancelled_caught
            assert counters(breaker) == dict.fromkeys(COUNTERS, 0) | {"ignored": 1}
        assert [e.outcome for e in events] == ["ignored"]

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_misuse_and_inner_rejections_are_ignored(
        self, clock: ManualClock, bus: EventBus, kind: str
    ) -> None:
        """A misused form and a rejection by an inner primitive count as ignored."""
        breaker = build(kind, clock, bus)
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=bus)
        bucket.try_acquire()

        async def coroutine() -> None:
            pass

        with pytest.raises(MisuseError):
            breaker.call(coroutine)  # type: ignore[unused-coroutine]
        with pytest.raises(resilio.RateLimitExceeded):
            breaker(bucket(lambda: None))()
        assert counters(breaker) == dict.fromkeys(COUNTERS, 0) | {"ignored": 2}


class TestCumulative:
    @pytest.mark.parametrize("kind", list(KINDS))
    def test_reset_keeps_the_totals(self, clock: ManualClock, bus: EventBus, kind: str) -> None:
        """reset() clears the breaker's state, never its cumulative counters."""
        breaker = build(kind, clock, bus)
        breaker.call(lambda: "ok")
        clock.advance(2.5)  # out of a time window
        breaker.record_failure()
        breaker.record_failure()
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "ok")
        before = counters(breaker)
        breaker.reset()
        assert counters(breaker) == before | {"transitions": before["transitions"] + 1}
        assert before == {
            "succeeded": 1,
            "failed": 2,
            "ignored": 0,
            "rejected": 1,
            "transitions": 1,
        }

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_time_in_state(self, clock: ManualClock, bus: EventBus, kind: str) -> None:
        """The time spent in the current state is clock.monotonic() - last_change."""
        clock.advance(5.0)
        breaker = build(kind, clock, bus)
        breaker.force_open()
        clock.advance(7.0)
        snap = breaker.snapshot()  # type: ignore[attr-defined]
        assert clock.monotonic() - snap.last_change == 7.0

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_tracked_as_live(self, clock: ManualClock, bus: EventBus, kind: str) -> None:
        """Every breaker joins the registry of live primitives, weakly."""
        breaker = build(kind, clock, bus)
        assert any(p is breaker for p in live())

    def test_count_of_reads_without_advancing(self) -> None:
        """count_of reads a counter without moving it; next() moves it by one."""
        ticks = counter()
        assert count_of(ticks) == 0
        for _ in range(300):
            next(ticks)
        assert count_of(ticks) == count_of(ticks) == 300


class TestThreads:
    THREADS = 8
    CALLS = 2000

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_exact_totals_from_eight_threads(self, bus: EventBus, kind: str) -> None:
        """8 threads x N calls of each outcome, on a breaker that never trips: exact totals."""
        common: dict[str, Any] = {"failure_on": (Boom,), "ignore": (Skipped,), "bus": bus}
        # Never trips: the rate rule is off, or needs a whole window of failures.
        breaker: BreakerBase
        if kind == "ewma":
            breaker = CircuitBreaker(failure_threshold=10**9, failure_rate_threshold=1.0, **common)
        else:
            window: dict[str, Any] = (
                {"window_duration": 1000.0} if kind == "time-window" else {"window_size": 1000}
            )
            slow: dict[str, Any] = {"slow_call_duration": 100.0} if kind == "slow-calls" else {}
            breaker = SlidingWindowBreaker(
                min_calls=1000, failure_rate_threshold=1.0, **window, **slow, **common
            )

        def ok() -> None:
            pass

        def boom() -> None:
            raise Boom

        def skip() -> None:
            raise Skipped

        guarded_ok, guarded_boom, guarded_skip = breaker(ok), breaker(boom), breaker(skip)
        start = threading.Barrier(self.THREADS)

        def worker(index: int) -> None:
            start.wait()
            for i in range(self.CALLS):
                if i % 4 == 3:
                    try:
                        (guarded_boom if index % 2 else guarded_skip)()
                    except (Boom, Skipped):
                        pass
                elif i % 4 == 2:
                    with breaker:
                        pass
                else:
                    guarded_ok()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        quarter = self.THREADS * self.CALLS // 4
        assert breaker.state is CLOSED
        assert counters(breaker) == {
            "succeeded": 3 * quarter,
            "failed": quarter // 2,
            "ignored": quarter // 2,
            "rejected": 0,
            "transitions": 0,
        }

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_exact_rejections_from_eight_threads(self, bus: EventBus, kind: str) -> None:
        """8 threads calling an open breaker: every refusal is counted once."""
        breaker = build(kind, ManualClock(), bus)
        breaker.force_open()
        calls: list[Callable[[], None]] = [
            breaker(lambda: None),
            lambda: breaker.call(lambda: None),
        ]
        start = threading.Barrier(self.THREADS)

        def worker(index: int) -> None:
            start.wait()
            for _ in range(self.CALLS):
                try:
                    calls[index % 2]()
                except CircuitOpenError:  # noqa: PERF203 - each refusal is the point
                    pass

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counters(breaker)["rejected"] == self.THREADS * self.CALLS


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every CallCompleted the breakers build during the test."""
    made: list[object] = []

    class Spy(CallCompleted):
        def __init__(self, **fields: Any) -> None:
            made.append(fields)
            super().__init__(**fields)

    monkeypatch.setattr(resilio._breaker, "CallCompleted", Spy)
    return made


class TestOnlyWhenWanted:
    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call", "with"])
    def test_nothing_built_when_nobody_subscribes(
        self,
        clock: ManualClock,
        bus: EventBus,
        built: list[object],
        kind: str,
        form: str,
    ) -> None:
        """With subscribers to other events only, no CallCompleted is ever built."""
        bus.subscribe(CallRejected, lambda event: None)
        bus.subscribe(CircuitStateChanged, lambda event: None)
        breaker = build(kind, clock, bus)
        for action, took, wait in SCRIPT:
            try:
                run_sync(breaker, form, work(clock, action, took))
            except (Boom, Skipped, Other, CircuitOpenError):
                pass
            clock.advance(wait)
        assert built == []
        assert counters(breaker)["rejected"] == 3

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", list(KINDS))
    @pytest.mark.parametrize("form", ["decorator", "call_async", "async_with"])
    async def test_nothing_built_in_async_forms(
        self,
        clock: ManualClock,
        bus: EventBus,
        built: list[object],
        kind: str,
        form: str,
    ) -> None:
        """The async forms build no CallCompleted either while nobody subscribes."""
        bus.subscribe(CallRejected, lambda event: None)
        breaker = build(kind, clock, bus)
        for action, took, wait in SCRIPT:
            try:
                await run_async(breaker, form, awork(clock, action, took))
            except (Boom, Skipped, Other, CircuitOpenError):
                pass
            clock.advance(wait)
        assert built == []
        assert sum(counters(breaker).values()) == len(SCRIPT) + 5  # + transitions

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_late_subscribers_are_heard_and_leaving_ones_forgotten(
        self, clock: ManualClock, bus: EventBus, built: list[object], kind: str
    ) -> None:
        """A subscription made after calls ran gets the next ones; after it ends, none."""
        breaker = build(kind, clock, bus)
        guarded = breaker(lambda: "ok")
        for _ in range(3):
            guarded()  # the bus's table is remembered as one that sends nowhere
        seen: list[CallCompleted] = []
        unsubscribe = bus.subscribe(CallCompleted, seen.append)
        guarded()
        breaker.call(lambda: "ok")
        with breaker:
            pass
        unsubscribe()
        guarded()
        breaker.call(lambda: "ok")
        with breaker:
            pass
        assert [e.outcome for e in seen] == ["succeeded"] * 3
        assert len(built) == 3
        assert counters(breaker)["succeeded"] == 9

    @pytest.mark.anyio
    async def test_base_class_subscribers_receive_it(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """Subscribing to Event receives CallCompleted too (every call then pays for it)."""
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        breaker = CircuitBreaker(clock=clock, bus=bus)

        async def slow() -> str:
            clock.advance(0.25)
            return "ok"

        await breaker(slow)()
        assert seen == [
            CallCompleted(source="breaker", at=0.25, outcome="succeeded", duration=0.25)
        ]

    def test_slow_call_duration_is_the_measured_one(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """A breaker that measures slow calls reports the same duration it judged."""
        seen: list[CallCompleted] = []
        bus.subscribe(CallCompleted, seen.append)
        breaker = SlidingWindowBreaker(
            window_size=2, min_calls=2, slow_call_duration=1.0, clock=clock, bus=bus
        )

        @breaker
        def slow() -> None:
            clock.advance(1.5)

        slow()
        slow()
        assert [(e.outcome, e.duration) for e in seen] == [("succeeded", 1.5)] * 2
        assert breaker.state is OPEN
        snap = breaker.snapshot()
        assert attrs.asdict(snap)["succeeded"] == 2
        assert snap.open_reason == "slow_call_rate"
