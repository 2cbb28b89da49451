"""SessionManager: idle, lifetime and heartbeat expiry exactly at the deadline on a
ManualClock, touch without heap pushes, re-arming for a nearer deadline, hooks (order,
sync and async, failing, hanging), exactly-once destroy under randomized races,
LRU eviction, destroy_many (concurrency, rate), shutdown, events, configuration, and
100,000 sessions with mixed TTLs.

Tasks are ordered with anyio.Event gates, checkpoints and anyio.wait_all_tasks_blocked();
nothing sleeps in real time.
"""

from __future__ import annotations

import collections
import datetime
import functools
import gc
import logging
import math
import random
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from resilio import (
    DestroyHookFailed,
    Event,
    EventBus,
    ManualClock,
    Session,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    SessionManager,
    SessionNotFound,
    SessionState,
    TokenBucket,
)

DESTROYING = SessionState.DESTROYING
EPS = 2.0**-10  # "just before" a deadline, exact in binary


class Payload:
    """Session data that can be watched with a weak reference."""


class Boom(Exception):
    """The failure the hooks raise."""


class Recorder:
    """Destroy hooks that record which session each saw, in which state, and in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (hook name, session id)
        self.seen: list[tuple[str, SessionState, str | None, bool]] = []

    def sync(self, name: str, manager: SessionManager | None = None) -> Callable[[Session], None]:
        def hook(session: Session) -> None:
            self.calls.append((name, session.id))
            if manager is not None:
                self.seen.append((name, session.state, session.reason, session.id in manager))

        return hook

    def async_(self, name: str, steps: int = 1) -> Callable[[Session], Awaitable[None]]:
        async def hook(session: Session) -> None:
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            self.calls.append((name, session.id))

        return hook

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def count(self, session_id: str) -> int:
        return sum(1 for _, sid in self.calls if sid == session_id)


class Gauge:
    """How many hooks run now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def exit(self) -> None:
        self.now -= 1


async def advance(clock: ManualClock, seconds: float) -> None:
    """Move virtual time and let the timer (and any hook tasks) act on it."""
    clock.advance(seconds)
    await anyio.wait_all_tasks_blocked()


async def release_when_blocked(gate: anyio.Event) -> None:
    """Set *gate* once every task is blocked."""
    await anyio.wait_all_tasks_blocked()
    gate.set()


async def advance_when_blocked(clock: ManualClock, seconds: float) -> None:
    """Once every task is blocked (say, on a hanging hook), move virtual time."""
    await anyio.wait_all_tasks_blocked()
    clock.advance(seconds)


def of_type(events: list[Event], kind: type[Event]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def resilio_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "resilio" and r.levelno >= logging.ERROR]


@pytest.fixture
def make(clock: ManualClock, bus: EventBus) -> Callable[..., SessionManager]:
    """Build a SessionManager on the test's clock and bus."""

    def factory(idle_timeout: float | None = 10.0, **options: Any) -> SessionManager:
        options.setdefault("name", "sessions")
        return SessionManager(idle_timeout, clock=clock, bus=bus, **options)

    return factory


class TestConfiguration:
    @pytest.mark.parametrize(
        ("options", "error", "param"),
        [
            ({"idle_timeout": 0}, ValueError, "idle_timeout"),
            ({"idle_timeout": -1}, ValueError, "idle_timeout"),
            ({"idle_timeout": math.nan}, ValueError, "idle_timeout"),
            ({"idle_timeout": math.inf}, ValueError, "idle_timeout"),
            ({"idle_timeout": "x"}, TypeError, "idle_timeout"),
            ({"idle_timeout": True}, TypeError, "idle_timeout"),
            ({"max_lifetime": 0}, ValueError, "max_lifetime"),
            ({"max_lifetime": -5}, ValueError, "max_lifetime"),
            ({"max_lifetime": math.nan}, ValueError, "max_lifetime"),
            ({"max_lifetime": "1"}, TypeError, "max_lifetime"),
            ({"max_sessions": 0}, ValueError, "max_sessions"),
            ({"max_sessions": -1}, ValueError, "max_sessions"),
            ({"max_sessions": True}, TypeError, "max_sessions"),
            ({"max_sessions": 2.0}, TypeError, "max_sessions"),
            ({"max_sessions": "3"}, TypeError, "max_sessions"),
            ({"hook_timeout": 0}, ValueError, "hook_timeout"),
            ({"hook_timeout": -1}, ValueError, "hook_timeout"),
            ({"hook_timeout": math.nan}, ValueError, "hook_timeout"),
            ({"hook_timeout": None}, TypeError, "hook_timeout"),
            ({"hook_timeout": "1"}, TypeError, "hook_timeout"),
            ({"name": ""}, ValueError, "name"),
            ({"name": 3}, TypeError, "name"),
            ({"clock": object()}, TypeError, "clock"),
            ({"clock": None}, TypeError, "clock"),
            ({"bus": object()}, TypeError, "bus"),
        ],
    )
    def test_bad_configuration_names_the_parameter(
        self, options: dict[str, Any], error: type[Exception], param: str
    ) -> None:
        """Bad configuration fails at construction, naming the parameter."""
        with pytest.raises(error, match=f"'{param}'"):
            SessionManager(**options)

    @pytest.mark.parametrize("value", [0, -1, "x", True])
    def test_bad_values_appear_in_the_message(self, value: Any) -> None:
        """The message shows the offending value too."""
        with pytest.raises((TypeError, ValueError), match=re.escape(repr(value))):
            SessionManager(idle_timeout=value)

    def test_defaults(self) -> None:
        """Defaults: named "sessions", not started, no sessions."""
        manager = SessionManager()
        assert manager.name == "sessions"
        assert len(manager) == 0
        assert "not started" in repr(manager)

    def test_optional_limits_may_be_none(self) -> None:
        """idle_timeout, max_lifetime and max_sessions all accept None."""
        manager = SessionManager(None, max_lifetime=None, max_sessions=None, name="n")
        assert manager.name == "n"

    @pytest.mark.parametrize(
        ("options", "error", "param"),
        [
            ({"ttl": 0}, ValueError, "ttl"),
            ({"ttl": -1}, ValueError, "ttl"),
            ({"ttl": math.nan}, ValueError, "ttl"),
            ({"ttl": math.inf}, ValueError, "ttl"),
            ({"ttl": "x"}, TypeError, "ttl"),
            ({"ttl": True}, TypeError, "ttl"),
            ({"heartbeat": 0}, ValueError, "heartbeat"),
            ({"heartbeat": -1.5}, ValueError, "heartbeat"),
            ({"heartbeat": math.nan}, ValueError, "heartbeat"),
            ({"heartbeat": "1"}, TypeError, "heartbeat"),
            ({"missed": 0}, ValueError, "missed"),
            ({"missed": -1}, ValueError, "missed"),
            ({"missed": True}, TypeError, "missed"),
            ({"missed": 1.5}, TypeError, "missed"),
            ({"missed": None}, TypeError, "missed"),
            ({"on_destroy": [print, 5]}, TypeError, "on_destroy"),
            ({"on_destroy": "abc"}, TypeError, "on_destroy"),
            ({"id": ""}, TypeError, "id"),
            ({"id": 5}, TypeError, "id"),
        ],
    )
    @pytest.mark.anyio
    async def test_bad_create_arguments(
        self,
        make: Callable[..., SessionManager],
        options: dict[str, Any],
        error: type[Exception],
        param: str,
    ) -> None:
        """Bad create arguments fail, naming the parameter, and create nothing."""
        async with make() as sessions:
            with pytest.raises(error, match=f"'{param}'"):
                await sessions.create(**options)
            assert len(sessions) == 0
            assert sessions._heap == []

    @pytest.mark.parametrize(
        ("options", "param"),
        [
            ({"idle_timeout": datetime.timedelta(0)}, "idle_timeout"),
            ({"max_lifetime": datetime.timedelta(seconds=-1)}, "max_lifetime"),
            ({"hook_timeout": datetime.timedelta(0)}, "hook_timeout"),
        ],
    )
    def test_bad_timedelta_names_the_parameter(self, options: dict[str, Any], param: str) -> None:
        """A timedelta is checked like the seconds it stands for."""
        with pytest.raises(ValueError, match=f"'{param}'"):
            SessionManager(**options)

    @pytest.mark.anyio
    async def test_durations_take_timedelta(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """idle_timeout, max_lifetime, hook_timeout, ttl and heartbeat all take a timedelta."""
        seconds = datetime.timedelta(seconds=1)

        async def hang(session: Session) -> None:
            await anyio.sleep_forever()

        async with make(
            idle_timeout=10 * seconds, max_lifetime=60 * seconds, hook_timeout=3 * seconds
        ) as sessions:
            idle = await sessions.create()
            ttl = await sessions.create(ttl=2 * seconds)
            beat = await sessions.create(heartbeat=1.5 * seconds, missed=2)
            assert (idle.ttl, idle.deadline) == (10, 10)
            assert (ttl.ttl, ttl.deadline) == (2, 2)
            assert beat.deadline == 3
            for _ in range(6):
                await advance(clock, 9)
                await sessions.touch(idle.id)
            assert idle.deadline == 60  # max_lifetime
            assert (ttl.reason, beat.reason) == ("expired", "heartbeat")
            slow = await sessions.create(on_destroy=hang)
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.destroy, slow.id)
                await anyio.wait_all_tasks_blocked()
                await advance(clock, 3 - EPS)
                assert slow.state is SessionState.DESTROYING
                await advance(clock, EPS)  # hook_timeout
            assert slow.state is SessionState.DESTROYED
            await advance(clock, 6)
            assert idle.reason == "lifetime"
        assert isinstance(of_type(events, DestroyHookFailed)[0].error, TimeoutError)

    @pytest.mark.anyio
    async def test_non_callable_on_destroy(self, make: Callable[..., SessionManager]) -> None:
        """A non-callable, non-iterable on_destroy is a TypeError; so is a bad listener."""
        async with make() as sessions:
            with pytest.raises(TypeError):
                await sessions.create(on_destroy=5)
            with pytest.raises(TypeError, match="'listener'"):
                sessions.on_destroy(5)  # type: ignore[arg-type]
            assert len(sessions) == 0


class TestLifecycle:
    @pytest.mark.anyio
    async def test_entering_in_a_cancelled_scope_leaves_nothing_behind(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """The cancellation propagates, the manager is closed, and the task's own
        cancel scopes and task groups still work afterwards."""
        sessions = make()
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with sessions:
                pytest.fail("the block ran in a cancelled scope")
        assert scope.cancelled_caught
        assert "closed" in repr(sessions)
        with pytest.raises(RuntimeError):
            await sessions.create()
        async with anyio.create_task_group() as tg:  # the task's own scopes are intact
            tg.start_soon(anyio.lowlevel.checkpoint)

    @pytest.mark.anyio
    async def test_create_before_entering_raises(self, make: Callable[..., SessionManager]) -> None:
        """create on a manager that was never entered is a RuntimeError."""
        sessions = make()
        with pytest.raises(RuntimeError, match="async with"):
            await sessions.create()

    @pytest.mark.anyio
    async def test_create_after_leaving_raises(self, make: Callable[..., SessionManager]) -> None:
        """create after the block is a RuntimeError; lookups find nothing."""
        async with make() as sessions:
            session = await sessions.create()
        with pytest.raises(RuntimeError, match="shutting down"):
            await sessions.create()
        with pytest.raises(SessionNotFound):
            await sessions.get(session.id)
        assert await sessions.destroy(session.id) is False

    @pytest.mark.anyio
    async def test_entered_once_only(self, make: Callable[..., SessionManager]) -> None:
        """Entering twice, or again after leaving, is a RuntimeError."""
        sessions = make()
        async with sessions:
            with pytest.raises(RuntimeError, match="only once"):
                await sessions.__aenter__()
        with pytest.raises(RuntimeError, match="only once"):
            async with sessions:
                pass

    @pytest.mark.anyio
    async def test_repr_follows_the_state(self, make: Callable[..., SessionManager]) -> None:
        """The repr shows the name, whether it runs, and how many sessions are live."""
        sessions = make(name="web")
        assert "'web'" in repr(sessions)
        assert "not started" in repr(sessions)
        async with sessions:
            await sessions.create()
            await sessions.create()
            text = repr(sessions)
            assert "running" in text
            assert "2 live" in text
        assert "closed" in repr(sessions)
        assert "0 live" in repr(sessions)

    @pytest.mark.anyio
    async def test_timer_leaves_no_sleeper(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """After the block, nothing still waits on the clock."""
        async with make() as sessions:
            await sessions.create()
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1  # the timer, at the one deadline
        assert clock.sleepers == 0

    @pytest.mark.anyio
    async def test_exception_in_block_still_shuts_down(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """An exception leaving the block propagates, after every session is destroyed."""
        recorder = Recorder()
        made: list[Session] = []

        async def run() -> None:
            async with make() as sessions:
                made.append(await sessions.create(on_destroy=recorder.sync("h")))
                raise Boom

        with pytest.raises(Boom):
            await run()
        assert recorder.calls == [("h", made[0].id)]
        assert made[0].reason == "shutdown"


class TestLookup:
    @pytest.mark.anyio
    async def test_session_attributes(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A new session has its id, data, timestamps, ttl, state, and no reason."""
        clock.advance(7)
        async with make(idle_timeout=30) as sessions:
            session = await sessions.create({"user": 1})
            assert isinstance(session.id, str)
            assert session.data == {"user": 1}
            assert session.created_at == session.touched_at == 7
            assert session.ttl == 30
            assert session.state is SessionState.ACTIVE
            assert session.reason is None
            assert session.deadline == 37
            assert repr(session) == f"<Session {session.id!r} active>"
            assert repr(SessionState.DESTROYING) == "SessionState.DESTROYING"

    @pytest.mark.anyio
    async def test_get_touch_heartbeat_return_the_session(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """get, touch and heartbeat return the same live Session; touch updates touched_at."""
        async with make() as sessions:
            session = await sessions.create()
            clock.advance(3)
            assert await sessions.get(session.id) is session
            assert session.touched_at == 0
            assert await sessions.touch(session.id) is session
            assert session.touched_at == 3
            assert await sessions.heartbeat(session.id) is session

    @pytest.mark.parametrize("method", ["get", "touch", "heartbeat"])
    @pytest.mark.anyio
    async def test_unknown_or_destroyed_ids_raise(
        self, make: Callable[..., SessionManager], method: str
    ) -> None:
        """get/touch/heartbeat of an unknown or destroyed id raise SessionNotFound."""
        async with make() as sessions:
            with pytest.raises(SessionNotFound) as info:
                await getattr(sessions, method)("nope")
            assert isinstance(info.value, LookupError)
            assert info.value.session_id == "nope"
            assert "'nope'" in str(info.value)
            session = await sessions.create()
            assert await sessions.destroy(session.id)
            with pytest.raises(SessionNotFound):
                await getattr(sessions, method)(session.id)

    @pytest.mark.anyio
    async def test_len_and_contains(self, make: Callable[..., SessionManager]) -> None:
        """len counts live sessions; `in` tells whether an id is live."""
        async with make() as sessions:
            a = await sessions.create()
            b = await sessions.create()
            assert len(sessions) == 2
            assert a.id in sessions
            assert b.id in sessions
            assert "nope" not in sessions
            assert 5 not in sessions
            await sessions.destroy(a.id)
            assert len(sessions) == 1
            assert a.id not in sessions

    @pytest.mark.anyio
    async def test_ids_unique_and_unguessable(self, make: Callable[..., SessionManager]) -> None:
        """Default ids are long random URL-safe strings, all distinct."""
        async with make() as sessions:
            ids = [(await sessions.create()).id for _ in range(2000)]
        assert len(set(ids)) == len(ids)
        assert all(len(i) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
        assert len({i[:4] for i in ids}) > 1000  # no shared prefix, no counter

    @pytest.mark.anyio
    async def test_given_id_and_taken_id(self, make: Callable[..., SessionManager]) -> None:
        """A given id is used; a live one is taken (ValueError), a destroyed one is free."""
        async with make() as sessions:
            session = await sessions.create(id="abc")
            assert session.id == "abc"
            with pytest.raises(ValueError, match="'abc'"):
                await sessions.create(id="abc")
            assert await sessions.get("abc") is session
            assert len(sessions) == 1
            assert await sessions.destroy("abc")
            again = await sessions.create(id="abc")
            assert again is not session
            assert await sessions.get("abc") is again


class TestDestroy:
    @pytest.mark.anyio
    async def test_destroy_true_once_then_false(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """destroy returns True once, runs the hooks, then False; reason "closed"."""
        recorder = Recorder()
        async with make() as sessions:
            session = await sessions.create(on_destroy=recorder.sync("h"))
            assert await sessions.destroy(session.id) is True
            assert session.state is SessionState.DESTROYED
            assert session.reason == "closed"
            assert await sessions.destroy(session.id) is False
            assert await sessions.complete(session.id) is False
            assert recorder.calls == [("h", session.id)]
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["closed"]

    @pytest.mark.anyio
    async def test_complete_and_custom_reason(self, make: Callable[..., SessionManager]) -> None:
        """complete gives reason "completed"; destroy takes a reason of its own."""
        async with make() as sessions:
            a = await sessions.create()
            b = await sessions.create()
            assert await sessions.complete(a.id) is True
            assert await sessions.destroy(b.id, reason="logout") is True
            assert (a.reason, b.reason) == ("completed", "logout")
            assert await sessions.complete(a.id) is False
            assert await sessions.destroy(b.id) is False

    @pytest.mark.anyio
    async def test_unknown_ids_return_false(self, make: Callable[..., SessionManager]) -> None:
        """destroy and complete of an unknown id return False."""
        async with make() as sessions:
            assert await sessions.destroy("nope") is False
            assert await sessions.complete("nope") is False

    @pytest.mark.anyio
    async def test_session_state_while_hooks_run(self, make: Callable[..., SessionManager]) -> None:
        """While its hooks run a session is DESTROYING, has its reason, and is gone."""
        recorder = Recorder()
        async with make() as sessions:
            session = await sessions.create(on_destroy=recorder.sync("h", sessions))
            await sessions.destroy(session.id, reason="bye")
        assert recorder.seen == [("h", SessionState.DESTROYING, "bye", False)]

    @pytest.mark.anyio
    async def test_hook_sees_itself_gone(self, make: Callable[..., SessionManager]) -> None:
        """A hook that destroys or touches its own session gets False / SessionNotFound."""
        outcomes: list[Any] = []
        sessions = make()

        async def hook(session: Session) -> None:
            outcomes.append(await sessions.destroy(session.id))
            try:
                await sessions.touch(session.id)
            except SessionNotFound as exc:
                outcomes.append(type(exc))

        async with sessions:
            session = await sessions.create(on_destroy=hook)
            assert await sessions.destroy(session.id) is True
        assert outcomes == [False, SessionNotFound]


class TestIdleExpiry:
    @pytest.mark.anyio
    async def test_expires_exactly_at_the_deadline(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """Just before its deadline a session lives; at the deadline it is "expired"."""
        recorder = Recorder()
        async with make(idle_timeout=10) as sessions:
            session = await sessions.create(on_destroy=recorder.sync("h"))
            await advance(clock, 10 - EPS)
            assert session.id in sessions
            assert recorder.calls == []
            await advance(clock, EPS)
            assert session.id not in sessions
            assert session.state is SessionState.DESTROYED
            assert session.reason == "expired"
            assert recorder.calls == [("h", session.id)]
        expired = of_type(events, SessionExpired)
        assert len(expired) == 1
        assert expired[0].session_id == session.id
        assert expired[0].reason == "expired"
        assert expired[0].late == pytest.approx(0, abs=1e-9)
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["expired"]

    @pytest.mark.anyio
    async def test_late_measures_the_delay(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """Acting 5 s after the deadline reports late == 5, at the current time."""
        async with make(idle_timeout=10) as sessions:
            await sessions.create()
            await advance(clock, 15)
        (expired,) = of_type(events, SessionExpired)
        assert expired.late == 5
        assert expired.at == 15
        assert expired.source == "sessions"

    @pytest.mark.anyio
    async def test_touch_pushes_the_deadline_back_without_heap_pushes(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Touches move the deadline and leave the heap alone; expiry follows the last one."""
        async with make(idle_timeout=10) as sessions:
            session = await sessions.create()
            heap_size = len(sessions._heap)
            clock.advance(6)
            for _ in range(1000):
                await sessions.touch(session.id)
            assert len(sessions._heap) == heap_size
            assert session.deadline == 16
            await advance(clock, 4)  # t=10: the old deadline passes
            assert session.id in sessions
            assert len(sessions._heap) == heap_size  # re-pushed once, the old entry gone
            await advance(clock, 6 - EPS)
            assert session.id in sessions
            await advance(clock, EPS)  # t=16
            assert session.id not in sessions
            assert session.reason == "expired"

    @pytest.mark.anyio
    async def test_keeps_alive_while_touched(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A session touched more often than its timeout never expires."""
        async with make(idle_timeout=10) as sessions:
            session = await sessions.create()
            for _ in range(50):
                await advance(clock, 9)
                await sessions.touch(session.id)
            assert session.state is SessionState.ACTIVE
            assert clock.monotonic() == 450

    @pytest.mark.anyio
    async def test_per_session_ttl_overrides_idle_timeout(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A session's ttl, shorter or longer, replaces the manager's idle_timeout."""
        async with make(idle_timeout=10) as sessions:
            short = await sessions.create(ttl=2)
            default = await sessions.create()
            long = await sessions.create(ttl=50)
            assert (short.ttl, default.ttl, long.ttl) == (2, 10, 50)
            await advance(clock, 2)
            assert [s.id in sessions for s in (short, default, long)] == [False, True, True]
            await advance(clock, 8)
            assert [s.id in sessions for s in (default, long)] == [False, True]
            await advance(clock, 39.5)
            assert long.id in sessions
            await advance(clock, 0.5)
            assert long.reason == "expired"
            assert len(sessions) == 0

    @pytest.mark.anyio
    async def test_no_idle_timeout_never_expires(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """With idle_timeout=None a session has no deadline and stays; a ttl still works."""
        async with make(idle_timeout=None) as sessions:
            forever = await sessions.create()
            assert forever.ttl is None
            assert forever.deadline is None
            assert sessions._heap == []
            await advance(clock, 1e9)
            assert forever.state is SessionState.ACTIVE
            timed = await sessions.create(ttl=5)
            await advance(clock, 5)
            assert timed.reason == "expired"
            assert forever.id in sessions
        assert forever.reason == "shutdown"

    @pytest.mark.anyio
    async def test_default_idle_timeout_is_300(self, clock: ManualClock, bus: EventBus) -> None:
        """Without idle_timeout a session expires after 300 s idle."""
        async with SessionManager(clock=clock, bus=bus) as sessions:
            session = await sessions.create()
            assert session.ttl == 300
            await advance(clock, 299)
            assert session.id in sessions
            await advance(clock, 1)
            assert session.reason == "expired"

    @pytest.mark.anyio
    async def test_expiry_in_deadline_order(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Sessions created in shuffled ttl order expire one by one, each on time."""
        order = list(range(1, 31))
        random.Random(7).shuffle(order)
        recorder = Recorder()
        async with make() as sessions:
            by_ttl = {
                ttl: await sessions.create(ttl=ttl, on_destroy=recorder.sync(str(ttl)))
                for ttl in order
            }
            for ttl in range(1, 31):
                await advance(clock, 1)
                assert recorder.names() == [str(t) for t in range(1, ttl + 1)]
                assert by_ttl[ttl].reason == "expired"
            assert len(sessions) == 0


class TestRearm:
    @pytest.mark.anyio
    async def test_nearer_deadline_rearms_the_timer(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """A session due sooner than the armed deadline expires on time, not at the far one."""
        async with make() as sessions:
            far = await sessions.create(ttl=100)
            await anyio.wait_all_tasks_blocked()  # the timer sleeps until t=100
            near = await sessions.create(ttl=5)
            await advance(clock, 5 - EPS)
            assert near.id in sessions
            await advance(clock, EPS)
            assert near.id not in sessions
            assert near.reason == "expired"
            assert far.id in sessions
            await advance(clock, 95)
            assert far.reason == "expired"
        assert [e.late for e in of_type(events, SessionExpired)] == [0, 0]

    @pytest.mark.anyio
    async def test_rearms_after_the_heap_empties(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """After every session has expired, a new one still expires on time."""
        async with make() as sessions:
            await sessions.create(ttl=1)
            await advance(clock, 1)
            assert len(sessions) == 0
            await advance(clock, 100)
            later = await sessions.create(ttl=3)
            await advance(clock, 2.5)
            assert later.id in sessions
            await advance(clock, 0.5)
            assert later.reason == "expired"

    @pytest.mark.anyio
    async def test_each_nearer_deadline_rearms(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Sessions created with ever nearer deadlines each expire exactly on time."""
        async with make() as sessions:
            made = []
            for ttl in range(20, 0, -1):
                made.append(await sessions.create(ttl=ttl))
                await anyio.wait_all_tasks_blocked()
            for step in range(1, 21):
                await advance(clock, 1)
                assert len(sessions) == 20 - step
                assert made[-step].reason == "expired"

    @pytest.mark.anyio
    async def test_deadline_created_during_expiry(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A session created by a destroy hook during expiry is itself expired on time."""
        created: list[Session] = []
        sessions = make()

        async def spawn(_: Session) -> None:
            created.append(await sessions.create(ttl=2))

        async with sessions:
            await sessions.create(ttl=50)
            await sessions.create(ttl=1, on_destroy=spawn)
            await advance(clock, 1)
            (child,) = created
            assert child.deadline == 3
            await advance(clock, 2)
            assert child.reason == "expired"
            assert len(sessions) == 1


class TestLifetime:
    @pytest.mark.anyio
    async def test_max_lifetime_even_when_touched(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """A session touched all along still ends at max_lifetime, reason "lifetime"."""
        async with make(idle_timeout=10, max_lifetime=25) as sessions:
            session = await sessions.create()
            for _ in range(3):
                await advance(clock, 8)
                await sessions.touch(session.id)
            assert session.deadline == 25
            await advance(clock, 1 - EPS)
            assert session.id in sessions
            await advance(clock, EPS)
            assert session.reason == "lifetime"
        assert [e.reason for e in of_type(events, SessionExpired)] == ["lifetime"]

    @pytest.mark.anyio
    async def test_idle_before_lifetime(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Whichever deadline comes first wins: idle first gives "expired"."""
        async with make(idle_timeout=10, max_lifetime=25) as sessions:
            session = await sessions.create()
            assert session.deadline == 10
            await advance(clock, 10)
            assert session.reason == "expired"

    @pytest.mark.anyio
    async def test_lifetime_without_idle_timeout(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """With no idle timeout, max_lifetime alone ends the session."""
        async with make(idle_timeout=None, max_lifetime=5) as sessions:
            session = await sessions.create()
            assert session.deadline == 5
            await advance(clock, 5)
            assert session.reason == "lifetime"


class TestHeartbeat:
    @pytest.mark.anyio
    async def test_missed_heartbeats_end_the_session(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """After `missed` intervals without a beat the session ends, reason "heartbeat"."""
        async with make(idle_timeout=None) as sessions:
            session = await sessions.create(heartbeat=2, missed=3)
            assert session.deadline == 6
            await advance(clock, 6 - EPS)
            assert session.id in sessions
            await advance(clock, EPS)
            assert session.reason == "heartbeat"
        assert [e.reason for e in of_type(events, SessionExpired)] == ["heartbeat"]

    @pytest.mark.anyio
    async def test_missed_defaults_to_three(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """By default three missed intervals end the session."""
        async with make(idle_timeout=None) as sessions:
            session = await sessions.create(heartbeat=1)
            await advance(clock, 2.5)
            assert session.id in sessions
            await advance(clock, 0.5)
            assert session.reason == "heartbeat"

    @pytest.mark.anyio
    async def test_beats_keep_it_alive(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Regular beats keep a session alive; it ends `missed` intervals after the last."""
        async with make(idle_timeout=None) as sessions:
            session = await sessions.create(heartbeat=1, missed=2)
            heap_size = len(sessions._heap)
            for _ in range(100):
                await advance(clock, 1.5)
                await sessions.heartbeat(session.id)
            assert len(sessions._heap) == heap_size
            assert session.state is SessionState.ACTIVE
            assert session.deadline == 152
            await advance(clock, 2 - EPS)
            assert session.id in sessions
            await advance(clock, EPS)
            assert session.reason == "heartbeat"

    @pytest.mark.anyio
    async def test_idle_timeout_still_applies(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Beats do not count as touches: the idle timeout still expires the session."""
        async with make(idle_timeout=5) as sessions:
            session = await sessions.create(heartbeat=1)
            for _ in range(4):
                await advance(clock, 1)
                await sessions.heartbeat(session.id)
            await advance(clock, 1)
            assert session.reason == "expired"


class TestHooks:
    @pytest.mark.anyio
    async def test_order_session_hooks_then_listeners(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """The session's hooks run in order, then the manager-wide listeners in order."""
        recorder = Recorder()
        async with make() as sessions:
            sessions.on_destroy(recorder.sync("L1"))
            sessions.on_destroy(recorder.async_("L2"))
            session = await sessions.create(
                on_destroy=[recorder.async_("h1", 3), recorder.sync("h2"), recorder.async_("h3")]
            )
            await sessions.destroy(session.id)
        assert recorder.names() == ["h1", "h2", "h3", "L1", "L2"]

    @pytest.mark.anyio
    async def test_single_hook_and_generator_of_hooks(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """on_destroy takes one callable, or any iterable of them."""
        recorder = Recorder()
        async with make() as sessions:
            a = await sessions.create(on_destroy=recorder.sync("one"))
            b = await sessions.create(on_destroy=(recorder.sync(n) for n in ("g1", "g2")))
            await sessions.destroy(a.id)
            await sessions.destroy(b.id)
        assert recorder.calls == [("one", a.id), ("g1", b.id), ("g2", b.id)]

    @pytest.mark.anyio
    async def test_listener_removal(self, make: Callable[..., SessionManager]) -> None:
        """The function on_destroy returns removes the listener; calling it twice is fine."""
        recorder = Recorder()
        async with make() as sessions:
            remove = sessions.on_destroy(recorder.sync("L"))
            keep = sessions.on_destroy(recorder.sync("K"))
            a = await sessions.create()
            await sessions.destroy(a.id)
            remove()
            remove()
            b = await sessions.create()
            await sessions.destroy(b.id)
            keep()
            c = await sessions.create()
            await sessions.destroy(c.id)
        assert recorder.calls == [("L", a.id), ("K", a.id), ("K", b.id)]

    @pytest.mark.anyio
    async def test_each_remover_removes_its_own_registration_once(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """With one listener added twice, each remover takes away one registration, once."""
        recorder = Recorder()
        listener = recorder.sync("L")
        async with make() as sessions:
            first = sessions.on_destroy(listener)
            sessions.on_destroy(recorder.sync("K"))
            second = sessions.on_destroy(listener)
            a = await sessions.create()
            await sessions.destroy(a.id)
            first()
            first()  # harmless: the second registration stays
            b = await sessions.create()
            await sessions.destroy(b.id)
            second()
            second()
            c = await sessions.create()
            await sessions.destroy(c.id)
        assert recorder.calls == [
            ("L", a.id),
            ("K", a.id),
            ("L", a.id),
            ("K", b.id),
            ("L", b.id),
            ("K", c.id),
        ]

    @pytest.mark.anyio
    async def test_listener_removed_by_a_hook_still_sees_that_session(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """The listeners of a destroy are those added when it starts."""
        recorder = Recorder()
        async with make() as sessions:
            remove = sessions.on_destroy(recorder.sync("L"))
            a = await sessions.create(on_destroy=lambda s: remove())
            await sessions.destroy(a.id)
            b = await sessions.create()
            await sessions.destroy(b.id)
        assert recorder.calls == [("L", a.id)]

    @pytest.mark.anyio
    async def test_listeners_see_every_reason(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A listener sees sessions destroyed, completed, expired, evicted and shut down."""
        reasons: list[str | None] = []
        async with make(max_sessions=2) as sessions:
            sessions.on_destroy(lambda s: reasons.append(s.reason))
            a = await sessions.create()
            await sessions.destroy(a.id)
            b = await sessions.create()
            await sessions.complete(b.id)
            await sessions.create(ttl=1)
            await advance(clock, 1)
            await sessions.create()
            await sessions.create()
            await sessions.create()  # evicts
        assert reasons == ["closed", "completed", "expired", "evicted", "shutdown", "shutdown"]

    @pytest.mark.anyio
    async def test_sync_hook_returning_awaitable(self, make: Callable[..., SessionManager]) -> None:
        """A sync callable that returns an awaitable has it awaited."""
        recorder = Recorder()
        hook = recorder.async_("inner", 2)

        def returns_awaitable(session: Session) -> Awaitable[None]:
            return hook(session)

        async with make() as sessions:
            session = await sessions.create(on_destroy=returns_awaitable)
            await sessions.destroy(session.id)
        assert recorder.calls == [("inner", session.id)]

    @pytest.mark.parametrize("where", ["hook", "listener"])
    @pytest.mark.anyio
    async def test_returned_awaitable_on_expiry_runs_in_a_task_of_its_own(
        self, make: Callable[..., SessionManager], clock: ManualClock, where: str
    ) -> None:
        """A plain hook returning an awaitable does not hold the timer: later sessions expire."""
        recorder = Recorder()
        gate = anyio.Event()

        async def slow(session: Session) -> None:
            await gate.wait()
            recorder.calls.append(("slow", session.id))

        def returns_awaitable(session: Session) -> Awaitable[None]:
            return slow(session)

        async with make(hook_timeout=100) as sessions:
            if where == "listener":
                sessions.on_destroy(lambda s: returns_awaitable(s) if s.data == "a" else None)
                hooks: list[Callable[[Session], Any]] = [recorder.sync("first")]
            else:
                hooks = [recorder.sync("first"), returns_awaitable, recorder.sync("after")]
            a = await sessions.create("a", ttl=1, on_destroy=hooks)
            b = await sessions.create("b", ttl=2, on_destroy=recorder.sync("b"))
            await advance(clock, 1)
            assert a.state is SessionState.DESTROYING
            await advance(clock, 1)
            assert b.state is SessionState.DESTROYED
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert a.state is SessionState.DESTROYED
        expected = ["first", "b", "slow"] + (["after"] if where == "hook" else [])
        assert recorder.names() == expected

    @pytest.mark.anyio
    async def test_async_partials_and_callable_objects(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """functools.partial of an async function and async __call__ objects are awaited."""
        seen: list[str] = []

        async def tagged(tag: str, session: Session) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(tag)

        class Hook:
            async def __call__(self, session: Session) -> None:
                await anyio.lowlevel.checkpoint()
                seen.append("object")

        async with make() as sessions:
            session = await sessions.create(on_destroy=[functools.partial(tagged, "p"), Hook()])
            await sessions.destroy(session.id)
        assert seen == ["p", "object"]

    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.anyio
    async def test_raising_hook(
        self,
        make: Callable[..., SessionManager],
        events: list[Event],
        caplog: pytest.LogCaptureFixture,
        kind: str,
    ) -> None:
        """A raising hook publishes DestroyHookFailed, is logged, and stops nothing."""
        recorder = Recorder()
        error = Boom("hook failed")

        def sync_fail(session: Session) -> None:
            raise error

        async def async_fail(session: Session) -> None:
            await anyio.lowlevel.checkpoint()
            raise error

        failing = sync_fail if kind == "sync" else async_fail
        with caplog.at_level(logging.ERROR, logger="resilio"):
            async with make(name="web") as sessions:
                sessions.on_destroy(recorder.sync("L"))
                session = await sessions.create(on_destroy=[failing, recorder.sync("after")])
                assert await sessions.destroy(session.id) is True
                assert session.id not in sessions
                assert session.state is SessionState.DESTROYED
        assert recorder.names() == ["after", "L"]
        (failed,) = of_type(events, DestroyHookFailed)
        assert failed.session_id == session.id
        assert failed.error is error
        assert failed.source == "web"
        (record,) = resilio_errors(caplog)
        assert session.id in record.getMessage()
        assert record.exc_info is not None
        assert record.exc_info[1] is error
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["closed"]

    @pytest.mark.anyio
    async def test_raising_hook_on_expiry_keeps_the_timer_alive(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """A hook raising during expiry is reported; later sessions still expire."""
        recorder = Recorder()

        def fail(session: Session) -> None:
            raise Boom

        async with make() as sessions:
            a = await sessions.create(ttl=1, on_destroy=fail)
            b = await sessions.create(ttl=2, on_destroy=recorder.sync("b"))
            await advance(clock, 1)
            assert a.reason == "expired"
            await advance(clock, 1)
            assert b.reason == "expired"
        assert recorder.calls == [("b", b.id)]
        assert [e.session_id for e in of_type(events, DestroyHookFailed)] == [a.id]

    @pytest.mark.anyio
    async def test_hanging_hook_cut_off_after_hook_timeout(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """An async hook running past hook_timeout is cut off with a TimeoutError."""
        recorder = Recorder()
        results: list[bool] = []

        async def hang(session: Session) -> None:
            await anyio.sleep_forever()

        async with make(hook_timeout=5) as sessions:
            session = await sessions.create(on_destroy=[hang, recorder.sync("after")])

            async def destroy() -> None:
                results.append(await sessions.destroy(session.id))

            async with anyio.create_task_group() as tg:
                tg.start_soon(destroy)
                await anyio.wait_all_tasks_blocked()  # the hook hangs from t=0
                await advance(clock, 5 - EPS)
                assert results == []
                assert session.state is SessionState.DESTROYING
                assert await sessions.destroy(session.id) is False  # losers don't wait
                await advance(clock, EPS)
            assert results == [True]
            assert session.state is SessionState.DESTROYED
        assert recorder.names() == ["after"]
        (failed,) = of_type(events, DestroyHookFailed)
        assert isinstance(failed.error, TimeoutError)
        assert failed.session_id == session.id

    @pytest.mark.anyio
    async def test_hanging_sync_returned_awaitable_is_cut_off(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """An awaitable returned by a sync hook is held to hook_timeout too."""

        async def hang() -> None:
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg, make(hook_timeout=3) as sessions:
            session = await sessions.create(on_destroy=lambda s: hang())
            tg.start_soon(advance_when_blocked, clock, 3)
            assert await sessions.destroy(session.id) is True
        assert isinstance(of_type(events, DestroyHookFailed)[0].error, TimeoutError)

    @pytest.mark.anyio
    async def test_hanging_hook_does_not_wedge_shutdown(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """Leaving the block with a hanging hook finishes once hook_timeout passes."""
        recorder = Recorder()

        async def hang(session: Session) -> None:
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            async with make(hook_timeout=7) as sessions:
                session = await sessions.create(on_destroy=[hang, recorder.sync("after")])
                other = await sessions.create(on_destroy=recorder.sync("other"))
                tg.start_soon(advance_when_blocked, clock, 7)
            assert clock.monotonic() == 7
        assert session.reason == other.reason == "shutdown"
        assert session.state is SessionState.DESTROYED
        assert sorted(recorder.names()) == ["after", "other"]
        (failed,) = of_type(events, DestroyHookFailed)
        assert isinstance(failed.error, TimeoutError)

    @pytest.mark.anyio
    async def test_hanging_expiry_hook_does_not_delay_other_expiries(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """While one expired session's async hook hangs, the next still expires on time."""
        recorder = Recorder()
        gate = anyio.Event()

        async def slow(session: Session) -> None:
            await gate.wait()
            recorder.calls.append(("slow", session.id))

        async with make(hook_timeout=100) as sessions:
            a = await sessions.create(ttl=1, on_destroy=[slow, recorder.sync("a")])
            b = await sessions.create(ttl=2, on_destroy=recorder.sync("b"))
            await advance(clock, 1)
            assert a.state is SessionState.DESTROYING
            await advance(clock, 1)
            assert b.state is SessionState.DESTROYED
            assert recorder.names() == ["b"]
            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert a.state is SessionState.DESTROYED
        assert recorder.names() == ["b", "slow", "a"]
        assert of_type(events, DestroyHookFailed) == []

    @pytest.mark.anyio
    async def test_hanging_expiry_hook_cut_off(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """An expired session's hanging hook is cut off at hook_timeout; the rest run."""
        recorder = Recorder()

        async def hang(session: Session) -> None:
            await anyio.sleep_forever()

        async with make(hook_timeout=4) as sessions:
            session = await sessions.create(ttl=1, on_destroy=[hang, recorder.sync("after")])
            await advance(clock, 1)
            await advance(clock, 4 - EPS)
            assert session.state is SessionState.DESTROYING
            await advance(clock, EPS)
            assert session.state is SessionState.DESTROYED
        assert recorder.names() == ["after"]
        assert isinstance(of_type(events, DestroyHookFailed)[0].error, TimeoutError)


class TestEviction:
    @pytest.mark.anyio
    async def test_evicts_least_recently_touched(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """One session over max_sessions evicts the oldest untouched, reason "evicted"."""
        recorder = Recorder()
        async with make(max_sessions=3) as sessions:
            made = [await sessions.create(on_destroy=recorder.sync(str(i))) for i in range(3)]
            newest = await sessions.create()
            assert len(sessions) == 3
            assert made[0].reason == "evicted"
            assert made[0].id not in sessions
            assert recorder.calls == [("0", made[0].id)]
            assert newest.id in sessions
        assert of_type(events, SessionDestroyed)[0].reason == "evicted"

    @pytest.mark.anyio
    async def test_touch_changes_who_is_evicted(self, make: Callable[..., SessionManager]) -> None:
        """Touching the oldest session makes the next oldest the one evicted."""
        async with make(max_sessions=3) as sessions:
            a, b, c = [await sessions.create() for _ in range(3)]
            await sessions.touch(a.id)
            await sessions.create()
            assert b.reason == "evicted"
            assert a.id in sessions
            await sessions.touch(c.id)
            await sessions.create()
            assert a.reason == "evicted"
            assert c.id in sessions

    @pytest.mark.anyio
    async def test_memory_stays_bounded(self, make: Callable[..., SessionManager]) -> None:
        """Many creates through max_sessions keep exactly max_sessions live."""
        recorder = Recorder()
        async with make(max_sessions=5) as sessions:
            made = [await sessions.create(on_destroy=recorder.sync("h")) for _ in range(100)]
            assert len(sessions) == 5
            assert [s.id in sessions for s in made[-5:]] == [True] * 5
            assert all(s.reason == "evicted" for s in made[:95])
        assert len(recorder.calls) == 100
        assert len(set(recorder.calls)) == 100

    @pytest.mark.anyio
    async def test_taken_id_does_not_evict(self, make: Callable[..., SessionManager]) -> None:
        """Creating a taken id at capacity fails without evicting anyone."""
        async with make(max_sessions=1) as sessions:
            a = await sessions.create(id="a")
            with pytest.raises(ValueError, match="'a'"):
                await sessions.create(id="a")
            assert a.state is SessionState.ACTIVE

    @pytest.mark.anyio
    async def test_concurrent_creates_stay_within_max_sessions(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """Creates racing while an eviction hook runs do not exceed max_sessions."""
        gate = anyio.Event()

        async def slow(session: Session) -> None:
            await gate.wait()

        async with make(max_sessions=2) as sessions:
            await sessions.create(on_destroy=slow)
            await sessions.create(on_destroy=slow)
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.create)  # evicts the first, waits on its hook
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(sessions.create)  # finds room: the evicted one is gone
                await anyio.wait_all_tasks_blocked()
                gate.set()
            assert len(sessions) <= 2

    @pytest.mark.anyio
    async def test_concurrent_creates_of_one_id(self, make: Callable[..., SessionManager]) -> None:
        """Two creates of one id racing an eviction: exactly one gets ValueError."""
        gate = anyio.Event()
        outcomes: list[Any] = []

        async def slow(session: Session) -> None:
            await gate.wait()

        async with make(max_sessions=1) as sessions:
            await sessions.create(on_destroy=slow)

            async def create(data: int) -> None:
                try:
                    outcomes.append(await sessions.create(data, id="dup"))
                except ValueError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(create, 1)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(create, 2)
                await anyio.wait_all_tasks_blocked()
                gate.set()
            made = [o for o in outcomes if isinstance(o, Session)]
        assert len(made) == 1, f"both creates of 'dup' succeeded: {outcomes}"
        assert made[0].state is SessionState.DESTROYED


class CountingLRU(collections.OrderedDict[str, Session]):
    """The manager's touch-ordered dict, counting how each operation reaches it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.heads = 0  # popitem(last=False): unlink the head entry
        self.moves = 0  # move_to_end: unlink one entry, link it at the end
        self.walks = 0  # anything that iterates over entries

    def popitem(self, last: bool = True) -> tuple[str, Session]:
        assert last is False
        self.heads += 1
        return super().popitem(last=False)

    def move_to_end(self, key: str, last: bool = True) -> None:
        self.moves += 1
        super().move_to_end(key, last)

    def __iter__(self) -> Any:
        self.walks += 1
        return super().__iter__()

    def keys(self) -> Any:
        self.walks += 1
        return super().keys()

    def values(self) -> Any:
        self.walks += 1
        return super().values()

    def items(self) -> Any:
        self.walks += 1
        return super().items()


class TestEvictionCost:
    @pytest.mark.anyio
    async def test_eviction_unlinks_the_head_and_walks_nothing(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """Each evicting create takes one entry off the head; each touch moves one entry.

        The live sessions sit in an OrderedDict in touch order, whose head is reached
        through its links in O(1); a plain dict's first entry lies past every slot
        emptied since its last resize, so finding it walks O(max_sessions) of them.
        """
        evicted: list[str] = []
        async with make(max_sessions=1000, idle_timeout=None) as sessions:
            sessions.on_destroy(lambda s: evicted.append(s.id))
            live = [(await sessions.create()).id for _ in range(1000)]
            lru = CountingLRU(sessions._sessions)
            sessions._sessions = sessions._lru = lru
            for i in range(5000):
                await sessions.touch(live[i * 7919 % 1000])
                new = await sessions.create()
                live.remove(evicted[-1])
                live.append(new.id)
            assert (lru.heads, lru.moves, lru.walks) == (5000, 5000, 0)
            assert len(evicted) == 5000

    @pytest.mark.parametrize("seed", range(20))
    @pytest.mark.anyio
    async def test_evictions_follow_a_model_of_touch_order(
        self, make: Callable[..., SessionManager], seed: int
    ) -> None:
        """Random creates, touches and destroys evict exactly who a list in touch order says."""
        rng = random.Random(seed)
        model: list[str] = []  # least recently touched first
        evicted: list[str] = []
        async with make(max_sessions=5, idle_timeout=None) as sessions:
            sessions.on_destroy(lambda s: evicted.append(s.id) if s.reason == "evicted" else None)
            for step in range(300):
                op = rng.choice(["create", "create", "touch", "destroy"])
                if op == "create" or not model:
                    expected = model.pop(0) if len(model) == 5 else None
                    before = len(evicted)
                    model.append((await sessions.create(id=f"s{step}")).id)
                    assert evicted[before:] == ([expected] if expected else []), (seed, step)
                elif op == "touch":
                    target = rng.choice(model)
                    await sessions.touch(target)
                    model.remove(target)
                    model.append(target)
                else:
                    target = rng.choice(model)
                    assert await sessions.destroy(target)
                    model.remove(target)
                assert list(sessions._sessions) == model, (seed, step)


class TestCollector:
    @pytest.mark.anyio
    async def test_one_tracked_object_per_session(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """The collector tracks the session and nothing else of its own.

        Heap entries are (deadline, id) tuples of atoms, which CPython stops tracking;
        a session holds no tuple, list or closure of its own (one hook is held as is).
        """

        def hook(session: Session) -> None:
            pass

        async with make(max_lifetime=100) as sessions:
            made = [await sessions.create(on_destroy=hook) for _ in range(100)]
            made += [await sessions.create(heartbeat=1) for _ in range(100)]
            gc.collect()
            assert len(sessions._heap) == 200
            assert not any(gc.is_tracked(entry) for entry in sessions._heap)
            shared = {id(hook), id(SessionState.ACTIVE), id(Session)}
            for session in made:
                assert {id(r) for r in gc.get_referents(session) if gc.is_tracked(r)} <= shared

    @pytest.mark.anyio
    async def test_reused_ids_do_not_pile_up_heap_entries(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """An entry left behind by a destroyed session is never taken for a newer one's."""
        recorder = Recorder()
        async with make(idle_timeout=10) as sessions:
            for _ in range(1000):  # all at one instant: equal ids, times and deadlines
                await sessions.destroy((await sessions.create(id="x")).id)
            last = await sessions.create(id="x", on_destroy=recorder.sync("x"))
            assert len(sessions._heap) <= 66
            await advance(clock, 5)
            await sessions.touch("x")
            await advance(clock, 5)  # the left-behind entries come due: dropped
            assert last.state is SessionState.ACTIVE
            assert len(sessions._heap) == 1
            await advance(clock, 5)
            assert last.reason == "expired"
            assert not sessions._heap
        assert recorder.calls == [("x", "x")]


class TestDestroyMany:
    @pytest.mark.anyio
    async def test_counts_and_skips(self, make: Callable[..., SessionManager]) -> None:
        """destroy_many destroys the live ids with the reason, skipping unknown and repeats."""
        async with make() as sessions:
            made = [await sessions.create() for _ in range(5)]
            ids = [s.id for s in made[:3]]
            count = await sessions.destroy_many([*ids, "nope", ids[0]], reason="bulk")
            assert count == 3
            assert [s.reason for s in made[:3]] == ["bulk"] * 3
            assert len(sessions) == 2
            assert await sessions.destroy_many([]) == 0
            assert await sessions.destroy_many(iter([made[3].id])) == 1
            assert made[3].reason == "closed"

    @pytest.mark.parametrize(("value", "error"), [(0, ValueError), (True, TypeError)])
    @pytest.mark.anyio
    async def test_bad_concurrency(
        self, make: Callable[..., SessionManager], value: Any, error: type[Exception]
    ) -> None:
        """A bad concurrency fails, naming it, and destroys nothing."""
        async with make() as sessions:
            session = await sessions.create()
            with pytest.raises(error, match="'concurrency'"):
                await sessions.destroy_many([session.id], concurrency=value)
            assert session.id in sessions

    @pytest.mark.parametrize("concurrency", [1, 4])
    @pytest.mark.anyio
    async def test_concurrency_bound(
        self, make: Callable[..., SessionManager], concurrency: int
    ) -> None:
        """At most `concurrency` sessions have hooks in flight at once, and all finish."""
        gauge = Gauge()

        async def hook(session: Session) -> None:
            gauge.enter()
            try:
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
            finally:
                gauge.exit()

        async with make() as sessions:
            ids = [(await sessions.create(on_destroy=hook)).id for _ in range(20)]
            count = await sessions.destroy_many(ids, concurrency=concurrency)
            assert count == 20
            assert len(sessions) == 0
        assert gauge.peak == concurrency

    @pytest.mark.anyio
    async def test_rate_limited(
        self, make: Callable[..., SessionManager], clock: ManualClock, bus: EventBus
    ) -> None:
        """With a TokenBucket on the ManualClock, destructions follow its rate."""
        bucket = TokenBucket(rate=2, capacity=1, clock=clock, bus=bus)
        done: list[int] = []
        async with make(idle_timeout=None) as sessions:
            ids = [(await sessions.create()).id for _ in range(5)]
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    done.append(await sessions.destroy_many(ids, concurrency=3, rate=bucket))

                tg.start_soon(run)
                await anyio.wait_all_tasks_blocked()
                assert len(sessions) == 4  # the one token of the full bucket
                for live in (3, 2, 1, 0):
                    await advance(clock, 0.5 - EPS)
                    assert len(sessions) == live + 1
                    await advance(clock, EPS)
                    assert len(sessions) == live
            assert done == [5]


class TestShutdown:
    @pytest.mark.anyio
    async def test_leaving_destroys_everything(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """Leaving the block destroys every live session, reason "shutdown", hooks run."""
        recorder = Recorder()
        async with make() as sessions:
            sessions.on_destroy(recorder.sync("L"))
            made = [
                await sessions.create(on_destroy=[recorder.async_("a"), recorder.sync("s")])
                for _ in range(100)
            ]
            await sessions.destroy(made[0].id)
        assert len(sessions) == 0
        for session in made:
            assert session.state is SessionState.DESTROYED
            assert recorder.count(session.id) == 3
        assert [s.reason for s in made[1:]] == ["shutdown"] * 99
        destroyed = of_type(events, SessionDestroyed)
        assert sorted(e.session_id for e in destroyed) == sorted(s.id for s in made)

    @pytest.mark.anyio
    async def test_hooks_cannot_create_during_shutdown(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """A hook creating a session during shutdown fails (reported), nothing is left live."""
        sessions = make()

        async def spawn(session: Session) -> None:
            await sessions.create()

        async with sessions:
            await sessions.create(on_destroy=spawn)
        assert len(sessions) == 0
        (failed,) = of_type(events, DestroyHookFailed)
        assert isinstance(failed.error, RuntimeError)

    @pytest.mark.anyio
    async def test_expired_session_hooks_in_flight_finish_at_shutdown(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """Hooks of a session that expired just before the block is left all run."""
        recorder = Recorder()
        gate = anyio.Event()

        async def gated(session: Session) -> None:
            await gate.wait()
            await anyio.lowlevel.checkpoint()
            recorder.calls.append(("gated", session.id))

        async with anyio.create_task_group() as tg:
            async with make(hook_timeout=1e6) as sessions:
                session = await sessions.create(ttl=1, on_destroy=[gated, recorder.sync("after")])
                await advance(clock, 1)
                assert session.state is SessionState.DESTROYING  # its hook waits on the gate
                tg.start_soon(release_when_blocked, gate)
        assert recorder.names() == ["gated", "after"]
        assert session.state is SessionState.DESTROYED
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["expired"]

    @pytest.mark.anyio
    async def test_create_in_flight_at_shutdown(self, make: Callable[..., SessionManager]) -> None:
        """A create finishing its eviction while the block is left leaves nothing live."""
        gate = anyio.Event()
        made: list[Session] = []

        async def slow(session: Session) -> None:
            await gate.wait()

        async with anyio.create_task_group() as tg:
            async with make(max_sessions=1) as sessions:
                await sessions.create(on_destroy=slow)

                async def create() -> None:
                    try:
                        made.append(await sessions.create())
                    except RuntimeError:
                        pass  # refusing a create that raced the shutdown is fine too

                tg.start_soon(create)
                await anyio.wait_all_tasks_blocked()
                gate.set()
        assert len(sessions) == 0
        assert made == [] or made[0].state is SessionState.DESTROYED


class TestCancellation:
    @pytest.mark.anyio
    async def test_cancelled_destroy_still_runs_every_hook(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """Cancelling the task that destroys does not cut the hooks off."""
        recorder = Recorder()
        gate = anyio.Event()

        async def gated(session: Session) -> None:
            await gate.wait()
            await anyio.lowlevel.checkpoint()
            recorder.calls.append(("gated", session.id))

        async with anyio.create_task_group() as outer, make() as sessions:
            session = await sessions.create(on_destroy=[gated, recorder.sync("after")])
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.destroy, session.id)
                await anyio.wait_all_tasks_blocked()
                assert session.state is SessionState.DESTROYING
                outer.start_soon(release_when_blocked, gate)
                tg.cancel_scope.cancel()
            assert session.state is SessionState.DESTROYED
            assert recorder.names() == ["gated", "after"]
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["closed"]

    @pytest.mark.parametrize("where", ["hook", "listener"])
    @pytest.mark.anyio
    async def test_cancelled_destroy_finishes_after_a_returned_awaitable(
        self, make: Callable[..., SessionManager], events: list[Event], where: str
    ) -> None:
        """A plain hook's awaitable is shielded like an async hook: the rest still run."""
        recorder = Recorder()
        gate = anyio.Event()

        async def gated() -> None:
            await gate.wait()
            await anyio.lowlevel.checkpoint()
            recorder.calls.append(("gated", ""))

        def returns_awaitable(session: Session) -> Awaitable[None]:
            return gated()

        async with anyio.create_task_group() as outer, make() as sessions:
            if where == "listener":
                sessions.on_destroy(returns_awaitable)
                sessions.on_destroy(recorder.sync("after"))
                session = await sessions.create(on_destroy=recorder.sync("before"))
            else:
                session = await sessions.create(
                    on_destroy=[recorder.sync("before"), returns_awaitable, recorder.sync("after")]
                )
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.destroy, session.id)
                await anyio.wait_all_tasks_blocked()
                assert session.state is SessionState.DESTROYING
                outer.start_soon(release_when_blocked, gate)
                tg.cancel_scope.cancel()
            assert session.state is SessionState.DESTROYED
            assert recorder.names() == ["before", "gated", "after"]
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["closed"]
        assert of_type(events, DestroyHookFailed) == []

    @pytest.mark.anyio
    async def test_plain_hooks_only_destroy_without_checkpoint(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """Hooks that return None run with no shield and no checkpoint: a destroy is sync."""
        recorder = Recorder()
        async with make() as sessions:
            session = await sessions.create(on_destroy=[recorder.sync("a"), recorder.sync("b")])
            with anyio.CancelScope() as scope:
                scope.cancel()
                assert await sessions.destroy(session.id) is True
            assert session.state is SessionState.DESTROYED
        assert recorder.names() == ["a", "b"]

    @pytest.mark.anyio
    async def test_cancelled_destroy_is_still_bounded_by_hook_timeout(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """A cancelled destroy waiting on a hanging hook ends at hook_timeout."""
        recorder = Recorder()

        async def hang(session: Session) -> None:
            await anyio.sleep_forever()

        async with anyio.create_task_group() as outer, make(hook_timeout=3) as sessions:
            session = await sessions.create(on_destroy=[hang, recorder.sync("after")])
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.destroy, session.id)
                await anyio.wait_all_tasks_blocked()
                outer.start_soon(advance_when_blocked, clock, 3)
                tg.cancel_scope.cancel()
            assert clock.monotonic() == 3
            assert session.state is SessionState.DESTROYED
        assert recorder.names() == ["after"]
        assert isinstance(of_type(events, DestroyHookFailed)[0].error, TimeoutError)

    @pytest.mark.anyio
    async def test_cancelled_create_still_runs_the_evicted_hooks(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """Cancelling a create while its eviction's hooks run leaves the evicted destroyed."""
        recorder = Recorder()
        gate = anyio.Event()

        async def gated(session: Session) -> None:
            await gate.wait()
            await anyio.lowlevel.checkpoint()
            recorder.calls.append(("gated", session.id))

        async with anyio.create_task_group() as outer, make(max_sessions=1) as sessions:
            old = await sessions.create(on_destroy=[gated, recorder.sync("after")])
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(sessions.create, id="new"))
                await anyio.wait_all_tasks_blocked()
                outer.start_soon(release_when_blocked, gate)
                tg.cancel_scope.cancel()
            assert old.state is SessionState.DESTROYED
            assert old.reason == "evicted"
            assert recorder.names() == ["gated", "after"]
            assert "new" in sessions
            assert len(sessions) == 1


class TestMemory:
    @pytest.mark.anyio
    async def test_destroyed_sessions_are_not_kept_by_the_heap(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """Sessions destroyed long before their deadline are released (at most 64 wait).

        BUG: the sleeping timer task keeps a local reference to the pre-compaction
        heap list, so compaction frees nothing until the timer next wakes."""
        refs: list[weakref.ref[Payload]] = []
        async with make(idle_timeout=1e6) as sessions:
            keep = [await sessions.create(Payload()) for _ in range(10)]
            for _ in range(1000):
                payload = Payload()
                refs.append(weakref.ref(payload))
                session = await sessions.create(payload)
                assert await sessions.destroy(session.id)
            del payload, session
            gc.collect()
            assert sum(ref() is not None for ref in refs) <= 65
            assert len(sessions._heap) <= len(keep) + 65
            assert all(s.id in sessions for s in keep)
            assert len(sessions) == 10

    @pytest.mark.anyio
    async def test_compaction_keeps_expiry_on_time(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """After the heap is compacted the live sessions still expire at their deadlines."""
        async with make() as sessions:
            live = [await sessions.create(ttl=ttl) for ttl in (3, 1, 2)]
            await anyio.wait_all_tasks_blocked()  # the timer sleeps until t=1
            for _ in range(300):
                doomed = await sessions.create(ttl=0.5)
                await sessions.destroy(doomed.id)
            assert len(sessions._heap) < 100
            await advance(clock, 1 - EPS)
            assert len(sessions) == 3
            await advance(clock, EPS)
            assert [s.id in sessions for s in live] == [True, False, True]
            await advance(clock, 1)
            assert [s.id in sessions for s in live] == [True, False, False]
            await advance(clock, 1)
            assert [s.reason for s in live] == ["expired"] * 3


class TestEvents:
    @pytest.mark.anyio
    async def test_lifecycle_events_with_fields(
        self, make: Callable[..., SessionManager], clock: ManualClock, events: list[Event]
    ) -> None:
        """Created, Expired and Destroyed carry source, clock time, id and reason."""
        clock.advance(100)
        async with make(name="api") as sessions:
            session = await sessions.create(ttl=5)
            await advance(clock, 5)
            other = await sessions.create()
            clock.advance(1)
            await sessions.complete(other.id)
        assert events == [
            SessionCreated(source="api", at=100, session_id=session.id),
            SessionExpired(source="api", at=105, session_id=session.id, reason="expired", late=0),
            SessionDestroyed(source="api", at=105, session_id=session.id, reason="expired"),
            SessionCreated(source="api", at=105, session_id=other.id),
            SessionDestroyed(source="api", at=106, session_id=other.id, reason="completed"),
        ]

    @pytest.mark.anyio
    async def test_destroyed_is_published_after_the_hooks(
        self, make: Callable[..., SessionManager], bus: EventBus
    ) -> None:
        """SessionDestroyed comes after every hook has run."""
        order: list[str] = []
        bus.subscribe(SessionDestroyed, lambda e: order.append("event"))
        async with make() as sessions:
            sessions.on_destroy(lambda s: order.append("listener"))
            session = await sessions.create(on_destroy=lambda s: order.append("hook"))
            await sessions.destroy(session.id)
        assert order == ["hook", "listener", "event"]


OPS = ("destroy", "complete", "expire", "evict")


class TestRaces:
    @staticmethod
    def check_exactly_once(
        recorder: Recorder, sessions: list[Session], events: list[Event], seed: int
    ) -> None:
        destroyed = collections.Counter(e.session_id for e in of_type(events, SessionDestroyed))
        for session in sessions:
            ran = collections.Counter(n for n, sid in recorder.calls if sid == session.id)
            assert ran == {"async": 1, "sync": 1, "L": 1}, (seed, session, ran)
            assert session.state is SessionState.DESTROYED, (seed, session)
            assert destroyed[session.id] == 1, (seed, session)

    @staticmethod
    def check_winner(target: Session, results: list[tuple[str, bool]], seed: int) -> None:
        winners = [op for op, won in results if won]
        if target.reason in ("closed", "completed"):
            assert winners == [{"closed": "destroy", "completed": "complete"}[target.reason]], (
                seed,
                target.reason,
                results,
            )
        else:
            assert winners == [], (seed, target.reason, results)
            assert target.reason in ("expired", "evicted", "shutdown"), (seed, target.reason)

    async def race(
        self,
        seed: int,
        clock: ManualClock,
        bus: EventBus,
        events: list[Event],
        *,
        shutdown_races: bool,
    ) -> str | None:
        """One randomized schedule of callers on one session; returns who destroyed it."""
        rng = random.Random(seed)
        events.clear()
        recorder = Recorder()
        created: list[Session] = []
        results: list[tuple[str, bool]] = []
        sessions = SessionManager(10, max_sessions=1, hook_timeout=1e9, clock=clock, bus=bus)

        def hooks() -> list[Callable[[Session], Any]]:
            return [recorder.async_("async", rng.randint(0, 3)), recorder.sync("sync")]

        async def racer(op: str, delay: int) -> None:
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            if op == "destroy":
                results.append((op, await sessions.destroy(target.id)))
            elif op == "complete":
                results.append((op, await sessions.complete(target.id)))
            elif op == "expire":
                clock.advance(10)
            else:
                try:
                    created.append(await sessions.create(on_destroy=hooks()))
                except RuntimeError:
                    assert shutdown_races
                    assert sessions._closing

        ops = [(rng.choice(OPS), rng.randint(0, 6)) for _ in range(rng.randint(2, 6))]
        async with anyio.create_task_group() as outer:
            async with sessions:
                sessions.on_destroy(recorder.sync("L"))
                target = await sessions.create(on_destroy=hooks())
                if shutdown_races:
                    for op, delay in ops:
                        outer.start_soon(racer, op, delay)
                    for _ in range(rng.randint(0, 6)):
                        await anyio.lowlevel.checkpoint()
                else:
                    async with anyio.create_task_group() as inner:
                        for op, delay in ops:
                            inner.start_soon(racer, op, delay)
                    for _ in range(1000):  # let expiry hook tasks finish before leaving
                        if all(s.state is not DESTROYING for s in [target, *created]):
                            break
                        await anyio.lowlevel.checkpoint()
        assert len(sessions) == 0, (seed, ops)
        self.check_exactly_once(recorder, [target, *created], events, seed)
        self.check_winner(target, results, seed)
        return target.reason

    @pytest.mark.anyio
    async def test_destroy_complete_expiry_eviction(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """Randomized schedules of destroy/complete/expiry/eviction: hooks run once, one winner."""
        reasons = collections.Counter(
            [await self.race(seed, clock, bus, events, shutdown_races=False) for seed in range(300)]
        )
        assert set(reasons) == {"closed", "completed", "expired", "evicted"}

    @pytest.mark.anyio
    async def test_with_shutdown_racing(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """The same races with the block left mid-flight: still exactly once."""
        reasons = collections.Counter(
            [await self.race(seed, clock, bus, events, shutdown_races=True) for seed in range(300)]
        )
        assert set(reasons) >= {"closed", "completed", "expired", "evicted", "shutdown"}


class TestScale:
    @pytest.mark.anyio
    async def test_100k_sessions_with_mixed_ttls(self, clock: ManualClock) -> None:
        """100,000 sessions with mixed ttls all expire on time, each hook run exactly once."""
        n = 100_000
        runs = bytearray(n)
        listened = [0]

        def hook(session: Session) -> None:
            runs[session.data] += 1

        def listener(session: Session) -> None:
            listened[0] += 1

        async with SessionManager(None, clock=clock, bus=EventBus()) as sessions:
            sessions.on_destroy(listener)
            for i in range(n):
                await sessions.create(i, ttl=1 + i % 100, on_destroy=hook)
            assert len(sessions) == n
            for step, expected_live in ((25, 75_000), (25, 50_000), (49.5, 1_000), (0.5, 0)):
                await advance(clock, step)
                assert len(sessions) == expected_live
            assert not sessions._heap
        assert runs == bytearray([1]) * n
        assert listened[0] == n


class TestGeneric:
    def test_subscripted_manager_runs_as_the_bare_one(self) -> None:
        """SessionManager[T] and Session[T] subscribe at runtime; the instances keep their slots."""
        manager = SessionManager[dict[str, int]](idle_timeout=5, name="typed")
        assert type(manager) is SessionManager
        assert manager.name == "typed"
        assert not hasattr(manager, "__dict__")
        assert Session[int].__origin__ is Session  # type: ignore[attr-defined]

    @pytest.mark.anyio
    async def test_sessions_of_a_subscripted_manager(
        self, clock: ManualClock, bus: EventBus
    ) -> None:
        """A SessionManager[T] creates plain Sessions, without a __dict__ of their own."""
        async with SessionManager[list[int]](clock=clock, bus=bus) as sessions:
            session = await sessions.create([1, 2])
            assert type(session) is Session
            assert session.data == [1, 2]
            assert not hasattr(session, "__dict__")


class Flight:
    """A factory that counts its calls and, until told otherwise, waits at a gate."""

    def __init__(self, fail: int = 0) -> None:
        self.calls = 0
        self.fail = fail  # how many calls raise before one succeeds
        self.gate = anyio.Event()

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        call = self.calls
        await self.gate.wait()
        if call <= self.fail:
            raise Boom(f"call {call}")
        return {"call": call}


class TestGetOrCreate:
    @pytest.mark.anyio
    async def test_many_tasks_one_session(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """200 tasks asking for one id at once: the factory runs once, all get that session."""
        flight = Flight()
        got: list[Session] = []

        async def ask() -> None:
            got.append(await sessions.get_or_create("alice", flight))

        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(ask)
                await anyio.wait_all_tasks_blocked()
                assert flight.calls == 1
                assert "alice" not in sessions  # not live until the factory is through
                flight.gate.set()
            assert len(got) == 200
            assert {id(s) for s in got} == {id(got[0])}
            assert got[0].data == {"call": 1}
            assert got[0].id == "alice"
            assert len(sessions) == 1
        assert [e.session_id for e in of_type(events, SessionCreated)] == ["alice"]

    @pytest.mark.anyio
    async def test_many_ids_many_tasks(self, make: Callable[..., SessionManager]) -> None:
        """Tasks on 10 ids, 30 each, shuffled: one session per id, shared by its tasks."""
        calls: collections.Counter[str] = collections.Counter()

        def factory(key: str) -> Callable[[], Awaitable[str]]:
            async def make_data() -> str:
                calls[key] += 1
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                return key.upper()

            return make_data

        got: dict[str, list[Session]] = collections.defaultdict(list)

        async def ask(key: str, delay: int) -> None:
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            got[key].append(await sessions.get_or_create(key, factory(key)))

        keys = [f"k{i}" for i in range(10)] * 30
        rng = random.Random(3)
        rng.shuffle(keys)
        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(ask, key, rng.randint(0, 5))
            assert len(sessions) == 10
            for key, sessions_of_key in got.items():
                assert len(sessions_of_key) == 30
                assert all(s is sessions_of_key[0] for s in sessions_of_key)
                assert sessions_of_key[0].data == key.upper()
                assert await sessions.get(key) is sessions_of_key[0]
        assert calls == dict.fromkeys(got, 1)

    @pytest.mark.anyio
    async def test_without_factory(self, make: Callable[..., SessionManager]) -> None:
        """Without a factory the data is None, and concurrent callers still share one session."""
        got: list[Session] = []

        async def ask() -> None:
            got.append(await sessions.get_or_create("bob"))

        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(ask)
            assert len(sessions) == 1
        assert all(s is got[0] for s in got)
        assert got[0].data is None

    @pytest.mark.anyio
    async def test_sync_factory_and_one_returning_an_awaitable(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """A plain factory's value is the data; an awaitable it returns is awaited."""

        async def later() -> str:
            await anyio.lowlevel.checkpoint()
            return "awaited"

        def start_later() -> Awaitable[str]:
            return later()

        async with make() as sessions:
            assert (await sessions.get_or_create("a", dict)).data == {}
            assert (await sessions.get_or_create("b", start_later)).data == "awaited"
            assert (await sessions.get_or_create("c", functools.partial(later))).data == "awaited"

    @pytest.mark.anyio
    async def test_an_existing_session_is_touched_and_options_ignored(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A live session is returned and touched; the factory and options are not used."""
        recorder = Recorder()
        flight = Flight()
        async with make(idle_timeout=10, max_sessions=2) as sessions:
            first = await sessions.create("mine", id="a", on_destroy=recorder.sync("own"))
            await sessions.create(id="b")
            await advance(clock, 6)
            again = await sessions.get_or_create(
                "a", flight, ttl=99, on_destroy=recorder.sync("other")
            )
            assert again is first
            assert flight.calls == 0
            assert (first.touched_at, first.deadline, first.ttl) == (6, 16, 10)
            await sessions.create(id="c")  # evicts b, the least recently touched now
            assert "a" in sessions
            assert "b" not in sessions
            await sessions.destroy("a")
        assert recorder.names() == ["own"]

    @pytest.mark.anyio
    async def test_new_session_takes_the_options(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """A session made by get_or_create gets the ttl, hooks and heartbeat given."""
        recorder = Recorder()
        async with make(idle_timeout=100) as sessions:
            ttl = await sessions.get_or_create("ttl", ttl=5, on_destroy=recorder.sync("h"))
            beat = await sessions.get_or_create("beat", heartbeat=2, missed=2)
            assert (ttl.ttl, ttl.deadline) == (5, 5)
            assert beat.deadline == 4
            await advance(clock, 5)
            assert (ttl.reason, beat.reason) == ("expired", "heartbeat")
        assert recorder.calls == [("h", "ttl")]

    @pytest.mark.anyio
    async def test_a_destroyed_session_is_replaced(
        self, make: Callable[..., SessionManager], clock: ManualClock
    ) -> None:
        """Once a session is destroyed or expired, the next call creates a new one."""
        async with make(idle_timeout=10) as sessions:
            first = await sessions.get_or_create("a", list)
            await sessions.destroy("a")
            second = await sessions.get_or_create("a", list)
            assert second is not first
            assert second.state is SessionState.ACTIVE
            await advance(clock, 10)
            assert second.reason == "expired"
            third = await sessions.get_or_create("a", list)
            assert third is not second
            assert third.created_at == 10

    @pytest.mark.anyio
    async def test_destroyed_before_the_waiters_resume(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """A session destroyed between its creation and a waiter's turn is made anew for it."""
        flight = Flight()
        got: list[Session] = []

        async def ask_then_destroy() -> None:
            got.append(await sessions.get_or_create("a", flight))
            await sessions.destroy("a")  # (no await in it yields: the waiter is still asleep)

        async def ask() -> None:
            got.append(await sessions.get_or_create("a", flight))

        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask_then_destroy)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(ask)  # waits on the first task's flight
                await anyio.wait_all_tasks_blocked()
                assert flight.calls == 1
                flight.gate.set()
            assert flight.calls == 2
            assert got[0] is not got[1]
            assert [s.state for s in got] == [SessionState.DESTROYED, SessionState.ACTIVE]
            assert await sessions.get("a") is got[1]

    @pytest.mark.anyio
    async def test_a_failing_factory(self, make: Callable[..., SessionManager]) -> None:
        """If the factory raises, its caller gets the error and a waiting caller tries again."""
        flight = Flight(fail=1)
        got: list[Session] = []
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                got.append(await sessions.get_or_create("a", flight))
            except Boom as exc:
                errors.append(exc)

        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(ask)
                await anyio.wait_all_tasks_blocked()
                flight.gate.set()
            assert [str(e) for e in errors] == ["call 1"]
            assert flight.calls == 2
            assert len(got) == 19
            assert all(s is got[0] for s in got)
            assert got[0].data == {"call": 2}
            assert sessions._flights == {}

    @pytest.mark.anyio
    async def test_a_creator_cancelled_in_the_factory(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """A caller cancelled while its factory runs creates nothing; a waiter takes over."""
        flight = Flight()
        got: list[Session] = []

        async def ask() -> None:
            got.append(await sessions.get_or_create("a", flight))

        async with make() as sessions:
            async with anyio.create_task_group() as tg:
                async with anyio.create_task_group() as creator:
                    creator.start_soon(ask)
                    await anyio.wait_all_tasks_blocked()
                    tg.start_soon(ask)  # waits on the creator's flight
                    await anyio.wait_all_tasks_blocked()
                    assert flight.calls == 1
                    creator.cancel_scope.cancel()  # the creator, inside its factory
                await anyio.wait_all_tasks_blocked()
                assert flight.calls == 2  # the waiter runs the factory in its turn
                flight.gate.set()
            assert len(got) == 1
            assert got[0].data == {"call": 2}
            assert len(sessions) == 1
            assert sessions._flights == {}

    @pytest.mark.anyio
    async def test_create_refuses_an_id_in_flight(
        self, make: Callable[..., SessionManager]
    ) -> None:
        """create(id=...) of an id get_or_create is making is a ValueError; the flight wins."""
        flight = Flight()
        async with make() as sessions, anyio.create_task_group() as tg:
            tg.start_soon(sessions.get_or_create, "a", flight)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ValueError, match="being created by get_or_create: 'a'"):
                await sessions.create(id="a")
            flight.gate.set()
            await anyio.wait_all_tasks_blocked()
            assert (await sessions.get("a")).data == {"call": 1}

    @pytest.mark.anyio
    async def test_shutdown_while_the_factory_runs(
        self, make: Callable[..., SessionManager], events: list[Event]
    ) -> None:
        """Data made while the manager shuts down is handed to the hooks, then RuntimeError."""
        recorder = Recorder()
        flight = Flight()
        outcomes: list[BaseException] = []
        seen: list[Any] = []

        async def ask() -> None:
            try:
                await sessions.get_or_create(
                    "a", flight, on_destroy=[recorder.sync("own"), lambda s: seen.append(s.data)]
                )
            except RuntimeError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            async with make() as sessions:
                sessions.on_destroy(recorder.sync("L"))
                tg.start_soon(ask)
                tg.start_soon(ask)  # waits on the first's flight
                await anyio.wait_all_tasks_blocked()
            flight.gate.set()
        assert len(outcomes) == 2
        assert all("shutting down" in str(e) for e in outcomes)
        assert recorder.names() == ["own", "L"]
        assert seen == [{"call": 1}]
        assert [e.reason for e in of_type(events, SessionDestroyed)] == ["shutdown"]
        assert len(of_type(events, SessionCreated)) == 1

    @pytest.mark.anyio
    async def test_not_running(self, make: Callable[..., SessionManager]) -> None:
        """Before the block starts the manager, get_or_create is a RuntimeError."""
        with pytest.raises(RuntimeError, match="async with"):
            await make().get_or_create("a")

    @pytest.mark.parametrize(
        ("args", "options", "error", "param"),
        [
            (("",), {}, TypeError, "session_id"),
            ((5,), {}, TypeError, "session_id"),
            (("a", 5), {}, TypeError, "factory"),
            (("a", list), {"ttl": 0}, ValueError, "ttl"),
            (("a", list), {"heartbeat": -1}, ValueError, "heartbeat"),
            (("a", list), {"missed": 0}, ValueError, "missed"),
            (("a", list), {"on_destroy": [print, 5]}, TypeError, "on_destroy"),
        ],
    )
    @pytest.mark.anyio
    async def test_bad_arguments_fail_before_the_factory(
        self,
        make: Callable[..., SessionManager],
        args: tuple[Any, ...],
        options: dict[str, Any],
        error: type[Exception],
        param: str,
    ) -> None:
        """Bad arguments fail naming the parameter, before the factory runs, creating nothing."""
        calls: list[str] = []
        if len(args) == 2 and args[1] is list:
            args = (args[0], lambda: calls.append("called"))
        async with make() as sessions:
            with pytest.raises(error, match=f"'{param}'"):
                await sessions.get_or_create(*args, **options)
            assert calls == []
            assert len(sessions) == 0
            assert sessions._flights == {}

    @staticmethod
    async def race(
        seed: int, sessions: SessionManager, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> tuple[int, int]:
        """One random schedule; returns how many factories failed and sessions ended."""
        rng = random.Random(seed)
        events.clear()
        made: list[object] = []
        got: list[Session] = []
        failures = 0
        live: collections.Counter[str] = collections.Counter()
        twice: list[str] = []  # (the bus isolates a handler that raises)

        async def make_data() -> object:
            for _ in range(rng.randint(0, 3)):
                await anyio.lowlevel.checkpoint()
            if rng.random() < 0.2:
                raise Boom
            data = object()
            made.append(data)
            return data

        async def caller(key: str, delay: int) -> None:
            nonlocal failures
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            try:
                session = await sessions.get_or_create(key, make_data)
            except Boom:
                failures += 1
                return
            assert session.id == key, seed
            assert session.state is SessionState.ACTIVE, seed
            assert await sessions.get(key) is session, seed
            got.append(session)

        async def spoiler(key: str, delay: int) -> None:
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            if rng.random() < 0.5:
                await sessions.destroy(key)
            else:
                clock.advance(10)

        def count(event: Event) -> None:
            if isinstance(event, SessionCreated):
                live[event.session_id] += 1
                if live[event.session_id] > 1:
                    twice.append(event.session_id)
            elif isinstance(event, SessionDestroyed):
                live[event.session_id] -= 1

        unsubscribe = bus.subscribe(Event, count)
        async with sessions, anyio.create_task_group() as tg:
            for _ in range(rng.randint(5, 40)):
                task = caller if rng.random() < 0.8 else spoiler
                tg.start_soon(task, rng.choice("abc"), rng.randint(0, 8))
        unsubscribe()
        assert twice == [], seed
        assert sessions._flights == {}, seed
        assert len(of_type(events, SessionCreated)) == len(made), seed
        assert {id(s.data) for s in got} <= {id(d) for d in made}, seed
        ended = [e for e in of_type(events, SessionDestroyed) if e.reason != "shutdown"]
        return failures, len(ended)

    @pytest.mark.anyio
    async def test_randomized_races(
        self,
        make: Callable[..., SessionManager],
        clock: ManualClock,
        bus: EventBus,
        events: list[Event],
    ) -> None:
        """Random callers, destroys, expiries and failing factories on a few ids.

        Each caller gets a live session with its id (or its own factory's error); every
        factory result becomes exactly one session; no id is created twice while a
        session of it is live.
        """
        failed = ended = 0
        for seed in range(150):
            f, e = await self.race(seed, make(idle_timeout=10), clock, bus, events)
            failed += f
            ended += e
        assert failed > 50
        assert ended > 50
