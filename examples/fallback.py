"""Fallback: a value in place of an error, with on=, sync and async handlers, events and
its place in a composed policy.

A ``Fallback`` returns ``handler(exc)`` when the call raises an exception it matches,
and lets every other exception through. Time is a ``ManualClock`` and the retries
have no jitter, so the example runs instantly and prints the same thing every time.

Run it with ``python examples/fallback.py``.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    EventBus,
    Fallback,
    FallbackUsed,
    ManualClock,
    MisuseError,
    Retry,
    compose,
)

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events


def basics() -> None:
    print("1. @Fallback(handler, on=...): matching errors become the handler's value.")

    # --8<-- [start:on]
    def no_profile(exc: Exception) -> dict[str, str]:
        return {"name": "guest"}

    @Fallback(no_profile, on=(ConnectionError, TimeoutError), bus=bus)
    def profile(user_id: int) -> dict[str, str]:
        if user_id == 0:
            raise ConnectionError("profile service unreachable")
        if user_id < 0:
            raise ValueError(f"bad user id: {user_id}")  # a bug: not replaced
        return {"name": f"user {user_id}"}

    print(f"   profile(7) = {profile(7)}")
    print(f"   profile(0) = {profile(0)}")  # ConnectionError: the handler's value
    try:
        profile(-1)
    except ValueError as exc:
        print(f"   profile(-1) raised ValueError: {exc}")
    # --8<-- [end:on]

    print("2. on= a predicate: only a 503 is replaced.")

    # --8<-- [start:predicate]
    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    def is_unavailable(exc: BaseException) -> bool:
        return isinstance(exc, HTTPError) and exc.status == 503

    answer = Fallback(lambda exc: "try again later", on=is_unavailable, bus=bus)
    print(f"   503: {answer.call(raise_http, HTTPError(503))!r}")
    try:
        answer.call(raise_http, HTTPError(404))
    except HTTPError as exc:
        print(f"   404: raised HTTPError {exc.status}")
    # --8<-- [end:predicate]


def raise_http(error: Exception) -> str:
    raise error


async def async_handlers() -> None:
    print("3. An async def, with an async handler: its value is awaited.")

    # --8<-- [start:async]
    async def from_cache(exc: Exception) -> str:
        await anyio.lowlevel.checkpoint()  # a cache lookup, say
        return "cached answer"

    @Fallback(from_cache, bus=bus)
    async def ask(question: str) -> str:
        await anyio.lowlevel.checkpoint()
        raise ConnectionError("model API unreachable")

    print(f"   await ask('hello') = {await ask('hello')!r}")
    # A sync handler serves an async def too; an async handler cannot serve a def:
    try:
        Fallback(from_cache, bus=bus)(lambda: "a def")
    except MisuseError as exc:
        print(f"   MisuseError: {str(exc).split(':')[0]}")
    # --8<-- [end:async]


def handler_errors() -> None:
    print("4. A handler that raises: its error propagates, chained to the original.")

    # --8<-- [start:handler-error]
    def no_copy(exc: Exception) -> str:
        raise LookupError("no cached copy either")

    try:
        Fallback(no_copy, bus=bus).call(raise_http, ConnectionError("down"))
    except LookupError as exc:
        print(f"   LookupError: {exc}; its __cause__: {exc.__cause__!r}")
    # --8<-- [end:handler-error]


def order() -> None:
    print("5. Order in compose(): the fallback outside the retry sees the final error only.")
    # --8<-- [start:order]
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        raise ConnectionError(f"try {len(tries)} failed")

    def fallen_back(exc: Exception) -> str:
        return f"fallback for {exc}"

    breaker = CircuitBreaker(name="api", failure_threshold=6, clock=clock, bus=bus)
    retry = Retry(attempts=3, jitter=None, clock=clock, bus=bus)
    right = compose(Fallback(fallen_back, bus=bus), retry, breaker)
    print(f"   outside: {right.call(flaky)!r} after {len(tries)} tries")

    tries.clear()
    wrong = compose(Retry(attempts=3, jitter=None, clock=clock, bus=bus), Fallback(fallen_back))
    print(f"   inside:  {wrong.call(flaky)!r} after {len(tries)} try: nothing retried")

    tries.clear()
    for _ in range(2):  # three more failures open the breaker; then it answers at once
        right.call(flaky)
    print(f"   open:    {right.call(flaky)!r} after {len(tries)} tries in all")
    # --8<-- [end:order]


def events() -> None:
    print("6. Events: FallbackUsed, before the handler runs.")
    # --8<-- [start:events]
    seen: list[FallbackUsed] = []
    unsubscribe = bus.subscribe(FallbackUsed, seen.append)
    clock.advance(2.5)
    guarded = Fallback(lambda exc: None, name="search", clock=clock, bus=bus)
    guarded.call(raise_http, CircuitOpenError("search-api", 12.0))
    unsubscribe()
    event = seen[0]
    print(
        f"   {type(event).__name__}(source={event.source!r}, at={event.at}, error={event.error!r})"
    )
    # --8<-- [end:events]


def main() -> None:
    basics()
    anyio.run(async_handlers)
    handler_errors()
    order()
    events()


if __name__ == "__main__":
    main()
