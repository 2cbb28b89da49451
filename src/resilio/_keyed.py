"""Keyed: one primitive per key, made on first use, least recently used evicted first.

The registry is one `collections.OrderedDict` from key to a small entry (the
primitive, when it was last used, and the wrappers `Keyed.guard` made for it), kept
in order of use: a use moves its key to the end, so the least recently used key is
always first. Evicting it is ``popitem(last=False)``, O(1); and since the order of use
is also the order of idleness, the keys idle past ``idle_timeout`` sit together at the
front, where each creation and each look at the whole registry (``len``, iteration)
drops them, O(1) amortised: each key is dropped once. Nothing runs in the background.

**The fast path takes no lock.** Using a key that exists is ``entries[key]`` then
``entries.move_to_end(key)``: with the GIL each is one C call that runs no Python code
for keys with built-in hashing and equality (str, int, bytes, tuples of them...), so
each is atomic, and a key evicted between the two raises `KeyError`, which sends the
call to the locked path, as a missing key does. The locked path makes a missing key's
primitive once: the first caller registers the key as being made, runs the factory
*outside* the lock (a slow factory holds up only the callers of its own key), and
stores the result; the other callers of that key wait for it and share it. On a
free-threaded build (the GIL disabled) the C `OrderedDict` has not been safe to use
from several threads at once without a lock (CPython gh-125996, gh-151627), so there,
as on other Python implementations, every use takes the lock.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from datetime import timedelta
from threading import get_ident
from typing import Any, Generic, ParamSpec

from typing_extensions import TypeVar

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, check_clock
from ._compose import Composed, Timeout
from ._fallback import Fallback
from ._guard import Guard, is_async_callable
from ._retry import Retry, check_callable

P = ParamSpec("P")
T = TypeVar("T")
# A factory written as a lambda has no annotated key type: K then defaults to Any.
K = TypeVar("K", bound=Hashable, default=Any)
V = TypeVar(
    "V",
    bound="Guard | Retry | Timeout | Composed | Fallback[Any]",
    default="Guard | Retry | Timeout | Composed | Fallback[Any]",
)

# What a factory may return: anything compose() takes.
_PRIMITIVES = (Guard, Retry, Timeout, Composed, Fallback)

# Whether the lock-free fast path may be used (see the module docstring): on CPython
# with the GIL, whose C OrderedDict it relies on; elsewhere every use takes the lock.
_LOCK_FREE: bool = (
    sys.implementation.name == "cpython" and getattr(sys, "_is_gil_enabled", lambda: True)()
)


class _Entry(Generic[V]):
    """A key's primitive, when the key was last used, and its wrapped functions."""

    __slots__ = ("primitive", "used", "wrappers")

    def __init__(self, primitive: V, used: float) -> None:
        self.primitive = primitive
        self.used = used  # 0.0 when there is no idle timeout: nobody reads it
        # One wrapper per function decorated by Keyed.guard, made on its first call
        # with this key: {the decoration's token: primitive(fn)}.
        self.wrappers: dict[object, Callable[..., Any]] | None = None


class Keyed(Generic[K, V]):
    """One primitive per key, made on first use: a breaker per host, a limit per client.

    ``keyed[key]`` returns the key's primitive, making it with ``factory(key)`` the
    first time. The factory runs once per key even when many threads ask for a new key
    at once: they all get the same primitive. A factory that raises stores nothing;
    its error reaches the caller that ran it, and the next caller tries again.

    The registry holds at most ``max_keys`` keys: making one more evicts the least
    recently used key, in O(1). With ``idle_timeout``, a key unused for that long is
    dropped too (lazily, with no background task). A dropped key's primitive keeps
    working for whoever still holds it, and the key's next use makes a fresh one: a
    fresh breaker starts closed, a fresh bucket starts full. Size ``max_keys`` above
    the number of keys in use at once, so that live keys are not evicted.

    `guard` is a decorator that picks the primitive from the call's arguments::

        breakers = Keyed(lambda host: CircuitBreaker(name=f"api:{host}"))

        @breakers.guard(lambda host, path: host)
        def fetch(host: str, path: str) -> bytes: ...

    `get`, ``in``, ``len`` and iteration (``(key, primitive)`` pairs, least recently
    used first, from a snapshot) look without making or using a key; `pop` and
    `clear` drop keys. Every method is safe to call from many threads, tasks and event
    loops at once.

    Args:
        factory: ``(key) -> primitive``, a plain function that makes a key's
            primitive: a breaker, a bucket, a [`Retry`][resilio.Retry], a
            [`Timeout`][resilio.Timeout], a [`Fallback`][resilio.Fallback] or a
            [`compose`][resilio.compose]d policy. Keep it quick: callers of the same
            new key wait for it.
        max_keys: The most keys held; the least recently used beyond it are evicted.
        idle_timeout: Seconds (or a `datetime.timedelta`) after its last use when a
            key is dropped; ``None`` keeps keys until they are evicted.
        clock: Where time comes from, for ``idle_timeout``.

    Raises:
        TypeError: ``factory`` is not callable or is async, ``max_keys`` is not an
            int, ``idle_timeout`` is not a number, or ``clock`` is not a clock.
        ValueError: ``max_keys`` is below 1, or ``idle_timeout`` is not above 0.
    """

    __slots__ = (
        "__weakref__",
        "_entries",
        "_factory",
        "_idle",
        "_lock",
        "_making",
        "_max_keys",
        "_move_to_end",
        "_now",
    )

    def __init__(
        self,
        factory: Callable[[K], V],
        *,
        max_keys: int = 10_000,
        idle_timeout: float | timedelta | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _validate.callable_("factory", factory)
        if is_async_callable(factory):
            msg = (
                f"'factory' must be a plain function, not an async one: {factory!r}; "
                "a key's primitive is made at once, on the key's first use"
            )
            raise TypeError(msg)
        self._factory = factory
        self._max_keys = _validate.integer("max_keys", max_keys, ge=1)
        self._idle = _validate.optional_duration("idle_timeout", idle_timeout, gt=0)
        self._now = check_clock(clock).monotonic
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._move_to_end = self._entries.move_to_end
        self._lock = threading.Lock()
        # The keys whose factory is running: key -> (a lock held until it is done, the
        # thread running it).
        self._making: dict[K, tuple[threading.Lock, int]] = {}

    @property
    def max_keys(self) -> int:
        """The most keys held at once."""
        return self._max_keys

    @property
    def idle_timeout(self) -> float | None:
        """Seconds after its last use when a key is dropped, or ``None``."""
        return self._idle

    # -- using a key ----------------------------------------------------------------

    if _LOCK_FREE:

        def __getitem__(self, key: K) -> V:
            """The key's primitive, made by the factory on the key's first use.

            Raises:
                TypeError: The factory returned something that is not a primitive.
                RuntimeError: The factory asked for the key it is making.
            """
            try:
                entry = self._entries[key]
                self._move_to_end(key)
            except KeyError:
                return self._enter(key).primitive
            if self._idle:  # never 0: a truth test is the cheapest check here
                now = self._now()
                if now - entry.used >= self._idle:
                    return self._enter(key).primitive
                entry.used = now
            return entry.primitive

    else:  # pragma: no cover - free-threaded builds only

        def __getitem__(self, key: K) -> V:
            """The key's primitive, made by the factory on the key's first use.

            Raises:
                TypeError: The factory returned something that is not a primitive.
                RuntimeError: The factory asked for the key it is making.
            """
            return self._enter(key).primitive

    def _enter(self, key: K) -> _Entry[V]:
        """The locked path of a use: the key's live entry, made if need be."""
        me = get_ident()
        while True:
            with self._lock:
                entries = self._entries
                entry = entries.get(key)
                idle = self._idle
                now = 0.0 if idle is None else self._now()
                if entry is not None:
                    if idle is None or now - entry.used < idle:
                        entries.move_to_end(key)
                        entry.used = now
                        return entry
                    del entries[key]  # idle too long: that primitive's life is over
                making = self._making.get(key)
                if making is None:
                    done = threading.Lock()
                    done.acquire()
                    self._making[key] = (done, me)
                    break
            done, thread = making
            if thread == me:
                msg = f"the factory asked for {key!r}, the key it is making"
                raise RuntimeError(msg)
            with done:  # wait for the maker; then the key is there, or we try again
                pass
        entry = None
        dropped: list[_Entry[V]] = []
        try:
            entry = _Entry(self._make(key), 0.0 if idle is None else self._now())
        finally:
            with self._lock:
                del self._making[key]
                if entry is not None:
                    entries[key] = entry
                    self._trim(dropped)
            done.release()
        # `dropped` goes here, outside the lock: whatever freeing a primitive runs
        # cannot deadlock on it.
        return entry

    def _make(self, key: K) -> V:
        primitive = self._factory(key)
        if not isinstance(primitive, _PRIMITIVES):
            if inspect.iscoroutine(primitive):
                primitive.close()  # an async function's: never awaited, without a warning
            msg = (
                f"the factory returned {primitive!r} for the key {key!r}; it must return "
                "a resilio primitive: a breaker, a bucket, a Retry, a Timeout, a Fallback "
                "or a composed policy"
            )
            raise TypeError(msg)
        return primitive

    def _trim(self, dropped: list[_Entry[V]]) -> None:
        """Drop (into *dropped*) the keys idle too long and those beyond max_keys; locked."""
        entries = self._entries
        idle = self._idle
        if idle is not None:
            now = self._now()
            while entries:
                # Under the lock nobody else removes a key, but lock-free users may
                # move this one to the end meanwhile: delete it by key, not popitem.
                key, entry = next(iter(entries.items()))
                if now - entry.used < idle:
                    break
                del entries[key]
                dropped.append(entry)
        while len(entries) > self._max_keys:
            dropped.append(entries.popitem(last=False)[1])

    # -- looking without using --------------------------------------------------------

    def get(self, key: K) -> V | None:
        """The key's primitive, or ``None``; it neither makes the key nor counts as a use."""
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            entry = self._entries.get(key)
        return None if entry is None else entry.primitive

    def __contains__(self, key: object) -> bool:
        """Whether the key has a primitive now; not a use of the key."""
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            return key in self._entries

    def __len__(self) -> int:
        """The number of keys held (keys idle past ``idle_timeout`` are not)."""
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            return len(self._entries)

    def __iter__(self) -> Iterator[tuple[K, V]]:
        """``(key, primitive)`` pairs, least recently used first, from a snapshot.

        Other threads may use the registry meanwhile: the snapshot does not change.
        """
        return iter(self._snapshot())

    def keys(self) -> list[K]:
        """The keys held, least recently used first (a snapshot)."""
        return [key for key, _ in self._snapshot()]

    def _snapshot(self) -> list[tuple[K, V]]:
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            # list() copies in one C call; a Python loop over the items could see a
            # lock-free user move a key ("OrderedDict mutated during iteration").
            items = list(self._entries.items())
        return [(key, entry.primitive) for key, entry in items]

    # -- dropping keys ----------------------------------------------------------------

    def pop(self, key: K) -> V | None:
        """Drop the key; return its primitive, or ``None`` when it had none.

        Its next use makes a fresh primitive. Whoever holds the old one may keep using it.
        """
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            entry = self._entries.pop(key, None)
        return None if entry is None else entry.primitive

    def clear(self) -> None:
        """Drop every key; each key's next use makes a fresh primitive."""
        with self._lock:
            dropped = list(self._entries.values())
            self._entries.clear()
        del dropped  # the primitives are freed here, outside the lock

    # -- the decorator ------------------------------------------------------------------

    def guard(self, key_fn: Callable[..., K]) -> Callable[[Callable[P, T]], Callable[P, T]]:
        """A decorator that runs each call through the primitive of its key.

        ``key_fn`` is called with the call's arguments, as ``key_fn(*args, **kwargs)``,
        and returns the key; the call then runs through ``self[key]`` as if that
        primitive decorated the function. Works on ``def`` and ``async def`` (the
        signature is kept). Each key's primitive wraps the function once, on the
        key's first call, and keeps the wrapper while the key lives.

        Args:
            key_fn: A plain function of the decorated function's arguments that
                returns the key.

        Raises:
            TypeError: ``key_fn`` is not callable, or is async; the decorated object
                is not callable, or is a generator function (a
                [`MisuseError`][resilio.MisuseError]).
        """
        _validate.callable_("key_fn", key_fn)
        if is_async_callable(key_fn):
            msg = f"'key_fn' must be a plain function that returns the key, not async: {key_fn!r}"
            raise TypeError(msg)

        def decorate(fn: Callable[P, T], /) -> Callable[P, T]:
            check_callable(fn, owner="Keyed.guard")
            if is_async_callable(fn):
                return self._guard_async(key_fn, fn)  # type: ignore[arg-type,return-value]
            return self._guard_sync(key_fn, fn)

        return decorate

    def _wrapper(
        self, entry: _Entry[V], token: object, fn: Callable[..., Any]
    ) -> Callable[..., Any]:
        """The entry's primitive wrapped around *fn*, made once per entry and token."""
        wrapped = entry.primitive(fn)
        with self._lock:
            wrappers = entry.wrappers
            if wrappers is None:
                wrappers = entry.wrappers = {}
            return wrappers.setdefault(token, wrapped)

    # The two decorators repeat __getitem__'s fast path rather than call it: a call
    # costs as much as the path itself. Any change there belongs here too.

    def _guard_sync(self, key_fn: Callable[..., K], fn: Callable[P, T]) -> Callable[P, T]:
        token = object()
        entries = self._entries
        move_to_end = self._move_to_end
        enter = self._enter
        wrapper = self._wrapper
        now = self._now
        idle = self._idle
        lock_free = _LOCK_FREE

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            key = key_fn(*args, **kwargs)
            if lock_free:
                try:
                    entry = entries[key]
                    move_to_end(key)
                except KeyError:
                    entry = enter(key)
                else:
                    if idle is not None:
                        at = now()
                        if at - entry.used >= idle:
                            entry = enter(key)
                        else:
                            entry.used = at
            else:  # pragma: no cover - free-threaded builds only
                entry = enter(key)
            wrappers = entry.wrappers
            wrapped = None if wrappers is None else wrappers.get(token)
            if wrapped is None:
                wrapped = wrapper(entry, token, fn)
            return wrapped(*args, **kwargs)  # type: ignore[no-any-return]

        return guarded

    def _guard_async(
        self, key_fn: Callable[..., K], fn: Callable[P, Awaitable[T]]
    ) -> Callable[P, Awaitable[T]]:
        token = object()
        entries = self._entries
        move_to_end = self._move_to_end
        enter = self._enter
        wrapper = self._wrapper
        now = self._now
        idle = self._idle
        lock_free = _LOCK_FREE

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            key = key_fn(*args, **kwargs)
            if lock_free:
                try:
                    entry = entries[key]
                    move_to_end(key)
                except KeyError:
                    entry = enter(key)
                else:
                    if idle is not None:
                        at = now()
                        if at - entry.used >= idle:
                            entry = enter(key)
                        else:
                            entry.used = at
            else:  # pragma: no cover - free-threaded builds only
                entry = enter(key)
            wrappers = entry.wrappers
            wrapped = None if wrappers is None else wrappers.get(token)
            if wrapped is None:
                wrapped = wrapper(entry, token, fn)
            return await wrapped(*args, **kwargs)  # type: ignore[no-any-return]

        return guarded

    def __repr__(self) -> str:
        dropped: list[_Entry[V]] = []
        with self._lock:
            self._trim(dropped)
            count = len(self._entries)
        idle = "" if self._idle is None else f", idle_timeout {self._idle:g}s"
        return f"<Keyed {count}/{self._max_keys} keys{idle}>"
