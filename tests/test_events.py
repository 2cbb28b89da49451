"""The event bus: routing by class, ordering, isolation of failing handlers, threads."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import attrs
import pytest

import resilio._events
from resilio import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    default_bus,
)


@attrs.frozen(kw_only=True)
class Ping(Event):
    """A test event."""

    n: int = 0


@attrs.frozen(kw_only=True)
class Pong(Ping):
    """A subclass of the test event."""


@attrs.frozen(kw_only=True)
class Other(Event):
    """An unrelated test event."""


def ping(n: int = 0) -> Ping:
    """Build a Ping from a fixed source at a fixed time."""
    return Ping(source="test", at=1.0, n=n)


class TestRouting:
    """Handlers receive the events of the class they subscribed to, and its subclasses."""

    def test_subscribe_by_class(self, bus: EventBus) -> None:
        """A handler receives events of its class and not of unrelated classes."""
        seen: list[Event] = []
        bus.subscribe(Ping, seen.append)
        event = ping()
        bus.publish(event)
        bus.publish(Other(source="test", at=0.0))
        assert seen == [event]
        assert seen[0] is event

    def test_base_class_receives_subclasses(self, bus: EventBus) -> None:
        """Subscribing to a base class receives its subclasses; not the other way round."""
        on_ping: list[Event] = []
        on_pong: list[Event] = []
        bus.subscribe(Ping, on_ping.append)
        bus.subscribe(Pong, on_pong.append)
        a, b = ping(1), Pong(source="test", at=0.0, n=2)
        bus.publish(a)
        bus.publish(b)
        assert on_ping == [a, b]
        assert on_pong == [b]

    def test_event_receives_everything(self, bus: EventBus) -> None:
        """A handler subscribed to Event receives every event, built-in ones included."""
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        published: list[Event] = [
            ping(),
            Pong(source="s", at=0.0),
            Other(source="s", at=0.0),
            CircuitStateChanged(
                source="b", at=0.0, old=CircuitState.CLOSED, new=CircuitState.OPEN, reason="x"
            ),
            CallRejected(source="b", at=0.0, state=CircuitState.OPEN, retry_after=1.0),
            Event(source="s", at=0.0),
        ]
        for event in published:
            bus.publish(event)
        assert seen == published

    def test_handlers_run_in_subscription_order(self, bus: EventBus) -> None:
        """Handlers run in the order they subscribed, whatever class each chose."""
        calls: list[str] = []
        bus.subscribe(Event, lambda e: calls.append("event-1"))
        bus.subscribe(Pong, lambda e: calls.append("pong"))
        bus.subscribe(Ping, lambda e: calls.append("ping"))
        bus.subscribe(Other, lambda e: calls.append("other"))
        bus.subscribe(Event, lambda e: calls.append("event-2"))
        bus.publish(Pong(source="s", at=0.0))
        assert calls == ["event-1", "pong", "ping", "event-2"]
        calls.clear()
        bus.publish(ping())
        assert calls == ["event-1", "ping", "event-2"]

    def test_same_handler_twice_runs_twice(self, bus: EventBus) -> None:
        """Subscribing one handler twice delivers each event to it twice."""
        seen: list[Event] = []
        bus.subscribe(Ping, seen.append)
        bus.subscribe(Ping, seen.append)
        bus.publish(ping())
        assert len(seen) == 2

    def test_publish_with_no_subscribers(self, bus: EventBus) -> None:
        """Publishing with nobody listening does nothing and raises nothing."""
        bus.publish(ping())

    def test_subscription_during_publish_applies_to_next_event(self, bus: EventBus) -> None:
        """A handler subscribed by a handler receives the next event, not the current one."""
        late: list[Event] = []

        def subscribe_late(event: Event) -> None:
            if not late and isinstance(event, Ping) and event.n == 1:
                bus.subscribe(Ping, late.append)

        bus.subscribe(Ping, subscribe_late)
        bus.publish(ping(1))
        assert late == []
        second = ping(2)
        bus.publish(second)
        assert late == [second]


class TestUnsubscribe:
    """The function subscribe() returns removes exactly that subscription."""

    def test_unsubscribe_stops_delivery(self, bus: EventBus) -> None:
        """After unsubscribing, the handler receives nothing."""
        seen: list[Event] = []
        unsubscribe = bus.subscribe(Ping, seen.append)
        bus.publish(ping(1))
        unsubscribe()
        bus.publish(ping(2))
        assert [e.n for e in seen if isinstance(e, Ping)] == [1]

    def test_unsubscribe_is_idempotent(self, bus: EventBus) -> None:
        """Calling the unsubscribe function twice is harmless and removes no other handler."""
        first: list[Event] = []
        second: list[Event] = []
        unsubscribe = bus.subscribe(Ping, first.append)
        bus.subscribe(Ping, second.append)
        unsubscribe()
        unsubscribe()
        bus.publish(ping())
        assert first == []
        assert len(second) == 1

    def test_unsubscribe_removes_only_its_own_subscription(self, bus: EventBus) -> None:
        """With one handler subscribed twice, one unsubscribe removes one delivery."""
        seen: list[Event] = []
        unsubscribe = bus.subscribe(Ping, seen.append)
        bus.subscribe(Ping, seen.append)
        unsubscribe()
        bus.publish(ping())
        assert len(seen) == 1

    def test_handler_unsubscribing_itself_during_publish(self, bus: EventBus) -> None:
        """A handler that unsubscribes itself mid-publish lets the later handlers run."""
        calls: list[str] = []
        handles: list[Any] = []

        def once(event: Event) -> None:
            calls.append("once")
            handles[0]()

        handles.append(bus.subscribe(Ping, once))
        bus.subscribe(Ping, lambda e: calls.append("after"))
        bus.publish(ping())
        bus.publish(ping())
        assert calls == ["once", "after", "after"]


class TestFailingHandlers:
    """A handler that raises is logged and never breaks the publisher or other handlers."""

    def test_raising_handler_is_logged_and_others_run(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        """publish() logs a raising handler on 'resilio', runs the rest and does not raise."""
        calls: list[str] = []
        error = RuntimeError("handler broke")

        def broken(event: Event) -> None:
            calls.append("broken")
            raise error

        bus.subscribe(Ping, lambda e: calls.append("before"))
        bus.subscribe(Ping, broken)
        bus.subscribe(Ping, lambda e: calls.append("after"))
        with caplog.at_level(logging.ERROR, logger="resilio"):
            bus.publish(ping())
        assert calls == ["before", "broken", "after"]
        records = [r for r in caplog.records if r.name == "resilio"]
        assert len(records) == 1
        assert records[0].levelno == logging.ERROR
        assert records[0].exc_info is not None
        assert records[0].exc_info[1] is error

    def test_raising_handler_does_not_break_the_primitive(
        self, clock: ManualClock, bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A breaker whose event handler raises still trips and rejects normally."""

        def broken(event: Event) -> None:
            raise RuntimeError("handler broke")

        bus.subscribe(Event, broken)
        breaker = CircuitBreaker(failure_threshold=1, clock=clock, bus=bus)
        with caplog.at_level(logging.ERROR, logger="resilio"):
            breaker.record_failure()
            assert breaker.state is CircuitState.OPEN
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: None)
        assert len([r for r in caplog.records if r.name == "resilio"]) == 2


class TestWants:
    """wants() says whether building an event is worth it."""

    def test_false_without_subscribers(self, bus: EventBus) -> None:
        """Nobody subscribed: wants() is False for any class."""
        assert not bus.wants(Event)
        assert not bus.wants(Ping)
        assert not bus.wants(CircuitStateChanged)

    def test_true_for_class_and_subclasses(self, bus: EventBus) -> None:
        """A subscriber makes wants() True for its class and subclasses, not for others."""
        bus.subscribe(Ping, lambda e: None)
        assert bus.wants(Ping)
        assert bus.wants(Pong)
        assert not bus.wants(Other)
        assert not bus.wants(Event)

    def test_true_for_everything_with_event_subscriber(self, bus: EventBus) -> None:
        """A subscriber to Event makes wants() True for every class."""
        bus.subscribe(Event, lambda e: None)
        for cls in (Event, Ping, Pong, Other, CircuitStateChanged, CallRejected):
            assert bus.wants(cls)

    def test_false_again_after_unsubscribe(self, bus: EventBus) -> None:
        """Unsubscribing the last interested handler makes wants() False again."""
        unsubscribe = bus.subscribe(Ping, lambda e: None)
        assert bus.wants(Pong)
        unsubscribe()
        assert not bus.wants(Pong)
        assert not bus.wants(Ping)

    def test_subscription_after_a_query_is_seen(self, bus: EventBus) -> None:
        """A subscription made after wants() was asked (and cached) is seen."""
        assert not bus.wants(Pong)
        bus.subscribe(Event, lambda e: None)
        assert bus.wants(Pong)


class TestEvents:
    """Events are frozen attrs classes that carry their source and time."""

    def test_events_carry_source_and_at(self) -> None:
        """Every event has the source and at it was built with."""
        event = CallRejected(source="payments", at=12.5, state=CircuitState.OPEN, retry_after=3.0)
        assert event.source == "payments"
        assert event.at == 12.5
        assert isinstance(event, Event)

    def test_events_are_frozen(self) -> None:
        """Assigning to a field of an event raises attrs' FrozenInstanceError."""
        event = CircuitStateChanged(
            source="b", at=0.0, old=CircuitState.CLOSED, new=CircuitState.OPEN, reason="r"
        )
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.source = "other"  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.reason = "other"  # type: ignore[misc]
        base = Event(source="s", at=0.0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            base.at = 1.0  # type: ignore[misc]

    def test_events_are_attrs_classes_with_equality(self) -> None:
        """Events are attrs classes compared by value."""
        assert attrs.has(CircuitStateChanged)
        assert attrs.has(CallRejected)
        assert Event(source="s", at=1.0) == Event(source="s", at=1.0)
        assert Event(source="s", at=1.0) != Event(source="s", at=2.0)

    def test_primitive_events_carry_name_and_clock_time(
        self, clock: ManualClock, bus: EventBus, events: list[Event]
    ) -> None:
        """A breaker's events carry its name as source and its clock's time as at."""
        clock.advance(7.0)
        breaker = CircuitBreaker(name="db", failure_threshold=1, clock=clock, bus=bus)
        breaker.record_failure()
        clock.advance(1.0)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        assert [type(e) for e in events] == [CircuitStateChanged, CallRejected]
        changed, rejected = events
        assert isinstance(changed, CircuitStateChanged)
        assert (changed.source, changed.at) == ("db", 7.0)
        assert (changed.old, changed.new) == (CircuitState.CLOSED, CircuitState.OPEN)
        assert isinstance(rejected, CallRejected)
        assert (rejected.source, rejected.at) == ("db", 8.0)


class TestValidation:
    """subscribe() rejects what cannot work, at once."""

    @pytest.mark.parametrize("event_type", [int, object, "Event", None, Event(source="s", at=0.0)])
    def test_rejects_non_event_types(self, bus: EventBus, event_type: Any) -> None:
        """Subscribing to anything but an Event subclass is a TypeError naming 'event_type'."""
        with pytest.raises(TypeError, match="'event_type'"):
            bus.subscribe(event_type, lambda e: None)
        assert not bus.wants(Event)

    @pytest.mark.parametrize("handler", [None, 42, "print"])
    def test_rejects_non_callables(self, bus: EventBus, handler: Any) -> None:
        """A handler that is not callable is a TypeError naming 'handler'."""
        with pytest.raises(TypeError, match="'handler'"):
            bus.subscribe(Event, handler)
        assert not bus.wants(Event)


class TestDefaultBus:
    """One process-wide bus is the default for every primitive."""

    def test_same_bus_every_time(self) -> None:
        """default_bus() returns the same EventBus on every call."""
        assert isinstance(default_bus(), EventBus)
        assert default_bus() is default_bus()

    def test_primitives_publish_on_default_bus(self, clock: ManualClock) -> None:
        """A primitive built without bus= publishes on default_bus()."""
        seen: list[Event] = []
        unsubscribe = default_bus().subscribe(CircuitStateChanged, seen.append)
        try:
            breaker = CircuitBreaker(name="default-bus-probe", failure_threshold=1, clock=clock)
            breaker.record_failure()
        finally:
            unsubscribe()
        assert [e.source for e in seen] == ["default-bus-probe"]


class TestThreads:
    """Subscribing and unsubscribing are thread-safe."""

    def test_concurrent_subscribe_loses_nothing(self, bus: EventBus) -> None:
        """Eight threads subscribing at once: every subscription receives the next event."""
        threads_n, per_thread = 8, 250
        barrier = threading.Barrier(threads_n)
        counts = [0] * threads_n
        lock = threading.Lock()

        def make_handler(i: int) -> Any:
            def handler(event: Event) -> None:
                with lock:
                    counts[i] += 1

            return handler

        def subscribe_many(i: int) -> None:
            handler = make_handler(i)
            barrier.wait(timeout=10)
            for j in range(per_thread):
                bus.subscribe(Ping, handler)
                if j % 10 == 0:
                    bus.wants(Ping)  # race a cache rebuild against the subscriptions

        threads = [threading.Thread(target=subscribe_many, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        bus.publish(ping())
        assert counts == [per_thread] * threads_n

    def test_concurrent_unsubscribe_removes_exactly_those(self, bus: EventBus) -> None:
        """Eight threads unsubscribing at once remove exactly their own subscriptions."""
        threads_n, per_thread = 8, 100
        seen: list[int] = []
        keep = bus.subscribe(Ping, lambda e: seen.append(-1))

        def record(i: int, event: Event) -> None:
            seen.append(i)

        handles = [
            [bus.subscribe(Ping, functools.partial(record, i)) for _ in range(per_thread)]
            for i in range(threads_n)
        ]
        barrier = threading.Barrier(threads_n)

        def unsubscribe_all(i: int) -> None:
            barrier.wait(timeout=10)
            for handle in handles[i]:
                handle()

        threads = [threading.Thread(target=unsubscribe_all, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        bus.publish(ping())
        assert seen == [-1]
        keep()


class TestSequence:
    """The bus numbers the events it delivers."""

    def test_numbers_start_at_one_and_increase(self, bus: EventBus) -> None:
        """Each delivered event gets the bus's next number, whatever its class."""
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        bus.publish(ping(1))
        bus.publish(Other(source="x", at=0.0))
        bus.publish(ping(2))
        assert [e.seq for e in seen] == [1, 2, 3]

    def test_undelivered_events_take_no_number(self, bus: EventBus) -> None:
        """An event nobody receives keeps seq 0 and uses no number."""
        seen: list[Event] = []
        bus.subscribe(Ping, seen.append)
        lost = Other(source="x", at=0.0)
        bus.publish(lost)
        bus.publish(ping())
        assert lost.seq == 0
        assert [e.seq for e in seen] == [1]

    def test_numbers_are_per_bus(self) -> None:
        """Two buses count independently."""
        first, second = EventBus(), EventBus()
        seen: list[Event] = []
        first.subscribe(Event, seen.append)
        second.subscribe(Event, seen.append)
        first.publish(ping())
        second.publish(ping())
        assert [e.seq for e in seen] == [1, 1]

    def test_seq_takes_no_part_in_equality(self, bus: EventBus) -> None:
        """A delivered event equals an undelivered one that says the same thing."""
        bus.subscribe(Event, lambda e: None)
        delivered = ping(3)
        bus.publish(delivered)
        assert delivered.seq == 1
        assert delivered == ping(3)
        assert hash(delivered) == hash(ping(3))

    def test_numbers_are_unique_across_threads(self, bus: EventBus) -> None:
        """Eight threads publishing at once never share a number."""
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        threads = [
            threading.Thread(target=lambda: [bus.publish(ping(i)) for i in range(500)])
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(e.seq for e in seen) == list(range(1, 4001))


class TestWall:
    """The bus stamps the events it delivers with the Unix time."""

    def test_delivered_events_carry_the_unix_time(
        self, bus: EventBus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``wall`` is what time.time() said when the bus delivered the event."""
        times = iter([1_700_000_000.25, 1_700_000_001.5])
        monkeypatch.setattr(resilio._events, "_wall", lambda: next(times))
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        bus.publish(ping(1))
        bus.publish(ping(2))
        assert [e.wall for e in seen] == [1_700_000_000.25, 1_700_000_001.5]

    def test_the_system_time_by_default(self, bus: EventBus) -> None:
        """Without a replacement, ``wall`` comes from time.time(), even under a ManualClock."""
        seen: list[Event] = []
        bus.subscribe(Event, seen.append)
        breaker = CircuitBreaker(failure_threshold=1, clock=ManualClock(), bus=bus)
        before = time.time()
        breaker.record_failure()
        after = time.time()
        (change,) = seen
        assert change.at == 0.0
        assert before <= change.wall <= after

    def test_undelivered_events_keep_zero(self, bus: EventBus) -> None:
        """An event nobody receives is not stamped."""
        bus.subscribe(Ping, lambda e: None)
        lost = Other(source="x", at=0.0)
        bus.publish(lost)
        assert lost.wall == 0.0

    def test_wall_takes_no_part_in_equality(self, bus: EventBus) -> None:
        """A delivered event equals, and hashes like, an undelivered one saying the same."""
        bus.subscribe(Event, lambda e: None)
        delivered = ping(3)
        bus.publish(delivered)
        assert delivered.wall > 0
        assert delivered == ping(3)
        assert hash(delivered) == hash(ping(3))
        assert "wall" in repr(delivered)


class TestBrokenLogging:
    """A handler's failure is reported even when logging itself fails."""

    def test_a_raising_log_handler_breaks_nothing(
        self, bus: EventBus, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The resilio logger's handler raises too: publish returns, the next handler runs,
        and the failure reaches standard error."""

        class Broken(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                raise OSError("log sink down")

        seen: list[Event] = []

        def failing(event: Event) -> None:
            raise RuntimeError("handler bug")

        bus.subscribe(Event, failing)
        bus.subscribe(Event, seen.append)
        resilio_logger = logging.getLogger("resilio")
        broken = Broken()
        resilio_logger.addHandler(broken)
        try:
            bus.publish(ping())
        finally:
            resilio_logger.removeHandler(broken)
        assert len(seen) == 1
        err = capsys.readouterr().err
        assert "log sink down" in err
