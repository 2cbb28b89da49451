"""The switch behind `resilio.testing.instant`, read by retries and breakers.

Kept apart from ``resilio.testing`` so that the primitives read one attribute of a
module they already import, and only off their hot paths: a retry reads it when it
is about to sleep, a breaker when a failure would trip it.
"""

from __future__ import annotations

import threading


class Switch:
    """Whether instant mode is on, and the attempt cap it sets; nests, thread-safe."""

    __slots__ = ("_lock", "_stack", "attempts", "on")

    def __init__(self) -> None:
        self.on = False
        self.attempts: int | None = None
        self._stack: list[int | None] = []
        self._lock = threading.Lock()

    def push(self, attempts: int | None) -> None:
        """Turn instant mode on (again), capping retries at *attempts* if given."""
        with self._lock:
            self._stack.append(attempts)
            self.attempts = attempts
            self.on = True

    def pop(self) -> None:
        """Undo the latest `push`; instant mode ends with the outermost one."""
        with self._lock:
            if not self._stack:
                return
            self._stack.pop()
            self.attempts = self._stack[-1] if self._stack else None
            self.on = bool(self._stack)

    def clear(self) -> None:
        """Turn instant mode off whatever the nesting."""
        with self._lock:
            self._stack.clear()
            self.attempts = None
            self.on = False


SWITCH = Switch()
