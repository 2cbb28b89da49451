"""resilio's own errors: one small tree, informative messages, and they pickle."""

from __future__ import annotations

import copy
import pickle

import pytest

import resilio
from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    EventBus,
    ManualClock,
    RejectedError,
    ResilioError,
)
from resilio._errors import MisuseError

EXPORTED_ERRORS: list[type[BaseException]] = [
    obj
    for obj in (getattr(resilio, name) for name in resilio.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def build(cls: type[BaseException], *args: object) -> BaseException:
    """Build *cls* from as many of *args* as its constructor takes."""
    if issubclass(cls, resilio.SessionNotFound):
        return cls(*args[:1])  # type: ignore[arg-type]
    return cls(*args)


class TestTree:
    """The errors form the documented hierarchy."""

    def test_hierarchy(self) -> None:
        """CircuitOpenError < RejectedError < ResilioError < Exception."""
        assert CircuitOpenError.__mro__[:4] == (
            CircuitOpenError,
            RejectedError,
            ResilioError,
            Exception,
        )

    def test_found_the_exported_errors(self) -> None:
        """Scanning __all__ finds at least the three documented error classes."""
        assert {ResilioError, RejectedError, CircuitOpenError} <= set(EXPORTED_ERRORS)

    @pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda c: c.__name__)
    def test_every_error_is_a_resilio_error(self, cls: type[BaseException]) -> None:
        """Every exported error class derives from ResilioError and from Exception."""
        assert issubclass(cls, ResilioError)
        assert issubclass(cls, Exception)

    def test_caught_as_base_classes(self) -> None:
        """A CircuitOpenError is caught by except RejectedError and except ResilioError."""
        with pytest.raises(RejectedError):
            raise CircuitOpenError("b", 1.0)
        with pytest.raises(ResilioError):
            raise CircuitOpenError("b", 1.0)


class TestRejectedError:
    """Rejections carry the primitive's name and retry_after."""

    @pytest.mark.parametrize("cls", [RejectedError, CircuitOpenError])
    def test_name_and_retry_after_round_trip(self, cls: type[RejectedError]) -> None:
        """name and retry_after read back what the error was built with."""
        error = cls("payments", 2.5)
        assert error.name == "payments"
        assert error.retry_after == 2.5
        assert error.args == ("payments", 2.5)

    @pytest.mark.parametrize("cls", [RejectedError, CircuitOpenError])
    def test_retry_after_defaults_to_none(self, cls: type[RejectedError]) -> None:
        """Without retry_after (or with None) retry_after is None."""
        assert cls("payments").retry_after is None
        assert cls("payments", None).retry_after is None

    @pytest.mark.parametrize("cls", [RejectedError, CircuitOpenError])
    def test_keyword_construction(self, cls: type[RejectedError]) -> None:
        """The documented constructor arguments may be passed by keyword."""
        error = cls(name="payments", retry_after=2.5)  # type: ignore[call-arg]
        assert error.name == "payments"
        assert error.retry_after == 2.5

    @pytest.mark.parametrize("cls", [RejectedError, CircuitOpenError])
    def test_str_mentions_name_and_retry_after(self, cls: type[RejectedError]) -> None:
        """str() mentions the name and, when known, retry_after."""
        text = str(cls("payments", 2.5))
        assert "payments" in text
        assert "2.5" in text
        bare = str(cls("payments"))
        assert "payments" in bare
        assert "retry" not in bare

    def test_circuit_open_str_says_open(self) -> None:
        """A CircuitOpenError's message says the circuit is open."""
        assert "open" in str(CircuitOpenError("payments", 1.0))

    def test_raised_by_breaker_with_name_and_time_left(self) -> None:
        """An open breaker raises CircuitOpenError with its name and the time left."""
        clock = ManualClock()
        breaker = CircuitBreaker(
            name="db", failure_threshold=1, open_timeout=10.0, clock=clock, bus=EventBus()
        )
        breaker.record_failure()
        clock.advance(4.0)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: None)
        assert info.value.name == "db"
        assert info.value.retry_after == pytest.approx(6.0)
        assert "db" in str(info.value)


class TestPickle:
    """Every error crosses process boundaries intact."""

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    @pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda c: c.__name__)
    def test_pickle_round_trip(self, cls: type[BaseException], protocol: int) -> None:
        """Unpickling gives the same class with equal args, name, retry_after and message."""
        error = build(cls, "payments", 2.5)
        clone = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(clone) is cls
        assert clone.args == error.args
        assert getattr(clone, "name", None) == getattr(error, "name", None)
        assert getattr(clone, "retry_after", None) == getattr(error, "retry_after", None)
        assert str(clone) == str(error)

    @pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda c: c.__name__)
    def test_pickle_without_retry_after(self, cls: type[BaseException]) -> None:
        """An error built with its name only round-trips with retry_after still None."""
        error = cls("payments")
        clone = pickle.loads(pickle.dumps(error))
        assert clone.args == error.args
        assert getattr(clone, "name", "payments") == "payments"
        assert getattr(clone, "retry_after", None) is None

    @pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda c: c.__name__)
    def test_deepcopy(self, cls: type[BaseException]) -> None:
        """copy.deepcopy keeps the class and the args."""
        error = build(cls, "payments", 0.25)
        clone = copy.deepcopy(error)
        assert type(clone) is cls
        assert clone.args == error.args


class TestHalfOpenRejection:
    """A half-open CircuitOpenError says so, and keeps its flag through pickling."""

    def test_message(self) -> None:
        """The message says half-open and probe slots, not open."""
        error = CircuitOpenError("db", None, half_open=True)
        assert error.half_open
        assert str(error) == "'db' is half-open and its probe slots are taken"
        assert not CircuitOpenError("db", 1.0).half_open

    def test_built_like_the_hot_path_builds_it(self) -> None:
        """__new__ with the positional flag (no __init__) gives the same error."""
        error = CircuitOpenError.__new__(CircuitOpenError, "db", None, None, True)
        assert error.half_open
        assert error.name == "db"
        assert error.retry_after is None

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_pickles(self, protocol: int) -> None:
        """The flag, the name and the message survive pickling."""
        error = CircuitOpenError(name="db", retry_after=None, half_open=True)
        clone = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert clone.half_open
        assert clone.args == error.args
        assert str(clone) == str(error)


class TestMisuseError:
    """The error of a guard used in a way that cannot work."""

    def test_is_a_type_error_and_a_resilio_error(self) -> None:
        """Code catching TypeError still catches it."""
        assert issubclass(MisuseError, TypeError)
        assert issubclass(MisuseError, ResilioError)
        assert not issubclass(MisuseError, RejectedError)

    def test_pickles(self) -> None:
        """It round-trips through pickle with its message."""
        clone = pickle.loads(pickle.dumps(MisuseError("use call_async()")))
        assert type(clone) is MisuseError
        assert str(clone) == "use call_async()"


class Unpicklable(Exception):
    """Pickles, but cannot be rebuilt: its __init__ wants two arguments."""

    def __init__(self, a: object, b: object) -> None:
        super().__init__(a)


class TestLastFailure:
    """A rejection carries the breaker's last failure, and still pickles."""

    def test_constructor_and_message(self) -> None:
        """last_failure is kept and shown in repr(), not in the message; None by default."""
        cause = ConnectionError("refused")
        error = CircuitOpenError("db", 2.5, last_failure=cause)
        assert error.last_failure is cause
        assert str(error) == "'db' is open; retry after 2.500s"
        assert repr(error) == "CircuitOpenError('db', 2.5, last_failure=ConnectionError('refused'))"
        assert CircuitOpenError("db", 2.5).last_failure is None
        assert repr(CircuitOpenError("db", 2.5)) == "CircuitOpenError('db', 2.5)"

    def test_built_like_the_hot_path(self) -> None:
        """__new__ with (name, retry_after, last_failure) reads back each part."""
        error = CircuitOpenError.__new__(CircuitOpenError, "db", 1.0, "a 503")
        assert (error.name, error.retry_after, error.last_failure) == ("db", 1.0, "a 503")
        assert not error.half_open

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_kept_when_it_pickles(self, protocol: int) -> None:
        """A picklable last failure makes the trip, with the flag and any notes."""
        error = CircuitOpenError("db", None, half_open=True, last_failure=KeyError("k"))
        error.__notes__ = ["while fetching"]  # add_note() is Python 3.11+
        clone = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(clone.last_failure) is KeyError
        assert clone.last_failure.args == ("k",)
        assert clone.half_open
        assert clone.__notes__ == ["while fetching"]

    @pytest.mark.parametrize(
        "cause", [Unpicklable(1, 2), ValueError(lambda: None)], ids=["rebuild", "dump"]
    )
    def test_dropped_when_it_does_not(self, cause: Exception) -> None:
        """A last failure that cannot be pickled or rebuilt is left behind, as None."""
        error = CircuitOpenError("db", 3.0, last_failure=cause)
        clone = pickle.loads(pickle.dumps(error))
        assert clone.last_failure is None
        assert (clone.name, clone.retry_after) == ("db", 3.0)
        assert error.last_failure is cause  # the original is untouched

    def test_raised_by_an_open_breaker(self) -> None:
        """The rejection of an open breaker pickles with the error that opened it."""
        breaker = CircuitBreaker(failure_threshold=1, clock=ManualClock(), bus=EventBus())

        def fail() -> None:
            raise ConnectionError("refused")

        with pytest.raises(ConnectionError):
            breaker.call(fail)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(fail)
        clone = pickle.loads(pickle.dumps(info.value))
        assert isinstance(clone.last_failure, ConnectionError)
        assert clone.retry_after == info.value.retry_after
