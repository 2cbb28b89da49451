"""WorkerPool: bounded concurrency on a fixed set of workers, backpressure in FIFO order,
rejections, failure isolation, ordered lazy `map`, drain and cancel on shutdown,
resizing, thread offload for sync callables, cancelled submitters and callers,
configuration checks, and generated interleavings of all of these.

Tasks are ordered with anyio.Event gates and anyio.wait_all_tasks_blocked(); nothing
sleeps, except a few milliseconds at a time while a worker thread must run. A bound on
real time (`HANG`) appears only where a hang is what a test looks for.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import logging
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Any, NoReturn

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from resilio import (
    Event,
    EventBus,
    ManualClock,
    MapResults,
    PoolClosedError,
    PoolFullError,
    PoolStats,
    RejectedError,
    ResilioError,
    TaskFailed,
    TaskHandle,
    TaskRejected,
    WorkerPool,
)


class Boom(Exception):
    """The failure the tasks raise."""


class Halt(BaseException):
    """A BaseException that is not an Exception, like KeyboardInterrupt or SystemExit."""


# A bound on real time that only a hang reaches; never a measure of speed.
HANG = 5.0


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (possibly nested) exception groups, in order."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


class Gauge:
    """What the tasks themselves measure: how many run now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def exit(self) -> None:
        with self._lock:
            self.now -= 1


async def hold(gate: anyio.Event, gauge: Gauge | None = None, value: Any = None) -> Any:
    """A task that runs until *gate* is set, counted by *gauge*; returns *value*."""
    if gauge is not None:
        gauge.enter()
    try:
        await gate.wait()
    finally:
        if gauge is not None:
            gauge.exit()
    return value


def hold_sync(gate: threading.Event, gauge: Gauge, seen: list[int]) -> int:
    """A sync task (it runs in a worker thread) that blocks until *gate* is set."""
    gauge.enter()
    seen.append(threading.get_ident())
    try:
        gate.wait(10)
    finally:
        gauge.exit()
    return threading.get_ident()


async def double(x: int) -> int:
    return 2 * x


async def fail(error: BaseException) -> NoReturn:
    raise error


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let worker threads run (a few ms at a time) until *condition* holds."""
    for _ in range(5000):
        if condition():
            return
        await anyio.sleep(0.002)
    raise AssertionError("condition never held")


async def release_when_blocked(gate: anyio.Event) -> None:
    """Set *gate* once every task is blocked (for example, on a draining pool)."""
    await anyio.wait_all_tasks_blocked()
    gate.set()


async def settle(fn: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
    """Run *fn* until it finishes or every task blocks: ``[]`` means it hung."""
    outcome: list[tuple[str, Any]] = []

    async def run() -> None:
        try:
            outcome.append(("ok", await fn()))
        except Exception as exc:
            outcome.append(("error", exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    return outcome


async def settled(handle: TaskHandle[Any]) -> Any:
    """What awaiting *handle* gives: its result, or the PoolClosedError it raises."""
    try:
        return await handle
    except PoolClosedError as exc:
        return exc


def worker_task_ids(name: str = "pool") -> set[int]:
    """The ids of the pool's worker tasks alive now."""
    return {task.id for task in anyio.get_running_tasks() if task.name == f"{name} worker"}


def resilio_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "resilio" and r.levelno >= logging.ERROR]


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., WorkerPool]:
    """Build a WorkerPool on the test's clock and bus."""

    def factory(workers: int = 2, queue_size: int = 2, **options: Any) -> WorkerPool:
        options.setdefault("name", "pool")
        return WorkerPool(workers, queue_size, clock=clock, bus=bus, **options)

    return factory


class TestConfiguration:
    @pytest.mark.parametrize(
        ("options", "error", "param"),
        [
            ({"workers": 0}, ValueError, "workers"),
            ({"workers": -1}, ValueError, "workers"),
            ({"workers": "3"}, TypeError, "workers"),
            ({"workers": True}, TypeError, "workers"),
            ({"workers": 2.0}, TypeError, "workers"),
            ({"queue_size": -1}, ValueError, "queue_size"),
            ({"queue_size": None}, TypeError, "queue_size"),
            ({"queue_size": False}, TypeError, "queue_size"),
            ({"name": ""}, ValueError, "name"),
            ({"name": 3}, TypeError, "name"),
            ({"clock": object()}, TypeError, "clock"),
            ({"bus": object()}, TypeError, "bus"),
        ],
    )
    def test_bad_configuration_names_the_parameter(
        self, options: dict[str, Any], error: type[Exception], param: str
    ) -> None:
        """Bad configuration fails at construction, naming the parameter."""
        with pytest.raises(error, match=f"'{param}'"):
            WorkerPool(**options)

    @pytest.mark.parametrize("value", [0, -1, "3", True])
    def test_bad_values_appear_in_the_message(self, value: Any) -> None:
        """The message shows the offending value too."""
        with pytest.raises((TypeError, ValueError), match=repr(value)):
            WorkerPool(workers=value)

    def test_defaults(self) -> None:
        """Defaults: 10 workers, a queue of 100, named "pool", nothing counted yet."""
        pool = WorkerPool()
        assert pool.name == "pool"
        assert pool.stats() == PoolStats(
            workers=10,
            busy=0,
            queued=0,
            submitted=0,
            completed=0,
            failed=0,
            cancelled=0,
            rejected=0,
            queue_peak=0,
        )

    def test_queue_size_zero_is_allowed(self) -> None:
        """A pool with no queue at all (hand-off only) is valid configuration."""
        assert WorkerPool(1, 0, name="rendezvous").name == "rendezvous"

    def test_repr_names_the_pool(self) -> None:
        """The repr shows the name and that the pool has not started."""
        text = repr(WorkerPool(3, 7, name="jobs"))
        assert "'jobs'" in text
        assert "not started" in text
        assert "0/3" in text
        assert "0/7" in text

    @pytest.mark.parametrize(
        ("value", "error"), [(0, ValueError), (-2, ValueError), (True, TypeError), ("4", TypeError)]
    )
    @pytest.mark.anyio
    async def test_bad_resize(
        self, make: Callable[..., WorkerPool], value: Any, error: type[Exception]
    ) -> None:
        """resize() rejects a bad worker count, naming the parameter, and changes nothing."""
        async with make(workers=3) as pool:
            with pytest.raises(error, match="'workers'"):
                pool.resize(value)
            assert pool.stats().workers == 3
            assert len(worker_task_ids()) == 3


@pytest.mark.anyio
class TestLifecycle:
    async def test_use_before_entering_raises_runtime_error(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """submit, submit_nowait, run and resize before `async with` raise RuntimeError."""
        pool = make()
        with pytest.raises(RuntimeError, match="async with"):
            await pool.submit(double, 1)
        with pytest.raises(RuntimeError):
            pool.submit_nowait(double, 1)
        with pytest.raises(RuntimeError):
            await pool.run(double, 1)
        with pytest.raises(RuntimeError):
            pool.resize(3)

    async def test_map_before_entering_raises_runtime_error(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """map() before `async with` raises RuntimeError instead of hanging."""
        pool = make()

        async def consume() -> list[int]:
            return [r async for r in pool.map(double, [1, 2])]

        outcome = await settle(consume)
        assert outcome, "map() on a pool that was never started hangs forever"
        assert isinstance(outcome[0][1], RuntimeError)

    async def test_entering_twice_raises(self, make: Callable[..., WorkerPool]) -> None:
        """A pool can be entered once: again while running, or after exit, is RuntimeError."""
        pool = make()
        async with pool:
            with pytest.raises(RuntimeError, match="only once"):
                await pool.__aenter__()
            assert await pool.run(double, 2) == 4
        with pytest.raises(RuntimeError, match="only once"):
            async with pool:
                pass

    async def test_entering_after_shutdown_raises_pool_closed(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A pool shut down before it was ever entered refuses to start, and to take work."""
        pool = make()
        await pool.shutdown()
        with pytest.raises(PoolClosedError, match="'pool' was shut down before it was started"):
            async with pool:
                pass
        with pytest.raises(PoolClosedError):
            pool.submit_nowait(double, 1)
        with pytest.raises(PoolClosedError):
            await pool.run(double, 1)
        assert worker_task_ids() == set()

    async def test_shutdown_while_entering_starts_no_worker_for_good(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A shutdown from another task while the block is starting its workers: the block
        starts, and every worker has exited once the shutdown returns."""
        pool = make(workers=3)
        async with anyio.create_task_group() as tg:

            async def shut_down_soon() -> None:
                await anyio.lowlevel.checkpoint()
                await pool.shutdown()

            tg.start_soon(shut_down_soon)
            async with pool:
                await pool.shutdown()
                assert worker_task_ids() == set()
        with pytest.raises(PoolClosedError):
            pool.submit_nowait(double, 1)

    async def test_cancelled_while_entering_leaves_nothing_running(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Entering in a cancelled scope: the cancellation propagates, no worker is left,
        the pool is shut down, and the task that tried can go on using task groups."""
        pool = make(workers=3)
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with pool:
                pytest.fail("the block ran in a cancelled scope")
        assert scope.cancelled_caught
        assert worker_task_ids() == set()
        assert "closed" in repr(pool)
        await pool.shutdown()
        with pytest.raises(PoolClosedError):
            pool.submit_nowait(double, 1)
        async with anyio.create_task_group() as tg:  # the task's own scopes are intact
            tg.start_soon(anyio.lowlevel.checkpoint)

    async def test_enter_returns_the_pool(self, make: Callable[..., WorkerPool]) -> None:
        """`async with pool as p` binds the pool itself, which starts `workers` workers."""
        pool = make(workers=3, name="mine")
        async with pool as entered:
            assert entered is pool
            assert len(worker_task_ids("mine")) == 3
            assert "running" in repr(pool)
        assert "closed" in repr(pool)
        assert worker_task_ids("mine") == set()

    async def test_submit_after_exit_raises_pool_closed(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """After the block, submit, submit_nowait, run and resize raise PoolClosedError."""
        async with make() as pool:
            pass
        with pytest.raises(PoolClosedError, match="'pool'"):
            await pool.submit(double, 1)
        with pytest.raises(PoolClosedError):
            pool.submit_nowait(double, 1)
        with pytest.raises(PoolClosedError):
            await pool.run(double, 1)
        with pytest.raises(PoolClosedError):
            pool.resize(4)
        assert isinstance(PoolClosedError("x"), ResilioError)

    async def test_submit_after_shutdown_raises_pool_closed(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Inside the block, after shutdown(), submitting raises PoolClosedError."""
        async with make() as pool:
            await pool.shutdown()
            with pytest.raises(PoolClosedError):
                await pool.submit(double, 1)
            with pytest.raises(PoolClosedError):
                pool.submit_nowait(double, 1)
            await pool.shutdown()  # idempotent
            await pool.shutdown(cancel=True)

    async def test_map_after_shutdown_raises_pool_closed(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """map() on a shut-down pool raises PoolClosedError instead of hanging."""
        async with make() as pool:
            await pool.shutdown()

            async def consume() -> list[int]:
                return [r async for r in pool.map(double, [1, 2])]

            outcome = await settle(consume)
        assert outcome, "map() on a shut-down pool hangs forever"
        assert isinstance(outcome[0][1], PoolClosedError)


@pytest.mark.anyio
class TestConcurrency:
    async def test_async_tasks_never_exceed_workers(self, make: Callable[..., WorkerPool]) -> None:
        """However many tasks are queued, at most `workers` run at once."""
        gauge = Gauge()
        gate = anyio.Event()
        async with make(workers=3, queue_size=20) as pool:
            handles = [await pool.submit(hold, gate, gauge, i) for i in range(15)]
            await anyio.wait_all_tasks_blocked()
            assert gauge.now == 3
            assert pool.stats().busy == 3
            assert pool.stats().queued == 12
            gate.set()
        assert gauge.peak == 3
        assert [await h for h in handles] == list(range(15))

    async def test_tasks_run_on_a_fixed_set_of_workers(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Tasks run inside the long-lived worker tasks, not in a task per submission."""
        seen: list[int] = []

        async def where() -> None:
            seen.append(anyio.get_current_task().id)
            await anyio.lowlevel.checkpoint()

        async with make(workers=3, queue_size=50) as pool:
            workers = worker_task_ids()
            for _ in range(40):
                await pool.submit(where)
            await anyio.wait_all_tasks_blocked()
            assert len(seen) == 40
            assert set(seen) <= workers
            assert len(set(seen)) <= 3
            assert worker_task_ids() == workers

    async def test_tasks_that_never_suspend_do_not_starve_submitters(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Many instant tasks through a tiny queue all complete, in submission order."""
        done: list[int] = []

        async def instant(i: int) -> None:
            done.append(i)

        async with make(workers=2, queue_size=1) as pool:
            for i in range(300):
                await pool.submit(instant, i)
        assert done == list(range(300))
        assert pool.stats().completed == 300

    async def test_run_submits_and_waits(self, make: Callable[..., WorkerPool]) -> None:
        """run() returns the task's result, passing args and kwargs."""

        async def combine(a: int, b: int, *, c: int = 0) -> tuple[int, int, int]:
            return a, b, c

        async with make() as pool:
            assert await pool.run(combine, 1, 2, c=3) == (1, 2, 3)
            assert await pool.run(combine, 1, b=5) == (1, 5, 0)


@pytest.mark.anyio
class TestBackpressure:
    async def test_submit_returns_at_once_while_there_is_room(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """With room in the queue, submit() queues without waiting for the task."""
        gate = anyio.Event()
        async with make(workers=1, queue_size=3) as pool:
            handles = [await pool.submit(hold, gate, None, i) for i in range(4)]
            await anyio.wait_all_tasks_blocked()
            assert [h.done() for h in handles] == [False] * 4
            assert pool.stats().queued == 3
            gate.set()
        assert [await h for h in handles] == [0, 1, 2, 3]

    async def test_waiting_submitters_get_room_in_fifo_order(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Submitters waiting for room are let in one at a time, in arrival order."""
        labels = ["first", "queued", "a", "b", "c", "d"]
        gates = {label: anyio.Event() for label in labels}
        ran: list[str] = []
        returned: list[str] = []

        async def job(label: str) -> None:
            ran.append(label)
            await gates[label].wait()

        async with make(workers=1, queue_size=1) as pool:

            async def submitter(label: str) -> None:
                await pool.submit(job, label)
                returned.append(label)

            async with anyio.create_task_group() as tg:
                await pool.submit(job, "first")
                await anyio.wait_all_tasks_blocked()
                await pool.submit(job, "queued")
                for label in "abcd":
                    tg.start_soon(submitter, label)
                    await anyio.wait_all_tasks_blocked()
                assert returned == []
                assert "4 waiting to submit" in repr(pool)
                with pytest.raises(PoolFullError):
                    pool.submit_nowait(job, "cutting in")
                for step, label in enumerate(labels):
                    assert ran == labels[: step + 1]
                    assert returned == list("abcd")[:step]
                    gates[label].set()
                    await anyio.wait_all_tasks_blocked()
        assert ran == labels
        assert returned == list("abcd")

    async def test_a_new_submitter_queues_behind_waiting_ones(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A submitter arriving as room frees up still goes behind those already waiting."""
        gate = anyio.Event()
        ran: list[str] = []

        async def job(label: str) -> None:
            ran.append(label)

        async with make(workers=1, queue_size=0) as pool:
            async with anyio.create_task_group() as tg:
                await pool.submit(hold, gate)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(pool.submit, job, "first")
                await anyio.wait_all_tasks_blocked()
                gate.set()  # the worker frees up, but "first" was waiting before "late"
                tg.start_soon(pool.submit, job, "late")
        assert ran == ["first", "late"]


@pytest.mark.anyio
class TestSubmitNowait:
    async def test_full_queue_raises_pool_full_and_counts(
        self,
        make: Callable[..., WorkerPool],
        clock: ManualClock,
        events: list[Event],
    ) -> None:
        """A full queue rejects with PoolFullError, publishes TaskRejected, counts it."""
        gate = anyio.Event()
        async with make(workers=1, queue_size=1, name="p") as pool:
            running = pool.submit_nowait(hold, gate)
            await anyio.wait_all_tasks_blocked()
            queued = pool.submit_nowait(hold, gate)
            clock.advance(5.0)
            with pytest.raises(PoolFullError) as info:
                pool.submit_nowait(hold, gate)
            with pytest.raises(PoolFullError):
                pool.submit_nowait(hold, gate)
            assert pool.stats().rejected == 2
            gate.set()
        error = info.value
        assert isinstance(error, RejectedError)
        assert error.name == "p"
        assert error.retry_after is None
        assert "'p'" in str(error)
        rejected = [e for e in events if isinstance(e, TaskRejected)]
        assert rejected == [TaskRejected(source="p", at=5.0, queued=1)] * 2
        assert await running is None
        assert await queued is None
        assert pool.stats().completed == 2

    async def test_idle_workers_take_a_burst(self, make: Callable[..., WorkerPool]) -> None:
        """With every worker idle and no queue, submit_nowait accepts one task per worker."""
        gate = anyio.Event()
        async with make(workers=2, queue_size=0) as pool:
            await anyio.wait_all_tasks_blocked()  # both workers wait for work
            first = pool.submit_nowait(hold, gate, None, 1)
            second = pool.submit_nowait(hold, gate, None, 2)  # the other worker is idle
            gate.set()
        assert (await first, await second) == (1, 2)

    async def test_idle_workers_count_as_room_with_a_queue(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """With every worker idle, workers + queue_size tasks are accepted at once."""
        gate = anyio.Event()
        async with make(workers=2, queue_size=2) as pool:
            await anyio.wait_all_tasks_blocked()  # both workers wait for work
            handles = [pool.submit_nowait(hold, gate, None, i) for i in range(4)]
            with pytest.raises(PoolFullError):
                pool.submit_nowait(hold, gate)
            gate.set()
        assert [await h for h in handles] == [0, 1, 2, 3]

    async def test_a_submitter_never_waits_while_a_worker_is_idle(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """submit() hands work to idle workers: three submissions keep three workers busy."""
        gauge = Gauge()
        gate = anyio.Event()
        async with make(workers=3, queue_size=0) as pool:
            await anyio.wait_all_tasks_blocked()  # every worker waits for work
            async with anyio.create_task_group() as tg:

                async def submit_three() -> None:
                    for i in range(3):
                        await pool.submit(hold, gate, gauge, i)

                tg.start_soon(submit_three)
                await anyio.wait_all_tasks_blocked()
                busy = gauge.now
                gate.set()
        assert busy == 3, "a submitter waits for room while a worker sits idle"

    async def test_room_frees_as_workers_take_tasks(self, make: Callable[..., WorkerPool]) -> None:
        """Once a worker takes a queued task, submit_nowait succeeds again."""
        gate = anyio.Event()
        async with make(workers=1, queue_size=1) as pool:
            pool.submit_nowait(hold, gate)
            await anyio.wait_all_tasks_blocked()
            pool.submit_nowait(double, 1)
            with pytest.raises(PoolFullError):
                pool.submit_nowait(double, 2)
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert await pool.submit_nowait(double, 3) == 6


@pytest.mark.anyio
class TestHandles:
    async def test_awaiting_gives_the_result(self, make: Callable[..., WorkerPool]) -> None:
        """Awaiting a handle gives the task's result, as often as it is awaited."""
        async with make() as pool:
            handle = await pool.submit(double, 21)
            assert isinstance(handle, TaskHandle)
            assert await handle == 42
            assert await handle == 42
            assert handle.done()

    async def test_awaiting_reraises_the_exact_exception(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Awaiting a failed task's handle raises the very exception object it raised."""
        error = Boom("bad input")
        async with make() as pool:
            handle = await pool.submit(fail, error)
            with pytest.raises(Boom) as info:
                await handle
            assert info.value is error
            with pytest.raises(Boom) as again:
                await pool.run(fail, error)
            assert again.value is error

    async def test_done_and_repr_follow_the_task(self, make: Callable[..., WorkerPool]) -> None:
        """done() and the repr follow a task from queued to running to done or failed."""
        gate = anyio.Event()
        async with make(workers=1, queue_size=2) as pool:
            running = await pool.submit(hold, gate)
            queued = await pool.submit(double, 1)
            failing = await pool.submit(fail, Boom())
            assert repr(queued) == "<TaskHandle queued>"
            await anyio.wait_all_tasks_blocked()
            assert repr(running) == "<TaskHandle running>"
            assert not running.done()
            assert not queued.done()
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert running.done()
            assert queued.done()
            assert repr(queued) == "<TaskHandle done>"
            assert repr(failing) == "<TaskHandle failed>"
            with pytest.raises(Boom):
                await failing

    async def test_cancel_drops_a_queued_task(self, make: Callable[..., WorkerPool]) -> None:
        """cancel() drops a queued task: it never runs and awaiting it raises PoolClosedError."""
        gate = anyio.Event()
        ran: list[int] = []

        async def job(i: int) -> None:
            ran.append(i)

        async with make(workers=1, queue_size=3) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            first = await pool.submit(job, 1)
            second = await pool.submit(job, 2)
            assert second.cancel() is True
            assert second.cancel() is False
            assert second.done()
            assert repr(second) == "<TaskHandle dropped>"
            gate.set()
        assert ran == [1]
        assert await first is None
        with pytest.raises(PoolClosedError):
            await second
        assert pool.stats().completed == 2

    async def test_cancel_wakes_a_waiting_awaiter(self, make: Callable[..., WorkerPool]) -> None:
        """A task awaiting a queued handle wakes with PoolClosedError when it is cancelled."""
        gate = anyio.Event()
        outcome: list[BaseException] = []
        async with make(workers=1, queue_size=1) as pool:
            await pool.submit(hold, gate)
            queued = await pool.submit(double, 1)

            async def awaiter() -> None:
                try:
                    await queued
                except PoolClosedError as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(awaiter)
                await anyio.wait_all_tasks_blocked()
                queued.cancel()
            gate.set()
        assert len(outcome) == 1

    async def test_cancel_frees_the_queue_slot(self, make: Callable[..., WorkerPool]) -> None:
        """A cancelled queued task gives its queue slot back at once."""
        gate = anyio.Event()
        async with make(workers=1, queue_size=1) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            queued = await pool.submit(double, 1)
            queued.cancel()
            assert pool.stats().queued == 0
            replacement = pool.submit_nowait(double, 2)
            gate.set()
        assert await replacement == 4

    async def test_a_cancelled_run_drops_its_queued_task(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A run() cancelled while its task waits in the queue drops the task: it never
        runs, and its place in the queue is free at once."""
        gate = anyio.Event()
        ran: list[str] = []

        async def job(label: str) -> str:
            ran.append(label)
            return label

        async with make(workers=1, queue_size=1) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            scope = anyio.CancelScope()

            async def caller() -> None:
                with scope:
                    await pool.run(job, "cancelled")

            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await anyio.wait_all_tasks_blocked()
                assert pool.stats().queued == 1
                scope.cancel()
            assert scope.cancelled_caught
            assert pool.stats().queued == 0
            replacement = pool.submit_nowait(job, "replacement")
            gate.set()
        assert await replacement == "replacement"
        assert ran == ["replacement"]

    async def test_a_cancelled_run_lets_its_running_task_finish(
        self, make: Callable[..., WorkerPool], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A run() cancelled while its task runs: the task is not interrupted, and its
        outcome, which nobody wants any more, is not logged."""
        gate = anyio.Event()
        finished: list[str] = []

        async def job() -> NoReturn:
            await gate.wait()
            finished.append("job")
            raise Boom("nobody waits for this")

        with caplog.at_level(logging.ERROR, logger="resilio"):
            async with make(workers=1, queue_size=1) as pool:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(pool.run, job)
                        await anyio.wait_all_tasks_blocked()
                        assert pool.stats().busy == 1
                        scope.cancel()
                gate.set()
            gc.collect()
        assert finished == ["job"]
        assert pool.stats().failed == 1
        assert resilio_errors(caplog) == []

    async def test_cancel_does_not_stop_a_started_task(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """cancel() on a running or finished task returns False and changes nothing."""
        gate = anyio.Event()
        async with make(workers=1) as pool:
            running = await pool.submit(hold, gate, None, "r")
            finished = await pool.submit(double, 4)
            await anyio.wait_all_tasks_blocked()
            assert running.cancel() is False
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert finished.cancel() is False
        assert await running == "r"
        assert await finished == 8


@pytest.mark.anyio
class TestFailures:
    async def test_a_failure_does_not_stop_the_pool_or_its_siblings(
        self, make: Callable[..., WorkerPool], events: list[Event]
    ) -> None:
        """A failing task publishes TaskFailed; siblings and later tasks still run."""
        gate = anyio.Event()
        errors = [Boom(i) for i in range(3)]
        async with make(workers=2, queue_size=10, name="p") as pool:
            sibling = await pool.submit(hold, gate, None, "sibling")
            failing = [await pool.submit(fail, e) for e in errors]
            await anyio.wait_all_tasks_blocked()
            assert not sibling.done()
            later = await pool.submit(double, 5)
            await anyio.wait_all_tasks_blocked()
            assert await later == 10
            gate.set()
            assert await sibling == "sibling"
            for handle, error in zip(failing, errors, strict=True):
                with pytest.raises(Boom) as info:
                    await handle
                assert info.value is error
        failed = [e for e in events if isinstance(e, TaskFailed)]
        assert [e.error for e in failed] == errors
        assert {e.source for e in failed} == {"p"}
        assert pool.stats().failed == 3
        assert pool.stats().completed == 2

    async def test_a_base_exception_reaches_its_handle_and_ends_the_pool(
        self, make: Callable[..., WorkerPool], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task raising a BaseException that is not an Exception: its handle raises that
        very error, which also leaves the block as the task group's error; the running
        tasks are cancelled, the queued ones dropped and the waiting submitters refused."""
        error = Halt("stop")
        gate = anyio.Event()
        handles: dict[str, TaskHandle[Any]] = {}
        submitted: list[BaseException] = []

        async def use_pool() -> None:
            async with make(workers=2, queue_size=1) as pool:

                async def submitter() -> None:
                    try:
                        await pool.submit(double, 3)
                    except PoolClosedError as exc:
                        submitted.append(exc)

                handles["running"] = await pool.submit(hold, gate)
                await anyio.wait_all_tasks_blocked()
                handles["halting"] = await pool.submit(fail, error)
                handles["queued"] = await pool.submit(double, 1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(submitter)
                    await anyio.sleep_forever()

        with caplog.at_level(logging.ERROR, logger="resilio"):
            with pytest.raises(BaseExceptionGroup) as info:
                await use_pool()
            gc.collect()
        assert leaves(info.value) == [error]
        with pytest.raises(Halt) as raised:
            await handles["halting"]
        assert raised.value is error
        for label in ("running", "queued"):
            with pytest.raises(PoolClosedError):
                await handles[label]
        assert len(submitted) == 1
        assert resilio_errors(caplog) == [], "the error left the pool: no need to log it"

    async def test_after_a_base_exception_no_worker_starts_a_queued_task(
        self, make: Callable[..., WorkerPool], anyio_backend: str
    ) -> None:
        """A task raising a BaseException drops the queued tasks at once: a worker woken
        for one of them in the same instant exits instead of starting it."""
        gate, go = anyio.Event(), anyio.Event()
        started: list[str] = []

        async def halt_on(event: anyio.Event) -> NoReturn:
            await event.wait()
            raise Halt

        async def job() -> None:
            started.append("job")
            await gate.wait()

        handles: list[TaskHandle[Any]] = []

        async def use_pool() -> None:
            async with make(workers=3, queue_size=1) as pool:
                await pool.submit(hold, gate)
                await pool.submit(halt_on, go)
                await anyio.wait_all_tasks_blocked()  # the third worker is idle
                go.set()  # the halting task resumes first...
                handles.append(pool.submit_nowait(job))  # ...then the idle worker
                await anyio.sleep_forever()

        with pytest.raises(BaseExceptionGroup):
            await use_pool()
        with pytest.raises(PoolClosedError):
            await handles[0]
        if anyio_backend == "asyncio":  # trio may run the two wake-ups the other way
            assert started == []

    async def test_an_unawaited_failure_is_logged_when_collected(
        self, make: Callable[..., WorkerPool], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failure nobody awaits is logged on the "resilio" logger when its handle is freed."""
        error = Boom("nobody looked")
        async with make() as pool:
            handle = await pool.submit(fail, error)
            await anyio.wait_all_tasks_blocked()
            assert handle.done()
        with caplog.at_level(logging.ERROR, logger="resilio"):
            del handle
            gc.collect()
        records = resilio_errors(caplog)
        assert len(records) == 1
        assert records[0].exc_info is not None
        assert records[0].exc_info[1] is error

    async def test_an_awaited_failure_is_not_logged(
        self, make: Callable[..., WorkerPool], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failure whose handle was awaited is not logged again; nor is a success."""
        async with make() as pool:
            handle = await pool.submit(fail, Boom())
            with pytest.raises(Boom):
                await handle
            ok = await pool.submit(double, 1)
            await anyio.wait_all_tasks_blocked()
        with caplog.at_level(logging.ERROR, logger="resilio"):
            del handle, ok
            gc.collect()
        assert resilio_errors(caplog) == []


@pytest.mark.anyio
class TestThreads:
    async def test_sync_callables_run_in_worker_threads(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A plain function runs in a thread other than the event loop's, with kwargs."""

        def where(a: int, *, b: int) -> tuple[int, int]:
            return threading.get_ident(), a + b

        async with make() as pool:
            ident, total = await pool.run(where, 1, b=2)
            assert ident != threading.get_ident()
            assert total == 3
            assert await pool.run(threading.get_ident) != threading.get_ident()

    async def test_sync_failure_is_isolated(self, make: Callable[..., WorkerPool]) -> None:
        """A sync task's exception comes back through its handle, as it was raised."""
        error = Boom("in a thread")

        def raise_it() -> NoReturn:
            raise error

        async with make() as pool:
            with pytest.raises(Boom) as info:
                await pool.run(raise_it)
            assert info.value is error
            assert await pool.run(len, "abc") == 3
        assert pool.stats().failed == 1

    async def test_at_most_workers_threads_at_once(self, make: Callable[..., WorkerPool]) -> None:
        """Sync tasks occupy at most `workers` threads at once."""
        gauge = Gauge()
        gate = threading.Event()
        seen: list[int] = []
        async with make(workers=2, queue_size=10) as pool:
            handles = [await pool.submit(hold_sync, gate, gauge, seen) for _ in range(6)]
            await wait_until(lambda: gauge.now == 2)
            await anyio.sleep(0.005)  # a third thread, if one could start, would show up
            assert gauge.now == 2
            assert pool.stats().busy == 2
            gate.set()
        assert gauge.peak == 2
        idents = {await h for h in handles}
        assert threading.get_ident() not in idents


@pytest.mark.anyio
class TestMap:
    async def test_returns_map_results(self, make: Callable[..., WorkerPool]) -> None:
        """map() returns a MapResults, its own async iterator, that aclose() stops."""

        async def double(i: int) -> int:
            return 2 * i

        async with make() as pool:
            results = pool.map(double, range(3))
            assert type(results) is MapResults
            assert aiter(results) is results
            assert await anext(results) == 0
            await results.aclose()
            assert [r async for r in results] == []

    async def test_results_come_in_input_order(self, make: Callable[..., WorkerPool]) -> None:
        """map() yields in input order even when later items finish first."""
        gates = [anyio.Event() for _ in range(3)]
        finished: list[int] = []
        results: list[int] = []

        async def job(i: int) -> int:
            await gates[i].wait()
            finished.append(i)
            return i * 10

        async with make(workers=3, queue_size=3) as pool:

            async def consume() -> None:
                results.extend([r async for r in pool.map(job, range(3))])

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                for gate in reversed(gates):
                    await anyio.wait_all_tasks_blocked()
                    gate.set()
        assert finished == [2, 1, 0]
        assert results == [0, 10, 20]

    async def test_an_endless_generator_cut_short(self, make: Callable[..., WorkerPool]) -> None:
        """map() over itertools.count() works, pulling at most workers + queue_size ahead."""
        pulled = 0

        def source() -> Iterator[int]:
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield i

        results: list[int] = []
        async with make(workers=2, queue_size=3) as pool:
            async with aclosing(pool.map(double, source())) as stream:
                async for r in stream:
                    results.append(r)
                    assert pulled - len(results) <= 5
                    if len(results) == 20:
                        break
        assert results == [2 * i for i in range(20)]
        assert pulled <= 25

    async def test_bare_itertools_count(self, make: Callable[..., WorkerPool]) -> None:
        """itertools.count() itself can be mapped and cut short."""
        async with make() as pool:
            seen: list[int] = []
            async with aclosing(pool.map(double, itertools.count(1))) as stream:
                async for r in stream:
                    seen.append(r)
                    if r >= 10:
                        break
        assert seen == [2, 4, 6, 8, 10]

    async def test_accepts_async_iterables(self, make: Callable[..., WorkerPool]) -> None:
        """map() accepts an async iterable and still yields in order."""

        async def source() -> AsyncIterator[int]:
            for i in range(7):
                await anyio.lowlevel.checkpoint()
                yield i

        async with make(workers=2, queue_size=1) as pool:
            assert [r async for r in pool.map(double, source())] == [0, 2, 4, 6, 8, 10, 12]

    async def test_sync_function(self, make: Callable[..., WorkerPool]) -> None:
        """map() runs a plain function in worker threads, results in order."""

        def square(x: int) -> int:
            return x * x

        async with make(workers=3, queue_size=2) as pool:
            assert [r async for r in pool.map(square, range(10))] == [x * x for x in range(10)]

    async def test_empty_input(self, make: Callable[..., WorkerPool]) -> None:
        """map() over nothing yields nothing."""
        async with make() as pool:
            assert [r async for r in pool.map(double, [])] == []

    async def test_a_task_error_is_raised_in_its_turn(
        self, make: Callable[..., WorkerPool], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task's error is raised after the earlier results, as is, and is not logged."""
        errors = {i: Boom(i) for i in (2, 4)}
        results: list[int] = []

        async def job(i: int) -> int:
            if i in errors:
                raise errors[i]
            return i

        async def collect(pool: WorkerPool) -> None:
            async with aclosing(pool.map(job, range(8))) as stream:
                async for r in stream:
                    results.append(r)  # noqa: PERF401 (keep what came before the error)

        with caplog.at_level(logging.ERROR, logger="resilio"):
            async with make(workers=2, queue_size=2) as pool:
                with pytest.raises(Boom) as info:
                    await collect(pool)
                assert await pool.run(double, 1) == 2
            gc.collect()
        assert results == [0, 1]
        assert info.value is errors[2]
        assert resilio_errors(caplog) == []

    async def test_leaving_the_loop_early_with_aclosing_drops_unstarted_tasks(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Closing the map early drops the tasks not yet started; running ones finish."""
        started: list[int] = []
        gate = anyio.Event()

        async def job(i: int) -> int:
            started.append(i)
            if i:
                await gate.wait()
            return i

        async with make(workers=2, queue_size=3) as pool:
            async with aclosing(pool.map(job, itertools.count())) as stream:
                async for r in stream:
                    assert r == 0
                    break
            assert pool.stats().busy == 2
            gate.set()
        assert started == [0, 1, 2]
        assert pool.stats().completed == 3

    async def test_a_cancelled_consumer_drops_the_task_it_waits_for(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A consumer cancelled while it waits for a result whose task is still queued:
        that task is dropped with the rest when the map is closed, and never runs."""
        gate = anyio.Event()
        started: list[int] = []

        async def job(i: int) -> int:
            started.append(i)
            return i

        async with make(workers=1, queue_size=2) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            with anyio.CancelScope() as scope:
                async with aclosing(pool.map(job, range(2))) as stream:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(anext, stream)
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
            assert pool.stats().queued == 0
            gate.set()
        assert started == []

    async def test_break_drops_unstarted_tasks(self, make: Callable[..., WorkerPool]) -> None:
        """A plain `break` out of `async for ... in pool.map(...)` drops unstarted tasks."""
        started: list[int] = []
        gate = anyio.Event()

        async def job(i: int) -> int:
            started.append(i)
            if i:
                await gate.wait()
            return i

        async with make(workers=2, queue_size=3) as pool:
            async for r in pool.map(job, itertools.count()):
                assert r == 0
                break
            await anyio.wait_all_tasks_blocked()
            gate.set()
        assert started == [0, 1, 2]


@pytest.mark.anyio
class TestShutdown:
    async def test_leaving_the_block_drains(self, make: Callable[..., WorkerPool]) -> None:
        """Leaving the block waits for running and queued tasks to finish, uncancelled."""
        gauge = Gauge()
        gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            async with make(workers=2, queue_size=4) as pool:
                handles = [await pool.submit(hold, gate, gauge, i) for i in range(6)]
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(release_when_blocked, gate)
            assert gate.is_set()
            assert all(h.done() for h in handles)
            assert worker_task_ids() == set()
        assert [await h for h in handles] == list(range(6))
        assert pool.stats().completed == 6

    async def test_shutdown_drains_too(self, make: Callable[..., WorkerPool]) -> None:
        """shutdown() with no argument drains and returns after the workers exited."""
        async with make(workers=2, queue_size=5) as pool:
            handles = [await pool.submit(double, i) for i in range(6)]
            await pool.shutdown()
            assert all(h.done() for h in handles)
            assert worker_task_ids() == set()
        assert [await h for h in handles] == [0, 2, 4, 6, 8, 10]

    async def test_a_drain_runs_tasks_queued_behind_a_reservation(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Room reserved for a waiting submitter that has not resumed yet, then a task
        accepted behind it, then a drain: the task runs, the reserved submitter gets
        PoolClosedError, and nothing hangs (repeated: trio's scheduling order varies)."""

        async def one_round() -> None:
            gate = anyio.Event()
            submitted: list[Any] = []
            async with make(workers=1, queue_size=2) as pool:

                async def submitter() -> None:
                    try:
                        submitted.append(await pool.submit(double, 5))
                    except PoolClosedError as exc:
                        submitted.append(exc)

                await pool.submit(hold, gate)
                await anyio.wait_all_tasks_blocked()
                first = pool.submit_nowait(double, 1)
                second = pool.submit_nowait(double, 2)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(submitter)
                    await anyio.wait_all_tasks_blocked()
                    gate.set()
                    first.cancel()
                    second.cancel()  # the room freed is reserved for the submitter
                    accepted = pool.submit_nowait(double, 21)
                    with anyio.fail_after(HANG):
                        await pool.shutdown()
            with anyio.fail_after(HANG):
                assert await accepted == 42
            assert len(submitted) == 1
            assert isinstance(submitted[0], PoolClosedError)
            assert pool.stats().completed == 2

        for _ in range(10):
            await one_round()

    async def test_shutdown_cancel_cancels_running_and_drops_queued(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """shutdown(cancel=True) cancels running tasks, drops queued ones, awaits the workers."""
        cancelled: list[int] = []
        ran: list[int] = []

        async def victim(i: int) -> None:
            ran.append(i)
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

        async with make(workers=2, queue_size=3) as pool:
            handles = [await pool.submit(victim, i) for i in range(5)]
            await anyio.wait_all_tasks_blocked()
            await pool.shutdown(cancel=True)
            assert sorted(cancelled) == [0, 1]
            assert sorted(ran) == [0, 1]
            assert worker_task_ids() == set()
            assert all(h.done() for h in handles)
            for handle in handles:
                with pytest.raises(PoolClosedError):
                    await handle
            assert pool.stats().busy == 0
            with pytest.raises(PoolClosedError):
                await pool.submit(double, 1)
        assert sorted(ran) == [0, 1]

    async def test_waiting_submitters_get_pool_closed(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Submitters waiting for room when the pool shuts down get PoolClosedError."""
        gate = anyio.Event()
        outcomes: list[BaseException] = []
        async with make(workers=1, queue_size=0) as pool:

            async def submitter() -> None:
                try:
                    await pool.submit(double, 1)
                except PoolClosedError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                await pool.submit(hold, gate)
                tg.start_soon(submitter)
                tg.start_soon(submitter)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(pool.shutdown)
                await anyio.wait_all_tasks_blocked()
                assert len(outcomes) == 2
                gate.set()
        assert pool.stats().completed == 1

    async def test_waiting_submitters_get_pool_closed_when_the_block_ends(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Leaving the block also turns away submitters (in other tasks) waiting for room."""
        gate = anyio.Event()
        outcomes: list[BaseException] = []
        async with anyio.create_task_group() as tg:
            async with make(workers=1, queue_size=0) as pool:

                async def submitter() -> None:
                    try:
                        await pool.submit(double, 1)
                    except PoolClosedError as exc:
                        outcomes.append(exc)

                await pool.submit(hold, gate)
                tg.start_soon(submitter)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(release_when_blocked, gate)
        assert len(outcomes) == 1

    async def test_an_error_in_the_block_cancels_and_propagates_unwrapped(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """If the block raises, running tasks are cancelled and the error propagates as is."""
        cancelled: list[int] = []
        error = Boom("in the block")

        async def victim(i: int) -> None:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

        handles: list[TaskHandle[None]] = []

        async def use_pool() -> None:
            async with make(workers=2, queue_size=2) as pool:
                handles.extend([await pool.submit(victim, i) for i in range(3)])
                await anyio.wait_all_tasks_blocked()
                raise error

        with pytest.raises(Boom) as info:
            await use_pool()
        assert info.value is error
        assert type(info.value) is Boom
        assert sorted(cancelled) == [0, 1]
        for handle in handles:
            with pytest.raises(PoolClosedError):
                await handle

    async def test_an_outer_cancellation_cancels_the_pool(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Cancelling the task that holds the pool cancels its tasks rather than draining."""
        cancelled: list[int] = []

        async def victim(i: int) -> None:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

        with anyio.CancelScope() as scope:
            async with make(workers=2) as pool:
                await pool.submit(victim, 0)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert cancelled == [0]


@pytest.mark.anyio
class TestCancelledSubmitter:
    async def test_cancelled_while_waiting_leaves_nothing_behind(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A submitter cancelled while waiting for room leaves no task that ever runs."""
        gate = anyio.Event()
        ran: list[str] = []

        async def job(label: str) -> None:
            ran.append(label)

        async with make(workers=1, queue_size=1) as pool:
            async with anyio.create_task_group() as tg:
                await pool.submit(hold, gate)
                await anyio.wait_all_tasks_blocked()
                await pool.submit(job, "queued")
                scope = anyio.CancelScope()

                async def doomed() -> None:
                    with scope:
                        await pool.submit(job, "cancelled")

                tg.start_soon(pool.submit, job, "before")
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(doomed)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(pool.submit, job, "after")
                await anyio.wait_all_tasks_blocked()
                assert "3 waiting to submit" in repr(pool)
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                assert scope.cancelled_caught
                assert "2 waiting to submit" in repr(pool)
                gate.set()
        assert ran == ["queued", "before", "after"]
        assert pool.stats().completed == 4

    async def test_cancelled_as_room_is_granted_never_runs_its_task(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """A submitter cancelled in the same step that room is granted to it: the task never runs.

        The submit() raised (the caller holds no handle), so its task must not run.
        """
        gate = anyio.Event()
        scope = anyio.CancelScope()
        ran: list[str] = []
        returned: list[TaskHandle[None]] = []

        async def first() -> None:
            await gate.wait()
            scope.cancel()  # the worker frees up and grants room in this same step

        async def job() -> None:
            ran.append("job")

        async with make(workers=1, queue_size=0) as pool:

            async def submitter() -> None:
                with scope:
                    returned.append(await pool.submit(job))

            async with anyio.create_task_group() as tg:
                await pool.submit(first)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(submitter)
                await anyio.wait_all_tasks_blocked()
                gate.set()
        assert scope.cancelled_caught or returned
        if not returned:
            assert ran == [], "submit() was cancelled, yet its task ran"


@pytest.mark.anyio
class TestResize:
    async def test_growing_starts_workers_at_once(self, make: Callable[..., WorkerPool]) -> None:
        """resize() up starts new workers at once: queued tasks begin running."""
        gauge = Gauge()
        gate = anyio.Event()
        async with make(workers=1, queue_size=5) as pool:
            for _ in range(5):
                await pool.submit(hold, gate, gauge)
            await anyio.wait_all_tasks_blocked()
            assert gauge.now == 1
            pool.resize(3)
            assert pool.stats().workers == 3
            await anyio.wait_all_tasks_blocked()
            assert gauge.now == 3
            assert len(worker_task_ids()) == 3
            gate.set()
        assert gauge.peak == 3

    async def test_shrinking_lets_running_tasks_finish(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """resize() down keeps running tasks going; then the surplus workers exit."""
        before, after = Gauge(), Gauge()
        gate_a, gate_b = anyio.Event(), anyio.Event()
        async with make(workers=4, queue_size=10) as pool:
            first = [await pool.submit(hold, gate_a, before, i) for i in range(4)]
            second = [await pool.submit(hold, gate_b, after, i) for i in range(6)]
            await anyio.wait_all_tasks_blocked()
            assert before.now == 4
            pool.resize(2)
            assert pool.stats().workers == 2
            await anyio.wait_all_tasks_blocked()
            assert before.now == 4  # not cancelled
            assert after.now == 0
            gate_a.set()
            await anyio.wait_all_tasks_blocked()
            assert after.now == 2
            assert len(worker_task_ids()) == 2
            gate_b.set()
        assert [await h for h in first] == [0, 1, 2, 3]
        assert [await h for h in second] == list(range(6))
        assert after.peak == 2

    async def test_shrinking_idle_workers(self, make: Callable[..., WorkerPool]) -> None:
        """Idle surplus workers exit at once after resize() down."""
        gauge = Gauge()
        gate = anyio.Event()
        async with make(workers=4, queue_size=10) as pool:
            await anyio.wait_all_tasks_blocked()
            pool.resize(1)
            await anyio.wait_all_tasks_blocked()
            assert len(worker_task_ids()) == 1
            for _ in range(3):
                await pool.submit(hold, gate, gauge)
            await anyio.wait_all_tasks_blocked()
            assert gauge.now == 1
            gate.set()
        assert gauge.peak == 1

    async def test_retiring_workers_are_not_room(self, make: Callable[..., WorkerPool]) -> None:
        """After a resize down, idle workers on their way out take no task: with no queue,
        one worker left takes one task, and stats never show more queued than fits."""
        gate = anyio.Event()
        async with make(workers=4, queue_size=0) as pool:
            await anyio.wait_all_tasks_blocked()  # every worker waits for work
            pool.resize(1)
            accepted = pool.submit_nowait(hold, gate, None, "only")
            for _ in range(3):
                with pytest.raises(PoolFullError):
                    pool.submit_nowait(hold, gate)
            assert pool.stats() == PoolStats(
                workers=1, busy=1, queued=0, submitted=1, completed=0, failed=0, rejected=3
            )
            await anyio.wait_all_tasks_blocked()
            assert pool.stats() == PoolStats(
                workers=1, busy=1, queued=0, submitted=1, completed=0, failed=0, rejected=3
            )
            assert len(worker_task_ids()) == 1
            gate.set()
        assert await accepted == "only"

    async def test_busy_workers_on_their_way_out_are_not_room(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Shrinking with some workers busy and some idle: only the workers that stay
        count as room, whichever of them leave first."""
        gates = [anyio.Event() for _ in range(3)]
        async with make(workers=4, queue_size=1) as pool:
            running = [await pool.submit(hold, gate) for gate in gates[:2]]
            await anyio.wait_all_tasks_blocked()
            pool.resize(2)  # two busy, two idle: two must go
            queued = pool.submit_nowait(hold, gates[2])
            with pytest.raises(PoolFullError):
                pool.submit_nowait(double, 1)
            assert pool.stats().queued == 1
            await anyio.wait_all_tasks_blocked()
            assert len(worker_task_ids()) == 2
            assert pool.stats().queued == 1
            for gate in gates:
                gate.set()
        assert [await h for h in [*running, queued]] == [None] * 3

    async def test_workers_stay_a_fixed_set_across_resizes(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """After each resize, tasks run on at most `workers` distinct worker tasks."""
        seen: list[int] = []

        async def where() -> None:
            seen.append(anyio.get_current_task().id)
            await anyio.lowlevel.checkpoint()

        async def phase(pool: WorkerPool) -> set[int]:
            seen.clear()
            for _ in range(30):
                await pool.submit(where)
            await anyio.wait_all_tasks_blocked()
            assert len(seen) == 30
            return set(seen)

        async with make(workers=2, queue_size=30) as pool:
            assert len(await phase(pool)) <= 2
            pool.resize(5)
            ids = await phase(pool)
            assert len(ids) <= 5
            assert ids <= worker_task_ids()
            pool.resize(1)
            await anyio.wait_all_tasks_blocked()
            assert len(await phase(pool)) == 1
            pool.resize(3)
            assert len(await phase(pool)) <= 3
            assert len(worker_task_ids()) == 3

    async def test_growing_then_shrinking_back_before_workers_retire(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Shrinking then growing back while tasks run neither loses nor adds workers."""
        gauge = Gauge()
        gate = anyio.Event()
        async with make(workers=3, queue_size=10) as pool:
            for _ in range(8):
                await pool.submit(hold, gate, gauge)
            await anyio.wait_all_tasks_blocked()
            pool.resize(1)
            pool.resize(3)
            await anyio.wait_all_tasks_blocked()
            assert len(worker_task_ids()) == 3
            assert gauge.now == 3
            gate.set()
        assert gauge.peak == 3

    async def test_resize_applies_to_threads(self, make: Callable[..., WorkerPool]) -> None:
        """Growing the pool lets more sync tasks run in threads at once."""
        gauge = Gauge()
        gate = threading.Event()
        seen: list[int] = []
        async with make(workers=1, queue_size=5) as pool:
            for _ in range(3):
                await pool.submit(hold_sync, gate, gauge, seen)
            await wait_until(lambda: gauge.now == 1)
            pool.resize(3)
            await wait_until(lambda: gauge.now == 3)
            gate.set()
        assert gauge.peak == 3


# On one event loop, whatever happens between two scheduling points happens at once.
# A script is a few rounds; each round starts some submitters (they queue for room at
# the next pause), pauses in one of several ways (the shutdowns among them), then
# does a burst of steps with no pause in between: this is where room is reserved for
# a submitter that has not resumed yet, and where races between the pool's parts live.
BURST_STEPS = st.tuples(
    st.sampled_from(
        [
            *("nowait", "nowait", "fill", "finish", "finish", "drop", "drop"),
            *("resize", "cancel_submit", "cancel_run"),
        ]
    ),
    st.integers(0, 7),
)
PAUSES = st.sampled_from(
    ["settle", "steps", "steps", "step", "shutdown", "shutdown_soon", "cancel", "cancel_soon"]
)
ROUNDS = st.tuples(
    st.integers(0, 2),  # submitters started
    st.integers(0, 1),  # runs started
    PAUSES,
    st.lists(BURST_STEPS, max_size=5),
)


@pytest.mark.anyio
class TestInterleavings:
    @settings(max_examples=120, deadline=None)
    @given(
        workers=st.integers(1, 3),
        queue_size=st.integers(0, 2),
        script=st.lists(ROUNDS, max_size=5),
    )
    @example(  # a task accepted behind room reserved for a submitter, then a drain
        workers=1,
        queue_size=2,
        script=[
            (0, 0, "settle", [("fill", 0)]),
            (1, 0, "settle", [("finish", 0), ("drop", 0), ("drop", 0), ("nowait", 0)]),
        ],
    )
    async def test_every_submission_resolves(
        self, workers: int, queue_size: int, script: list[tuple[int, int, str, list[Any]]]
    ) -> None:
        """Any interleaving of submissions, cancellations, resizes and shutdowns: every
        accepted task either runs (once) or its handle raises PoolClosedError, a refused
        submission never runs, and nothing hangs."""
        ran: list[int] = []
        gates: list[anyio.Event] = []
        handles: dict[int, TaskHandle[int]] = {}
        dropped: set[int] = set()  # cancel() said it dropped them
        refused: set[int] = set()  # the submission raised: the task must never run
        runs: dict[int, Any] = {}
        submit_scopes: list[anyio.CancelScope] = []
        run_scopes: list[anyio.CancelScope] = []
        cancelled_shutdown = False

        async def job(i: int) -> int:
            ran.append(i)
            await gates[i].wait()
            return i

        def new_task() -> int:
            gates.append(anyio.Event())
            return len(gates) - 1

        def nowait() -> bool:
            i = new_task()
            try:
                handles[i] = pool.submit_nowait(job, i)
            except (PoolFullError, PoolClosedError):
                refused.add(i)
                return False
            return True

        async def submitter(i: int, scope: anyio.CancelScope) -> None:
            with scope:
                with contextlib.suppress(PoolClosedError):
                    handles[i] = await pool.submit(job, i)
            if i not in handles:
                refused.add(i)

        async def runner(i: int, scope: anyio.CancelScope) -> None:
            with scope:
                try:
                    runs[i] = await pool.run(job, i)
                except PoolClosedError as exc:
                    runs[i] = exc

        def step(op: str, arg: int) -> None:
            if op == "nowait":
                nowait()
            elif op == "fill":
                while nowait():
                    pass
            elif op == "finish":  # a running task returns
                running = [i for i in ran if not gates[i].is_set()]
                if running:
                    gates[running[arg % len(running)]].set()
            elif op == "drop":  # a queued task is dropped
                queued = [i for i, h in handles.items() if i not in ran and not h.done()]
                if queued and handles[i := queued[arg % len(queued)]].cancel():
                    dropped.add(i)
            elif op == "resize":
                with contextlib.suppress(PoolClosedError):
                    pool.resize(1 + arg % 3)
            elif op == "cancel_submit" and submit_scopes:
                submit_scopes[arg % len(submit_scopes)].cancel()
            elif op == "cancel_run" and run_scopes:
                run_scopes[arg % len(run_scopes)].cancel()

        pool = WorkerPool(workers, queue_size, bus=EventBus())
        with anyio.fail_after(HANG):  # only a hang gets there
            async with anyio.create_task_group() as tg:
                async with pool:
                    for submitters, runners, pause, burst in script:
                        for _ in range(submitters):
                            submit_scopes.append(anyio.CancelScope())
                            tg.start_soon(submitter, new_task(), submit_scopes[-1])
                        for _ in range(runners):
                            run_scopes.append(anyio.CancelScope())
                            tg.start_soon(runner, new_task(), run_scopes[-1])
                        if pause == "settle":  # every other task blocks (slow on asyncio)
                            await anyio.wait_all_tasks_blocked()
                        elif pause.startswith("step"):
                            for _ in range(5 if pause == "steps" else 1):
                                await anyio.lowlevel.checkpoint()
                        else:  # a shutdown, awaited now or started in a task of its own
                            cancel = pause.startswith("cancel")
                            cancelled_shutdown = cancelled_shutdown or cancel
                            for gate in gates:
                                gate.set()
                            if pause.endswith("soon"):
                                tg.start_soon(functools.partial(pool.shutdown, cancel=cancel))
                            else:
                                await pool.shutdown(cancel=cancel)
                        for op, arg in burst:
                            step(op, arg)
                    for gate in gates:
                        gate.set()
            for i, handle in handles.items():
                if await settled(handle) == i:
                    assert i in ran
                else:
                    assert cancelled_shutdown or i in dropped, f"task {i} was dropped"
        assert len(ran) == len(set(ran)), "a task ran twice"
        assert not refused & set(ran), "a task whose submission raised has run"
        assert not dropped & set(ran), "a task dropped by cancel() has run"
        for i, outcome in runs.items():
            assert outcome == i or isinstance(outcome, PoolClosedError)
        assert pool.stats().busy == 0
        assert pool.stats().queued == 0


@pytest.mark.anyio
class TestStats:
    async def test_stats_counts_everything(self, make: Callable[..., WorkerPool]) -> None:
        """stats() reports workers, busy, queued, completed, failed and rejected."""
        gate = anyio.Event()
        async with make(workers=2, queue_size=3) as pool:
            assert await pool.run(double, 1) == 2
            with pytest.raises(Boom):
                await pool.run(fail, Boom())
            for _ in range(5):
                await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(PoolFullError):
                pool.submit_nowait(double, 1)
            stats = pool.stats()
            assert stats == PoolStats(
                workers=2,
                busy=2,
                queued=3,
                submitted=7,
                completed=1,
                failed=1,
                rejected=1,
                queue_peak=3,
            )
            gate.set()
        assert pool.stats() == PoolStats(
            workers=2,
            busy=0,
            queued=0,
            submitted=7,
            completed=6,
            failed=1,
            rejected=1,
            queue_peak=3,
        )
        assert stats.busy == 2  # a snapshot, not a live view

    async def test_a_task_handed_to_an_idle_worker_counts_as_busy(
        self, make: Callable[..., WorkerPool]
    ) -> None:
        """Right after a submission to idle workers, before they start, stats count the
        tasks as busy, not queued: queued never exceeds queue_size, nor busy workers."""
        gate = anyio.Event()
        async with make(workers=2, queue_size=1) as pool:
            await anyio.wait_all_tasks_blocked()  # both workers wait for work
            for _ in range(3):
                pool.submit_nowait(hold, gate)
            assert pool.stats() == PoolStats(
                workers=2,
                busy=2,
                queued=1,
                submitted=3,
                rejected=0,
                queue_peak=1,
                completed=0,
                failed=0,
            )
            assert "2/2 busy, 1/1 queued" in repr(pool)
            await anyio.wait_all_tasks_blocked()
            assert pool.stats().busy == 2
            assert pool.stats().queued == 1
            gate.set()

    def test_stats_are_frozen(self) -> None:
        """A PoolStats cannot be changed."""
        stats = WorkerPool().stats()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.busy = 3  # type: ignore[misc]
