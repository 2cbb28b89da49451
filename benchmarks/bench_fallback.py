"""Fallback: the success path of ``@Fallback(handler)`` against a hand-written try/except.

The cost a fallback adds to a call that succeeds, on a ``def`` and an ``async def``,
measured in the same run as a bare wrapper that does the same by hand::

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return handler(exc)

Target: the fallback adds at most 0.2 µs per call, or at most 1.2x what the bare
wrapper adds, whichever is larger. circuitbreaker's ``@circuit(fallback_function=...)``
is shown beside them for context: a breaker and a fallback in one, so it does more.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import Case, Result, Target, check, report, run_async, run_sync

import resilio

ABSOLUTE = 0.2e-6  # seconds a fallback may add per call, whatever the bare wrapper costs
RELATIVE = 1.2  # ... or this times the bare wrapper's added cost, if that is larger

RESILIO = "resilio @Fallback(handler)"
BARE = "bare try/except wrapper"
CIRCUIT = "circuitbreaker @circuit(fallback_function=...)"

SECTIONS: list[str] = []  # text sections of the last main() run


def f() -> int:
    return 1


async def af() -> int:
    return 1


def handler(exc: Exception) -> int:
    return 0


def bare(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What a fallback does, written by hand."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return handler(exc)

    return wrapper


def bare_async(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The same for an async def."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            return handler(exc)

    return wrapper


def _circuit(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    try:
        from circuitbreaker import circuit
    except ImportError:  # pragma: no cover - the bench extra is not installed
        return None
    return circuit(fallback_function=lambda *args, **kwargs: 0, name=f"bench-{fn.__name__}")(fn)  # type: ignore[no-any-return]


def success_sync(quick: bool) -> Result:
    cases = [
        Case("baseline: f()", f, "baseline"),
        Case(RESILIO, resilio.Fallback(handler, bus=resilio.EventBus())(f), "resilio"),
        Case(BARE, bare(f)),
    ]
    if (circuit := _circuit(f)) is not None:
        cases.append(Case(CIRCUIT, circuit))
    result = run_sync("Sync: a fallback's success path", cases, **_opts(quick))
    return _check(result)


def success_async(quick: bool) -> Result:
    cases = [
        Case("baseline: await af()", af, "baseline"),
        Case(RESILIO, resilio.Fallback(handler, bus=resilio.EventBus())(af), "resilio"),
        Case(BARE, bare_async(af)),
    ]
    if (circuit := _circuit(af)) is not None:
        cases.append(Case(CIRCUIT, circuit))
    result = run_async("Async: a fallback's success path", cases, **_opts(quick))
    return _check(result)


def _check(result: Result) -> Result:
    """The target as a ratio to the bare wrapper: 1.2x, or more when 0.2 µs allows more."""
    bare_added = result.added[BARE]
    allowed = max(ABSOLUTE, RELATIVE * bare_added)
    ratio = allowed / bare_added if bare_added > 0 else RELATIVE
    return check(result, [Target(RESILIO, BARE, round(ratio, 3))])


def _budget_line(result: Result) -> str:
    added, bare_added = result.added[RESILIO], result.added[BARE]
    allowed = max(ABSOLUTE, RELATIVE * bare_added)
    verdict = "met" if added <= allowed else "MISSED"
    return (
        f"{result.title}: @Fallback adds {added * 1e9:,.0f} ns per call, "
        f"{added / bare_added:.2f}× the bare wrapper's {bare_added * 1e9:,.0f} ns; "
        f"allowed: {ABSOLUTE * 1e9:.0f} ns or {RELATIVE:g}× the bare wrapper, whichever is "
        f"larger ({allowed * 1e9:,.0f} ns) — {verdict}"
        if bare_added > 0
        else f"{result.title}: @Fallback adds {added * 1e9:,.0f} ns per call "
        f"(the bare wrapper's added cost was not above zero) — "
        f"{'met' if added <= ABSOLUTE else 'MISSED'}"
    )


def _opts(quick: bool) -> dict[str, Any]:
    return {"repeats": 3, "budget": 0.005} if quick else {"repeats": 21, "budget": 0.05}


def main(*, quick: bool = False) -> list[Result]:
    """Time the success paths, print the tables and the target, return the results."""
    results = [success_sync(quick), success_async(quick)]
    for result in results:
        report(result)
    text = "\n".join(_budget_line(result) for result in results)
    SECTIONS[:] = [text]  # for run.py --report
    print(f"\n{text}")
    return results
