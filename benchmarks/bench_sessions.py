"""Sessions: resilio's event-driven SessionManager against a periodic-scan reaper.

With N live sessions (1,000,000; 20,000 with --quick) on the real clock:
- the cost of ``create`` and ``touch`` per call;
- peak Python heap per session beyond its data (tracemalloc), target <= 400 bytes;
- expiry lateness (hook start minus deadline), p50 and p99 over N/10 sessions
  expiring while N stay live, target p99 <= 20 ms;
- side by side, a reaper that scans every session once a second (the design the
  event-driven manager replaces): its lateness, and the CPU it burns while idle.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
import tracemalloc
from typing import Any

import resilio

LONG = 10_000.0  # the ttl of the sessions that stay live


async def _fill(manager: resilio.SessionManager, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await manager.create(None, ttl=LONG)
    return (time.perf_counter() - start) / n


async def _costs(n: int) -> tuple[float, float]:
    async with resilio.SessionManager(LONG) as manager:
        create = await _fill(manager, n)
        ids = list(manager._sessions)
        start = time.perf_counter()
        for session_id in ids:
            await manager.touch(session_id)
        touch = (time.perf_counter() - start) / len(ids)
        manager._sessions.clear()  # skip n destroy-on-shutdown hooks: not measured here
    return create, touch


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


def main(quick: bool = False) -> dict[str, Any]:
    n = 20_000 if quick else 1_000_000
    spread = 1.0 if quick else 2.0
    create, touch = asyncio.run(_costs(n))
    per_session = asyncio.run(_heap_per_session(min(n, 200_000)))
    late = asyncio.run(_lateness(n, n // 10, spread))
    idle = asyncio.run(_idle_cpu(n))
    reaper_late, reaper_idle = asyncio.run(_reaper_lateness(n, n // 10, spread))
    p50, p99 = _pct(late, 0.5), _pct(late, 0.99)
    print(
        f"\n## Sessions: {n:,} live, {n // 10:,} expiring over {spread:g} s (asyncio, real clock)\n"
    )
    print(f"create: {create * 1e6:.2f} µs per call; touch: {touch * 1e6:.2f} µs per call")
    print(
        f"heap per session beyond its data: {per_session:.0f} bytes "
        f"(target <= 400: {'met' if per_session <= 400 else 'MISSED'})"
    )
    print("\n| reaper | lateness p50 | p99 | max | CPU while idle |\n|---|---:|---:|---:|---:|")
    print(
        f"| resilio SessionManager (one timer) | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | "
        f"{max(late) * 1e3:.2f} ms | {idle:.1%} of a core |"
    )
    print(
        f"| scan every 1 s | {_pct(reaper_late, 0.5) * 1e3:.0f} ms | "
        f"{_pct(reaper_late, 0.99) * 1e3:.0f} ms | {max(reaper_late) * 1e3:.0f} ms | "
        f"{reaper_idle:.1%} of a core |"
    )
    verdict = "met" if p99 <= 0.02 else "MISSED"
    print(f"\ntarget: p99 lateness <= 20 ms: {p99 * 1e3:.2f} ms — {verdict}")
    return {"create": create, "touch": touch, "bytes": per_session, "p50": p50, "p99": p99}
