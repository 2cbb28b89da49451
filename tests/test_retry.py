"""Retry: exact schedules, predicates, if_result, retry-after hints, timeouts, budgets,
events, the decorator / call / inline forms, async on asyncio and trio, cancellation,
concurrent calls and configuration checks.

Every test drives time with a ManualClock (a blocking sleep advances it; async sleeps
wait for ``advance``); nothing sleeps for real.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilio import (
    Attempt,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Event,
    EventBus,
    ManualClock,
    MisuseError,
    RateLimitExceeded,
    Retry,
    RetryBudget,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    backoff,
    compose,
    default_bus,
    retry,
)
from resilio._backoff import JITTERS, Jitter, delays

T = TypeVar("T")


class Boom(Exception):
    """The failure the retried functions raise."""


class Other(Exception):
    """A failure the policies under test do not retry."""


class Hinted(Exception):
    """A user exception carrying a retry_after hint."""

    def __init__(self, retry_after: Any) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Script:
    """Plays one outcome per call: exception classes are raised fresh, values returned.

    The last outcome repeats. Every exception raised is kept in ``raised``.
    """

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = outcomes
        self.calls = 0
        self.raised: list[BaseException] = []
        self.args: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        self.args.append((args, kwargs))
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            exc = outcome(f"try {self.calls}")
            self.raised.append(exc)
            raise exc
        if isinstance(outcome, BaseException):
            self.raised.append(outcome)
            raise outcome
        return outcome

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        await anyio.lowlevel.checkpoint()
        return self(*args, **kwargs)


def scheduled(events: list[Event]) -> list[RetryScheduled]:
    return [e for e in events if isinstance(e, RetryScheduled)]


def exhausted(events: list[Event]) -> list[RetryExhausted]:
    return [e for e in events if isinstance(e, RetryExhausted)]


def refused(events: list[Event]) -> list[RetryRefused]:
    return [e for e in events if isinstance(e, RetryRefused)]


def run_inline(policy: Retry, fn: Callable[[], Any]) -> list[int]:
    """Run *fn* in a ``for attempt in policy: with attempt:`` loop; return the numbers seen."""
    numbers = []
    for attempt in policy:
        with attempt:
            numbers.append(attempt.number)
            fn()
    return numbers


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., Retry]:
    """Build a Retry on the test's clock and bus, exact delays (jitter=None) by default."""

    def factory(**options: Any) -> Retry:
        options.setdefault("name", "r")
        options.setdefault("jitter", None)
        return Retry(clock=clock, bus=bus, **options)

    return factory


async def drive(clock: ManualClock, fn: Callable[[], Awaitable[T]], step: float = 0.125) -> T:
    """Await ``fn()`` in a task, advancing the clock by *step* whenever every task is blocked."""
    outcome: list[tuple[bool, Any]] = []

    async def runner() -> None:
        try:
            outcome.append((True, await fn()))
        except Exception as exc:
            outcome.append((False, exc))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            while True:
                await anyio.wait_all_tasks_blocked()
                if outcome:
                    break
                clock.advance(step)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """Call *fn*; return its result, or the Boom it raised."""
    try:
        return fn(*args)
    except Boom as exc:
        return exc


class CountingBus(EventBus):
    """An EventBus that counts how often it is asked and how often it publishes."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[type[Event]] = Counter()
        self.published: Counter[type[Event]] = Counter()

    def wants(self, event_type: type[Event]) -> bool:
        self.asked[event_type] += 1
        return super().wants(event_type)

    def publish(self, event: Event) -> None:
        self.published[type(event)] += 1
        super().publish(event)


class TestSchedule:
    def test_exact_delays_without_jitter(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """jitter=None sleeps exactly base * multiplier**(k-1), capped at max_delay."""
        script = Script(Boom, Boom, Boom, Boom, Boom, "ok")
        policy = make(attempts=6, base_delay=0.5, multiplier=3.0, max_delay=10.0)
        assert policy.call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [0.5, 1.5, 4.5, 10.0, 10.0]
        assert [e.at for e in scheduled(events)] == [0.0, 0.5, 2.0, 6.5, 16.5]
        assert clock.monotonic() == 26.5

    def test_ten_attempts_run_instantly_on_a_manual_clock(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A ten-attempt sync retry finishes at once, the clock at the sum of the delays."""
        script = Script(Boom)
        policy = make(attempts=10, base_delay=0.1, multiplier=2.0, max_delay=5.0)
        expected = delays(
            10, base_delay=0.1, multiplier=2.0, max_delay=5.0, jitter=None, random=random.random
        )
        with pytest.raises(Boom):
            policy.call(script)
        assert script.calls == 10
        assert [e.delay for e in scheduled(events)] == expected
        assert clock.monotonic() == sum(expected)

    @pytest.mark.parametrize("jitter", JITTERS)
    def test_seeded_random_gives_the_backoff_sequence(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event], jitter: Jitter
    ) -> None:
        """With a seeded random the delays slept are exactly the backoff sequence."""
        policy = make(
            attempts=8, base_delay=0.2, max_delay=3.0, jitter=jitter, random=random.Random(4).random
        )
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        expected = delays(
            8,
            base_delay=0.2,
            multiplier=2.0,
            max_delay=3.0,
            jitter=jitter,
            random=random.Random(4).random,
        )
        assert [e.delay for e in scheduled(events)] == expected
        assert clock.monotonic() == pytest.approx(sum(expected))

    def test_each_call_starts_the_schedule_again(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A second call through the same policy begins at base_delay again."""
        policy = make(attempts=3, base_delay=1.0)
        for _ in range(2):
            with pytest.raises(Boom):
                policy.call(Script(Boom))
        assert [e.delay for e in scheduled(events)] == [1.0, 2.0, 1.0, 2.0]
        assert [e.attempt for e in scheduled(events)] == [1, 2, 1, 2]

    def test_success_first_time_does_not_sleep(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A call that succeeds at once runs once, sleeps never and publishes nothing."""
        script = Script("ok")
        assert make().call(script) == "ok"
        assert script.calls == 1
        assert clock.monotonic() == 0.0
        assert events == []

    def test_zero_base_delay_never_sleeps_long(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """base_delay=0 retries immediately, however many attempts (even past 1,025)."""
        script = Script(Boom)
        with pytest.raises(Boom):
            make(attempts=1_100, base_delay=0.0, max_delay=10.0).call(script)
        assert script.calls == 1_100
        assert clock.monotonic() == 0.0

    def test_default_schedule(self, clock: ManualClock, bus: EventBus, events: list[Event]) -> None:
        """Defaults: five tries, 0.1 s doubling, full jitter within the schedule."""
        policy = Retry(clock=clock, bus=bus, random=random.Random(0).random)
        script = Script(Boom)
        with pytest.raises(Boom):
            policy.call(script)
        assert script.calls == 5
        for event, cap in zip(scheduled(events), [0.1, 0.2, 0.4, 0.8], strict=True):
            assert 0.0 <= event.delay <= cap

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(
        attempts=st.integers(1, 12),
        base=st.floats(0, 10),
        multiplier=st.floats(1, 4),
        headroom=st.floats(0, 10),
        jitter=st.sampled_from(JITTERS),
        hint=st.none() | st.floats(0, 50),
        seed=st.integers(0, 1000),
    )
    def test_every_delay_is_within_max_delay_or_the_spread_hint(
        self,
        *,
        attempts: int,
        base: float,
        multiplier: float,
        headroom: float,
        jitter: Jitter,
        hint: float | None,
        seed: int,
    ) -> None:
        """Every delay is within max_delay or within 10 % above the hint, never below the
        hint; a hint over max_delay ends the retrying before any sleep."""
        cap = base + headroom
        clock, bus = ManualClock(), EventBus()
        seen: list[RetryScheduled] = []
        bus.subscribe(RetryScheduled, seen.append)
        policy = Retry(
            attempts=attempts,
            base_delay=base,
            multiplier=multiplier,
            max_delay=cap,
            jitter=jitter,
            random=random.Random(seed).random,
            clock=clock,
            bus=bus,
        )
        script = Script(Hinted(hint))
        with pytest.raises(Hinted):
            policy.call(script)
        if hint is not None and hint > cap:
            assert (script.calls, seen, clock.monotonic()) == (1, [], 0.0)
            return
        assert len(seen) == attempts - 1
        for event in seen:
            assert 0.0 <= event.delay <= max(cap, (hint or 0.0) * 1.1)
            if hint is not None:
                assert event.delay >= hint
        assert clock.monotonic() == pytest.approx(sum(e.delay for e in seen))


class TestReraise:
    def test_last_exception_is_reraised_as_is(self, make: Callable[..., Retry]) -> None:
        """When tries run out, the last exception itself is raised, not a wrapper."""
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            make(attempts=4).call(script)
        assert script.calls == 4
        assert type(info.value) is Boom
        assert info.value is script.raised[-1]
        assert str(info.value) == "try 4"

    def test_last_exception_is_not_chained_to_earlier_ones(
        self, make: Callable[..., Retry]
    ) -> None:
        """The raised exception's __context__ and __cause__ are none of the earlier failures."""
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            make(attempts=4).call(script)
        earlier = script.raised[:-1]
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        for exc in script.raised:
            assert exc.__context__ not in earlier

    def test_a_different_last_exception_wins(self, make: Callable[..., Retry]) -> None:
        """Whatever type the last try raised is what the caller sees."""
        script = Script(Boom, Boom, ConnectionError)
        with pytest.raises(ConnectionError) as info:
            make(attempts=3).call(script)
        assert info.value is script.raised[-1]

    def test_one_attempt_means_one_try(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """attempts=1 calls once and re-raises at once."""
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            make(attempts=1).call(script)
        assert script.calls == 1
        assert info.value is script.raised[0]
        assert clock.monotonic() == 0.0

    def test_traceback_reaches_the_function(self, make: Callable[..., Retry]) -> None:
        """The re-raised exception still carries the frame that raised it."""

        def fail() -> NoReturn:
            raise Boom

        with pytest.raises(Boom) as info:
            make(attempts=2).call(fail)
        assert any(entry.name == "fail" for entry in info.traceback)

    @pytest.mark.anyio
    async def test_async_last_exception_is_reraised_as_is(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """The async path re-raises the last exception itself, unchained."""
        script = Script(Boom)
        policy = make(attempts=3, base_delay=0.25)
        with pytest.raises(Boom) as info:
            await drive(clock, lambda: policy.call_async(script.acall))
        assert script.calls == 3
        assert info.value is script.raised[-1]
        assert info.value.__context__ is None


class TestPredicates:
    def test_on_types_retry_only_those(self, make: Callable[..., Retry]) -> None:
        """on=(ConnectionError,) retries ConnectionError and its subclasses."""
        script = Script(ConnectionResetError, ConnectionError, "ok")
        assert make(on=(ConnectionError,), attempts=5).call(script) == "ok"
        assert script.calls == 3

    def test_on_a_single_type(self, make: Callable[..., Retry]) -> None:
        """on= may be one exception class."""
        script = Script(Boom, "ok")
        assert make(on=Boom).call(script) == "ok"

    def test_on_a_list_of_types(self, make: Callable[..., Retry]) -> None:
        """on= may be a list of exception classes."""
        script = Script(Boom, Other, "ok")
        assert make(on=[Boom, Other]).call(script) == "ok"

    def test_non_matching_exception_raised_after_one_try(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """An exception outside on= is raised at once, untouched, without a sleep."""
        script = Script(Other, "ok")
        with pytest.raises(Other) as info:
            make(on=Boom).call(script)
        assert script.calls == 1
        assert info.value is script.raised[0]
        assert clock.monotonic() == 0.0
        assert events == []

    def test_non_matching_exception_after_retries(self, make: Callable[..., Retry]) -> None:
        """A non-matching exception on a later try ends the loop there."""
        script = Script(Boom, Boom, Other, "ok")
        with pytest.raises(Other) as info:
            make(on=Boom, attempts=10).call(script)
        assert script.calls == 3
        assert info.value is script.raised[-1]
        assert info.value.__context__ is None

    def test_on_predicate(self, make: Callable[..., Retry]) -> None:
        """on= as a predicate retries what it accepts and sees each exception."""
        seen: list[BaseException] = []

        def transient(exc: BaseException) -> bool:
            seen.append(exc)
            return "transient" in str(exc)

        script = Script(Boom("transient 1"), Boom("transient 2"), Boom("fatal"), "ok")
        with pytest.raises(Boom, match="fatal") as info:
            make(on=transient, attempts=10).call(script)
        assert script.calls == 3
        assert seen == script.raised
        assert info.value is script.raised[-1]

    def test_on_predicate_true_until_exhausted(self, make: Callable[..., Retry]) -> None:
        """A predicate that always agrees retries until the tries run out."""
        script = Script(Boom)
        with pytest.raises(Boom):
            make(on=lambda exc: True, attempts=4).call(script)
        assert script.calls == 4

    def test_if_result_retries_until_satisfied(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """if_result asks for another try on the results it rejects."""
        script = Script(None, None, "ready")
        assert make(if_result=lambda r: r is None).call(script) == "ready"
        assert script.calls == 3
        assert [(e.attempt, e.error) for e in scheduled(events)] == [(1, None), (2, None)]

    def test_if_result_exhausted_returns_last_result(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """When tries run out on results, the last result is returned, no exception."""
        counter = iter(range(100))
        result = make(attempts=4, if_result=lambda r: r < 10).call(lambda: next(counter))
        assert result == 3
        (event,) = exhausted(events)
        assert (event.attempts, event.error) == (4, None)

    def test_if_result_and_exceptions_mix(self, make: Callable[..., Retry]) -> None:
        """Errors and rejected results both count as tries."""
        script = Script(Boom, "pending", Boom, "done")
        policy = make(attempts=4, if_result=lambda r: r == "pending")
        assert policy.call(script) == "done"
        assert script.calls == 4

    def test_if_result_exhausted_after_an_error_raises_it(self, make: Callable[..., Retry]) -> None:
        """If the last try raised, its exception is raised even with if_result."""
        script = Script("pending", Boom)
        with pytest.raises(Boom) as info:
            make(attempts=2, if_result=lambda r: r == "pending").call(script)
        assert info.value is script.raised[-1]

    def test_if_result_accepted_first_time(self, make: Callable[..., Retry]) -> None:
        """A result the predicate accepts is returned after one try."""
        script = Script(5)
        assert make(if_result=lambda r: r < 0).call(script) == 5
        assert script.calls == 1

    @pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
    @pytest.mark.parametrize("on", [Exception, BaseException, (BaseException,)])
    def test_base_exceptions_are_never_retried(
        self, make: Callable[..., Retry], error: type[BaseException], on: Any
    ) -> None:
        """KeyboardInterrupt and friends propagate after one try, even with on=BaseException."""
        script = Script(error, "ok")
        with pytest.raises(error) as info:
            make(on=on).call(script)
        assert script.calls == 1
        assert info.value is script.raised[0]

    @pytest.mark.parametrize("on", [Exception, TypeError, MisuseError, lambda exc: True])
    def test_misuse_errors_are_never_retried(
        self, make: Callable[..., Retry], events: list[Event], on: Any
    ) -> None:
        """A MisuseError (a guard used in a way that cannot work) is raised after one try,
        whatever on= says: trying again cannot help."""
        script = Script(MisuseError("call() given an async function"), "ok")
        with pytest.raises(MisuseError) as info:
            make(on=on).call(script)
        assert info.value is script.raised[0]
        assert script.calls == 1
        assert events == []
        with pytest.raises(MisuseError):
            run_inline(make(on=on), Script(MisuseError("inline"), "ok"))

    def test_a_misuse_inside_a_breaker_is_not_retried(
        self, make: Callable[..., Retry], clock: ManualClock, bus: EventBus
    ) -> None:
        """policy.call(breaker.call, async_fn): the breaker's refusal reaches the caller
        after one try and no sleep."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        script = Script("ok")
        with pytest.raises(MisuseError):
            make(base_delay=1.0).call(breaker.call, script.acall)
        assert clock.monotonic() == 0.0

    def test_base_exceptions_never_retried_with_an_accepting_predicate(
        self, make: Callable[..., Retry]
    ) -> None:
        """A predicate that accepts everything still never sees KeyboardInterrupt retried."""
        script = Script(KeyboardInterrupt, "ok")
        with pytest.raises(KeyboardInterrupt):
            make(on=lambda exc: True).call(script)
        assert script.calls == 1


def reasons(events: list[Event]) -> list[str]:
    """The reason of each RetryExhausted published."""
    return [e.reason for e in exhausted(events)]


class TestRetryAfter:
    @pytest.mark.parametrize(
        "error",
        [
            CircuitOpenError("cb", 5.0),
            RateLimitExceeded("bucket", 5.0),
            Hinted(5.0),
            Hinted(5),
        ],
        ids=["circuit-open", "rate-limited", "custom-float", "custom-int"],
    )
    def test_a_hint_longer_than_the_backoff_wins(
        self,
        make: Callable[..., Retry],
        clock: ManualClock,
        events: list[Event],
        error: BaseException,
    ) -> None:
        """An exception with retry_after is not retried sooner than the hint."""
        script = Script(error, "ok")
        assert make(base_delay=0.5, random=lambda: 0.0).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [5.0]
        assert clock.monotonic() == 5.0

    @pytest.mark.parametrize(("draw", "delay"), [(0.0, 4.0), (0.5, 4.2), (0.999, 4.3996)])
    def test_a_used_hint_is_spread_by_up_to_ten_percent(
        self, make: Callable[..., Retry], events: list[Event], draw: float, delay: float
    ) -> None:
        """A hint that is waited out gets a random extra of up to 10 % of itself."""
        script = Script(Hinted(4.0), "ok")
        assert make(base_delay=0.5, random=lambda: draw).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [pytest.approx(delay)]

    def test_the_spread_comes_from_the_policy_random(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """The spread draws from random=, so a seeded source gives exact sleeps."""
        draws = random.Random(3)
        script = Script(Hinted(2.0), Hinted(2.0), "ok")
        assert make(base_delay=0.5, random=random.Random(3).random).call(script) == "ok"
        expected = [2.0 + 0.2 * draws.random() for _ in range(2)]
        assert [e.delay for e in scheduled(events)] == expected

    def test_thirty_callers_told_the_same_moment_get_distinct_sleeps(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Thirty calls rejected with the same retry_after come back at thirty moments,
        all within 10 % after it, instead of all at once."""
        policy = Retry(jitter=None, random=random.Random(30).random, clock=clock, bus=bus)
        for _ in range(30):
            assert policy.call(Script(RateLimitExceeded("bucket", 2.0), "ok")) == "ok"
        sleeps = [e.delay for e in scheduled(events)]
        assert len(sleeps) == len(set(sleeps)) == 30
        assert all(2.0 <= sleep < 2.2 for sleep in sleeps)
        assert max(sleeps) - min(sleeps) > 0.1

    @pytest.mark.anyio
    async def test_thirty_concurrent_callers_wake_apart(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Thirty tasks told the same moment by one rejection each wake at their own moment."""
        policy = Retry(jitter=None, random=random.Random(31).random, clock=clock, bus=bus)
        woke: list[float] = []

        async def caller() -> None:
            script = Script(CircuitOpenError("cb", 1.0), "ok")
            assert await policy.call_async(script.acall) == "ok"
            woke.append(clock.monotonic())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(caller)
                await anyio.wait_all_tasks_blocked()
                while len(woke) < 30:
                    clock.advance(0.001)
                    await anyio.wait_all_tasks_blocked()
        assert len({round(t, 3) for t in woke}) > 20
        assert all(1.0 <= t <= 1.101 for t in woke)

    def test_a_hint_shorter_than_the_backoff_is_ignored(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """delay = max(backoff, hint): a short hint does not shorten the backoff."""
        script = Script(Hinted(0.5), "ok")
        assert make(base_delay=2.0).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [2.0]
        assert clock.monotonic() == 2.0

    def test_hint_beats_jitter(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """With full jitter the hint is still a lower bound."""
        script = Script(Hinted(1.0), Hinted(1.0), Hinted(1.0), "ok")
        make(base_delay=4.0, jitter="full", random=lambda: 0.0).call(script)
        assert [e.delay for e in scheduled(events)] == [1.0, 1.0, 1.0]

    @pytest.mark.parametrize(
        "hint",
        [None, "5", b"5", -3.0, -math.inf, math.nan, math.inf, True, False, timedelta(seconds=5)],
        ids=[
            "none",
            "string",
            "bytes",
            "negative",
            "minus-inf",
            "nan",
            "inf",
            "true",
            "false",
            "timedelta",
        ],
    )
    def test_unusable_hints_are_ignored(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event], hint: Any
    ) -> None:
        """Only a finite number >= 0 is a hint: anything else leaves the backoff alone and
        never reaches the clock."""
        script = Script(Hinted(hint), Hinted(hint), "ok")
        assert make(base_delay=0.5).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [0.5, 1.0]
        assert clock.monotonic() == 1.5

    @pytest.mark.anyio
    @pytest.mark.parametrize("hint", [math.inf, math.nan, True, "30"], ids=repr)
    async def test_async_unusable_hints_never_sleep_forever(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event], hint: Any
    ) -> None:
        """On the async path too an unusable hint is no hint: the backoff is slept."""
        script = Script(Hinted(hint), "ok")
        policy = make(base_delay=0.25)
        assert await drive(clock, lambda: policy.call_async(script.acall)) == "ok"
        assert [e.delay for e in scheduled(events)] == [0.25]

    def test_circuit_open_error_without_hint(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A rejection with retry_after=None uses the backoff."""
        script = Script(CircuitOpenError("cb", None), "ok")
        assert make(base_delay=0.5).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [0.5]

    @pytest.mark.parametrize("hint", [10.001, 30.0, 10**400], ids=["just-over", "30s", "huge-int"])
    def test_a_hint_over_max_delay_ends_the_retrying(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event], hint: Any
    ) -> None:
        """A hint longer than max_delay re-raises the rejection at once, without a sleep,
        after a RetryExhausted."""
        script = Script(Hinted(hint), "ok")
        with pytest.raises(Hinted) as info:
            make(base_delay=0.5, max_delay=10.0).call(script)
        assert info.value is script.raised[0]
        assert info.value.__context__ is None
        assert script.calls == 1
        assert clock.monotonic() == 0.0
        assert scheduled(events) == []
        assert [(e.attempts, e.error) for e in exhausted(events)] == [(1, info.value)]
        assert reasons(events) == ["retry_after_over_max_delay"]

    def test_a_hint_equal_to_max_delay_is_waited_out(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A hint of exactly max_delay is used, spread and all."""
        script = Script(Hinted(10.0), "ok")
        assert make(max_delay=10.0, random=lambda: 0.5).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [10.5]

    def test_a_hint_over_max_delay_on_a_later_try(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The rule applies to every try: a long hint after two plain failures ends it there."""
        script = Script(Boom, Boom, Hinted(60.0), "ok")
        with pytest.raises(Hinted) as info:
            make(base_delay=1.0, max_delay=10.0).call(script)
        assert info.value is script.raised[-1]
        assert script.calls == 3
        assert clock.monotonic() == 3.0
        assert [e.attempts for e in exhausted(events)] == [3]

    def test_exhausted_says_why(self, make: Callable[..., Retry], events: list[Event]) -> None:
        """RetryExhausted's reason tells tries, timeout and the two hint rules apart."""
        policy = make(attempts=2, base_delay=1.0, max_delay=5.0, timeout=4.0)
        for error in (Boom, Hinted(6.0), Hinted(4.5), Hinted(2.0)):
            with pytest.raises((Boom, Hinted)):
                policy.call(Script(error))
        with pytest.raises(Boom):
            make(attempts=5, base_delay=3.0, max_delay=5.0, timeout=4.0).call(Script(Boom))
        assert reasons(events) == [
            "attempts",
            "retry_after_over_max_delay",
            "retry_after_past_timeout",
            "attempts",
            "timeout",
        ]

    def test_a_hint_past_the_timeout_stops(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A hint that would end past the timeout means no retry; the rejection is raised."""
        script = Script(RateLimitExceeded("bucket", 8.0), "ok")
        with pytest.raises(RateLimitExceeded) as info:
            make(base_delay=0.5, timeout=5.0).call(script)
        assert info.value is script.raised[0]
        assert script.calls == 1
        assert clock.monotonic() == 0.0
        assert [e.attempts for e in exhausted(events)] == [1]
        assert reasons(events) == ["retry_after_past_timeout"]

    def test_the_spread_stops_at_the_timeout(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A hint that fits the timeout is waited out, its spread cut short at the timeout."""
        script = Script(Hinted(9.5), "ok")
        assert make(base_delay=0.5, timeout=10.0, random=lambda: 0.9).call(script) == "ok"
        assert [e.delay for e in scheduled(events)] == [10.0]
        assert clock.monotonic() == 10.0

    def test_retrying_through_an_open_breaker(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """A retry around a breaker waits out the open timeout instead of hammering it."""
        breaker = CircuitBreaker(failure_threshold=1, open_timeout=5.0, clock=clock, bus=bus)
        script = Script(Boom, "ok")
        policy = Retry(
            attempts=5, base_delay=0.5, jitter=None, random=lambda: 0.0, clock=clock, bus=bus
        )
        assert policy.call(breaker.call, script) == "ok"
        assert script.calls == 2
        assert [e.delay for e in scheduled(events)] == [0.5, 4.5]
        assert isinstance(scheduled(events)[1].error, CircuitOpenError)
        assert clock.monotonic() == 5.0

    def test_defaults_fail_fast_once_the_breaker_is_open(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """compose(Retry(), CircuitBreaker()) with every default, on a dependency that
        always fails: once the breaker is open, calls raise CircuitOpenError at once."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(Retry(clock=clock, bus=bus), breaker)
        script = Script(ConnectionError)
        with pytest.raises((ConnectionError, CircuitOpenError)):
            policy.call(script)
        assert breaker.state is CircuitState.OPEN
        tries, opened_at = script.calls, clock.monotonic()
        assert opened_at < 2.0  # the backoff of the first call, nothing like open_timeout
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                policy.call(script)
            assert clock.monotonic() == opened_at
        assert script.calls == tries

    @pytest.mark.anyio
    async def test_defaults_fail_fast_once_the_breaker_is_open_async(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """The same on the async path: no sleep is started once the breaker is open."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        policy = compose(Retry(clock=clock, bus=bus), breaker)
        script = Script(ConnectionError)
        with pytest.raises((ConnectionError, CircuitOpenError)):
            await drive(clock, lambda: policy.call_async(script.acall), step=0.01)
        assert breaker.state is CircuitState.OPEN
        tries, opened_at = script.calls, clock.monotonic()
        with anyio.fail_after(5):  # a sleep on the manual clock would never end
            for _ in range(3):
                with pytest.raises(CircuitOpenError):
                    await policy.call_async(script.acall)
        assert clock.monotonic() == opened_at
        assert script.calls == tries

    @pytest.mark.anyio
    async def test_async_hint(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The async path honours retry_after too."""
        script = Script(CircuitOpenError("cb", 3.0), "ok")
        policy = make(base_delay=0.25, random=lambda: 0.0)
        assert await drive(clock, lambda: policy.call_async(script.acall)) == "ok"
        assert [e.delay for e in scheduled(events)] == [3.0]
        assert clock.monotonic() == 3.0


class TestTimeout:
    def test_no_sleep_that_would_end_past_the_timeout(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """timeout=1.0 with delays 0.4, 0.8: the second retry (ending at 1.2) is not made."""
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            make(attempts=10, base_delay=0.4, timeout=1.0).call(script)
        assert script.calls == 2
        assert info.value is script.raised[-1]
        assert clock.monotonic() == 0.4
        assert [e.delay for e in scheduled(events)] == [0.4]
        (event,) = exhausted(events)
        assert (event.attempts, event.error) == (2, script.raised[-1])

    def test_a_sleep_ending_exactly_at_the_timeout_is_allowed(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A sleep that ends exactly at the deadline is not past it."""
        script = Script(Boom)
        with pytest.raises(Boom):
            make(attempts=10, base_delay=0.5, timeout=1.5).call(script)
        assert script.calls == 3
        assert clock.monotonic() == 1.5

    def test_time_spent_in_tries_counts(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """The timeout covers the tries themselves, not only the sleeps."""

        calls = 0

        def slow() -> NoReturn:
            nonlocal calls
            calls += 1
            clock.advance(0.25)
            raise Boom

        with pytest.raises(Boom):
            make(attempts=10, base_delay=0.5, multiplier=1.0, timeout=1.0).call(slow)
        # 0 -> 0.25 try, sleep to 0.75, try to 1.0; another 0.5 would end at 1.5.
        assert calls == 2
        assert clock.monotonic() == 1.0

    def test_timeout_starts_with_the_call(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """The deadline is measured from each call, not from when the policy was built."""
        policy = make(attempts=10, base_delay=0.5, multiplier=1.0, timeout=1.0)
        clock.advance(100.0)
        script = Script(Boom)
        with pytest.raises(Boom):
            policy.call(script)
        assert script.calls == 3
        assert clock.monotonic() == 101.0

    def test_timeout_with_if_result_returns_the_last_result(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A timeout reached on rejected results returns the last result."""
        counter = iter(range(100))
        policy = make(
            attempts=100, base_delay=1.0, multiplier=1.0, timeout=2.5, if_result=lambda r: True
        )
        result = policy.call(lambda: next(counter))
        assert result == 2
        assert clock.monotonic() == 2.0

    def test_attempts_still_bound_a_generous_timeout(self, make: Callable[..., Retry]) -> None:
        """A long timeout does not add tries beyond attempts."""
        script = Script(Boom)
        with pytest.raises(Boom):
            make(attempts=3, base_delay=0.1, timeout=1_000.0).call(script)
        assert script.calls == 3

    @pytest.mark.anyio
    async def test_async_timeout(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """The async path stops before a sleep that would end past the timeout."""
        script = Script(Boom)
        policy = make(attempts=10, base_delay=0.5, timeout=1.0)
        with pytest.raises(Boom) as info:
            await drive(clock, lambda: policy.call_async(script.acall))
        assert script.calls == 2
        assert info.value is script.raised[-1]
        assert clock.monotonic() == 0.5


class TestBudget:
    def test_refusal_raises_the_original_error_at_once(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A refused retry raises the try's own exception without sleeping."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        script = Script(Boom, "ok")
        with pytest.raises(Boom) as info:
            make(base_delay=1.0, budget=budget).call(script)
        assert script.calls == 1
        assert info.value is script.raised[0]
        assert info.value.__context__ is None
        assert clock.monotonic() == 0.0
        (event,) = refused(events)
        assert (event.source, event.attempt, event.error, event.at) == ("r", 1, info.value, 0.0)
        assert scheduled(events) == []
        assert exhausted(events) == []

    def test_refusal_of_a_result_returns_it(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A refused retry on an if_result rejection returns the result."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        script = Script("pending", "done")
        policy = make(budget=budget, if_result=lambda r: r == "pending")
        assert policy.call(script) == "pending"
        assert script.calls == 1
        assert [e.error for e in refused(events)] == [None]

    def test_refused_part_way(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The budget may allow some retries of a call and refuse the next."""
        budget = RetryBudget(ratio=0, min_per_second=0.1, window=20, clock=clock)  # 2 retries
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            make(attempts=10, base_delay=1.0, budget=budget).call(script)
        assert script.calls == 3
        assert info.value is script.raised[-1]
        assert [e.attempt for e in refused(events)] == [3]

    def test_every_call_deposits(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """Each call through the policy counts one first try, success or not."""
        budget = RetryBudget(ratio=0.5, min_per_second=0, clock=clock)
        policy = make(budget=budget)
        for _ in range(6):
            policy.call(Script("ok"))
        assert budget.available == 3.0

    def test_storm_of_failing_calls_stays_within_the_ratio(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """1,000 failing calls at ratio 0.2 make 1,200 tries, not 3,000."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        policy = make(attempts=3, base_delay=0.0, budget=budget)
        script = Script(Boom)
        for _ in range(1_000):
            with pytest.raises(Boom):
                policy.call(script)
        retries = script.calls - 1_000
        assert retries == 200
        assert len(scheduled(events)) == retries
        assert len(refused(events)) + len(exhausted(events)) == 1_000

    def test_storm_with_the_floor(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """The floor adds min_per_second * window retries on top of the ratio."""
        budget = RetryBudget(ratio=0.2, min_per_second=10, window=10, clock=clock)
        script = Script(Boom)
        policy = make(attempts=5, base_delay=0.0, budget=budget)
        for _ in range(1_000):
            with pytest.raises(Boom):
                policy.call(script)
        assert script.calls - 1_000 == 300

    def test_shared_between_policies(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """Two policies sharing one budget draw from the same pool."""
        budget = RetryBudget(ratio=0, min_per_second=0.3, window=10, clock=clock)  # 3 retries
        first, second = make(budget=budget, attempts=3), make(budget=budget, attempts=3)
        a, b = Script(Boom), Script(Boom)
        with pytest.raises(Boom):
            first.call(a)
        with pytest.raises(Boom):
            second.call(b)
        assert (a.calls, b.calls) == (3, 2)

    @pytest.mark.anyio
    async def test_async_storm_of_concurrent_calls(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """1,000 concurrent failing tasks retry at most ratio times their first tries."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        policy = make(attempts=3, base_delay=0.0, budget=budget)
        script = Script(Boom)
        failures = 0

        async def one() -> None:
            nonlocal failures
            try:
                await policy.call_async(script.acall)
            except Boom:
                failures += 1

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(1_000):
                    tg.start_soon(one)
        assert failures == 1_000
        retries = script.calls - 1_000
        assert 0 < retries <= 200
        assert len(scheduled(events)) == retries
        assert len(refused(events)) > 0
        assert clock.monotonic() == 0.0


class TestEvents:
    def test_scheduled_and_exhausted(self, make: Callable[..., Retry], events: list[Event]) -> None:
        """Each retry publishes RetryScheduled; giving up publishes RetryExhausted."""
        script = Script(Boom)
        with pytest.raises(Boom):
            make(name="fetch", attempts=3, base_delay=1.0).call(script)
        first, second, last = events
        assert first == RetryScheduled(
            source="fetch", at=0.0, attempt=1, delay=1.0, error=script.raised[0]
        )
        assert second == RetryScheduled(
            source="fetch", at=1.0, attempt=2, delay=2.0, error=script.raised[1]
        )
        assert last == RetryExhausted(source="fetch", at=3.0, attempts=3, error=script.raised[2])
        assert first.error is script.raised[0]
        assert last.error is script.raised[2]

    def test_success_after_retries_publishes_no_exhausted(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A call that succeeds on a retry publishes RetryScheduled only."""
        make().call(Script(Boom, "ok"))
        assert [type(e) for e in events] == [RetryScheduled]

    def test_non_matching_error_publishes_nothing(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """An exception the policy does not retry ends the call silently."""
        with pytest.raises(Other):
            make(on=Boom).call(Script(Boom, Other))
        assert [type(e) for e in events] == [RetryScheduled]

    def test_nothing_published_when_nobody_listens(self, clock: ManualClock) -> None:
        """With no subscriber, the policy asks the bus and publishes (builds) nothing."""
        bus = CountingBus()
        budget = RetryBudget(ratio=0, min_per_second=0.2, window=10, clock=clock)  # 2 retries
        policy = Retry(attempts=2, jitter=None, budget=budget, clock=clock, bus=bus)
        for _ in range(3):
            with pytest.raises(Boom):
                policy.call(Script(Boom))
        assert sum(bus.published.values()) == 0
        assert bus.asked[RetryScheduled] > 0
        assert bus.asked[RetryExhausted] > 0
        assert bus.asked[RetryRefused] > 0

    def test_only_wanted_events_are_published(self, clock: ManualClock) -> None:
        """A subscriber to RetryExhausted alone gets it; RetryScheduled is never published."""
        bus = CountingBus()
        seen: list[RetryExhausted] = []
        bus.subscribe(RetryExhausted, seen.append)
        with pytest.raises(Boom):
            Retry(attempts=4, jitter=None, clock=clock, bus=bus).call(Script(Boom))
        assert bus.published == Counter({RetryExhausted: 1})
        assert len(seen) == 1

    def test_default_bus(self, clock: ManualClock) -> None:
        """Without bus=, events go to the process-wide default bus."""
        seen: list[Event] = []
        unsubscribe = default_bus().subscribe(RetryScheduled, seen.append)
        try:
            Retry(name="on-default", jitter=None, clock=clock).call(Script(Boom, "ok"))
        finally:
            unsubscribe()
        assert [e.source for e in seen] == ["on-default"]

    def test_a_raising_handler_does_not_break_the_retry(
        self, make: Callable[..., Retry], bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A handler that raises is logged; the retry carries on."""

        def bad(event: Event) -> None:
            raise RuntimeError("handler")

        bus.subscribe(RetryScheduled, bad)
        assert make().call(Script(Boom, "ok")) == "ok"
        assert "handler" in caplog.text


class TestForms:
    def test_bare_decorator(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """@retry alone uses the defaults: five tries, full jitter from 0.1 s doubling."""
        slept: list[float] = []
        monkeypatch.setattr(time, "sleep", slept.append)
        script = Script(Boom, Boom, Boom, Boom, "ok")

        @retry
        def fetch(x: int) -> str:
            """Fetch."""
            return str(script(x))

        assert fetch(1) == "ok"
        assert script.calls == 5
        assert len(slept) == 4
        for delay, cap in zip(slept, [0.1, 0.2, 0.4, 0.8], strict=True):
            assert 0.0 <= delay <= cap

    def test_bare_decorator_gives_up_after_five(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """@retry alone gives up after five tries."""
        monkeypatch.setattr(time, "sleep", lambda s: None)
        script = Script(Boom)
        with pytest.raises(Boom):
            retry(script)()
        assert script.calls == 5

    @pytest.mark.anyio
    async def test_bare_decorator_on_async(self) -> None:
        """@retry alone works on an async def and keeps it a coroutine function."""

        @retry
        async def fetch(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x * 2

        assert inspect.iscoroutinefunction(fetch)
        assert await fetch(21) == 42

    def test_retry_with_options_is_a_policy(self, clock: ManualClock, bus: EventBus) -> None:
        """retry(...) with options returns a Retry, usable as a decorator."""
        policy = retry(on=Boom, attempts=3, jitter=None, clock=clock, bus=bus)
        assert isinstance(policy, Retry)
        script = Script(Boom, Boom, "ok")

        @policy
        def fetch() -> str:
            return str(script())

        assert fetch() == "ok"
        assert script.calls == 3

    def test_retry_with_no_arguments_is_a_default_policy(self) -> None:
        """retry() with nothing is a default Retry."""
        policy = retry()
        assert isinstance(policy, Retry)
        assert repr(policy) == repr(Retry())

    def test_function_and_options_is_a_type_error(self) -> None:
        """retry(fn, attempts=3) mixes the two forms and is refused."""

        def fn() -> None:
            pass

        with pytest.raises(TypeError):
            retry(fn, attempts=3)  # type: ignore[call-overload]

    def test_unknown_option_is_a_type_error(self) -> None:
        """retry(tries=3) names no option and is refused."""
        with pytest.raises(TypeError):
            retry(tries=3)  # type: ignore[call-overload]

    def test_decorator_keeps_metadata(self, make: Callable[..., Retry]) -> None:
        """The wrapper keeps __name__, __doc__, __wrapped__ and the signature."""

        def fetch(url: str, *, timeout: float = 1.0) -> str:
            """Fetch a URL."""
            return url

        wrapped = make()(fetch)
        assert wrapped.__name__ == "fetch"
        assert wrapped.__qualname__ == fetch.__qualname__
        assert wrapped.__doc__ == "Fetch a URL."
        assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
        assert inspect.signature(wrapped) == inspect.signature(fetch)
        assert wrapped("x", timeout=2.0) == "x"

    def test_async_decorator_keeps_metadata(self, make: Callable[..., Retry]) -> None:
        """An async def stays a coroutine function with its name and __wrapped__."""

        async def fetch(url: str) -> str:
            """Fetch."""
            return url

        wrapped = make()(fetch)
        assert inspect.iscoroutinefunction(wrapped)
        assert wrapped.__name__ == "fetch"
        assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
        assert inspect.signature(wrapped) == inspect.signature(fetch)

    def test_decorator_passes_arguments_on_every_try(self, make: Callable[..., Retry]) -> None:
        """Every try gets the same positional and keyword arguments."""
        script = Script(Boom, Boom, "ok")
        assert make()(script)(1, 2, key="v") == "ok"
        assert script.args == [((1, 2), {"key": "v"})] * 3

    def test_call(self, make: Callable[..., Retry]) -> None:
        """policy.call(fn, *args, **kwargs) retries and returns the result."""
        script = Script(Boom, "ok")
        assert make().call(script, 1, k=2) == "ok"
        assert script.args == [((1,), {"k": 2})] * 2

    @pytest.mark.anyio
    async def test_call_async(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """await policy.call_async(fn, *args, **kwargs) retries and returns the result."""
        script = Script(Boom, Boom, "ok")
        policy = make(base_delay=0.5)
        assert await drive(clock, lambda: policy.call_async(script.acall, 1, k=2)) == "ok"
        assert script.args == [((1,), {"k": 2})] * 3
        assert clock.monotonic() == 1.5

    def test_a_policy_decorates_many_functions(self, make: Callable[..., Retry]) -> None:
        """One policy may decorate several functions independently."""
        policy = make(attempts=2)
        a, b = Script(Boom, "a"), Script(Boom, Boom, "b")
        assert policy(a)() == "a"
        with pytest.raises(Boom):
            policy(b)()
        assert (a.calls, b.calls) == (2, 2)

    def test_generators_are_refused(self, make: Callable[..., Retry]) -> None:
        """Decorating a generator function is a TypeError: retrying it would mean nothing."""

        def gen() -> Iterator[int]:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            make()(gen)

    def test_async_generators_are_refused(self, make: Callable[..., Retry]) -> None:
        """Decorating an async generator function is a TypeError."""

        async def agen() -> AsyncIterator[int]:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            make()(agen)

    def test_bare_retry_refuses_generators(self) -> None:
        """@retry alone refuses generator functions too."""

        def gen() -> Iterator[int]:
            yield 1

        with pytest.raises(TypeError):
            retry(gen)

    def test_call_refuses_generator_functions(self, make: Callable[..., Retry]) -> None:
        """policy.call(gen_fn) is a MisuseError (a TypeError) before anything is called."""
        calls = 0

        def gen() -> Iterator[int]:
            nonlocal calls
            calls += 1
            yield 1

        with pytest.raises(MisuseError, match="generator"):
            make().call(gen)
        assert calls == 0

    @pytest.mark.anyio
    async def test_call_async_refuses_async_generator_functions(
        self, make: Callable[..., Retry]
    ) -> None:
        """await policy.call_async(agen_fn) is a TypeError before anything is called."""

        async def agen() -> AsyncIterator[int]:
            yield 1

        with anyio.fail_after(5), pytest.raises(MisuseError, match="generator"):
            await make().call_async(agen)  # type: ignore[arg-type]

    @pytest.mark.anyio
    async def test_call_async_refuses_a_plain_function_before_calling_it(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """await policy.call_async(sync_fn) is a MisuseError naming call(), raised before the
        first call: the function is never run, nothing sleeps, nothing is published."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        script = Script("ok")
        with anyio.fail_after(5), pytest.raises(MisuseError, match=r"not async: use call\(\)"):
            await make(budget=budget).call_async(script)  # type: ignore[arg-type]
        assert script.calls == 0
        assert clock.monotonic() == 0.0
        assert events == []
        assert "0 first tries" in repr(budget)

    @pytest.mark.anyio
    async def test_call_async_takes_a_partial_of_an_async_function(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A functools.partial of an async def is async, and accepted."""
        script = Script(Boom, "ok")
        policy = make(base_delay=0.5)
        partial = functools.partial(script.acall, 1)
        assert await drive(clock, lambda: policy.call_async(partial)) == "ok"
        assert script.args == [((1,), {})] * 2

    def test_call_refuses_an_async_function_before_calling_it(
        self, make: Callable[..., Retry]
    ) -> None:
        """policy.call(async_fn) is a MisuseError naming call_async(); nothing is called."""
        script = Script("ok")
        with pytest.raises(MisuseError, match=r"is async: use call_async\(\)"):
            make().call(script.acall)
        assert script.calls == 0

    def test_the_class_used_as_a_bare_decorator_says_to_call_it(self) -> None:
        """@Retry without parentheses is a TypeError that says to write @Retry()."""
        with pytest.raises(TypeError, match=r"use @Retry\(\)"):

            @Retry  # type: ignore[arg-type]
            def fetch() -> None:
                pass

    @pytest.mark.anyio
    async def test_the_class_used_as_a_bare_decorator_on_async(self) -> None:
        """@Retry without parentheses on an async def says the same."""
        with pytest.raises(TypeError, match=r"use @Retry\(\)"):

            @Retry  # type: ignore[arg-type]
            async def fetch() -> None:
                pass

    def test_non_callables_are_refused(self, make: Callable[..., Retry]) -> None:
        """Decorating something that is not callable is a TypeError."""
        with pytest.raises(TypeError):
            make()(42)

    def test_partial_of_async_function(self, make: Callable[..., Retry]) -> None:
        """A functools.partial of an async def is decorated as async."""
        script = Script("ok")
        wrapped = make()(functools.partial(script.acall, 1))
        assert inspect.iscoroutinefunction(wrapped)

    def test_repr_and_name(self, clock: ManualClock) -> None:
        """repr shows the name, tries, schedule, jitter and timeout; .name is the name."""
        policy = Retry(name="fetch", attempts=3, base_delay=0.5, max_delay=8, clock=clock)
        assert policy.name == "fetch"
        text = repr(policy)
        for part in ("'fetch'", "3 attempts", "0.5s", "8s", "'full'"):
            assert part in text
        assert "timeout" not in text
        timed = Retry(jitter=None, timeout=2.5, clock=clock)
        assert timed.name == "retry"
        assert "None" in repr(timed)
        assert "timeout 2.5s" in repr(timed)


class TestInline:
    def test_first_try_succeeds(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """A block that succeeds ends the loop after one attempt."""
        numbers = []
        for attempt in make():
            with attempt:
                numbers.append(attempt.number)
        assert numbers == [1]
        assert clock.monotonic() == 0.0

    def test_retries_until_the_block_succeeds(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The loop goes round while the block raises, sleeping the schedule between."""
        script = Script(Boom, Boom, "ok")
        numbers, results = [], []
        for attempt in make(base_delay=1.0):
            assert isinstance(attempt, Attempt)
            with attempt:
                numbers.append(attempt.number)
                results.append(script())
        assert numbers == [1, 2, 3]
        assert results == ["ok"]
        assert clock.monotonic() == 3.0
        assert [e.delay for e in scheduled(events)] == [1.0, 2.0]

    def test_exhausted_raises_the_last_exception(self, make: Callable[..., Retry]) -> None:
        """When tries run out the loop raises the last exception itself, unchained."""
        script = Script(Boom)
        with pytest.raises(Boom) as info:
            run_inline(make(attempts=4), script)
        assert script.calls == 4
        assert info.value is script.raised[-1]
        assert info.value.__context__ not in script.raised[:-1]

    def test_non_matching_exception_escapes_at_once(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """An exception outside on= leaves the loop after one try."""
        script = Script(Other, "ok")
        with pytest.raises(Other) as info:
            run_inline(make(on=Boom), script)
        assert script.calls == 1
        assert info.value is script.raised[0]
        assert clock.monotonic() == 0.0

    def test_on_predicate_inline(self, make: Callable[..., Retry]) -> None:
        """The on= predicate decides inline too."""
        script = Script(Boom("again"), Boom("stop"), "ok")
        with pytest.raises(Boom, match="stop"):
            run_inline(make(on=lambda e: str(e) == "again"), script)
        assert script.calls == 2

    def test_keyboard_interrupt_escapes(self, make: Callable[..., Retry]) -> None:
        """KeyboardInterrupt in the block is never swallowed for another try."""
        script = Script(KeyboardInterrupt, "ok")
        with pytest.raises(KeyboardInterrupt):
            run_inline(make(on=BaseException), script)
        assert script.calls == 1

    def test_inline_timeout(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """The timeout applies to the whole loop."""
        script = Script(Boom)
        with pytest.raises(Boom):
            run_inline(make(attempts=10, base_delay=0.4, timeout=1.0), script)
        assert script.calls == 2
        assert clock.monotonic() == 0.4

    def test_inline_retry_after(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """An inline loop honours retry_after too."""
        script = Script(CircuitOpenError("cb", 7.0), "ok")
        for attempt in make(base_delay=0.5, random=lambda: 0.0):
            with attempt:
                script()
        assert clock.monotonic() == 7.0

    def test_inline_budget(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """An inline loop deposits once and raises at once when the budget refuses."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        script = Script(Boom, "ok")
        with pytest.raises(Boom) as info:
            run_inline(make(budget=budget), script)
        assert info.value is script.raised[0]
        assert clock.monotonic() == 0.0

    def test_each_loop_is_independent(self, make: Callable[..., Retry]) -> None:
        """Iterating a policy twice gives two fresh counts."""
        policy = make(attempts=2)
        for _ in range(2):
            script = Script(Boom, "ok")
            for attempt in policy:
                with attempt:
                    script()
            assert script.calls == 2

    def test_attempt_repr(self, make: Callable[..., Retry]) -> None:
        """An attempt shows its number and the number of tries."""
        for attempt in make(attempts=3):
            with attempt:
                assert repr(attempt) == "<Attempt 1 of 3>"

    @pytest.mark.anyio
    async def test_async_for(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """`async for attempt in policy` retries, sleeping on the clock between tries."""
        script = Script(Boom, Boom, "ok")
        policy = make(base_delay=0.5)

        async def loop() -> list[int]:
            numbers = []
            async for attempt in policy:
                with attempt:
                    numbers.append(attempt.number)
                    await script.acall()
            return numbers

        assert await drive(clock, loop) == [1, 2, 3]
        assert clock.monotonic() == 1.5
        assert [e.delay for e in scheduled(events)] == [0.5, 1.0]

    @pytest.mark.anyio
    async def test_async_for_exhausted(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """`async for` raises the last exception itself when tries run out."""
        script = Script(Boom)
        policy = make(attempts=3, base_delay=0.25)

        async def loop() -> None:
            async for attempt in policy:
                with attempt:
                    await script.acall()

        with pytest.raises(Boom) as info:
            await drive(clock, loop)
        assert script.calls == 3
        assert info.value is script.raised[-1]


@pytest.mark.anyio
class TestAsync:
    async def test_decorated_async_retries(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """An async def retries on the clock, with the exact schedule."""
        script = Script(Boom, Boom, Boom, "ok")

        @make(base_delay=0.25, multiplier=2.0)
        async def fetch(x: int) -> Any:
            return await script.acall(x)

        assert await drive(clock, lambda: fetch(3)) == "ok"
        assert script.calls == 4
        assert [e.delay for e in scheduled(events)] == [0.25, 0.5, 1.0]
        assert clock.monotonic() == 1.75

    async def test_async_sleeps_wait_for_the_clock(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """An async retry sleeps until the clock is advanced, not before."""
        script = Script(Boom, "ok")
        policy = make(base_delay=2.0)
        result: list[Any] = []

        async def run() -> None:
            result.append(await policy.call_async(script.acall))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            assert (script.calls, clock.sleepers) == (1, 1)
            clock.advance(1.999)
            await anyio.wait_all_tasks_blocked()
            assert script.calls == 1
            clock.advance(0.001)
        assert result == ["ok"]
        assert clock.sleepers == 0

    async def test_async_if_result(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """if_result works on async functions, returning the last result when exhausted."""
        script = Script(None)
        policy = make(attempts=3, base_delay=0.5, if_result=lambda r: r is None)
        assert await drive(clock, lambda: policy.call_async(script.acall)) is None
        assert script.calls == 3

    async def test_async_non_matching_raised_at_once(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A non-matching exception leaves an async retry after one try."""
        script = Script(Other, "ok")
        with pytest.raises(Other) as info:
            await make(on=Boom).call_async(script.acall)
        assert script.calls == 1
        assert info.value is script.raised[0]

    async def test_async_budget_refusal(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A refused async retry raises the original error without sleeping."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        script = Script(Boom, "ok")
        with pytest.raises(Boom) as info:
            await make(budget=budget).call_async(script.acall)
        assert info.value is script.raised[0]
        assert clock.sleepers == 0


@pytest.mark.anyio
class TestCancellation:
    async def test_cancelled_mid_sleep_is_not_retried(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """Cancelling a retry while it sleeps propagates at once: no further try."""
        script = Script(Boom, "ok")
        policy = make(attempts=5, base_delay=1.0)
        scope = anyio.CancelScope()
        reached: list[str] = []

        async def run() -> None:
            with scope:
                await policy.call_async(script.acall)
                reached.append("returned")
            reached.append("after scope")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            scope.cancel()
        assert scope.cancelled_caught
        assert reached == ["after scope"]
        assert clock.sleepers == 0
        clock.advance(100.0)
        await anyio.lowlevel.checkpoint()
        assert script.calls == 1
        assert exhausted(events) == []

    async def test_inline_loop_cancelled_mid_sleep(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """Cancelling an `async for` loop mid-sleep leaves it without another try."""
        script = Script(Boom, "ok")
        policy = make(base_delay=1.0)
        scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                async for attempt in policy:
                    with attempt:
                        await script.acall()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            scope.cancel()
        assert scope.cancelled_caught
        assert script.calls == 1
        assert clock.sleepers == 0

    async def test_cancellation_inside_the_call_is_not_retried(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """A try cancelled while it runs is not retried, even with on=BaseException."""
        scope = anyio.CancelScope()
        calls = 0

        async def work() -> str:
            nonlocal calls
            calls += 1
            scope.cancel()
            await anyio.lowlevel.checkpoint()
            return "unreachable"

        with scope:
            await make(on=BaseException).call_async(work)
        assert scope.cancelled_caught
        assert calls == 1
        assert clock.sleepers == 0

    async def test_cancellation_inside_an_inline_block_is_not_retried(
        self, make: Callable[..., Retry]
    ) -> None:
        """A cancelled block in `async for` is not swallowed for another try."""
        scope = anyio.CancelScope()
        calls = 0
        with scope:
            async for attempt in make(on=BaseException):
                with attempt:
                    calls += 1
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        assert calls == 1


class InterruptingClock:
    """A clock whose blocking sleep raises KeyboardInterrupt, like Ctrl-C mid-sleep."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        raise KeyboardInterrupt

    async def sleep_async(self, seconds: float) -> None:  # pragma: no cover - unused
        raise NotImplementedError


class TestInterrupt:
    def test_interrupt_during_sleep_propagates(self, bus: EventBus) -> None:
        """KeyboardInterrupt raised by the clock's sleep propagates without another try."""
        clock = InterruptingClock()
        script = Script(Boom, "ok")
        with pytest.raises(KeyboardInterrupt) as info:
            Retry(jitter=None, base_delay=0.5, clock=clock, bus=bus).call(script)
        assert script.calls == 1
        assert clock.sleeps == [0.5]
        assert not isinstance(info.value.__context__, Boom)

    def test_interrupt_during_inline_sleep_propagates(self, bus: EventBus) -> None:
        """An inline loop interrupted mid-sleep ends without another try."""
        clock = InterruptingClock()
        script = Script(Boom, "ok")
        with pytest.raises(KeyboardInterrupt):
            run_inline(Retry(jitter=None, clock=clock, bus=bus), script)
        assert script.calls == 1

    def test_interrupt_in_the_function_propagates(self, make: Callable[..., Retry]) -> None:
        """KeyboardInterrupt from a later try propagates, not retried."""
        script = Script(Boom, KeyboardInterrupt, "ok")
        with pytest.raises(KeyboardInterrupt) as info:
            make(attempts=10).call(script)
        assert script.calls == 2
        assert info.value is script.raised[-1]


class TestConcurrency:
    def test_threads_keep_their_own_counts(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """Eight threads on one decorated function never share attempt counts."""
        threads_n, rounds = 8, 40
        policy = make(attempts=4, base_delay=0.5)
        lock = threading.Lock()
        calls: Counter[tuple[int, int]] = Counter()
        raised: dict[tuple[int, int], Boom] = {}
        barrier = threading.Barrier(threads_n, timeout=10)

        @policy
        def work(thread: int, round_: int) -> tuple[int, int]:
            key = (thread, round_)
            with lock:
                calls[key] += 1
                n = calls[key]
            if round_ == 0 and n == 1:
                barrier.wait()
            if n <= (thread + round_) % 5:
                exc = raised[key] = Boom(key)
                raise exc
            return key

        results: dict[tuple[int, int], object] = {}

        def worker(thread: int) -> None:
            for round_ in range(rounds):
                results[thread, round_] = outcome(work, thread, round_)

        workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in workers)

        gave_up = 0
        for thread in range(threads_n):
            for round_ in range(rounds):
                key = (thread, round_)
                fails = (thread + round_) % 5
                if fails < 4:
                    assert results[key] == key
                    assert calls[key] == fails + 1
                else:
                    gave_up += 1
                    assert results[key] is raised[key]
                    assert calls[key] == 4
        assert len(scheduled(events)) == sum(calls.values()) - threads_n * rounds
        assert len(exhausted(events)) == gave_up

    @pytest.mark.anyio
    async def test_async_tasks_keep_their_own_counts(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """Interleaved tasks through one decorated async def each keep their own count."""
        tasks = 25
        policy = make(attempts=4, base_delay=1.0, multiplier=1.0)
        calls: defaultdict[int, int] = defaultdict(int)
        raised: dict[int, Boom] = {}

        @policy
        async def work(key: int) -> int:
            calls[key] += 1
            await anyio.lowlevel.checkpoint()
            if calls[key] <= key % 5:
                exc = raised[key] = Boom(key)
                raise exc
            return key

        finished: dict[int, tuple[object, float]] = {}

        async def one(key: int) -> None:
            try:
                finished[key] = (await work(key), clock.monotonic())
            except Boom as exc:
                finished[key] = (exc, clock.monotonic())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for key in range(tasks):
                    tg.start_soon(one, key)
                while True:
                    await anyio.wait_all_tasks_blocked()
                    if len(finished) == tasks:
                        break
                    assert clock.sleepers == tasks - len(finished)
                    clock.advance(1.0)

        for key in range(tasks):
            fails = key % 5
            if fails < 4:
                assert finished[key] == (key, float(fails))
                assert calls[key] == fails + 1
            else:
                assert finished[key] == (raised[key], 3.0)
                assert calls[key] == 4


BAD_CONFIGS: list[tuple[str, Any, type[Exception]]] = [
    ("attempts", 0, ValueError),
    ("attempts", -1, ValueError),
    ("attempts", 2.0, TypeError),
    ("attempts", True, TypeError),
    ("attempts", "3", TypeError),
    ("base_delay", -0.1, ValueError),
    ("base_delay", math.nan, ValueError),
    ("base_delay", math.inf, ValueError),
    ("base_delay", "0.1", TypeError),
    ("max_delay", -1, ValueError),
    ("max_delay", math.nan, ValueError),
    ("max_delay", math.inf, ValueError),
    ("max_delay", None, TypeError),
    ("multiplier", 0.5, ValueError),
    ("multiplier", 0, ValueError),
    ("multiplier", -2, ValueError),
    ("multiplier", math.nan, ValueError),
    ("multiplier", math.inf, ValueError),
    ("multiplier", "2", TypeError),
    ("jitter", "fullest", ValueError),
    ("jitter", "FULL", ValueError),
    ("jitter", True, ValueError),
    ("timeout", 0, ValueError),
    ("timeout", -1.0, ValueError),
    ("timeout", math.nan, ValueError),
    ("timeout", "5", TypeError),
    ("timeout", timedelta(0), ValueError),
    ("timeout", timedelta(seconds=-1), ValueError),
    ("base_delay", timedelta(seconds=-1), ValueError),
    ("on", 42, TypeError),
    ("on", "ValueError", TypeError),
    ("on", int, TypeError),
    ("on", (ValueError, 3), TypeError),
    ("on", b"ValueError", TypeError),
    ("on", (ValueError, "KeyError"), TypeError),
    ("on", KeyboardInterrupt, ValueError),
    ("on", (ValueError, SystemExit), ValueError),
    ("if_result", 3, TypeError),
    ("if_result", "truthy", TypeError),
    ("budget", 0.2, TypeError),
    ("budget", object(), TypeError),
    ("random", 0.5, TypeError),
    ("name", "", ValueError),
    ("name", 7, TypeError),
    ("clock", object(), TypeError),
    ("clock", None, TypeError),
    ("bus", object(), TypeError),
]


class TestConfiguration:
    @pytest.mark.parametrize(("param", "value", "error"), BAD_CONFIGS)
    def test_bad_values_are_rejected(
        self, clock: ManualClock, param: str, value: Any, error: type[Exception]
    ) -> None:
        """Each bad argument fails at construction, naming the parameter."""
        options: dict[str, Any] = {"clock": clock, param: value}
        with pytest.raises(error, match=f"'{param}'"):
            Retry(**options)

    @pytest.mark.parametrize(("param", "value", "error"), BAD_CONFIGS)
    def test_bad_values_through_retry(
        self, clock: ManualClock, param: str, value: Any, error: type[Exception]
    ) -> None:
        """retry(...) with a bad option fails at once, before any function is decorated."""
        options: dict[str, Any] = {"clock": clock, param: value}
        with pytest.raises(error, match=f"'{param}'"):
            retry(**options)

    @pytest.mark.parametrize(
        ("param", "value"),
        [("attempts", 0), ("base_delay", -0.5), ("multiplier", 0.5), ("timeout", -2.0)],
    )
    def test_message_shows_the_value(self, clock: ManualClock, param: str, value: Any) -> None:
        """The error message also shows the bad value."""
        with pytest.raises(ValueError) as info:
            Retry(clock=clock, **{param: value})
        assert repr(value) in str(info.value)

    @pytest.mark.parametrize(
        ("base_delay", "max_delay"), [(1, 0.01), (0.5, 0), (timedelta(seconds=2), 1.5)]
    )
    def test_max_delay_below_base_delay_is_refused(
        self, clock: ManualClock, base_delay: Any, max_delay: Any
    ) -> None:
        """max_delay < base_delay is a ValueError naming both parameters and both values."""
        for build in (Retry, retry):
            with pytest.raises(ValueError) as info:
                build(base_delay=base_delay, max_delay=max_delay, clock=clock)
            message = str(info.value)
            for part in ("'max_delay'", "'base_delay'", repr(max_delay), repr(base_delay)):
                assert part in message

    def test_string_on_names_the_parameter_and_the_whole_value(self, clock: ManualClock) -> None:
        """on="ConnectionError" names 'on' and the whole string, not its first character."""
        with pytest.raises(TypeError) as info:
            Retry(on="ConnectionError", clock=clock)  # type: ignore[arg-type]
        assert "'on'" in str(info.value)
        assert "'ConnectionError'" in str(info.value)

    def test_durations_take_timedelta(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """base_delay, max_delay and timeout accept datetime.timedelta, as their seconds."""
        policy = Retry(
            attempts=10,
            base_delay=timedelta(milliseconds=500),
            max_delay=timedelta(seconds=1),
            timeout=timedelta(seconds=2.5),
            jitter=None,
            clock=clock,
            bus=bus,
        )
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        assert [e.delay for e in scheduled(events)] == [0.5, 1.0, 1.0]
        assert clock.monotonic() == 2.5
        assert "0.5s x2 up to 1s" in repr(policy)
        assert "timeout 2.5s" in repr(policy)

    @pytest.mark.parametrize(
        "options",
        [
            {"attempts": 1},
            {"base_delay": 0},
            {"max_delay": 0, "base_delay": 0},
            {"max_delay": 0.1},
            {"multiplier": 1},
            {"multiplier": 1.0},
            {"jitter": None},
            {"jitter": "equal"},
            {"jitter": "decorrelated"},
            {"timeout": None},
            {"timeout": 1e-6},
            {"timeout": timedelta(microseconds=1)},
            {"base_delay": timedelta(0), "max_delay": timedelta(0)},
            {"base_delay": 1, "max_delay": 1},
            {"on": ()},
            {"on": [ValueError]},
            {"on": BaseException},
            {"on": lambda e: True},
            {"if_result": lambda r: False},
            {"budget": None},
            {"random": random.Random(0).random},
            {"name": "x"},
        ],
    )
    def test_edge_values_are_accepted(self, clock: ManualClock, options: dict[str, Any]) -> None:
        """Values on the edge of the valid range are accepted."""
        Retry(clock=clock, **options)


@pytest.mark.anyio
class TestNoBlockingOnAnEventLoop:
    """A sync retry about to sleep on a thread that runs an event loop refuses instead."""

    async def test_decorated_def_refuses_before_sleeping(self, clock: ManualClock) -> None:
        """The first failure is chained to the RuntimeError; nothing slept, one call made."""
        script = Script(Boom, "ok")
        fetch = Retry(name="r", attempts=3, clock=clock)(script)
        with pytest.raises(RuntimeError, match=r"would block the .* event loop") as info:
            fetch()
        assert "call_async" in str(info.value)
        assert isinstance(info.value.__cause__, Boom)
        assert script.calls == 1
        assert clock.monotonic() == 0

    async def test_on_the_system_clock_too(self) -> None:
        """The real clock refuses the same way, without blocking the loop for a second."""
        script = Script(Boom, "ok")
        with pytest.raises(RuntimeError, match="event loop"):
            Retry(attempts=2, base_delay=1.0, jitter=None).call(script)
        assert script.calls == 1

    async def test_inline_loop_refuses(self, clock: ManualClock) -> None:
        """`for attempt in policy:` in a coroutine refuses before its first sleep."""
        tries = 0
        with pytest.raises(RuntimeError, match="async for attempt in policy") as info:  # noqa: PT012
            for attempt in Retry(attempts=3, on=Boom, clock=clock):
                with attempt:
                    tries += 1
                    raise Boom
        assert tries == 1
        assert isinstance(info.value.__cause__, Boom)

    async def test_a_refused_retry_is_neither_announced_nor_paid_for(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """The refusal comes before the budget's withdrawal and RetryScheduled."""
        budget = RetryBudget(ratio=0.0, min_per_second=1.0, clock=clock)
        before = budget.available
        policy = Retry(attempts=3, budget=budget, clock=clock, bus=bus)
        with pytest.raises(RuntimeError, match="event loop"):
            policy.call(Script(Boom, "ok"))
        assert budget.available == before
        assert not [e for e in events if isinstance(e, (RetryScheduled, RetryRefused))]

    async def test_no_wait_no_refusal(self, clock: ManualClock) -> None:
        """A first try that succeeds, or a zero delay, never waits and is not refused."""
        assert Retry(clock=clock).call(Script("ok")) == "ok"
        script = Script(Boom, "ok")
        assert Retry(base_delay=0, clock=clock).call(script) == "ok"
        assert script.calls == 2

    async def test_a_worker_thread_may_sleep(self, clock: ManualClock) -> None:
        """A thread started from the loop runs no loop: the sync retry sleeps there."""
        script = Script(Boom, Boom, "ok")
        policy = Retry(attempts=3, base_delay=1.0, jitter=None, clock=clock)
        assert await anyio.to_thread.run_sync(policy.call, script) == "ok"
        assert clock.monotonic() == 3.0


class TestUnbounded:
    """attempts=None: no count limit; a timeout, a budget or a non-matching error ends it."""

    def test_retries_until_success(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """Fifty failures, then a success: every failure is retried, on the capped schedule."""
        script = Script(*[Boom] * 50, "ok")
        policy = make(attempts=None, base_delay=1, max_delay=4)
        assert policy.call(script) == "ok"
        assert script.calls == 51
        assert [e.attempt for e in scheduled(events)] == list(range(1, 51))
        assert clock.monotonic() == 1 + 2 + 4 * 48
        assert exhausted(events) == []

    def test_timeout_ends_it(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """A dependency that never recovers: the timeout ends it, the last error raised."""
        script = Script(Boom)
        policy = make(attempts=None, base_delay=1, max_delay=1, timeout=10)
        with pytest.raises(Boom) as info:
            policy.call(script)
        assert info.value is script.raised[-1]
        assert script.calls == 11
        [end] = exhausted(events)
        assert (end.attempts, end.reason, end.error) == (11, "timeout", script.raised[-1])

    def test_budget_ends_it(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The budget refuses the retries it cannot afford, so an unbounded policy stops."""
        budget = RetryBudget(ratio=0, min_per_second=0.5, window=10, clock=clock)
        script = Script(Boom)
        policy = make(attempts=None, base_delay=0.001, budget=budget)
        with pytest.raises(Boom):
            policy.call(script)
        assert script.calls == 6  # the first try and the five retries 0.5/s over 10 s buys
        [end] = refused(events)
        assert end.attempt == 6

    def test_non_matching_error_ends_it(self, make: Callable[..., Retry]) -> None:
        """An error on= does not match is raised at once, however many tries are left."""
        script = Script(Boom, Boom, Other)
        with pytest.raises(Other):
            make(attempts=None, on=Boom).call(script)
        assert script.calls == 3

    def test_hint_over_max_delay_ends_it(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A retry_after hint longer than max_delay ends an unbounded retry too."""
        script = Script(Boom, Hinted(60))
        with pytest.raises(Hinted):
            make(attempts=None, max_delay=5).call(script)
        assert reasons(events) == ["retry_after_over_max_delay"]

    def test_if_result_polls_without_limit(self, make: Callable[..., Retry]) -> None:
        """if_result polls an unbounded number of times until the result is accepted."""
        script = Script(*["pending"] * 30, "done")
        policy = make(attempts=None, if_result=lambda r: r != "done", base_delay=0)
        assert policy.call(script) == "done"
        assert script.calls == 31

    def test_inline_loop(self, make: Callable[..., Retry]) -> None:
        """for attempt in policy: counts on past any default limit; repr says 'Attempt n'."""
        script = Script(*[Boom] * 9, "ok")
        seen: list[str] = []
        for attempt in make(attempts=None, base_delay=0):
            with attempt:
                seen.append(repr(attempt))
                script()
        assert seen[-1] == "<Attempt 10>"
        assert len(seen) == 10

    @pytest.mark.anyio
    async def test_async_decorated_and_inline(self, clock: ManualClock, bus: EventBus) -> None:
        """An async def and an async inline loop retry without limit, on asyncio and trio."""
        policy = Retry(attempts=None, base_delay=0.125, max_delay=0.125, jitter=None, clock=clock)
        script = Script(*[Boom] * 12, "ok")
        assert await drive(clock, lambda: policy.call_async(script.acall)) == "ok"
        assert script.calls == 13
        inline = Script(*[Boom] * 7, "ok")

        async def loop() -> Any:
            async for attempt in policy:
                with attempt:
                    return inline()
            return None

        assert await drive(clock, loop) == "ok"
        assert inline.calls == 8

    def test_repr_and_retry_function(self, clock: ManualClock) -> None:
        """repr says 'unlimited attempts'; retry(attempts=None) builds the same policy."""
        assert "unlimited attempts" in repr(Retry(attempts=None, clock=clock))
        assert "unlimited attempts" in repr(retry(attempts=None, clock=clock))


def halves(attempt: int) -> float:
    """A custom schedule: 8, 4, 2, 1, 0.5 ... seconds."""
    return 16.0 / 2.0**attempt


class TestDelayFunction:
    """delay=fn(attempt): a custom schedule in place of the exponential one."""

    def test_replaces_the_schedule(
        self, make: Callable[..., Retry], clock: ManualClock, events: list[Event]
    ) -> None:
        """The delay after try k is fn(k), capped at max_delay, without jitter exact."""
        asked: list[int] = []

        def fn(attempt: int) -> float:
            asked.append(attempt)
            return halves(attempt)

        policy = make(attempts=5, delay=fn, max_delay=5)
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        assert asked == [1, 2, 3, 4]
        assert [e.delay for e in scheduled(events)] == [5, 4, 2, 1]
        assert clock.monotonic() == 12

    def test_timedelta_answers(self, make: Callable[..., Retry], events: list[Event]) -> None:
        """A delay function may answer a timedelta, and an int."""
        policy = make(attempts=3, delay=lambda k: timedelta(milliseconds=250) * k)
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        assert [e.delay for e in scheduled(events)] == [0.25, 0.5]
        make(attempts=2, delay=lambda k: 3).call(Script(Boom, "ok"))
        assert scheduled(events)[-1].delay == 3.0

    @pytest.mark.parametrize(
        "schedule",
        [
            backoff.exponential(base=0.5, multiplier=3, max=4),
            backoff.linear(start=1, step=0.5, max=2.5),
            backoff.constant(0.75),
        ],
    )
    def test_builders_without_jitter(
        self, make: Callable[..., Retry], events: list[Event], schedule: backoff.Schedule
    ) -> None:
        """With jitter=None each builder's delays are slept exactly."""
        with pytest.raises(Boom):
            make(attempts=8, delay=schedule).call(Script(Boom))
        assert [e.delay for e in scheduled(events)] == [schedule(k) for k in range(1, 8)]

    def test_full_jitter_stays_between_min_and_the_delay(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """Full jitter over a schedule with a min never waits less than the min."""
        schedule = backoff.exponential(base=1, max=8, min=2)
        policy = make(attempts=400, delay=schedule, jitter="full", random=random.Random(5).random)
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        spread = [(e.attempt, e.delay) for e in scheduled(events)]
        assert all(2 <= d <= schedule(k) for k, d in spread)
        assert min(d for _, d in spread) < 2.1  # it does spread down to the min
        assert max(d for _, d in spread) > 7.9

    @pytest.mark.parametrize(
        ("jitter", "r", "expected"),
        [("full", 0.0, 0.0), ("full", 0.5, 2.0), ("equal", 0.0, 2.0), (None, 0.3, 4.0)],
    )
    def test_jitter_over_a_plain_function(
        self,
        make: Callable[..., Retry],
        events: list[Event],
        jitter: Jitter,
        r: float,
        expected: float,
    ) -> None:
        """Over a plain function full jitter is uniform on [0, fn(k)], equal on [fn(k)/2, fn(k)]."""
        policy = make(attempts=2, delay=lambda k: 4.0, jitter=jitter, random=lambda: r)
        with pytest.raises(Boom):
            policy.call(Script(Boom))
        assert scheduled(events)[0].delay == expected

    def test_hint_still_wins(self, make: Callable[..., Retry], events: list[Event]) -> None:
        """A retry_after hint longer than fn(k) is waited out, as with the built-in schedule."""
        script = Script(Hinted(3), "ok")
        policy = make(attempts=2, delay=backoff.constant(1), random=lambda: 0.0)
        assert policy.call(script) == "ok"
        assert scheduled(events)[0].delay == 3.0

    def test_timeout_applies_to_its_delays(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """A delay from the function that would end past timeout ends the retrying."""
        with pytest.raises(Boom):
            make(attempts=None, delay=backoff.linear(start=1, step=1), timeout=7).call(Script(Boom))
        assert [e.delay for e in scheduled(events)] == [1, 2, 3]
        assert reasons(events) == ["timeout"]

    @pytest.mark.parametrize(
        "answer", [-1, -0.5, math.nan, math.inf, -math.inf, "1", None, True, [1]]
    )
    def test_a_bad_answer_is_a_misuse_error(
        self, make: Callable[..., Retry], events: list[Event], answer: Any
    ) -> None:
        """An answer that is no delay raises MisuseError naming the function, the answer and
        the try, chained to the try's error; nothing is slept, nothing announced."""

        def weird(attempt: int) -> Any:
            return answer

        script = Script(Boom)
        with pytest.raises(MisuseError) as info:
            make(delay=weird).call(script)
        message = str(info.value)
        assert repr(answer) in message
        assert "weird" in message
        assert "after try 1" in message
        assert info.value.__cause__ is script.raised[0]
        assert script.calls == 1
        assert scheduled(events) == []

    def test_a_bad_answer_is_not_retried_by_an_outer_retry(
        self, make: Callable[..., Retry]
    ) -> None:
        """The MisuseError is wiring, not a failure: an outer retry lets it through at once."""
        script = Script(Boom)
        inner = make(delay=lambda k: -1)
        outer = make(attempts=5)
        with pytest.raises(MisuseError):
            outer.call(inner.call, script)
        assert script.calls == 1

    def test_a_raising_function_propagates(self, make: Callable[..., Retry]) -> None:
        """An exception from the delay function itself propagates as it is."""

        def broken(attempt: int) -> float:
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            make(delay=broken).call(Script(Boom))

    def test_a_huge_int_is_capped_at_max_delay(
        self, make: Callable[..., Retry], events: list[Event]
    ) -> None:
        """An int too large for a float is longer than any cap: it becomes max_delay."""
        with pytest.raises(Boom):
            make(attempts=2, delay=lambda k: 10**400, max_delay=3).call(Script(Boom))
        assert scheduled(events)[0].delay == 3.0

    @pytest.mark.anyio
    async def test_async_forms(self, clock: ManualClock, bus: EventBus) -> None:
        """call_async, a decorated async def and async for use the function, on both backends."""
        seen: list[RetryScheduled] = []
        bus.subscribe(RetryScheduled, seen.append)
        policy = Retry(
            delay=backoff.linear(start=0.25, step=0.25), jitter=None, clock=clock, bus=bus
        )
        assert await drive(clock, lambda: policy.call_async(Script(Boom, Boom, "ok").acall)) == "ok"
        decorated = policy(Script(Boom, "ok").acall)
        assert await drive(clock, decorated) == "ok"
        assert [e.delay for e in seen] == [0.25, 0.5, 0.25]

    def test_repr_shows_the_schedule(self, clock: ManualClock) -> None:
        """repr names the delay function and the cap."""
        policy = Retry(delay=backoff.constant(2), attempts=3, clock=clock)
        assert repr(policy) == (
            "<Retry 'retry': 3 attempts, delay=constant(2) up to 10s, jitter='full'>"
        )

    @pytest.mark.parametrize(
        ("options", "named"),
        [
            ({"base_delay": 0.5}, "'base_delay'"),
            ({"base_delay": timedelta(seconds=1)}, "'base_delay'"),
            ({"multiplier": 3}, "'multiplier'"),
            ({"jitter": "decorrelated"}, "'jitter'"),
            ({"max_delay": 1, "delay": backoff.exponential(min=2)}, "'max_delay'"),
            ({"delay": 3}, "'delay'"),
            ({"delay": "exponential"}, "'delay'"),
        ],
    )
    def test_conflicts_are_refused(
        self, clock: ManualClock, options: dict[str, Any], named: str
    ) -> None:
        """delay with the options it replaces, decorrelated jitter, a max_delay below the
        schedule's min, or a non-callable: a clear error at construction."""
        options = {"delay": backoff.constant(1), **options}
        for build in (Retry, retry):
            with pytest.raises((ValueError, TypeError)) as info:
                build(clock=clock, **options)
            assert named in str(info.value)

    @pytest.mark.parametrize(
        "options",
        [
            {"base_delay": 0.1},
            {"base_delay": timedelta(milliseconds=100)},
            {"multiplier": 2},
            {"max_delay": 0.01},
            {"max_delay": 2, "delay": backoff.exponential(min=2)},
            {"jitter": None},
            {"jitter": "equal"},
        ],
    )
    def test_defaults_and_small_max_delay_are_accepted(
        self, clock: ManualClock, options: dict[str, Any]
    ) -> None:
        """The default base_delay and multiplier may be spelt out; max_delay may sit below
        the unused base_delay."""
        Retry(clock=clock, **{"delay": backoff.constant(1), **options})


class TestTimedeltaEverywhere:
    """Every duration Retry, retry and RetryBudget take accepts a timedelta."""

    def test_retry_function_and_budget(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """retry(...) and RetryBudget(window=...) read timedeltas as their seconds."""
        budget = RetryBudget(ratio=0, min_per_second=0.2, window=timedelta(seconds=10), clock=clock)
        assert budget.available == 2.0
        decorated = retry(
            attempts=None,
            base_delay=timedelta(seconds=1),
            max_delay=timedelta(seconds=1),
            timeout=timedelta(seconds=30),
            jitter=None,
            budget=budget,
            clock=clock,
            bus=bus,
        )(Script(Boom))
        with pytest.raises(Boom):
            decorated()
        assert [e.delay for e in scheduled(events)] == [1.0, 1.0]
        assert len(refused(events)) == 1


class TestSchedulesFromThreads:
    def test_each_call_asks_for_its_own_attempts(self) -> None:
        """Eight threads through one unbounded policy with a delay function: each call
        asks the function for its own tries 1, 2, 3, ... and sleeps those delays."""
        clock = ManualClock()
        asked: defaultdict[int, list[int]] = defaultdict(list)
        local = threading.local()

        def delay(attempt: int) -> float:
            asked[local.ident].append(attempt)
            return 0.001 * attempt

        policy = Retry(attempts=None, delay=delay, jitter=None, clock=clock)
        errors: list[BaseException] = []

        def worker(ident: int) -> None:
            local.ident = ident
            failures = 5 + ident
            for _ in range(20):
                script = Script(*[Boom] * failures, "ok")
                try:
                    assert policy.call(script) == "ok"
                    assert script.calls == failures + 1
                except BaseException as exc:  # reported below, not lost in the thread
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for ident in range(8):
            assert asked[ident] == list(range(1, 6 + ident)) * 20
