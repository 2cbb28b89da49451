"""RetryBudget on its own: deposits and withdrawals, the ratio, the min_per_second
floor, expiry over a window kept in ten slices, a reference model, thread safety, the
cost of a deposit, repr and configuration.

Time is a ManualClock throughout; nothing sleeps for real.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilio import ManualClock, RetryBudget


def withdraw_all(budget: RetryBudget, limit: int = 10_000) -> int:
    """Withdraw until the budget refuses; return how many withdrawals it allowed."""
    taken = 0
    while taken < limit and budget.try_withdraw():
        taken += 1
    return taken


def deposit(budget: RetryBudget, n: int) -> None:
    """Count *n* first tries."""
    for _ in range(n):
        budget.deposit()


class TestDefaults:
    def test_default_ratio_and_floor(self, clock: ManualClock) -> None:
        """Defaults are ratio 0.2 and 10 retries/s over a 10 s window: 100 to start with."""
        budget = RetryBudget(clock=clock)
        assert budget.available == 100.0
        deposit(budget, 50)
        assert budget.available == pytest.approx(110.0)

    def test_ten_buckets(self) -> None:
        """The window is kept in ten slices."""
        assert RetryBudget.BUCKETS == 10

    def test_positional_ratio_and_floor(self, clock: ManualClock) -> None:
        """ratio and min_per_second may be passed positionally."""
        budget = RetryBudget(0.5, 0.0, clock=clock)
        deposit(budget, 4)
        assert budget.available == 2.0


class TestRatio:
    def test_no_deposits_no_retries(self, clock: ManualClock) -> None:
        """With no floor and no first tries, every retry is refused."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        assert budget.available == 0.0
        assert not budget.try_withdraw()

    def test_each_deposit_buys_ratio_retries(self, clock: ManualClock) -> None:
        """Ten first tries at ratio 0.2 buy exactly two retries."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        deposit(budget, 10)
        assert budget.available == pytest.approx(2.0)
        assert withdraw_all(budget) == 2
        assert budget.available == 0.0

    def test_fractional_credit_is_not_a_retry(self, clock: ManualClock) -> None:
        """Four first tries at 0.2 (0.8 of a retry) allow none; the fifth allows one."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        deposit(budget, 4)
        assert not budget.try_withdraw()
        budget.deposit()
        assert budget.try_withdraw()
        assert not budget.try_withdraw()

    def test_withdrawals_accumulate(self, clock: ManualClock) -> None:
        """Deposits and withdrawals interleave: each withdrawal spends what was deposited."""
        budget = RetryBudget(ratio=0.5, min_per_second=0, clock=clock)
        taken = 0
        for _ in range(100):
            budget.deposit()
            taken += withdraw_all(budget)
            assert taken <= 0.5 * (_ + 1)
        assert taken == 50

    def test_ratio_zero_means_floor_only(self, clock: ManualClock) -> None:
        """ratio=0 ignores traffic: only the floor allows retries."""
        budget = RetryBudget(ratio=0, min_per_second=0.5, window=4, clock=clock)
        deposit(budget, 1_000)
        assert withdraw_all(budget) == 2

    def test_ratio_above_one(self, clock: ManualClock) -> None:
        """A ratio above 1 allows more retries than first tries."""
        budget = RetryBudget(ratio=3, min_per_second=0, clock=clock)
        deposit(budget, 2)
        assert withdraw_all(budget) == 6

    def test_available_is_never_negative(self, clock: ManualClock) -> None:
        """available is clamped at zero, and refusals take nothing."""
        budget = RetryBudget(ratio=0.2, min_per_second=0, clock=clock)
        for _ in range(5):
            assert not budget.try_withdraw()
        assert budget.available == 0.0
        deposit(budget, 5)
        assert budget.available == pytest.approx(1.0)


class TestFloor:
    def test_floor_allows_retries_without_traffic(self, clock: ManualClock) -> None:
        """min_per_second=1 over a 10 s window allows ten retries with no first tries."""
        budget = RetryBudget(ratio=0.2, min_per_second=1, window=10, clock=clock)
        assert withdraw_all(budget) == 10
        assert not budget.try_withdraw()

    def test_floor_adds_to_the_ratio(self, clock: ManualClock) -> None:
        """The floor and the ratio add up."""
        budget = RetryBudget(ratio=0.5, min_per_second=2, window=5, clock=clock)
        deposit(budget, 20)
        assert budget.available == pytest.approx(20.0)
        assert withdraw_all(budget) == 20

    def test_floor_scales_with_the_window(self, clock: ManualClock) -> None:
        """The floor is per second: a window twice as long allows twice as many."""
        short = RetryBudget(ratio=0, min_per_second=3, window=2, clock=clock)
        long = RetryBudget(ratio=0, min_per_second=3, window=4, clock=clock)
        assert withdraw_all(short) == 6
        assert withdraw_all(long) == 12

    def test_floor_refills_as_withdrawals_expire(self, clock: ManualClock) -> None:
        """Retries taken from the floor come back once they leave the window."""
        budget = RetryBudget(ratio=0, min_per_second=1, window=10, clock=clock)
        assert withdraw_all(budget) == 10
        clock.advance(9.9)
        assert not budget.try_withdraw()
        clock.advance(0.1)
        assert withdraw_all(budget) == 10


class TestExpiry:
    def test_deposits_expire_after_the_window(self, clock: ManualClock) -> None:
        """A first try counts for the window, then no more."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        deposit(budget, 3)
        clock.advance(9.99)
        assert budget.available == 3.0
        clock.advance(0.01)
        assert budget.available == 0.0
        assert not budget.try_withdraw()

    def test_counts_leave_a_slice_at_a_time(self, clock: ManualClock) -> None:
        """Deposits made in different slices expire slice by slice."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        for second in range(10):
            clock.advance(1.0 if second else 0.0)
            deposit(budget, second + 1)  # 1 at t=0, 2 at t=1, ... 10 at t=9
        assert budget.available == 55.0
        expected = 55
        for second in range(10):
            clock.advance(1.0)  # t = 10 + second: the slice from t = second leaves
            expected -= second + 1
            assert budget.available == expected

    def test_a_slice_is_window_over_ten(self, clock: ManualClock) -> None:
        """With a 2 s window the slices are 0.2 s: a deposit lives until its slice leaves."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=2, clock=clock)
        clock.advance(0.1)  # inside the first 0.2 s slice
        budget.deposit()
        clock.advance(1.85)  # t = 1.95, still in the window
        assert budget.available == 1.0
        clock.advance(0.1)  # t = 2.05: the slice [0, 0.2) left
        assert budget.available == 0.0

    def test_withdrawals_expire_too(self, clock: ManualClock) -> None:
        """Old retries stop counting against the budget with the deposits that paid them."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        deposit(budget, 2)
        assert withdraw_all(budget) == 2
        clock.advance(5)
        budget.deposit()
        assert budget.try_withdraw()
        assert not budget.try_withdraw()
        clock.advance(5)  # t=10: the deposits and withdrawals from t=0 leave
        assert budget.available == 0.0  # 1 deposit, 1 withdrawal left
        budget.deposit()
        assert withdraw_all(budget) == 1
        clock.advance(10)
        assert budget.available == 0.0

    def test_a_long_idle_gap_clears_everything(self, clock: ManualClock) -> None:
        """After many windows of silence the ring is empty and works as new."""
        budget = RetryBudget(ratio=0.5, min_per_second=0, window=10, clock=clock)
        deposit(budget, 100)
        withdraw_all(budget)
        clock.advance(12_345.6)
        assert budget.available == 0.0
        deposit(budget, 4)
        assert withdraw_all(budget) == 2

    def test_gaps_shorter_than_a_window(self, clock: ManualClock) -> None:
        """Gaps of a few slices keep exactly the slices still in the window."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        budget.deposit()  # t=0
        clock.advance(3)
        deposit(budget, 2)  # t=3
        clock.advance(4)
        deposit(budget, 4)  # t=7
        clock.advance(4)  # t=11: t=0 left
        assert budget.available == 6.0
        clock.advance(2)  # t=13: t=3 left
        assert budget.available == 4.0
        clock.advance(4)  # t=17: t=7 left
        assert budget.available == 0.0

    def test_any_start_time(self) -> None:
        """A clock that starts far from zero changes nothing."""
        clock = ManualClock(start=98_765.43)
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        deposit(budget, 2)
        assert withdraw_all(budget) == 2
        clock.advance(10)
        deposit(budget, 1)
        assert withdraw_all(budget) == 1


class Model:
    """The budget as specified: every deposit and withdrawal stamped with its own time."""

    def __init__(self, ratio: float, min_per_second: float, window: float) -> None:
        self.ratio, self.floor, self.window = ratio, min_per_second, window
        self.deposits: list[int] = []  # the slice of each first try
        self.withdrawals: list[int] = []

    def _live(self, stamps: list[int], now: float) -> int:
        epoch = int(now // (self.window / RetryBudget.BUCKETS))
        return sum(1 for stamp in stamps if epoch - stamp < RetryBudget.BUCKETS)

    def slice(self, now: float) -> int:
        return int(now // (self.window / RetryBudget.BUCKETS))

    def available(self, now: float) -> float:
        allowed = self.ratio * self._live(self.deposits, now) + self.floor * self.window
        return max(0.0, allowed - self._live(self.withdrawals, now))

    def try_withdraw(self, now: float) -> bool:
        if self.available(now) < 1:
            return False
        self.withdrawals.append(self.slice(now))
        return True


operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(1, 40)),
        st.tuples(st.just("withdraw"), st.integers(1, 5)),
        st.tuples(st.just("advance"), st.floats(0, 4)),
        st.tuples(st.just("available"), st.just(0)),
    ),
    max_size=60,
)


class TestModel:
    @settings(max_examples=150, deadline=None)
    @given(ops=operations, ratio=st.sampled_from([0.0, 0.2, 0.5, 1.0, 3.0]))
    def test_quiet_traffic_matches_the_model_exactly(
        self, ops: list[tuple[str, Any]], ratio: float
    ) -> None:
        """With fewer than 32 first tries per slice, every count is exactly the model's."""
        clock = ManualClock()
        budget = RetryBudget(ratio=ratio, min_per_second=0.5, window=10, clock=clock)
        model = Model(ratio, 0.5, 10)
        in_slice: dict[int, int] = {}
        for op, arg in ops:
            now = clock.monotonic()
            if op == "deposit":
                room = 31 - in_slice.get(model.slice(now), 0)
                for _ in range(min(arg, room)):
                    budget.deposit()
                    model.deposits.append(model.slice(now))
                    in_slice[model.slice(now)] = in_slice.get(model.slice(now), 0) + 1
            elif op == "withdraw":
                for _ in range(arg):
                    assert budget.try_withdraw() == model.try_withdraw(now)
            elif op == "advance":
                clock.advance(arg)
            assert budget.available == pytest.approx(model.available(clock.monotonic()))

    @settings(max_examples=150, deadline=None)
    @given(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("deposit"), st.integers(1, 3_000)),
                st.tuples(st.just("withdraw"), st.integers(1, 50)),
                st.tuples(st.just("advance"), st.floats(0, 4)),
            ),
            max_size=40,
        )
    )
    def test_heavy_traffic_errs_on_the_strict_side(self, ops: list[tuple[str, Any]]) -> None:
        """With bursts of thousands of first tries the budget may count a few of them in
        an earlier slice: it never allows more than the model, and never much less."""
        clock = ManualClock()
        budget = RetryBudget(ratio=0.5, min_per_second=0, window=10, clock=clock)
        model = Model(0.5, 0, 10)
        for op, arg in ops:
            now = clock.monotonic()
            if op == "deposit":
                for _ in range(arg):
                    budget.deposit()
                model.deposits.extend([model.slice(now)] * arg)
            elif op == "withdraw":
                for _ in range(arg):
                    if budget.try_withdraw():
                        model.withdrawals.append(model.slice(now))
            elif op == "advance":
                clock.advance(arg)
            now = clock.monotonic()
            assert budget.available <= model.available(now) + 1e-9
            live = model._live(model.deposits, now)
            lost = RetryBudget._MAX_STRIDE + live / RetryBudget._SAMPLE
            assert budget.available >= model.available(now) - 0.5 * lost - 1e-9

    def test_a_burst_then_a_quiet_slice(self, clock: ManualClock) -> None:
        """After a burst, the first tries of a later slice are timed by a read of the clock
        at most _MAX_STRIDE first tries late; a withdrawal or a read times them at once."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=10, clock=clock)
        deposit(budget, 100_000)
        clock.advance(5)
        deposit(budget, 3)
        assert budget.available == 100_003.0
        clock.advance(5)  # t=10: the burst leaves; the three may have been timed with it
        assert 0.0 <= budget.available <= 3.0
        deposit(budget, 2)
        clock.advance(1)
        assert budget.available >= 2.0


class CountingClock(ManualClock):
    """A ManualClock that counts how often it is read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return super().monotonic()


class TestCost:
    def test_a_busy_slice_reads_the_clock_rarely(self) -> None:
        """100,000 first tries in one slice read the clock a few hundred times, not
        100,000, and take no lock (each deposit is one counter step)."""
        clock = CountingClock()
        budget = RetryBudget(ratio=1, min_per_second=0, clock=clock)
        reads = clock.reads
        deposit(budget, 100_000)
        assert clock.reads - reads < 1_000
        assert budget.available == 100_000.0

    def test_a_quiet_service_reads_the_clock_on_every_deposit(self) -> None:
        """Below 32 first tries in a slice, each deposit reads the clock, so each is timed
        exactly."""
        clock = CountingClock()
        budget = RetryBudget(clock=clock)
        reads = clock.reads
        deposit(budget, 31)
        assert clock.reads - reads == 31


class TestThreads:
    def test_concurrent_withdrawals_never_overdraw(self, clock: ManualClock) -> None:
        """Eight threads racing for 300 retries get exactly 300 between them."""
        budget = RetryBudget(ratio=0.3, min_per_second=0, clock=clock)
        deposit(budget, 1_000)
        barrier = threading.Barrier(8, timeout=10)
        taken = [0] * 8

        def worker(index: int) -> None:
            barrier.wait()
            for _ in range(100):
                if budget.try_withdraw():
                    taken[index] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert sum(taken) == 300
        assert budget.available == 0.0

    def test_deposits_are_exact_while_the_clock_moves(
        self, switching: None, clock: ManualClock
    ) -> None:
        """Eight threads deposit 20,000 first tries each while another thread moves the
        clock through many slices of the window: not one deposit is lost or counted
        twice, and withdrawals racing with them never overdraw."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=100, clock=clock)
        barrier = threading.Barrier(10, timeout=10)
        done = threading.Event()
        taken = [0] * 8

        def depositor(index: int) -> None:
            barrier.wait()
            for n in range(20_000):
                budget.deposit()
                if n % 1_000 == 0 and budget.try_withdraw():
                    taken[index] += 1

        def ticker() -> None:
            barrier.wait()
            while not done.is_set() and clock.monotonic() < 90:
                clock.advance(0.01)

        def reader() -> None:
            barrier.wait()
            while not done.is_set():
                assert budget.available >= 0

        threads = [threading.Thread(target=depositor, args=(i,)) for i in range(8)]
        helpers = [threading.Thread(target=ticker), threading.Thread(target=reader)]
        for thread in threads + helpers:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        done.set()
        for thread in helpers:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads + helpers)
        assert clock.monotonic() < 100  # nothing has left the window yet
        assert f"{sum(taken)} retries for 160000 first tries" in repr(budget)
        assert budget.available == 160_000.0 - sum(taken)

    def test_concurrent_deposits_are_all_counted(self, clock: ManualClock) -> None:
        """Deposits from many threads are never lost."""
        budget = RetryBudget(ratio=1, min_per_second=0, clock=clock)
        barrier = threading.Barrier(8, timeout=10)

        def worker() -> None:
            barrier.wait()
            deposit(budget, 500)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert budget.available == 4_000.0


@pytest.fixture
def switching() -> Iterator[None]:
    """Switch threads every few microseconds, so that races show up in a short test."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class TestRepr:
    def test_repr_shows_configuration_and_counts(self, clock: ManualClock) -> None:
        """repr shows the name, the ratio, the floor, the window and the live counts."""
        budget = RetryBudget(ratio=0.25, min_per_second=0, window=5, name="db", clock=clock)
        assert repr(budget) == (
            "<RetryBudget 'db' ratio=0.25 min_per_second=0: "
            "0 retries for 0 first tries in the last 5s>"
        )
        assert budget.name == "db"
        assert RetryBudget(clock=clock).name == "retry-budget"
        deposit(budget, 8)
        withdraw_all(budget)
        assert "2 retries for 8 first tries" in repr(budget)

    def test_repr_forgets_expired_counts(self, clock: ManualClock) -> None:
        """repr reflects the window as it is now, not as it was."""
        budget = RetryBudget(clock=clock)
        deposit(budget, 3)
        clock.advance(10)
        assert "0 retries for 0 first tries" in repr(budget)


BAD_CONFIGS: list[tuple[str, Any, type[Exception]]] = [
    ("name", "", ValueError),
    ("name", 3, TypeError),
    ("ratio", -0.1, ValueError),
    ("ratio", math.nan, ValueError),
    ("ratio", math.inf, ValueError),
    ("ratio", "0.2", TypeError),
    ("ratio", None, TypeError),
    ("ratio", True, TypeError),
    ("min_per_second", -1, ValueError),
    ("min_per_second", math.nan, ValueError),
    ("min_per_second", math.inf, ValueError),
    ("min_per_second", "10", TypeError),
    ("window", 0, ValueError),
    ("window", -10, ValueError),
    ("window", math.nan, ValueError),
    ("window", math.inf, ValueError),
    ("window", [10], TypeError),
    ("window", 1e-320, ValueError),
    ("window", 5e-324, ValueError),
    ("window", 1e-310, ValueError),
    ("window", 0.000999, ValueError),
    ("window", timedelta(microseconds=999), ValueError),
    ("window", timedelta(0), ValueError),
    ("clock", object(), TypeError),
    ("clock", None, TypeError),
]


class TestConfiguration:
    @pytest.mark.parametrize(("param", "value", "error"), BAD_CONFIGS)
    def test_bad_values_are_rejected(self, param: str, value: Any, error: type[Exception]) -> None:
        """Each bad argument fails at construction, naming the parameter."""
        options: dict[str, Any] = {"clock": ManualClock(), param: value}
        with pytest.raises(error, match=f"'{param}'"):
            RetryBudget(**options)

    @pytest.mark.parametrize(
        ("param", "value"), [("ratio", -1.5), ("window", 0), ("window", 1e-320)]
    )
    def test_message_shows_the_value(self, param: str, value: Any) -> None:
        """The error message also shows the bad value."""
        with pytest.raises(ValueError) as info:
            RetryBudget(clock=ManualClock(), **{param: value})
        assert repr(value) in str(info.value)

    @pytest.mark.parametrize(
        "options",
        [
            {"ratio": 0},
            {"ratio": 1},
            {"ratio": 10.0},
            {"min_per_second": 0},
            {"min_per_second": 0.001},
            {"window": 1e-3},
            {"window": timedelta(milliseconds=1)},
            {"window": 3600},
            {"window": 1e300},
        ],
    )
    def test_edge_values_are_accepted(self, options: dict[str, Any]) -> None:
        """Values on the edge of the valid range are accepted."""
        RetryBudget(clock=ManualClock(), **options)

    def test_the_shortest_window_works(self, clock: ManualClock) -> None:
        """A 1 ms window counts and expires like any other."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=0.001, clock=clock)
        deposit(budget, 2)
        assert withdraw_all(budget) == 2
        clock.advance(0.001)
        deposit(budget, 1)
        assert withdraw_all(budget) == 1

    def test_window_takes_a_timedelta(self, clock: ManualClock) -> None:
        """window=timedelta(seconds=2) is a 2 s window."""
        budget = RetryBudget(ratio=1, min_per_second=0, window=timedelta(seconds=2), clock=clock)
        budget.deposit()
        assert "in the last 2s" in repr(budget)
        clock.advance(1.9)
        assert budget.available == 1.0
        clock.advance(0.15)
        assert budget.available == 0.0
