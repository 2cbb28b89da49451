"""The cumulative counters of WorkerPool.stats() and SessionManager.stats().

Each counter is checked against the events a subscriber saw in the same scripted run
on a ManualClock (asyncio and trio), against the invariant that ties it to the state
(every accepted task ends exactly one way), after seeded random runs, under sync tasks
running in many threads, and while other threads read the counters.
"""

from __future__ import annotations

import collections
import gc
import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import pytest

from resilio import (
    CallCompleted,
    DestroyHookFailed,
    Event,
    EventBus,
    ManualClock,
    PoolClosedError,
    PoolFullError,
    PoolStats,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    SessionManager,
    SessionStats,
    TaskFailed,
    TaskRejected,
    WorkerPool,
)
from resilio._registry import live

pytestmark = pytest.mark.anyio

REASONS = ("closed", "completed", "expired", "lifetime", "heartbeat", "evicted", "shutdown")


class Boom(Exception):
    """The failure the tasks and hooks raise."""


def of_type(events: list[Event], kind: type[Event]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


async def ok(value: int = 1) -> int:
    return value


async def boom() -> None:
    raise Boom


def ok_sync(value: int = 1) -> int:
    return value


def boom_sync() -> None:
    raise Boom


async def hold(gate: anyio.Event) -> str:
    await gate.wait()
    return "held"


def accounted(stats: PoolStats) -> int:
    """What every accepted task must add up to."""
    return stats.completed + stats.failed + stats.cancelled + stats.busy + stats.queued


# -- the worker pool ------------------------------------------------------------------


@pytest.fixture
def pool_of(clock: ManualClock, bus: EventBus) -> Callable[..., WorkerPool]:
    def factory(workers: int = 2, queue_size: int = 2, **options: Any) -> WorkerPool:
        return WorkerPool(workers, queue_size, name="jobs", clock=clock, bus=bus, **options)

    return factory


class TestPoolCounters:
    async def test_counts_equal_the_events_seen(
        self, pool_of: Callable[..., WorkerPool], events: list[Event]
    ) -> None:
        """A scripted run: successes and failures (async and sync), refusals, a task
        cancelled before it starts, and a shutdown that cancels a running task and drops
        the queued ones. Each count equals the events a subscriber saw."""
        gate = anyio.Event()
        pool = pool_of(workers=2, queue_size=3)
        async with pool:
            for value in range(5):
                assert await pool.run(ok, value) == value
            assert await pool.run(ok_sync, 7) == 7
            for failing in (boom, boom_sync):
                with pytest.raises(Boom):
                    await pool.run(failing)
            running = [await pool.submit(hold, gate) for _ in range(2)]
            await anyio.wait_all_tasks_blocked()
            queued = [pool.submit_nowait(ok, n) for n in range(3)]
            for _ in range(4):
                with pytest.raises(PoolFullError):
                    pool.submit_nowait(ok)
            assert queued[0].cancel()
            mid = pool.stats()
            assert mid == PoolStats(
                workers=2,
                busy=2,
                queued=2,
                submitted=13,
                completed=6,
                failed=2,
                cancelled=1,
                rejected=4,
                queue_peak=3,
            )
            assert accounted(mid) == mid.submitted
            await pool.shutdown(cancel=True)
        for handle in [*running, *queued]:
            with pytest.raises(PoolClosedError):
                await handle
        stats = pool.stats()
        assert stats == PoolStats(
            workers=2,
            busy=0,
            queued=0,
            submitted=13,
            completed=6,
            failed=2,
            cancelled=5,
            rejected=4,
            queue_peak=3,
        )
        outcomes = collections.Counter(e.outcome for e in of_type(events, CallCompleted))
        assert stats.rejected == len(of_type(events, TaskRejected))
        assert stats.failed == len(of_type(events, TaskFailed)) == outcomes["failed"]
        assert stats.completed == outcomes["succeeded"]
        assert set(outcomes) == {"succeeded", "failed"}
        assert accounted(stats) == stats.submitted

    async def test_nothing_counted_before_start(self, pool_of: Callable[..., WorkerPool]) -> None:
        assert pool_of().stats() == PoolStats(
            workers=2,
            busy=0,
            queued=0,
            submitted=0,
            completed=0,
            failed=0,
            cancelled=0,
            rejected=0,
            queue_peak=0,
        )

    async def test_queue_peak_is_a_high_water_mark(
        self, pool_of: Callable[..., WorkerPool]
    ) -> None:
        """The most tasks waiting at once: it stays after the queue drains, and a task
        handed straight to an idle worker never counts as waiting."""
        gate = anyio.Event()
        async with pool_of(workers=2, queue_size=5) as pool:
            await anyio.wait_all_tasks_blocked()
            for _ in range(2):
                pool.submit_nowait(hold, gate)  # straight to the idle workers
            assert pool.stats().queue_peak == 0
            for _ in range(4):
                pool.submit_nowait(ok)
            assert pool.stats().queued == 4
            assert pool.stats().queue_peak == 4
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert pool.stats().queued == 0
            assert pool.stats().queue_peak == 4
            pool.submit_nowait(ok)
            assert pool.stats().queue_peak == 4
        assert pool.stats().queue_peak == 4

    async def test_queue_peak_never_exceeds_queue_size(
        self, pool_of: Callable[..., WorkerPool]
    ) -> None:
        """With no queue at all, idle workers are the only room: nothing ever waits,
        however many tasks pass; submitters that wait for room count when admitted."""
        gate = anyio.Event()
        async with pool_of(workers=3, queue_size=0) as pool:
            await anyio.wait_all_tasks_blocked()
            for _ in range(3):
                pool.submit_nowait(hold, gate)
            assert pool.stats().queue_peak == 0
            gate.set()
        gate = anyio.Event()
        async with pool_of(workers=1, queue_size=2) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as tasks:
                for _ in range(4):  # two fit, two wait for room
                    tasks.start_soon(pool.submit, ok)
                await anyio.wait_all_tasks_blocked()
                assert pool.stats().queue_peak == 2
                gate.set()
            assert pool.stats().queue_peak == 2
        assert pool.stats().submitted == 5
        assert pool.stats().completed == 5

    async def test_a_submitter_cancelled_while_waiting_submits_nothing(
        self, pool_of: Callable[..., WorkerPool]
    ) -> None:
        gate = anyio.Event()
        async with pool_of(workers=1, queue_size=0) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.01) as scope:
                await pool.submit(ok)
            assert scope.cancelled_caught
            gate.set()
        stats = pool.stats()
        assert (stats.submitted, stats.completed, stats.cancelled) == (1, 1, 0)

    async def test_a_caller_that_gives_up_cancels_its_queued_task(
        self, pool_of: Callable[..., WorkerPool]
    ) -> None:
        """run() cancelled while its task is still queued: the task is dropped, and
        counted once, as cancelled."""
        gate = anyio.Event()
        async with pool_of(workers=1, queue_size=1) as pool:
            await pool.submit(hold, gate)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.01):
                await pool.run(ok)
            assert pool.stats().cancelled == 1
            assert pool.stats().queued == 0
            gate.set()
        stats = pool.stats()
        assert (stats.submitted, stats.completed, stats.cancelled) == (2, 1, 1)

    async def test_draining_counts_every_task_as_it_ends(
        self, pool_of: Callable[..., WorkerPool]
    ) -> None:
        async with pool_of(workers=3, queue_size=10) as pool:
            for n in range(10):
                pool.submit_nowait(ok, n)
        stats = pool.stats()
        assert (stats.submitted, stats.completed, stats.cancelled) == (10, 10, 0)

    @pytest.mark.parametrize("seed", range(6))
    async def test_every_accepted_task_ends_one_way(
        self, pool_of: Callable[..., WorkerPool], seed: int
    ) -> None:
        """Random submissions, refusals, cancellations, completions and failures: at
        every step, submitted == completed + failed + cancelled + busy + queued, the
        peak is the most seen queued, and the counts match a model."""
        rng = random.Random(seed)
        gates: list[anyio.Event] = []
        handles: list[Any] = []
        accepted = rejected = dropped = 0
        peak = 0
        async with pool_of(workers=rng.randint(1, 3), queue_size=rng.randint(0, 4)) as pool:
            for _ in range(200):
                move = rng.random()
                if move < 0.5:
                    gate = anyio.Event()
                    gates.append(gate)
                    try:
                        handles.append(pool.submit_nowait(hold, gate))
                        accepted += 1
                    except PoolFullError:
                        rejected += 1
                elif move < 0.6 and handles:
                    dropped += rng.choice(handles).cancel()
                elif move < 0.8 and gates:
                    gates.pop(rng.randrange(len(gates))).set()
                else:
                    await anyio.wait_all_tasks_blocked()
                stats = pool.stats()
                peak = max(peak, stats.queued)
                assert accounted(stats) == stats.submitted == accepted
                assert stats.rejected == rejected
                assert stats.cancelled == dropped
                assert stats.queue_peak == peak
            for gate in gates:
                gate.set()
        stats = pool.stats()
        assert stats.completed + stats.cancelled == accepted
        assert accounted(stats) == accepted

    async def test_sync_tasks_in_many_threads_are_counted_exactly(
        self, pool_of: Callable[..., WorkerPool], events: list[Event]
    ) -> None:
        """2,000 sync tasks on 8 worker threads, a third failing, while another thread
        reads the counters all along: exact totals, and readings never go down."""
        readings: list[PoolStats] = []
        stop = threading.Event()
        pool = pool_of(workers=8, queue_size=64)

        def read() -> None:
            while not stop.is_set():
                readings.append(pool.stats())

        reader = threading.Thread(target=read)
        reader.start()
        try:
            async with pool:
                for n in range(2000):
                    await pool.submit(boom_sync if n % 3 == 0 else ok_sync, n)
        finally:
            stop.set()
            reader.join()
        stats = pool.stats()
        assert (stats.submitted, stats.completed, stats.failed) == (2000, 1333, 667)
        assert stats.failed == len(of_type(events, TaskFailed))
        assert len(of_type(events, CallCompleted)) == 2000
        readings.append(stats)
        for earlier, later in itertools.pairwise(readings):
            assert later.submitted >= earlier.submitted
            assert later.completed >= earlier.completed
            assert later.failed >= earlier.failed

    async def test_stats_read_from_another_thread(self, pool_of: Callable[..., WorkerPool]) -> None:
        async with pool_of() as pool:
            await pool.run(ok)
            stats = await anyio.to_thread.run_sync(pool.stats)
        assert stats.completed == 1

    async def test_stats_are_a_frozen_snapshot(self, pool_of: Callable[..., WorkerPool]) -> None:
        async with pool_of() as pool:
            before = pool.stats()
            await pool.run(ok)
        assert before.completed == 0
        assert pool.stats().completed == 1
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            before.submitted = 3  # type: ignore[misc]


class TestPoolCallCompleted:
    async def test_duration_on_the_pool_clock(
        self, pool_of: Callable[..., WorkerPool], clock: ManualClock, bus: EventBus
    ) -> None:
        """Each task's outcome and how long it ran, in seconds on the pool's clock."""
        seen: list[CallCompleted] = []
        bus.subscribe(CallCompleted, seen.append)

        async def slow(seconds: float, fail: bool) -> None:
            await clock.sleep_async(seconds)
            if fail:
                raise Boom

        async with pool_of() as pool:
            first = await pool.submit(slow, 3, False)
            second = await pool.submit(slow, 5, True)
            await anyio.wait_all_tasks_blocked()
            clock.advance(3)
            await first
            clock.advance(2)
            with pytest.raises(Boom):
                await second
        assert [(e.source, e.outcome, e.duration, e.at) for e in seen] == [
            ("jobs", "succeeded", 3, 3),
            ("jobs", "failed", 5, 5),
        ]

    async def test_published_only_while_somebody_listens(
        self, pool_of: Callable[..., WorkerPool], bus: EventBus
    ) -> None:
        """Workers that found nobody listening notice a subscriber that comes later,
        and stop publishing once it leaves; other subscriptions do not start it."""
        seen: list[CallCompleted] = []
        async with pool_of() as pool:
            bus.subscribe(TaskFailed, lambda event: None)
            for _ in range(4):
                await pool.run(ok)
            assert seen == []
            unsubscribe = bus.subscribe(CallCompleted, seen.append)
            for _ in range(3):
                await pool.run(ok)
            assert len(seen) == 3
            unsubscribe()
            for _ in range(3):
                await pool.run(ok)
            assert len(seen) == 3
            bus.subscribe(Event, seen.append)  # a base class receives it too
            await pool.run(ok)
            assert len(seen) == 4

    async def test_nobody_listening_reads_no_clock(self, bus: EventBus) -> None:
        """With no subscriber, running a task never asks the clock the time."""

        class CountingClock(ManualClock):
            reads = 0

            def monotonic(self) -> float:
                CountingClock.reads += 1
                return super().monotonic()

        async with WorkerPool(2, 2, clock=CountingClock(), bus=bus) as pool:
            for n in range(20):
                assert await pool.run(ok, n) == n
        assert CountingClock.reads == 0


class TestPoolRegistry:
    async def test_a_pool_is_live_until_dropped(self) -> None:
        pool = WorkerPool(name="registered")
        assert any(p is pool for p in live())
        del pool
        gc.collect()
        assert not any(getattr(p, "name", None) == "registered" for p in live())


# -- the session manager --------------------------------------------------------------


@pytest.fixture
def sessions_of(clock: ManualClock, bus: EventBus) -> Callable[..., SessionManager]:
    def factory(idle_timeout: float | None = 10.0, **options: Any) -> SessionManager:
        return SessionManager(idle_timeout, name="web", clock=clock, bus=bus, **options)

    return factory


def zeros(**counts: int) -> dict[str, int]:
    return {**dict.fromkeys(REASONS, 0), **counts}


class TestSessionCounters:
    async def test_counts_equal_the_events_seen(
        self,
        sessions_of: Callable[..., SessionManager],
        clock: ManualClock,
        events: list[Event],
    ) -> None:
        """A scripted run touching every reason: closed, a reason of the caller's own,
        completed, idle, lifetime and heartbeat expiry acted on late, eviction and
        shutdown, with hooks that raise and hang. Each count equals the events seen."""

        def bad_hook(session: Any) -> None:
            raise Boom

        async def hanging_hook(session: Any) -> None:
            await anyio.sleep_forever()

        manager = sessions_of(idle_timeout=10, max_lifetime=100, max_sessions=5, hook_timeout=1)
        async with manager as sessions:
            a = await sessions.create(on_destroy=bad_hook)
            b = await sessions.create()
            c = await sessions.create()
            await sessions.touch(b.id)
            await sessions.get_or_create(c.id)  # a hit: a touch
            await sessions.get_or_create("fresh")  # a miss: a creation
            assert await sessions.destroy(a.id)
            assert not await sessions.destroy(a.id)  # gone: nothing counted
            assert await sessions.destroy(b.id, reason="logout")
            assert await sessions.complete(c.id)
            beat = await sessions.create(heartbeat=2, missed=2)  # due at 4
            idle = await sessions.create(ttl=6, on_destroy=hanging_hook)  # due at 6
            clock.advance(5)  # acted on 1 s late
            await anyio.wait_all_tasks_blocked()
            assert beat.reason == "heartbeat"
            clock.advance(3)  # 2 s late; its hook hangs for 1 s, then times out
            await anyio.wait_all_tasks_blocked()
            clock.advance(1)
            await anyio.wait_all_tasks_blocked()
            assert idle.reason == "expired"
            for _ in range(6):  # one more than max_sessions: the oldest is evicted
                await sessions.create(ttl=1000)
            # "fresh", evicted already, is made again (evicting one more), due at 19
            again = await sessions.get_or_create("fresh")
            clock.advance(100)  # the others pass their lifetime, at 109 (late 0)
            await anyio.wait_all_tasks_blocked()
            assert again.reason == "expired"
            assert sessions.stats().live == len(sessions) == 0
            await sessions.create(ttl=1000)
        stats = manager.stats()
        destroyed = collections.Counter(e.reason for e in of_type(events, SessionDestroyed))
        assert stats.created == len(of_type(events, SessionCreated)) == 14
        assert dict(stats.destroyed) == zeros(**destroyed)
        assert dict(stats.destroyed) == zeros(
            closed=1,
            logout=1,
            completed=1,
            heartbeat=1,
            expired=2,
            evicted=3,
            lifetime=4,
            shutdown=1,
        )
        assert stats.hook_failures == len(of_type(events, DestroyHookFailed)) == 2
        assert stats.lateness_max == max(e.late for e in of_type(events, SessionExpired))
        assert stats.lateness_max == 90  # "fresh" again, due at 19, acted on at 109
        assert stats.touched == 2
        assert stats.live == 0
        assert stats.created == sum(stats.destroyed.values())

    async def test_nothing_counted_before_start(
        self, sessions_of: Callable[..., SessionManager]
    ) -> None:
        stats = sessions_of().stats()
        assert stats == SessionStats(
            created=0,
            destroyed=zeros(),
            hook_failures=0,
            live=0,
            touched=0,
            lateness_max=0.0,
        )

    async def test_lateness_max_is_the_largest_seen(
        self, sessions_of: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        async with sessions_of(idle_timeout=10) as sessions:
            await sessions.create()
            clock.advance(13)  # 3 s late
            await anyio.wait_all_tasks_blocked()
            assert sessions.stats().lateness_max == 3
            await sessions.create()  # due at 23
            clock.advance(11)  # 1 s late: the maximum stays
            await anyio.wait_all_tasks_blocked()
            assert sessions.stats().lateness_max == 3

    async def test_live_leaves_out_sessions_whose_hooks_run(
        self, sessions_of: Callable[..., SessionManager]
    ) -> None:
        """A session is counted destroyed once its hooks have all run; meanwhile it is
        neither live nor destroyed."""
        gate = anyio.Event()

        async def slow_hook(session: Any) -> None:
            await gate.wait()

        async with sessions_of() as sessions, anyio.create_task_group() as tasks:
            session = await sessions.create(on_destroy=slow_hook)
            tasks.start_soon(sessions.destroy, session.id)
            await anyio.wait_all_tasks_blocked()
            stats = sessions.stats()
            assert (stats.created, stats.live, stats.destroyed["closed"]) == (1, 0, 0)
            gate.set()
        assert sessions.stats().destroyed["closed"] == 1

    async def test_destroyed_is_a_read_only_snapshot(
        self, sessions_of: Callable[..., SessionManager]
    ) -> None:
        async with sessions_of() as sessions:
            session = await sessions.create()
            before = sessions.stats()
            with pytest.raises(TypeError):
                before.destroyed["closed"] = 5  # type: ignore[index]
            await sessions.destroy(session.id)
            assert before.destroyed["closed"] == 0
            assert sessions.stats().destroyed["closed"] == 1
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            before.created = 3  # type: ignore[misc]
        assert hash(before) == hash(before)
        assert list(before.destroyed) == list(REASONS)

    async def test_a_caller_reason_is_counted_under_its_name(
        self, sessions_of: Callable[..., SessionManager]
    ) -> None:
        async with sessions_of() as sessions:
            for reason in ("banned", "banned", "moved"):
                session = await sessions.create()
                await sessions.destroy(session.id, reason=reason)
            destroyed = sessions.stats().destroyed
        assert destroyed == zeros(banned=2, moved=1)

    async def test_data_given_back_at_shutdown_counts_as_created_and_destroyed(
        self, sessions_of: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """get_or_create whose factory finishes after shutdown began: the session it
        announced is counted, and so is its destruction (reason "shutdown")."""
        gate = anyio.Event()

        async def factory() -> str:
            await gate.wait()
            return "data"

        async def ask(sessions: SessionManager) -> None:
            with pytest.raises(RuntimeError):
                await sessions.get_or_create("late", factory)

        manager = sessions_of()
        async with anyio.create_task_group() as tasks:
            async with manager as sessions:
                tasks.start_soon(ask, sessions)
                await anyio.wait_all_tasks_blocked()
            gate.set()
        stats = manager.stats()
        assert stats.created == len(of_type(events, SessionCreated)) == 1
        assert stats.destroyed["shutdown"] == 1

    async def test_stats_read_from_other_threads_while_reasons_appear(
        self, sessions_of: Callable[..., SessionManager]
    ) -> None:
        """Threads reading stats while the loop creates and destroys sessions under
        new reasons: no reading fails, and counts never go down."""
        stop = threading.Event()
        failures: list[BaseException] = []
        readings: list[list[SessionStats]] = [[] for _ in range(4)]
        manager = sessions_of()

        def read(into: list[SessionStats]) -> None:
            try:
                while not stop.is_set():
                    into.append(manager.stats())
            except BaseException as exc:  # pragma: no cover - the failure reported
                failures.append(exc)

        readers = [threading.Thread(target=read, args=(into,)) for into in readings]
        for reader in readers:
            reader.start()
        try:
            async with manager as sessions:
                for n in range(2000):
                    session = await sessions.create()
                    await sessions.touch(session.id)
                    await sessions.destroy(session.id, reason=f"reason {n % 300}")
                    if not n % 50:
                        await anyio.sleep(0)
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        assert failures == []
        final = manager.stats()
        assert (final.created, final.touched) == (2000, 2000)
        assert sum(final.destroyed.values()) == 2000
        for series in readings:
            for earlier, later in itertools.pairwise([*series, final]):
                assert later.created >= earlier.created
                assert sum(later.destroyed.values()) >= sum(earlier.destroyed.values())


class TestSessionRegistry:
    async def test_a_manager_is_live_until_dropped(self) -> None:
        manager = SessionManager(name="registered sessions")
        assert any(m is manager for m in live())
        del manager
        gc.collect()
        assert not any(getattr(m, "name", None) == "registered sessions" for m in live())
