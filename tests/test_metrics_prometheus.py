"""The Prometheus collector, against the real prometheus_client: exact values after a
scripted run on a ManualClock, parsed back from the scrape text."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import resilio._registry
from resilio import (
    CircuitBreaker,
    CircuitOpenError,
    Fallback,
    LeakyBucket,
    ManualClock,
    PoolFullError,
    Retry,
    RetryBudget,
    SessionManager,
    SlidingWindowBreaker,
    Timeout,
    TokenBucket,
    WorkerPool,
)
from resilio.metrics.prometheus import ResilioCollector, collector

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of a scrape, parsed back: (name, labels) -> value."""
    text = generate_latest(registry).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


def names_of(samples: Samples, label: str = "name") -> set[str]:
    return {dict(labels).get(label, "") for _, labels in samples}


def boom() -> str:
    raise OSError("down")


class TestScriptedRun:
    """Every family holds the exact counts of a scripted run."""

    def test_breaker(self) -> None:
        clock = ManualClock()
        breaker = CircuitBreaker(name="payments", failure_threshold=2, clock=clock)
        for _ in range(3):
            breaker.call(lambda: "ok")
        for _ in range(2):
            with pytest.raises(OSError):
                breaker.call(boom)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "ok")
        registry = CollectorRegistry()
        collector(breaker, registry=registry)
        s = scrape(registry)
        kind = {"name": "payments", "kind": "circuitbreaker"}
        assert value(s, "resilio_calls_total", outcome="succeeded", **kind) == 3
        assert value(s, "resilio_calls_total", outcome="failed", **kind) == 2
        assert value(s, "resilio_calls_total", outcome="ignored", **kind) == 0
        assert value(s, "resilio_calls_total", outcome="rejected", **kind) == 1
        assert value(s, "resilio_circuitbreaker_transitions_total", name="payments") == 1
        state = "resilio_circuitbreaker_state"
        assert value(s, state, name="payments", state="open") == 1
        assert value(s, state, name="payments", state="closed") == 0
        assert value(s, state, name="payments", state="half_open") == 0
        # The next scrape reads the state now: the breaker half-opens, then closes.
        clock.advance(30)
        for _ in range(3):
            breaker.call(lambda: "ok")
        s = scrape(registry)
        assert value(s, state, name="payments", state="closed") == 1
        assert value(s, state, name="payments", state="open") == 0
        assert value(s, "resilio_circuitbreaker_transitions_total", name="payments") == 3
        assert value(s, "resilio_calls_total", outcome="succeeded", **kind) == 6

    def test_sliding_breaker_shares_the_breaker_families(self) -> None:
        window = SlidingWindowBreaker(name="search", clock=ManualClock())
        window.call(lambda: "ok")
        registry = CollectorRegistry()
        collector(window, registry=registry)
        s = scrape(registry)
        labels = {"name": "search", "kind": "circuitbreaker", "outcome": "succeeded"}
        assert value(s, "resilio_calls_total", **labels) == 1
        assert value(s, "resilio_circuitbreaker_state", name="search", state="closed") == 1

    def test_buckets(self) -> None:
        clock = ManualClock()
        bucket = TokenBucket(1, 2, name="api", clock=clock)
        assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
        bucket.acquire_sync()  # waits 1 s on the manual clock (its sleep advances it)
        leaky = LeakyBucket(2, 4, name="queue", clock=clock)
        assert leaky.try_acquire()
        registry = CollectorRegistry()
        collector(bucket, leaky, registry=registry)
        s = scrape(registry)
        req = "resilio_ratelimiter_requests_total"
        assert value(s, req, name="api", outcome="granted") == 3
        assert value(s, req, name="api", outcome="refused") == 1
        assert value(s, req, name="api", outcome="cancelled") == 0
        assert value(s, "resilio_ratelimiter_tokens_total", name="api") == 3
        assert value(s, "resilio_ratelimiter_wait_seconds_total", name="api") == 1.0
        assert value(s, "resilio_ratelimiter_wait_seconds_max", name="api") == 1.0
        assert value(s, "resilio_ratelimiter_available_tokens", name="api") == 0
        assert value(s, "resilio_ratelimiter_waiting", name="api") == 0
        assert value(s, "resilio_ratelimiter_rate", name="api") == 1
        assert value(s, "resilio_ratelimiter_capacity", name="api") == 2
        assert value(s, req, name="queue", outcome="granted") == 1
        assert value(s, "resilio_ratelimiter_capacity", name="queue") == 4

    def test_retry_and_budget(self) -> None:
        clock = ManualClock()
        budget = RetryBudget(name="shared", clock=clock)
        retry = Retry(attempts=3, base_delay=0.5, budget=budget, name="fetch", clock=clock)
        tries = iter([OSError("once"), None])

        def flaky() -> str:
            error = next(tries)
            if error is not None:
                raise error
            return "ok"

        assert retry.call(flaky) == "ok"
        assert retry.call(lambda: "ok") == "ok"
        with pytest.raises(OSError):
            retry.call(boom)
        registry = CollectorRegistry()
        collector(retry, budget, registry=registry)
        s = scrape(registry)
        calls = "resilio_retry_calls_total"
        assert value(s, calls, name="fetch", kind="succeeded_without_retry") == 1
        assert value(s, calls, name="fetch", kind="succeeded_with_retry") == 1
        assert value(s, calls, name="fetch", kind="failed_without_retry") == 0
        assert value(s, calls, name="fetch", kind="failed_with_retry") == 1
        assert value(s, calls, name="fetch", kind="cancelled") == 0
        assert value(s, "resilio_retry_retries_total", name="fetch") == 3
        assert value(s, "resilio_retry_exhausted_total", name="fetch") == 1
        assert value(s, "resilio_retry_refused_total", name="fetch") == 0
        assert value(s, "resilio_retry_budget_deposits_total", name="shared") == 3
        assert value(s, "resilio_retry_budget_withdrawals_total", name="shared") == 3
        assert value(s, "resilio_retry_budget_refusals_total", name="shared") == 0
        stats = budget.stats()
        assert value(s, "resilio_retry_budget_available", name="shared") == stats.available

    def test_timeout_and_fallback(self) -> None:
        fallback = Fallback(lambda error: "cached", name="prices", clock=ManualClock())
        assert fallback.call(boom) == "cached"
        timeout = Timeout(1.0, name="slow")
        registry = CollectorRegistry()
        collector(fallback, timeout, registry=registry)
        s = scrape(registry)
        assert value(s, "resilio_fallback_used_total", name="prices") == 1
        assert value(s, "resilio_timeout_timed_out_total", name="slow") == 0


@pytest.mark.anyio
async def test_pool_and_sessions() -> None:
    """The pool's and the session manager's families, on asyncio and trio."""
    clock = ManualClock()
    registry = CollectorRegistry()
    async with WorkerPool(2, 1, name="workers") as pool:
        await pool.run(nothing)
        with pytest.raises(OSError):
            await pool.run(boom_async)
        gate = anyio.Event()
        handles = [pool.submit_nowait(gate.wait) for _ in range(3)]  # 2 busy, 1 queued
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(PoolFullError):
            pool.submit_nowait(gate.wait)
        async with SessionManager(10, name="carts", clock=clock) as sessions:
            first = await sessions.create()
            await sessions.create()
            await sessions.destroy(first.id)
            collector(pool, sessions, registry=registry)
            s = scrape(registry)
            assert value(s, "resilio_sessions_created_total", name="carts") == 2
            assert value(s, "resilio_sessions_live", name="carts") == 1
            destroyed = "resilio_sessions_destroyed_total"
            assert value(s, destroyed, name="carts", reason="closed") == 1
            assert value(s, destroyed, name="carts", reason="expired") == 0
            assert value(s, "resilio_sessions_hook_failures_total", name="carts") == 0
        assert value(s, "resilio_pool_submitted_total", name="workers") == 5
        tasks = "resilio_pool_tasks_total"
        assert value(s, tasks, name="workers", outcome="completed") == 1
        assert value(s, tasks, name="workers", outcome="failed") == 1
        assert value(s, tasks, name="workers", outcome="cancelled") == 0
        assert value(s, tasks, name="workers", outcome="rejected") == 1
        assert value(s, "resilio_pool_busy", name="workers") == 2
        assert value(s, "resilio_pool_queued", name="workers") == 1
        assert value(s, "resilio_pool_queue_peak", name="workers") == 1
        assert value(s, "resilio_pool_workers", name="workers") == 2
        gate.set()
        for handle in handles:
            await handle


async def nothing() -> None:
    await anyio.sleep(0)


async def boom_async() -> None:
    raise OSError("down")


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry of live primitives, so that those other tests keep alive stay out."""
    monkeypatch.setattr(resilio._registry, "_LIVE", weakref.WeakSet())


@pytest.mark.usefixtures("own_registry")
class TestLivePrimitives:
    """With no primitives given: every named live one, held weakly."""

    def test_named_primitives_are_found_and_dropped_ones_leave(self) -> None:
        gc.collect()
        registry = CollectorRegistry()
        collector(registry=registry)
        kept = TokenBucket(1, 1, name="prom-kept")
        assert names_of(scrape(registry)) == {"prom-kept"}
        dropped = TokenBucket(1, 1, name="prom-dropped")
        unnamed = TokenBucket(1, 1)
        assert names_of(scrape(registry)) == {"prom-kept", "prom-dropped"}
        assert unnamed.name not in names_of(scrape(registry))
        del dropped
        gc.collect()
        found = names_of(scrape(registry))
        assert found == {"prom-kept"}
        del kept

    def test_two_of_a_kind_under_one_name_fail_the_scrape(self) -> None:
        registry = CollectorRegistry()
        collector(registry=registry)
        first = CircuitBreaker(name="prom-twin")
        second = SlidingWindowBreaker(name="prom-twin")  # same kind: circuitbreaker
        with pytest.raises(
            ValueError, match=r"two circuitbreaker primitives are named 'prom-twin'"
        ):
            generate_latest(registry)
        del second
        gc.collect()
        assert "prom-twin" in names_of(scrape(registry))
        del first

    def test_one_name_in_two_kinds_is_fine(self) -> None:
        registry = CollectorRegistry()
        collector(registry=registry)
        bucket = TokenBucket(1, 1, name="prom-shared")
        retry = Retry(name="prom-shared")
        s = scrape(registry)
        assert value(s, "resilio_ratelimiter_tokens_total", name="prom-shared") == 0
        assert value(s, "resilio_retry_retries_total", name="prom-shared") == 0
        del bucket, retry


class TestExplicitList:
    def test_only_the_given_primitives_named_or_not(self) -> None:
        registry = CollectorRegistry()
        listed = TokenBucket(1, 1)  # the default name: exported all the same
        other = TokenBucket(1, 1, name="prom-not-listed")
        collector(listed, registry=registry)
        found = names_of(scrape(registry))
        assert found == {"token-bucket"}
        del other

    def test_held_strongly(self) -> None:
        registry = CollectorRegistry()
        collector(TokenBucket(1, 1, name="prom-held"), registry=registry)
        gc.collect()
        assert names_of(scrape(registry)) == {"prom-held"}

    def test_duplicates_refused_at_once(self) -> None:
        with pytest.raises(ValueError, match=r"two ratelimiter primitives are named 'dup'"):
            collector(TokenBucket(1, 1, name="dup"), LeakyBucket(1, 1, name="dup"))

    def test_what_it_cannot_export_is_refused(self) -> None:
        with pytest.raises(TypeError, match=r"collector\(\) cannot export 'text'"):
            collector(TokenBucket(1, 1), "text", registry=CollectorRegistry())

    def test_unregister(self) -> None:
        registry = CollectorRegistry()
        made = collector(TokenBucket(1, 1, name="prom-gone"), registry=registry)
        assert isinstance(made, ResilioCollector)
        registry.unregister(made)
        assert scrape(registry) == {}

    def test_default_registry(self) -> None:
        from prometheus_client import REGISTRY

        made = collector(TokenBucket(1, 1, name="prom-global"))
        try:
            text = generate_latest(REGISTRY).decode()
            assert 'resilio_ratelimiter_tokens_total{name="prom-global"} 0.0' in text
        finally:
            REGISTRY.unregister(made)


def test_import_without_prometheus_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n"
        "    import resilio.metrics.prometheus\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'resilio-primitives[prometheus]'" in out


def test_core_does_not_import_the_exporters() -> None:
    code = "import sys, resilio; print('resilio.metrics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scrape_of_a_thousand_primitives() -> None:
    """A thousand primitives of four kinds scrape into one text (its time is measured
    outside the suite: see the Observability page)."""
    clock = ManualClock()
    primitives: list[Any] = []
    for i in range(250):
        primitives += [
            CircuitBreaker(name=f"b{i}", clock=clock),
            TokenBucket(1, 1, name=f"t{i}", clock=clock),
            Retry(name=f"r{i}", clock=clock),
            Timeout(1.0, name=f"o{i}", clock=clock),
        ]
    registry = CollectorRegistry()
    collector(*primitives, registry=registry)
    text = generate_latest(registry)
    assert text.count(b"\n") > 1000 * 3
