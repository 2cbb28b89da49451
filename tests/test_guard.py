"""The four ways to guard a call, checked through CircuitBreaker as the concrete guard.

The decorator (on ``def`` and ``async def``), ``with`` / ``async with``, ``call`` and
``call_async`` must pass arguments and results through untouched, keep the permits
of interleaved blocks apart, and give back a half-open slot whenever a call ends
without an outcome (cancellation, ``KeyboardInterrupt``, ``GeneratorExit``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest
import trio

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    EventBus,
    LeakyBucket,
    ManualClock,
    SlidingWindowBreaker,
    TokenBucket,
)

OPEN_TIMEOUT = 10.0
Breaker = CircuitBreaker | SlidingWindowBreaker


def noop() -> None:
    """Do nothing, successfully."""


def half_open(
    clock: ManualClock,
    bus: EventBus,
    *,
    kind: str = "circuit",
    max_calls: int = 1,
) -> Breaker:
    """Build a breaker that is open with its timeout elapsed: the next call is a probe.

    ``success_threshold`` is high so that successful probes leave it half-open.
    """
    breaker: Breaker
    if kind == "circuit":
        breaker = CircuitBreaker(
            name="guarded",
            failure_threshold=1,
            success_threshold=100,
            open_timeout=OPEN_TIMEOUT,
            half_open_max_calls=max_calls,
            clock=clock,
            bus=bus,
        )
    else:
        # slow_call_duration makes the sliding breaker's tokens (gen, start) tuples.
        breaker = SlidingWindowBreaker(
            name="guarded",
            window_size=1,
            min_calls=1,
            slow_call_duration=1000.0,
            success_threshold=100,
            open_timeout=OPEN_TIMEOUT,
            half_open_max_calls=max_calls,
            clock=clock,
            bus=bus,
        )
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(OPEN_TIMEOUT)
    return breaker


def assert_probes(breaker: Breaker, *, running: int, successes: int) -> None:
    """Check that *breaker* is half-open with the given probes running and successes."""
    snap = breaker.snapshot()
    assert snap.state is CircuitState.HALF_OPEN
    assert snap.half_open_calls == running
    assert snap.consecutive_successes == successes


# -- the forms, as interchangeable runners ------------------------------------------


def run_decorated(breaker: Breaker, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run *fn* through ``@breaker``."""
    return breaker(fn)(*args, **kwargs)


def run_call(breaker: Breaker, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run *fn* through ``breaker.call``."""
    return breaker.call(fn, *args, **kwargs)


def run_with(breaker: Breaker, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run *fn* inside ``with breaker:``."""
    with breaker:
        return fn(*args, **kwargs)


async def arun_decorated(
    breaker: Breaker, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
) -> Any:
    """Await *fn* through ``@breaker``."""
    return await breaker(fn)(*args, **kwargs)


async def arun_call(
    breaker: Breaker, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
) -> Any:
    """Await *fn* through ``breaker.call_async``."""
    return await breaker.call_async(fn, *args, **kwargs)


async def arun_with(
    breaker: Breaker, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
) -> Any:
    """Await *fn* inside ``async with breaker:``."""
    async with breaker:
        return await fn(*args, **kwargs)


SYNC_FORMS: dict[str, Callable[..., Any]] = {
    "decorator": run_decorated,
    "call": run_call,
    "with": run_with,
}
ASYNC_FORMS: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {
    "decorator": arun_decorated,
    "call_async": arun_call,
    "async_with": arun_with,
}


# -- decorated at import time, with no event loop running ---------------------------

_LOOP_CLOCK = ManualClock()
_LOOP_BREAKER = CircuitBreaker(
    name="import-time",
    failure_threshold=1,
    success_threshold=1,
    open_timeout=1.0,
    clock=_LOOP_CLOCK,
    bus=EventBus(),
)


@_LOOP_BREAKER
async def _double(x: int) -> int:
    """Double *x* after a checkpoint."""
    await anyio.lowlevel.checkpoint()
    return 2 * x


@_LOOP_BREAKER
async def _refuse() -> None:
    """Fail after a checkpoint."""
    await anyio.lowlevel.checkpoint()
    raise ConnectionError("refused")


@_LOOP_BREAKER
async def _hang() -> None:
    """Wait until cancelled."""
    await anyio.sleep_forever()


@_LOOP_BREAKER
def _triple(x: int) -> int:
    """Triple *x*."""
    return 3 * x


class TestDecorator:
    """@breaker on def and async def keeps the function's identity and signature."""

    def test_sync_keeps_metadata(self, clock: ManualClock, bus: EventBus) -> None:
        """A decorated def keeps __name__, __qualname__, __doc__ and __wrapped__."""

        def fetch(a: int, b: str = "") -> float:
            """Fetch something."""
            return float(a)

        wrapped = CircuitBreaker(clock=clock, bus=bus)(fetch)
        assert wrapped.__name__ == "fetch"
        assert wrapped.__qualname__ == fetch.__qualname__
        assert wrapped.__doc__ == "Fetch something."
        assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
        assert wrapped is not fetch
        assert not inspect.iscoroutinefunction(wrapped)
        assert inspect.signature(wrapped) == inspect.signature(fetch)

    def test_async_keeps_metadata(self, clock: ManualClock, bus: EventBus) -> None:
        """A decorated async def keeps its metadata and is still a coroutine function."""

        async def fetch(a: int) -> bytes:
            """Fetch bytes."""
            return b""

        wrapped = CircuitBreaker(clock=clock, bus=bus)(fetch)
        assert wrapped.__name__ == "fetch"
        assert wrapped.__doc__ == "Fetch bytes."
        assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
        assert inspect.iscoroutinefunction(wrapped)
        assert inspect.signature(wrapped) == inspect.signature(fetch)

    def test_module_level_decoration_without_loop(self) -> None:
        """Decorating at import time, with no event loop running, gives the right wrappers."""
        assert inspect.iscoroutinefunction(_double)
        assert not inspect.iscoroutinefunction(_triple)
        assert _double.__name__ == "_double"
        assert _triple(2) == 6

    @pytest.mark.parametrize("value", [None, 42, "fetch", b"x"])
    def test_non_callable_rejected(self, clock: ManualClock, bus: EventBus, value: Any) -> None:
        """Decorating something that is not callable is a TypeError."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        with pytest.raises(TypeError):
            breaker(value)

    @pytest.mark.anyio
    async def test_partial_of_async_function(self, clock: ManualClock, bus: EventBus) -> None:
        """A functools.partial of an async def gets an async wrapper that passes arguments."""

        async def add(a: int, b: int) -> int:
            await anyio.lowlevel.checkpoint()
            return a + b

        wrapped = CircuitBreaker(clock=clock, bus=bus)(functools.partial(add, 1))
        assert inspect.iscoroutinefunction(wrapped)
        assert await wrapped(b=2) == 3

    @pytest.mark.anyio
    async def test_nested_partial_of_async_function(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """A partial of a partial of an async def still gets an async wrapper."""

        async def add(a: int, b: int, c: int) -> int:
            return a + b + c

        wrapped = CircuitBreaker(clock=clock, bus=bus)(
            functools.partial(functools.partial(add, 1), 2)
        )
        assert inspect.iscoroutinefunction(wrapped)
        assert await wrapped(3) == 6

    @pytest.mark.anyio
    async def test_object_with_async_call(self, clock: ManualClock, bus: EventBus) -> None:
        """An instance with an async __call__ gets an async wrapper."""

        class Client:
            async def __call__(self, x: int) -> int:
                await anyio.lowlevel.checkpoint()
                return x * 10

        wrapped = CircuitBreaker(clock=clock, bus=bus)(Client())
        assert inspect.iscoroutinefunction(wrapped)
        assert await wrapped(4) == 40

    def test_partial_of_sync_function_stays_sync(self, clock: ManualClock, bus: EventBus) -> None:
        """A partial of a plain def, or an object with a sync __call__, stays sync."""

        class Adder:
            def __call__(self, x: int) -> int:
                return x + 1

        breaker = CircuitBreaker(clock=clock, bus=bus)
        wrapped = breaker(functools.partial(pow, 2))
        assert not inspect.iscoroutinefunction(wrapped)
        assert wrapped(5) == 32
        adder = breaker(Adder())
        assert not inspect.iscoroutinefunction(adder)
        assert adder(1) == 2

    def test_class_with_async_call_stays_sync(self, clock: ManualClock, bus: EventBus) -> None:
        """Decorating a class whose instances have an async __call__ gives a sync wrapper.

        Calling the class builds an instance synchronously; only its instances are
        async callables.
        """

        class Client:
            async def __call__(self) -> int:
                return 1

        wrapped = CircuitBreaker(clock=clock, bus=bus)(Client)
        assert not inspect.iscoroutinefunction(wrapped)
        instance = wrapped()
        try:
            assert isinstance(instance, Client)
        finally:
            if inspect.iscoroutine(instance):
                instance.close()


class TestArguments:
    """Every form passes positional and keyword arguments through, even 'fn' and 'self'."""

    @pytest.mark.parametrize("form", ["decorator", "call"])
    def test_sync_forms_pass_arguments(self, clock: ManualClock, bus: EventBus, form: str) -> None:
        """Sync forms pass args and kwargs, including keywords named fn and self."""

        def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return args, kwargs

        breaker = CircuitBreaker(clock=clock, bus=bus)
        result = SYNC_FORMS[form](breaker, echo, 1, "two", fn=3, self=4, key=None)
        assert result == ((1, "two"), {"fn": 3, "self": 4, "key": None})

    def test_call_passes_fn_keyword(self, clock: ManualClock, bus: EventBus) -> None:
        """breaker.call(f, fn=...) hands the keyword to f, not to call()."""

        def takes_fn(fn: int) -> int:
            return fn + 1

        breaker = CircuitBreaker(clock=clock, bus=bus)
        assert breaker.call(takes_fn, fn=41) == 42
        assert breaker(takes_fn)(fn=1) == 2

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", ["decorator", "call_async"])
    async def test_async_forms_pass_arguments(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """Async forms pass args and kwargs, including keywords named fn and self."""

        async def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            await anyio.lowlevel.checkpoint()
            return args, kwargs

        breaker = CircuitBreaker(clock=clock, bus=bus)
        result = await ASYNC_FORMS[form](breaker, echo, 1, "two", fn=3, self=4)
        assert result == ((1, "two"), {"fn": 3, "self": 4})

    @pytest.mark.anyio
    async def test_call_async_passes_fn_keyword(self, clock: ManualClock, bus: EventBus) -> None:
        """await breaker.call_async(f, fn=...) hands the keyword to f."""

        async def takes_fn(fn: int) -> int:
            return fn + 1

        breaker = CircuitBreaker(clock=clock, bus=bus)
        assert await breaker.call_async(takes_fn, fn=41) == 42


class TestPassThrough:
    """Results and exceptions come out exactly as the function produced them."""

    @pytest.mark.parametrize("form", list(SYNC_FORMS))
    def test_sync_result_identity(self, clock: ManualClock, bus: EventBus, form: str) -> None:
        """The very object returned by the function is returned."""
        result = object()
        breaker = CircuitBreaker(clock=clock, bus=bus)
        assert SYNC_FORMS[form](breaker, lambda: result) is result

    @pytest.mark.parametrize("form", list(SYNC_FORMS))
    def test_sync_exception_identity(self, clock: ManualClock, bus: EventBus, form: str) -> None:
        """The very exception raised by the function propagates, unwrapped, and counts."""
        error = ConnectionError("down")

        def fail() -> None:
            raise error

        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        with pytest.raises(ConnectionError) as info:
            SYNC_FORMS[form](breaker, fail)
        assert info.value is error
        assert breaker.state is CircuitState.OPEN

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_async_result_identity(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """The very object returned by the coroutine is returned."""
        result = object()

        async def produce() -> object:
            await anyio.lowlevel.checkpoint()
            return result

        breaker = CircuitBreaker(clock=clock, bus=bus)
        assert await ASYNC_FORMS[form](breaker, produce) is result

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_async_exception_identity(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """The very exception raised by the coroutine propagates, unwrapped, and counts."""
        error = ConnectionError("down")

        async def fail() -> None:
            await anyio.lowlevel.checkpoint()
            raise error

        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        with pytest.raises(ConnectionError) as info:
            await ASYNC_FORMS[form](breaker, fail)
        assert info.value is error
        assert breaker.state is CircuitState.OPEN

    def test_with_returns_the_breaker(self, clock: ManualClock, bus: EventBus) -> None:
        """with breaker as b binds the breaker itself."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        with breaker as bound:
            assert bound is breaker

    @pytest.mark.parametrize("form", list(SYNC_FORMS))
    def test_open_breaker_rejects_without_calling(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """An open breaker rejects every sync form without running the function."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        breaker.record_failure()
        called: list[bool] = []
        with pytest.raises(CircuitOpenError):
            SYNC_FORMS[form](breaker, lambda: called.append(True))
        assert called == []

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_open_breaker_rejects_async_without_calling(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """An open breaker rejects every async form without running the coroutine."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        breaker.record_failure()
        called: list[bool] = []

        async def record() -> None:
            called.append(True)

        with pytest.raises(CircuitOpenError):
            await ASYNC_FORMS[form](breaker, record)
        assert called == []


class TestBlockTokens:
    """with-blocks nested or interleaved across tasks and threads keep their permits apart."""

    def test_nested_in_itself(self, clock: ManualClock, bus: EventBus) -> None:
        """A block nested in itself takes two probe slots and frees each on exit."""
        breaker = half_open(clock, bus, max_calls=2)
        with breaker:
            assert_probes(breaker, running=1, successes=0)
            with breaker:
                assert_probes(breaker, running=2, successes=0)
                with pytest.raises(CircuitOpenError):
                    breaker.call(noop)
            assert_probes(breaker, running=1, successes=1)
            breaker.call(noop)
            assert_probes(breaker, running=1, successes=2)
        assert_probes(breaker, running=0, successes=3)

    def test_nested_blocks_keep_their_generation(self, clock: ManualClock, bus: EventBus) -> None:
        """An inner probe's success counts; the outer, presumed-hung probe's failure doesn't."""
        breaker = half_open(clock, bus, max_calls=1)

        def outer_fails() -> None:
            with breaker:
                clock.advance(OPEN_TIMEOUT)  # the outer probe is now presumed hung
                with breaker:
                    assert_probes(breaker, running=1, successes=0)
                assert_probes(breaker, running=0, successes=1)
                raise ConnectionError("late failure of a stale probe")

        with pytest.raises(ConnectionError):
            outer_fails()
        assert_probes(breaker, running=0, successes=1)

    def test_blocks_of_two_guards_exited_out_of_order(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """Blocks of two breakers left out of order (a suspended generator) free each slot."""
        first = half_open(clock, bus, max_calls=1)
        second = half_open(clock, bus, max_calls=1)

        def hold(breaker: Breaker) -> Iterator[None]:
            with breaker:
                yield

        holder = hold(first)
        next(holder)
        assert_probes(first, running=1, successes=0)
        with second:
            assert_probes(second, running=1, successes=0)
            next(holder, None)  # leaves first's block while second's is open
            assert_probes(first, running=0, successes=1)
            assert_probes(second, running=1, successes=0)
        assert_probes(second, running=0, successes=1)

    @pytest.mark.anyio
    @pytest.mark.parametrize("after_a_block", [False, True])
    async def test_interleaved_across_tasks(
        self, clock: ManualClock, bus: EventBus, after_a_block: bool
    ) -> None:
        """Two tasks' async with blocks, left in the opposite order, free one slot each.

        Also when the tasks start after a block has ended in their parent: its place
        on the stack is kept for the next block and both tasks see it.
        """
        if after_a_block:
            with CircuitBreaker(clock=clock, bus=bus):
                pass
        breaker = half_open(clock, bus, max_calls=2)
        leave = {"a": anyio.Event(), "b": anyio.Event()}
        left: list[str] = []

        async def probe(label: str) -> None:
            async with breaker:
                await leave[label].wait()
            left.append(label)

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, "a")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(probe, "b")
            await anyio.wait_all_tasks_blocked()
            assert_probes(breaker, running=2, successes=0)
            with pytest.raises(CircuitOpenError):
                breaker.call(noop)
            leave["a"].set()
            await anyio.wait_all_tasks_blocked()
            assert left == ["a"]
            assert_probes(breaker, running=1, successes=1)
            breaker.call(noop)  # the freed slot is usable
            assert_probes(breaker, running=1, successes=2)
            leave["b"].set()
        assert left == ["a", "b"]
        assert_probes(breaker, running=0, successes=3)

    @pytest.mark.anyio
    @pytest.mark.parametrize("after_a_block", [False, True])
    async def test_interleaved_tasks_keep_their_generation(
        self, clock: ManualClock, bus: EventBus, after_a_block: bool
    ) -> None:
        """A stale probe task failing late does not reopen a breaker another task is probing."""
        if after_a_block:
            async with CircuitBreaker(clock=clock, bus=bus):
                pass
        breaker = half_open(clock, bus, max_calls=1)
        stale_leave = anyio.Event()
        fresh_leave = anyio.Event()

        failures: list[BaseException] = []

        async def stale() -> None:
            try:
                async with breaker:
                    await stale_leave.wait()
                    raise ConnectionError("late")
            except ConnectionError as exc:
                failures.append(exc)

        async def fresh() -> None:
            async with breaker:
                await fresh_leave.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stale)
            await anyio.wait_all_tasks_blocked()
            clock.advance(OPEN_TIMEOUT)  # the first probe is presumed hung
            tg.start_soon(fresh)
            await anyio.wait_all_tasks_blocked()
            assert_probes(breaker, running=1, successes=0)
            stale_leave.set()
            await anyio.wait_all_tasks_blocked()
            assert_probes(breaker, running=1, successes=0)
            fresh_leave.set()
        assert len(failures) == 1
        assert_probes(breaker, running=0, successes=1)

    @pytest.mark.parametrize("shared_context", [False, True])
    def test_interleaved_across_threads(
        self, clock: ManualClock, bus: EventBus, shared_context: bool
    ) -> None:
        """Blocks in two threads, left in the opposite order, free one slot each.

        Also when both threads run in copies of a context in which a block has ended.
        """
        with CircuitBreaker(clock=clock, bus=bus):
            pass
        context = contextvars.copy_context()
        breaker = half_open(clock, bus, max_calls=2)
        entered = {"a": threading.Event(), "b": threading.Event()}
        leave = {"a": threading.Event(), "b": threading.Event()}
        errors: list[BaseException] = []

        def probe(label: str) -> None:
            try:
                with breaker:
                    entered[label].set()
                    assert leave[label].wait(timeout=10)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = {
            label: threading.Thread(target=context.copy().run, args=(probe, label))
            if shared_context
            else threading.Thread(target=probe, args=(label,))
            for label in "ab"
        }
        for label in "ab":
            threads[label].start()
            assert entered[label].wait(timeout=10)
        assert_probes(breaker, running=2, successes=0)
        with pytest.raises(CircuitOpenError):
            breaker.call(noop)
        leave["b"].set()
        threads["b"].join(timeout=10)
        assert_probes(breaker, running=1, successes=1)
        leave["a"].set()
        threads["a"].join(timeout=10)
        assert errors == []
        assert_probes(breaker, running=0, successes=2)

    def test_threads_keep_their_generation(self, clock: ManualClock, bus: EventBus) -> None:
        """A stale probe thread failing late does not reopen a breaker another thread probes."""
        breaker = half_open(clock, bus, max_calls=1)
        stale_in = threading.Event()
        stale_leave = threading.Event()
        errors: list[BaseException] = []

        def stale() -> None:
            try:
                with breaker:
                    stale_in.set()
                    assert stale_leave.wait(timeout=10)
                    raise ConnectionError("late")
            except ConnectionError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=stale)
        thread.start()
        assert stale_in.wait(timeout=10)
        clock.advance(OPEN_TIMEOUT)
        with breaker:
            assert_probes(breaker, running=1, successes=0)
            stale_leave.set()
            thread.join(timeout=10)
            assert_probes(breaker, running=1, successes=0)
        assert errors == []
        assert_probes(breaker, running=0, successes=1)


BREAKER_KINDS = ["circuit", "sliding"]


class TestInterruptions:
    """Cancellation and non-Exception BaseExceptions count neither way and free the slot."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_cancel_during_call(
        self, clock: ManualClock, bus: EventBus, form: str, kind: str
    ) -> None:
        """A probe cancelled while running frees its slot and records no outcome."""
        breaker = half_open(clock, bus, kind=kind, max_calls=1)
        started: list[bool] = []

        async def hang() -> None:
            started.append(True)
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ASYNC_FORMS[form], breaker, hang)
            await anyio.wait_all_tasks_blocked()
            assert started == [True]
            assert_probes(breaker, running=1, successes=0)
            with pytest.raises(CircuitOpenError):
                breaker.call(noop)
            tg.cancel_scope.cancel()
        assert_probes(breaker, running=0, successes=0)
        breaker.call(noop)
        assert_probes(breaker, running=0, successes=1)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_cancel_scope_inside_task(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """A call under an already-cancelled scope frees its slot and records no outcome."""
        breaker = half_open(clock, bus, max_calls=1)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ASYNC_FORMS[form](breaker, anyio.sleep_forever)
        assert scope.cancelled_caught
        assert_probes(breaker, running=0, successes=0)

    @pytest.mark.anyio
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_cancel_while_closed_counts_nothing(
        self, clock: ManualClock, bus: EventBus, form: str
    ) -> None:
        """A cancelled call to a closed breaker neither resets nor adds to its failures.

        It counts as ignored.
        """
        breaker = CircuitBreaker(failure_threshold=3, clock=clock, bus=bus)
        breaker.record_failure()
        before = breaker.snapshot()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ASYNC_FORMS[form](breaker, anyio.sleep_forever)
        assert breaker.snapshot() == attrs.evolve(before, ignored=1)

    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    @pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
    @pytest.mark.parametrize("form", list(SYNC_FORMS))
    def test_base_exceptions_in_sync_forms(
        self,
        clock: ManualClock,
        bus: EventBus,
        form: str,
        error: type[BaseException],
        kind: str,
    ) -> None:
        """KeyboardInterrupt, SystemExit and GeneratorExit propagate and free the slot."""
        breaker = half_open(clock, bus, kind=kind, max_calls=1)
        raised = error()

        def interrupted() -> None:
            assert_probes(breaker, running=1, successes=0)
            raise raised

        with pytest.raises(error) as info:
            SYNC_FORMS[form](breaker, interrupted)
        assert info.value is raised
        assert_probes(breaker, running=0, successes=0)

    @pytest.mark.anyio
    @pytest.mark.parametrize("error", [KeyboardInterrupt, GeneratorExit])
    @pytest.mark.parametrize("form", list(ASYNC_FORMS))
    async def test_base_exceptions_in_async_forms(
        self, clock: ManualClock, bus: EventBus, form: str, error: type[BaseException]
    ) -> None:
        """KeyboardInterrupt and GeneratorExit in a coroutine propagate and free the slot."""
        breaker = half_open(clock, bus, max_calls=1)

        async def interrupted() -> None:
            await anyio.lowlevel.checkpoint()
            assert_probes(breaker, running=1, successes=0)
            raise error

        with pytest.raises(error):
            await ASYNC_FORMS[form](breaker, interrupted)
        assert_probes(breaker, running=0, successes=0)

    def test_generator_closed_inside_block(self, clock: ManualClock, bus: EventBus) -> None:
        """Closing a generator suspended inside a with-block frees the slot."""
        breaker = half_open(clock, bus, max_calls=1)

        def stream() -> Generator[int, None, None]:
            with breaker:
                yield 1
                yield 2

        gen = stream()
        assert next(gen) == 1
        assert_probes(breaker, running=1, successes=0)
        gen.close()
        assert_probes(breaker, running=0, successes=0)

    @pytest.mark.anyio
    async def test_async_generator_closed_inside_block(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """Closing an async generator suspended inside an async with-block frees the slot."""
        breaker = half_open(clock, bus, max_calls=1)

        async def stream() -> AsyncGenerator[int, None]:
            async with breaker:
                yield 1
                yield 2

        agen = stream()
        assert await agen.__anext__() == 1
        assert_probes(breaker, running=1, successes=0)
        await agen.aclose()
        assert_probes(breaker, running=0, successes=0)


class TestEventLoops:
    """A guard holds nothing bound to an event loop."""

    def test_import_time_decorator_across_loops(self) -> None:
        """Functions decorated at import work in asyncio.run twice and then in trio.run."""
        _LOOP_BREAKER.reset()

        async def scenario() -> None:
            assert await _double(2) == 4
            assert _triple(2) == 6
            with pytest.raises(ConnectionError):
                await _refuse()
            assert _LOOP_BREAKER.snapshot().state is CircuitState.OPEN
            with pytest.raises(CircuitOpenError):
                await _double(1)
            _LOOP_CLOCK.advance(1.0)
            # A cancelled probe frees its slot on this loop...
            with anyio.CancelScope() as scope:
                scope.cancel()
                await _hang()
            assert _LOOP_BREAKER.snapshot().half_open_calls == 0
            # ...and a successful one closes the breaker.
            assert await _double(3) == 6
            assert _LOOP_BREAKER.snapshot().state is CircuitState.CLOSED
            async with _LOOP_BREAKER:
                await anyio.lowlevel.checkpoint()
            assert await _LOOP_BREAKER.call_async(_double, 5) == 10
            # The breaker's clock wakes sleepers on this loop too.
            woke: list[float] = []

            async def sleeper() -> None:
                await _LOOP_CLOCK.sleep_async(2.0)
                woke.append(_LOOP_CLOCK.monotonic())

            async with anyio.create_task_group() as tg:
                tg.start_soon(sleeper)
                await anyio.wait_all_tasks_blocked()
                _LOOP_CLOCK.advance(2.0)
            assert len(woke) == 1

        asyncio.run(scenario())
        asyncio.run(scenario())
        trio.run(scenario)
        assert _LOOP_BREAKER.state is CircuitState.CLOSED


class TestOrphanedBlocks:
    """A ``with`` block left from another task still settles its permit."""

    @pytest.mark.anyio
    async def test_async_generator_closed_elsewhere(self, clock: ManualClock) -> None:
        """Closing a generator that holds a half-open probe slot frees the slot."""
        breaker = half_open(clock, EventBus())

        async def stream() -> AsyncGenerator[int, None]:
            async with breaker:
                yield 1
                yield 2

        gen = stream()
        entered = anyio.Event()

        async def consume() -> None:
            await gen.__anext__()
            entered.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            await entered.wait()
        assert_probes(breaker, running=1, successes=0)
        await gen.aclose()
        assert_probes(breaker, running=0, successes=0)
        assert breaker.call(lambda: 3) == 3


async def _async_noop() -> None:
    pass


def _numbers() -> Iterator[int]:
    yield 1


async def _async_numbers() -> AsyncGenerator[int, None]:
    yield 1


class TestMisuse:
    """A form used in a way that cannot work raises TypeError and counts neither way."""

    def test_call_with_async_function_is_type_error(self, clock: ManualClock) -> None:
        """call() refuses a coroutine function instead of returning an unawaited coroutine."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())
        with pytest.raises(TypeError, match="call_async"):
            breaker.call(_async_noop)

    def test_decorating_a_generator_function_is_refused(self, clock: ManualClock) -> None:
        """Decorating a generator function is a TypeError at decoration."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())
        with pytest.raises(TypeError, match="generators"):
            breaker(_numbers)

    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    def test_call_misuse_gives_back_the_probe_slot(self, clock: ManualClock, kind: str) -> None:
        """call(async_fn) on a half-open breaker frees the probe slot and counts nothing."""
        breaker = half_open(clock, EventBus(), kind=kind)
        for _ in range(3):
            with pytest.raises(TypeError, match="call_async"):
                breaker.call(_async_noop)
            assert_probes(breaker, running=0, successes=0)
        breaker.call(noop)
        assert_probes(breaker, running=0, successes=1)

    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    @pytest.mark.anyio
    async def test_call_async_misuse_gives_back_the_probe_slot(
        self, clock: ManualClock, kind: str
    ) -> None:
        """call_async(plain_fn) on a half-open breaker frees the probe slot, counts nothing."""
        breaker = half_open(clock, EventBus(), kind=kind)
        ran: list[int] = []
        for _ in range(3):
            with pytest.raises(TypeError, match="call_async"):
                await breaker.call_async(ran.append, 1)  # type: ignore[arg-type]
            assert_probes(breaker, running=0, successes=0)
        assert await breaker.call_async(_double, 2) == 4
        assert_probes(breaker, running=0, successes=1)

    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    @pytest.mark.anyio
    async def test_misuse_does_not_open_a_closed_breaker(
        self, clock: ManualClock, kind: str
    ) -> None:
        """Two mistakes in the calling code do not open a breaker that trips on two failures."""
        breaker: Breaker = (
            CircuitBreaker(failure_threshold=2, clock=clock, bus=EventBus())
            if kind == "circuit"
            else SlidingWindowBreaker(window_size=2, min_calls=2, clock=clock, bus=EventBus())
        )
        for _ in range(3):
            with pytest.raises(TypeError):
                breaker.call(_async_noop)
            with pytest.raises(TypeError):
                await breaker.call_async(noop)  # type: ignore[arg-type]
        assert breaker.state is CircuitState.CLOSED
        if isinstance(breaker, SlidingWindowBreaker):
            assert breaker.snapshot().calls == 0

    @pytest.mark.parametrize("kind", BREAKER_KINDS)
    @pytest.mark.parametrize("fn", [_numbers, _async_numbers], ids=["gen", "asyncgen"])
    @pytest.mark.anyio
    async def test_generator_functions_are_refused_by_call_forms(
        self, clock: ManualClock, kind: str, fn: Callable[[], Any]
    ) -> None:
        """call() and call_async() refuse generator functions, neutrally."""
        breaker = half_open(clock, EventBus(), kind=kind)
        with pytest.raises(TypeError, match="generators"):
            breaker.call(fn)
        with pytest.raises(TypeError, match="generators"):
            await breaker.call_async(fn)
        assert_probes(breaker, running=0, successes=0)

    @pytest.mark.parametrize("fn", [_numbers, _async_numbers], ids=["gen", "asyncgen"])
    @pytest.mark.anyio
    async def test_buckets_refuse_generator_functions(
        self, clock: ManualClock, fn: Callable[[], Any]
    ) -> None:
        """The rate limiters share the guard: their call forms refuse generators too."""
        for kind in (TokenBucket, LeakyBucket):
            with pytest.raises(TypeError, match="generators"):
                kind(10, 10, clock=clock, bus=EventBus()).call(fn)
            with pytest.raises(TypeError, match="generators"):
                await kind(10, 10, clock=clock, bus=EventBus()).call_async(fn)
            with pytest.raises(TypeError, match="generators"):
                kind(10, 10, clock=clock, bus=EventBus())(fn)

    def test_a_function_returning_a_generator_is_a_plain_call(self, clock: ManualClock) -> None:
        """call() of a plain function that returns a generator returns it, as a success."""
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=EventBus())
        assert list(breaker.call(lambda: (i for i in range(2)))) == [0, 1]
        assert breaker.state is CircuitState.CLOSED

    @pytest.mark.anyio
    async def test_call_async_accepts_a_plain_function_returning_an_awaitable(
        self, clock: ManualClock
    ) -> None:
        """call_async() awaits what fn returns, whatever kind of callable made it."""
        breaker = CircuitBreaker(clock=clock, bus=EventBus())
        assert await breaker.call_async(lambda: _double(4)) == 8

    @pytest.mark.anyio
    async def test_inner_misuse_is_neutral_for_an_outer_breaker(self, clock: ManualClock) -> None:
        """A misuse error raised by an inner guard counts neither way for the outer breaker."""
        outer = half_open(clock, EventBus())
        inner = CircuitBreaker(clock=clock, bus=EventBus())
        with pytest.raises(TypeError):
            outer.call(inner.call, _async_noop)
        assert_probes(outer, running=0, successes=0)


class TestQuietSuccess:
    """Every form skips reporting a clean success, yet never loses one that matters."""

    @pytest.mark.parametrize("form", ["with", "call"])
    def test_success_after_overlapping_failure_is_counted(
        self, clock: ManualClock, form: str
    ) -> None:
        """A block entered clean that succeeds after another call failed resets the count."""
        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=EventBus())

        def fail_once() -> None:
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)

        if form == "with":
            with breaker:
                fail_once()
        else:
            breaker.call(fail_once)
        assert breaker.snapshot().consecutive_failures == 0
        fail_once()
        assert breaker.state is CircuitState.CLOSED

    @pytest.mark.anyio
    async def test_async_block_success_after_overlapping_failure_is_counted(
        self, clock: ManualClock
    ) -> None:
        """The same holds for ``async with`` and call_async()."""
        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=EventBus())

        async def fail_once() -> None:
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)

        async with breaker:
            await fail_once()
        assert breaker.snapshot().consecutive_failures == 0
        await breaker.call_async(fail_once)
        assert breaker.snapshot().consecutive_failures == 0


class TestJudgedResults:
    """A guard with failure_if gets wrappers of its own; the others never ask about results."""

    @pytest.mark.parametrize("kind", [CircuitBreaker, SlidingWindowBreaker])
    def test_wrapper_chosen_when_decorating(self, kind: type[Breaker]) -> None:
        """Only a breaker with failure_if hands results to _on_result."""

        async def work() -> None:
            pass

        plain, judged = kind(), kind(failure_if=lambda result: False)
        for fn in (noop, work):
            assert "_on_result" not in _names(plain(fn))
            assert "on_result" in judged(fn).__code__.co_freevars
            assert "on_result" not in plain(fn).__code__.co_freevars

    def test_quiet_success_still_quiet(self, clock: ManualClock) -> None:
        """A clean CircuitBreaker with failure_if records nothing for good results."""
        breaker = CircuitBreaker(failure_if=lambda result: result is None, clock=clock)
        lock = _CountingLock()
        breaker._lock = lock  # type: ignore[assignment]
        guarded = breaker(lambda: 1)
        for _ in range(3):
            assert guarded() == 1
            assert breaker.call(lambda: 1) == 1
        assert lock.taken == 0
        assert breaker.call(lambda: None) is None  # a bad result is counted
        assert guarded() == 1  # and the good one after it is reported: it resets the count
        assert lock.taken == 2
        assert breaker.snapshot().consecutive_failures == 0

    def test_free_success_guard_reports_each_result(self, clock: ManualClock) -> None:
        """A sliding window counts every judged result, good or bad."""
        breaker = SlidingWindowBreaker(
            window_size=10, min_calls=10, failure_if=lambda result: result is None, clock=clock
        )
        guarded = breaker(lambda value: value)
        for value in (1, None, 2, None, None):
            guarded(value)
        snap = breaker.snapshot()
        assert (snap.calls, snap.failed_calls) == (5, 3)

    @pytest.mark.anyio
    async def test_misuse_is_not_judged(self, clock: ManualClock) -> None:
        """What call() / call_async() refuse as misuse never reaches failure_if."""
        seen: list[object] = []
        breaker = CircuitBreaker(failure_if=seen.append, failure_threshold=1, clock=clock)

        async def work() -> None:
            pass

        with pytest.raises(TypeError):
            breaker.call(work)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await breaker.call_async(noop)  # type: ignore[arg-type]
        assert seen == []
        assert breaker.state is CircuitState.CLOSED


def _names(fn: Callable[..., Any]) -> tuple[str, ...]:
    return fn.__code__.co_names


class _CountingLock:
    """A lock that counts how often it is taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def acquire(self) -> bool:
        self.taken += 1
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
