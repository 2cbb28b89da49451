"""Draw the pictures on the rate limiter pages: docs/images/{token,leaky}-bucket.png.

Both pictures come from the real limiters, not from a model of them: a
``TokenBucket`` and a ``LeakyBucket`` on a ``ManualClock`` receive the same bursty
arrivals, one asyncio task per request calling ``await bucket.acquire()``, while
this script moves virtual time on in small steps and records the bucket's state and
every admission.

The images are committed, so building the docs never needs matplotlib. After a
change to the limiters, regenerate them by hand from the repository root::

    pip install -e '.[docs]'
    python docs/plot_tokens.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio

from resilio import EventBus, LeakyBucket, ManualClock, RateLimitExceeded, TokenBucket

IMAGES = Path(__file__).resolve().parent / "images"
STEP = 0.01  # seconds of virtual time between samples
END = 10.0
RATE = 2.0  # both buckets: two a second
TOKEN_CAPACITY = 5  # the token bucket's burst
QUEUE_CAPACITY = 4  # the leaky bucket's queue


def arrivals() -> list[float]:
    """A burst of eight, three stragglers, a burst of six; a little spread for legibility."""
    burst = [1.0 + 0.05 * i for i in range(8)]
    stragglers = [5.0, 5.2, 5.4]
    second_burst = [7.5 + 0.05 * i for i in range(6)]
    return burst + stragglers + second_burst


@dataclass
class Run:
    """What one simulated run recorded."""

    times: list[float] = field(default_factory=list)
    level: list[float] = field(default_factory=list)  # tokens, or requests queued
    arrived: list[float] = field(default_factory=list)
    admitted: list[float | None] = field(default_factory=list)  # None: refused


def simulate(make: type[TokenBucket | LeakyBucket], capacity: float, *, tokens: bool) -> Run:
    """Feed the arrivals to a fresh bucket; sample its level every STEP seconds."""
    clock = ManualClock()
    bucket = make(rate=RATE, capacity=capacity, clock=clock, bus=EventBus())
    run = Run(arrived=arrivals())
    run.admitted = [None] * len(run.arrived)

    async def request(index: int) -> None:
        try:
            await bucket.acquire()
        except RateLimitExceeded:
            return
        run.admitted[index] = clock.monotonic()

    async def main() -> None:
        pending = list(enumerate(run.arrived))
        async with anyio.create_task_group() as tasks:
            for step in range(round(END / STEP) + 1):
                now = step * STEP
                clock.advance(max(0.0, now - clock.monotonic()))
                await anyio.wait_all_tasks_blocked()  # let woken waiters take their grant
                while pending and pending[0][1] <= now + 1e-9:
                    tasks.start_soon(request, pending.pop(0)[0])
                    await anyio.wait_all_tasks_blocked()  # one at a time, in order
                run.times.append(now)
                run.level.append(bucket.available if tokens else bucket.waiting)

    anyio.run(main)
    return run


def plot(run: Run, path: Path, *, title: str, level_label: str, capacity_label: str) -> None:
    """Two panels sharing the time axis: the level, and each request's fate."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.6), sharex=True, height_ratios=[1, 1.15], layout="constrained"
    )
    fig.suptitle(title)

    capacity = TOKEN_CAPACITY if level_label == "tokens" else QUEUE_CAPACITY
    top.plot(run.times, run.level, color="tab:blue", linewidth=1.6, drawstyle="steps-post")
    top.axhline(capacity, color="grey", linestyle="--", linewidth=1)
    top.text(0.1, capacity + 0.15, capacity_label, color="grey", fontsize=9)
    admitted = [t for t in run.admitted if t is not None]
    marks = [run.level[round(t / STEP)] for t in admitted]
    top.plot(admitted, marks, "o", color="tab:green", markersize=4, label="admission")
    top.set_ylabel(level_label)
    top.set_ylim(-0.3, capacity + 0.9)
    top.legend(loc="upper right", fontsize=9)
    top.grid(alpha=0.3)

    for row, (arrived, admitted_at) in enumerate(zip(run.arrived, run.admitted, strict=True)):
        if admitted_at is None:
            bottom.plot(arrived, row, "x", color="tab:red", markersize=7)
            continue
        bottom.plot([arrived, admitted_at], [row, row], color="tab:orange", linewidth=2)
        bottom.plot(arrived, row, "|", color="black", markersize=7)
        bottom.plot(admitted_at, row, "o", color="tab:green", markersize=4)
    bottom.plot([], [], "|", color="black", label="arrives")
    bottom.plot([], [], color="tab:orange", linewidth=2, label="waits")
    bottom.plot([], [], "o", color="tab:green", markersize=4, label="admitted")
    if None in run.admitted:
        bottom.plot([], [], "x", color="tab:red", label="refused (queue full)")
    bottom.invert_yaxis()
    bottom.set_ylabel("request (arrival order)")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, END)
    bottom.legend(loc="upper right", fontsize=9)
    bottom.grid(alpha=0.3)

    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    plot(
        simulate(TokenBucket, TOKEN_CAPACITY, tokens=True),
        IMAGES / "token-bucket.png",
        title=(
            f"TokenBucket(rate={RATE:g}, capacity={TOKEN_CAPACITY}): "
            f"bursts of up to {TOKEN_CAPACITY}, then {RATE:g} a second"
        ),
        level_label="tokens",
        capacity_label="capacity",
    )
    plot(
        simulate(LeakyBucket, QUEUE_CAPACITY, tokens=False),
        IMAGES / "leaky-bucket.png",
        title=(
            f"LeakyBucket(rate={RATE:g}, capacity={QUEUE_CAPACITY}): "
            f"one every {1 / RATE:g} s, at most {QUEUE_CAPACITY} waiting"
        ),
        level_label="requests queued",
        capacity_label="capacity (queue)",
    )


if __name__ == "__main__":
    main()
