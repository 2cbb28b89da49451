"""A narrated demo of a circuit breaker at work: ``python -m resilio``.

A simulated client calls a flaky in-process upstream through a
[`CircuitBreaker`][resilio.CircuitBreaker], four times a second. The upstream fails in short bursts
and goes down completely for the middle fifth of the run. Every state change is printed as it
happens, from a subscription to [`CircuitStateChanged`][resilio.CircuitStateChanged] on a private
[`EventBus`][resilio.EventBus], and a summary closes the run.

Time is a [`ManualClock`][resilio.ManualClock] moved on a quarter of a second per call, so
a run of minutes of virtual time takes a fraction of a second, and the same
``--seed`` always prints the same story.
"""

from __future__ import annotations

import argparse
import random
import sys

from . import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    EventBus,
    ManualClock,
)

TICK = 0.25
"""Virtual seconds between two calls of the client."""

BURST_CHANCE = 0.02
"""Chance that a call to a healthy upstream starts a burst of failures."""

BURST_SECONDS = (0.25, 2.5)
"""Shortest and longest burst of failures, in seconds."""


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


class Upstream:
    """A stand-in for a remote service: failure bursts, and one outage.

    Args:
        clock: Tells the upstream what time it is.
        rng: Decides when bursts start and how long they last.
        outage: The start and end of the outage, in clock seconds.
    """

    def __init__(self, clock: ManualClock, rng: random.Random, outage: tuple[float, float]) -> None:
        self._clock = clock
        self._rng = rng
        self._outage = outage
        self._burst_until = 0.0
        self.received = 0

    def down(self) -> bool:
        """Whether the upstream is in its outage now."""
        start, end = self._outage
        return start <= self._clock.monotonic() < end

    def __call__(self) -> str:
        """Serve one request, or fail."""
        self.received += 1
        if self.down():
            raise ConnectionError("upstream is down")
        now = self._clock.monotonic()
        if now < self._burst_until:
            raise TimeoutError("upstream timed out")
        if self._rng.random() < BURST_CHANCE:
            length = round(self._rng.uniform(*BURST_SECONDS), 2)
            self._burst_until = now + length
            _say(f"  [{now:7.2f}s] -- the upstream times out for {length:g}s --")
            raise TimeoutError("upstream timed out")
        return "ok"


class Narrator:
    """Prints each state change and keeps the books on time spent open."""

    def __init__(self) -> None:
        self.rejected = 0
        self.rejected_since_open = 0
        self.open_since: float | None = None
        self.time_open = 0.0

    def on_change(self, event: CircuitStateChanged) -> None:
        """Print one state change, with what happened while the breaker was open."""
        note = ""
        if event.old is CircuitState.OPEN and self.open_since is not None:
            self.time_open += event.at - self.open_since
            self.open_since = None
            note = f"  after rejecting {self.rejected_since_open} calls"
        if event.new is CircuitState.OPEN:
            self.open_since = event.at
            self.rejected_since_open = 0
        _say(
            f"  [{event.at:7.2f}s] breaker {event.old.value:>9} -> {event.new.value:<9} "
            f"({event.reason}){note}"
        )

    def on_rejected(self) -> None:
        """Count one call that the breaker refused."""
        self.rejected += 1
        self.rejected_since_open += 1


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m resilio",
        description="Watch a circuit breaker protect a client from a flaky upstream.",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the upstream (default 1)")
    parser.add_argument(
        "--calls", type=int, default=400, help="calls the client makes (default 400)"
    )
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error(f"--calls must be at least 1: {args.calls}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the demo and return the exit status.

    Args:
        argv: The command-line arguments, without the program name; ``None`` reads
            ``sys.argv``.
    """
    args = _parse(argv)
    duration = args.calls * TICK
    outage = (round(0.4 * duration, 2), round(0.6 * duration, 2))

    clock = ManualClock()
    bus = EventBus()
    narrator = Narrator()
    bus.subscribe(CircuitStateChanged, narrator.on_change)
    breaker = CircuitBreaker(
        name="upstream",
        failure_threshold=5,
        success_threshold=3,
        open_timeout=5.0,
        clock=clock,
        bus=bus,
    )
    upstream = Upstream(clock, random.Random(args.seed), outage)

    _say(
        f"A client calls a flaky upstream {args.calls} times, every {TICK:g}s of virtual "
        f"time, through\n{breaker!r}."
    )
    _say(f"The upstream fails in bursts, and is down from t={outage[0]:g}s to t={outage[1]:g}s.")
    _say()

    successes = failures = 0
    was_down = False
    for _ in range(args.calls):
        if upstream.down() != was_down:
            was_down = not was_down
            event = "goes down" if was_down else "is back up"
            _say(f"  [{clock.monotonic():7.2f}s] -- the upstream {event} --")
        try:
            breaker.call(upstream)
        except CircuitOpenError:
            narrator.on_rejected()
        except (ConnectionError, TimeoutError):
            failures += 1
        else:
            successes += 1
        clock.advance(TICK)

    if narrator.open_since is not None:
        narrator.time_open += clock.monotonic() - narrator.open_since
    _say()
    _say(
        f"{args.calls} calls: {successes} succeeded, {failures} failed, "
        f"{narrator.rejected} rejected by the breaker; "
        f"open for {narrator.time_open:g}s of {duration:g}s."
    )
    _say(
        f"The upstream received {upstream.received} of them; the other {narrator.rejected} "
        f"failed fast, without waiting on it. The breaker ends {breaker.state.value}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
