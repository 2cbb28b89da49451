"""Fallback: a value in place of an error.

A [`Fallback`][resilio.Fallback] is configuration only, like a
[`Retry`][resilio.Retry]: it keeps no state between calls but a count of the errors
it replaced, so one instance serves every thread and task. Its success path is one
``try`` block, what a hand-written ``try/except`` costs; everything else, the count
included, happens only once the call has failed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

import attrs

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, check_clock
from ._errors import MisuseError
from ._events import EventBus, FallbackUsed, check_bus, default_bus
from ._guard import is_async_callable
from ._registry import track
from ._retry import check_callable

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", bound=BaseException)


@attrs.frozen(kw_only=True)
class FallbackStats:
    """What a [`Fallback`][resilio.Fallback] has done since it was built; never goes down.

    Attributes:
        used: Errors it replaced: each one published
            [`FallbackUsed`][resilio.FallbackUsed] and called the handler (whether
            the handler then returned or raised).
    """

    used: int


class Fallback(Generic[R]):
    """Returns ``handler(exc)`` in place of a matching exception.

    When the guarded call raises an exception that ``on`` matches (resilio's own
    rejections included: an open breaker's
    [`CircuitOpenError`][resilio.CircuitOpenError], a
    [`RateLimitExceeded`][resilio.RateLimitExceeded]), the fallback publishes
    [`FallbackUsed`][resilio.FallbackUsed], calls ``handler(exc)`` and returns its
    value as the call's. Any other exception propagates untouched. Never caught,
    whatever ``on`` says: a [`MisuseError`][resilio.MisuseError] (wrong wiring must
    surface), and cancellation, ``KeyboardInterrupt`` and every other
    `BaseException` that is not an `Exception`.

    A handler that raises has its own error propagate, chained to the original: the
    original is its ``__context__``, and its ``__cause__`` too unless the handler
    chose one (``raise ... from other``, or ``from None``).

    The handler may be a ``def`` or an ``async def``. An async guarded call awaits an
    async handler's value (and any awaitable a plain handler returns); a sync call
    cannot, so decorating a ``def`` (or passing one to `call`) with an async handler
    raises [`MisuseError`][resilio.MisuseError] at once, not when the call first
    fails.

    Use it as a decorator on ``def`` and ``async def`` (signatures kept; the return
    type becomes the function's or the handler's), through `call` / `call_async`, or
    in [`compose`][resilio.compose]. There is no ``with`` form: a block has no value
    to replace. In a composed policy, put the fallback outermost, outside any
    [`Retry`][resilio.Retry]: it then sees only the error that ends the retrying.

    Args:
        handler: ``(exception) -> value``, a ``def`` or an ``async def``, whose value
            the call returns instead of raising.
        on: Exception types (one or a tuple), or a predicate
            ``(exception) -> bool``, that the handler replaces. The default,
            `Exception`, replaces every error.
        name: Appears in events and ``repr``.
        clock: Where the events' ``at`` comes from.
        bus: Where events go; the process-wide
            [`default_bus`][resilio.default_bus] by default.

    Raises:
        TypeError: ``handler`` is not callable, or is a generator function; ``on``
            is neither exception types nor a predicate; another argument has the
            wrong type.
        ValueError: ``on`` names a `BaseException` that is not an `Exception`, or
            ``name`` is empty.
    """

    __slots__ = (
        "__weakref__",
        "_bus",
        "_handler",
        "_is_async",
        "_name",
        "_now",
        "_on",
        "_spec",
        "_used",
    )

    @overload
    def __init__(
        self,
        handler: Callable[[E], Awaitable[R]],
        *,
        on: type[E] | tuple[type[E], ...],
        name: str = ...,
        clock: Clock = ...,
        bus: EventBus | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        handler: Callable[[Exception], Awaitable[R]],
        *,
        on: Callable[[BaseException], bool] = ...,
        name: str = ...,
        clock: Clock = ...,
        bus: EventBus | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        handler: Callable[[E], R],
        *,
        on: type[E] | tuple[type[E], ...],
        name: str = ...,
        clock: Clock = ...,
        bus: EventBus | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        handler: Callable[[Exception], R],
        *,
        on: Callable[[BaseException], bool] = ...,
        name: str = ...,
        clock: Clock = ...,
        bus: EventBus | None = ...,
    ) -> None: ...

    def __init__(
        self,
        handler: Callable[[Any], R | Awaitable[R]],
        *,
        on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = Exception,
        name: str = "fallback",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        _validate.callable_("handler", handler)
        if inspect.isgeneratorfunction(handler) or inspect.isasyncgenfunction(handler):
            msg = f"'handler' must return a value, not be a generator function: {handler!r}"
            raise TypeError(msg)
        self._handler = handler
        self._is_async = is_async_callable(handler)
        self._on = _validate.exception_matcher("on", on)
        self._spec: Any = on if _validate.is_predicate(on) else _validate.exception_types("on", on)
        self._name = _validate.text("name", name)
        self._now = check_clock(clock).monotonic
        self._bus = default_bus() if bus is None else check_bus(bus)
        # Counted on the failure path only. next() on a count is one indivisible step
        # under the GIL (free-threaded builds: exact from Python 3.14, whose count is
        # atomic), and its value is read from its repr without advancing it.
        self._used = itertools.count()
        track(self)

    def stats(self) -> FallbackStats:
        """Cumulative counts since construction (read without a lock)."""
        return FallbackStats(used=int(repr(self._used)[6:-1]))

    @property
    def name(self) -> str:
        """The name that appears in events and ``repr``."""
        return self._name

    @property
    def handler(self) -> Callable[[Any], R | Awaitable[R]]:
        """The callable whose value replaces a matching error."""
        return self._handler

    @property
    def on(self) -> tuple[type[BaseException], ...] | Callable[[BaseException], bool]:
        """What the handler replaces: a tuple of exception types, or the predicate."""
        return cast("tuple[type[BaseException], ...] | Callable[[BaseException], bool]", self._spec)

    # -- the decorator --------------------------------------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /
    ) -> Callable[P, Coroutine[Any, Any, T | R]]: ...

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T | R]: ...

    def __call__(self, fn: Callable[P, Any], /) -> Callable[P, Any]:
        """Decorate a ``def`` or an ``async def``; its parameters are kept.

        Raises:
            MisuseError: *fn* is not callable or is a generator function, or it is a
                ``def`` and the handler is async. It is a `TypeError`.
        """
        check_callable(fn, owner="Fallback")
        if is_async_callable(fn):
            return self._wrap_async(fn)
        self._check_sync(fn)
        return self._wrap_sync(fn)

    # The wrappers catch and match inline: the success path is one try block, and an
    # error that is not replaced goes on with a bare ``raise`` from the wrapper that
    # caught it, with no helper's frame added to its traceback.

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T | R]:
        on = self._on
        use = self._use

        @functools.wraps(fn)
        def fallen_back(*args: P.args, **kwargs: P.kwargs) -> T | R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, MisuseError) or not on(exc):
                    raise
                return use(exc)

        return fallen_back

    def _wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | R]]:
        on = self._on
        use_async = self._use_async

        @functools.wraps(fn)
        async def fallen_back(*args: P.args, **kwargs: P.kwargs) -> T | R:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, MisuseError) or not on(exc):
                    raise
                return await use_async(exc)

        return fallen_back

    # -- the other forms ------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | R:
        """Call ``fn(*args, **kwargs)``; return its result, or the handler's value.

        Raises:
            MisuseError: *fn* is async (use `call_async`) or a generator function,
                or the handler is async; nothing is called. It is a `TypeError`.
        """
        check_callable(fn, owner="Fallback", want_async=False)
        self._check_sync(fn)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, MisuseError) or not self._on(exc):
                raise
            return self._use(exc)
        if type(result) is CoroutineType:  # an async function in disguise
            cast("CoroutineType[Any, Any, Any]", result).close()
            msg = f"{fn!r} is async: use call_async() for it"
            raise MisuseError(msg)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T | R:
        """Await ``fn(*args, **kwargs)``; return its result, or the handler's value.

        Raises:
            MisuseError: *fn* is not async (use `call`) or is an async generator
                function; nothing is called. It is a `TypeError`.
        """
        check_callable(fn, owner="Fallback", want_async=True)
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, MisuseError) or not self._on(exc):
                raise
            return await self._use_async(exc)

    # -- after a matching failure ---------------------------------------------------

    def _check_sync(self, fn: object) -> None:
        """Refuse an async handler for a sync call, which could not await it."""
        if self._is_async:
            handler = getattr(self._handler, "__qualname__", None) or repr(self._handler)
            msg = (
                f"Fallback {self._name!r} has an async handler, {handler}, which a sync "
                "call cannot await; give it a sync handler, or guard an async def: "
                f"{fn!r} is not async"
            )
            raise MisuseError(msg)

    def _announce(self, exc: Exception) -> None:
        next(self._used)
        bus = self._bus
        if bus.wants(FallbackUsed):
            bus.publish(FallbackUsed(source=self._name, at=self._now(), error=exc))

    def _use(self, exc: Exception) -> R:
        """The handler's value for *exc*, in a sync call; runs inside the except block."""
        self._announce(exc)
        try:
            value: Any = self._handler(exc)
        except Exception as error:
            _chain(error, exc)
            raise
        if type(value) is CoroutineType:  # a plain handler that made a coroutine
            value.close()
            msg = (
                f"the handler of Fallback {self._name!r} returned a coroutine, which a "
                "sync call cannot await; give a handler that returns the value"
            )
            raise MisuseError(msg) from exc
        return cast("R", value)

    async def _use_async(self, exc: Exception) -> R:
        """The handler's value for *exc*, awaited if it must be; inside the except block."""
        self._announce(exc)
        try:
            value: Any = self._handler(exc)
            if self._is_async or inspect.isawaitable(value):
                value = await value
        except Exception as error:
            _chain(error, exc)
            raise
        return cast("R", value)

    def __repr__(self) -> str:
        spec = self._spec
        on = (
            ", ".join(t.__name__ for t in spec) or "nothing"
            if isinstance(spec, tuple)
            else repr(spec)
        )
        handler = getattr(self._handler, "__qualname__", None) or repr(self._handler)
        used = int(repr(self._used)[6:-1])
        return f"<Fallback {self._name!r}: {on} -> {handler}(), used {used} times>"


def _chain(error: Exception, original: Exception) -> None:
    """Make *original* the cause of the handler's *error*, unless the handler chose one."""
    if error is not original and error.__cause__ is None and not error.__suppress_context__:
        error.__cause__ = original
