"""A narrated demo of resilio at work: ``python -m resilio``.

Concurrent clients call a flaky in-process upstream (random latency, failure bursts and an
outage) through one composed policy: a [`Retry`][resilio.Retry] drawing on a
[`RetryBudget`][resilio.RetryBudget], then a [`CircuitBreaker`][resilio.CircuitBreaker], a
[`TokenBucket`][resilio.TokenBucket] and a [`Timeout`][resilio.Timeout], run on a
[`WorkerPool`][resilio.WorkerPool], while a [`SessionManager`][resilio.SessionManager] reaps
the sessions of clients that went idle. Breaker state changes, budget refusals and the
outage are printed as they happen, with a line on each tenth of the run, and a summary
table closes it.

Time is a [`ManualClock`][resilio.ManualClock] that a driver task moves on in small
steps, so a minute of virtual time takes a few seconds at most, and the same
``--seed`` always prints the same story.
"""

from __future__ import annotations

import argparse
import math
import sys

import anyio

from ._demo import Demo

SAFETY_SECONDS = 30.0
"""Real seconds after which a stuck run is abandoned."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m resilio",
        description="Watch resilio's primitives protect clients from a flaky upstream.",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the run (default 1)")
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="virtual seconds the clients keep calling (default 60)",
    )
    args = parser.parse_args(argv)
    if not (math.isfinite(args.duration) and 1 <= args.duration <= 600):
        parser.error(f"--duration must be between 1 and 600 seconds: {args.duration:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the demo and return the exit status.

    Args:
        argv: The command-line arguments, without the program name; ``None`` reads
            ``sys.argv``.
    """
    args = _parse(argv)
    demo = Demo(args.seed, args.duration)
    demo.header()

    async def run() -> None:
        with anyio.fail_after(SAFETY_SECONDS):
            await demo.run()

    anyio.run(run, backend="asyncio")
    demo.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
