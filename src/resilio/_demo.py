"""The machinery behind ``python -m resilio``: a flaky upstream, its clients, and a narrator.

Private: the demo's own pieces, built only from resilio's public primitives. Everything
runs on one [`ManualClock`][resilio.ManualClock] that a driver task moves on in small
steps, waiting after each step until every other task is blocked again, so a minute of
virtual time takes a moment of real time and a seed always tells the same story.
"""

from __future__ import annotations

import random
import sys
from collections import Counter

import anyio
import anyio.lowlevel

from . import (
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    EventBus,
    ManualClock,
    RateLimited,
    RateLimitExceeded,
    Retry,
    RetryBudget,
    RetryRefused,
    RetryScheduled,
    SessionCreated,
    SessionDestroyed,
    SessionManager,
    SessionNotFound,
    Timeout,
    TokenBucket,
    WorkerPool,
    compose,
)

STEP = 0.01
"""Virtual seconds the driver moves the clock on at a time."""

SETTLE = 12
"""Event-loop turns the driver yields after each step, for the tasks it woke to run."""

CLIENTS = 10
"""Concurrent clients; each runs visits (sessions) of several requests."""

WORKERS = 4
"""Worker pool size: at most this many requests are in flight at once."""

RATE = 10.0
"""Tries per second the token bucket admits (bursts of up to 5); the rest are rejected."""

TIMEOUT = 0.5
"""Seconds each try may take before the policy's timeout cuts it off."""

IDLE_TIMEOUT = 5.0
"""Seconds a session may sit idle before the session manager reaps it."""

BURST_CHANCE = 0.004
"""Chance that a request to a healthy upstream starts a burst of failures."""

BURST_FAILURES = 0.7
"""Share of the requests that fail during a burst."""


async def settle() -> None:
    """Let every task woken by a clock step run until it waits again.

    A fixed number of event-loop turns rather than ``anyio.wait_all_tasks_blocked()``,
    which sleeps a tenth of a real second whenever a task is still runnable: with
    nothing but the loop's FIFO queue deciding the order, the run stays deterministic.
    """
    for _ in range(SETTLE):
        await anyio.lowlevel.checkpoint()


def say(line: str = "") -> None:
    """Write one line to standard output."""
    sys.stdout.write(line + "\n")


def stamp(at: float) -> str:
    """The virtual-time prefix of a live line."""
    return f"  [{at:6.2f}s]"


class Upstream:
    """A stand-in for a remote service: random latency, failure bursts and one outage.

    Args:
        clock: Tells the upstream what time it is, and how it waits.
        rng: Decides latencies, and when bursts start and how long they last.
        outage: The start and end of the outage, in clock seconds.
    """

    def __init__(self, clock: ManualClock, rng: random.Random, outage: tuple[float, float]) -> None:
        self._clock = clock
        self._rng = rng
        self.outage = outage
        self._burst_until = 0.0
        self.received = 0
        self.cut_off = 0

    def down(self) -> bool:
        """Whether the upstream is in its outage now."""
        start, end = self.outage
        return start <= round(self._clock.monotonic(), 6) < end

    async def __call__(self, client: int) -> str:
        """Serve one request after a random latency, or fail."""
        self.received += 1
        rng, now = self._rng, self._clock.monotonic()
        if self.down():
            await self._clock.sleep_async(0.02)
            raise ConnectionError("connection refused")
        if now >= self._burst_until and rng.random() < BURST_CHANCE:
            self._burst_until = now + rng.uniform(0.5, 1.5)
        latency = rng.uniform(1.0, 2.0) if rng.random() < 0.03 else rng.uniform(0.02, 0.15)
        try:
            await self._clock.sleep_async(round(latency, 2))
        except anyio.get_cancelled_exc_class():
            self.cut_off += 1  # the policy's timeout ended this try
            raise
        if self._clock.monotonic() < self._burst_until and rng.random() < BURST_FAILURES:
            raise ConnectionError("connection reset")
        return f"hello, client {client}"


class Narrator:
    """Counts what the primitives report, prints what matters, and sums it up."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.window: Counter[str] = Counter()
        self.refusing_since: float | None = None
        self.last_refusal = -1.0

    def count(self, key: str) -> None:
        """Count one occurrence of *key*, in the run and in the current window."""
        self.total[key] += 1
        self.window[key] += 1

    def on_breaker(self, event: CircuitStateChanged) -> None:
        """Print a breaker state change as it happens."""
        say(
            f"{stamp(event.at)} breaker {event.old.value} -> {event.new.value} "
            f"({event.reason.replace('_', ' ')})"
        )

    def on_rejected(self, _event: CallRejected) -> None:
        """Count a try the breaker refused."""
        self.count("breaker rejections")

    def on_limited(self, event: RateLimited) -> None:
        """Count a try the token bucket refused."""
        if event.rejected:
            self.count("limiter rejections")

    def on_retry(self, _event: RetryScheduled) -> None:
        """Count a retry about to be made."""
        self.count("retries")

    def on_refused(self, event: RetryRefused) -> None:
        """Count a retry the budget refused; print when a spell of refusals begins."""
        self.count("budget refusals")
        if event.at - self.last_refusal > 1.0:
            say(f"{stamp(event.at)} retry budget spent: failed tries now go back without a retry")
        self.last_refusal = event.at

    def on_session_created(self, _event: SessionCreated) -> None:
        """Count a new session."""
        self.count("sessions created")

    def on_session_destroyed(self, event: SessionDestroyed) -> None:
        """Count a destroyed session by its reason."""
        self.count(f"sessions {event.reason}")

    def report(self, at: float, live_sessions: int) -> None:
        """Print one line on the window just ended, then start a new window."""
        w = self.window
        say(
            f"{stamp(at)} calls {w['calls']:3}: ok {w['ok']:3}, failed {w['failed']:2}, "
            f"rejected {w['rejected by breaker']:2}+{w['limited']:2}; retries {w['retries']:2}; "
            f"sessions {live_sessions:2} live, {w['sessions expired']:2} reaped"
        )
        self.window = Counter()


class Demo:
    """One run: the upstream, the composed policy, the clients, the pool and the sessions.

    Args:
        seed: Seeds every random choice of the run.
        duration: Virtual seconds during which clients start new requests.
    """

    def __init__(self, seed: int, duration: float) -> None:
        self.seed = seed
        self.duration = duration
        self.clock = ManualClock()
        self.bus = EventBus()
        self.narrator = Narrator()
        rng = random.Random(seed)
        outage = (round(0.45 * duration, 2), round(0.6 * duration, 2))
        self.upstream = Upstream(self.clock, random.Random(rng.random()), outage)
        clock, bus = self.clock, self.bus
        self.breaker = CircuitBreaker(
            name="upstream",
            failure_threshold=5,
            failure_rate_threshold=0.6,
            success_threshold=2,
            open_timeout=3.0,
            failure_on=(ConnectionError, TimeoutError),
            clock=clock,
            bus=bus,
        )
        self.bucket = TokenBucket(RATE, 5, reject=True, name="limiter", clock=clock, bus=bus)
        self.budget = RetryBudget(ratio=0.1, min_per_second=0.2, clock=clock)
        self.retry = Retry(
            on=(ConnectionError, TimeoutError),
            attempts=3,
            base_delay=0.1,
            max_delay=1.0,
            budget=self.budget,
            random=random.Random(rng.random()).random,
            clock=clock,
            bus=bus,
        )
        self.policy = compose(self.retry, self.breaker, self.bucket, Timeout(TIMEOUT, clock=clock))
        self.call = self.policy(self.upstream.__call__)
        self.client_seeds = [rng.random() for _ in range(CLIENTS)]
        self.clients_running = 0
        n = self.narrator
        bus.subscribe(CircuitStateChanged, n.on_breaker)
        bus.subscribe(CallRejected, n.on_rejected)
        bus.subscribe(RateLimited, n.on_limited)
        bus.subscribe(RetryScheduled, n.on_retry)
        bus.subscribe(RetryRefused, n.on_refused)
        bus.subscribe(SessionCreated, n.on_session_created)
        bus.subscribe(SessionDestroyed, n.on_session_destroyed)

    def header(self) -> None:
        """Print what is about to happen."""
        start, end = self.upstream.outage
        say(
            f"resilio demo (seed {self.seed}): {CLIENTS} clients call a flaky upstream for "
            f"{self.duration:g}s of virtual time"
        )
        say(
            f"through retry (3 tries, budgeted) -> breaker -> token bucket ({RATE:g}/s) -> "
            f"timeout ({TIMEOUT:g}s), on {WORKERS} workers;"
        )
        say(
            f"sessions idle for {IDLE_TIMEOUT:g}s are reaped. "
            f"The upstream is down from t={start:g}s to t={end:g}s."
        )
        say(
            f"Every {self.duration / 10:g}s, the calls that ended (rejected: by breaker + by "
            "limiter), retries, sessions."
        )
        say()

    async def request(self, client: int) -> None:
        """One request through the policy, its outcome counted."""
        n = self.narrator
        try:
            await self.call(client)
        except (CircuitOpenError, RateLimitExceeded) as exc:
            n.count("rejected")
            n.count("rejected by breaker" if isinstance(exc, CircuitOpenError) else "limited")
        except (ConnectionError, TimeoutError):
            n.count("failed")
        else:
            n.count("ok")
        n.count("calls")  # counted when done, so each window's outcomes add up

    async def client(self, index: int, pool: WorkerPool, sessions: SessionManager) -> None:
        """Visits, each a session of requests; at the end of one, log out or just leave."""
        rng = random.Random(self.client_seeds[index])
        clock = self.clock
        visit = 0
        try:
            await clock.sleep_async(round(rng.uniform(0, 1), 2))
            while clock.monotonic() < self.duration:
                visit += 1
                session = await sessions.create({"client": index}, id=f"c{index}v{visit}")
                for _ in range(rng.randint(3, 15)):
                    if clock.monotonic() >= self.duration:
                        break
                    await pool.run(self.request, index)
                    try:
                        await sessions.touch(session.id)
                    except SessionNotFound:
                        break  # idle too long while waiting: the manager reaped it
                    await clock.sleep_async(round(rng.uniform(0.1, 0.8), 2))
                if rng.random() < 0.5:
                    await sessions.destroy(session.id)  # logs out: reason "closed"
                if clock.monotonic() >= self.duration:
                    break  # a session still open is closed at shutdown
                await clock.sleep_async(round(rng.uniform(0.5, 8.0), 2))  # or just left
        finally:
            self.clients_running -= 1

    async def drive(self, sessions: SessionManager) -> None:
        """Move the clock on in steps until every client is done; narrate as it goes."""
        clock, n = self.clock, self.narrator
        window = self.duration / 10
        next_report = window
        was_down = False
        steps = 0
        await settle()
        while self.clients_running:
            steps += 1
            clock.advance(STEP)
            await settle()
            now = round(steps * STEP, 2)
            if self.upstream.down() != was_down:
                was_down = not was_down
                what = "goes down (outage)" if was_down else "is back up"
                say(f"{stamp(now)} -- the upstream {what} --")
            if now >= next_report - 1e-9 and now <= self.duration + 1e-9:
                n.report(now, len(sessions))
                next_report += window

    async def run(self) -> None:
        """Run the clients on the pool, with sessions, while the driver moves time."""
        clock = self.clock
        async with (
            SessionManager(
                idle_timeout=IDLE_TIMEOUT, name="clients", clock=clock, bus=self.bus
            ) as sessions,
            WorkerPool(
                WORKERS, queue_size=4 * WORKERS, name="pool", clock=clock, bus=self.bus
            ) as pool,
            anyio.create_task_group() as tasks,
        ):
            self.clients_running = CLIENTS
            for index in range(CLIENTS):
                tasks.start_soon(self.client, index, pool, sessions)
            tasks.start_soon(self.drive, sessions)

    def summary(self) -> None:
        """Print the table of what happened, and one closing sentence."""
        t = self.narrator.total
        up = self.upstream
        reaped = t["sessions expired"]
        closed = t["sessions closed"]
        rows = [
            ("calls made by clients", t["calls"]),
            ("  succeeded", t["ok"]),
            ("  failed after retries", t["failed"]),
            ("  rejected by the breaker", t["rejected by breaker"]),
            ("  rejected by the limiter", t["limited"]),
            ("tries that reached the upstream", up.received),
            ("  cut off by the timeout", up.cut_off),
            ("retries made", t["retries"]),
            ("retries refused by the budget", t["budget refusals"]),
            ("sessions created", t["sessions created"]),
            ("  reaped when idle", reaped),
            ("  closed by their client", closed),
            ("  closed at shutdown", t["sessions shutdown"]),
        ]
        width = max(len(label) for label, _ in rows)
        say()
        say(f"  {'what':<{width}}  {'count':>6}")
        say(f"  {'-' * width}  {'-' * 6}")
        for label, value in rows:
            say(f"  {label:<{width}}  {value:>6}")
        say()
        fast = t["rejected by breaker"] + t["limited"]
        state = self.breaker.state
        ending = "closed" if state is CircuitState.CLOSED else f"{state.value}"
        say(
            f"{t['ok']} of {t['calls']} calls succeeded; {fast} failed fast instead of "
            f"waiting on a broken upstream, and the breaker ends {ending}."
        )
