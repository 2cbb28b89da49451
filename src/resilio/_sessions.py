"""Sessions whose destroy hooks run exactly once, expiring on time without ever scanning.

A [`SessionManager`][resilio.SessionManager] keeps live sessions in a dict and their
deadlines in one heap, served by a single timer task armed at the earliest deadline.
A touch moves no heap entry: when an entry comes due, the session's deadline is
computed afresh, and an entry that turns out early is pushed back with the new one
(lazy re-validation). So a touch costs O(1), an expiry O(log n), and nothing ever
walks the live sessions. With ``max_sessions`` the dict is an ``OrderedDict`` in
touch order, whose head is the session to evict: O(1) too.

A million live sessions should cost the garbage collector a million objects, walked
in order: a heap entry is a ``(deadline, id)`` tuple of two atoms, which CPython stops
tracking; a session holds no list, tuple or closure of its own (one hook is kept as
is; the lifetime and heartbeat figures, when there are any, are a tuple of floats);
and sessions are made in batches that sit side by side in memory. An entry belongs
to its session while its deadline is the very float object the session holds in
``_due`` (a deadline is always a fresh float, computed for that session); an entry
left behind by a destroyed session, whose id a newer session may have taken since,
is dropped when it comes due.

Destruction is one atomic step, ACTIVE to DESTROYING, taken by whichever of
``destroy``, ``complete``, expiry, eviction or shutdown gets there first; the others
find the session gone and get ``False``. Hooks are called in order in the task that
destroys; the first that returns an awaitable (an ``async def`` hook, or a plain
function returning one) and every hook after it run shielded from cancellation, and
on expiry in a task of their own. The manager belongs to the event loop that runs it:
use it from that loop's tasks.
"""

from __future__ import annotations

import enum
import heapq
import inspect
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Generic, overload

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from typing_extensions import TypeVar

from . import _validate
from ._clock import SYSTEM_CLOCK, AsyncWaker, Clock, check_clock, move_on_after
from ._errors import SessionNotFound
from ._events import (
    DestroyHookFailed,
    EventBus,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    check_bus,
    default_bus,
)
from ._registry import track
from ._waiters import wait_async

logger = logging.getLogger("resilio")

# What a session's data is; a manager built without saying, SessionManager(), holds
# Any, as if it were SessionManager[Any].
T = TypeVar("T", default=Any)
V = TypeVar("V")

Hook = Callable[["Session[T]"], Any]
"""A destroy hook: ``(session) -> None``, or ``(session) -> awaitable`` (an ``async def``)."""

_Hooks = Hook | tuple[Hook, ...] | None  # a session's own: none, one, or several
_Limits = tuple[float, float, float]  # (lifetime deadline, heartbeat span, last beat)
_Rest = tuple[int, Awaitable[Any]]  # (index of the hook, the awaitable it returned)

_INF = float("inf")


class SessionState(enum.Enum):
    """The lifecycle of a session: ACTIVE, then DESTROYING while its hooks run, then DESTROYED."""

    ACTIVE = "active"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"

    def __repr__(self) -> str:
        return f"SessionState.{self.name}"


ACTIVE = SessionState.ACTIVE
DESTROYING = SessionState.DESTROYING
DESTROYED = SessionState.DESTROYED


class Session(Generic[T]):
    """One session of a [`SessionManager`][resilio.SessionManager].

    ``Session[T]`` is the session of a ``SessionManager[T]``: its ``data`` is a ``T``.
    A bare ``Session`` is ``Session[Any]``.

    Attributes:
        id: A fresh unguessable string, unless one was given.
        data: Whatever was given at creation (a ``T``); yours to use.
        created_at: Clock time of creation.
        touched_at: Clock time of the last ``touch`` (or creation).
        ttl: This session's idle timeout in seconds (``None``: none).
        state: Its [`SessionState`][resilio.SessionState].
        reason: Why it was destroyed, once it is.
    """

    __slots__ = (
        "_due",
        "_hooks",
        "_limits",
        "created_at",
        "data",
        "id",
        "reason",
        "state",
        "touched_at",
        "ttl",
    )

    id: str
    data: T
    created_at: float
    touched_at: float
    ttl: float | None
    state: SessionState
    reason: str | None
    _hooks: _Hooks
    _limits: _Limits | None
    _due: float | None

    # No __init__: a manager takes a blank session from its reserve and starts it.

    def _start(  # noqa: PLR0917 - called by SessionManager.create only
        self,
        id: str,
        data: T,
        now: float,
        ttl: float | None,
        hooks: _Hooks,
        limits: _Limits | None,
    ) -> None:
        self.id = id
        self.data = data
        self.created_at = self.touched_at = now
        self.ttl = ttl
        self.state = ACTIVE
        self.reason = None
        self._hooks = hooks
        # None unless there is a max_lifetime or a heartbeat: most sessions need no
        # more than the idle deadline, touched_at + ttl.
        self._limits = limits
        # The deadline of this session's heap entry, the entry's own float (None: none).
        self._due = None

    def _deadline(self) -> tuple[float, str]:
        """The earliest deadline and the reason it would give."""
        ttl = self.ttl
        limits = self._limits
        if limits is None:
            return (_INF, "expired") if ttl is None else (self.touched_at + ttl, "expired")
        lifetime, span, beat_at = limits
        deadline, reason = lifetime, "lifetime"
        if ttl is not None and self.touched_at + ttl < deadline:
            deadline, reason = self.touched_at + ttl, "expired"
        if beat_at + span < deadline:
            deadline, reason = beat_at + span, "heartbeat"
        return deadline, reason

    @property
    def deadline(self) -> float | None:
        """Clock time at which it expires if nothing happens first (``None``: never)."""
        deadline = self._deadline()[0]
        return None if deadline == _INF else deadline

    def __repr__(self) -> str:
        return f"<Session {self.id!r} {self.state.value}>"


# The reasons resilio itself gives, counted from 0 so that a dashboard shows them all.
_REASONS = ("closed", "completed", "expired", "lifetime", "heartbeat", "evicted", "shutdown")


@attrs.frozen(kw_only=True)
class SessionStats:
    """What a [`SessionManager`][resilio.SessionManager] has done since it was built.

    ``live`` is the state now; the rest are cumulative counts that never go down.
    A session is counted in ``created`` when it is made, and in ``destroyed`` once
    its hooks have all run; while they run it is in neither ``live`` nor
    ``destroyed``.

    Attributes:
        created: Sessions created (one per [`SessionCreated`][resilio.SessionCreated]).
        destroyed: Sessions destroyed, by reason (one per
            [`SessionDestroyed`][resilio.SessionDestroyed] with that ``reason``): a
            read-only mapping that always holds resilio's own reasons, ``"closed"``,
            ``"completed"``, ``"expired"``, ``"lifetime"``, ``"heartbeat"``,
            ``"evicted"`` and ``"shutdown"`` (0 until one happens), and any other
            reason given to ``destroy`` once it is used.
        hook_failures: Destroy hooks that raised or ran past ``hook_timeout`` (one per
            [`DestroyHookFailed`][resilio.DestroyHookFailed]).
        live: Sessions live now.
        touched: Touches: calls of ``touch``, and of ``get_or_create`` that found
            the session live.
        lateness_max: The largest lateness of an expiry, in seconds: the most time
            between a session's deadline and the moment the manager acted on it
            (the largest ``late`` of [`SessionExpired`][resilio.SessionExpired]);
            ``0.0`` before the first expiry.
    """

    created: int
    destroyed: Mapping[str, int] = attrs.field(hash=False)
    hook_failures: int
    live: int
    touched: int
    lateness_max: float


class SessionManager(Generic[T]):
    """Holds sessions, expires them on time, and runs their destroy hooks exactly once.

    ``async with SessionManager(idle_timeout=300) as sessions:`` starts one timer
    task. `create` makes a [`Session`][resilio.Session] (with ``data``, an optional
    ``ttl`` and ``on_destroy`` hooks); `get` and `touch` look it up (``touch`` also
    pushes its idle deadline back); `get_or_create` returns the session with a given
    id or makes it, once however many tasks ask at the same time; `destroy` and
    `complete` end it. A session idle
    past its timeout, past ``max_lifetime``, or missing its heartbeats is destroyed
    promptly after its deadline, even with a million live. With ``max_sessions``,
    creating one more evicts the least recently touched. Leaving the block destroys
    every live session (reason ``"shutdown"``).

    Destroy hooks run in order (the session's own, then the manager-wide listeners
    added with `on_destroy`). Each is called with the session and may return an
    awaitable (an ``async def`` hook does), which is awaited, cancelled after
    ``hook_timeout``. From the first hook that returns one, the hooks run shielded
    from the cancellation of the task that destroys. A hook that raises, or runs
    past ``hook_timeout``, publishes [`DestroyHookFailed`][resilio.DestroyHookFailed]
    and is logged; the other hooks and the removal go on.

    ``SessionManager[T]`` holds sessions whose ``data`` is a ``T``:
    ``SessionManager[dict[str, int]]()`` hands out ``Session[dict[str, int]]``. A bare
    ``SessionManager()`` is ``SessionManager[Any]``.

    Args:
        idle_timeout: Seconds (or a ``timedelta``) without a touch after which a
            session expires (``None``: never); a session's own ``ttl`` overrides it.
        max_lifetime: Seconds (or a ``timedelta``) after creation after which a
            session expires anyway.
        max_sessions: The most live sessions; one more evicts the least recently
            touched (reason ``"evicted"``).
        hook_timeout: Seconds (or a ``timedelta``) the awaitable of a destroy hook may
            run.
        name: Appears in events and ``repr``.
        clock: Where time comes from.
        bus: Where events go; the process-wide [`default_bus`][resilio.default_bus]
            by default.
    """

    __slots__ = (
        "__weakref__",
        "_armed",
        "_batch",
        "_bus",
        "_capacity",
        "_clock",
        "_closing",
        "_created",
        "_dead",
        "_destroyed",
        "_flights",
        "_heap",
        "_hook_failures",
        "_hook_timeout",
        "_idle_timeout",
        "_late_max",
        "_listeners",
        "_lru",
        "_max_lifetime",
        "_name",
        "_now",
        "_reserve",
        "_sessions",
        "_started",
        "_tasks",
        "_timer",
        "_timer_scope",
        "_touched",
    )

    def __init__(
        self,
        idle_timeout: float | timedelta | None = 300.0,
        *,
        max_lifetime: float | timedelta | None = None,
        max_sessions: int | None = None,
        hook_timeout: float | timedelta = 10.0,
        name: str = "sessions",
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
    ) -> None:
        self._idle_timeout = _validate.optional_duration("idle_timeout", idle_timeout, gt=0)
        self._max_lifetime = _validate.optional_duration("max_lifetime", max_lifetime, gt=0)
        if max_sessions is not None:
            max_sessions = _validate.integer("max_sessions", max_sessions, ge=1)
        self._hook_timeout = _validate.duration("hook_timeout", hook_timeout, gt=0)
        self._name = _validate.text("name", name)
        self._clock = check_clock(clock)
        self._now = clock.monotonic
        self._bus = default_bus() if bus is None else check_bus(bus)
        self._sessions: dict[str, Session[T]]
        # With max_sessions, the live sessions in touch order: a touch moves one to
        # the end, an eviction pops the head (both O(1), whatever came and went).
        # Without, order is of no use, and a plain dict is cheaper.
        self._lru: OrderedDict[str, Session[T]] | None = None
        self._capacity = 0 if max_sessions is None else max_sessions
        if max_sessions is None:
            self._sessions = {}
        else:
            self._sessions = self._lru = OrderedDict()
        self._heap: list[tuple[float, str]] = []
        self._reserve: list[Session[T]] = []  # blank sessions, see _blank()
        self._batch = 16
        # id -> listener, in the order added; the id makes each removal its own
        self._listeners: dict[object, Hook[T]] = {}
        # session id -> set once the get_or_create that is making it is through
        self._flights: dict[str, anyio.Event] = {}
        self._armed = _INF  # the deadline the timer sleeps until
        self._timer: AsyncWaker | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._dead = 0  # heap entries of sessions no longer active
        self._tasks: anyio.abc.TaskGroup | None = None
        self._started = self._closing = False
        # Cumulative counts, changed only by the manager's own event loop thread (the
        # manager belongs to that loop), so a plain `+= 1` is exact; any thread may
        # read them (each is one object, never torn; the reason -> count dict is
        # copied in one C call). Under free threading the same holds: one writer.
        self._created = self._hook_failures = self._touched = 0
        self._destroyed: dict[str, int] = dict.fromkeys(_REASONS, 0)
        self._late_max = 0.0
        track(self)

    @property
    def name(self) -> str:
        """The name that appears in events and ``repr``."""
        return self._name

    def stats(self) -> SessionStats:
        """Return the counts since the manager was built, and the sessions live now.

        Safe to call from any thread (an exporter's): nothing is locked, and each
        count is read whole, though two counts may be a session apart.
        """
        return SessionStats(
            created=self._created,
            destroyed=MappingProxyType(dict(self._destroyed)),
            hook_failures=self._hook_failures,
            live=len(self._sessions),
            touched=self._touched,
            lateness_max=self._late_max,
        )

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> SessionManager[T]:
        if self._started:
            msg = f"{self!r} can be entered only once"
            raise RuntimeError(msg)
        self._started = True
        tasks = self._tasks = anyio.create_task_group()
        await tasks.__aenter__()
        try:
            await tasks.start(self._run_timer)
        except BaseException:
            # Cancelled (or failed) while starting: leave nothing running or entered,
            # so the caller's own cancel scopes stay intact.
            self._closing = True
            tasks.cancel_scope.cancel()
            await tasks.__aexit__(None, None, None)
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
            self._closing = True
            if self._timer_scope is not None:
                self._timer_scope.cancel()
            await self.destroy_many(list(self._sessions), reason="shutdown", concurrency=64)
        # Hooks of sessions that expired just before still run in the task group:
        # wait for them (each is bounded by hook_timeout) rather than cut them off.
        await self._tasks.__aexit__(None, None, None)

    def _check_open(self) -> None:
        if not self._started or self._closing:
            msg = (
                f"{self!r} is not running: use `async with SessionManager(...) as sessions:`"
                if not self._started
                else f"{self._name!r} is shutting down"
            )
            raise RuntimeError(msg)

    # -- sessions ---------------------------------------------------------------------

    @overload
    async def create(
        self,
        data: T,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[T] | Iterable[Hook[T]] | None = None,
        id: str | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[T]: ...

    @overload
    async def create(  # without data: for a manager whose T takes None
        self: SessionManager[V | None],
        data: None = None,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[T] | Iterable[Hook[T]] | None = None,
        id: str | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[T]: ...

    async def create(
        self,
        data: Any = None,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[Any] | Iterable[Hook[Any]] | None = None,
        id: str | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[Any]:
        """Create a live session.

        Args:
            data: Anything (a ``T`` for a ``SessionManager[T]``); kept on the session
                as ``data``. It may be left out only if ``T`` takes ``None``, as the
                ``Any`` of a bare ``SessionManager()`` does.
            ttl: This session's idle timeout in seconds (or a ``timedelta``), instead
                of the manager's.
            on_destroy: A hook or a list of hooks ``(session) -> None`` (or returning
                an awaitable, as an ``async def`` does), run in order when the session
                is destroyed, before the manager-wide listeners.
            id: The session's id; a fresh unguessable one by default.
            heartbeat: If given, the session must be sent `heartbeat` every this many
                seconds (or this ``timedelta``); after ``missed`` intervals in a row
                without one it is destroyed (reason ``"heartbeat"``).
            missed: Intervals without a heartbeat that end the session.

        Raises:
            ValueError: *id* is taken by a live session, or a bad ttl/heartbeat.
        """
        self._check_open()
        ttl = self._idle_timeout if ttl is None else _validate.duration("ttl", ttl, gt=0)
        if heartbeat is not None:
            heartbeat = _validate.duration("heartbeat", heartbeat, gt=0)
        missed = _validate.integer("missed", missed, ge=1)
        hooks = _hooks("on_destroy", on_destroy)
        if id is None:
            id = secrets.token_urlsafe(16)
        elif not isinstance(id, str) or not id:
            msg = f"'id' must be a non-empty str: {id!r}"
            raise TypeError(msg)
        elif id in self._flights:
            msg = f"'id' is being created by get_or_create: {id!r}"
            raise ValueError(msg)
        sessions = self._sessions
        if id in sessions:
            msg = f"'id' is taken by a live session: {id!r}"
            raise ValueError(msg)
        now = self._now()
        session = self._reserve.pop() if self._reserve else self._blank()
        if heartbeat is None and self._max_lifetime is None:
            session._start(id, data, now, ttl, hooks, None)
            deadline = _INF if ttl is None else now + ttl
        else:
            lifetime = _INF if self._max_lifetime is None else now + self._max_lifetime
            span = _INF if heartbeat is None else heartbeat * missed
            session._start(id, data, now, ttl, hooks, (lifetime, span, now))
            deadline = session._deadline()[0]
        evicted = None
        lru = self._lru
        if lru is not None and len(lru) >= self._capacity:
            evicted = lru.popitem(last=False)[1]  # the least recently touched
            self._claim(evicted, "evicted")
        # No await between the checks above and this insertion: concurrent creates
        # can neither exceed max_sessions nor take the same id twice.
        sessions[id] = session
        if deadline != _INF:
            session._due = deadline
            heapq.heappush(self._heap, (deadline, id))
            if deadline < self._armed and self._timer is not None:
                self._timer.wake()  # a nearer deadline: re-arm
        self._created += 1
        bus = self._bus
        if bus.wants(SessionCreated):
            bus.publish(SessionCreated(source=self._name, at=now, session_id=id))
        if evicted is not None:
            await self._finish_hooks(evicted)
        return session

    @overload
    async def get_or_create(
        self,
        session_id: str,
        factory: Callable[[], Awaitable[T]],
        /,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[T] | Iterable[Hook[T]] | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[T]: ...

    @overload
    async def get_or_create(
        self,
        session_id: str,
        factory: Callable[[], T],
        /,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[T] | Iterable[Hook[T]] | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[T]: ...

    @overload
    async def get_or_create(  # without a factory: for a manager whose T takes None
        self: SessionManager[V | None],
        session_id: str,
        /,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[T] | Iterable[Hook[T]] | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[T]: ...

    async def get_or_create(
        self,
        session_id: str,
        factory: Callable[[], Any] | None = None,
        /,
        *,
        ttl: float | timedelta | None = None,
        on_destroy: Hook[Any] | Iterable[Hook[Any]] | None = None,
        heartbeat: float | timedelta | None = None,
        missed: int = 3,
    ) -> Session[Any]:
        """The live session with this id, touched; else a new one, made once for all callers.

        The id is the key: if a live session has it, that session is touched (as by
        `touch`) and returned, and the other arguments are not used. Otherwise
        ``factory()`` makes the data (``None`` without a factory; an ``async def``, or
        a function returning an awaitable, is awaited) and the session is created
        with this id and the options given, as by `create`. However many tasks ask
        for the same id at once, one runs the factory and the others wait for it:
        all get the same session, and exactly one is created. If the factory raises
        or its caller is cancelled, that caller gets the error and one of those
        waiting runs the factory in its turn. A session destroyed meanwhile is not
        revived: the next call creates a new one.

        Args:
            session_id: The session's id, a non-empty string.
            factory: Makes the data of a new session, called only when one is created.
            ttl: A new session's idle timeout, as for `create`.
            on_destroy: A new session's hooks, as for `create`.
            heartbeat: A new session's heartbeat interval, as for `create`.
            missed: As for `create`.

        Raises:
            RuntimeError: the manager is not running, or began shutting down while
                the factory ran (the new session's hooks then run at once, reason
                ``"shutdown"``, so its data is given back).
            ValueError: *session_id* is being created by `create`, or a bad option.
        """
        if not isinstance(session_id, str) or not session_id:
            msg = f"'session_id' must be a non-empty str: {session_id!r}"
            raise TypeError(msg)
        if factory is not None:
            _validate.callable_("factory", factory)
        # Checked before the factory runs, so that a bad option wastes nothing.
        if ttl is not None:
            ttl = _validate.duration("ttl", ttl, gt=0)
        if heartbeat is not None:
            heartbeat = _validate.duration("heartbeat", heartbeat, gt=0)
        missed = _validate.integer("missed", missed, ge=1)
        hooks = _hooks("on_destroy", on_destroy)
        while True:
            self._check_open()
            session = self._sessions.get(session_id)
            if session is not None:
                if self._lru is not None:
                    self._lru.move_to_end(session_id)
                session.touched_at = self._now()
                self._touched += 1
                return session
            flight = self._flights.get(session_id)
            if flight is None:
                break
            await flight.wait()  # then look again: it may have failed, or ended since
        data: Any = None
        if factory is not None:
            self._flights[session_id] = flight = anyio.Event()
            try:
                data = factory()
                if data is not None and inspect.isawaitable(data):
                    data = await data
            finally:
                del self._flights[session_id]
                flight.set()
        if self._closing:
            await self._give_back(session_id, data, hooks)
        # No await from the check above to the insertion in create: nobody else can
        # have taken the id.
        return await self.create(
            data, ttl=ttl, on_destroy=hooks, id=session_id, heartbeat=heartbeat, missed=missed
        )

    async def _give_back(self, session_id: str, data: Any, hooks: _Hooks) -> None:
        """Data made for a manager that is now shutting down: run its hooks, and raise."""
        session = self._blank()
        now = self._now()
        session._start(session_id, data, now, None, hooks, None)
        self._created += 1
        if self._bus.wants(SessionCreated):
            self._bus.publish(SessionCreated(source=self._name, at=now, session_id=session_id))
        session.state = DESTROYING
        session.reason = "shutdown"
        await self._finish_hooks(session)
        self._check_open()

    def _blank(self) -> Session[T]:
        """A session to start, from a reserve made in batches that sit together in memory.

        A full collection walks every session in the order they were made: side by
        side in memory, rather than strewn among their ids, times and heap entries,
        they take it half the time. The batches grow from 16 to 4,096, so a small
        manager keeps few blanks.
        """
        reserve = self._reserve
        if not reserve:
            batch = self._batch
            reserve += [Session.__new__(Session) for _ in range(batch)]
            self._batch = min(2 * batch, 4096)
        return reserve.pop()

    def _live(self, session_id: str) -> Session[T]:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    async def get(self, session_id: str) -> Session[T]:
        """The live session with this id.

        Raises:
            SessionNotFound: no live session has it.
        """
        return self._live(session_id)

    async def touch(self, session_id: str) -> Session[T]:
        """Mark a session as used now, pushing back its idle deadline; return it.

        Raises:
            SessionNotFound: no live session has this id.
        """
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if self._lru is not None:
            self._lru.move_to_end(session_id)  # most recently touched
        session.touched_at = self._now()
        self._touched += 1
        return session

    async def heartbeat(self, session_id: str) -> Session[T]:
        """Record a heartbeat from a session created with ``heartbeat=``; return it.

        Raises:
            SessionNotFound: no live session has this id.
        """
        session = self._live(session_id)
        limits = session._limits
        if limits is not None:
            session._limits = (limits[0], limits[1], self._now())
        return session

    async def destroy(self, session_id: str, reason: str = "closed") -> bool:
        """Destroy a session now and run its hooks; ``False`` if it is not live.

        Whichever of ``destroy``, ``complete``, expiry, eviction or shutdown comes
        first destroys the session; the others get ``False``.
        """
        session = self._sessions.get(session_id)
        if session is None:
            return False
        return await self._destroy(session, reason)

    async def complete(self, session_id: str) -> bool:
        """The session's work is done: destroy it now (reason ``"completed"``)."""
        return await self.destroy(session_id, "completed")

    async def destroy_many(
        self,
        session_ids: Iterable[str],
        *,
        concurrency: int = 10,
        rate: Any = None,
        reason: str = "closed",
    ) -> int:
        """Destroy many sessions, at most *concurrency* at once; return how many.

        Args:
            session_ids: The sessions to destroy; ids not live are skipped.
            concurrency: Destructions (hook runs) in flight at once.
            rate: A [`TokenBucket`][resilio.TokenBucket] (or any limiter with an
                async ``acquire()``) to pace the destructions.
            reason: The reason given to each.
        """
        concurrency = _validate.integer("concurrency", concurrency, ge=1)
        ids = iter(list(session_ids))
        destroyed = 0

        async def worker() -> None:
            nonlocal destroyed
            for session_id in ids:
                session = self._sessions.get(session_id)
                if session is None:
                    continue
                if rate is not None:
                    await rate.acquire()
                if await self._destroy(session, reason):
                    destroyed += 1

        async with anyio.create_task_group() as tasks:
            for _ in range(concurrency):
                tasks.start_soon(worker)
        return destroyed

    def on_destroy(self, listener: Hook[T]) -> Callable[[], None]:
        """Call *listener* with every destroyed session, after the session's own hooks.

        A listener is a hook like those given to `create`: it may return an
        awaitable. Returns a function that removes this registration of the
        listener (the same listener added twice is called twice, and removed once
        by each function); calling it again does nothing.
        """
        _validate.callable_("listener", listener)
        key = object()
        self._listeners[key] = listener

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    # -- destruction ------------------------------------------------------------------

    def _claim(self, session: Session, reason: str) -> bool:
        """The one atomic step: ACTIVE to DESTROYING, out of the live set."""
        if session.state is not ACTIVE:
            return False
        session.state = DESTROYING
        session.reason = reason
        self._sessions.pop(session.id, None)  # (an eviction has taken it out already)
        if session._due is not None:
            session._due = None  # its heap entry is now left behind: dropped when due
            self._dead += 1
            if self._dead > 64 and self._dead > len(self._sessions):
                # Left-behind entries would pile up if sessions end long before their
                # deadlines: drop them all. Amortised O(1) per destroy.
                sessions = self._sessions
                self._heap = [
                    entry
                    for entry in self._heap
                    if (live := sessions.get(entry[1])) is not None and live._due is entry[0]
                ]
                heapq.heapify(self._heap)
                self._dead = 0
        return True

    async def _destroy(self, session: Session, reason: str) -> bool:
        if not self._claim(session, reason):
            return False
        await self._finish_hooks(session)
        return True

    def _hooks_of(self, session: Session) -> tuple[Hook, ...]:
        """The session's own hooks, then the listeners, as they are now."""
        own = session._hooks
        listeners = tuple(self._listeners.values()) if self._listeners else ()
        if own is None:
            return listeners
        if isinstance(own, tuple):
            return own + listeners if listeners else own
        return (own, *listeners)

    async def _finish_hooks(self, session: Session) -> None:
        """Run the hooks of a claimed session in this task, and finish it."""
        hooks = self._hooks_of(session)
        rest = self._call_hooks(session, hooks, 0)
        if rest is not None:  # plain hooks have nothing to cancel: no shield for them
            await self._finish_hooks_in_task(session, hooks, rest)

    async def _finish_hooks_in_task(
        self, session: Session, hooks: tuple[Hook, ...], rest: _Rest
    ) -> None:
        # Shielded: a caller cancelled mid-destroy must not leave the remaining hooks
        # unrun and the session stuck in DESTROYING. Each awaitable is bounded by
        # hook_timeout, so the shield cannot hold for ever.
        with anyio.CancelScope(shield=True):
            await self._await_hooks(session, hooks, rest)

    def _call_hooks(self, session: Session, hooks: tuple[Hook, ...], start: int) -> _Rest | None:
        """Call hooks from *start* on, up to the first that returns an awaitable.

        Returns that hook's index and awaitable, or ``None`` once every hook has run
        and the session is finished.
        """
        for index in range(start, len(hooks)):
            try:
                result = hooks[index](session)
            except Exception as exc:
                self._hook_failed(session, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                return index, result
        self._finish(session)
        return None

    async def _await_hooks(
        self, session: Session, hooks: tuple[Hook, ...], rest: _Rest | None
    ) -> None:
        """Await each hook's awaitable (bounded by hook_timeout), calling the next."""
        while rest is not None:
            index, awaitable = rest
            try:
                with move_on_after(self._clock, self._hook_timeout) as scope:
                    await awaitable
            except Exception as exc:
                self._hook_failed(session, exc)
            else:
                if scope.cancelled_caught:
                    error = TimeoutError(f"destroy hook {hooks[index]!r} timed out")
                    self._hook_failed(session, error)
            rest = self._call_hooks(session, hooks, index + 1)

    def _finish(self, session: Session) -> None:
        session.state = DESTROYED
        session._hooks = None
        destroyed = self._destroyed
        reason = session.reason or ""
        try:
            destroyed[reason] += 1
        except KeyError:  # a reason of the caller's own, the first time
            destroyed[reason] = 1
        bus = self._bus
        if bus.wants(SessionDestroyed):
            bus.publish(
                SessionDestroyed(
                    source=self._name,
                    at=self._now(),
                    session_id=session.id,
                    reason=reason,
                )
            )

    def _hook_failed(self, session: Session, error: BaseException) -> None:
        self._hook_failures += 1
        logger.error(
            "destroy hook of session %r (%s) failed", session.id, self._name, exc_info=error
        )
        bus = self._bus
        if bus.wants(DestroyHookFailed):
            bus.publish(
                DestroyHookFailed(
                    source=self._name, at=self._now(), session_id=session.id, error=error
                )
            )

    # -- expiry -----------------------------------------------------------------------

    async def _run_timer(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._timer = waker = AsyncWaker()
        with anyio.CancelScope() as self._timer_scope:
            task_status.started()
            while True:
                waker.reset()
                await self._expire_due()
                # (no local reference to the heap across the wait: a compaction must
                # be able to free the old list at once)
                self._armed = self._heap[0][0] if self._heap else _INF
                await wait_async(self._clock, waker, self._armed if self._heap else None)

    async def _expire_due(self) -> None:
        bus = self._bus
        sessions = self._sessions
        handled = 0
        while self._heap:
            heap = self._heap  # (re-read: destroying may compact it)
            now = self._now()
            deadline, session_id = heap[0]
            if deadline > now:
                return
            heapq.heappop(heap)
            session = sessions.get(session_id)
            if session is None or session._due is not deadline:
                # left behind by a session destroyed before its deadline (whose id
                # a newer session may have taken since)
                self._dead = max(0, self._dead - 1)
                continue
            current, reason = session._deadline()
            if current > now:  # touched (or beat) since: back in, at its new deadline
                session._due = current
                heapq.heappush(heap, (current, session_id))
                continue
            session._due = None  # (its entry is out of the heap: nothing left behind)
            late = now - current
            if late > self._late_max:  # noqa: PLR1730 - max() costs a call per expiry
                self._late_max = late
            if bus.wants(SessionExpired):
                bus.publish(
                    SessionExpired(
                        source=self._name, at=now, session_id=session_id, reason=reason, late=late
                    )
                )
            if not self._claim(session, reason):
                continue
            hooks = self._hooks_of(session)
            rest = self._call_hooks(session, hooks, 0)
            if rest is not None:
                # An awaitable gets a task of its own, with the hooks after it: one
                # slow hook must not delay the expiry of the sessions behind it.
                assert self._tasks is not None
                self._tasks.start_soon(self._finish_hooks_in_task, session, hooks, rest)
            handled += 1
            if not handled % 1024:
                await anyio.lowlevel.checkpoint()  # a flood of expiries: let others run

    def __repr__(self) -> str:
        state = "closed" if self._closing else "running" if self._started else "not started"
        return f"<SessionManager {self._name!r} {state}: {len(self._sessions)} live sessions>"


def _hooks(name: str, value: Hook | Iterable[Hook] | None) -> _Hooks:
    """One hook as it is (no tuple of its own per session), several as a tuple."""
    if value is None:
        return None
    if callable(value):
        return value
    try:
        hooks = tuple(value)
    except TypeError:
        msg = f"{name!r} must be a hook or a list of hooks: {value!r}"
        raise TypeError(msg) from None
    for hook in hooks:
        _validate.callable_(name, hook)
    return hooks if hooks else None
