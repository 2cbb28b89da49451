"""The switch behind `resilio.testing.instant`, read by retries and breakers.

Instant mode is scoped: it holds in the thread or task that turned it on, and in the
tasks that one starts meanwhile (they copy its context), never in code elsewhere in
the process. The mode itself lives in a context variable. Reading a context variable
costs more than reading an attribute, so `Switch.on` says, as a plain attribute,
whether instant mode is on anywhere at all; the primitives check it first and ask
`Switch.here` only when it is set, and only off their hot paths: a retry when it is
about to sleep, a breaker when a failure would trip it or an open state would refuse.

Kept apart from ``resilio.testing`` so that the primitives read one attribute of a
module they already import.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import NamedTuple


class _Mode(NamedTuple):
    attempts: int | None
    outer: _Mode | None
    depth: int


_MODE: ContextVar[_Mode | None] = ContextVar("resilio_instant", default=None)


class Switch:
    """Instant mode in the current context, nesting; thread- and task-safe."""

    __slots__ = ("_count", "_lock", "on")

    def __init__(self) -> None:
        self.on = False  # instant mode is on in at least one context
        self._count = 0
        self._lock = threading.Lock()

    def here(self) -> bool:
        """Whether instant mode is on in the current thread or task."""
        return _MODE.get() is not None

    @property
    def attempts(self) -> int | None:
        """The cap on tries set by the innermost `push` of this context, if any."""
        mode = _MODE.get()
        return None if mode is None else mode.attempts

    def _count_by(self, delta: int) -> None:
        with self._lock:
            self._count = max(0, self._count + delta)
            self.on = self._count > 0

    def push(self, attempts: int | None) -> None:
        """Turn instant mode on (again) here, capping retries at *attempts* if given."""
        outer = _MODE.get()
        _MODE.set(_Mode(attempts, outer, 1 if outer is None else outer.depth + 1))
        self._count_by(1)

    def pop(self) -> None:
        """Undo this context's latest `push`; the mode ends here with the outermost one."""
        mode = _MODE.get()
        if mode is None:
            return
        _MODE.set(mode.outer)
        self._count_by(-1)

    def clear(self) -> None:
        """Turn instant mode off here, whatever the nesting."""
        mode = _MODE.get()
        if mode is None:
            return
        _MODE.set(None)
        self._count_by(-mode.depth)


SWITCH = Switch()
