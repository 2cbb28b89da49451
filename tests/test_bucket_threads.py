"""Both rate limiters under many threads: never more than the rate allows, no token or
slot lost, one FIFO shared by threads and async tasks, and no deadlock.

On a ManualClock the thread at the head of the queue moves the clock to its turn,
so virtual time advances only as fast as the limiter lets requests through and the
accounting can be checked exactly. On the real clock only upper bounds are checked.
Threads start together on a Barrier and the interpreter switches threads very often.
The counters of ``stats()`` come out exact: every admission, token and refusal the
threads saw, no more, no fewer.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from resilio import EventBus, LeakyBucket, ManualClock, RateLimitExceeded, TokenBucket

THREADS = 8
TIMEOUT = 10.0


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

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=TIMEOUT)
    assert not any(worker.is_alive() for worker in workers), "deadlock: threads still blocked"
    if errors:
        raise errors[0]


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll *predicate* (a thread reaching a queue) for up to a few seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for a thread"
        time.sleep(0.0005)


class TestTokenBucketManualClock:
    @pytest.mark.parametrize("seed", range(3))
    def test_admissions_match_the_rate_exactly(self, seed: int) -> None:
        """Admitted + left == capacity + rate * elapsed virtual time; never more than that."""
        clock = ManualClock()
        rate, capacity = 8.0, 5.0
        bucket = TokenBucket(rate, capacity, clock=clock, bus=EventBus())
        admitted = [0.0] * THREADS
        blocking = [0] * THREADS
        tried = [0] * THREADS
        refused = [0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(seed * 100 + index)
            for _ in range(150):
                n = rng.choice([1, 1, 2, 3, 5])
                if rng.random() < 0.6:
                    bucket.acquire_sync(n)
                    admitted[index] += n
                    blocking[index] += 1
                elif bucket.try_acquire(n):
                    admitted[index] += n
                    tried[index] += 1
                else:
                    refused[index] += 1
                assert sum(admitted) <= capacity + rate * clock.monotonic() + 1e-6

        hammer(work)
        total = sum(admitted)
        elapsed = clock.monotonic()
        assert sum(blocking) > 0
        assert elapsed > 0
        assert bucket.waiting == 0
        assert total <= capacity + rate * elapsed + 1e-6
        # Virtual time moves only while someone waits, so nothing is lost to the cap.
        assert total + bucket.available == pytest.approx(capacity + rate * elapsed, abs=1e-6)
        stats = bucket.stats()
        assert stats.granted == sum(blocking) + sum(tried)
        assert stats.tokens == total
        assert (stats.refused, stats.cancelled, stats.waiting) == (sum(refused), 0, 0)
        assert 0 < stats.wait_max <= stats.waited

    def test_fractional_rate_and_amounts(self) -> None:
        """With awkward floats the accounting still balances within float noise."""
        clock = ManualClock(start=12.345)
        rate, capacity = 3.7, 2.9
        bucket = TokenBucket(rate, capacity, clock=clock, bus=EventBus())
        admitted = [0.0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(index)
            for _ in range(100):
                n = rng.uniform(0.1, capacity)
                bucket.acquire_sync(n)
                admitted[index] += n

        hammer(work)
        elapsed = clock.monotonic() - 12.345
        total = sum(admitted)
        assert total + bucket.available == pytest.approx(capacity + rate * elapsed, abs=1e-6)


class TestTokenBucketSystemClock:
    def test_try_acquire_never_exceeds_the_rate(self) -> None:
        """8 threads hammering try_acquire get at most capacity + rate * (elapsed + slack)."""
        start = time.monotonic()
        bucket = TokenBucket(2.0, 10, bus=EventBus())
        admitted = [0] * THREADS

        def work(index: int) -> None:
            for i in range(2000):
                n = 1 + (i + index) % 2
                if bucket.try_acquire(n):
                    admitted[index] += n

        hammer(work)
        elapsed = time.monotonic() - start
        assert sum(admitted) >= 9  # the burst, at least (a 2 may not fit the last token)
        assert sum(admitted) <= 10 + 2.0 * (elapsed + 0.5)

    def test_blocking_acquires_all_complete(self) -> None:
        """8 threads blocking on tiny real waits are all admitted; nobody deadlocks."""
        bucket = TokenBucket(4000.0, 2, bus=EventBus())
        admitted = [0] * THREADS

        def work(index: int) -> None:
            for _ in range(10):
                bucket.acquire_sync()
                admitted[index] += 1

        hammer(work)
        assert admitted == [10] * THREADS
        assert bucket.waiting == 0
        assert (bucket.stats().granted, bucket.stats().tokens) == (10 * THREADS, 10 * THREADS)

    def test_timeouts_under_contention_leave_nothing_behind(self) -> None:
        """Blocking acquires with short timeouts either succeed or fail; the queue empties."""
        bucket = TokenBucket(2000.0, 1, bus=EventBus())
        outcomes = [0, 0]
        lock = threading.Lock()

        def work(index: int) -> None:
            for _ in range(15):
                try:
                    bucket.acquire_sync(timeout=0.002)
                    served = 1
                except RateLimitExceeded:
                    served = 0
                with lock:
                    outcomes[served] += 1

        hammer(work)
        assert sum(outcomes) == 15 * THREADS
        assert bucket.waiting == 0
        stats = bucket.stats()
        assert (stats.granted, stats.refused, stats.cancelled) == (outcomes[1], outcomes[0], 0)


class TestLeakyBucketManualClock:
    @pytest.mark.parametrize("seed", range(3))
    def test_admissions_are_one_slot_apart(self, seed: int) -> None:
        """Admissions fill consecutive slots: the last one is at (admitted - 1) / rate."""
        clock = ManualClock()
        rate = 8.0
        bucket = LeakyBucket(rate, 4, clock=clock, bus=EventBus())
        admitted = [0] * THREADS
        refused = [0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(seed * 100 + index)
            for _ in range(100):
                if rng.random() < 0.7:
                    try:
                        bucket.acquire_sync()
                    except RateLimitExceeded:
                        refused[index] += 1  # the queue of 4 was full
                        continue
                    admitted[index] += 1
                elif bucket.try_acquire():
                    admitted[index] += 1
                assert sum(admitted) <= 1 + rate * clock.monotonic() + 1e-6

        hammer(work)
        total = sum(admitted)
        assert bucket.waiting == 0
        assert total <= 1 + rate * clock.monotonic() + 1e-6
        assert clock.monotonic() == pytest.approx((total - 1) / rate)
        stats = bucket.stats()
        assert (stats.granted, stats.tokens) == (total, total)
        # Refused: the full queue, and every try_acquire that found no slot free.
        assert stats.refused == 100 * THREADS - total
        assert sum(refused) <= stats.refused
        with pytest.raises(RateLimitExceeded) as info:
            bucket.acquire_sync(timeout=0)
        assert info.value.retry_after == pytest.approx(1 / rate)


class TestLeakyBucketSystemClock:
    def test_try_acquire_never_exceeds_the_rate(self) -> None:
        """8 threads hammering try_acquire get at most 1 + rate * (elapsed + slack)."""
        start = time.monotonic()
        bucket = LeakyBucket(2.0, 5, bus=EventBus())
        admitted = [0] * THREADS

        def work(index: int) -> None:
            for _ in range(2000):
                if bucket.try_acquire():
                    admitted[index] += 1

        hammer(work)
        elapsed = time.monotonic() - start
        assert 1 <= sum(admitted) <= 1 + 2.0 * (elapsed + 0.5)

    def test_blocking_acquires_all_complete(self) -> None:
        """8 threads blocking on tiny real waits are all admitted; nobody deadlocks."""
        bucket = LeakyBucket(4000.0, THREADS, bus=EventBus())
        admitted = [0] * THREADS

        def work(index: int) -> None:
            for _ in range(10):
                bucket.acquire_sync()
                admitted[index] += 1

        hammer(work)
        assert admitted == [10] * THREADS
        assert bucket.waiting == 0


async def settle() -> None:
    """Let every woken task run until all are blocked again."""
    for _ in range(10):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


class TestThreadsAndTasks:
    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["token", "leaky"])
    async def test_threads_and_tasks_share_one_fifo(self, kind: str) -> None:
        """Tasks in acquire() and threads blocked in acquire_sync are served in arrival order."""
        clock = ManualClock()
        bucket: TokenBucket | LeakyBucket
        if kind == "token":
            bucket = TokenBucket(4, 1, clock=clock, bus=EventBus())
        else:
            bucket = LeakyBucket(4, 5, clock=clock, bus=EventBus())
        assert bucket.try_acquire()
        order = ("task-1", "thread-1", "task-2", "thread-2", "task-3")
        served: dict[str, float] = {}
        threads: dict[str, threading.Thread] = {}

        async def task(name: str) -> None:
            await bucket.acquire()
            served[name] = -1.0  # the clock may already have moved on: see below

        def blocked(name: str) -> None:
            bucket.acquire_sync()
            served[name] = clock.monotonic()  # a task heads the queue next: time stands

        async with anyio.create_task_group() as tg:
            for name in order:
                queued = bucket.waiting
                if name.startswith("task"):
                    tg.start_soon(task, name)
                    await settle()
                else:
                    threads[name] = threading.Thread(target=blocked, args=(name,), daemon=True)
                    threads[name].start()
                    wait_until(lambda queued=queued: bucket.waiting > queued)  # type: ignore[misc]
                assert bucket.waiting == queued + 1
            # A task heads the queue, so nothing moves until the test moves the clock; a
            # thread that reaches the head moves the clock to its own turn by itself.
            for step, name in enumerate(order):
                turn = (step + 1) * 0.25
                if name.startswith("task"):
                    clock.advance(turn - clock.monotonic())
                    await settle()
                    assert name in served
                else:
                    await anyio.to_thread.run_sync(threads[name].join, TIMEOUT)
                    assert not threads[name].is_alive()
                    # served at its own turn: after the task ahead of it, not before
                    assert served[name] == turn
                assert not set(order[step + 2 :]) & set(served)
        assert set(served) == set(order)
        assert bucket.waiting == 0

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["token", "leaky"])
    async def test_threads_and_tasks_on_the_system_clock(self, kind: str) -> None:
        """On real time, turns handed between tasks and threads (each waking the other's
        head, across threads or on the loop's own timer) all complete."""
        bucket: TokenBucket | LeakyBucket
        if kind == "token":
            bucket = TokenBucket(2000, 1, bus=EventBus())
        else:
            bucket = LeakyBucket(2000, 50, bus=EventBus())
        served: list[str] = []

        async def task(name: str) -> None:
            for _ in range(3):
                await bucket.acquire()
                served.append(name)

        def blocked(name: str) -> None:
            for _ in range(3):
                bucket.acquire_sync()
                served.append(name)

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(task, f"task-{i}")
                    tg.start_soon(anyio.to_thread.run_sync, blocked, f"thread-{i}")
        assert sorted(served) == sorted(
            [f"{who}-{i}" for who in ("task", "thread") for i in range(3)] * 3
        )
        assert bucket.waiting == 0


class TestReset:
    @pytest.mark.parametrize("seed", range(3))
    def test_token_bucket_resets_under_contention(self, seed: int) -> None:
        """Resets among blocking, trying and timing-out threads: nothing lost, no deadlock,
        and no more admitted than the refills allow."""
        clock = ManualClock()
        rate, capacity = 8.0, 5.0
        bucket = TokenBucket(rate, capacity, clock=clock, bus=EventBus())
        admitted = [0.0] * THREADS
        resets = [0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(seed * 100 + index)
            for _ in range(150):
                n = rng.choice([1, 1, 2, 3, 5])
                roll = rng.random()
                if roll < 0.05:
                    bucket.reset()
                    resets[index] += 1
                elif roll < 0.5:
                    bucket.acquire_sync(n)
                    admitted[index] += n
                elif roll < 0.7:
                    try:
                        bucket.acquire_sync(n, timeout=0.5)
                    except RateLimitExceeded:
                        continue
                    admitted[index] += n
                elif bucket.try_acquire(n):
                    admitted[index] += n

        hammer(work)
        total = sum(admitted)
        elapsed = clock.monotonic()
        assert sum(resets) > 0
        assert bucket.waiting == 0
        # Each reset adds at most a bucketful; none takes anything away.
        assert total + bucket.available <= capacity * (1 + sum(resets)) + rate * elapsed + 1e-6
        assert total + bucket.available >= capacity + rate * elapsed - 1e-6

    @pytest.mark.parametrize("seed", range(3))
    def test_leaky_bucket_resets_under_contention(self, seed: int) -> None:
        """Resets among blocking threads: each reset lets at most one admission come early."""
        clock = ManualClock()
        rate = 8.0
        bucket = LeakyBucket(rate, THREADS, clock=clock, bus=EventBus())
        admitted = [0] * THREADS
        resets = [0] * THREADS

        def work(index: int) -> None:
            rng = random.Random(seed * 100 + index)
            for _ in range(100):
                roll = rng.random()
                if roll < 0.05:
                    bucket.reset()
                    resets[index] += 1
                elif roll < 0.8:
                    bucket.acquire_sync()
                    admitted[index] += 1
                elif bucket.try_acquire():
                    admitted[index] += 1

        hammer(work)
        total = sum(admitted)
        assert sum(resets) > 0
        assert bucket.waiting == 0
        assert clock.monotonic() <= (total - 1) / rate + 1e-6
        assert clock.monotonic() >= (total - 1 - sum(resets)) / rate - 1e-6

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["token", "leaky"])
    async def test_each_reset_serves_exactly_its_share(self, kind: str) -> None:
        """Tasks and threads waiting on the real clock, one task cancelled: each reset, from
        the loop or from a worker thread, serves exactly what it refills, in order."""
        bucket: TokenBucket | LeakyBucket
        if kind == "token":
            bucket, share = TokenBucket(0.001, 2, bus=EventBus()), 2
        else:
            bucket, share = LeakyBucket(0.001, 10, bus=EventBus()), 1
        while bucket.try_acquire():
            pass
        served: list[str] = []
        threads: list[threading.Thread] = []

        async def task(name: str) -> None:
            await bucket.acquire()
            served.append(name)

        def blocked(name: str) -> None:
            bucket.acquire_sync()
            served.append(name)

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                gone = anyio.CancelScope()

                async def cancelled() -> None:
                    with gone:
                        await bucket.acquire()
                    if not gone.cancelled_caught:
                        served.append("cancelled")  # served after all: the test fails

                for i in range(3):
                    tg.start_soon(task, f"task-{i}")
                    await settle()
                    if i == 1:
                        tg.start_soon(cancelled)
                        await settle()
                    queued = bucket.waiting
                    thread = threading.Thread(target=blocked, args=(f"thread-{i}",), daemon=True)
                    thread.start()
                    threads.append(thread)
                    await anyio.to_thread.run_sync(
                        wait_until,
                        lambda queued=queued: bucket.waiting > queued,
                    )
                assert bucket.waiting == 7
                gone.cancel()
                await settle()
                assert bucket.waiting == 6
                for step in range(6 // share):
                    if step % 2:
                        await anyio.to_thread.run_sync(bucket.reset)
                    else:
                        bucket.reset()
                    assert bucket.waiting == 6 - (step + 1) * share
                    while len(served) < (step + 1) * share:
                        await anyio.sleep(0.001)
                for thread in threads:
                    await anyio.to_thread.run_sync(thread.join, TIMEOUT)
        assert sorted(served) == sorted(
            f"{who}-{i}" for who in ("task", "thread") for i in range(3)
        )
        assert bucket.waiting == 0
