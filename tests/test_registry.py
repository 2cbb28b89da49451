"""The registry of live primitives: held weakly, the named ones, kinds, and the refusal of
two primitives of one kind under one name."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from resilio import (
    CircuitBreaker,
    EventBus,
    Fallback,
    LeakyBucket,
    ManualClock,
    Retry,
    RetryBudget,
    SessionManager,
    SlidingWindowBreaker,
    Timeout,
    TokenBucket,
    WorkerPool,
)
from resilio._registry import check_unique, is_named, kind_of, live, named, track

clock = ManualClock()
bus = EventBus()

# Each primitive class, built with the given name (None: no name= at all).
BUILDERS: dict[str, Callable[[str | None], Any]] = {
    "circuitbreaker": lambda name: CircuitBreaker(clock=clock, bus=bus, **_named(name)),
    "sliding": lambda name: SlidingWindowBreaker(clock=clock, bus=bus, **_named(name)),
    "token": lambda name: TokenBucket(1, 1, clock=clock, bus=bus, **_named(name)),
    "leaky": lambda name: LeakyBucket(1, 1, clock=clock, bus=bus, **_named(name)),
    "retry": lambda name: Retry(clock=clock, bus=bus, **_named(name)),
    "pool": lambda name: WorkerPool(bus=bus, **_named(name)),
    "sessions": lambda name: SessionManager(clock=clock, bus=bus, **_named(name)),
    "timeout": lambda name: Timeout(1.0, clock=clock, bus=bus, **_named(name)),
    "fallback": lambda name: Fallback(repr, clock=clock, bus=bus, **_named(name)),
}


def _named(name: str | None) -> dict[str, str]:
    return {} if name is None else {"name": name}


class TestLive:
    """track() and live(): held weakly."""

    def test_a_dropped_primitive_disappears(self) -> None:
        """A primitive is live while referenced, and gone after it is dropped."""
        timeout = Timeout(1.0, name="registry-drop")
        ref = weakref.ref(timeout)
        assert any(p is timeout for p in live())
        assert any(p is timeout for p in named())
        del timeout
        gc.collect()
        assert ref() is None
        assert not any(getattr(p, "name", None) == "registry-drop" for p in named())

    def test_tracking_from_threads(self) -> None:
        """Eight threads tracking at once lose nothing."""

        class Thing:
            """A trackable object."""

        made: list[Thing] = []
        lock = threading.Lock()

        def build() -> None:
            for _ in range(200):
                thing = Thing()
                track(thing)
                with lock:
                    made.append(thing)

        threads = [threading.Thread(target=build) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        alive = {id(p) for p in live()}
        assert all(id(thing) in alive for thing in made)
        assert len(made) == 1600


class TestNamed:
    """named(): only the primitives their users named."""

    @pytest.mark.parametrize("builder", sorted(BUILDERS))
    def test_named_only_when_given_a_name_of_its_own(self, builder: str) -> None:
        """No name=, or the class's own default, is not a name; anything else is."""
        build = BUILDERS[builder]
        assert is_named(build("orders"))
        unnamed = build(None)
        assert not is_named(unnamed)
        assert not is_named(build(unnamed.name))  # the default, spelt out

    def test_a_primitive_without_a_name(self) -> None:
        """A primitive that takes no name is never named."""
        assert not is_named(RetryBudget())

    def test_sorted_by_kind_and_name(self) -> None:
        """named() lists live named primitives by kind, then name; unnamed ones are left out."""
        kept = [
            Timeout(1.0, name="registry-b"),
            Fallback(repr, name="registry-z"),
            Timeout(1.0, name="registry-a"),
            Timeout(1.0),
        ]
        mine = [p for p in named() if p.name.startswith("registry-")]
        assert [(kind_of(p), p.name) for p in mine] == [
            ("fallback", "registry-z"),
            ("timeout", "registry-a"),
            ("timeout", "registry-b"),
        ]
        assert kept[3] not in named()


class TestKinds:
    """kind_of(): the metric family."""

    def test_families(self) -> None:
        """Both breakers are circuit breakers, both buckets rate limiters."""
        kinds = {name: kind_of(build("k")) for name, build in BUILDERS.items()}
        assert kinds == {
            "circuitbreaker": "circuitbreaker",
            "sliding": "circuitbreaker",
            "token": "ratelimiter",
            "leaky": "ratelimiter",
            "retry": "retry",
            "pool": "workerpool",
            "sessions": "sessionmanager",
            "timeout": "timeout",
            "fallback": "fallback",
        }
        assert kind_of(RetryBudget()) == "retrybudget"

    def test_subclasses_and_strangers(self) -> None:
        """A subclass is of its resilio parent's family; an unknown class is its own."""

        class Mine(CircuitBreaker):
            """A user's breaker."""

        class Gauge:
            """Not a resilio primitive."""

        class TokenBucketLookalike:
            """Named like a resilio class, but not one."""

        TokenBucketLookalike.__name__ = "TokenBucket"
        assert kind_of(Mine(clock=clock, bus=bus)) == "circuitbreaker"
        assert kind_of(Gauge()) == "gauge"
        assert kind_of(TokenBucketLookalike()) == "tokenbucket"


class TestUnique:
    """check_unique(): two primitives of one kind under one name are refused."""

    def test_same_kind_same_name(self) -> None:
        """A breaker and a sliding-window breaker both named 'db': a ValueError naming both."""
        first = CircuitBreaker(name="db", clock=clock, bus=bus)
        second = SlidingWindowBreaker(name="db", clock=clock, bus=bus)
        with pytest.raises(
            ValueError, match="two circuitbreaker primitives are named 'db'"
        ) as info:
            check_unique([first, Timeout(1.0, name="db"), second])
        assert repr(first) in str(info.value)
        assert repr(second) in str(info.value)

    def test_allowed(self) -> None:
        """Different kinds may share a name; one primitive listed twice is itself."""
        breaker = CircuitBreaker(name="db", clock=clock, bus=bus)
        bucket = TokenBucket(1, 1, name="db", clock=clock, bus=bus)
        check_unique([breaker, bucket, breaker, Timeout(1.0, name="db"), RetryBudget()])
        check_unique([])
