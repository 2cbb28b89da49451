"""A bounded worker pool (a bulkhead): a fixed set of workers reading a bounded queue.

The pool runs ``workers`` long-lived tasks that take work from one queue of at most
``queue_size`` items: no task is created per submission, so memory stays flat
however much work passes through. A full queue pushes back on submitters, who wait
for room in FIFO order (through the same waiting layer as the rate limiters).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Generator, Iterable
from types import FunctionType, TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import attrs

from . import _validate
from ._clock import SYSTEM_CLOCK, AsyncWaker, Clock, check_clock
from ._errors import PoolClosedError, PoolFullError
from ._events import CallCompleted, EventBus, TaskFailed, TaskRejected, check_bus, default_bus
from ._guard import is_async_callable
from ._registry import track
from ._waiters import Waiter, WaitQueue

logger = logging.getLogger("resilio")

P = ParamSpec("P")
T = TypeVar("T")

# _UNCONFIRMED: queued on behalf of a submitter that waited for room, which has not
# resumed yet; a worker does not start it (nor anything behind it) until it does, so
# a submitter cancelled in that instant leaves nothing that runs.
_UNCONFIRMED, _PENDING, _RUNNING, _DONE, _FAILED, _DROPPED = range(-1, 5)
_CO_COROUTINE = inspect.CO_COROUTINE


def _is_coroutine_function(fn: Any) -> bool:
    """`is_async_callable`, with a fast path for plain functions (checked per task)."""
    if type(fn) is FunctionType:
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    return is_async_callable(fn)


@attrs.frozen(kw_only=True)
class PoolStats:
    """A frozen view of a [`WorkerPool`][resilio.WorkerPool] at one instant.

    ``workers``, ``busy`` and ``queued`` are the state now; the other fields are
    cumulative counts since the pool was built, which never go down. Every task
    accepted is counted once when it ends: ``submitted == completed + failed +
    cancelled + busy + queued`` whenever the pool's loop is between two steps.

    Attributes:
        workers: Worker tasks running (or asked for, after a resize).
        busy: Workers running a task now, or handed one they are about to start.
        queued: Tasks waiting in the queue for a worker; at most ``queue_size``.
        submitted: Tasks accepted: each handle ``submit``, ``submit_nowait``,
            ``run`` and ``map`` got (a submitter cancelled while it waited for room
            submitted nothing).
        completed: Tasks that returned.
        failed: Tasks that raised (a ``BaseException`` such as ``KeyboardInterrupt``
            included).
        cancelled: Accepted tasks that ended without an outcome: dropped before
            they started (``TaskHandle.cancel``, a caller of ``run`` or ``map`` that
            gave up, a shutdown), or cancelled while running by
            ``shutdown(cancel=True)``.
        rejected: Submissions ``submit_nowait`` refused because the queue was full
            (one per [`TaskRejected`][resilio.TaskRejected]).
        queue_peak: The most tasks ever waiting in the queue at once (the largest
            ``queued`` seen), at most ``queue_size``.
    """

    workers: int
    busy: int
    queued: int
    submitted: int = 0
    completed: int
    failed: int
    cancelled: int = 0
    rejected: int
    queue_peak: int = 0


class TaskHandle(Generic[T]):
    """A task submitted to a [`WorkerPool`][resilio.WorkerPool]; await it for its result.

    ``await handle`` returns what the task returned or raises what it raised, a
    ``BaseException`` such as ``KeyboardInterrupt`` included. A task the pool dropped
    (cancelled by ``shutdown(cancel=True)``, or by `cancel` before it started, or left
    queued when the pool went down) raises [`PoolClosedError`][resilio.PoolClosedError].
    If a task fails and nobody ever awaits its handle, the error is logged on the
    ``resilio`` logger when the handle is garbage-collected, so it is never lost
    silently.
    """

    __slots__ = ("_args", "_event", "_fn", "_kwargs", "_observed", "_outcome", "_pool", "_state")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        pool: WorkerPool | None = None,
    ) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._pool = pool
        self._state = _PENDING
        self._outcome: Any = None
        self._event: anyio.Event | None = None
        self._observed = False

    def done(self) -> bool:
        """Whether the task has finished (returned, raised, or was dropped)."""
        return self._state >= _DONE

    def cancel(self) -> bool:
        """Drop the task if it has not started, freeing its place in the queue.

        Returns whether it was dropped; a task already running is not interrupted.
        """
        if self._state != _PENDING:
            return False
        pool = self._pool
        self._finish(_DROPPED, None)
        self._observed = True
        if pool is not None:
            pool._forget(self)
        return True

    def _abandon(self) -> None:
        """Nobody wants the outcome any more: drop the task if it has not started,
        and never report its failure as unobserved."""
        self.cancel()
        self._observed = True

    def _finish(self, state: int, outcome: Any) -> None:
        self._state = state
        self._outcome = outcome
        self._fn = self._args = self._kwargs = None  # type: ignore[assignment]
        self._pool = None
        if self._event is not None:
            self._event.set()

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()

    async def _wait(self) -> T:
        if self._state < _DONE:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        self._observed = True
        if self._state == _DONE:
            return self._outcome  # type: ignore[no-any-return]
        if self._state == _FAILED:
            raise self._outcome
        msg = "the task was dropped: its pool was shut down or it was cancelled"
        raise PoolClosedError(msg)

    def __del__(self) -> None:
        if self._state == _FAILED and not self._observed:
            logger.error(
                "a pool task failed and nobody awaited its handle",
                exc_info=self._outcome,
            )

    def __repr__(self) -> str:
        state = ("queued", "running", "done", "failed", "dropped")[self._state]
        return f"<TaskHandle {state}>"


class MapResults(Generic[T]):
    """The results of [`WorkerPool.map`][resilio.WorkerPool.map], an async iterator.

    ``async for result in pool.map(fn, items)`` yields ``fn(item)`` for each item, in
    input order, with at most ``workers + queue_size`` tasks in flight. `aclose`
    (or ``contextlib.aclosing``) stops early and drops the tasks not yet started.
    Annotate with it: ``results: MapResults[int] = pool.map(fetch_size, urls)``.
    Made by ``WorkerPool.map`` only.
    """

    # A class rather than an async generator, so that leaving the loop early drops
    # the tasks not yet started at once (when the iterator is closed or collected),
    # with no event-loop finalizer involved.

    __slots__ = ("_async", "_exhausted", "_fn", "_limit", "_pending", "_pool", "_source")

    def __init__(self, pool: WorkerPool, fn: Callable[[Any], Any], items: Any) -> None:
        self._pending: collections.deque[TaskHandle[T]] = collections.deque()
        self._exhausted = True
        pool._check_open()
        self._pool = pool
        self._fn = fn
        self._limit = pool._target + pool._queue_size
        self._async = isinstance(items, AsyncIterable)
        self._source = aiter(items) if self._async else iter(items)
        self._exhausted = False

    def __aiter__(self) -> MapResults[T]:
        return self

    async def __anext__(self) -> T:
        pending = self._pending
        pool = self._pool
        source = self._source
        while not self._exhausted and len(pending) < self._limit:
            try:
                if self._async:
                    item = await anext(source)
                else:
                    item = next(source)
            except (StopIteration, StopAsyncIteration):
                self._exhausted = True
                break
            handle = pool._offer(self._fn, (item,), {})
            pending.append(handle if handle is not None else await pool.submit(self._fn, item))
        if not pending:
            raise StopAsyncIteration
        handle = pending.popleft()
        if handle._state == _DONE:  # the common case: no need to build an awaitable
            handle._observed = True
            return handle._outcome  # type: ignore[no-any-return]
        try:
            return await handle
        except BaseException:
            handle._abandon()  # cancelled while its task was still queued: drop it
            raise

    def _drop(self) -> None:
        self._exhausted = True
        pending = self._pending
        while pending:
            pending.popleft()._abandon()  # its result (or error) is no longer wanted

    async def aclose(self) -> None:
        """Stop early: drop the tasks not yet started."""
        self._drop()

    def __del__(self) -> None:
        self._drop()


class WorkerPool:
    """Runs work on a fixed number of workers, taking it from a bounded queue.

    ``async with WorkerPool(workers=10, queue_size=100) as pool:`` starts ``workers``
    worker tasks; at most that many tasks run at once. ``await pool.submit(fn, ...)``
    queues a call, waiting for room when the queue is full (backpressure, FIFO among
    waiting submitters); `submit_nowait` raises
    [`PoolFullError`][resilio.PoolFullError] instead. Both return a
    [`TaskHandle`][resilio.TaskHandle] to await for the result. `run` submits and
    waits; `map` runs a function over an iterable and yields results in input order.
    ``async def`` functions run on the event loop; plain functions run in worker
    threads, at most ``workers`` at once.

    A failing task never stops the pool or the other tasks: its handle re-raises the
    error, [`TaskFailed`][resilio.TaskFailed] is published, and an error nobody awaits
    is logged. A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``,
    ``SystemExit``) is different: the task's handle carries it, and it goes on out of
    the pool's task group as in any anyio task group, which cancels the pool.

    Leaving the block drains the pool: queued and running tasks finish first.
    ``await pool.shutdown(cancel=True)`` cancels them instead. If the block raises, the
    pool is shut down with cancellation before the error propagates. Either way, every
    accepted task runs or its handle raises [`PoolClosedError`][resilio.PoolClosedError].

    The pool belongs to the event loop that runs it: use it from that loop's tasks.

    Args:
        workers: Tasks run at once.
        queue_size: Tasks that may wait in the queue.
        name: Appears in events, errors and ``repr``.
        clock: Where time comes from (kept for symmetry; the pool has no timers).
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus]
            by default.
    """

    __slots__ = (
        "__weakref__",
        "_alive",
        "_all_exited",
        "_bus",
        "_busy",
        "_cancelled",
        "_clock",
        "_closing",
        "_completed",
        "_failed",
        "_idle",
        "_limiter",
        "_name",
        "_peak",
        "_queue",
        "_queue_size",
        "_rejected",
        "_scopes",
        "_started",
        "_submitted",
        "_submitters",
        "_target",
        "_tasks",
        "_woken",
    )

    def __init__(
        self,
        workers: int = 10,
        queue_size: int = 100,
        *,
        name: str = "pool",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self._target = _validate.integer("workers", workers, ge=1)
        self._queue_size = _validate.integer("queue_size", queue_size, ge=0)
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._bus = default_bus() if bus is None else check_bus(bus)
        self._queue: collections.deque[TaskHandle[Any]] = collections.deque()
        self._submitters = WaitQueue()  # waiting for room, served first come first
        self._idle: collections.deque[AsyncWaker] = collections.deque()
        self._scopes: set[anyio.CancelScope] = set()
        self._alive = self._busy = self._woken = 0
        # Cumulative counts, changed only by the pool's own event loop thread (tasks,
        # workers and submitters all run there; sync tasks run in threads, but their
        # outcomes are counted back on the loop), so a plain `+= 1` is exact; other
        # threads may read them at any time (each is one int, never torn). Under free
        # threading the same holds: one thread writes, readers see a recent value.
        self._submitted = self._completed = self._failed = 0
        self._cancelled = self._rejected = self._peak = 0
        self._started = self._closing = False
        self._tasks: anyio.abc.TaskGroup | None = None
        self._all_exited: anyio.Event | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        track(self)

    @property
    def name(self) -> str:
        """The name that appears in events, errors and ``repr``."""
        return self._name

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> WorkerPool:
        if self._started:
            msg = f"{self!r} can be entered only once"
            raise RuntimeError(msg)
        if self._closing:
            msg = f"{self._name!r} was shut down before it was started: it cannot run"
            raise PoolClosedError(msg)
        self._started = True
        self._limiter = anyio.CapacityLimiter(self._target)
        tasks = self._tasks = anyio.create_task_group()
        await tasks.__aenter__()
        try:
            for _ in range(self._target):  # each worker is idle, ready for work, on return
                self._alive += 1
                await tasks.start(self._worker, name=f"{self._name} worker")
        except BaseException:
            # Cancelled (or failed) while starting: leave nothing running or entered.
            self._close()
            tasks.cancel_scope.cancel()
            try:
                await tasks.__aexit__(None, None, None)
            finally:
                self._alive = 0  # a worker that never started never counted itself out
                if self._all_exited is not None:
                    self._all_exited.set()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        with anyio.CancelScope(shield=True):
            await self.shutdown(cancel=exc is not None)
        await self._tasks.__aexit__(None, None, None)

    async def shutdown(self, *, cancel: bool = False) -> None:
        """Stop taking work and wait until every worker has exited.

        Args:
            cancel: ``False`` drains: queued and running tasks finish first.
                ``True`` cancels running async tasks and drops queued ones; awaiting
                their handles raises [`PoolClosedError`][resilio.PoolClosedError].
                A sync task already running in a thread cannot be interrupted:
                shutdown waits for it, and its handle gives its result.
        """
        self._close()
        if cancel:
            self._drop_queued()
            for scope in list(self._scopes):
                scope.cancel()
        if self._alive:
            if self._all_exited is None:
                self._all_exited = anyio.Event()
            await self._all_exited.wait()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        submitters = self._submitters
        while (waiter := submitters.head()) is not None:
            waiter.failed = True
            submitters.leave(waiter)
            waiter.waker.wake()
        # Room granted to submitters that have not resumed yet: each of them will
        # raise PoolClosedError, so its place must not hold up the tasks behind it.
        queue = self._queue
        if any(handle._state == _UNCONFIRMED for handle in queue):
            kept = [handle for handle in queue if handle._state != _UNCONFIRMED]
            queue.clear()
            queue.extend(kept)
        self._wake_idle()

    def _drop_queued(self) -> None:
        """Drop every queued task: nobody is left to run it."""
        queue = self._queue
        while queue:
            handle = queue.popleft()
            if handle._state == _PENDING:
                handle._finish(_DROPPED, None)
                handle._observed = True
                self._cancelled += 1

    def _spawn(self, count: int) -> None:
        assert self._tasks is not None
        for _ in range(count):
            self._alive += 1
            self._tasks.start_soon(self._worker, name=f"{self._name} worker")

    # -- submitting -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or not self._started:
            if self._closing:
                msg = f"{self._name!r} is shut down and takes no more work"
                raise PoolClosedError(msg)
            msg = f"{self!r} is not running: use `async with WorkerPool(...) as pool:`"
            raise RuntimeError(msg)

    def _takers(self) -> int:
        """Idle workers (and those woken to take work) that will take a task, not
        counting those that will leave instead after a resize down."""
        surplus = self._alive - self._target  # workers leaving after a resize down
        takers = len(self._idle) + self._woken - (surplus if surplus > 0 else 0)
        return takers if takers > 0 else 0

    def _room(self) -> bool:
        """Whether one more task fits: the queue within queue_size, counting the idle
        workers that stay as places too (`_takers`, inlined: this is the hot path)."""
        surplus = self._alive - self._target
        takers = len(self._idle) + self._woken - (surplus if surplus > 0 else 0)
        return len(self._queue) < self._queue_size + (takers if takers > 0 else 0)

    def _offer(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskHandle[Any] | None:
        """Queue a task if there is room now and nobody waits for it; else ``None``."""
        self._check_open()
        if self._submitters._live:
            return None
        # _room(), inlined (this is the hot path), keeping the idle workers that take
        # tasks: a task handed to one of them is not waiting, for queue_peak.
        surplus = self._alive - self._target
        takers = len(self._idle) + self._woken - (surplus if surplus > 0 else 0)
        queue = self._queue
        waiting = len(queue) - (takers if takers > 0 else 0) + 1  # once this one is in
        if waiting > self._queue_size:
            return None
        handle: TaskHandle[Any] = TaskHandle(fn, args, kwargs, self)
        queue.append(handle)
        self._submitted += 1
        if waiting > self._peak:  # noqa: PLR1730 - max() costs a call on the hot path
            self._peak = waiting
        self._wake_one()
        return handle

    @overload
    def submit_nowait(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    def submit_nowait(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    def submit_nowait(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> TaskHandle[Any]:
        """Queue ``fn(*args, **kwargs)`` if there is room now, without waiting.

        Raises:
            PoolFullError: the queue is full (or others are waiting for room).
            PoolClosedError: the pool is shut down.
        """
        handle = self._offer(fn, args, kwargs)
        if handle is None:
            self._rejected += 1
            bus = self._bus
            if bus.wants(TaskRejected):
                bus.publish(
                    TaskRejected(
                        source=self._name, at=self._clock.monotonic(), queued=len(self._queue)
                    )
                )
            raise PoolFullError(self._name, None)
        return handle

    @overload
    async def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    async def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    async def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Queue ``fn(*args, **kwargs)``, waiting for room if the queue is full.

        Waiting submitters get room in the order they came. Cancelling a submitter
        while it waits leaves nothing queued, and passes its room on to the next.

        Raises:
            PoolClosedError: the pool is (or gets) shut down.
        """
        handle = self._offer(fn, args, kwargs)
        if handle is not None:
            return handle
        handle = TaskHandle(fn, args, kwargs, self)
        handle._state = _UNCONFIRMED
        waker = AsyncWaker()
        waiter = Waiter(1, waker)
        waiter.mark = handle
        self._submitters.append(waiter)
        try:
            while not waiter.granted:
                if waiter.failed:
                    self._check_open()
                waker.reset()
                if waiter.granted:
                    break
                await waker.wait()
            self._check_open()  # shut down while we were being woken: nobody would run it
        except BaseException:
            if waiter.granted:  # queued for us in the instant we left: take it out again
                # (never accepted, so neither submitted nor cancelled: no handle.cancel())
                handle._finish(_DROPPED, None)
                handle._observed = True
                self._unqueue(handle)
            elif not waiter.gone:
                self._submitters.leave(waiter)
            raise
        handle._state = _PENDING
        self._submitted += 1
        self._wake_one()  # a worker may be waiting for this very task
        return handle

    def _admit_submitters(self) -> None:
        """Reserve the room that is free for the submitters waiting, first come first."""
        submitters = self._submitters
        while submitters._live and self._room():
            waiter = submitters.head()
            if waiter is None:
                break
            self._queue.append(waiter.mark)  # in arrival order; confirmed when it resumes
            submitters.grant(waiter)
            self._peak = max(self._peak, len(self._queue) - self._takers())

    def _forget(self, handle: TaskHandle[Any]) -> None:
        """An accepted task was dropped before it started: count it, free its place."""
        self._cancelled += 1
        self._unqueue(handle)

    def _unqueue(self, handle: TaskHandle[Any]) -> None:
        """Take a dropped task out of the queue, and give its place to the next."""
        with contextlib.suppress(ValueError):
            self._queue.remove(handle)
        self._admit_submitters()
        if self._queue:
            self._wake_one()

    @overload
    async def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Submit ``fn(*args, **kwargs)`` and wait for its result.

        If the caller is cancelled while the task is still queued, the task is
        dropped: it never runs, and its place goes to the next. A task already
        running is not interrupted; its result (or error) is discarded.
        """
        handle = await self.submit(fn, *args, **kwargs)
        try:
            return await handle
        except BaseException:
            handle._abandon()  # nobody is left to want its outcome
            raise

    @overload
    def map(
        self, fn: Callable[[Any], Awaitable[T]], items: Iterable[Any] | AsyncIterable[Any], /
    ) -> MapResults[T]: ...

    @overload
    def map(
        self, fn: Callable[[Any], T], items: Iterable[Any] | AsyncIterable[Any], /
    ) -> MapResults[T]: ...

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any] | AsyncIterable[Any], /
    ) -> MapResults[Any]:
        """Run ``fn(item)`` for every item and yield the results in input order.

        Returns a [`MapResults`][resilio.MapResults], an async iterator. Items are
        pulled lazily, so an endless generator works: at most
        ``workers + queue_size`` tasks are in flight at once. If a task raises, the
        error is raised here in its turn. Leaving the loop early drops the tasks not
        yet started (at once with ``aclose()`` or ``contextlib.aclosing``, else when
        the iterator is collected).

        Raises:
            PoolClosedError: the pool is shut down.
        """
        return MapResults(self, fn, items)

    # -- the workers ------------------------------------------------------------------

    def _wake_one(self) -> None:
        idle = self._idle
        if idle:
            idle.popleft().wake()
            self._woken += 1

    def _wake_idle(self) -> None:
        while self._idle:
            self._wake_one()

    def _take(self) -> TaskHandle[Any] | None:
        """The next queued task; the room it frees goes to waiting submitters."""
        queue = self._queue
        while queue:
            handle = queue[0]
            if handle._state == _UNCONFIRMED:
                return None  # its submitter resumes in a moment and wakes us
            queue.popleft()
            if self._submitters._live:
                self._admit_submitters()
            if handle._state == _PENDING:
                handle._pool = None
                return handle
        return None

    async def _worker(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                await self._work(task_status)
        except BaseException:
            # Cancelled from outside, or a task raised a BaseException that is not an
            # Exception: the task group goes down with every worker, so the pool takes
            # no more work, and no worker starts what is queued.
            self._close()
            self._drop_queued()
            raise
        finally:
            self._scopes.discard(scope)
            self._alive -= 1
            if self._alive == 0:
                if self._queue:
                    self._drop_queued()
                if self._all_exited is not None:
                    self._all_exited.set()

    async def _work(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        limiter = self._limiter
        bus = self._bus
        now = self._clock.monotonic
        cancelled = anyio.get_cancelled_exc_class()
        waker = AsyncWaker()  # one per worker, re-armed for each idle spell
        # A routing table of the bus known to send CallCompleted nowhere: while the
        # bus still has it (it replaces its table on any change, never edits it),
        # tasks are not timed, at the cost of one identity check each.
        unheard: object = None
        start: float | None = None
        started = False
        ran = 0
        # Retiring after a resize: the check and the decrement in _worker() happen with
        # no await between them, so exactly the surplus workers leave.
        while self._alive <= self._target:
            handle = self._take()
            if handle is None:
                if self._closing:
                    break  # the queue is empty: closing took out every reservation
                waker.reset()
                self._idle.append(waker)
                if not started:
                    started = True
                    task_status.started()
                if self._submitters._live:
                    self._admit_submitters()  # an idle worker is room too
                try:
                    await waker.wait()
                finally:
                    if waker in self._idle:
                        self._idle.remove(waker)  # left without being woken
                    else:
                        self._woken -= 1
                continue
            fn, args, kwargs = handle._fn, handle._args, handle._kwargs
            handle._state = _RUNNING
            self._busy += 1
            if bus._routes is unheard:
                start = None
            elif bus.wants(CallCompleted):
                start = now()
            else:
                start = None
                routes = bus._routes
                if routes.get(CallCompleted) == ():
                    unheard = routes
            try:
                if _is_coroutine_function(fn):
                    result = await fn(*args, **kwargs)
                elif kwargs:
                    result = await anyio.to_thread.run_sync(
                        functools.partial(fn, *args, **kwargs), limiter=limiter
                    )
                else:
                    result = await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
            except Exception as exc:
                self._failed += 1
                handle._finish(_FAILED, exc)
                if start is not None:
                    self._completed_call("failed", start)
                if bus.wants(TaskFailed):
                    bus.publish(TaskFailed(source=self._name, at=now(), error=exc))
            except cancelled:
                self._cancelled += 1
                handle._finish(_DROPPED, None)  # cancelled: it never finished
                handle._observed = True
                raise
            except BaseException as exc:
                # KeyboardInterrupt, SystemExit and the like: the handle carries the
                # error, which also goes on out of the pool's task group.
                self._failed += 1
                handle._finish(_FAILED, exc)
                handle._observed = True
                if start is not None:
                    self._completed_call("failed", start)
                raise
            else:
                self._completed += 1
                handle._finish(_DONE, result)
                if start is not None:
                    self._completed_call("succeeded", start)
            finally:
                self._busy -= 1
            ran += 1
            if not ran % 64:
                # Tasks that never suspend would otherwise keep this worker from
                # ever yielding to the loop while the queue is full.
                await anyio.lowlevel.checkpoint()
        if not started:
            task_status.started()

    def _completed_call(self, outcome: str, start: float) -> None:
        at = self._clock.monotonic()
        self._bus.publish(
            CallCompleted(source=self._name, at=at, outcome=outcome, duration=at - start)
        )

    # -- control ----------------------------------------------------------------------

    def resize(self, workers: int) -> None:
        """Change the number of workers while the pool runs.

        Growing starts workers at once; shrinking lets running tasks finish, and the
        extra workers exit as they become free. Workers on their way out are no
        longer room for new tasks.
        """
        workers = _validate.integer("workers", workers, ge=1)
        self._check_open()
        assert self._limiter is not None
        self._target = workers
        self._limiter.total_tokens = workers
        if self._alive < workers:
            self._spawn(workers - self._alive)
        else:
            self._wake_idle()

    def _load(self) -> tuple[int, int]:
        """Busy and queued: a task handed to an idle worker that has not started it yet
        counts as busy, so queued never exceeds queue_size."""
        queued = len(self._queue)
        handed = min(queued, self._takers())
        return self._busy + handed, queued - handed

    def stats(self) -> PoolStats:
        """Return a frozen view of the pool's state and its counters since it was built.

        Safe to call from any thread (an exporter's): nothing is locked, and each
        count is read whole, though two counts may be a task apart.
        """
        busy, queued = self._load()
        peak = self._peak
        return PoolStats(
            workers=self._target,
            busy=busy,
            queued=queued,
            submitted=self._submitted,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            rejected=self._rejected,
            queue_peak=queued if queued > peak else peak,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closing else "running" if self._started else "not started"
        busy, queued = self._load()
        return (
            f"<WorkerPool {self._name!r} {state}: {busy}/{self._target} busy, "
            f"{queued}/{self._queue_size} queued, "
            f"{self._submitters._live} waiting to submit>"
        )
