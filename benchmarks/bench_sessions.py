"""Sessions: resilio's event-driven SessionManager against a periodic-scan reaper.

With N live sessions (1,000,000; 20,000 with --quick) on the real clock:
- the cost of ``create`` and ``touch`` per call, and of a full ``gc.collect()`` with N
  live, side by side with release 1's SessionManager (loaded from git history),
  target: the collection <= 0.5x release 1's;
- an evicting ``create`` (``max_sessions`` reached) with 1,000 and with 200,000
  (20,000 with --quick) live, target: flat, <= 1.5x from the small to the large;
- peak Python heap per session beyond its data (tracemalloc), target <= 400 bytes;
- expiry lateness (hook start minus deadline), p50 and p99 over N/10 sessions
  expiring while N stay live, target p99 <= 20 ms;
- side by side, a reaper that scans every session once a second (the design the
  event-driven manager replaces): its lateness, and the CPU it burns while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import resilio

LONG = 10_000.0  # the ttl of the sessions that stay live
RELEASE_1 = "c4385f6"  # the last commit of release 1 on main


def release_1() -> tuple[ModuleType | None, str]:
    """Release 1's ``_sessions`` module, loaded from git history into the package.

    Returns the module, or ``None`` and why it could not be had (no git, a shallow
    clone, or a module that no longer imports against today's package).
    """
    root = Path(__file__).resolve().parent.parent
    try:
        source = subprocess.run(
            ["git", "-C", str(root), "show", f"{RELEASE_1}:src/resilio/_sessions.py"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"release 1 ({RELEASE_1}) is not in reach of git: {exc}"
    name = "resilio._sessions_release_1"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "resilio"
    sys.modules[name] = module
    try:
        exec(compile(source, f"{RELEASE_1}:src/resilio/_sessions.py", "exec"), module.__dict__)
    except Exception as exc:  # any failure means: no comparison
        del sys.modules[name]
        return None, f"release 1's _sessions.py no longer loads: {exc!r}"
    return module, f"release 1 = {RELEASE_1}"


async def _fill(manager: resilio.SessionManager, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await manager.create(None, ttl=LONG)
    return (time.perf_counter() - start) / n


def _collect_time(repeats: int = 3) -> float:
    gc.collect()  # (settles: tuples of atoms are untracked by the first collection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - start)
    return min(times)


async def _costs(module: Any, n: int) -> tuple[float, float, float]:
    """create and touch per call, and one full collection with n live."""
    async with module.SessionManager(LONG) as manager:
        create = await _fill(manager, n)
        collect = _collect_time()
        ids = list(manager._sessions)
        start = time.perf_counter()
        for session_id in ids:
            await manager.touch(session_id)
        touch = (time.perf_counter() - start) / len(ids)
        del ids
        manager._sessions.clear()  # skip n destroy-on-shutdown hooks: not measured here
        manager._heap.clear()
    return create, touch, collect


def collector(n: int, repeats: int) -> dict[str, Any]:
    """Release 1 and today's manager, in turns: create, touch, gc.collect() with n live."""
    old, why = release_1()
    modules = {"now": resilio}
    if old is not None:
        modules = {"release 1": old, "now": resilio}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in modules}
    for r in range(repeats):
        names = list(modules) if r % 2 == 0 else list(reversed(modules))
        for name in names:
            runs[name].append(asyncio.run(_costs(modules[name], n)))
            gc.collect()
    out: dict[str, Any] = {"note": why}
    for name, samples in runs.items():
        out[name] = tuple(statistics.median(column) for column in zip(*samples, strict=True))
        out[name + " spread"] = tuple((min(c), max(c)) for c in zip(*samples, strict=True))
    return out


async def _evicting(module: Any, sizes: tuple[int, ...], batch: int, repeats: int) -> list[float]:
    """Median seconds per evicting create with each size of max_sessions, in turns."""
    managers = [module.SessionManager(LONG, max_sessions=size) for size in sizes]
    times: list[list[float]] = [[] for _ in sizes]
    async with contextlib.AsyncExitStack() as stack:
        for manager, size in zip(managers, sizes, strict=True):
            await stack.enter_async_context(manager)
            await _fill(manager, size)
        for r in range(repeats):
            order = list(range(len(sizes)))
            for i in order if r % 2 == 0 else reversed(order):
                times[i].append(await _fill(managers[i], batch))  # each create evicts one
        for manager in managers:
            manager._sessions.clear()
    return [statistics.median(t) for t in times]


def eviction(large: int, batch: int, repeats: int) -> dict[str, list[float]]:
    """Per evicting create at 1,000 and at *large* live, for release 1 and today."""
    old, _why = release_1()
    modules: dict[str, Any] = {"now": resilio}
    if old is not None:
        modules = {"release 1": old, "now": resilio}
    sizes = (1_000, large)
    return {
        name: asyncio.run(_evicting(module, sizes, batch, repeats))
        for name, module in modules.items()
    }


async def _heap_per_session(n: int) -> float:
    async with resilio.SessionManager(LONG) as manager:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _fill(manager, n)
        after, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        manager._sessions.clear()
    return (after - before) / n


async def _lateness(n_live: int, n_expiring: int, spread: float) -> list[float]:
    late: list[float] = []
    now = time.monotonic

    def hook(session: resilio.Session) -> None:
        late.append(now() - session.created_at - session.ttl)  # type: ignore[operator]

    rng = random.Random(1)
    async with resilio.SessionManager(LONG) as manager:
        await _fill(manager, n_live)
        for _ in range(n_expiring):
            ttl = 1.0 + rng.random() * spread
            await manager.create(None, ttl=ttl, on_destroy=hook)
        while len(late) < n_expiring:
            await asyncio.sleep(0.05)
        manager._sessions.clear()
    return late


class ScanReaper:
    """The design being replaced: every `period` seconds, walk every session."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.sessions: dict[int, tuple[float, float, Any]] = {}  # id -> (touched, ttl, hook)
        self.scans = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.scan()

    def scan(self) -> None:
        self.scans += 1
        now = time.monotonic()
        expired = [k for k, (touched, ttl, _) in self.sessions.items() if touched + ttl <= now]
        for key in expired:
            _, _, hook = self.sessions.pop(key)
            if hook is not None:
                hook(key)


async def _reaper_lateness(
    n_live: int, n_expiring: int, spread: float
) -> tuple[list[float], float]:
    reaper = ScanReaper(1.0)
    late: list[float] = []
    deadlines: dict[int, float] = {}
    now = time.monotonic
    for i in range(n_live):
        reaper.sessions[i] = (now(), LONG, None)

    def hook(key: int) -> None:
        late.append(now() - deadlines[key])

    task = asyncio.create_task(reaper.run())
    # idle CPU: n_live sessions, nothing expiring, for three scans
    cpu = time.process_time()
    await asyncio.sleep(3.05)
    idle_cpu = (time.process_time() - cpu) / 3.05
    rng = random.Random(1)
    start = now()
    for i in range(n_live, n_live + n_expiring):
        ttl = 1.0 + rng.random() * spread
        deadlines[i] = start + ttl
        reaper.sessions[i] = (start, ttl, hook)
    while len(late) < n_expiring:
        await asyncio.sleep(0.05)
    task.cancel()
    return late, idle_cpu


async def _idle_cpu(n_live: int) -> float:
    async with resilio.SessionManager(LONG) as manager:
        await _fill(manager, n_live)
        cpu = time.process_time()
        await asyncio.sleep(3.05)
        used = (time.process_time() - cpu) / 3.05
        manager._sessions.clear()
    return used


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


SECTIONS: list[str] = []  # text sections of the last main() run


def _collector_text(n: int, figures: dict[str, Any]) -> tuple[str, float | None]:
    now = figures["now"]
    old = figures.get("release 1")
    lines = [
        f"\n## Sessions: create, touch and a full gc.collect() with {n:,} live "
        "(median of runs taken in turns)\n",
        f"{figures['note']}\n",
        "| figure | release 1 (min–max) | now (min–max) | now ÷ release 1 |",
        "|---|---:|---:|---:|",
    ]
    ratio = None
    for i, (label, scale, unit) in enumerate(
        [("create", 1e6, "µs"), ("touch", 1e6, "µs"), ("gc.collect()", 1e3, "ms")]
    ):

        def cell(name: str, i: int = i, scale: float = scale, unit: str = unit) -> str:
            if name not in figures:
                return "—"
            low, high = figures[name + " spread"][i]
            return f"{figures[name][i] * scale:.2f} {unit} ({low * scale:.2f}–{high * scale:.2f})"

        versus = f"{now[i] / old[i]:.2f}×" if old else "—"
        lines.append(f"| {label} | {cell('release 1')} | {cell('now')} | {versus} |")
    if old:
        ratio = now[2] / old[2]
        verdict = "met" if ratio <= 0.5 else "MISSED"
        if n < 1_000_000:  # the interpreter's own objects weigh as much as the sessions
            verdict = "a smoke run, not a measurement"
        lines.append(
            f"\ntarget: gc.collect() with {n:,} live <= 0.5× release 1's: "
            f"measured {ratio:.2f}× — {verdict}"
        )
    else:
        lines.append("\ntarget: gc.collect() <= 0.5× release 1's: not measured (see above)")
    return "\n".join(lines) + "\n", ratio


def _eviction_text(large: int, figures: dict[str, list[float]]) -> tuple[str, float]:
    lines = [
        "\n## Sessions: an evicting create (max_sessions reached)\n",
        f"| manager | 1,000 live | {large:,} live | {large:,} ÷ 1,000 |",
        "|---|---:|---:|---:|",
    ]
    for name, (small, big) in figures.items():
        lines.append(f"| {name} | {small * 1e6:.2f} µs | {big * 1e6:.2f} µs | {big / small:.2f}× |")
    small, big = figures["now"]
    ratio = big / small
    verdict = "met" if ratio <= 1.5 else "MISSED"
    lines.append(f"\ntarget: flat, {large:,} live <= 1.5× 1,000 live: {ratio:.2f}× — {verdict}")
    return "\n".join(lines) + "\n", ratio


def main(quick: bool = False) -> dict[str, Any]:
    n = 20_000 if quick else 1_000_000
    spread = 1.0 if quick else 2.0
    large = 20_000 if quick else 200_000
    figures = collector(n, 2 if quick else 4)
    collector_text, gc_ratio = _collector_text(n, figures)
    print(collector_text)
    evictions = eviction(large, 500 if quick else 5_000, 3 if quick else 9)
    eviction_text, eviction_ratio = _eviction_text(large, evictions)
    print(eviction_text)
    create, touch, _collect = figures["now"]
    per_session = asyncio.run(_heap_per_session(min(n, 200_000)))
    late = asyncio.run(_lateness(n, n // 10, spread))
    idle = asyncio.run(_idle_cpu(n))
    reaper_late, reaper_idle = asyncio.run(_reaper_lateness(n, n // 10, spread))
    p50, p99 = _pct(late, 0.5), _pct(late, 0.99)
    lines = [
        f"\n## Sessions: {n:,} live, {n // 10:,} expiring over {spread:g} s "
        "(asyncio, real clock)\n",
        f"heap per session beyond its data: {per_session:.0f} bytes "
        f"(target <= 400: {'met' if per_session <= 400 else 'MISSED'})",
        "\n| reaper | lateness p50 | p99 | max | CPU while idle |\n|---|---:|---:|---:|---:|",
        f"| resilio SessionManager (one timer) | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | "
        f"{max(late) * 1e3:.2f} ms | {idle:.1%} of a core |",
        f"| scan every 1 s | {_pct(reaper_late, 0.5) * 1e3:.0f} ms | "
        f"{_pct(reaper_late, 0.99) * 1e3:.0f} ms | {max(reaper_late) * 1e3:.0f} ms | "
        f"{reaper_idle:.1%} of a core |",
        f"\ntarget: p99 lateness <= 20 ms: {p99 * 1e3:.2f} ms — "
        f"{'met' if p99 <= 0.02 else 'MISSED'}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    SECTIONS[:] = [collector_text, eviction_text]  # for run.py --report
    return {
        "create": create,
        "touch": touch,
        "bytes": per_session,
        "p50": p50,
        "p99": p99,
        "gc_ratio": gc_ratio,
        "eviction_ratio": eviction_ratio,
    }
