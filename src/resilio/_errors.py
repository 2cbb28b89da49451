"""The errors resilio raises itself.

User exceptions are never wrapped: whatever a guarded function raises propagates as
it was. resilio's own errors form one small tree::

    ResilioError                 anything resilio raises itself
    ├── RejectedError            a call refused without running; carries retry_after
    │   ├── CircuitOpenError     an open breaker, or a half-open one with no probe slot free
    │   ├── RateLimitExceeded    a rate limiter that cannot admit a request in time
    │   └── PoolFullError        a worker pool whose queue has no room
    ├── PoolClosedError          a worker pool that is shut down (or a task it dropped)
    ├── MisuseError              a guard used in a way that cannot work (also a TypeError)
    └── SessionNotFound          no live session has that id (also a LookupError)

Every error pickles, so it crosses process boundaries intact.
"""

from __future__ import annotations

import copyreg
import pickle
from typing import Any


class ResilioError(Exception):
    """Root of every error raised by resilio itself."""


class RejectedError(ResilioError):
    """A primitive refused a call without running it.

    Args:
        name: The ``name`` of the primitive that refused.
        retry_after: Seconds until trying again may succeed, or ``None`` when unknown.

    Attributes:
        name: The ``name`` of the primitive that refused.
        retry_after: Seconds until trying again may succeed, or ``None`` when unknown.
            A `Retry` never tries again sooner than this.
    """

    # The arguments live in ``args`` (name, retry_after) and the message is built
    # lazily in __str__. resilio's hot paths create rejections with
    # ``cls.__new__(cls, name, retry_after)``, which sets ``args`` in C and skips this
    # Python-level __init__, so a rejection costs what a built-in exception costs.

    def __init__(self, name: str, retry_after: float | None = None) -> None:
        super().__init__(name, retry_after)

    @property
    def name(self) -> str:
        """The ``name`` of the primitive that refused."""
        args = self.args
        return str(args[0]) if args else ""

    @property
    def retry_after(self) -> float | None:
        """Seconds until trying again may succeed, or ``None`` when unknown."""
        args = self.args
        return args[1] if len(args) > 1 else None

    _what = "rejected the call"

    def __str__(self) -> str:
        retry_after = self.retry_after
        hint = "" if retry_after is None else f"; retry after {retry_after:.3f}s"
        return f"{self.name!r} {self._what}{hint}"


class CircuitOpenError(RejectedError):
    """A circuit breaker is open, or half-open with every probe slot taken.

    Args:
        name: The ``name`` of the breaker that refused.
        retry_after: Seconds until trying again may succeed, or ``None`` when unknown.
        half_open: ``True`` when the breaker is half-open and its probe slots are
            all taken, rather than open.
        last_failure: What last counted as a failure in the breaker: an exception,
            or a result its ``failure_if`` judged a failure; ``None`` if nothing has.

    ``retry_after`` is the time left until an open breaker admits a probe, or
    ``None`` when it is forced open or half-open: a half-open breaker cannot know
    when its running probes will report back, so the caller's own backoff decides.

    Pickling keeps ``last_failure`` when it survives a pickle round trip of its own
    (its traceback, as for any pickled exception, does not), and drops it to ``None``
    when it does not, so the rejection itself always crosses a process boundary.
    """

    # The hot paths build a rejection as ``__new__(cls, name, retry_after,
    # last_failure)``, and a half-open one with a fourth argument, True: ``args`` is
    # (name, retry_after, last_failure[, True]). The constructor keeps the shorter
    # (name, retry_after) that every rejection has when there is nothing more to say.

    def __init__(
        self,
        name: str,
        retry_after: float | None = None,
        half_open: bool = False,
        last_failure: object = None,
    ) -> None:
        if half_open:
            ResilioError.__init__(self, name, retry_after, last_failure, True)
        elif last_failure is not None:
            ResilioError.__init__(self, name, retry_after, last_failure)
        else:
            ResilioError.__init__(self, name, retry_after)

    @property
    def half_open(self) -> bool:
        """Whether the breaker was half-open with its probe slots taken, not open."""
        args = self.args
        return len(args) > 3 and bool(args[3])

    @property
    def last_failure(self) -> object:
        """What last counted as a failure in the breaker, or ``None`` if nothing has.

        An exception (with its traceback, ready to log), or a result the breaker's
        ``failure_if`` judged a failure; the same object as the breaker's
        ``snapshot().last_failure`` when it refused.
        """
        args = self.args
        return args[2] if len(args) > 2 else None

    @property
    def _what(self) -> str:  # type: ignore[override]
        if self.half_open:
            return "is half-open and its probe slots are taken"
        return "is open"

    def __repr__(self) -> str:
        parts = [repr(self.name), repr(self.retry_after)]
        if self.half_open:
            parts.append("half_open=True")
        last_failure = self.last_failure
        if last_failure is not None:
            parts.append(f"last_failure={last_failure!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt with __new__, as the hot paths build it, so ``args`` comes back as
        # it was; a last failure that cannot make the trip is left behind.
        args = self.args
        if len(args) > 2 and args[2] is not None and not _survives_pickling(args[2]):
            args = (*args[:2], None, *args[3:])
        rebuild = (_newobj, (type(self), *args))
        state = self.__dict__  # what was set on it, notes included
        return (*rebuild, state) if state else rebuild


# copyreg's ``cls.__new__(cls, *args)``, which pickle knows by name (typeshed does not).
_newobj = copyreg.__newobj__  # type: ignore[attr-defined]


def _survives_pickling(value: object) -> bool:
    """Whether *value* pickles and unpickles (an exception's may not: its __init__)."""
    try:
        pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return False
    return True


class RateLimitExceeded(RejectedError):
    """A rate limiter cannot admit the request (in time, or at all).

    ``retry_after`` is how long until the request could be admitted, when known.
    """

    _what = "is over its rate limit"


class PoolFullError(RejectedError):
    """A worker pool's queue is full; ``submit_nowait`` does not wait for room."""

    _what = "has no room in its queue"


class MisuseError(ResilioError, TypeError):
    """A guard was used in a way that cannot work, such as ``call(async_fn)``.

    Raised when the call is made, not at construction: ``call()`` given an ``async``
    or generator function, ``call_async()`` given a function that returns nothing
    to await. It is a `TypeError`, and a breaker counts it neither as a success nor
    as a failure: a mistake in the calling code says nothing about the dependency.
    """


class PoolClosedError(ResilioError):
    """A worker pool is shut down: it takes no more work, and dropped what it had not run.

    Raised by ``submit`` after shutdown, and by awaiting the handle of a task that a
    ``shutdown(cancel=True)`` cancelled or that never ran.
    """


class SessionNotFound(ResilioError, LookupError):
    """No live session has this id: it never existed, or it has been destroyed.

    Args:
        session_id: The id that was looked up.
    """

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)

    @property
    def session_id(self) -> str:
        """The id that was looked up."""
        return str(self.args[0])

    def __str__(self) -> str:
        return f"no live session {self.session_id!r}"
