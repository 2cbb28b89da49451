"""Backoff as pure functions: the exponential schedule, its cap, every jitter mode, the
spread of a retry_after hint, and the schedules of ``resilio.backoff``.

Randomness always comes from a seeded ``random.Random(seed).random``, so each
sequence is exact and each statistical bound is checked on the same samples every run.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from resilio import backoff
from resilio._backoff import (
    HINT_SPREAD,
    JITTERS,
    Jitter,
    between,
    delays,
    exponential,
    jittered,
    seconds,
    spread,
)

SAMPLES = 20_000


def const(value: float) -> Callable[[], float]:
    """A 'random' source that always returns *value*."""
    return lambda: value


def jitter_samples(jitter: Jitter, delay: float, seed: int = 7) -> list[float]:
    """SAMPLES jittered first delays for a schedule whose first delay is *delay*."""
    rnd = random.Random(seed).random
    return [
        jittered(
            1,
            delay,
            base_delay=delay,
            multiplier=2.0,
            max_delay=1_000.0,
            jitter=jitter,
            random=rnd,
        )
        for _ in range(SAMPLES)
    ]


class TestExponential:
    def test_doubles_from_the_base(self) -> None:
        """Try k's delay is base * multiplier**(k-1)."""
        assert [exponential(k, 0.5, 2.0, 100.0) for k in range(1, 6)] == [0.5, 1, 2, 4, 8]

    def test_capped_at_max_delay(self) -> None:
        """The schedule never exceeds max_delay and stays there."""
        assert [exponential(k, 1.0, 3.0, 10.0) for k in range(1, 6)] == [1, 3, 9, 10, 10]

    def test_multiplier_one_is_constant(self) -> None:
        """multiplier=1 gives the base delay every time."""
        assert {exponential(k, 0.25, 1.0, 10.0) for k in range(1, 50)} == {0.25}

    def test_base_above_max_is_capped(self) -> None:
        """A base delay above max_delay is capped from the first retry."""
        assert exponential(1, 5.0, 2.0, 2.0) == 2.0

    def test_huge_attempt_does_not_overflow(self) -> None:
        """An attempt number far past float range returns max_delay, no OverflowError."""
        assert exponential(10_000, 0.1, 2.0, 30.0) == 30.0
        assert exponential(10**9, 0.1, 1.5, 30.0) == 30.0

    def test_zero_base_stays_zero_for_any_attempt(self) -> None:
        """base_delay=0 means 0 * anything = 0, even past the overflow point."""
        assert exponential(10, 0.0, 2.0, 30.0) == 0.0
        assert exponential(2_000, 0.0, 2.0, 30.0) == 0.0

    def test_zero_max_delay_is_always_zero(self) -> None:
        """max_delay=0 caps every delay to zero."""
        assert {exponential(k, 1.0, 2.0, 0.0) for k in range(1, 20)} == {0.0}


class TestExactSequences:
    def test_no_jitter_is_the_schedule(self) -> None:
        """jitter=None yields exactly the capped exponential schedule."""
        got = delays(
            8, base_delay=0.1, multiplier=2.0, max_delay=1.0, jitter=None, random=const(0.5)
        )
        assert got == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]

    def test_no_jitter_never_calls_random(self) -> None:
        """jitter=None draws no random numbers at all."""

        def forbidden() -> float:
            raise AssertionError("random() called with jitter=None")

        got = delays(
            5, base_delay=1.0, multiplier=3.0, max_delay=100.0, jitter=None, random=forbidden
        )
        assert got == [1.0, 3.0, 9.0, 27.0]

    @pytest.mark.parametrize("jitter", JITTERS)
    def test_one_attempt_has_no_delays(self, jitter: Jitter) -> None:
        """attempts=1 means no retries and so no delays."""
        assert (
            delays(1, base_delay=1.0, multiplier=2.0, max_delay=9.0, jitter=jitter, random=const(0))
            == []
        )

    @pytest.mark.parametrize("attempts", [2, 3, 7, 20])
    def test_count_is_attempts_minus_one(self, attempts: int) -> None:
        """There is one delay between each pair of tries."""
        got = delays(
            attempts, base_delay=1.0, multiplier=2.0, max_delay=5.0, jitter="full", random=const(0)
        )
        assert len(got) == attempts - 1

    def test_full_jitter_exact_with_a_seed(self) -> None:
        """'full' is random() * schedule, drawn in order from the given source."""
        expected_rnd = random.Random(42)
        schedule = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        expected = [expected_rnd.random() * d for d in schedule]
        got = delays(
            7,
            base_delay=0.5,
            multiplier=2.0,
            max_delay=4.0,
            jitter="full",
            random=random.Random(42).random,
        )
        assert got == expected

    def test_equal_jitter_exact_with_a_seed(self) -> None:
        """'equal' is d/2 + random() * d/2, drawn in order from the given source."""
        expected_rnd = random.Random(3)
        schedule = [1.0, 2.0, 4.0, 8.0, 8.0]
        expected = [d / 2 + expected_rnd.random() * d / 2 for d in schedule]
        got = delays(
            6,
            base_delay=1.0,
            multiplier=2.0,
            max_delay=8.0,
            jitter="equal",
            random=random.Random(3).random,
        )
        assert got == expected

    def test_decorrelated_exact_with_a_seed(self) -> None:
        """'decorrelated' is min(max, uniform(base, 3 * previous)), starting from the base."""
        expected_rnd = random.Random(9)
        base, cap = 0.5, 20.0
        expected = []
        previous = base
        for _ in range(10):
            previous = min(cap, base + expected_rnd.random() * (previous * 3 - base))
            expected.append(previous)
        got = delays(
            11,
            base_delay=base,
            multiplier=2.0,
            max_delay=cap,
            jitter="decorrelated",
            random=random.Random(9).random,
        )
        assert got == pytest.approx(expected, rel=1e-12)

    def test_same_seed_same_sequence(self) -> None:
        """Two sources seeded alike give identical sequences in every mode."""
        for jitter in JITTERS:
            runs = [
                delays(
                    10,
                    base_delay=0.1,
                    multiplier=2.0,
                    max_delay=3.0,
                    jitter=jitter,
                    random=random.Random(5).random,
                )
                for _ in range(2)
            ]
            assert runs[0] == runs[1]


class TestJitterExtremes:
    @pytest.mark.parametrize(
        ("jitter", "low", "high"),
        [("full", 0.0, 7.996), ("equal", 4.0, 7.998), ("decorrelated", 8.0, 23.992)],
    )
    def test_random_at_its_ends(self, jitter: Jitter, low: float, high: float) -> None:
        """random()=0 and random()~1 give the bottom and the top of each mode's range."""
        kwargs: dict[str, Any] = {
            "base_delay": 8.0,
            "multiplier": 2.0,
            "max_delay": 100.0,
            "jitter": jitter,
        }
        assert jittered(1, 8.0, **kwargs, random=const(0.0)) == low
        top = jittered(1, 8.0, **kwargs, random=const(0.9995))
        assert top == pytest.approx(high)

    def test_decorrelated_grows_to_three_times_previous(self) -> None:
        """With random()->1 decorrelated triples the previous delay until the cap."""
        got = delays(
            6,
            base_delay=1.0,
            multiplier=2.0,
            max_delay=50.0,
            jitter="decorrelated",
            random=const(1.0 - 1e-12),
        )
        assert got == pytest.approx([3.0, 9.0, 27.0, 50.0, 50.0], rel=1e-9)

    def test_decorrelated_ignores_multiplier(self) -> None:
        """The decorrelated sequence is the same whatever the multiplier."""
        seqs = {
            tuple(
                delays(
                    8,
                    base_delay=0.2,
                    multiplier=m,
                    max_delay=10.0,
                    jitter="decorrelated",
                    random=random.Random(1).random,
                )
            )
            for m in (1.0, 2.0, 7.5)
        }
        assert len(seqs) == 1

    def test_decorrelated_with_zero_base_stays_zero(self) -> None:
        """A zero base with decorrelated jitter never grows."""
        got = delays(
            5,
            base_delay=0.0,
            multiplier=2.0,
            max_delay=10.0,
            jitter="decorrelated",
            random=const(0.9),
        )
        assert got == [0.0, 0.0, 0.0, 0.0]


class TestJitterStatistics:
    def test_full_is_uniform_on_zero_to_d(self) -> None:
        """'full' samples lie in [0, d) with mean ~d/2 and spread ~d/sqrt(12)."""
        d = 4.0
        samples = jitter_samples("full", d)
        assert all(0.0 <= s < d for s in samples)
        assert statistics.fmean(samples) == pytest.approx(d / 2, rel=0.02)
        assert statistics.pstdev(samples) == pytest.approx(d / 12**0.5, rel=0.03)
        assert min(samples) < 0.01 * d
        assert max(samples) > 0.99 * d

    def test_equal_is_uniform_on_half_d_to_d(self) -> None:
        """'equal' samples lie in [d/2, d) with mean ~3d/4."""
        d = 4.0
        samples = jitter_samples("equal", d)
        assert all(d / 2 <= s < d for s in samples)
        assert statistics.fmean(samples) == pytest.approx(3 * d / 4, rel=0.02)
        assert statistics.pstdev(samples) == pytest.approx(d / 2 / 12**0.5, rel=0.03)
        assert min(samples) < 0.51 * d
        assert max(samples) > 0.99 * d

    def test_decorrelated_first_is_uniform_on_base_to_three_base(self) -> None:
        """The first decorrelated delay is uniform in [base, 3 * base)."""
        base = 2.0
        samples = jitter_samples("decorrelated", base)
        assert all(base <= s < 3 * base for s in samples)
        assert statistics.fmean(samples) == pytest.approx(2 * base, rel=0.02)
        assert min(samples) < 1.01 * base
        assert max(samples) > 2.99 * base

    def test_decorrelated_steps_stay_within_bounds(self) -> None:
        """Every decorrelated delay is in [base, min(cap, 3 * previous)]."""
        base, cap = 0.1, 5.0
        rnd = random.Random(11).random
        for _ in range(500):
            seq = delays(
                12,
                base_delay=base,
                multiplier=2.0,
                max_delay=cap,
                jitter="decorrelated",
                random=rnd,
            )
            previous = base
            for delay in seq:
                assert base <= delay <= min(cap, 3 * previous)
                previous = delay

    @pytest.mark.parametrize("jitter", ["full", "equal"])
    def test_jitter_spreads_every_attempt(self, jitter: Jitter) -> None:
        """Across many seeds, the k-th delay averages to the right share of the schedule."""
        share = 0.5 if jitter == "full" else 0.75
        for attempt in (1, 3, 6):
            rnd = random.Random(attempt).random
            schedule = exponential(attempt, 0.1, 2.0, 2.0)
            samples = [
                jittered(
                    attempt,
                    0.1,
                    base_delay=0.1,
                    multiplier=2.0,
                    max_delay=2.0,
                    jitter=jitter,
                    random=rnd,
                )
                for _ in range(5_000)
            ]
            assert statistics.fmean(samples) == pytest.approx(share * schedule, rel=0.03)


class TestHintSpread:
    def test_the_extra_is_up_to_ten_percent(self) -> None:
        """spread(h) is h plus random() times 10 % of h."""
        assert HINT_SPREAD == 0.1
        assert spread(4.0, const(0.0)) == 4.0
        assert spread(4.0, const(0.5)) == pytest.approx(4.2)
        assert spread(4.0, const(0.999)) == pytest.approx(4.3996)

    def test_a_huge_hint_never_becomes_infinite(self) -> None:
        """An extra that would overflow leaves the hint as it is, never inf."""
        huge = sys.float_info.max
        assert spread(huge, const(0.999)) == huge
        assert spread(huge / 1.05, const(0.999)) == huge / 1.05

    def test_zero_stays_zero(self) -> None:
        """A hint of 0 has nothing to spread."""
        assert spread(0.0, const(0.7)) == 0.0

    def test_seeded_sequence(self) -> None:
        """A seeded random gives the same spread hints every run."""
        seeded = random.Random(9).random
        draws = random.Random(9).random
        assert [spread(3.0, seeded) for _ in range(5)] == [3.0 + 0.3 * draws() for _ in range(5)]

    def test_spreads_evenly(self) -> None:
        """Over many draws the spread hints cover [h, 1.1 h) uniformly."""
        rnd = random.Random(11).random
        samples = [spread(2.0, rnd) for _ in range(SAMPLES)]
        assert min(samples) >= 2.0
        assert max(samples) < 2.2
        assert statistics.fmean(samples) == pytest.approx(2.1, rel=0.002)
        assert len(set(samples)) == SAMPLES

    @given(hint=st.floats(0, 1e300), r=st.floats(0, 1, exclude_max=True))
    def test_never_below_the_hint_nor_over_the_tenth(self, hint: float, r: float) -> None:
        """Whatever the hint and the draw, the result is in [hint, 1.1 * hint]."""
        assert hint <= spread(hint, const(r)) <= hint * 1.1


class TestProperties:
    @given(
        attempts=st.integers(1, 60),
        base=st.floats(0, 100),
        multiplier=st.floats(1, 10),
        cap=st.floats(0, 100),
        jitter=st.sampled_from(JITTERS),
        seed=st.integers(0, 2**32),
    )
    def test_every_delay_is_within_zero_and_max(
        self,
        *,
        attempts: int,
        base: float,
        multiplier: float,
        cap: float,
        jitter: Jitter,
        seed: int,
    ) -> None:
        """Whatever the configuration, every delay is in [0, max_delay]."""
        got = delays(
            attempts,
            base_delay=base,
            multiplier=multiplier,
            max_delay=cap,
            jitter=jitter,
            random=random.Random(seed).random,
        )
        assert len(got) == attempts - 1
        assert all(0.0 <= d <= cap for d in got)

    @given(
        attempts=st.integers(2, 60),
        base=st.floats(0, 100),
        multiplier=st.floats(1, 10),
        cap=st.floats(0, 100),
    )
    def test_schedule_never_shrinks(
        self, attempts: int, base: float, multiplier: float, cap: float
    ) -> None:
        """Without jitter the schedule is non-decreasing and never above the cap."""
        got = delays(
            attempts,
            base_delay=base,
            multiplier=multiplier,
            max_delay=cap,
            jitter=None,
            random=const(0.0),
        )
        assert got == sorted(got)
        assert got[0] == min(base, cap)

    @given(
        attempt=st.integers(1, 5_000),
        base=st.floats(0, 100),
        multiplier=st.floats(1, 10),
        cap=st.floats(0, 100),
        r=st.floats(0, 1, exclude_max=True),
    )
    def test_jitter_never_exceeds_the_schedule(
        self, attempt: int, base: float, multiplier: float, cap: float, r: float
    ) -> None:
        """'full' and 'equal' stay between 0 (or half) and the unjittered delay."""
        d = exponential(attempt, base, multiplier, cap)
        kwargs: dict[str, Any] = {"base_delay": base, "multiplier": multiplier, "max_delay": cap}
        full = jittered(attempt, base, **kwargs, jitter="full", random=const(r))
        equal = jittered(attempt, base, **kwargs, jitter="equal", random=const(r))
        assert 0.0 <= full <= d
        assert d / 2 <= equal <= d


class TestBuilders:
    """resilio.backoff: the exponential, linear and constant schedules for Retry(delay=...)."""

    def test_exponential_defaults_are_the_retry_schedule(self) -> None:
        """exponential() with its defaults gives the delays Retry uses without delay=."""
        schedule = backoff.exponential()
        assert [schedule(k) for k in range(1, 30)] == [
            exponential(k, 0.1, 2.0, math.inf) for k in range(1, 30)
        ]

    def test_exponential_between_min_and_max(self) -> None:
        """Each delay is base * multiplier**(k-1), raised to min and capped at max."""
        schedule = backoff.exponential(base=0.5, multiplier=3, max=20, min=1)
        assert [schedule(k) for k in range(1, 7)] == [1, 1.5, 4.5, 13.5, 20, 20]
        assert (schedule.min, schedule.max) == (1.0, 20.0)

    def test_exponential_huge_attempt_is_the_cap_or_finite(self) -> None:
        """An attempt whose power overflows gives max, or a finite delay without one."""
        assert backoff.exponential(max=30)(100_000) == 30
        uncapped = backoff.exponential()(100_000)
        assert math.isfinite(uncapped)
        assert uncapped > 1e300
        assert backoff.exponential(base=0)(100_000) == 0

    def test_linear_steps_from_the_start(self) -> None:
        """Each delay is start + step * (k-1), between min and max."""
        assert [backoff.linear(start=1, step=2)(k) for k in range(1, 5)] == [1, 3, 5, 7]
        capped = backoff.linear(start=0, step=0.5, max=1.2, min=0.25)
        assert [capped(k) for k in range(1, 6)] == [0.25, 0.5, 1.0, 1.2, 1.2]

    def test_linear_huge_attempt_stays_finite(self) -> None:
        """A step times a huge attempt never becomes infinite."""
        assert math.isfinite(backoff.linear(start=1, step=1e300)(10**10))

    def test_constant_is_the_same_every_time(self) -> None:
        """constant(d) answers d for every attempt; its min is 0 so jitter can spread it."""
        schedule = backoff.constant(0.25)
        assert {schedule(k) for k in (1, 2, 10, 10**9)} == {0.25}
        assert (schedule.min, schedule.max) == (0.0, 0.25)

    def test_timedelta_everywhere(self) -> None:
        """Every duration of every builder takes a timedelta, as its seconds."""
        ms = timedelta(milliseconds=1)
        exp = backoff.exponential(base=100 * ms, max=timedelta(seconds=1), min=200 * ms)
        assert [exp(k) for k in range(1, 6)] == [0.2, 0.2, 0.4, 0.8, 1.0]
        lin = backoff.linear(
            start=timedelta(seconds=1), step=500 * ms, max=2 * timedelta(seconds=1)
        )
        assert [lin(k) for k in range(1, 5)] == [1.0, 1.5, 2.0, 2.0]
        assert backoff.constant(timedelta(minutes=1))(3) == 60.0

    def test_reprs_show_the_call(self) -> None:
        """A schedule's repr is the builder call that made it."""
        assert repr(backoff.exponential(base=0.5, max=30, min=1)) == (
            "exponential(base=0.5, multiplier=2, max=30, min=1)"
        )
        assert repr(backoff.linear(start=1, step=2)) == "linear(start=1, step=2, max=None, min=0)"
        assert repr(backoff.constant(timedelta(seconds=2))) == "constant(2)"

    def test_frozen_and_equal_by_value(self) -> None:
        """A schedule cannot be changed, and equal arguments build equal, hashable schedules."""
        schedule = backoff.exponential(base=1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            schedule.min = 5  # type: ignore[misc]
        assert schedule == backoff.exponential(base=1)
        assert len({schedule, backoff.exponential(base=1), backoff.constant(1)}) == 2
        assert isinstance(schedule, backoff.Schedule)

    @pytest.mark.parametrize(
        ("build", "param", "value", "error"),
        [
            (lambda v: backoff.exponential(base=v), "base", -1, ValueError),
            (lambda v: backoff.exponential(base=v), "base", math.nan, ValueError),
            (lambda v: backoff.exponential(base=v), "base", math.inf, ValueError),
            (lambda v: backoff.exponential(base=v), "base", "1", TypeError),
            (lambda v: backoff.exponential(base=v), "base", timedelta(seconds=-1), ValueError),
            (lambda v: backoff.exponential(multiplier=v), "multiplier", 0.5, ValueError),
            (lambda v: backoff.exponential(multiplier=v), "multiplier", math.nan, ValueError),
            (lambda v: backoff.exponential(multiplier=v), "multiplier", True, TypeError),
            (lambda v: backoff.exponential(max=v), "max", -1, ValueError),
            (lambda v: backoff.exponential(max=v), "max", math.inf, ValueError),
            (lambda v: backoff.exponential(min=v), "min", -0.1, ValueError),
            (lambda v: backoff.exponential(min=v), "min", None, TypeError),
            (lambda v: backoff.linear(start=v, step=1), "start", -1, ValueError),
            (lambda v: backoff.linear(start=1, step=v), "step", -1, ValueError),
            (lambda v: backoff.linear(start=1, step=v), "step", math.nan, ValueError),
            (lambda v: backoff.linear(start=1, step=1, max=v), "max", "2", TypeError),
            (backoff.constant, "delay", -1, ValueError),
            (backoff.constant, "delay", math.inf, ValueError),
            (backoff.constant, "delay", None, TypeError),
        ],
    )
    def test_bad_values_name_the_parameter_and_value(
        self, build: Callable[[Any], object], param: str, value: Any, error: type[Exception]
    ) -> None:
        """Each bad argument fails at once, naming the parameter and showing the value."""
        with pytest.raises(error) as info:
            build(value)
        shown = value.total_seconds() if isinstance(value, timedelta) else value
        assert f"'{param}'" in str(info.value)
        assert repr(shown) in str(info.value)

    @pytest.mark.parametrize(
        "build",
        [
            lambda: backoff.exponential(max=1, min=2),
            lambda: backoff.linear(start=0, step=1, max=timedelta(seconds=1), min=2),
        ],
    )
    def test_max_below_min_is_refused(self, build: Callable[[], object]) -> None:
        """max < min is a ValueError naming both."""
        with pytest.raises(ValueError, match="'max' must be >= 'min'"):
            build()

    @given(
        base=st.floats(0, 100),
        multiplier=st.floats(1, 10),
        low=st.floats(0, 50),
        span=st.none() | st.floats(0, 100),
        attempts=st.lists(st.integers(1, 5000), min_size=2, max_size=10),
    )
    @example(base=2.0, multiplier=2.0, low=0.0, span=None, attempts=[1, 1024])  # 2 * 2**1023
    def test_exponential_is_bounded_and_never_shrinks(
        self, base: float, multiplier: float, low: float, span: float | None, attempts: list[int]
    ) -> None:
        """Every delay lies within [min, max] and a later try never waits less."""
        high = None if span is None else low + span
        schedule = backoff.exponential(base=base, multiplier=multiplier, max=high, min=low)
        values = [schedule(k) for k in sorted(attempts)]
        assert all(low <= v and (high is None or v <= high) and math.isfinite(v) for v in values)
        assert values == sorted(values)

    @given(
        start=st.floats(0, 100),
        step=st.floats(0, 1e308),
        low=st.floats(0, 50),
        attempts=st.lists(st.integers(1, 10**12), min_size=2, max_size=10),
    )
    def test_linear_is_bounded_and_never_shrinks(
        self, start: float, step: float, low: float, attempts: list[int]
    ) -> None:
        """Every delay is finite, at least min, and a later try never waits less."""
        schedule = backoff.linear(start=start, step=step, min=low)
        values = [schedule(k) for k in sorted(attempts)]
        assert all(low <= v and math.isfinite(v) for v in values)
        assert values == sorted(values)


class TestBetween:
    """Jitter over a custom delay: spread within [floor, delay]."""

    @pytest.mark.parametrize(
        ("jitter", "r", "expected"),
        [
            (None, 0.5, 8.0),
            ("full", 0.0, 2.0),
            ("full", 0.5, 5.0),
            ("equal", 0.0, 5.0),
            ("equal", 0.999, 7.997),
        ],
    )
    def test_spread_between_floor_and_delay(
        self, jitter: Jitter, r: float, expected: float
    ) -> None:
        """full is uniform on [floor, d]; equal on the upper half of it; None is d."""
        assert between(2.0, 8.0, jitter, const(r)) == pytest.approx(expected)

    def test_floor_zero_matches_the_schedule_jitter(self) -> None:
        """With a floor of 0, full and equal jitter give exactly what the schedule gives."""
        for jitter in ("full", "equal"):
            ours = [between(0.0, 0.4, jitter, random.Random(3).random) for _ in range(1)]
            theirs = [
                jittered(
                    1,
                    0.4,
                    base_delay=0.4,
                    multiplier=2.0,
                    max_delay=10.0,
                    jitter=jitter,
                    random=random.Random(3).random,
                )
            ]
            assert ours == theirs

    def test_no_room_means_no_random(self) -> None:
        """A delay at or below the floor is returned as is, without drawing."""

        def never() -> float:
            raise AssertionError

        assert between(1.0, 1.0, "full", never) == 1.0

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (0, 0.0),
            (1.5, 1.5),
            (timedelta(seconds=2), 2.0),
            (10**400, sys.float_info.max),
            (-1, None),
            (-(10**400), None),
            (math.nan, None),
            (math.inf, None),
            (True, None),
            ("1", None),
            (None, None),
            (timedelta(seconds=-1), None),
        ],
    )
    def test_seconds_reads_a_delay_answer(self, value: object, expected: float | None) -> None:
        """A delay function's answer: a finite number >= 0 or a timedelta, else None."""
        assert seconds(value) == expected
