"""compose(): a retry, a breaker, a rate limiter and a timeout as one policy.

``compose(outer, ..., inner)`` stacks primitives as decorators would be stacked,
outermost first. With ``compose(Retry(...), breaker, bucket, Timeout(1))`` each try
of the retry passes the breaker, then waits for a token from the bucket, then runs
under a timeout of its own. Time is a ``ManualClock`` moved on by a driver task
whenever everything else is waiting, so the example runs instantly and prints the
same thing every time.

Run it with ``python examples/compose.py``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel

from resilio import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitStateChanged,
    Event,
    EventBus,
    ManualClock,
    RateLimited,
    Retry,
    RetryScheduled,
    Timeout,
    TokenBucket,
    compose,
)

T = TypeVar("T")

clock = ManualClock()  # virtual time: nothing in this example waits
bus = EventBus()  # a private bus: only this example's events
STEP = 0.25  # how far the driver moves the clock at a time (exact in binary)


def now() -> str:
    return f"t={clock.monotonic():4.2f}s"


def show(event: Event) -> None:
    if isinstance(event, RetryScheduled):
        text = f"retry: {type(event.error).__name__}, next try in {event.delay:g}s"
    elif isinstance(event, CircuitStateChanged):
        text = f"breaker: {event.old.value} -> {event.new.value} ({event.reason})"
    elif isinstance(event, CallRejected):
        text = f"breaker: rejected, retry_after={event.retry_after:g}s"
    elif isinstance(event, RateLimited):
        text = f"bucket: no token, waiting {event.retry_after:g}s"
    else:
        return
    print(f"  [t={event.at:4.2f}s] {text}")


bus.subscribe(Event, show)


class Upstream:
    """A stand-in for a remote model API that plays a script of outcomes."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)

    async def __call__(self, prompt: str) -> str:
        outcome = self.script.pop(0)
        print(f"  [{now()}] upstream: {outcome}")
        if outcome == "hang":
            await anyio.sleep_forever()  # only a timeout gets this try back
        if outcome == "slow error":
            await clock.sleep_async(0.75)
            print(f"  [{now()}] upstream: connection reset")
            raise ConnectionError("connection reset")
        await anyio.lowlevel.checkpoint()  # stands in for real async I/O
        return prompt.upper()


async def run_on_clock(fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()`` while a driver task moves the clock on whenever all tasks wait."""
    result: list[T] = []

    async def runner() -> None:
        result.append(await fn())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        while not result:
            clock.advance(STEP)
            await anyio.wait_all_tasks_blocked()
    return result[0]


breaker = CircuitBreaker(
    name="model-api",
    failure_threshold=2,
    success_threshold=1,
    open_timeout=4.0,
    failure_on=(ConnectionError, TimeoutError),
    clock=clock,
    bus=bus,
)
bucket = TokenBucket(0.5, 1, name="quota", clock=clock, bus=bus)  # a call every 2 s
retry_policy = Retry(
    on=(ConnectionError, TimeoutError, CircuitOpenError),
    attempts=5,
    base_delay=0.5,
    jitter=None,
    random=random.Random(3).random,  # seeded: the spread on a hint is the same every run
    clock=clock,
    bus=bus,
)


async def full_stack() -> None:
    print("1. compose(Retry, breaker, bucket, Timeout): each try in that order.")
    upstream = Upstream("hang", "slow error", "ok")
    policy = compose(retry_policy, breaker, bucket, Timeout(1.0, clock=clock))

    @policy
    async def ask(prompt: str) -> str:
        return await upstream(prompt)

    print(f"  answer: {await run_on_clock(lambda: ask('hello'))!r}")
    print("  - try 1 hung: its own timeout ended it after 1s, and the breaker counted it;")
    print("  - try 2 waited for a token first, then had a whole second of its own;")
    print("  - try 3 met the open breaker, so it spent no token and never reached upstream;")
    print("  - the retry then waited the breaker's retry_after (3s, plus a random extra of")
    print("    up to 10% so that callers told the same moment spread out), not its schedule.")


async def blocks() -> None:
    print("2. async with compose(breaker, bucket): a block, guarded by both.")
    upstream = Upstream("ok")
    guarded = compose(breaker, bucket)
    clock.advance(2)  # the bucket refills
    async with guarded:
        answer = await upstream("inline")
    print(f"  answer: {answer!r}; tokens left: {bucket.available:g}")

    print("  ...and with a Timeout inside, a block that hangs raises TimeoutError:")

    async def hanging_block() -> str:
        clock.advance(2)  # the bucket refills
        try:
            async with compose(breaker, bucket, Timeout(1.0, clock=clock)):
                await Upstream("hang")("inline")
        except TimeoutError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no timeout"

    print(f"  {await run_on_clock(hanging_block)}")


def refusals() -> None:
    print("3. What compose() refuses, at once:")
    try:
        with compose(retry_policy, breaker):
            pass
    except TypeError as exc:
        print(f"  with compose(Retry, breaker): TypeError: {exc}")

    try:
        compose(retry_policy, breaker, bucket, breaker)
    except ValueError as exc:
        print(f"  the same breaker twice: ValueError: {exc}")

    def blocking_call() -> str:
        return "done"

    try:
        compose(breaker, Timeout(1.0, clock=clock))(blocking_call)
    except TypeError as exc:
        message = re.sub(r" at 0x[0-9a-f]+", "", str(exc))  # no address: the same every run
        print(f"  Timeout on a plain def: TypeError: {message}")


async def main() -> None:
    await full_stack()
    await blocks()
    refusals()


if __name__ == "__main__":
    anyio.run(main, backend="asyncio")
