"""Keyed: one primitive per key, made once; LRU eviction; idle expiry; the guard decorator.

Time is a ManualClock; threads race where thread-safety is claimed (100,000 keys
under 8 threads); a hypothesis state machine runs the registry next to a reference
model built on an OrderedDict.
"""

from __future__ import annotations

import functools
import gc
import inspect
import random
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    EventBus,
    Fallback,
    Keyed,
    LeakyBucket,
    ManualClock,
    MisuseError,
    RateLimitExceeded,
    Retry,
    SlidingWindowBreaker,
    Timeout,
    TokenBucket,
    compose,
)

THREADS = 8


class Boom(Exception):
    """The failure the guarded functions raise."""


class Counting:
    """A factory that makes a Timeout per key and remembers every key it was called with."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self.lock = threading.Lock()

    def __call__(self, key: Any) -> Timeout:
        with self.lock:
            self.calls.append(key)
        return Timeout(1)


def breakers(clock: ManualClock, **kwargs: Any) -> Keyed[str, CircuitBreaker]:
    """A registry of breakers per host that open after two failures."""
    bus = EventBus()

    def make(host: str) -> CircuitBreaker:
        return CircuitBreaker(failure_threshold=2, name=f"db:{host}", clock=clock, bus=bus)

    return Keyed(make, clock=clock, **kwargs)


class TestRegistry:
    """Making, finding and dropping keys."""

    def test_factory_runs_once_per_key(self) -> None:
        """The first use of a key makes its primitive with factory(key); later uses return it."""
        factory = Counting()
        keyed = Keyed(factory)
        first = keyed["a"]
        assert keyed["a"] is first
        assert keyed["b"] is not first
        assert factory.calls == ["a", "b"]

    def test_typical_registry_of_breakers(self, clock: ManualClock) -> None:
        """A breaker per host: the factory names each after its key."""
        keyed = breakers(clock)
        assert keyed["primary"].name == "db:primary"
        assert keyed["replica"].name == "db:replica"
        assert keyed["primary"] is keyed["primary"]

    def test_looking_makes_nothing(self) -> None:
        """get, in, len, keys and iteration never make a key."""
        factory = Counting()
        keyed = Keyed(factory)
        assert keyed.get("a") is None
        assert "a" not in keyed
        assert len(keyed) == 0
        assert keyed.keys() == []
        assert list(keyed) == []
        assert factory.calls == []

    def test_iteration_yields_pairs_least_recently_used_first(self) -> None:
        """Iterating yields (key, primitive), least recently used first; keys() the same keys."""
        keyed = Keyed(Counting())
        a, b, c = keyed["a"], keyed["b"], keyed["c"]
        keyed["a"]
        assert list(keyed) == [("b", b), ("c", c), ("a", a)]
        assert keyed.keys() == ["b", "c", "a"]
        assert len(keyed) == 3
        assert keyed.get("b") is b
        assert "c" in keyed

    def test_looking_is_not_a_use(self) -> None:
        """get, in and iteration leave the order of use alone, so eviction is unchanged."""
        keyed = Keyed(Counting(), max_keys=2)
        keyed["a"]
        keyed["b"]
        keyed.get("a")
        assert "a" in keyed
        list(keyed)
        keyed["c"]
        assert keyed.keys() == ["b", "c"]

    def test_iteration_is_a_snapshot(self) -> None:
        """Using the registry while iterating over it changes nothing in the iteration."""
        keyed = Keyed(Counting(), max_keys=3)
        for key in "abc":
            keyed[key]
        seen = []
        for key, _ in keyed:
            seen.append(key)
            keyed[key + "!"]  # makes keys and evicts the ones being iterated over
        assert seen == ["a", "b", "c"]
        assert keyed.keys() == ["a!", "b!", "c!"]

    def test_pop(self) -> None:
        """pop drops a key and returns its primitive; the next use makes a fresh one."""
        factory = Counting()
        keyed = Keyed(factory)
        old = keyed["a"]
        assert keyed.pop("a") is old
        assert "a" not in keyed
        assert keyed.pop("a") is None
        assert keyed["a"] is not old
        assert factory.calls == ["a", "a"]

    def test_clear(self) -> None:
        """clear drops every key; each key's next use makes a fresh primitive."""
        keyed = Keyed(Counting())
        old = keyed["a"]
        keyed["b"]
        keyed.clear()
        assert len(keyed) == 0
        assert list(keyed) == []
        assert keyed["a"] is not old
        assert keyed.keys() == ["a"]

    def test_unhashable_key(self) -> None:
        """An unhashable key is the TypeError a dict raises, and nothing is made."""
        factory = Counting()
        keyed: Keyed[Any, Timeout] = Keyed(factory)
        with pytest.raises(TypeError, match="unhashable"):
            keyed[["a"]]
        assert factory.calls == []

    def test_repr(self, clock: ManualClock) -> None:
        """repr shows the keys held, the bound and the idle timeout."""
        keyed = Keyed(Counting(), max_keys=5)
        keyed["a"]
        assert repr(keyed) == "<Keyed 1/5 keys>"
        idle = Keyed(Counting(), idle_timeout=30, clock=clock)
        assert repr(idle) == "<Keyed 0/10000 keys, idle_timeout 30s>"

    def test_settings(self) -> None:
        """max_keys and idle_timeout read back; a timedelta reads back in seconds."""
        keyed = Keyed(Counting(), max_keys=7, idle_timeout=timedelta(minutes=2))
        assert keyed.max_keys == 7
        assert keyed.idle_timeout == 120.0
        assert Keyed(Counting()).max_keys == 10_000
        assert Keyed(Counting()).idle_timeout is None

    @pytest.mark.parametrize(
        "make",
        [
            CircuitBreaker,
            SlidingWindowBreaker,
            functools.partial(TokenBucket, 10, 5),
            functools.partial(LeakyBucket, 10, 5),
            Retry,
            functools.partial(Timeout, 1),
            functools.partial(Fallback, lambda exc: None),
            lambda: compose(Retry(), CircuitBreaker()),
        ],
        ids=lambda make: getattr(make, "__name__", None) or repr(make)[:30],
    )
    def test_every_primitive_is_accepted(self, make: Callable[[], Any]) -> None:
        """Whatever compose() takes, a factory may return."""
        keyed: Keyed[str, Any] = Keyed(lambda key: make())
        assert keyed["a"] is keyed["a"]


class TestEviction:
    """Beyond max_keys, the least recently used key goes first."""

    def test_least_recently_used_goes_first(self) -> None:
        """Using a key saves it; the one used least recently is evicted."""
        factory = Counting()
        keyed = Keyed(factory, max_keys=2)
        a = keyed["a"]
        keyed["b"]
        assert keyed["a"] is a  # a is now the most recently used
        keyed["c"]
        assert keyed.keys() == ["a", "c"]
        assert keyed["a"] is a
        keyed["b"]  # b was evicted: made again
        assert factory.calls == ["a", "b", "c", "b"]
        assert keyed.keys() == ["a", "b"]

    def test_evicted_primitive_keeps_working(self, clock: ManualClock) -> None:
        """An evicted key's primitive works for whoever holds it; the key's next use is fresh."""
        keyed = breakers(clock, max_keys=1)
        old = keyed["a"]
        for _ in range(2):
            with pytest.raises(Boom), old:
                raise Boom
        assert old.state is CircuitState.OPEN
        keyed["b"]  # evicts a
        with pytest.raises(CircuitOpenError):
            old.call(lambda: None)
        fresh = keyed["a"]
        assert fresh is not old
        assert fresh.state is CircuitState.CLOSED

    def test_lru_order_exact_with_100_000_keys(self) -> None:
        """100,000 keys through a registry of 1,000, used in a random pattern: the keys held
        and their order are exactly those of an OrderedDict kept in LRU order."""
        rng = random.Random(12)
        factory = Counting()
        keyed = Keyed(factory, max_keys=1_000)
        model: OrderedDict[int, None] = OrderedDict()
        made = 0
        for n in range(100_000):
            # mostly new keys, often a recent one, sometimes an old one
            key = n if rng.random() < 0.6 else rng.randrange(max(0, n - 1_500), n + 1)
            keyed[key]
            if key in model:
                model.move_to_end(key)
            else:
                made += 1
                model[key] = None
                if len(model) > 1_000:
                    model.popitem(last=False)
        assert keyed.keys() == list(model)
        assert len(factory.calls) == made

    def test_max_keys_one(self) -> None:
        """With max_keys=1 each new key replaces the last."""
        keyed = Keyed(Counting(), max_keys=1)
        keyed["a"]
        keyed["b"]
        assert keyed.keys() == ["b"]


class TestIdle:
    """Keys unused for idle_timeout are dropped, lazily."""

    def test_idle_key_is_dropped(self, clock: ManualClock) -> None:
        """A key unused for idle_timeout is gone: looking does not find it, using remakes it."""
        factory = Counting()
        keyed = Keyed(factory, idle_timeout=10, clock=clock)
        old = keyed["a"]
        clock.advance(9.5)
        assert "a" in keyed
        clock.advance(0.5)  # exactly idle_timeout after the last use
        assert "a" not in keyed
        assert keyed.get("a") is None
        assert len(keyed) == 0
        assert keyed["a"] is not old
        assert factory.calls == ["a", "a"]

    def test_use_keeps_a_key_alive(self, clock: ManualClock) -> None:
        """Each use restarts the key's idle time; looking does not."""
        keyed = Keyed(Counting(), idle_timeout=10, clock=clock)
        first = keyed["a"]
        for _ in range(5):
            clock.advance(6)
            assert keyed["a"] is first
        clock.advance(6)
        assert keyed.get("a") is first  # a look...
        clock.advance(4)
        assert keyed.get("a") is None  # ...did not count as a use

    def test_idle_key_is_remade_on_use_without_a_sweep(self, clock: ManualClock) -> None:
        """A key used after idling too long gets a fresh primitive, even with no look between."""
        keyed = Keyed(Counting(), idle_timeout=1, clock=clock)
        old = keyed["a"]
        clock.advance(1)
        assert keyed["a"] is not old

    def test_only_idle_keys_go(self, clock: ManualClock) -> None:
        """Keys used within idle_timeout stay; those idle longer are dropped, oldest first."""
        keyed = Keyed(Counting(), idle_timeout=timedelta(seconds=10), clock=clock)
        for key in "abcd":
            keyed[key]
            clock.advance(3)
        # now 12: a (used at 0) is idle for 10 s or more, b (at 3) not yet
        assert keyed.keys() == ["b", "c", "d"]
        assert keyed.pop("a") is None
        clock.advance(1)
        assert keyed.keys() == ["c", "d"]

    def test_sweep_on_creation(self, clock: ManualClock) -> None:
        """Making a key drops every key idle too long, without any look at the registry."""
        keyed = Keyed(Counting(), idle_timeout=5, clock=clock)
        for n in range(100):
            keyed[n]
        clock.advance(5)
        keyed["new"]
        assert len(keyed._entries) == 1  # dropped by the creation, not by len()

    def test_idle_and_max_keys_together(self, clock: ManualClock) -> None:
        """Idle keys go first; the least recently used beyond max_keys after them."""
        keyed = Keyed(Counting(), max_keys=2, idle_timeout=5, clock=clock)
        keyed["a"]
        clock.advance(5)
        keyed["b"]
        keyed["c"]
        assert keyed.keys() == ["b", "c"]


class TestFactory:
    """What the factory may return, and what happens when it fails."""

    def test_non_primitive_is_a_type_error(self) -> None:
        """A factory that returns something else is a TypeError naming it and the key."""
        keyed: Keyed[str, Any] = Keyed(lambda key: {"not": "a primitive"})
        with pytest.raises(TypeError, match=r"returned \{'not': 'a primitive'\} for the key 'x'"):
            keyed["x"]
        assert len(keyed) == 0

    def test_class_itself_is_refused(self) -> None:
        """Returning a primitive's class rather than an instance is refused too."""
        keyed: Keyed[str, Any] = Keyed(lambda key: CircuitBreaker)
        with pytest.raises(TypeError, match="CircuitBreaker"):
            keyed["x"]

    def test_coroutine_is_refused_without_a_warning(self) -> None:
        """A factory that returns a coroutine is refused; the coroutine is closed, not leaked."""

        async def make() -> Timeout:
            return Timeout(1)

        keyed: Keyed[str, Any] = Keyed(lambda key: make())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(TypeError, match="coroutine"):
                keyed["x"]
            gc.collect()

    def test_factory_error_stores_nothing(self) -> None:
        """A factory that raises: its error reaches the caller, and the next caller tries again."""
        calls = []

        def make(key: str) -> Timeout:
            calls.append(key)
            if len(calls) == 1:
                raise Boom(key)
            return Timeout(1)

        keyed = Keyed(make)
        with pytest.raises(Boom):
            keyed["a"]
        assert "a" not in keyed
        assert isinstance(keyed["a"], Timeout)
        assert calls == ["a", "a"]

    def test_factory_may_use_other_keys(self) -> None:
        """A factory may ask the same registry for another key."""
        keyed: Keyed[str, Any]

        def make(key: str) -> Any:
            if key == "child":
                return compose(keyed["parent-retry"], CircuitBreaker())
            return Retry()

        keyed = Keyed(make)
        assert isinstance(keyed["child"], type(compose(Retry())))
        assert "parent-retry" in keyed

    def test_factory_asking_for_its_own_key(self) -> None:
        """A factory that asks for the key it is making fails clearly instead of hanging."""
        keyed: Keyed[str, Any]
        keyed = Keyed(lambda key: keyed[key])
        with pytest.raises(RuntimeError, match="the key it is making"):
            keyed["a"]
        assert "a" not in keyed
        assert keyed._making == {}

    def test_interrupted_factory(self) -> None:
        """A BaseException in the factory stores nothing and frees the key for the next caller."""
        calls = []

        def make(key: str) -> Timeout:
            calls.append(key)
            if len(calls) == 1:
                raise KeyboardInterrupt
            return Timeout(1)

        keyed = Keyed(make)
        with pytest.raises(KeyboardInterrupt):
            keyed["a"]
        assert keyed._making == {}
        assert isinstance(keyed["a"], Timeout)


class TestConfiguration:
    """Bad configuration fails at construction, naming the parameter and the value."""

    @pytest.mark.parametrize(
        ("max_keys", "error", "message"),
        [
            (0, ValueError, "'max_keys' must be >= 1: 0"),
            (-5, ValueError, "'max_keys' must be >= 1: -5"),
            (1.5, TypeError, "'max_keys' must be an int, not float: 1.5"),
            (True, TypeError, "'max_keys' must be an int, not bool: True"),
            ("10", TypeError, "'max_keys' must be an int, not str: '10'"),
            (None, TypeError, "'max_keys' must be an int, not NoneType: None"),
        ],
    )
    def test_max_keys(self, max_keys: Any, error: type[Exception], message: str) -> None:
        """max_keys is an int of at least 1."""
        with pytest.raises(error) as info:
            Keyed(Counting(), max_keys=max_keys)
        assert str(info.value) == message

    @pytest.mark.parametrize(
        ("idle_timeout", "error", "message"),
        [
            (0, ValueError, "'idle_timeout' must be > 0: 0"),
            (-1, ValueError, "'idle_timeout' must be > 0: -1"),
            (timedelta(0), ValueError, "'idle_timeout' must be > 0: 0.0"),
            (float("nan"), ValueError, "'idle_timeout' must not be NaN: nan"),
            (float("inf"), ValueError, "'idle_timeout' must be finite: inf"),
            ("5", TypeError, "'idle_timeout' must be a number, not str: '5'"),
        ],
    )
    def test_idle_timeout(self, idle_timeout: Any, error: type[Exception], message: str) -> None:
        """idle_timeout is a positive, finite duration, or None."""
        with pytest.raises(error) as info:
            Keyed(Counting(), idle_timeout=idle_timeout)
        assert str(info.value) == message

    def test_factory_not_callable(self) -> None:
        """A factory that is not callable is refused, named."""
        with pytest.raises(TypeError, match="'factory' must be callable: 42"):
            Keyed(42)  # type: ignore[arg-type]

    def test_async_factory(self) -> None:
        """An async factory is refused: a key's primitive is made at once."""

        async def make(key: str) -> Timeout:
            return Timeout(1)

        with pytest.raises(TypeError, match="'factory' must be a plain function"):
            Keyed(make)  # type: ignore[type-var]
        with pytest.raises(TypeError, match="'factory' must be a plain function"):
            Keyed(functools.partial(make))  # type: ignore[type-var]

    def test_clock(self) -> None:
        """Something that is not a clock is refused."""
        with pytest.raises(TypeError, match="'clock'"):
            Keyed(Counting(), clock=object())  # type: ignore[arg-type]

    def test_key_fn(self) -> None:
        """guard() refuses a key_fn that is not callable, or is async."""
        keyed = Keyed(Counting())
        with pytest.raises(TypeError, match="'key_fn' must be callable: 'host'"):
            keyed.guard("host")  # type: ignore[arg-type]

        async def key(host: str) -> str:
            return host

        with pytest.raises(TypeError, match="'key_fn' must be a plain function"):
            keyed.guard(key)

    def test_decorating_what_cannot_be_guarded(self) -> None:
        """The decorator refuses a non-callable and a generator function, at decoration."""
        decorate = Keyed(Counting()).guard(lambda x: x)
        with pytest.raises(MisuseError, match="not 3"):
            decorate(3)  # type: ignore[arg-type]

        def numbers(x: int) -> Iterator[int]:
            yield x

        with pytest.raises(MisuseError, match="generators"):
            decorate(numbers)


class TestGuard:
    """keyed.guard(key_fn): each call runs through the primitive of its key."""

    def test_breaker_per_host(self, clock: ManualClock) -> None:
        """Failures on one host open its breaker only; the other host's calls go on."""
        keyed = breakers(clock)

        @keyed.guard(lambda host, path: host)
        def fetch(host: str, path: str) -> str:
            if host == "down":
                raise Boom(path)
            return f"{host}{path}"

        for _ in range(2):
            with pytest.raises(Boom):
                fetch("down", "/a")
        with pytest.raises(CircuitOpenError) as info:
            fetch("down", "/a")
        assert info.value.name == "db:down"
        assert fetch("up", "/b") == "up/b"
        assert keyed["down"].state is CircuitState.OPEN
        assert keyed["up"].state is CircuitState.CLOSED

    def test_rate_limit_per_client(self, clock: ManualClock) -> None:
        """A bucket per client: one client's burst does not use up another's."""
        keyed = Keyed(
            lambda client: TokenBucket(1, 2, reject=True, clock=clock, bus=EventBus()),
        )

        @keyed.guard(lambda client, **_: client)
        def handle(client: str, *, item: int) -> int:
            return item

        assert [handle("alice", item=n) for n in range(2)] == [0, 1]
        with pytest.raises(RateLimitExceeded):
            handle("alice", item=2)
        assert handle("bob", item=3) == 3
        clock.advance(1)
        assert handle("alice", item=4) == 4

    def test_key_fn_gets_args_and_kwargs(self) -> None:
        """key_fn is called with the call's positional and keyword arguments."""
        seen = []

        def key_fn(*args: Any, **kwargs: Any) -> str:
            seen.append((args, kwargs))
            return "k"

        @Keyed(Counting()).guard(key_fn)
        async def work(a: int, b: int = 0, *, c: int) -> int:
            return a + b + c

        assert anyio.run(functools.partial(work, 1, b=2, c=3)) == 6
        assert seen == [((1,), {"b": 2, "c": 3})]

    def test_signature_kept(self) -> None:
        """The decorated function keeps its name, signature and colour."""
        keyed = Keyed(Counting())
        decorate = keyed.guard(lambda *args, **kwargs: "k")

        def plain(host: str, *, retries: int = 1) -> str:
            """Fetch."""
            return host

        async def coloured(host: str) -> str:
            return host

        guarded = decorate(plain)
        assert guarded.__name__ == "plain"
        assert guarded.__doc__ == "Fetch."
        assert inspect.signature(guarded) == inspect.signature(plain)
        assert inspect.iscoroutinefunction(decorate(coloured))
        assert not inspect.iscoroutinefunction(guarded)

    def test_each_key_wraps_once(self) -> None:
        """A key's primitive wraps the function once, on the key's first call, not per call."""
        wraps: list[str] = []

        class Bucket(TokenBucket):
            def __call__(self, fn: Any, /) -> Any:
                wraps.append(self.name)
                return super().__call__(fn)

        keyed = Keyed(lambda key: Bucket(1e9, 1e9, name=key))

        @keyed.guard(lambda key: key)
        def work(key: str) -> str:
            return key

        @keyed.guard(lambda key: key)
        def other(key: str) -> str:
            return key * 2

        for _ in range(3):
            assert work("a") == "a"
            assert work("b") == "b"
            assert other("a") == "aa"
        assert sorted(wraps) == ["a", "a", "b"]

    def test_evicted_key_is_made_and_wrapped_again(self, clock: ManualClock) -> None:
        """After its key was evicted, a call gets a fresh primitive and wraps it."""
        keyed = breakers(clock, max_keys=1)

        @keyed.guard(lambda host: host)
        def fetch(host: str) -> str:
            if host == "down":
                raise Boom
            return host

        for _ in range(2):
            with pytest.raises(Boom):
                fetch("down")
        with pytest.raises(CircuitOpenError):
            fetch("down")
        assert fetch("up") == "up"  # evicts "down"
        with pytest.raises(Boom):  # a fresh breaker: closed, so the call runs
            fetch("down")

    def test_idle_key_through_the_guard(self, clock: ManualClock) -> None:
        """The guard drops idle keys as keyed[key] does, and keeps used ones."""
        keyed = breakers(clock, idle_timeout=10)

        @keyed.guard(lambda host: host)
        def fetch(host: str) -> str:
            raise Boom

        for _ in range(2):
            with pytest.raises(Boom):
                fetch("a")
        clock.advance(5)
        with pytest.raises(CircuitOpenError):
            fetch("a")  # a rejection is a use too
        clock.advance(10)
        with pytest.raises(Boom):  # idle for 10 s: a fresh, closed breaker
            fetch("a")

    def test_key_fn_error_propagates(self) -> None:
        """An error in key_fn reaches the caller; no key is made and the function never runs."""
        factory = Counting()
        ran = []

        @Keyed(factory).guard(lambda host: {"a": 1}[host])
        def fetch(host: str) -> None:
            ran.append(host)

        with pytest.raises(KeyError):
            fetch("b")
        assert factory.calls == []
        assert ran == []

    def test_key_error_from_the_function(self) -> None:
        """A KeyError raised by the guarded function is the caller's, not a missing key."""
        factory = Counting()

        @Keyed(lambda key: TokenBucket(1e9, 1e9)).guard(lambda key: key)
        def lookup(key: str) -> int:
            return {"a": 1}[key]

        assert lookup("a") == 1
        with pytest.raises(KeyError, match="'b'"):
            lookup("b")
        assert factory.calls == []

    def test_retry_per_key(self, clock: ManualClock) -> None:
        """A Retry per key, cached per key: each call still has its own tries."""
        keyed = Keyed(lambda key: Retry(attempts=3, clock=clock, bus=EventBus()))
        tries: list[str] = []

        @keyed.guard(lambda key: key)
        def flaky(key: str) -> str:
            tries.append(key)
            if len(tries) % 3:
                raise Boom
            return key

        assert flaky("a") == "a"
        assert flaky("b") == "b"
        assert tries == ["a"] * 3 + ["b"] * 3

    def test_fallback_per_key(self) -> None:
        """A Fallback per key replaces the error with the key's own value."""
        keyed = Keyed(lambda key: Fallback(lambda exc: f"cached {key}", bus=EventBus()))

        @keyed.guard(lambda key: key)
        def fetch(key: str) -> str:
            raise Boom

        assert fetch("a") == "cached a"

    def test_timeout_on_a_plain_function(self) -> None:
        """A primitive that cannot guard the function (a Timeout on a def) says so on the call."""

        @Keyed(lambda key: Timeout(1)).guard(lambda key: key)
        def work(key: str) -> str:
            return key

        with pytest.raises(TypeError, match="Timeout cancels async calls only"):
            work("a")

    @pytest.mark.anyio
    async def test_async_breaker_per_host(self, clock: ManualClock) -> None:
        """On asyncio and trio: the failing host's breaker opens; the other's calls go on."""
        keyed = breakers(clock)

        @keyed.guard(lambda host: host)
        async def fetch(host: str) -> str:
            await anyio.lowlevel.checkpoint()
            if host == "down":
                raise Boom
            return host

        for _ in range(2):
            with pytest.raises(Boom):
                await fetch("down")
        with pytest.raises(CircuitOpenError):
            await fetch("down")
        assert await fetch("up") == "up"

    @pytest.mark.anyio
    async def test_async_timeout_per_key(self, clock: ManualClock) -> None:
        """A Timeout per key on an async def, on asyncio and trio, on the ManualClock."""
        keyed = Keyed(lambda key: Timeout(key, clock=clock))

        @keyed.guard(lambda seconds: seconds)
        async def wait(seconds: float) -> None:
            await clock.sleep_async(60)

        async def advance() -> None:
            await anyio.wait_all_tasks_blocked()
            clock.advance(5)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(advance)
            with pytest.raises(TimeoutError, match="after 5s"):
                await wait(5)

    @pytest.mark.anyio
    async def test_async_bucket_waits(self, clock: ManualClock) -> None:
        """A waiting bucket per client on asyncio and trio: the second call waits for a token."""
        keyed = Keyed(lambda client: TokenBucket(1, 1, clock=clock, bus=EventBus()))
        done: list[str] = []

        @keyed.guard(lambda client: client)
        async def handle(client: str) -> None:
            done.append(client)

        await handle("alice")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(handle, "alice")
            await anyio.wait_all_tasks_blocked()
            await handle("bob")  # bob's bucket is full: no wait
            assert done == ["alice", "bob"]
            clock.advance(1)
        assert done == ["alice", "bob", "alice"]


class TestThreads:
    """Many threads at once: each key made once, every thread handed the same primitive."""

    def _run(self, work: Callable[[int], None]) -> None:
        barrier = threading.Barrier(THREADS)
        errors: list[BaseException] = []

        def run(n: int) -> None:
            barrier.wait()
            try:
                work(n)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    def test_100_000_keys_under_8_threads(self) -> None:
        """8 threads use the same 100,000 keys in different orders: the factory runs exactly
        once per key, and every thread gets the very same primitive for a key."""
        factory = Counting()
        keyed = Keyed(factory, max_keys=100_000)
        keys = list(range(100_000))
        seen: list[dict[int, Timeout]] = [{} for _ in range(THREADS)]

        def work(n: int) -> None:
            order = keys[n * 7_919 :] + keys[: n * 7_919]  # each thread starts elsewhere
            if n % 2:
                order.reverse()
            mine = seen[n]
            for key in order:
                mine[key] = keyed[key]

        self._run(work)
        assert len(factory.calls) == 100_000
        assert sorted(factory.calls) == keys  # type: ignore[type-var]
        assert len(keyed) == 100_000
        held = dict(keyed)
        for mine in seen:
            assert len(mine) == 100_000
            assert all(mine[key] is held[key] for key in keys)

    def test_race_for_one_new_key(self) -> None:
        """8 threads ask for the same new key while its factory is slow: one factory call,
        one primitive for all of them."""
        factory_calls: list[str] = []

        def slow(key: str) -> Timeout:
            factory_calls.append(key)
            time.sleep(0.002)  # the others arrive meanwhile
            return Timeout(1)

        keyed = Keyed(slow)
        for round_ in range(10):
            got: list[Timeout] = []

            def work(n: int, key: str = f"k{round_}", got: list[Timeout] = got) -> None:
                got.append(keyed[key])

            self._run(work)
            assert len(got) == THREADS
            assert all(primitive is got[0] for primitive in got)
        assert factory_calls == [f"k{round_}" for round_ in range(10)]

    def test_failing_factory_under_threads(self) -> None:
        """When the factory fails for the thread that ran it, the others waiting for the key
        try again, and the key ends up made once."""
        calls: list[int] = []
        lock = threading.Lock()

        def make(key: str) -> Timeout:
            with lock:
                calls.append(1)
                first = len(calls) == 1
            time.sleep(0.002)
            if first:
                raise Boom
            return Timeout(1)

        keyed = Keyed(make)
        failures: list[BaseException] = []
        got: list[Timeout] = []

        def work(n: int) -> None:
            try:
                got.append(keyed["k"])
            except Boom as exc:
                failures.append(exc)

        self._run(work)
        assert len(failures) == 1
        assert len(calls) == 2
        assert len(got) == THREADS - 1
        assert all(primitive is got[0] for primitive in got)

    def test_factory_runs_outside_the_lock(self) -> None:
        """A factory still running holds up only its own key: another thread makes and uses
        other keys meanwhile (this would hang if the factory ran under the lock)."""
        other_made = threading.Event()
        keyed: Keyed[str, Timeout]

        def make(key: str) -> Timeout:
            if key == "slow":
                assert other_made.wait(timeout=10), "the other key could not be made"
            return Timeout(1)

        keyed = Keyed(make)

        def other() -> None:
            keyed["fast"]
            assert len(keyed) == 1  # "slow" is not there while its factory runs
            other_made.set()

        thread = threading.Thread(target=other)
        thread.start()
        keyed["slow"]
        thread.join()
        assert other_made.is_set()
        assert sorted(keyed.keys()) == ["fast", "slow"]

    def test_iterating_while_others_use_it(self) -> None:
        """Iterating, keys(), len() and get() from one thread while 7 others use, make and
        evict keys: never an error, and every snapshot is consistent."""
        keyed = Keyed(Counting(), max_keys=500)
        stop = threading.Event()
        snapshots: list[int] = []

        def work(n: int) -> None:
            if n == 0:
                try:
                    for _ in range(300):
                        pairs = list(keyed)
                        assert len({key for key, _ in pairs}) == len(pairs) <= 500
                        snapshots.append(len(pairs))
                        keyed.keys()
                        len(keyed)
                        keyed.get(3)
                finally:
                    stop.set()
                return
            rng = random.Random(n)
            span = 300 if n % 2 else 700  # keys in use, moved without the lock; or churn
            while not stop.is_set():
                keyed[rng.randrange(span)]

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often, inside the snapshots too
        try:
            self._run(work)
        finally:
            sys.setswitchinterval(interval)
        assert len(snapshots) == 300

    def test_eviction_under_threads(self) -> None:
        """8 threads over 20,000 keys through a registry of 100: never more than 100 keys,
        every key held is one the factory made for it, and each thread gets a primitive
        made for the key it asked for."""
        made: dict[int, int] = {}
        lock = threading.Lock()

        def make(key: int) -> Timeout:
            primitive = Timeout(1)
            with lock:
                made[id(primitive)] = key
            return primitive

        keyed = Keyed(make, max_keys=100)
        sizes: list[int] = []
        wrong: list[tuple[int, Timeout]] = []
        keep: list[Timeout] = []  # keeps ids unique

        def work(n: int) -> None:
            rng = random.Random(n)
            for _ in range(20_000):
                key = rng.randrange(150)
                primitive = keyed[key]
                keep.append(primitive)
                if made[id(primitive)] != key:  # pragma: no cover - the failure
                    wrong.append((key, primitive))
            sizes.append(len(keyed._entries))

        self._run(work)
        assert wrong == []
        assert max(sizes) <= 100
        assert len(keyed) <= 100
        assert all(made[id(primitive)] == key for key, primitive in keyed)
        assert len(set(keyed.keys())) == len(keyed)

    def test_guard_under_threads(self, clock: ManualClock) -> None:
        """The decorator from 8 threads: each key's bucket admits exactly its capacity."""
        keyed = Keyed(lambda key: TokenBucket(1e-9, 500, reject=True, clock=clock, bus=EventBus()))
        admitted = [0] * 10
        refused = [0] * 10
        lock = threading.Lock()

        @keyed.guard(lambda key: key)
        def work(key: int) -> None:
            with lock:
                admitted[key] += 1

        def run(n: int) -> None:
            for i in range(1_000):
                try:
                    work(i % 10)
                except RateLimitExceeded:  # noqa: PERF203 - the refusals are counted
                    with lock:
                        refused[i % 10] += 1

        self._run(run)
        assert admitted == [500] * 10
        assert refused == [300] * 10

    def test_memory_per_key(self) -> None:
        """The registry itself holds 100,000 keys in under 200 bytes a key (with no idle
        timeout; under 224 with one, for the time of last use), the keys and the
        primitive not counted."""
        shared = Timeout(1)
        keys = [f"client-{n}" for n in range(100_000)]
        for idle_timeout, bound in ((None, 200), (60, 224)):
            gc.collect()
            tracemalloc.start()
            try:
                keyed = Keyed(lambda key: shared, max_keys=100_000, idle_timeout=idle_timeout)
                for key in keys:
                    keyed[key]
                size, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert len(keyed) == 100_000
            assert size / len(keys) < bound, (idle_timeout, size / len(keys))


LOCKED_SCENARIO = """
import sys, threading
sys._is_gil_enabled = lambda: False  # what a free-threaded build says
from resilio import Keyed, ManualClock, Timeout, TokenBucket, RateLimitExceeded
import resilio._keyed
assert not resilio._keyed._LOCK_FREE

calls = []
keyed = Keyed(lambda key: calls.append(key) or Timeout(1), max_keys=2)
a = keyed["a"]; keyed["b"]; assert keyed["a"] is a; keyed["c"]
assert keyed.keys() == ["a", "c"], keyed.keys()

clock = ManualClock()
idle = Keyed(lambda key: Timeout(1), idle_timeout=5, clock=clock)
old = idle["x"]; clock.advance(5); assert idle["x"] is not old

limits = Keyed(lambda key: TokenBucket(1e-9, 2, reject=True, clock=clock))
@limits.guard(lambda client: client)
def handle(client):
    return client
assert [handle("a"), handle("a"), handle("b")] == ["a", "a", "b"]
try:
    handle("a")
except RateLimitExceeded:
    pass
else:
    raise AssertionError("not limited")

made = []
shared = Keyed(lambda key: made.append(key) or Timeout(1), max_keys=20_000)
def work(n):
    for key in range(20_000):
        shared[(key * (n + 1)) % 20_000]
threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
assert sorted(made) == list(range(20_000)), len(made)
print("ok")
"""


def test_locked_path_where_the_gil_is_disabled() -> None:
    """Where the GIL is disabled every use takes the lock: the same registry, LRU order, idle
    keys, decorator and one factory call per key under 8 threads."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", LOCKED_SCENARIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


# -- the reference model -------------------------------------------------------------

KEYS = st.integers(min_value=0, max_value=5)


class KeyedMachine(RuleBasedStateMachine):
    """Keyed next to an OrderedDict kept in order of use, with the time of each use."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.made: list[tuple[int, Timeout]] = []
        self.model: OrderedDict[int, tuple[Timeout, float]] = OrderedDict()
        self.keyed: Keyed[int, Timeout] = Keyed(self.make)
        self.max_keys = 10_000
        self.idle: float | None = None

    def make(self, key: int) -> Timeout:
        primitive = Timeout(1)
        self.made.append((key, primitive))
        return primitive

    @initialize(
        max_keys=st.integers(min_value=1, max_value=5),
        idle=st.sampled_from([None, 1.0, 2.5]),
    )
    def build(self, max_keys: int, idle: float | None) -> None:
        self.keyed = Keyed(self.make, max_keys=max_keys, idle_timeout=idle, clock=self.clock)
        self.max_keys, self.idle = max_keys, idle

    def expired(self, used: float) -> bool:
        return self.idle is not None and self.clock.monotonic() - used >= self.idle

    def sweep(self) -> None:
        """What every look at the registry does first: drop the idle keys."""
        while self.model and self.expired(next(iter(self.model.values()))[1]):
            self.model.popitem(last=False)

    @rule(key=KEYS)
    def use(self, key: int) -> None:
        now = self.clock.monotonic()
        before = len(self.made)
        primitive = self.keyed[key]
        entry = self.model.get(key)
        if entry is not None and not self.expired(entry[1]):
            assert primitive is entry[0]
            assert len(self.made) == before
            self.model[key] = (primitive, now)
            self.model.move_to_end(key)
            return
        assert self.made[before:] == [(key, primitive)]
        self.model.pop(key, None)
        self.model[key] = (primitive, now)
        self.sweep()
        while len(self.model) > self.max_keys:
            self.model.popitem(last=False)

    @rule(key=KEYS)
    def get(self, key: int) -> None:
        self.sweep()
        entry = self.model.get(key)
        assert self.keyed.get(key) is (None if entry is None else entry[0])
        assert (key in self.keyed) == (entry is not None)

    @rule(key=KEYS)
    def pop(self, key: int) -> None:
        self.sweep()
        entry = self.model.pop(key, None)
        assert self.keyed.pop(key) is (None if entry is None else entry[0])

    @rule()
    def clear(self) -> None:
        self.keyed.clear()
        self.model.clear()

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5, 0.25]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_keys_in_the_same_order(self) -> None:
        self.sweep()
        assert list(self.keyed) == [(key, entry[0]) for key, entry in self.model.items()]
        assert len(self.keyed) == len(self.model) <= self.max_keys


TestKeyedModel = KeyedMachine.TestCase
TestKeyedModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
