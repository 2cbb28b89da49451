"""Prometheus: every named primitive on a scrape, read from its counters.

A breaker, a token bucket and a retry policy, each with a ``name=``, take a short
scripted workload; ``collector()`` registers one prometheus_client collector that
reads their counters at each scrape. Nothing is counted per call for the exporter.
Time is a ManualClock, so the example prints the same every time.

Needs the extra: ``pip install 'resilio-primitives[prometheus]'``.
Run it with ``python examples/prometheus_metrics.py``.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, generate_latest

from resilio import CircuitBreaker, CircuitOpenError, ManualClock, Retry, TokenBucket
from resilio.metrics.prometheus import collector

clock = ManualClock()

# --8<-- [start:collector]
breaker = CircuitBreaker(name="payments", failure_threshold=2, clock=clock)
bucket = TokenBucket(rate=5, capacity=2, name="search-api", clock=clock)
retry = Retry(attempts=3, base_delay=0.1, jitter=None, name="fetch", clock=clock)

registry = CollectorRegistry()  # or leave it out: prometheus_client's global REGISTRY
collector(registry=registry)  # every named live primitive, found at each scrape
# --8<-- [end:collector]


def down() -> str:
    raise ConnectionError("payments service down")


def workload() -> None:
    breaker.call(lambda: "paid")
    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            breaker.call(down)
    with contextlib.suppress(CircuitOpenError):
        breaker.call(lambda: "paid")
    for _ in range(3):
        bucket.try_acquire()
    replies = iter([TimeoutError("slow"), "ok"])

    def flaky() -> str:
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    retry.call(flaky)


workload()

# --8<-- [start:scrape]
text = generate_latest(registry).decode()
shown = (
    "resilio_calls_total",
    "resilio_circuitbreaker_state",
    "resilio_ratelimiter_requests_total",
    "resilio_retry_calls_total",
)
for line in text.splitlines():
    if line.startswith(shown):
        print(line)
# --8<-- [end:scrape]
