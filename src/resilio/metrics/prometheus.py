"""A Prometheus collector for resilio's primitives, read at scrape time.

[`collector`][resilio.metrics.prometheus.collector] registers one
`prometheus_client` collector that, at each scrape, reads every primitive's
``snapshot()`` / ``stats()`` and turns the counts into metric families. Nothing is
counted on a call's path for the exporter: the primitives keep their counters
anyway, and a scrape only reads them.

Names follow Prometheus's conventions: a ``resilio_`` prefix, one family per
quantity, ``_total`` for counters, seconds for durations, and the primitive's
``name`` as a label. Counters never go down: a primitive's ``reset()`` resets its
state, not its totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    msg = (
        "resilio.metrics.prometheus needs prometheus_client: "
        "pip install 'resilio-primitives[prometheus]'"
    )
    raise ImportError(msg) from exc

from resilio._breaker import CircuitState
from resilio._registry import check_unique, kind_of, named

__all__ = ["ResilioCollector", "collector"]

_STATES = tuple(state.value for state in CircuitState)


class _Families:
    """The metric families of one scrape, made on first use, in a stable order."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = CounterMetricFamily(name, doc, labels=labels)
        assert isinstance(family, CounterMetricFamily)
        return family

    def gauge(self, name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = GaugeMetricFamily(name, doc, labels=labels)
        assert isinstance(family, GaugeMetricFamily)
        return family

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def _breaker(f: _Families, p: Any) -> None:
    s = p.snapshot()
    name = p.name
    state = f.gauge(
        "resilio_circuitbreaker_state",
        "Whether the breaker is in this state now (1) or not (0).",
        ["name", "state"],
    )
    for value in _STATES:
        state.add_metric([name, value], 1.0 if s.state.value == value else 0.0)
    calls = f.counter(
        "resilio_calls",
        "Calls through a breaker since it was built, by outcome.",
        ["name", "kind", "outcome"],
    )
    kind = kind_of(p)
    calls.add_metric([name, kind, "succeeded"], s.succeeded)
    calls.add_metric([name, kind, "failed"], s.failed)
    calls.add_metric([name, kind, "ignored"], s.ignored)
    calls.add_metric([name, kind, "rejected"], s.rejected)
    f.counter(
        "resilio_circuitbreaker_transitions",
        "State changes of the breaker since it was built.",
        ["name"],
    ).add_metric([name], s.transitions)
    f.gauge(
        "resilio_circuitbreaker_failure_rate",
        "The failure rate the breaker sees now, between 0 and 1.",
        ["name"],
    ).add_metric([name], s.failure_rate)


def _limiter(f: _Families, p: Any) -> None:
    s = p.stats()
    name = p.name
    requests = f.counter(
        "resilio_ratelimiter_requests",
        "Requests to a rate limiter since it was built, by how they ended.",
        ["name", "outcome"],
    )
    requests.add_metric([name, "granted"], s.granted)
    requests.add_metric([name, "refused"], s.refused)
    requests.add_metric([name, "cancelled"], s.cancelled)
    f.counter(
        "resilio_ratelimiter_tokens", "Tokens granted since the limiter was built.", ["name"]
    ).add_metric([name], s.tokens)
    f.counter(
        "resilio_ratelimiter_wait_seconds",
        "Seconds the granted requests spent waiting for admission.",
        ["name"],
    ).add_metric([name], s.waited)
    f.gauge(
        "resilio_ratelimiter_wait_seconds_max",
        "The longest wait of one granted request, in seconds.",
        ["name"],
    ).add_metric([name], s.wait_max)
    f.gauge(
        "resilio_ratelimiter_available_tokens",
        "Tokens available now (a leaky bucket: free room in its queue).",
        ["name"],
    ).add_metric([name], s.available)
    f.gauge(
        "resilio_ratelimiter_waiting", "Requests queued for admission now.", ["name"]
    ).add_metric([name], s.waiting)
    f.gauge(
        "resilio_ratelimiter_rate", "Admissions (tokens) per second allowed now.", ["name"]
    ).add_metric([name], s.rate)
    f.gauge(
        "resilio_ratelimiter_capacity",
        "The burst size of a token bucket, the queue size of a leaky bucket.",
        ["name"],
    ).add_metric([name], s.capacity)


def _retry(f: _Families, p: Any) -> None:
    s = p.stats()
    name = p.name
    calls = f.counter(
        "resilio_retry_calls",
        "Calls through a retry policy that have ended, by kind.",
        ["name", "kind"],
    )
    calls.add_metric([name, "succeeded_without_retry"], s.succeeded_without_retry)
    calls.add_metric([name, "succeeded_with_retry"], s.succeeded_with_retry)
    calls.add_metric([name, "failed_without_retry"], s.failed_without_retry)
    calls.add_metric([name, "failed_with_retry"], s.failed_with_retry)
    calls.add_metric([name, "cancelled"], s.cancelled)
    f.counter(
        "resilio_retry_retries", "Tries after the first, counted as each starts.", ["name"]
    ).add_metric([name], s.retries)
    f.counter(
        "resilio_retry_exhausted",
        "Failed calls whose retrying ran out (attempts, timeout or a hint).",
        ["name"],
    ).add_metric([name], s.exhausted)
    f.counter(
        "resilio_retry_refused",
        "Failed calls whose next retry the retry budget refused.",
        ["name"],
    ).add_metric([name], s.refused)


def _budget(f: _Families, p: Any) -> None:
    s = p.stats()
    name = p.name
    f.counter(
        "resilio_retry_budget_deposits", "First tries counted by the budget.", ["name"]
    ).add_metric([name], s.deposits)
    f.counter(
        "resilio_retry_budget_withdrawals", "Retries the budget allowed.", ["name"]
    ).add_metric([name], s.withdrawals)
    f.counter("resilio_retry_budget_refusals", "Retries the budget refused.", ["name"]).add_metric(
        [name], s.refusals
    )
    f.gauge(
        "resilio_retry_budget_available", "Retries the budget would allow now.", ["name"]
    ).add_metric([name], s.available)


def _pool(f: _Families, p: Any) -> None:
    s = p.stats()
    name = p.name
    f.counter(
        "resilio_pool_submitted", "Tasks the pool accepted since it was built.", ["name"]
    ).add_metric([name], s.submitted)
    tasks = f.counter(
        "resilio_pool_tasks",
        "Tasks that ended (completed, failed, cancelled) or were refused (rejected).",
        ["name", "outcome"],
    )
    tasks.add_metric([name, "completed"], s.completed)
    tasks.add_metric([name, "failed"], s.failed)
    tasks.add_metric([name, "cancelled"], s.cancelled)
    tasks.add_metric([name, "rejected"], s.rejected)
    f.gauge("resilio_pool_workers", "Worker tasks running now.", ["name"]).add_metric(
        [name], s.workers
    )
    f.gauge("resilio_pool_busy", "Workers running a task now.", ["name"]).add_metric([name], s.busy)
    f.gauge("resilio_pool_queued", "Tasks waiting for a worker now.", ["name"]).add_metric(
        [name], s.queued
    )
    f.gauge(
        "resilio_pool_queue_peak", "The most tasks ever waiting in the queue at once.", ["name"]
    ).add_metric([name], s.queue_peak)


def _sessions(f: _Families, p: Any) -> None:
    s = p.stats()
    name = p.name
    f.counter(
        "resilio_sessions_created", "Sessions created since the manager was built.", ["name"]
    ).add_metric([name], s.created)
    destroyed = f.counter(
        "resilio_sessions_destroyed", "Sessions destroyed, by reason.", ["name", "reason"]
    )
    for reason, count in sorted(s.destroyed.items()):
        destroyed.add_metric([name, reason], count)
    f.counter(
        "resilio_sessions_hook_failures", "Session hooks that raised or timed out.", ["name"]
    ).add_metric([name], s.hook_failures)
    f.counter(
        "resilio_sessions_touched", "Session touches since the manager was built.", ["name"]
    ).add_metric([name], s.touched)
    f.gauge("resilio_sessions_live", "Sessions alive now.", ["name"]).add_metric([name], s.live)
    f.gauge(
        "resilio_sessions_expiry_lateness_seconds_max",
        "The latest a session was destroyed past its due time, in seconds.",
        ["name"],
    ).add_metric([name], s.lateness_max)


def _timeout(f: _Families, p: Any) -> None:
    f.counter(
        "resilio_timeout_timed_out", "Calls and blocks cancelled past their time.", ["name"]
    ).add_metric([p.name], p.stats().timed_out)


def _fallback(f: _Families, p: Any) -> None:
    f.counter(
        "resilio_fallback_used", "Calls answered by the fallback handler.", ["name"]
    ).add_metric([p.name], p.stats().used)


_READERS: dict[str, Callable[[_Families, Any], None]] = {
    "circuitbreaker": _breaker,
    "ratelimiter": _limiter,
    "retry": _retry,
    "retrybudget": _budget,
    "workerpool": _pool,
    "sessionmanager": _sessions,
    "timeout": _timeout,
    "fallback": _fallback,
}


def _families(primitives: Iterable[Any]) -> Iterator[Metric]:
    families = _Families()
    for primitive in primitives:
        reader = _READERS.get(kind_of(primitive))
        if reader is not None:
            reader(families, primitive)
    return iter(families)


class ResilioCollector(Collector):
    """A `prometheus_client` collector reading resilio primitives at each scrape.

    Made and registered by [`collector`][resilio.metrics.prometheus.collector];
    unregister it with ``registry.unregister(c)``.
    """

    def __init__(self, primitives: Sequence[Any]) -> None:
        self._primitives: tuple[Any, ...] | None = tuple(primitives) or None

    def _targets(self) -> list[Any]:
        if self._primitives is None:
            targets = named()
        else:
            targets = sorted(self._primitives, key=lambda p: (kind_of(p), str(p.name)))
        check_unique(targets)
        return targets

    def collect(self) -> Iterator[Metric]:
        """The metric families of every primitive, read now.

        Raises:
            ValueError: two primitives of one kind share a name (their series would
                merge); the scrape fails with this error rather than show one of them.
        """
        return _families(self._targets())

    def describe(self) -> Iterator[Metric]:
        """Nothing: the families depend on the primitives alive at each scrape."""
        return iter(())


def collector(*primitives: Any, registry: CollectorRegistry | None = None) -> ResilioCollector:
    """Export resilio primitives to Prometheus, read at each scrape.

    With no primitives given, every live primitive built with a ``name=`` is exported
    (held weakly: a dropped primitive leaves the next scrape). Given primitives are
    exported as long as the collector lives, named or not.

    Args:
        *primitives: Breakers, buckets, retry policies, budgets, pools, session
            managers, timeouts and fallbacks to export; none for every named live one.
        registry: Where to register the collector; prometheus_client's global
            ``REGISTRY`` by default.

    Returns:
        The registered collector (``registry.unregister(c)`` removes it).

    Raises:
        TypeError: one of the *primitives* is not one resilio can export.
        ValueError: two of the *primitives* share a kind and a name; with none given,
            the same error is raised by each scrape that finds two live ones.
    """
    for primitive in primitives:
        if kind_of(primitive) not in _READERS:
            msg = (
                f"collector() cannot export {primitive!r}: pass breakers, buckets, retry "
                "policies, retry budgets, worker pools, session managers, timeouts or "
                "fallbacks (the policies of a compose() one by one)"
            )
            raise TypeError(msg)
    if primitives:
        check_unique(primitives)
    made = ResilioCollector(primitives)
    (REGISTRY if registry is None else registry).register(made)
    return made
