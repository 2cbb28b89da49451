"""Fallback: the handler's value in place of matching errors, what is never caught, the
chaining of a handler's own error, sync and async handlers, events, the decorator / call
/ call_async forms on asyncio and trio, cancellation, the order in compose() around a
retry and a breaker, threads, and configuration checks.

Time is a ManualClock; nothing sleeps for real.
"""

from __future__ import annotations

import functools
import gc
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilio._fallback
from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Event,
    EventBus,
    Fallback,
    FallbackUsed,
    ManualClock,
    MisuseError,
    RateLimitExceeded,
    Retry,
    RetryExhausted,
    RetryScheduled,
    Timeout,
    TokenBucket,
    compose,
    default_bus,
)
from resilio._registry import live

T = TypeVar("T")


class Boom(Exception):
    """The failure the guarded functions raise."""


class Other(Exception):
    """A failure the fallbacks under test do not replace."""


class Handler:
    """A sync handler that records the errors it was given and returns ``value``."""

    def __init__(self, value: object = "cached") -> None:
        self.value = value
        self.errors: list[Exception] = []

    def __call__(self, exc: Exception) -> object:
        self.errors.append(exc)
        return self.value


class AsyncHandler(Handler):
    """An async handler: records the errors, yields once, returns ``value``."""

    async def __call__(self, exc: Exception) -> object:
        self.errors.append(exc)
        await anyio.lowlevel.checkpoint()
        return self.value


def raiser(exc: BaseException) -> Callable[[], NoReturn]:
    """A def that raises *exc* each time it is called."""

    def fail() -> NoReturn:
        raise exc

    return fail


def araiser(exc: BaseException) -> Callable[[], Awaitable[NoReturn]]:
    """An async def that yields once, then raises *exc*."""

    async def fail() -> NoReturn:
        await anyio.lowlevel.checkpoint()
        raise exc

    return fail


async def drive(clock: ManualClock, fn: Callable[[], Awaitable[T]], step: float = 0.5) -> T:
    """Await ``fn()`` in a task, advancing the clock by *step* whenever every task is blocked."""
    outcome: list[tuple[bool, Any]] = []

    async def runner() -> None:
        try:
            outcome.append((True, await fn()))
        except Exception as exc:
            outcome.append((False, exc))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            while True:
                await anyio.wait_all_tasks_blocked()
                if outcome:
                    break
                clock.advance(step)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class TestSync:
    """A def under a fallback: what is replaced, what propagates."""

    def test_success_returns_the_value_and_leaves_the_handler_alone(self, bus: EventBus) -> None:
        """A call that returns passes its value through; the handler is not called."""
        handler = Handler()
        assert Fallback(handler, bus=bus)(lambda: 42)() == 42
        assert handler.errors == []

    def test_matching_error_returns_the_handlers_value(self, bus: EventBus) -> None:
        """A matching error is replaced by the handler's value; the handler gets that error."""
        handler = Handler()
        error = Boom("down")
        assert Fallback(handler, bus=bus)(raiser(error))() == "cached"
        assert handler.errors == [error]

    def test_arguments_reach_the_function(self, bus: EventBus) -> None:
        """The decorated function gets its positional and keyword arguments."""

        @Fallback(Handler(), bus=bus)
        def add(a: int, b: int = 0, *, c: int = 0) -> int:
            return a + b + c

        assert add(1, 2, c=3) == 6

    @pytest.mark.parametrize(
        "on",
        [Boom, (Other, Boom), [Boom], {Boom}, Exception, lambda exc: str(exc) == "down"],
        ids=["type", "tuple", "list", "set", "Exception", "predicate"],
    )
    def test_on_matches(self, on: Any, bus: EventBus) -> None:
        """``on`` as one type, a tuple, any iterable of types, or a predicate matches."""
        assert Fallback(Handler(), on=on, bus=bus)(raiser(Boom("down")))() == "cached"

    @pytest.mark.parametrize(
        "on",
        [Other, (Other, KeyError), lambda exc: False, ()],
        ids=["type", "tuple", "predicate", "nothing"],
    )
    def test_other_errors_propagate_untouched(self, on: Any, bus: EventBus) -> None:
        """An error ``on`` does not match propagates as it was: same object, nothing chained."""
        handler = Handler()
        error = Boom("down")
        with pytest.raises(Boom) as info:
            Fallback(handler, on=on, bus=bus)(raiser(error))()
        assert info.value is error
        assert error.__context__ is None
        assert error.__cause__ is None
        assert handler.errors == []

    def test_rejections_are_replaced(self, clock: ManualClock, bus: EventBus) -> None:
        """resilio's rejections are errors like others: an open breaker's and a full bucket's."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        breaker.force_open()
        bucket = TokenBucket(1, 1, reject=True, clock=clock, bus=bus)
        bucket.try_acquire()
        handler = Handler()
        fallback = Fallback(handler, bus=bus)
        assert fallback(breaker(lambda: 1))() == "cached"
        assert fallback(bucket(lambda: 1))() == "cached"
        assert [type(e) for e in handler.errors] == [CircuitOpenError, RateLimitExceeded]

    @pytest.mark.parametrize("on", [Exception, TypeError, lambda exc: True])
    def test_misuse_is_never_replaced(self, on: Any, bus: EventBus) -> None:
        """A MisuseError (wrong wiring) propagates whatever ``on`` says."""
        handler = Handler()

        async def not_for_call() -> int:
            return 1

        breaker = CircuitBreaker(bus=bus)
        with pytest.raises(MisuseError):
            Fallback(handler, on=on, bus=bus)(lambda: breaker.call(not_for_call))()
        assert handler.errors == []

    @pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
    def test_base_exceptions_are_never_replaced(self, error: BaseException, bus: EventBus) -> None:
        """A BaseException that is not an Exception propagates, even with on=BaseException."""
        handler = Handler()
        with pytest.raises(type(error)):
            Fallback(handler, on=BaseException, bus=bus)(raiser(error))()
        assert handler.errors == []

    def test_signature_and_metadata_are_kept(self, bus: EventBus) -> None:
        """The decorated function keeps its name, docstring and signature."""

        def price(sku: str, *, currency: str = "EUR") -> float:
            """The price of *sku*."""
            return 1.0

        decorated = Fallback(Handler(), bus=bus)(price)
        assert decorated.__name__ == "price"
        assert decorated.__doc__ == "The price of *sku*."
        assert decorated.__wrapped__ is price  # type: ignore[attr-defined]
        assert inspect.signature(decorated) == inspect.signature(price)
        assert not inspect.iscoroutinefunction(decorated)

    def test_call(self, bus: EventBus) -> None:
        """``call`` passes arguments through and replaces a matching error."""
        handler = Handler()
        fallback = Fallback(handler, on=Boom, bus=bus)
        assert fallback.call(lambda a, b=0: a + b, 1, b=2) == 3
        assert fallback.call(raiser(Boom())) == "cached"
        with pytest.raises(Other):
            fallback.call(raiser(Other()))
        assert len(handler.errors) == 1


class TestHandlerErrors:
    """A handler that raises: its error propagates, chained to the original."""

    def test_handler_error_is_chained_to_the_original(self, bus: EventBus) -> None:
        """The handler's error propagates with the original as context and cause."""
        original = Boom("down")

        def handler(exc: Exception) -> NoReturn:
            raise LookupError("no cached copy")

        with pytest.raises(LookupError) as info:
            Fallback(handler, bus=bus)(raiser(original))()
        assert info.value.__context__ is original
        assert info.value.__cause__ is original

    def test_a_cause_the_handler_chose_is_kept(self, bus: EventBus) -> None:
        """``raise ... from other`` in the handler keeps *other* as the cause."""
        original, chosen = Boom("down"), OSError("cache offline")

        def handler(exc: Exception) -> NoReturn:
            raise LookupError("no cached copy") from chosen

        with pytest.raises(LookupError) as info:
            Fallback(handler, bus=bus)(raiser(original))()
        assert info.value.__cause__ is chosen
        assert info.value.__context__ is original

    def test_from_none_is_kept(self, bus: EventBus) -> None:
        """``raise ... from None`` in the handler keeps the chain suppressed."""
        original = Boom("down")

        def handler(exc: Exception) -> NoReturn:
            raise LookupError("no cached copy") from None

        with pytest.raises(LookupError) as info:
            Fallback(handler, bus=bus)(raiser(original))()
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__
        assert info.value.__context__ is original

    def test_handler_reraising_the_original(self, bus: EventBus) -> None:
        """A handler may decide to re-raise the original: it propagates, not its own cause."""
        original = Boom("down")

        def handler(exc: Exception) -> NoReturn:
            raise exc

        with pytest.raises(Boom) as info:
            Fallback(handler, bus=bus)(raiser(original))()
        assert info.value is original
        assert original.__cause__ is None

    def test_call_chains_too(self, bus: EventBus) -> None:
        """``call`` chains a handler's error the same way."""
        original = Boom("down")

        def handler(exc: Exception) -> NoReturn:
            raise LookupError("no copy")

        fallback = Fallback(handler, bus=bus)
        with pytest.raises(LookupError) as info:
            fallback.call(raiser(original))
        assert info.value.__cause__ is original

    def test_handler_interrupted_is_not_chained(self, bus: EventBus) -> None:
        """A KeyboardInterrupt in the handler propagates as it was."""
        interrupt = KeyboardInterrupt()

        def handler(exc: Exception) -> NoReturn:
            raise interrupt

        with pytest.raises(KeyboardInterrupt) as info:
            Fallback(handler, bus=bus)(raiser(Boom()))()
        assert info.value is interrupt
        assert info.value.__cause__ is None


class TestEvents:
    """FallbackUsed, published before the handler runs, only when someone listens."""

    def test_fallback_used(self, clock: ManualClock, bus: EventBus, events: list[Event]) -> None:
        """A replaced error publishes FallbackUsed with the name, the clock's time and the error."""
        clock.advance(12.5)
        error = Boom("down")
        Fallback(Handler(), name="prices", clock=clock, bus=bus)(raiser(error))()
        assert events == [FallbackUsed(source="prices", at=12.5, error=error)]

    def test_nothing_published_on_success_or_other_errors(
        self, bus: EventBus, events: list[Event]
    ) -> None:
        """A success, or an error the fallback does not replace, publishes nothing."""
        fallback = Fallback(Handler(), on=Boom, bus=bus)
        fallback(lambda: 1)()
        with pytest.raises(Other):
            fallback(raiser(Other()))()
        assert events == []

    def test_published_even_when_the_handler_fails(
        self, bus: EventBus, events: list[Event]
    ) -> None:
        """The event comes before the handler runs, so a failing handler is seen too."""
        seen_by_handler: list[int] = []

        def handler(exc: Exception) -> NoReturn:
            seen_by_handler.append(len(events))
            raise LookupError

        with pytest.raises(LookupError):
            Fallback(handler, bus=bus)(raiser(Boom()))()
        assert seen_by_handler == [1]
        assert [type(e) for e in events] == [FallbackUsed]

    def test_no_event_built_when_nobody_listens(
        self, bus: EventBus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no subscriber the event is never built."""

        def refuse(**kwargs: Any) -> NoReturn:
            raise AssertionError("an event was built for nobody")

        monkeypatch.setattr(resilio._fallback, "FallbackUsed", refuse)
        assert Fallback(Handler(), bus=bus)(raiser(Boom()))() == "cached"

    def test_default_bus(self) -> None:
        """Without ``bus=``, events go to the process-wide bus."""
        seen: list[FallbackUsed] = []
        unsubscribe = default_bus().subscribe(FallbackUsed, seen.append)
        try:
            Fallback(Handler(), name="on-default-bus")(raiser(Boom()))()
        finally:
            unsubscribe()
        assert [e.source for e in seen] == ["on-default-bus"]


class TestCounters:
    """``stats().used``: the errors replaced, counted on the failure path only."""

    @pytest.mark.anyio
    async def test_counter_totals_equal_the_events(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """A scripted mix of calls in every form: the count equals the FallbackUsed events,
        a failing handler included; successes and errors not replaced count nothing."""
        fallback = Fallback(Handler(), on=Boom, clock=clock, bus=bus)

        def failing_handler(exc: Exception) -> NoReturn:
            raise LookupError

        broken = Fallback(failing_handler, on=Boom, clock=clock, bus=bus)

        async def afail() -> NoReturn:
            await anyio.lowlevel.checkpoint()
            raise Boom

        async def aok() -> int:
            return 1

        assert fallback(lambda: 1)() == 1
        assert fallback(raiser(Boom()))() == "cached"
        assert fallback.call(raiser(Boom())) == "cached"
        with pytest.raises(Other):
            fallback.call(raiser(Other()))
        assert await fallback(afail)() == "cached"
        assert await fallback.call_async(afail) == "cached"
        assert await fallback.call_async(aok) == 1
        with pytest.raises(LookupError):
            broken(raiser(Boom()))()
        assert fallback.stats() == resilio._fallback.FallbackStats(used=4)
        assert broken.stats().used == 1
        assert len(events) == fallback.stats().used + broken.stats().used
        assert "used 4 times" in repr(fallback)

    def test_counted_when_nobody_listens(self, bus: EventBus) -> None:
        """The count does not depend on a subscriber."""
        fallback = Fallback(Handler(), bus=bus)
        for _ in range(3):
            fallback.call(raiser(Boom()))
        assert fallback.stats().used == 3

    def test_tracked_while_alive(self) -> None:
        """A Fallback is in the registry of live primitives until it is dropped."""
        fallback = Fallback(Handler(), name="tracked")
        assert any(p is fallback for p in live())
        ref = weakref.ref(fallback)
        del fallback
        gc.collect()
        assert ref() is None


class TestAsync:
    """An async def under a fallback, with sync and async handlers, on asyncio and trio."""

    @pytest.mark.anyio
    async def test_async_handler_is_awaited(self, bus: EventBus) -> None:
        """An async handler's value is awaited and returned."""
        handler = AsyncHandler()
        error = Boom()
        assert await Fallback(handler, bus=bus)(araiser(error))() == "cached"
        assert handler.errors == [error]

    @pytest.mark.anyio
    async def test_sync_handler(self, bus: EventBus) -> None:
        """A sync handler serves an async call too."""
        assert await Fallback(Handler(), bus=bus)(araiser(Boom()))() == "cached"

    @pytest.mark.anyio
    async def test_plain_handler_returning_an_awaitable(self, bus: EventBus) -> None:
        """A plain handler (a lambda) that returns a coroutine has it awaited."""

        async def from_cache() -> str:
            await anyio.lowlevel.checkpoint()
            return "cached"

        fallback = Fallback(lambda exc: from_cache(), bus=bus)
        assert await fallback(araiser(Boom()))() == "cached"

    @pytest.mark.anyio
    async def test_async_partial_handler(self, bus: EventBus) -> None:
        """A functools.partial of an async def is an async handler."""

        async def from_cache(default: str, exc: Exception) -> str:
            return default

        fallback = Fallback(functools.partial(from_cache, "cached"), bus=bus)
        assert await fallback(araiser(Boom()))() == "cached"

    @pytest.mark.anyio
    async def test_success_and_other_errors(self, bus: EventBus) -> None:
        """A success passes through; an error ``on`` does not match propagates as it was."""
        handler = AsyncHandler()
        fallback = Fallback(handler, on=Boom, bus=bus)

        async def ok(a: int, *, b: int) -> int:
            await anyio.lowlevel.checkpoint()
            return a + b

        decorated = fallback(ok)
        assert inspect.iscoroutinefunction(decorated)
        assert inspect.signature(decorated) == inspect.signature(ok)
        assert await decorated(1, b=2) == 3
        error = Other()
        with pytest.raises(Other) as info:
            await fallback(araiser(error))()
        assert info.value is error
        assert error.__context__ is None
        assert handler.errors == []

    @pytest.mark.anyio
    async def test_call_async(self, bus: EventBus) -> None:
        """``call_async`` passes arguments and replaces a matching error."""
        fallback = Fallback(AsyncHandler(), bus=bus)

        async def double(x: int) -> int:
            return 2 * x

        assert await fallback.call_async(double, 4) == 8
        assert await fallback.call_async(araiser(Boom())) == "cached"

    @pytest.mark.anyio
    async def test_async_handler_error_is_chained(self, bus: EventBus) -> None:
        """An async handler's error propagates, chained to the original."""
        original = Boom()

        async def handler(exc: Exception) -> NoReturn:
            await anyio.lowlevel.checkpoint()
            raise LookupError

        with pytest.raises(LookupError) as info:
            await Fallback(handler, bus=bus)(araiser(original))()
        assert info.value.__cause__ is original
        assert info.value.__context__ is original
        with pytest.raises(LookupError) as info:
            await Fallback(handler, bus=bus).call_async(araiser(original))
        assert info.value.__cause__ is original

    @pytest.mark.anyio
    async def test_cancellation_is_never_replaced(self, bus: EventBus) -> None:
        """A cancelled call is cancelled: the handler is not called, no event is published."""
        handler = AsyncHandler()
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        fallback = Fallback(handler, on=BaseException, bus=bus)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await fallback(anyio.sleep_forever)()
        assert scope.cancelled_caught
        with anyio.CancelScope() as scope:
            scope.cancel()
            await fallback.call_async(anyio.sleep_forever)
        assert scope.cancelled_caught
        assert handler.errors == []
        assert seen == []

    @pytest.mark.anyio
    async def test_cancelled_handler(self, bus: EventBus) -> None:
        """A handler cancelled while it awaits is cancelled too; nothing is replaced."""
        started: list[Exception] = []

        async def handler(exc: Exception) -> str:
            started.append(exc)
            await anyio.sleep_forever()
            return "never"  # pragma: no cover

        with anyio.CancelScope() as scope:
            scope.cancel()
            await Fallback(handler, bus=bus)(raiser_async_no_checkpoint(Boom()))()
        assert scope.cancelled_caught
        assert len(started) == 1

    @pytest.mark.anyio
    async def test_timeout_inside_is_replaced(self, clock: ManualClock, bus: EventBus) -> None:
        """compose(Fallback, Timeout): a call that runs too long gets the handler's value."""
        handler = Handler()
        policy = compose(Fallback(handler, on=TimeoutError, bus=bus), Timeout(2, clock=clock))
        slow = policy(anyio.sleep_forever)
        assert await drive(clock, slow) == "cached"
        assert [type(e) for e in handler.errors] == [TimeoutError]


def raiser_async_no_checkpoint(exc: BaseException) -> Callable[[], Awaitable[NoReturn]]:
    """An async def that raises *exc* at once, without a checkpoint."""

    async def fail() -> NoReturn:
        raise exc

    return fail


class TestMisuse:
    """Wiring that cannot work fails at once, with MisuseError, before anything runs."""

    def test_async_handler_on_a_def_is_refused_at_decoration(self, bus: EventBus) -> None:
        """A sync function cannot await an async handler: refused when decorated."""
        with pytest.raises(MisuseError, match="async handler"):
            Fallback(AsyncHandler(), name="prices", bus=bus)(lambda: 1)

    def test_async_handler_in_call_is_refused_before_calling(self, bus: EventBus) -> None:
        """``call`` with an async handler refuses before the function runs."""
        calls: list[int] = []
        with pytest.raises(MisuseError, match="async handler"):
            Fallback(AsyncHandler(), bus=bus).call(lambda: calls.append(1))
        assert calls == []

    def test_async_handler_in_compose_on_a_def(self, bus: EventBus) -> None:
        """A composed policy holding an async-handler fallback refuses a def when decorating."""
        policy = compose(Fallback(AsyncHandler(), bus=bus), CircuitBreaker(bus=bus))
        with pytest.raises(MisuseError):
            policy(lambda: 1)

    def test_wrong_colour_in_call_and_call_async(self, bus: EventBus) -> None:
        """``call`` takes a def, ``call_async`` an async def; the other colour is refused."""
        fallback = Fallback(Handler(), bus=bus)

        async def coro() -> int:
            return 1

        with pytest.raises(MisuseError, match="call_async"):
            fallback.call(coro)
        with pytest.raises(MisuseError, match="call\\(\\)"):
            anyio.run(fallback.call_async, lambda: 1)

    def test_call_of_a_disguised_async_function(self, bus: EventBus) -> None:
        """``call`` refuses the coroutine a plain function returned, and closes it."""
        fallback = Fallback(Handler(), bus=bus)

        async def coro() -> int:
            return 1  # pragma: no cover - closed unawaited

        with pytest.raises(MisuseError, match="call_async"):
            fallback.call(lambda: coro())  # noqa: PLW0108

    def test_plain_handler_returning_a_coroutine_in_a_sync_call(self, bus: EventBus) -> None:
        """A sync call cannot await what the handler returned: MisuseError, chained."""

        async def from_cache() -> str:
            return "cached"  # pragma: no cover - closed unawaited

        original = Boom()
        with pytest.raises(MisuseError, match="coroutine") as info:
            Fallback(lambda exc: from_cache(), bus=bus)(raiser(original))()
        assert info.value.__cause__ is original

    @pytest.mark.parametrize("form", ["decorator", "call"])
    def test_generator_functions_are_refused(self, form: str, bus: EventBus) -> None:
        """A generator function has no value to replace: refused."""

        def gen() -> Any:
            yield 1  # pragma: no cover

        fallback = Fallback(Handler(), bus=bus)
        with pytest.raises(MisuseError, match="generator"):
            fallback(gen) if form == "decorator" else fallback.call(gen)

    def test_not_callable(self, bus: EventBus) -> None:
        """Decorating something that is not callable is refused."""
        with pytest.raises(MisuseError, match="callables"):
            Fallback(Handler(), bus=bus)(42)  # type: ignore[call-overload]

    def test_no_with_block(self, bus: EventBus) -> None:
        """A block has no value to replace: there is no ``with`` form (Python 3.10 says so
        with an AttributeError, later versions with a TypeError)."""
        with pytest.raises((TypeError, AttributeError)), Fallback(Handler(), bus=bus):  # type: ignore[attr-defined]
            pass  # pragma: no cover


class TestConfiguration:
    """Construction checks name the parameter and the value; properties and repr."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"handler": 42}, TypeError, "'handler' must be callable: 42"),
            ({"on": "ValueError"}, TypeError, "'on' must be .* not a string: 'ValueError'"),
            ({"on": (ValueError, 3)}, TypeError, "'on' must contain only exception types: 3"),
            ({"on": 3}, TypeError, "'on' must be an exception type or a tuple of them: 3"),
            ({"on": KeyboardInterrupt}, ValueError, "'on' names KeyboardInterrupt"),
            ({"name": ""}, ValueError, "'name' must not be empty"),
            ({"name": 3}, TypeError, "'name' must be a str, not int: 3"),
            ({"clock": 3}, TypeError, "'clock' must provide .*: 3"),
            ({"bus": 3}, TypeError, "'bus' must be an EventBus: 3"),
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any], error: type, match: str) -> None:
        """Each bad argument fails at construction, naming itself and the value."""
        kwargs = {"handler": Handler(), **kwargs}
        with pytest.raises(error, match=match):
            Fallback(**kwargs)

    def test_generator_handler(self) -> None:
        """A generator function cannot return a value: refused as a handler."""

        def gen(exc: Exception) -> Any:
            yield exc  # pragma: no cover

        with pytest.raises(TypeError, match="'handler' must return a value"):
            Fallback(gen)

    def test_properties(self) -> None:
        """``name``, ``handler`` and ``on`` read back what was given."""

        def predicate(exc: BaseException) -> bool:
            return True

        handler = Handler()
        fallback = Fallback(handler, on=Boom, name="prices")
        assert fallback.name == "prices"
        assert fallback.handler is handler
        assert fallback.on == (Boom,)
        assert Fallback(handler, on=[Boom, Other]).on == (Boom, Other)
        assert Fallback(handler, on=predicate).on is predicate
        assert Fallback(handler).on == (Exception,)
        assert Fallback(handler).name == "fallback"

    def test_repr(self) -> None:
        """repr shows the name, what is replaced and the handler."""

        def cached_price(exc: Exception) -> float:
            return 0.0

        text = repr(Fallback(cached_price, on=(ConnectionError, TimeoutError), name="prices"))
        assert "'prices'" in text
        assert "ConnectionError, TimeoutError" in text
        assert "cached_price" in text

    def test_subscript_at_runtime(self) -> None:
        """Fallback[int] works at runtime, as annotations outside quotes need."""
        alias = Fallback[int]
        assert alias.__origin__ is Fallback  # type: ignore[attr-defined]


class TestOrder:
    """Where the fallback sits in compose() decides which errors it sees."""

    def test_outside_a_retry_it_sees_only_the_final_error(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """compose(Fallback, Retry): every try runs; the handler gets the last error only."""
        raised: list[Boom] = []
        handler = Handler()

        def flaky() -> NoReturn:
            raised.append(Boom(len(raised)))
            raise raised[-1]

        retry = Retry(attempts=3, jitter=None, clock=clock, bus=bus)
        assert compose(Fallback(handler, bus=bus), retry)(flaky)() == "cached"
        assert len(raised) == 3
        assert handler.errors == [raised[-1]]
        kinds = [type(e) for e in events]
        assert kinds == [RetryScheduled, RetryScheduled, RetryExhausted, FallbackUsed]

    def test_inside_a_retry_nothing_is_retried(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """compose(Retry, Fallback): the first error becomes a value, so no retry happens."""
        calls: list[int] = []
        handler = Handler()

        def flaky() -> NoReturn:
            calls.append(1)
            raise Boom

        retry = Retry(attempts=3, jitter=None, clock=clock, bus=bus)
        assert compose(retry, Fallback(handler, bus=bus))(flaky)() == "cached"
        assert calls == [1]
        assert [type(e) for e in events] == [FallbackUsed]

    def test_outside_a_breaker_it_replaces_the_rejection(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """compose(Fallback, breaker): failures open the breaker; then the rejection is replaced
        without calling the function."""
        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=bus)
        calls: list[int] = []
        handler = Handler()

        def down() -> NoReturn:
            calls.append(1)
            raise Boom

        guarded = compose(Fallback(handler, bus=bus), breaker)(down)
        assert [guarded() for _ in range(4)] == ["cached"] * 4
        assert breaker.state is CircuitState.OPEN
        assert len(calls) == 2
        assert [type(e) for e in handler.errors] == [Boom, Boom, CircuitOpenError, CircuitOpenError]

    def test_inside_a_breaker_the_breaker_sees_successes(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """compose(breaker, Fallback): a replaced error is a success to the breaker."""
        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=bus)
        guarded = compose(breaker, Fallback(Handler(), bus=bus))(raiser(Boom()))
        assert [guarded() for _ in range(5)] == ["cached"] * 5
        assert breaker.state is CircuitState.CLOSED

    def test_retry_and_breaker_open_the_fallback_gets_the_rejection(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """compose(Fallback, Retry, breaker) with defaults: once open, the fallback answers at
        once with the rejection, and the function is not called."""
        breaker = CircuitBreaker(clock=clock, bus=bus)
        calls: list[int] = []
        handler = Handler()

        def down() -> NoReturn:
            calls.append(1)
            raise Boom

        guarded = compose(Fallback(handler, bus=bus), Retry(clock=clock, bus=bus), breaker)(down)
        assert guarded() == "cached"  # five tries, five failures: the breaker opens
        assert breaker.state is CircuitState.OPEN
        tried, now = len(calls), clock.monotonic()
        assert guarded() == "cached"
        assert len(calls) == tried
        assert clock.monotonic() == now  # no sleep: open_timeout is past max_delay
        assert type(handler.errors[-1]) is CircuitOpenError

    @pytest.mark.anyio
    async def test_async_orders(self, clock: ManualClock, bus: EventBus) -> None:
        """The same orders on asyncio and trio: outside the retry the last error, inside none
        retried; outside the breaker the rejection, inside no trip."""
        raised: list[Boom] = []

        async def flaky() -> NoReturn:
            await anyio.lowlevel.checkpoint()
            raised.append(Boom(len(raised)))
            raise raised[-1]

        handler = AsyncHandler()
        retry = Retry(attempts=3, jitter=None, clock=clock, bus=bus)
        assert await drive(clock, compose(Fallback(handler, bus=bus), retry)(flaky)) == "cached"
        assert len(raised) == 3
        assert handler.errors == [raised[-1]]

        raised.clear()
        retry = Retry(attempts=3, jitter=None, clock=clock, bus=bus)
        assert await drive(clock, compose(retry, Fallback(handler, bus=bus))(flaky)) == "cached"
        assert len(raised) == 1

        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=bus)
        outside = compose(Fallback(handler, bus=bus), breaker)(flaky)
        handler.errors.clear()
        assert [await outside() for _ in range(3)] == ["cached"] * 3
        assert [type(e) for e in handler.errors] == [Boom, Boom, CircuitOpenError]

        breaker = CircuitBreaker(failure_threshold=2, clock=clock, bus=bus)
        inside = compose(breaker, Fallback(handler, bus=bus))(flaky)
        assert [await inside() for _ in range(3)] == ["cached"] * 3
        assert breaker.state is CircuitState.CLOSED


class TestThreads:
    """One fallback, many threads: every call gets its own answer, every event is published."""

    def test_threads(self, bus: EventBus) -> None:
        """Eight threads, half their calls failing: each result is right, one event per failure."""
        threads_n, rounds = 8, 300
        used: list[FallbackUsed] = []
        bus.subscribe(FallbackUsed, used.append)
        barrier = threading.Barrier(threads_n, timeout=10)

        fallback = Fallback(lambda exc: -exc.args[0], bus=bus)

        @fallback
        def work(n: int) -> int:
            if n % 2:
                raise Boom(n)
            return n

        results: dict[int, list[int]] = {}

        def run(thread: int) -> None:
            barrier.wait()
            results[thread] = [work(thread * rounds + i) for i in range(rounds)]

        pool = [threading.Thread(target=run, args=(t,)) for t in range(threads_n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        for thread, got in results.items():
            base = thread * rounds
            assert got == [-(base + i) if i % 2 else base + i for i in range(rounds)]
        assert len(results) == threads_n
        assert len(used) == threads_n * rounds // 2
        assert fallback.stats().used == threads_n * rounds // 2
        assert sorted(e.error.args[0] for e in used) == sorted(
            n for n in range(threads_n * rounds) if n % 2
        )

    def test_threads_through_fallback_retry_breaker(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """Eight threads through compose(Fallback, Retry, breaker): each failing call is tried
        twice and answered, each success returned, and the breaker counts every try."""
        threads_n, rounds = 8, 100
        breaker = CircuitBreaker(failure_threshold=10**6, failure_rate_threshold=1.0, bus=bus)
        retry = Retry(attempts=2, base_delay=0, jitter=None, clock=clock, bus=bus)
        tries: list[int] = []
        barrier = threading.Barrier(threads_n, timeout=10)

        @compose(Fallback(lambda exc: -1, bus=bus), retry, breaker)
        def work(n: int) -> int:
            tries.append(n)  # list.append is atomic under the GIL
            if n % 3 == 0:
                raise Boom(n)
            return n

        results: dict[int, list[int]] = {}

        def run(thread: int) -> None:
            barrier.wait()
            results[thread] = [work(thread * rounds + i) for i in range(1, rounds + 1)]

        pool = [threading.Thread(target=run, args=(t,)) for t in range(threads_n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        for thread, got in results.items():
            numbers = range(thread * rounds + 1, thread * rounds + rounds + 1)
            assert got == [-1 if n % 3 == 0 else n for n in numbers]
        assert len(results) == threads_n
        failing = sum(1 for n in range(1, threads_n * rounds + 1) if n % 3 == 0)
        assert len(tries) == threads_n * rounds + failing
        assert breaker.state is CircuitState.CLOSED

    @pytest.mark.anyio
    async def test_worker_threads_from_async(self, bus: EventBus) -> None:
        """Sync calls in worker threads of an event loop, under one fallback and breaker."""
        breaker = CircuitBreaker(failure_threshold=10**6, bus=bus)
        guarded = compose(Fallback(Handler(), bus=bus), breaker)(raiser(Boom()))
        results: list[object] = []

        async def one() -> None:
            results.append(await anyio.to_thread.run_sync(guarded))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert results == ["cached"] * 20


@given(
    outcomes=st.lists(st.sampled_from(["ok", "boom", "other", "misuse"]), max_size=30),
    on=st.sampled_from([Boom, (Boom, Other), Exception, "predicate"]),
)
def test_model(outcomes: list[str], on: Any) -> None:
    """Any sequence of outcomes: each call returns, falls back or raises as a model says."""
    spec = (lambda exc: isinstance(exc, Boom)) if on == "predicate" else on
    matched = {"boom"} | ({"other"} if on in ((Boom, Other), Exception) else set())
    bus = EventBus()
    used: list[FallbackUsed] = []
    bus.subscribe(FallbackUsed, used.append)
    fallback = Fallback(lambda exc: ("fallback", type(exc).__name__), on=spec, bus=bus)
    errors = {"boom": Boom, "other": Other, "misuse": MisuseError}

    @fallback
    def run(outcome: str) -> object:
        if outcome == "ok":
            return "ok"
        raise errors[outcome]

    expected_events = 0
    for outcome in outcomes:
        if outcome == "ok":
            assert run(outcome) == "ok"
        elif outcome in matched:
            assert run(outcome) == ("fallback", errors[outcome].__name__)
            expected_events += 1
        else:
            with pytest.raises(errors[outcome]):
                run(outcome)
    assert len(used) == expected_events
