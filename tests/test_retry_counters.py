"""The cumulative counters of Retry.stats() and RetryBudget.stats().

Every call through a policy ends in one of resilience4j's four kinds (succeeded or
failed, without or with retry) or as cancelled; the counts must equal what a
subscriber saw in the same run (``RetryScheduled`` for retries, ``RetryExhausted``
for exhaustions, ``RetryRefused`` for refusals) and the calls the test made, in every
form (decorator, ``call``, inline loops), sync and async on asyncio and trio, in
instant mode, against a model of scripted outcomes, and exactly from eight threads.

Time is a ManualClock throughout; nothing sleeps for real.
"""

from __future__ import annotations

import functools
import gc
import math
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilio import (
    BudgetStats,
    CircuitBreaker,
    CircuitOpenError,
    EventBus,
    ManualClock,
    MisuseError,
    Retry,
    RetryBudget,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    RetryStats,
    compose,
)
from resilio._registry import check_unique, kind_of, live, named
from resilio.testing import instant

T = TypeVar("T")

OK = "ok"
KINDS = (
    "succeeded_without_retry",
    "succeeded_with_retry",
    "failed_without_retry",
    "failed_with_retry",
)


class Boom(Exception):
    """The failure the policies retry."""


class Other(Exception):
    """A failure the policies do not retry."""


class Hinted(Exception):
    """A failure with a retry_after hint."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Script:
    """Plays one outcome per try: exception classes (and instances) are raised, anything
    else returned. The last outcome repeats; ``tries`` counts every try."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = outcomes
        self.tries = 0

    def __call__(self) -> Any:
        outcome = self.outcomes[min(self.tries, len(self.outcomes) - 1)]
        self.tries += 1
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            raise outcome(f"try {self.tries}")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def acall(self) -> Any:
        await anyio.lowlevel.checkpoint()
        return self()


class Tally:
    """Counts the retry events published on a bus."""

    def __init__(self, bus: EventBus) -> None:
        self.scheduled = self.exhausted = self.refused = 0
        bus.subscribe(RetryScheduled, self._scheduled)
        bus.subscribe(RetryExhausted, self._exhausted)
        bus.subscribe(RetryRefused, self._refused)

    def _scheduled(self, event: RetryScheduled) -> None:
        self.scheduled += 1

    def _exhausted(self, event: RetryExhausted) -> None:
        self.exhausted += 1

    def _refused(self, event: RetryRefused) -> None:
        self.refused += 1


@pytest.fixture
def tally(bus: EventBus) -> Tally:
    return Tally(bus)


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., Retry]:
    """Build a Retry on the test's clock and bus, exact delays (jitter=None) by default."""

    def factory(**options: Any) -> Retry:
        options.setdefault("jitter", None)
        options.setdefault("clock", clock)
        return Retry(bus=bus, **options)

    return factory


def only(stats: RetryStats, **fields: int) -> None:
    """Assert *fields* of *stats*, and that every other count is zero but the sums."""
    zero = {f.name: 0 for f in attrs.fields(RetryStats)}
    expected = RetryStats(**{**zero, **fields})
    derived = {
        "calls": sum(getattr(expected, k) for k in KINDS) + expected.cancelled,
        "succeeded": expected.succeeded_without_retry + expected.succeeded_with_retry,
        "failed": expected.failed_without_retry + expected.failed_with_retry,
    }
    derived["tries"] = derived["calls"] + expected.retries
    for name, value in derived.items():
        if name not in fields:
            expected = attrs.evolve(expected, **{name: value})
    assert stats == expected


def matches_events(stats: RetryStats, tally: Tally) -> None:
    """The counts a subscriber can see agree with the events it saw."""
    assert stats.retries == tally.scheduled
    assert stats.exhausted == tally.exhausted
    assert stats.refused == tally.refused


def consistent(stats: RetryStats) -> None:
    """The sums hold in any stats read while no call is under way."""
    assert stats.calls == stats.succeeded + stats.failed + stats.cancelled
    assert stats.succeeded == stats.succeeded_without_retry + stats.succeeded_with_retry
    assert stats.failed == stats.failed_without_retry + stats.failed_with_retry
    assert stats.tries == stats.calls + stats.retries
    assert stats.exhausted + stats.refused <= stats.failed


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


# -- the forms ------------------------------------------------------------------------


def decorated(policy: Retry, script: Script) -> Any:
    return policy(script)()


def called(policy: Retry, script: Script) -> Any:
    return policy.call(script)


def inline(policy: Retry, script: Script) -> Any:
    for attempt in policy:
        with attempt:
            return script()
    raise AssertionError("unreachable")  # pragma: no cover


async def decorated_async(policy: Retry, script: Script) -> Any:
    return await policy(script.acall)()


async def called_async(policy: Retry, script: Script) -> Any:
    return await policy.call_async(script.acall)


async def inline_async(policy: Retry, script: Script) -> Any:
    async for attempt in policy:
        with attempt:
            return await script.acall()
    raise AssertionError("unreachable")  # pragma: no cover


SYNC_FORMS = {"decorator": decorated, "call": called, "inline": inline}
ASYNC_FORMS = {"decorator": decorated_async, "call_async": called_async, "inline": inline_async}

# Scripted calls through one policy with attempts=3 and a budget of two retries:
# (outcomes of the tries, the kind the call ends in, its tries, whether it is
# exhausted, whether a retry was refused).
SCRIPT = [
    ((OK,), "succeeded_without_retry", 1),
    ((Boom, OK), "succeeded_with_retry", 2),
    ((Boom, Boom, Boom), "failed_with_retry", 3),  # attempts ran out
    ((Other,), "failed_without_retry", 1),  # not retried
    ((Boom, Other), "failed_with_retry", 2),
    ((Hinted(60.0),), "failed_without_retry", 1),  # a hint over max_delay
    ((OK,), "succeeded_without_retry", 1),
    ((Boom, Boom, OK), "succeeded_with_retry", 3),  # the budget is spent by now
    ((Boom, OK), "failed_without_retry", 1),  # refused
]
EXHAUSTED = 2
REFUSED = 1


def scripted_policy(make: Callable[..., Retry], clock: ManualClock) -> Retry:
    """attempts=3, and a budget of six retries (the script asks for a seventh)."""
    budget = RetryBudget(ratio=0, min_per_second=0.6, window=10, clock=clock)
    return make(on=(Boom, Hinted), attempts=3, base_delay=0.25, max_delay=10.0, budget=budget)


def expected_kinds() -> dict[str, int]:
    kinds = dict.fromkeys(KINDS, 0)
    for _, kind, _ in SCRIPT:
        kinds[kind] += 1
    return kinds


def check_script(stats: RetryStats, tally: Tally, scripts: list[Script]) -> None:
    kinds = expected_kinds()
    tries = sum(script.tries for script in scripts)
    assert [script.tries for script in scripts] == [t for _, _, t in SCRIPT]
    only(
        stats,
        **kinds,
        retries=tries - len(SCRIPT),
        exhausted=EXHAUSTED,
        refused=REFUSED,
    )
    assert stats.tries == tries
    assert stats.calls == len(SCRIPT)
    matches_events(stats, tally)


class TestScript:
    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_sync(
        self, form: str, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """Each scripted call lands in its kind; retries, exhaustions and refusals equal
        the events a subscriber saw; tries equal the function calls made."""
        policy = scripted_policy(make, clock)
        run = SYNC_FORMS[form]
        scripts = []
        for outcomes, kind, _ in SCRIPT:
            script = Script(*outcomes)
            scripts.append(script)
            if kind.startswith("succeeded"):
                assert run(policy, script) == OK
            else:
                with pytest.raises((Boom, Other, Hinted)):
                    run(policy, script)
        check_script(policy.stats(), tally, scripts)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_async(
        self, form: str, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """The same script through the async forms counts the same."""
        policy = scripted_policy(make, clock)
        run = ASYNC_FORMS[form]
        scripts = []
        for outcomes, kind, _ in SCRIPT:
            script = Script(*outcomes)
            scripts.append(script)
            if kind.startswith("succeeded"):
                assert await drive(clock, functools.partial(run, policy, script)) == OK
            else:
                with pytest.raises((Boom, Other, Hinted)):
                    await drive(clock, functools.partial(run, policy, script))
        check_script(policy.stats(), tally, scripts)

    @pytest.mark.parametrize("form", SYNC_FORMS)
    def test_instant_mode_counts_the_same(
        self, form: str, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """Under instant mode no sleep is made, and every count is the same."""
        policy = scripted_policy(make, clock)
        run = SYNC_FORMS[form]
        scripts = []
        with instant():
            for outcomes, kind, _ in SCRIPT:
                script = Script(*outcomes)
                scripts.append(script)
                if kind.startswith("succeeded"):
                    assert run(policy, script) == OK
                else:
                    with pytest.raises((Boom, Other, Hinted)):
                        run(policy, script)
        assert clock.monotonic() == 0.0
        check_script(policy.stats(), tally, scripts)

    @pytest.mark.anyio
    async def test_instant_mode_async(
        self, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """Instant mode counts the same in async calls."""
        policy = scripted_policy(make, clock)
        scripts = []
        with instant():
            for outcomes, kind, _ in SCRIPT:
                script = Script(*outcomes)
                scripts.append(script)
                if kind.startswith("succeeded"):
                    assert await decorated_async(policy, script) == OK
                else:
                    with pytest.raises((Boom, Other, Hinted)):
                        await decorated_async(policy, script)
        check_script(policy.stats(), tally, scripts)

    def test_instant_attempts_cap_counts_as_exhausted(
        self, make: Callable[..., Retry], tally: Tally
    ) -> None:
        """instant(attempts=2) ends a call after two tries: exhausted, failed with retry."""
        policy = make(on=Boom, attempts=5)
        with instant(attempts=2), pytest.raises(Boom):
            decorated(policy, Script(Boom))
        only(policy.stats(), failed_with_retry=1, retries=1, exhausted=1)
        matches_events(policy.stats(), tally)


class TestKinds:
    def test_a_new_policy_counts_nothing(self, make: Callable[..., Retry]) -> None:
        """Every count starts at zero."""
        only(make().stats())

    def test_first_try_success(self, make: Callable[..., Retry]) -> None:
        """A first-try success is one call, one try, no retry."""
        policy = make()
        assert decorated(policy, Script(OK)) == OK
        only(policy.stats(), succeeded_without_retry=1)
        assert policy.stats().tries == 1

    def test_one_attempt_exhausts_at_once(self, make: Callable[..., Retry], tally: Tally) -> None:
        """attempts=1: a failure is exhausted, without retry."""
        policy = make(attempts=1)
        with pytest.raises(Boom):
            decorated(policy, Script(Boom))
        only(policy.stats(), failed_without_retry=1, exhausted=1)
        matches_events(policy.stats(), tally)

    def test_timeout_exhausts(
        self, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """A sleep that would end past the timeout ends the call: exhausted."""
        policy = make(attempts=None, base_delay=1.0, multiplier=1.0, timeout=2.5)
        with pytest.raises(Boom):
            decorated(policy, Script(Boom))
        only(policy.stats(), failed_with_retry=1, retries=2, exhausted=1)
        matches_events(policy.stats(), tally)

    def test_a_hint_past_the_timeout_exhausts(
        self, make: Callable[..., Retry], tally: Tally
    ) -> None:
        """A retry_after hint that would end past the timeout is an exhaustion."""
        policy = make(timeout=5.0)
        with pytest.raises(Hinted):
            decorated(policy, Script(Hinted(7.0)))
        only(policy.stats(), failed_without_retry=1, exhausted=1)
        matches_events(policy.stats(), tally)

    def test_a_result_still_rejected_is_a_failure(
        self, make: Callable[..., Retry], tally: Tally
    ) -> None:
        """When if_result still asks for a retry as tries run out, the last result is
        returned and the call counts as failed (and exhausted), like resilience4j."""
        policy = make(if_result=lambda r: r is None, attempts=3)
        assert decorated(policy, Script(None)) is None
        only(policy.stats(), failed_with_retry=1, retries=2, exhausted=1)
        assert decorated(policy, Script(None, 1)) == 1
        assert decorated(policy, Script(2)) == 2
        only(
            policy.stats(),
            failed_with_retry=1,
            succeeded_with_retry=1,
            succeeded_without_retry=1,
            retries=3,
            exhausted=1,
        )
        matches_events(policy.stats(), tally)

    def test_a_result_refused_by_the_budget_is_a_failure(
        self, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """A result the budget refuses to retry is returned, and counts as failed."""
        budget = RetryBudget(ratio=0, min_per_second=0, clock=clock)
        policy = make(if_result=lambda r: r is None, budget=budget)
        assert decorated(policy, Script(None)) is None
        only(policy.stats(), failed_without_retry=1, refused=1)
        matches_events(policy.stats(), tally)

    @pytest.mark.parametrize("on_try", [1, 2])
    def test_a_predicate_that_raises_ends_the_call_counted(
        self, make: Callable[..., Retry], on_try: int
    ) -> None:
        """An if_result that raises ends the call with its error: a failure, after the
        try it judged."""
        judged: list[object] = []

        def judge(result: object) -> bool:
            judged.append(result)
            if len(judged) == on_try:
                raise Other("judge")
            return True

        policy = make(if_result=judge)
        with pytest.raises(Other):
            decorated(policy, Script(OK))
        kind = "failed_without_retry" if on_try == 1 else "failed_with_retry"
        only(policy.stats(), **{kind: 1}, retries=on_try - 1)

    def test_an_error_on_does_not_match_fails_without_retry(
        self, make: Callable[..., Retry]
    ) -> None:
        """An error outside ``on`` on the first try fails the call without retry, and
        is no exhaustion; after a retry it fails the call with retry."""
        policy = make(on=Boom)
        with pytest.raises(Other):
            decorated(policy, Script(Other))
        with pytest.raises(Other):
            decorated(policy, Script(Boom, Other))
        only(policy.stats(), failed_without_retry=1, failed_with_retry=1, retries=1)

    def test_misuse_is_a_failure(self, make: Callable[..., Retry]) -> None:
        """A MisuseError, never retried, fails the call; so does a delay function that
        answers something that is not a delay."""
        policy = make()
        with pytest.raises(MisuseError):
            decorated(policy, Script(MisuseError("misuse")))
        bad = make(delay=lambda attempt: math.nan, jitter=None)
        with pytest.raises(MisuseError):
            decorated(bad, Script(Boom))
        only(policy.stats(), failed_without_retry=1)
        only(bad.stats(), failed_without_retry=1)

    def test_an_inline_loop_whose_block_is_never_entered(self, make: Callable[..., Retry]) -> None:
        """An inline loop that ends without entering its attempt raised nothing: a
        success; one given up with ``break`` never ended, and is not counted."""
        policy = make()
        for _ in policy:
            pass
        only(policy.stats(), succeeded_without_retry=1)
        for _ in policy:
            break
        only(policy.stats(), succeeded_without_retry=1)

    def test_an_inline_loop_counts_at_the_end_of_its_block(
        self, make: Callable[..., Retry]
    ) -> None:
        """A ``return`` inside the ``with attempt:`` block leaves the loop for good; the
        call is counted as it leaves."""
        policy = make()
        assert inline(policy, Script(Boom, OK)) == OK
        only(policy.stats(), succeeded_with_retry=1, retries=1)

    def test_a_blocking_sleep_refused_on_a_loop_thread_is_a_failure(
        self, make: Callable[..., Retry]
    ) -> None:
        """A sync retry that would block an event loop raises RuntimeError: a failure."""
        policy = make()

        async def main() -> None:
            with pytest.raises(RuntimeError, match="would block"):
                decorated(policy, Script(Boom, OK))

        anyio.run(main)
        only(policy.stats(), failed_without_retry=1)


class TestCancellation:
    @pytest.mark.parametrize("form", SYNC_FORMS)
    @pytest.mark.parametrize("on_try", [1, 2])
    def test_an_interrupted_sync_call_is_cancelled(
        self, make: Callable[..., Retry], form: str, on_try: int
    ) -> None:
        """A KeyboardInterrupt out of a try ends the call as cancelled: neither
        succeeded nor failed, whichever try it came from."""
        policy = make()
        outcomes = [Boom] * (on_try - 1) + [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            SYNC_FORMS[form](policy, Script(*outcomes))
        only(policy.stats(), cancelled=1, retries=on_try - 1)

    @pytest.mark.parametrize("form", ["decorator", "inline"])
    def test_interrupted_in_the_sleep(
        self, make: Callable[..., Retry], clock: ManualClock, form: str
    ) -> None:
        """A KeyboardInterrupt in the sleep before a retry: cancelled, and the retry,
        never made, is not counted."""

        class Interrupting(ManualClock):
            def sleep(self, seconds: float) -> None:  # type: ignore[override]
                raise KeyboardInterrupt

        policy = make(clock=Interrupting())
        with pytest.raises(KeyboardInterrupt):
            SYNC_FORMS[form](policy, Script(Boom, OK))
        only(policy.stats(), cancelled=1)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_cancelled_in_the_sleep(
        self, make: Callable[..., Retry], clock: ManualClock, tally: Tally, form: str
    ) -> None:
        """A task cancelled while it sleeps before a retry: the call is cancelled, the
        retry was scheduled (one event) but never made (not counted)."""
        policy = make(base_delay=5.0)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ASYNC_FORMS[form], policy, Script(Boom, OK))
                await anyio.wait_all_tasks_blocked()
                assert tally.scheduled == 1
                tg.cancel_scope.cancel()
        only(policy.stats(), cancelled=1)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ASYNC_FORMS)
    async def test_cancelled_in_a_try(
        self, make: Callable[..., Retry], clock: ManualClock, form: str
    ) -> None:
        """A task cancelled inside its second try: cancelled, after one retry."""
        policy = make(base_delay=0.0)
        started = anyio.Event()

        async def hang() -> None:
            started.set()
            await anyio.sleep_forever()

        script = Script(Boom, OK)

        async def fn() -> Any:
            if script.tries:
                await hang()
            return await script.acall()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                if form == "inline":

                    async def loop() -> None:
                        async for attempt in policy:
                            with attempt:
                                await fn()

                    tg.start_soon(loop)
                elif form == "call_async":
                    tg.start_soon(policy.call_async, fn)
                else:
                    tg.start_soon(policy(fn))
                await started.wait()
                tg.cancel_scope.cancel()
        only(policy.stats(), cancelled=1, retries=1)


def model(outcomes: tuple[Any, ...], attempts: int) -> tuple[str, int, bool]:
    """The kind a call with these try outcomes ends in, its tries, whether exhausted.

    ``Boom`` is retried, ``Other`` is not, anything else is a result; the last outcome
    repeats."""
    tries = 0
    while True:
        outcome = outcomes[min(tries, len(outcomes) - 1)]
        tries += 1
        with_retry = "without_retry" if tries == 1 else "with_retry"
        if outcome is OK:
            return f"succeeded_{with_retry}", tries, False
        if outcome is Other:
            return f"failed_{with_retry}", tries, False
        if tries == attempts:
            return f"failed_{with_retry}", tries, True


class TestModel:
    @settings(max_examples=150, deadline=None)
    @given(
        attempts=st.integers(1, 4),
        form=st.sampled_from(sorted(SYNC_FORMS)),
        calls=st.lists(
            st.lists(st.sampled_from([OK, Boom, Other]), min_size=1, max_size=5).map(tuple),
            max_size=12,
        ),
    )
    def test_counts_follow_the_model(
        self, attempts: int, form: str, calls: list[tuple[Any, ...]]
    ) -> None:
        """Any sequence of scripted calls counts as a short model says, in every form,
        and equals the events a subscriber saw."""
        clock, bus = ManualClock(), EventBus()
        tally = Tally(bus)
        policy = Retry(on=Boom, attempts=attempts, clock=clock, bus=bus)
        kinds = dict.fromkeys(KINDS, 0)
        tries = exhausted = 0
        for outcomes in calls:
            script = Script(*outcomes)
            try:
                SYNC_FORMS[form](policy, script)
            except (Boom, Other):
                pass
            kind, n, out = model(outcomes, attempts)
            assert script.tries == n
            kinds[kind] += 1
            tries += n
            exhausted += out
        stats = policy.stats()
        only(stats, **kinds, retries=tries - len(calls), exhausted=exhausted)
        matches_events(stats, tally)
        consistent(stats)


class TestThreads:
    def test_eight_threads_exact_totals(self, clock: ManualClock, bus: EventBus) -> None:
        """Eight threads through one budgeted policy, every third call failing once and
        every fifth call failing for good: exact totals, and the budget's deposits and
        withdrawals exact too."""
        tally = Tally(bus)
        budget = RetryBudget(ratio=1, min_per_second=1_000_000, clock=clock)
        policy = Retry(on=Boom, attempts=2, base_delay=0, budget=budget, clock=clock, bus=bus)
        n = 3_000
        barrier = threading.Barrier(8, timeout=10)
        errors: list[BaseException] = []

        def worker() -> None:
            local = threading.local()
            local.tries = 0

            def flaky() -> str:
                local.tries += 1
                if local.call % 5 == 0 or (local.call % 3 == 0 and local.tries == 1):
                    raise Boom
                return OK

            fn = policy(flaky)
            barrier.wait()
            for call in range(n):
                local.call, local.tries = call, 0
                try:
                    fn()
                except Boom:
                    pass
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors
        fail = len([c for c in range(n) if c % 5 == 0])
        retried_ok = len([c for c in range(n) if c % 3 == 0 and c % 5 != 0])
        ok_first = n - fail - retried_ok
        stats = policy.stats()
        only(
            stats,
            succeeded_without_retry=8 * ok_first,
            succeeded_with_retry=8 * retried_ok,
            failed_with_retry=8 * fail,
            retries=8 * (fail + retried_ok),
            exhausted=8 * fail,
        )
        matches_events(stats, tally)
        budget_stats = budget.stats()
        assert budget_stats.deposits == 8 * n
        assert budget_stats.withdrawals == stats.retries
        assert budget_stats.refusals == 0

    def test_reads_while_threads_count_never_go_down(self, clock: ManualClock) -> None:
        """Stats read while four threads call never decrease between two reads, and the
        last read has every call."""
        policy = Retry(on=Boom, attempts=2, base_delay=0, clock=clock, bus=EventBus())
        script_ok = policy(lambda: OK)
        done = threading.Event()
        n = 5_000

        def worker() -> None:
            for _ in range(n):
                script_ok()

        def reader() -> None:
            last = policy.stats()
            while not done.is_set():
                now = policy.stats()
                for field in attrs.fields(RetryStats):
                    assert getattr(now, field.name) >= getattr(last, field.name)
                last = now

        threads = [threading.Thread(target=worker) for _ in range(4)]
        watcher = threading.Thread(target=reader)
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        done.set()
        watcher.join(timeout=60)
        assert not watcher.is_alive()
        only(policy.stats(), succeeded_without_retry=4 * n)


class TestBudgetStats:
    def test_a_new_budget(self, clock: ManualClock) -> None:
        """A new budget has counted nothing, and allows its floor."""
        assert RetryBudget(clock=clock).stats() == BudgetStats(
            deposits=0, withdrawals=0, refusals=0, available=100.0
        )

    def test_counts_and_available(self, clock: ManualClock) -> None:
        """Deposits, withdrawals and refusals count every call; available is now's."""
        budget = RetryBudget(ratio=0.5, min_per_second=0, clock=clock)
        for _ in range(4):
            budget.deposit()
        assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]
        assert budget.stats() == BudgetStats(deposits=4, withdrawals=2, refusals=1, available=0.0)

    def test_counts_outlive_the_window(self, clock: ManualClock) -> None:
        """The counts are cumulative: when the window slides past them, available comes
        back but no count goes down."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        for _ in range(1_000):
            budget.deposit()
        for _ in range(1_001):
            budget.try_withdraw()
        before = budget.stats()
        clock.advance(20)
        after = budget.stats()
        assert (after.deposits, after.withdrawals, after.refusals) == (1_000, 1_000, 1)
        assert (before.available, after.available) == (0.0, 0.0)
        budget.deposit()
        assert budget.stats().available == 1.0

    def test_a_busy_budget_counts_every_deposit(self, clock: ManualClock) -> None:
        """Deposits are exact whether or not the budget has folded them into its window
        yet (it reads the clock only once in many)."""
        budget = RetryBudget(clock=clock)
        for n in range(1, 5_000):
            budget.deposit()
            if n % 997 == 0:
                assert budget.stats().deposits == n
        assert budget.stats().deposits == 4_999

    def test_policies_sharing_a_budget(
        self, make: Callable[..., Retry], clock: ManualClock, tally: Tally
    ) -> None:
        """Two policies on one budget: its deposits are their calls, its withdrawals
        their retries, its refusals their refused counts."""
        budget = RetryBudget(ratio=0, min_per_second=0.3, window=10, clock=clock)
        first = make(on=Boom, budget=budget, base_delay=0.1)
        second = make(on=Boom, budget=budget, base_delay=0.1)
        assert decorated(first, Script(Boom, Boom, OK)) == OK
        assert inline(second, Script(OK)) == OK
        with pytest.raises(Boom):
            called(second, Script(Boom, Boom))
        one, two = first.stats(), second.stats()
        assert budget.stats() == BudgetStats(
            deposits=one.calls + two.calls,
            withdrawals=one.retries + two.retries,
            refusals=one.refused + two.refused,
            available=0.0,
        )
        assert (one.retries, two.retries, two.refused) == (2, 1, 1)
        assert tally.refused == 1


class TestReading:
    def test_stats_are_frozen(self, make: Callable[..., Retry], clock: ManualClock) -> None:
        """Stats are frozen values, compared by value."""
        stats = make().stats()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.calls = 1  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            RetryBudget(clock=clock).stats().deposits = 1  # type: ignore[misc]
        assert make().stats() == stats

    def test_every_field_is_documented(self) -> None:
        """Each field of both stats classes is described in the class docstring."""
        for cls in (RetryStats, BudgetStats):
            for field in attrs.fields(cls):
                assert f"{field.name}:" in (cls.__doc__ or "")

    def test_named_policies_and_budgets_are_exported(self, clock: ManualClock) -> None:
        """A policy and a budget given a name are among the named live primitives, in
        families of their own, so they may share a name; unnamed ones are not."""
        policy = Retry(name="db", clock=clock)
        budget = RetryBudget(name="db", clock=clock)
        unnamed = RetryBudget(clock=clock)
        found = named()
        assert policy in found
        assert budget in found
        assert unnamed not in found
        assert (kind_of(policy), kind_of(budget)) == ("retry", "retrybudget")
        check_unique([policy, budget])

    def test_policies_and_budgets_are_tracked_while_alive(self, clock: ManualClock) -> None:
        """A policy and a budget are in the registry of live primitives until dropped;
        the decorator's policy stays as long as the decorated function."""
        budget = RetryBudget(clock=clock)
        policy = Retry(budget=budget, clock=clock, name="tracked")
        fn = Retry(clock=clock, name="decorating")(lambda: OK)
        alive = live()
        assert policy in alive
        assert budget in alive
        assert any(getattr(p, "name", None) == "decorating" for p in alive)
        del alive
        refs: list[weakref.ref[Any]] = [weakref.ref(policy), weakref.ref(budget)]
        del policy, budget
        gc.collect()
        assert all(ref() is None for ref in refs)
        assert fn() == OK

    def test_composed_retry_counts_its_calls(
        self, make: Callable[..., Retry], clock: ManualClock
    ) -> None:
        """Through compose() the retry counts like any decorator: an open breaker's
        rejection with a hint over max_delay ends the call, exhausted."""
        policy = make(on=(Boom, CircuitOpenError), attempts=5, max_delay=1.0)
        breaker = CircuitBreaker(failure_threshold=2, open_timeout=30, clock=clock, bus=EventBus())
        guarded = compose(policy, breaker)(Script(Boom))
        with pytest.raises(CircuitOpenError):
            guarded()
        # two failures open the breaker; the third try is rejected with a 30 s hint
        only(policy.stats(), failed_with_retry=1, retries=2, exhausted=1)
