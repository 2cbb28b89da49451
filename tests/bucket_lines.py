"""Test helpers shared by the token and leaky bucket tests: a line of waiting tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from resilio import (
    Event,
    LeakyBucket,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    TokenBucket,
)

Bucket = TokenBucket | LeakyBucket


async def settle() -> None:
    """Let every woken task run until all are blocked again.

    The checkpoints first let chains of hand-offs run without the 0.1 s pauses that
    ``wait_all_tasks_blocked`` takes on asyncio when it finds a runnable task.
    """
    for _ in range(10):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


def limited(events: list[Event]) -> list[tuple[float, float | None, bool, float]]:
    """The (amount, retry_after, rejected, at) of every RateLimited recorded."""
    return [
        (e.amount, e.retry_after, e.rejected, e.at) for e in events if isinstance(e, RateLimited)
    ]


class Line:
    """Tasks queued on one bucket, each recording when it was served, refused or cancelled."""

    def __init__(self, tg: TaskGroup, bucket: Bucket, clock: ManualClock) -> None:
        self.tg = tg
        self.bucket = bucket
        self.clock = clock
        self.served: list[tuple[str, float]] = []
        self.refused: dict[str, RateLimitExceeded] = {}
        self.cancelled: list[str] = []

    async def join(
        self, name: str, n: float = 1, timeout: float | timedelta | None = None
    ) -> anyio.CancelScope:
        """Start a task that acquires *n*; return once it is blocked, with its cancel scope."""
        scope = anyio.CancelScope()

        async def wait() -> None:
            with scope:
                try:
                    await self.bucket.acquire(n, timeout=timeout)
                except RateLimitExceeded as exc:
                    self.refused[name] = exc
                else:
                    self.served.append((name, self.clock.monotonic()))
            if scope.cancelled_caught:
                self.cancelled.append(name)

        self.tg.start_soon(wait)
        await settle()
        return scope

    async def advance_to(self, when: float) -> None:
        """Move the clock to *when* and let every woken task run."""
        self.clock.advance(when - self.clock.monotonic())
        await settle()

    async def run_to(self, *whens: float) -> None:
        """Advance to each time in turn."""
        for when in whens:
            await self.advance_to(when)


@asynccontextmanager
async def line_of(bucket: Bucket, clock: ManualClock) -> AsyncIterator[Line]:
    """A Line in its own task group; tasks still waiting at the end are cancelled."""
    async with anyio.create_task_group() as tg:
        yield Line(tg, bucket, clock)
        tg.cancel_scope.cancel()
