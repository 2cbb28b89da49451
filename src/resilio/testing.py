"""Helpers for the test suites of applications that use resilio.

Under instant mode every [`Retry`][resilio.Retry] skips its sleeps (the delay is
zero, and the clock is not even asked to sleep), optionally stops after a given
number of tries, and every breaker stays closed: a test of code that retries a
failing dependency runs at once, and sees the final error, without passing a
[`ManualClock`][resilio.ManualClock] through the application. As with stamina's
``set_testing`` and tenacity's ``enabled=False``, nothing changes unless a test
turns it on. Unlike them, it is scoped: it holds in the thread or task that turned it
on, and in the tasks that one starts (and the worker threads it runs through
``anyio.to_thread``) while it is on, never in code elsewhere in the process, so two
tests running at once, or a server thread behind a test, are not affected::

    from resilio.testing import instant

    def test_gives_up_on_a_dead_upstream():
        with instant(attempts=2):
            with pytest.raises(ConnectionError):
                fetch_user(42)  # tried twice, no sleep

    @instant()
    async def test_recovers():
        ...

or, for a whole suite, a fixture in ``conftest.py`` (it works for sync tests and,
with anyio's or pytest-asyncio's plugin, for async ones)::

    @pytest.fixture(autouse=True)
    def _instant_retries():
        with resilio.testing.instant():
            yield

Instant mode changes how long a retry waits, never whether it retries: ``on=``,
``if_result=``, budgets and ``retry_after`` hints decide as they do in production, and
a skipped sleep counts against ``timeout`` as if it had been slept, so a policy with
``attempts=None`` and a ``timeout`` still ends. A `RetryScheduled` event is still
published, with ``delay=0.0``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from . import _validate
from ._guard import is_async_callable
from ._instant import SWITCH

__all__ = ["Instant", "instant", "is_instant", "set_instant"]

P = ParamSpec("P")
T = TypeVar("T")


def _check_attempts(attempts: int | None) -> int | None:
    return None if attempts is None else _validate.integer("attempts", attempts, ge=1)


class Instant:
    """Instant mode for the duration of a ``with`` block or of a decorated test.

    Made by [`instant`][resilio.testing.instant]. Entering turns instant mode on in the
    current thread or task (again, if it was on: uses nest, and the innermost
    ``attempts`` holds), leaving undoes that one entry. One object may be entered any
    number of times, one after another or at once from several threads or tasks; each
    entry holds only where it was made.

    Attributes:
        attempts: The most tries a retry makes in instant mode, or ``None`` to keep
            each policy's own ``attempts``.
    """

    __slots__ = ("attempts",)

    def __init__(self, attempts: int | None = None) -> None:
        self.attempts = _check_attempts(attempts)

    def __enter__(self) -> Instant:
        SWITCH.push(self.attempts)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        SWITCH.pop()

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Run a ``def`` or an ``async def`` (a test) in instant mode; its signature is kept.

        Raises:
            TypeError: *fn* is not callable.
        """
        if not callable(fn):
            msg = f"instant() decorates functions, not {fn!r}"
            raise TypeError(msg)
        if is_async_callable(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def instant_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self:
                    return await afn(*args, **kwargs)

            return cast("Callable[P, T]", instant_async)

        @functools.wraps(fn)
        def instant_sync(*args: P.args, **kwargs: P.kwargs) -> T:
            with self:
                return fn(*args, **kwargs)

        return instant_sync

    def __repr__(self) -> str:
        return f"instant(attempts={self.attempts!r})"


@overload
def instant(fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def instant(*, attempts: int | None = None) -> Instant: ...


def instant(
    fn: Callable[P, T] | None = None, /, *, attempts: int | None = None
) -> Instant | Callable[P, T]:
    """Retries without sleeps, and breakers that stay closed, for a block or a test.

    Use it as ``with instant():``, or as a decorator on a ``def`` or ``async def``
    test, with or without parentheses (``@instant``, ``@instant(attempts=2)``). Under
    it every retry's delay is zero and no sleep is started, and every
    [`CircuitBreaker`][resilio.CircuitBreaker] and
    [`SlidingWindowBreaker`][resilio.SlidingWindowBreaker] stays closed when a failure
    would open it. It holds in the current thread or task, and in the tasks it starts
    meanwhile, until the block or the test ends; other threads and tasks are not
    affected. Uses nest.

    Args:
        fn: A function to run in instant mode, for the bare ``@instant``.
        attempts: The most tries any retry makes (``>= 1``), below its own
            ``attempts``: ``attempts=1`` turns retrying off. ``None`` keeps each
            policy's own.

    Raises:
        TypeError: *attempts* is not an int, or *fn* is not callable.
        ValueError: *attempts* is below 1.
    """
    mode = Instant(attempts)
    return mode if fn is None else mode(fn)


def set_instant(on: bool, *, attempts: int | None = None) -> None:
    """Turn instant mode on or off in the current thread or task, without a block.

    ``set_instant(True)`` starts it afresh, whatever was on before, and
    ``set_instant(False)`` ends it, every ``with instant():`` still open here included.
    It is for setup and teardown hooks that cannot hold a ``with`` block open; a
    fixture that yields inside ``with instant():`` is simpler.

    Args:
        on: Whether retries skip their sleeps and breakers stay closed.
        attempts: With ``on``, the most tries any retry makes (``>= 1``); ``None``
            keeps each policy's own.

    Raises:
        TypeError: *on* is not a bool, or *attempts* is not an int.
        ValueError: *attempts* is below 1, or is given with ``on=False``.
    """
    if not isinstance(on, bool):
        msg = f"'on' must be a bool, not {type(on).__name__}: {on!r}"
        raise TypeError(msg)
    cap = _check_attempts(attempts)
    if not on:
        if cap is not None:
            msg = f"'attempts' is for turning instant mode on, not off: {attempts!r}"
            raise ValueError(msg)
        SWITCH.clear()
        return
    SWITCH.clear()
    SWITCH.push(cap)


def is_instant() -> bool:
    """Whether instant mode is on in the current thread or task."""
    return SWITCH.on and SWITCH.here()
