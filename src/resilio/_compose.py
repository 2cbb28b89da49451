"""Composition: several primitives as one policy, and a timeout for async calls.

``compose(outer, ..., inner)`` applies its primitives as if they were stacked as
decorators, outermost first: ``compose(retry, breaker, bucket, Timeout(2))(fn)``
is ``retry(breaker(bucket(Timeout(2)(fn))))``, so each try of the retry passes the
breaker, then the limiter, under a two-second timeout. It costs what the stacked
decorators cost: nothing is added between them. A ``Fallback`` goes outermost:
``compose(Fallback(cached), retry, breaker)`` answers only the error that ends the call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, check_clock, move_on_after
from ._fallback import Fallback
from ._guard import Guard, is_async_callable
from ._retry import Retry, check_callable

P = ParamSpec("P")
T = TypeVar("T")


class Timeout:
    """Cancels an async call (or an ``async with`` block) that runs past ``seconds``.

    On expiry the built-in ``TimeoutError`` is raised. Inside a
    [`Retry`][resilio.Retry] each try gets its own timeout. Only async code can be
    cancelled safely: decorating a plain ``def`` is a ``TypeError`` (run blocking
    work in a worker thread inside an ``async def``, with
    ``anyio.to_thread.run_sync(fn, abandon_on_cancel=True)``, and time that out).

    Args:
        seconds: The time allowed, in seconds or as a `datetime.timedelta`.
        clock: Where time comes from; on a [`ManualClock`][resilio.ManualClock]
            the timeout fires when the clock is advanced past it.
    """

    __slots__ = ("__weakref__", "_clock", "_seconds")

    def __init__(self, seconds: float | timedelta, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._seconds = _validate.duration("seconds", seconds, gt=0)
        self._clock = check_clock(clock)

    @property
    def seconds(self) -> float:
        """The time allowed, in seconds."""
        return self._seconds

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

        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)  # type: ignore[arg-type]

        return cast("Callable[P, T]", timed)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)``, raising `TimeoutError` if it runs too long."""
        with move_on_after(self._clock, self._seconds):
            return await fn(*args, **kwargs)
        raise TimeoutError(f"timed out after {self._seconds:g}s")

    async def __aenter__(self) -> Timeout:
        scope = move_on_after(self._clock, self._seconds)
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
            raise TimeoutError(f"timed out after {self._seconds:g}s") from None
        return bool(suppressed)

    def __repr__(self) -> str:
        return f"Timeout({self._seconds:g})"


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
