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

    ``retry_after`` is the time left until an open breaker admits a probe, or
    ``None`` when it is forced open or half-open: a half-open breaker cannot know
    when its running probes will report back, so the caller's own backoff decides.
    """

    # A half-open rejection is built as ``__new__(cls, name, None, True)``; an open
    # one keeps two arguments, so ``args`` is (name, retry_after) as for every
    # rejection.

    def __init__(
        self, name: str, retry_after: float | None = None, half_open: bool = False
    ) -> None:
        if half_open:
            ResilioError.__init__(self, name, retry_after, True)
        else:
            ResilioError.__init__(self, name, retry_after)

    @property
    def half_open(self) -> bool:
        """Whether the breaker was half-open with its probe slots taken, not open."""
        args = self.args
        return len(args) > 2 and bool(args[2])

    @property
    def _what(self) -> str:  # type: ignore[override]
        if self.half_open:
            return "is half-open and its probe slots are taken"
        return "is open"


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
