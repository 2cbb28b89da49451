"""Side-by-side timing: resilio and its peers measured in one process run.

Every case in a group is timed in the same run, interleaved: each repeat runs every
case once, in a rotated order, and the *added* cost of a case is its time minus the
group's baseline in that same repeat. The median over repeats is reported, and the
ratio of resilio's added cost to each peer's, so a machine whose speed drifts during
the run (they do, by 1.5x and more) still gives comparable numbers.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Case:
    """One thing to time: a zero-argument callable (sync) or coroutine function (async)."""

    name: str
    fn: Callable[[], object]
    role: str = "peer"  # "baseline", "resilio" or "peer"


@dataclass
class Target:
    """A goal: resilio's added cost over `peer`'s added cost must be <= `ratio`."""

    resilio: str
    peer: str
    ratio: float


@dataclass
class Result:
    """Medians per case, in seconds per call, plus per-repeat added costs."""

    title: str
    per_call: dict[str, float]
    added: dict[str, float]
    targets: list[tuple[Target, float, bool]] = field(default_factory=list)
    #: every repeat's added cost per case, in run order (the medians above come from these)
    added_runs: dict[str, list[float]] = field(default_factory=dict)
    #: per target, in the order of ``targets``: the per-repeat ratios' lowest, first
    #: quartile, third quartile and highest
    spreads: list[tuple[float, float, float, float]] = field(default_factory=list)

    def ratio_runs(self, resilio: str, peer: str) -> list[float]:
        """resilio's added cost over *peer*'s, repeat by repeat (repeats where the peer's
        added cost was not above zero are left out)."""
        pairs = zip(self.added_runs.get(resilio, []), self.added_runs.get(peer, []), strict=True)
        return [r / p for r, p in pairs if p > 0]


def _time_sync(fn: Callable[[], object], number: int) -> float:
    loop = range(number)
    start = time.perf_counter()
    for _ in loop:
        fn()
    return (time.perf_counter() - start) / number


async def _time_async(fn: Callable[[], Awaitable[object]], number: int) -> float:
    loop = range(number)
    start = time.perf_counter()
    for _ in loop:
        await fn()
    return (time.perf_counter() - start) / number


def _calibrate(timer: Callable[[int], float], budget: float) -> int:
    number = 100
    while True:
        took = timer(number) * number
        if took >= budget / 4 or number >= 10_000_000:
            return max(100, int(number * budget / max(took, 1e-9)))
        number *= 4


def _collect(
    title: str,
    cases: Sequence[Case],
    timer: Callable[[Case, int], float],
    repeats: int,
    budget: float,
) -> Result:
    baseline = next(c for c in cases if c.role == "baseline")
    numbers = {c.name: _calibrate(lambda n, c=c: timer(c, n), budget) for c in cases}
    samples: dict[str, list[float]] = {c.name: [] for c in cases}
    added: dict[str, list[float]] = {c.name: [] for c in cases}
    order = list(cases)
    for r in range(repeats):
        rotated = order[r % len(order) :] + order[: r % len(order)]
        times = {c.name: timer(c, numbers[c.name]) for c in rotated}
        for name, t in times.items():
            samples[name].append(t)
            added[name].append(t - times[baseline.name])
    return Result(
        title=title,
        per_call={k: statistics.median(v) for k, v in samples.items()},
        added={k: statistics.median(v) for k, v in added.items()},
        added_runs=added,
    )


def run_sync(
    title: str, cases: Sequence[Case], *, repeats: int = 15, budget: float = 0.05
) -> Result:
    """Time sync cases side by side; see the module docstring."""
    return _collect(title, cases, lambda c, n: _time_sync(c.fn, n), repeats, budget)


def run_async(
    title: str, cases: Sequence[Case], *, repeats: int = 15, budget: float = 0.05
) -> Result:
    """Time async cases side by side on one asyncio event loop."""
    loop = asyncio.new_event_loop()
    try:
        return _collect(
            title,
            cases,
            lambda c, n: loop.run_until_complete(_time_async(c.fn, n)),  # type: ignore[arg-type]
            repeats,
            budget,
        )
    finally:
        loop.close()


def check(result: Result, targets: Sequence[Target]) -> Result:
    """Evaluate targets (ratio of added costs) against a result."""
    for target in targets:
        ratio = result.added[target.resilio] / result.added[target.peer]
        result.targets.append((target, ratio, ratio <= target.ratio))
        runs = result.ratio_runs(target.resilio, target.peer) or [ratio]
        q1, _, q3 = (
            statistics.quantiles(runs, n=4, method="inclusive") if len(runs) > 1 else (runs[0],) * 3
        )
        result.spreads.append((min(runs), q1, q3, max(runs)))
    return result


def report(result: Result, *, out: object = None) -> None:
    """Print a result as a small table: per call, added, ratio of resilio to each case."""
    write = (out or sys.stdout).write  # type: ignore[attr-defined]
    resilio = [name for name in result.added if name.startswith("resilio")]
    write(f"\n## {result.title}\n\n")
    write(f"| case | per call | added | {' | '.join(f'{r} ÷ this' for r in resilio)} |\n")
    write(f"|---|---:|---:|{'---:|' * len(resilio)}\n")
    for name, per_call in result.per_call.items():
        added = result.added[name]
        ratios = " | ".join(
            f"{result.added[r] / added:.2f}×" if added > 0 else "—" for r in resilio
        )
        write(f"| {name} | {per_call * 1e9:,.0f} ns | {added * 1e9:,.0f} ns | {ratios} |\n")
    for (target, ratio, ok), spread in zip(result.targets, result.spreads, strict=True):
        low, q1, q3, high = spread
        verdict = "met" if ok else "MISSED"
        write(
            f"\ntarget: {target.resilio} ≤ {target.ratio}× {target.peer} "
            f"(added cost): measured {ratio:.3f}× (repeats: middle half {q1:.3f}–{q3:.3f}×, "
            f"all {low:.3f}–{high:.3f}×) — {verdict}"
        )
    write("\n")


def calls_per_second(
    fn: Callable[[], object], threads: int, seconds: float, *, batch: int = 1
) -> float:
    """Calls of *fn* per second from *threads* threads started together, for *seconds*.

    Each thread reads the clock once per *batch* calls, so a cheap *fn* is not drowned
    by the clock reads.
    """
    stop = time.perf_counter() + seconds
    counts = [0] * threads
    barrier = threading.Barrier(threads)

    def worker(i: int) -> None:
        barrier.wait()
        n = 0
        while time.perf_counter() < stop:
            for _ in range(batch):
                fn()
            n += batch
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds
