"""Composition: several primitives as one policy, and a timeout for async calls.

``compose(outer, ..., inner)`` applies its primitives as if they were stacked as
decorators, outermost first: ``compose(retry, breaker, bucket, Timeout(2))(fn)``
is ``retry(breaker(bucket(Timeout(2)(fn))))``, so each try of the retry passes the
breaker, then the limiter, under a two-second timeout. It costs what the stacked
decorators cost: nothing is added between them. A ``Fallback`` goes outermost:
``compose(Fallback(cached), retry, breaker)`` answers only the error that ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sys
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import anyio
import attrs

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock, check_clock, move_on_after
from ._events import EventBus, TimedOut, check_bus, default_bus
from ._fallback import Fallback
from ._guard import Guard, is_async_callable
from ._registry import track
from ._retry import Retry, check_callable

P = ParamSpec("P")
T = TypeVar("T")


@attrs.frozen(kw_only=True)
class TimeoutStats:
    """What a [`Timeout`][resilio.Timeout] has done since it was built; never goes down.

    Attributes:
        timed_out: Calls and blocks it cancelled because they ran past ``seconds``
            (each one raised `TimeoutError` and published
            [`TimedOut`][resilio.TimedOut]).
    """

    timed_out: int


class Timeout:
    """Cancels an async call (or an ``async with`` block) that runs past ``seconds``.

    On expiry the built-in ``TimeoutError`` is raised, and
    [`TimedOut`][resilio.TimedOut] is published. Inside a
    [`Retry`][resilio.Retry] each try gets its own timeout. Only async code can be
    cancelled safely: decorating a plain ``def`` is a ``TypeError`` (run blocking
    work in a worker thread inside an ``async def``, with
    ``anyio.to_thread.run_sync(fn, abandon_on_cancel=True)``, and time that out).

    On asyncio (Python 3.11 and later) with the system clock, a call is timed by one
    timer on the event loop, as `asyncio.timeout` does; elsewhere (trio, a
    [`ManualClock`][resilio.ManualClock]) by a cancel scope. The behaviour is the
    same: only the timeout's own cancellation becomes a ``TimeoutError``, and a
    cancellation from outside goes on as a cancellation.

    Args:
        seconds: The time allowed, in seconds or as a `datetime.timedelta`.
        name: Appears in events, ``repr`` and metrics.
        clock: Where time comes from; on a [`ManualClock`][resilio.ManualClock]
            the timeout fires when the clock is advanced past it.
        bus: Where [`TimedOut`][resilio.TimedOut] goes; the process-wide
            [`default_bus`][resilio.default_bus] by default.

    Raises:
        ValueError: ``seconds`` is not a positive finite number, or ``name`` is empty.
        TypeError: an argument has the wrong type.
    """

    __slots__ = (
        "__weakref__",
        "_bus",
        "_clock",
        "_manual",
        "_name",
        "_native",
        "_seconds",
        "_timed_out",
    )

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        name: str = "timeout",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self._seconds = _validate.duration("seconds", seconds, gt=0)
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._bus = default_bus() if bus is None else check_bus(bus)
        # The event loop's timer measures time.monotonic(), the system clock's time.
        self._native = _NATIVE and type(clock) is SystemClock
        self._manual = isinstance(clock, ManualClock)
        # next() on a count is one indivisible step under the GIL, so no lock is
        # needed (free-threaded builds: exact from Python 3.14, whose count is atomic).
        self._timed_out = itertools.count()
        track(self)

    @property
    def seconds(self) -> float:
        """The time allowed, in seconds."""
        return self._seconds

    @property
    def name(self) -> str:
        """The name that appears in events, ``repr`` and metrics."""
        return self._name

    def stats(self) -> TimeoutStats:
        """Cumulative counts since construction (read without a lock)."""
        return TimeoutStats(timed_out=_read(self._timed_out))

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate an ``async def``; a plain ``def`` is a ``TypeError``."""
        if not is_async_callable(fn):
            msg = (
                f"Timeout cancels async calls only, and {fn!r} is not async; run "
                "blocking work in a thread inside an async def, with "
                "anyio.to_thread.run_sync(fn, abandon_on_cancel=True), and time that out"
            )
            raise TypeError(msg)
        call_async = self.call_async
        if not self._native:

            @functools.wraps(fn)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)  # type: ignore[arg-type]

            return cast("Callable[P, T]", timed)
        seconds, expired = self._seconds, self._expired

        # call_async's asyncio branch, repeated here: a coroutine frame between the
        # wrapper and the call would cost a fifth of the whole timeout.
        @functools.wraps(fn)
        async def timed_native(*args: Any, **kwargs: Any) -> Any:
            if (loop := _running_loop()) is None or (task := _current_task(loop)) is None:
                return await call_async(fn, *args, **kwargs)  # type: ignore[arg-type]
            expiry = _Expiry(task)
            timer = loop.call_later(seconds, expiry.fire)
            try:
                result = await fn(*args, **kwargs)  # type: ignore[misc]
            except CancelledError:
                timer.cancel()
                if expiry.fired and expiry.uncancel() <= expiry.cancelling:
                    raise expired() from None
                raise
            except BaseException:
                timer.cancel()
                if expiry.fired:
                    expiry.uncancel()
                raise
            timer.cancel()
            if expiry.fired:
                expiry.uncancel()
            return result

        return cast("Callable[P, T]", timed_native)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)``, raising `TimeoutError` if it runs too long."""
        if (
            self._native
            and (loop := _running_loop()) is not None
            and (task := _current_task(loop)) is not None
        ):
            # asyncio.timeout's protocol, without its context manager: a timer cancels
            # the task; on the way out the timeout takes back its own cancellation
            # (uncancel), and turns the CancelledError into a TimeoutError only if no
            # other cancellation is pending.
            expiry = _Expiry(task)
            timer = loop.call_later(self._seconds, expiry.fire)
            try:
                result = await fn(*args, **kwargs)
            except CancelledError:
                timer.cancel()
                if expiry.fired and expiry.uncancel() <= expiry.cancelling:
                    raise self._expired() from None
                raise
            except BaseException:
                timer.cancel()
                if expiry.fired:
                    expiry.uncancel()
                raise
            timer.cancel()
            if expiry.fired:  # it finished all the same: the cancellation is void
                expiry.uncancel()
            return result
        with self._scope():
            return await fn(*args, **kwargs)
        # Left without a result: the scope caught its own cancellation.
        raise self._expired()

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        """A cancel scope that ends at the deadline on this timeout's clock."""
        if self._manual:
            return move_on_after(self._clock, self._seconds)
        trio = sys.modules.get("trio")
        if trio is not None and _running_loop() is None:
            # With no asyncio loop running, the loop is trio's (anyio runs on nothing
            # else): its own scope costs a fifth less than anyio's wrapper of it.
            scope: contextlib.AbstractContextManager[Any] = trio.move_on_after(self._seconds)
            return scope
        return anyio.move_on_after(self._seconds)

    def _expired(self) -> TimeoutError:
        """Count a timeout, publish it, and return the error to raise."""
        next(self._timed_out)
        bus = self._bus
        if bus.wants(TimedOut):
            now = self._clock.monotonic()
            bus.publish(TimedOut(source=self._name, at=now, seconds=self._seconds))
        return TimeoutError(f"timed out after {self._seconds:g}s")

    async def __aenter__(self) -> Timeout:
        scope = self._scope()
        scope.__enter__()
        _scopes.set((scope, _scopes.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        node = _scopes.get()
        assert node is not None, "Timeout block left without being entered"
        manager, rest = node
        _scopes.set(rest)
        suppressed = manager.__exit__(exc_type, exc, tb)
        if suppressed and exc is not None:
            raise self._expired() from None
        return bool(suppressed)

    def __repr__(self) -> str:
        return f"<Timeout {self._name!r} {self._seconds:g}s: {_read(self._timed_out)} timed out>"


class _Expiry:
    """The timer of a call timed on asyncio: cancels the task once, and remembers it."""

    __slots__ = ("cancelling", "fired", "task")

    def __init__(self, task: Any) -> None:  # an asyncio.Task, on Python 3.11 or later
        self.task = task
        self.cancelling: int = task.cancelling()  # cancellations already pending
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def uncancel(self) -> int:
        """Take back the cancellation `fire` asked for; the cancellations left pending."""
        left: int = self.task.uncancel()
        return left


def _read(counter: itertools.count[int]) -> int:
    """The next value of *counter*, read without taking it: ``count(7)`` -> 7."""
    return int(repr(counter)[6:-1])


_NATIVE = sys.version_info >= (3, 11)  # Task.cancelling() and Task.uncancel()
_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


# The timeout scopes of the `async with Timeout(...)` blocks open in this task.
_scopes: ContextVar[tuple[Any, Any] | None] = ContextVar("resilio_timeouts", default=None)


Policy = Guard | Retry | Timeout | Fallback[Any]


class Composed:
    """Several primitives applied as one policy; made by [`compose`][resilio.compose].

    Use it like any primitive: as a decorator on ``def`` and ``async def``, through
    `call` / `call_async`, and, when it holds no [`Retry`][resilio.Retry] (a block
    cannot be run again) and no [`Fallback`][resilio.Fallback] (a block has no value
    to replace), as a ``with`` / ``async with`` block.
    """

    __slots__ = ("_policies",)

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self._policies = policies

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The primitives, outermost first."""
        return self._policies

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate a ``def`` or an ``async def``: the policies stack, outermost first."""
        for policy in reversed(self._policies):
            fn = policy(fn)
        return fn

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` under every policy and return its result.

        Raises:
            MisuseError: *fn* is async (use `call_async`) or a generator function;
                nothing is called and no outcome is recorded. It is a `TypeError`.
        """
        check_callable(fn, owner="compose()", want_async=False)
        return self(fn)(*args, **kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under every policy and return its result.

        Raises:
            MisuseError: *fn* is not async (use `call`) or is an async generator
                function; nothing is called and no outcome is recorded. It is a
                `TypeError`.
        """
        check_callable(fn, owner="compose()", want_async=True)
        return await self(fn)(*args, **kwargs)

    def _blocks(self) -> tuple[Any, ...]:
        for policy in self._policies:
            if isinstance(policy, Retry):
                msg = (
                    "a composed policy that contains a Retry works only as a decorator "
                    "or through call/call_async: a with block cannot be run again"
                )
                raise TypeError(msg)
            if isinstance(policy, Fallback):
                msg = (
                    "a composed policy that contains a Fallback works only as a decorator "
                    "or through call/call_async: a with block has no value to replace"
                )
                raise TypeError(msg)
        return self._policies

    def __enter__(self) -> Composed:
        policies = self._blocks()
        if any(isinstance(policy, Timeout) for policy in policies):
            msg = "Timeout works in async code only: use `async with`"
            raise TypeError(msg)
        with contextlib.ExitStack() as stack:  # an entry that fails undoes the earlier ones
            for policy in policies:
                stack.enter_context(policy)
            _stacks.set((stack.pop_all(), _stacks.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(_pop_stack().__exit__(exc_type, exc, tb))

    async def __aenter__(self) -> Composed:
        policies = self._blocks()
        async with contextlib.AsyncExitStack() as stack:  # a failed entry undoes the others
            for policy in policies:
                await stack.enter_async_context(policy)
            _stacks.set((stack.pop_all(), _stacks.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(await _pop_stack().__aexit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return f"compose({', '.join(map(repr, self._policies))})"


# The exit stacks of the composed blocks open in this thread or task.
_stacks: ContextVar[tuple[Any, Any] | None] = ContextVar("resilio_composed", default=None)


def _pop_stack() -> Any:
    node = _stacks.get()
    assert node is not None, "composed block left without being entered"
    stack, rest = node
    _stacks.set(rest)
    return stack


def compose(*policies: Policy) -> Composed:
    """Stack primitives into one policy, outermost first.

    ``compose(retry_policy, breaker, bucket, Timeout(2.0))``: each try of the retry
    passes the breaker, then the limiter, under a two-second timeout. Put the retry
    outside the breaker, so that an open breaker's ``retry_after`` paces it, and a
    [`Fallback`][resilio.Fallback] outside both, so that it answers only the error
    that ends the call.

    Raises:
        TypeError: no policies, or something that is not a resilio primitive.
        ValueError: the same primitive twice (it would count each call twice).
    """
    if not policies:
        msg = "compose() needs at least one policy"
        raise TypeError(msg)
    for policy in policies:
        if isinstance(policy, Composed):
            continue
        if not isinstance(policy, (Guard, Retry, Timeout, Fallback)):
            msg = f"compose() takes resilio primitives, not {policy!r}"
            raise TypeError(msg)
    flat: list[Policy] = []
    for policy in policies:
        flat.extend(policy.policies if isinstance(policy, Composed) else (policy,))
    seen: set[int] = set()
    for policy in flat:
        if id(policy) in seen:
            msg = (
                f"compose() got {policy!r} twice: each call would pass it twice and be "
                "counted twice; use it once, or give each layer its own primitive"
            )
            raise ValueError(msg)
        seen.add(id(policy))
    return Composed(tuple(flat))
