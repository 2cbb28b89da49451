"""RetryBudget on its own: deposits and withdrawals, the ratio, the min_per_second
floor, expiry over a window kept in ten slices, thread safety, repr and configuration.

Time is a ManualClock throughout; nothing sleeps for real.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

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


class TestRepr:
    def test_repr_shows_configuration_and_counts(self, clock: ManualClock) -> None:
        """repr shows the ratio, the floor, the window and the live counts."""
        budget = RetryBudget(ratio=0.25, min_per_second=0, window=5, clock=clock)
        assert repr(budget) == (
            "<RetryBudget ratio=0.25 min_per_second=0: 0 retries for 0 first tries in the last 5s>"
        )
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

    @pytest.mark.parametrize(("param", "value"), [("ratio", -1.5), ("window", 0)])
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
            {"window": 3600},
        ],
    )
    def test_edge_values_are_accepted(self, options: dict[str, Any]) -> None:
        """Values on the edge of the valid range are accepted."""
        RetryBudget(clock=ManualClock(), **options)
