"""Retry: backoff with jitter, inline loops, predicates, timeouts, retry-after and budgets.

A ``Retry`` policy tries a failing call again after a growing, jittered delay, and
when the tries run out re-raises the last exception exactly as it was. Time is a
``ManualClock``: a blocking sleep moves it on at once, and the async parts advance it
by hand. Jitter comes from a seeded ``random.Random(0).random``, so the example runs
instantly and prints the same thing every time.

Run it with ``python examples/retry.py``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

import anyio
import anyio.lowlevel

from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    EventBus,
    ManualClock,
    Retry,
    RetryBudget,
    RetryExhausted,
    RetryRefused,
    RetryScheduled,
    compose,
    parse_retry_after,
    retry,
)

T = TypeVar("T")

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events
rng = random.Random(0).random  # seeded jitter: the same delays on every run


def now() -> str:
    return f"t={clock.monotonic():6.3f}s"


class Flaky:
    """A stand-in for a remote service that fails its first *failures* calls."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            print(f"  [{now()}] try {self.calls}: {self.error.__name__}")
            raise self.error(f"failure {self.calls}")
        print(f"  [{now()}] try {self.calls}: ok")
        return "ok"


async def run_on_clock(fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()`` while playing the part of time passing.

    A retry announces each sleep with a ``RetryScheduled`` event before it starts it;
    once the retrying task is asleep, advance the clock by exactly that delay.
    """
    delays: list[float] = []
    result: list[T] = []
    unsubscribe = bus.subscribe(RetryScheduled, lambda e: delays.append(e.delay))

    async def runner() -> None:
        result.append(await fn())

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(runner)
            while not result:
                await anyio.wait_all_tasks_blocked()  # the task is asleep, or done
                if delays:
                    clock.advance(delays.pop(0))
    finally:
        unsubscribe()
    return result[0]


def decorator() -> None:
    print("1. @retry on a def: ConnectionError twice, then it works.")
    flaky = Flaky(failures=2)

    @retry(on=ConnectionError, attempts=4, clock=clock, random=rng, bus=bus)
    def fetch() -> str:
        return flaky()

    print(f"  result: {fetch()!r} after {flaky.calls} tries (full jitter: random delays)")


async def decorator_async() -> None:
    print("2. The same decorator on an async def.")
    flaky = Flaky(failures=2)

    @retry(on=ConnectionError, attempts=4, clock=clock, random=rng, bus=bus)
    async def fetch() -> str:
        await anyio.lowlevel.checkpoint()  # stands in for real async I/O
        return flaky()

    print(f"  result: {await run_on_clock(fetch)!r}")


def exact_delays() -> None:
    print("3. jitter=None: delays 0.1, 0.2, 0.4, ... capped at max_delay=0.5.")
    flaky = Flaky(failures=5)
    policy = Retry(attempts=6, base_delay=0.1, max_delay=0.5, jitter=None, clock=clock, bus=bus)
    unsubscribe = bus.subscribe(RetryScheduled, lambda e: print(f"    sleeping {e.delay:g}s"))
    policy.call(flaky)
    unsubscribe()
    print(f"  {policy!r}")


def inline() -> None:
    print("4. Inline: `for attempt in policy: with attempt:` retries a block.")
    policy = Retry(on=ConnectionError, attempts=3, jitter=None, clock=clock, bus=bus)
    flaky = Flaky(failures=1)
    for attempt in policy:
        with attempt:
            print(f"  {attempt!r}")
            value = flaky()
    print(f"  value: {value!r}")


async def inline_async() -> None:
    print("5. And its async twin: `async for attempt in policy: with attempt:`.")
    policy = Retry(on=ConnectionError, attempts=3, jitter=None, clock=clock, bus=bus)
    flaky = Flaky(failures=1)

    async def block() -> str:
        async for attempt in policy:
            with attempt:
                print(f"  {attempt!r}")
                await anyio.lowlevel.checkpoint()
                value = flaky()
        return value

    print(f"  value: {await run_on_clock(block)!r}")


class HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def predicates() -> None:
    print("6. on= takes types or a predicate; if_result= retries on a return value.")
    policy = Retry(
        on=lambda e: isinstance(e, HTTPError) and e.status >= 500,  # server errors only
        attempts=3,
        jitter=None,
        clock=clock,
        bus=bus,
    )
    for status in (503, 404):
        calls = 0

        def get(status: int = status) -> str:
            nonlocal calls
            calls += 1
            raise HTTPError(status)

        try:
            policy.call(get)
        except HTTPError as exc:
            print(f"  HTTP {exc.status}: raised after {calls} {'try' if calls == 1 else 'tries'}")

    statuses = iter(["queued", "running", "done"])
    poll = Retry(if_result=lambda s: s != "done", attempts=5, jitter=None, clock=clock, bus=bus)
    print(f"  job status: {poll.call(lambda: next(statuses))!r}")
    give_up = Retry(if_result=lambda s: s is None, attempts=2, jitter=None, clock=clock, bus=bus)
    print(f"  out of tries, the last result is returned: {give_up.call(lambda: None)!r}")


def timeout_and_reraise() -> None:
    print("7. timeout=5: no sleep is started that would end past it; the error is re-raised.")
    raised: list[Exception] = []

    def down() -> None:
        raised.append(ConnectionError(f"failure {len(raised) + 1}"))
        raise raised[-1]

    policy = Retry(attempts=10, base_delay=1.0, jitter=None, timeout=5.0, clock=clock, bus=bus)
    start = clock.monotonic()
    try:
        policy.call(down)  # tries at +0, +1 and +3 s; the next sleep (4 s) would end at +7
    except ConnectionError as exc:
        print(
            f"  {exc!r} after {len(raised)} tries and {clock.monotonic() - start:g}s; "
            f"the very object raised last: {exc is raised[-1]}, "
            f"not wrapped or chained: {exc.__cause__ is None and exc.__context__ is None}"
        )


def retry_after() -> None:
    print("8. Retry outside a breaker: an open breaker's retry_after sets the wait.")
    breaker = CircuitBreaker(
        name="payments",
        failure_threshold=2,
        success_threshold=1,
        open_timeout=5.0,
        clock=clock,
        bus=bus,
    )
    flaky = Flaky(failures=2)
    policy = Retry(
        on=(ConnectionError, CircuitOpenError), attempts=5, jitter=None, clock=clock, bus=bus
    )
    unsubscribe = bus.subscribe(
        RetryScheduled,
        lambda e: print(f"  [t={e.at:6.3f}s] {type(e.error).__name__}, next try in {e.delay:g}s"),
    )

    @policy  # outside: each try passes through the breaker
    @breaker
    def charge() -> str:
        return flaky()

    print(f"  result: {charge()!r}; the breaker is {breaker.state.value}")
    unsubscribe()


def budget() -> None:
    print("9. A RetryBudget shared by two policies refuses retries during a storm.")
    shared = RetryBudget(ratio=0.2, min_per_second=0.1, clock=clock)  # floor: 1 per 10s
    refusals = 0

    def refused(event: RetryRefused) -> None:
        nonlocal refusals
        refusals += 1

    unsubscribe = bus.subscribe(RetryRefused, refused)
    tries = 0

    def down() -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("down")

    reads = Retry(name="reads", attempts=3, jitter=None, budget=shared, clock=clock, bus=bus)
    writes = Retry(name="writes", attempts=3, jitter=None, budget=shared, clock=clock, bus=bus)
    for policy in (reads, writes) * 10:  # twenty calls while the dependency is down
        with suppress(ConnectionError):
            policy.call(down)
    unsubscribe()
    print(f"  20 calls made {tries} tries, not 60; {refusals} retries were refused")
    print(f"  {shared!r}")


def events() -> None:
    print("10. Events: RetryScheduled before each sleep, RetryExhausted when it gives up.")
    policy = Retry(name="search", attempts=3, clock=clock, random=rng, bus=bus)
    unsubscribe_scheduled = bus.subscribe(
        RetryScheduled,
        lambda e: print(f"  [t={e.at:6.3f}s] {e.source}: retry in {e.delay:.3f}s"),
    )
    unsubscribe_exhausted = bus.subscribe(
        RetryExhausted,
        lambda e: print(f"  [t={e.at:6.3f}s] {e.source}: gave up, {e.attempts} tries"),
    )
    with suppress(ConnectionError):
        policy.call(Flaky(failures=99))
    unsubscribe_scheduled()
    unsubscribe_exhausted()


# --8<-- [start:retry-hints]
class ServiceUnavailable(Exception):
    """An HTTP 503; its Retry-After header, read as seconds, is the retry_after hint."""

    def __init__(self, retry_after_header: str | None) -> None:
        super().__init__(f"503 Service Unavailable (Retry-After: {retry_after_header})")
        self.retry_after = parse_retry_after(retry_after_header)  # None if unreadable


# --8<-- [end:retry-hints]


def hints() -> None:
    print("11. retry_after hints: waited out with up to 10 % more, or the end of the retrying.")
    unsubscribe_scheduled = bus.subscribe(
        RetryScheduled, lambda e: print(f"  [t={e.at:6.3f}s] retry in {e.delay:.3f}s")
    )
    unsubscribe_exhausted = bus.subscribe(
        RetryExhausted,
        lambda e: print(f"  [t={e.at:6.3f}s] gave up after {e.attempts} try, no sleep"),
    )
    # --8<-- [start:retry-hints-policy]
    policy = Retry(on=ServiceUnavailable, max_delay=10.0, clock=clock, random=rng, bus=bus)
    # --8<-- [end:retry-hints-policy]
    for header in ("2", "soon", "120"):
        replies: list[Exception | str] = [ServiceUnavailable(header), "ok"]

        def get(replies: list[Exception | str] = replies) -> str:
            reply = replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply

        print(f"  Retry-After: {header!r} -> retry_after={parse_retry_after(header)!r}")
        try:
            print(f"  result: {policy.call(get)!r}")
        except ServiceUnavailable as exc:
            print(f"  raised at once: {exc}")
    unsubscribe_scheduled()
    unsubscribe_exhausted()


def fail_fast() -> None:
    print("12. compose(Retry(), CircuitBreaker()) with every default fails fast once open.")
    tries = 0

    def down() -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("down")

    # --8<-- [start:retry-fail-fast]
    guarded = compose(Retry(clock=clock), CircuitBreaker(clock=clock))(down)
    # --8<-- [end:retry-fail-fast]
    start = clock.monotonic()
    for call in range(1, 4):
        try:
            guarded()
        except (ConnectionError, CircuitOpenError) as exc:
            took = clock.monotonic() - start
            print(f"  call {call}: {type(exc).__name__} after {took:.3f}s, {tries} tries in all")
        start = clock.monotonic()


def main() -> None:
    decorator()
    anyio.run(decorator_async)
    exact_delays()
    inline()
    anyio.run(inline_async)
    predicates()
    timeout_and_reraise()
    retry_after()
    budget()
    events()
    hints()
    fail_fast()


if __name__ == "__main__":
    main()
