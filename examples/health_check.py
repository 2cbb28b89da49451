"""A background health check moves an open breaker to half-open as soon as a probe passes.

The breaker's ``open_timeout`` is a full minute, but inside
``async with breaker.health_check(probe, interval=5.0)`` a task probes the dependency
every 5 seconds while the breaker is open, and lets traffic back in as soon as a probe
succeeds. Time is a ``ManualClock``, moved on in 5-second steps; after each step
``anyio.wait_all_tasks_blocked()`` lets the health-check task run its probe.

Run it with ``python examples/health_check.py``.
"""

from __future__ import annotations

from contextlib import suppress

import anyio

from resilio import CircuitBreaker, CircuitStateChanged, EventBus, ManualClock


class Inventory:
    """A stand-in for a remote service, down until told otherwise."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.up = False

    async def fetch(self, sku: str) -> int:
        if not self.up:
            raise ConnectionError("inventory unreachable")
        return 42

    async def ping(self) -> bool:
        """The health probe: cheap, and returns False (or raises) when unhealthy."""
        print(f"  [t={self.clock.monotonic():4.1f}s] probe: {'up' if self.up else 'down'}")
        return self.up


async def main() -> None:
    clock = ManualClock()
    bus = EventBus()
    bus.subscribe(
        CircuitStateChanged,
        lambda e: print(f"  [t={e.at:4.1f}s] {e.old.value} -> {e.new.value} ({e.reason})"),
    )
    breaker = CircuitBreaker(
        name="inventory",
        failure_threshold=2,
        success_threshold=1,
        open_timeout=60.0,
        clock=clock,
        bus=bus,
    )
    inventory = Inventory(clock)
    fetch = breaker(inventory.fetch)

    print("The inventory service goes down; two failures open the breaker.")
    for _ in range(2):
        with suppress(ConnectionError):
            await fetch("sku-1")

    print("A health check probes it every 5 s instead of waiting out the 60 s timeout.")
    async with breaker.health_check(inventory.ping, interval=5.0):
        await anyio.wait_all_tasks_blocked()  # the checker is now sleeping on the clock
        for step in range(1, 4):
            if step == 3:
                print("  (the service comes back)")
                inventory.up = True
            clock.advance(5.0)
            await anyio.wait_all_tasks_blocked()  # let the checker run its probe
        print(f"  breaker is {breaker.state.value} at t={clock.monotonic():.1f}s, not t=60s")

    print("The next call is a probe call; it succeeds and closes the breaker.")
    print(f"  stock: {await fetch('sku-1')}, breaker is {breaker.state.value}")


if __name__ == "__main__":
    anyio.run(main)
