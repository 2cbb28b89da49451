"""log_events: one structured log record per event, at a level chosen by its class; what it
subscribes to (never CallCompleted unless asked), level_map, loggers, unsubscribing, bad
arguments, a broken logging handler, threads, asyncio and trio.

Time is a ManualClock; nothing sleeps for real.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import pytest

import resilio._log
from resilio import (
    CallCompleted,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    DestroyHookFailed,
    Event,
    EventBus,
    Fallback,
    FallbackUsed,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    Retry,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    SessionCreated,
    SessionDestroyed,
    SessionExpired,
    TaskFailed,
    TaskRejected,
    TimedOut,
    Timeout,
    TokenBucket,
    log_events,
)

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
_names = itertools.count()


class Boom(Exception):
    """The failure the guarded functions raise."""


@attrs.frozen(kw_only=True)
class Custom(Event):
    """An event class of the application's own."""

    size: int = 0


class Records(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def rows(self) -> list[tuple[str, str]]:
        """(level name, message) per record."""
        return [(r.levelname, r.getMessage()) for r in self.records]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of the test's own, at DEBUG, not propagating, with a Records handler."""
    log = logging.getLogger(f"test.log_events.{next(_names)}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(Records())
    yield log
    log.handlers.clear()


def records(logger: logging.Logger) -> Records:
    """The Records handler of *logger*."""
    handler = logger.handlers[0]
    assert isinstance(handler, Records)
    return handler


def one_of_each() -> list[Event]:
    """One event of every class resilio publishes, CallCompleted aside."""
    error = Boom("down")
    return [
        CircuitStateChanged(
            source="db", at=1.0, old=CircuitState.CLOSED, new=CircuitState.OPEN, reason="x"
        ),
        CircuitStateChanged(
            source="db", at=2.0, old=CircuitState.OPEN, new=CircuitState.HALF_OPEN, reason="y"
        ),
        CircuitStateChanged(
            source="db", at=3.0, old=CircuitState.HALF_OPEN, new=CircuitState.CLOSED, reason="z"
        ),
        CallRejected(source="db", at=1.5, state=CircuitState.OPEN, retry_after=28.5),
        RateLimited(source="api", at=0.0, amount=1, retry_after=0.5, rejected=True),
        RateLimited(source="api", at=0.0, amount=2, retry_after=None, rejected=False),
        RetryScheduled(source="fetch", at=0.0, attempt=1, delay=0.25, error=error),
        RetryExhausted(source="fetch", at=0.0, attempts=3, error=error),
        RetryRefused(source="fetch", at=0.0, attempt=2, error=None),
        FallbackUsed(source="prices", at=0.0, error=error),
        TimedOut(source="api", at=0.0, seconds=2.0),
        TaskRejected(source="pool", at=0.0, queued=10),
        TaskFailed(source="pool", at=0.0, error=error),
        SessionCreated(source="sessions", at=0.0, session_id="s1"),
        SessionExpired(source="sessions", at=0.0, session_id="s1", reason="expired", late=0.01),
        SessionDestroyed(source="sessions", at=0.0, session_id="s1", reason="expired"),
        DestroyHookFailed(source="sessions", at=0.0, session_id="s1", error=error),
    ]


class TestRecords:
    """What each event becomes: a level, a readable message, the fields in extra."""

    def test_default_levels_and_messages(self, bus: EventBus, logger: logging.Logger) -> None:
        """Every resilio event is logged once, at its default level, with a readable line."""
        log_events(logger, bus=bus)
        for event in one_of_each():
            bus.publish(event)
        assert records(logger).rows() == [
            ("WARNING", "breaker 'db': closed -> open (x)"),
            ("INFO", "breaker 'db': open -> half_open (y)"),
            ("INFO", "breaker 'db': half_open -> closed (z)"),
            ("INFO", "breaker 'db' rejected a call (open, retry after 28.5s)"),
            ("INFO", "limiter 'api' refused 1 (retry after 0.5s)"),
            ("INFO", "limiter 'api' queued a request for 2 (ready in unknown)"),
            ("INFO", "retry 'fetch': try 1 failed (Boom('down')); next try in 0.25s"),
            ("WARNING", "retry 'fetch' gave up after 3 tries (attempts): Boom('down')"),
            ("WARNING", "retry 'fetch': the budget refused a retry after try 2: the result"),
            ("WARNING", "fallback 'prices' replaced Boom('down')"),
            ("WARNING", "timeout 'api' cancelled a call after 2s"),
            ("INFO", "pool 'pool' rejected a task (10 queued)"),
            ("ERROR", "pool 'pool': a task failed: Boom('down')"),
            ("DEBUG", "sessions 'sessions' created session 's1'"),
            ("DEBUG", "sessions 'sessions': session 's1' expired (expired, 0.01s late)"),
            ("DEBUG", "sessions 'sessions' destroyed session 's1' (expired)"),
            ("ERROR", "sessions 'sessions': a destroy hook of session 's1' failed: Boom('down')"),
        ]

    def test_fields_in_extra_with_a_prefix(self, bus: EventBus, logger: logging.Logger) -> None:
        """The event's fields are record attributes named resilio_<field>; enums as values."""
        log_events(logger, bus=bus)
        event = CircuitStateChanged(
            source="db", at=12.5, old=CircuitState.CLOSED, new=CircuitState.OPEN, reason="r"
        )
        bus.publish(event)
        (record,) = records(logger).records
        fields = {k: v for k, v in vars(record).items() if k.startswith("resilio_")}
        assert fields == {
            "resilio_event": "CircuitStateChanged",
            "resilio_source": "db",
            "resilio_at": 12.5,
            "resilio_seq": 1,
            "resilio_wall": event.wall,
            "resilio_old": "closed",
            "resilio_new": "open",
            "resilio_reason": "r",
        }
        assert record.name == logger.name
        assert record.exc_info is None

    def test_errors_and_their_type(self, bus: EventBus, logger: logging.Logger) -> None:
        """An event with an error gives the exception and its class name; a failed task or
        hook, which nobody else reports, is logged with its traceback."""
        log_events(logger, bus=bus)
        error = Boom("down")
        bus.publish(RetryScheduled(source="f", at=0.0, attempt=1, delay=0.1, error=error))
        bus.publish(TaskFailed(source="p", at=0.0, error=error))
        bus.publish(RetryRefused(source="f", at=0.0, attempt=1, error=None))
        scheduled, failed, refused = records(logger).records
        assert scheduled.resilio_error is error  # type: ignore[attr-defined]
        assert scheduled.resilio_error_type == "Boom"  # type: ignore[attr-defined]
        assert scheduled.exc_info is None
        assert failed.exc_info is not None
        assert failed.exc_info[1] is error
        assert refused.resilio_error is None  # type: ignore[attr-defined]
        assert not hasattr(refused, "resilio_error_type")

    def test_an_event_of_the_applications_own(self, bus: EventBus, logger: logging.Logger) -> None:
        """A class named in level_map is subscribed to and logged with its fields."""
        log_events(logger, level_map={Custom: WARNING}, bus=bus)
        bus.publish(Custom(source="app", at=0.0, size=3))
        assert records(logger).rows() == [("WARNING", "Custom from 'app': size=3")]
        assert records(logger).records[0].resilio_size == 3  # type: ignore[attr-defined]

    def test_nothing_made_for_a_level_the_logger_drops(
        self, bus: EventBus, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Below the logger's level no record, and no message, is made."""
        logger.setLevel(WARNING)
        made: list[Event] = []
        original = resilio._log._message
        monkeypatch.setattr(resilio._log, "_message", lambda e: made.append(e) or original(e))
        log_events(logger, bus=bus)
        for event in one_of_each():
            bus.publish(event)
        levels = {r.levelno for r in records(logger).records}
        assert levels == {WARNING, ERROR}
        assert len(made) == len(records(logger).records) == 7


class TestSubscriptions:
    """What log_events subscribes to, and unsubscribing."""

    def test_not_call_completed_by_default(self, bus: EventBus, logger: logging.Logger) -> None:
        """CallCompleted (which makes primitives time every call) is left alone by default,
        even with level_map={Event: ...}; everything else is subscribed to."""
        log_events(logger, bus=bus)
        log_events(logger, level_map={Event: DEBUG}, bus=bus)
        assert not bus.wants(CallCompleted)
        assert all(bus.wants(type(e)) for e in one_of_each())
        breaker = CircuitBreaker(name="quiet", bus=bus, clock=ManualClock())
        assert breaker.call(lambda: 7) == 7
        assert records(logger).records == []

    def test_call_completed_when_named(self, bus: EventBus, logger: logging.Logger) -> None:
        """level_map naming CallCompleted subscribes to it and logs every call."""
        log_events(logger, level_map={CallCompleted: DEBUG}, bus=bus)
        assert bus.wants(CallCompleted)
        bus.publish(CallCompleted(source="db", at=0.0, outcome="succeeded", duration=0.0125))
        assert records(logger).rows() == [("DEBUG", "'db': a call succeeded in 0.0125s")]

    def test_none_leaves_a_class_out(self, bus: EventBus, logger: logging.Logger) -> None:
        """A class mapped to None is not subscribed to, so it is not even built."""
        log_events(logger, level_map={RateLimited: None, SessionCreated: None}, bus=bus)
        assert not bus.wants(RateLimited)
        assert not bus.wants(SessionCreated)
        assert bus.wants(SessionDestroyed)

    def test_nearest_class_wins(self, bus: EventBus, logger: logging.Logger) -> None:
        """{Event: DEBUG, RetryScheduled: ERROR}: the nearest class in the hierarchy decides;
        a level for CircuitStateChanged applies to every state change."""
        level_map = {Event: DEBUG, RetryScheduled: ERROR, CircuitStateChanged: ERROR}
        log_events(logger, level_map=level_map, bus=bus)
        for event in one_of_each():
            bus.publish(event)
        levels = [r.levelno for r in records(logger).records]
        assert levels[:3] == [ERROR, ERROR, ERROR]
        assert levels[6] == ERROR  # the RetryScheduled
        assert set(levels[3:6] + levels[7:]) == {DEBUG}

    def test_unsubscribe(self, bus: EventBus, logger: logging.Logger) -> None:
        """The returned function removes every subscription; calling it twice is harmless."""
        stop = log_events(logger, bus=bus)
        stop()
        stop()
        assert not any(bus.wants(type(e)) for e in one_of_each())
        for event in one_of_each():
            bus.publish(event)
        assert records(logger).records == []

    def test_default_bus_and_logger(self) -> None:
        """Without arguments, events of the default bus go to the 'resilio' logger."""
        handler = Records()
        resilio_logger = logging.getLogger("resilio")
        resilio_logger.addHandler(handler)
        level = resilio_logger.level
        resilio_logger.setLevel(DEBUG)
        stop = log_events()
        try:
            bucket = TokenBucket(1, 1, name="defaults", clock=ManualClock())
            assert bucket.try_acquire()
            assert not bucket.try_acquire()
        finally:
            stop()
            resilio_logger.removeHandler(handler)
            resilio_logger.setLevel(level)
        assert [r.name for r in handler.records if r.resilio_source == "defaults"] == [  # type: ignore[attr-defined]
            "resilio"
        ]

    def test_a_logger_name_or_an_adapter(self, bus: EventBus, logger: logging.Logger) -> None:
        """logger= takes a name, or a LoggerAdapter whose extra joins the event's."""
        log_events(logger.name, bus=bus)
        adapter = logging.LoggerAdapter(logger, {"service": "shop"})
        log_events(adapter, level_map={Event: None, TimedOut: WARNING}, bus=bus)
        bus.publish(TimedOut(source="t", at=0.0, seconds=1.0))
        first, second = records(logger).records
        assert first.getMessage() == second.getMessage()
        assert second.service == "shop"  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("options", "text"),
        [
            ({"logger": 3}, "'logger'"),
            ({"level_map": [(Event, DEBUG)]}, "'level_map'"),
            ({"level_map": {"Event": DEBUG}}, "'level_map'.*'Event'"),
            ({"level_map": {Boom: DEBUG}}, "'level_map'.*Boom"),
            ({"level_map": {TimedOut: "WARNING"}}, "'level_map'.*TimedOut: 'WARNING'"),
            ({"level_map": {TimedOut: True}}, "'level_map'.*TimedOut: True"),
            ({"bus": object()}, "'bus'"),
        ],
    )
    def test_bad_arguments(self, options: dict[str, Any], text: str) -> None:
        """Bad arguments are a TypeError naming the parameter and the value."""
        with pytest.raises(TypeError, match=text):
            log_events(**options)


class BrokenHandler(logging.Handler):
    """A logging handler whose emit raises, as a misconfigured one can."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log sink down")


class TestIsolation:
    """A logging handler that raises breaks nothing."""

    def test_broken_handler_does_not_break_the_primitives(
        self, clock: ManualClock, bus: EventBus, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The breaker opens and rejects, the retry retries and the fallback answers as if
        the log sink worked; the failure itself is reported on stderr."""
        broken = logging.getLogger(f"test.log_events.broken.{next(_names)}")
        broken.propagate = False
        broken.addHandler(BrokenHandler())
        resilio_logger = logging.getLogger("resilio")
        resilio_logger.addHandler(BrokenHandler())  # the bus reports the failure here
        try:
            log_events(broken, bus=bus)
            breaker = CircuitBreaker(name="db", failure_threshold=2, clock=clock, bus=bus)
            retry = Retry(name="r", attempts=3, jitter=None, clock=clock, bus=bus)
            fallback = Fallback(lambda exc: "cached", clock=clock, bus=bus)
            calls: list[int] = []

            def work() -> None:
                calls.append(1)
                raise Boom

            guarded = retry(breaker(work))
            with pytest.raises(CircuitOpenError):
                guarded()
            assert len(calls) == 2
            assert breaker.state is CircuitState.OPEN
            assert fallback(breaker(work))() == "cached"
        finally:
            resilio_logger.handlers.pop()
        assert "log sink down" in capsys.readouterr().err


class TestLive:
    """Real primitives, sync and async, from threads."""

    @pytest.mark.anyio
    async def test_async_timeout_and_bucket(
        self, clock: ManualClock, bus: EventBus, logger: logging.Logger
    ) -> None:
        """On asyncio and trio: a timeout and a refusing bucket log their events."""
        log_events(logger, bus=bus)
        timeout = Timeout(1.0, name="slow", clock=clock, bus=bus)
        bucket = TokenBucket(1, 1, name="api", reject=True, clock=clock, bus=bus)

        async def hang() -> None:
            await anyio.sleep_forever()

        async def run() -> None:
            with pytest.raises(TimeoutError):
                await timeout.call_async(hang)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
        async with bucket:
            pass
        with pytest.raises(RateLimitExceeded):
            async with bucket:
                pass
        assert records(logger).rows() == [
            ("WARNING", "timeout 'slow' cancelled a call after 1s"),
            ("INFO", "limiter 'api' refused 1 (retry after 1s)"),
        ]

    def test_threads(self, bus: EventBus, logger: logging.Logger) -> None:
        """Eight threads publishing at once: one record per event, each seq once."""
        log_events(logger, bus=bus)

        def publish() -> None:
            for _ in range(200):
                bus.publish(TimedOut(source="t", at=0.0, seconds=1.0))

        threads = [threading.Thread(target=publish) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        seqs = sorted(r.resilio_seq for r in records(logger).records)  # type: ignore[attr-defined]
        assert seqs == list(range(1, 1601))
