"""Both breakers against a short reference model written from API.md.

Hypothesis drives a real breaker (through ``call()``, the decorator and ``with``) and a
pure-Python model side by side: calls that succeed, fail, return a result ``failure_if``
counts as a failure, raise an ignored error or raise an error outside ``failure_on``,
calls that take virtual time, caller-recorded outcomes, ``force_open()``, ``reset()``
and clock jumps, with an open timeout that may grow (``open_timeout_max``). After every
step the state, rejections, ``retry_after``, the open timeout, ``last_failure``,
counters (the window's and the cumulative ones: succeeded, failed, ignored, rejected,
transitions) and published events (``CallCompleted`` with its exact duration
included) must agree.

All clock values are multiples of 0.5 s, so time arithmetic is exact.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

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
    SlidingWindowBreaker,
)
from resilio._breaker import BreakerBase

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

NAME = "model"


class Failure(Exception):
    """In ``failure_on``: a failure."""


class Ignored(Exception):
    """In ``ignore``: counts neither way."""


class Other(Exception):
    """Outside ``failure_on``: counts as a success."""


RAISES: dict[str, type[Exception] | None] = {
    "ok": None,
    "bad": None,  # returns BAD, which failure_if counts as a failure
    "fail": Failure,
    "ignored": Ignored,
    "other": Other,
}
BAD = "bad result"


def is_bad(result: object) -> bool:
    """The breakers' failure_if."""
    return result == BAD


OUTCOMES = st.sampled_from(list(RAISES))
FORMS = st.sampled_from(["call", "decorator", "with"])
TOOK = st.one_of(st.just(0.0), st.sampled_from([0.5, 1.0, 2.0, 3.0, 12.0]))
JUMPS = st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.5, 5.0, 9.5, 10.0, 30.0])
TIMEOUTS = st.sampled_from([5.0, 10.0])
GROWTH = st.sampled_from([None, 1, 2, 3, 8])  # open_timeout_max as a multiple, or None


class Model:
    """The state machine both breakers share, from API.md; subclasses judge CLOSED."""

    def __init__(
        self,
        *,
        success_threshold: int,
        open_timeout: float,
        open_timeout_max: float | None,
        now: float,
    ) -> None:
        self.success_threshold = success_threshold
        self.base_timeout = open_timeout
        self.open_timeout = open_timeout
        self.open_timeout_max = open_timeout if open_timeout_max is None else open_timeout_max
        self.last_failure: object = None
        self.state = CLOSED
        self.successes = 0
        self.open_until = 0.0
        self.forced = False
        self.open_reason: str | None = None
        self.last_change = now
        self.events: list[Event] = []
        # Cumulative since construction: reset() keeps them.
        self.counts = {"succeeded": 0, "failed": 0, "ignored": 0, "rejected": 0, "transitions": 0}

    def closed_outcome(self, now: float, failed: bool, slow: bool) -> str | None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def move(self, new: CircuitState, reason: str, now: float) -> None:
        self.events.append(
            CircuitStateChanged(source=NAME, at=now, old=self.state, new=new, reason=reason)
        )
        self.counts["transitions"] += 1
        if new is OPEN and self.state is HALF_OPEN and not self.forced:
            self.open_timeout = min(2 * self.open_timeout, self.open_timeout_max)
        self.state = new
        self.last_change = now
        self.successes = 0
        if new is OPEN:
            self.open_until = now + self.open_timeout
            self.open_reason = reason
        elif new is CLOSED:
            self.clear()
            self.open_reason = None
            self.open_timeout = self.base_timeout

    def admit(self, now: float) -> tuple[bool, float | None]:
        """Whether a call is admitted now, and the rejection's retry_after if not."""
        if self.state is OPEN:
            if self.forced or now < self.open_until:
                retry_after = None if self.forced else self.open_until - now
                self.counts["rejected"] += 1
                self.events.append(
                    CallRejected(source=NAME, at=now, state=OPEN, retry_after=retry_after)
                )
                return False, retry_after
            self.move(HALF_OPEN, "open_timeout_elapsed", now)
        return True, None

    def outcome(
        self, now: float, *, failed: bool, slow: bool = False, failure: object = None
    ) -> None:
        if failed and self.state is not OPEN:
            self.last_failure = failure
        if self.state is CLOSED:
            reason = self.closed_outcome(now, failed, slow)
            if reason is not None:
                self.move(OPEN, reason, now)
        elif self.state is HALF_OPEN:
            if failed or slow:
                self.move(OPEN, "probe_failed", now)
            else:
                self.successes += 1
                if self.successes >= self.success_threshold:
                    self.move(CLOSED, "probe_succeeded", now)

    def force_open(self, now: float) -> None:
        self.forced = True
        if self.state is not OPEN:
            self.move(OPEN, "forced_open", now)
        self.open_reason = "forced_open"

    def reset(self, now: float) -> None:
        self.forced = False
        self.last_failure = None
        if self.state is CLOSED:
            self.clear()
        else:
            self.move(CLOSED, "reset", now)

    def retry_after(self, now: float) -> float | None:
        if self.state is not OPEN or self.forced:
            return None
        return max(0.0, self.open_until - now)


class EwmaModel(Model):
    """CircuitBreaker's closed state: consecutive failures and the weighted rate."""

    def __init__(self, *, failure_threshold: int, rate_threshold: float, **base: Any) -> None:
        super().__init__(**base)
        self.failure_threshold = failure_threshold
        self.rate_threshold = rate_threshold
        self.clear()

    def clear(self) -> None:
        self.consecutive = 0
        self.rate = 0.0

    def closed_outcome(self, now: float, failed: bool, slow: bool) -> str | None:
        if failed:
            self.consecutive += 1
            self.rate = 0.9 * self.rate + 0.1
            if self.consecutive >= self.failure_threshold:
                return "consecutive_failures"
            if self.rate > self.rate_threshold:
                return "failure_rate"
            return None
        self.consecutive = 0
        self.rate = 0.5 * self.rate
        if self.rate < 0.01:
            self.rate = 0.0
        return None


class WindowModel(Model):
    """SlidingWindowBreaker's closed state: a list of (epoch, failed, slow) outcomes."""

    def __init__(
        self,
        *,
        window_size: int,
        window_duration: float | None,
        min_calls: int,
        rate_threshold: float,
        slow_after: float | None,
        slow_threshold: float,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.window_size = window_size
        self.width = None if window_duration is None else window_duration / 10
        self.min_calls = min_calls
        self.rate_threshold = rate_threshold
        self.slow_after = slow_after
        self.slow_threshold = slow_threshold
        self.outcomes: deque[tuple[int, bool, bool]] = deque()

    def clear(self) -> None:
        self.outcomes.clear()

    def expire(self, now: float) -> None:
        if self.width is not None:
            epoch = int(now // self.width)
            while self.outcomes and self.outcomes[0][0] <= epoch - 10:
                self.outcomes.popleft()

    def totals(self, now: float) -> tuple[int, int, int]:
        self.expire(now)
        return (
            len(self.outcomes),
            sum(o[1] for o in self.outcomes),
            sum(o[2] for o in self.outcomes),
        )

    def closed_outcome(self, now: float, failed: bool, slow: bool) -> str | None:
        epoch = 0 if self.width is None else int(now // self.width)
        self.outcomes.append((epoch, failed, slow))
        if self.width is None and len(self.outcomes) > self.window_size:
            self.outcomes.popleft()
        calls, failures, slows = self.totals(now)
        if calls < self.min_calls:
            return None
        if failures / calls >= self.rate_threshold:
            return "failure_rate"
        if self.slow_after is not None and slows / calls >= self.slow_threshold:
            return "slow_call_rate"
        return None

    def is_slow(self, took: float) -> bool:
        return self.slow_after is not None and took >= self.slow_after


class BreakerMachine(RuleBasedStateMachine):
    """Rules shared by both machines; ``initialize`` builds the breaker and its model."""

    breaker: BreakerBase
    model: Model
    # False: nobody subscribes to CallCompleted, so the breaker's quiet paths run
    # (successes counted, not reported), and the model's CallCompleted are left out.
    completions = True

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(start=100.0)
        self.bus = EventBus()
        self.events: list[Event] = []
        if self.completions:
            self.bus.subscribe(Event, self.events.append)
        else:
            self.bus.subscribe(CircuitStateChanged, self.events.append)
            self.bus.subscribe(CallRejected, self.events.append)

    def is_slow(self, took: float) -> bool:
        return False

    @rule(outcome=OUTCOMES, took=TOOK, form=FORMS)
    def call(self, outcome: str, took: float, form: str) -> None:
        admitted, retry_after = self.model.admit(self.clock.monotonic())
        raises = RAISES[outcome]
        ran = []

        def work() -> str:
            ran.append(took)
            self.clock.advance(took)
            if raises is not None:
                raise raises(outcome)
            return BAD if outcome == "bad" else "ok"

        def run() -> str:
            if form == "call":
                return self.breaker.call(work)
            if form == "decorator":
                return self.breaker(work)()
            with self.breaker:
                return work()

        caught: Exception | None = None
        try:
            assert run() == (BAD if outcome == "bad" else "ok")  # a bad result still returns
        except (CircuitOpenError, Failure, Ignored, Other) as error:
            caught = error
        if isinstance(caught, CircuitOpenError):
            assert not admitted
            assert caught.retry_after == retry_after
            assert caught.last_failure is self.model.last_failure
            assert not ran
            return
        assert admitted
        assert (caught is None) if raises is None else (type(caught) is raises)
        assert ran == [took]
        now = self.clock.monotonic()
        if outcome == "ignored":
            counted = "ignored"
        else:
            # A with block has no result: failure_if is not asked there.
            judged_bad = outcome == "bad" and form != "with"
            failed = outcome == "fail" or judged_bad
            counted = "failed" if failed else "succeeded"
            self.model.outcome(
                now,
                failed=failed,
                slow=self.is_slow(took),
                failure=caught if outcome == "fail" else BAD,
            )
        self.model.counts[counted] += 1
        self.model.events.append(CallCompleted(source=NAME, at=now, outcome=counted, duration=took))

    @rule(seconds=JUMPS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(failed=st.booleans())
    def record(self, failed: bool) -> None:
        if failed:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        self.model.counts["failed" if failed else "succeeded"] += 1  # whatever the state
        if self.model.state is not OPEN:
            self.model.outcome(self.clock.monotonic(), failed=failed)

    @rule()
    def force_open(self) -> None:
        self.breaker.force_open()
        self.model.force_open(self.clock.monotonic())

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.reset(self.clock.monotonic())

    @invariant()
    def agrees(self) -> None:
        now = self.clock.monotonic()
        snap = self.breaker.snapshot()  # type: ignore[attr-defined]
        model = self.model
        assert snap.state is model.state
        assert self.breaker.state is model.state
        assert snap.retry_after == model.retry_after(now)
        assert snap.open_reason == model.open_reason
        assert snap.last_change == model.last_change
        assert snap.open_timeout == model.open_timeout
        assert snap.last_failure is model.last_failure
        assert snap.half_open_calls == 0
        if model.state is HALF_OPEN:
            assert snap.consecutive_successes == model.successes
        assert self.events == [
            e for e in model.events if self.completions or not isinstance(e, CallCompleted)
        ]
        assert {key: getattr(snap, key) for key in model.counts} == model.counts
        self.agrees_on_counters(snap, now)

    def agrees_on_counters(self, snap: Any, now: float) -> None:
        raise NotImplementedError


class CircuitBreakerMachine(BreakerMachine):
    """CircuitBreaker against EwmaModel."""

    @initialize(
        failure_threshold=st.integers(1, 6),
        rate_threshold=st.sampled_from([0.1, 0.19, 0.3, 0.5, 0.9, 1.0]),
        success_threshold=st.integers(1, 3),
        open_timeout=TIMEOUTS,
        growth=GROWTH,
    )
    def build(
        self,
        failure_threshold: int,
        rate_threshold: float,
        success_threshold: int,
        open_timeout: float,
        growth: int | None,
    ) -> None:
        longest = None if growth is None else growth * open_timeout
        self.breaker = CircuitBreaker(
            name=NAME,
            failure_threshold=failure_threshold,
            failure_rate_threshold=rate_threshold,
            success_threshold=success_threshold,
            open_timeout=open_timeout,
            open_timeout_max=longest,
            failure_on=Failure,
            failure_if=is_bad,
            ignore=Ignored,
            clock=self.clock,
            bus=self.bus,
        )
        self.model = EwmaModel(
            failure_threshold=failure_threshold,
            rate_threshold=rate_threshold,
            success_threshold=success_threshold,
            open_timeout=open_timeout,
            open_timeout_max=longest,
            now=self.clock.monotonic(),
        )

    def agrees_on_counters(self, snap: Any, now: float) -> None:
        model = self.model
        assert isinstance(model, EwmaModel)
        if model.state is CLOSED:
            assert snap.consecutive_failures == model.consecutive
            assert snap.failure_rate == model.rate


class SlidingMachine(BreakerMachine):
    """SlidingWindowBreaker against WindowModel; subclasses pick the window kind."""

    time_based = False

    @initialize(
        data=st.data(),
        rate_threshold=st.sampled_from([0.25, 0.5, 0.6, 1.0]),
        slow_after=st.sampled_from([None, 1.0, 2.0]),
        slow_threshold=st.sampled_from([0.25, 0.5, 1.0]),
        success_threshold=st.integers(1, 3),
        open_timeout=TIMEOUTS,
        growth=GROWTH,
    )
    def build(
        self,
        *,
        data: st.DataObject,
        rate_threshold: float,
        slow_after: float | None,
        slow_threshold: float,
        success_threshold: int,
        open_timeout: float,
        growth: int | None,
    ) -> None:
        longest = None if growth is None else growth * open_timeout
        window_size = data.draw(st.integers(1, 8), label="window_size")
        if self.time_based:
            window_duration = data.draw(st.sampled_from([5.0, 10.0, 20.0]), label="duration")
            min_calls = data.draw(st.integers(1, 8), label="min_calls")
        else:
            window_duration = None
            min_calls = data.draw(st.integers(1, window_size), label="min_calls")
        # A window counts calls or seconds; a slow-call threshold needs a duration.
        shape: dict[str, Any] = {"window_size": window_size} if window_duration is None else {}
        if slow_after is not None:
            shape["slow_call_rate_threshold"] = slow_threshold
        self.breaker = SlidingWindowBreaker(
            name=NAME,
            **shape,
            window_duration=window_duration,
            min_calls=min_calls,
            failure_rate_threshold=rate_threshold,
            slow_call_duration=slow_after,
            success_threshold=success_threshold,
            open_timeout=open_timeout,
            open_timeout_max=longest,
            failure_on=Failure,
            failure_if=is_bad,
            ignore=Ignored,
            clock=self.clock,
            bus=self.bus,
        )
        self.model = WindowModel(
            window_size=window_size,
            window_duration=window_duration,
            min_calls=min_calls,
            rate_threshold=rate_threshold,
            slow_after=slow_after,
            slow_threshold=slow_threshold,
            success_threshold=success_threshold,
            open_timeout=open_timeout,
            open_timeout_max=longest,
            now=self.clock.monotonic(),
        )

    def is_slow(self, took: float) -> bool:
        model = self.model
        assert isinstance(model, WindowModel)
        return model.is_slow(took)

    def agrees_on_counters(self, snap: Any, now: float) -> None:
        model = self.model
        assert isinstance(model, WindowModel)
        if model.state is CLOSED:
            assert (snap.calls, snap.failed_calls, snap.slow_calls) == model.totals(now)


class CountWindowMachine(SlidingMachine):
    """A count-based SlidingWindowBreaker against WindowModel."""


class TimeWindowMachine(SlidingMachine):
    """A time-based SlidingWindowBreaker against WindowModel."""

    time_based = True


class QuietCircuitBreakerMachine(CircuitBreakerMachine):
    """CircuitBreaker against EwmaModel, with nobody subscribed to CallCompleted."""

    completions = False


class QuietCountWindowMachine(CountWindowMachine):
    """A count-based SlidingWindowBreaker nobody times, against WindowModel."""

    completions = False


class QuietTimeWindowMachine(TimeWindowMachine):
    """A time-based SlidingWindowBreaker nobody times, against WindowModel."""

    completions = False


MODEL_SETTINGS = settings(max_examples=100, stateful_step_count=50, deadline=None)


class TestAgainstModel:
    @pytest.mark.parametrize("machine", [CircuitBreakerMachine, QuietCircuitBreakerMachine])
    def test_circuit_breaker(self, machine: type[CircuitBreakerMachine]) -> None:
        """CircuitBreaker agrees with the reference model after every step."""
        run_state_machine_as_test(machine, settings=MODEL_SETTINGS)

    @pytest.mark.parametrize(
        "machine",
        [CountWindowMachine, TimeWindowMachine, QuietCountWindowMachine, QuietTimeWindowMachine],
    )
    def test_sliding_window_breaker(self, machine: type[SlidingMachine]) -> None:
        """SlidingWindowBreaker (count and time windows) agrees with the reference model."""
        run_state_machine_as_test(machine, settings=MODEL_SETTINGS)
