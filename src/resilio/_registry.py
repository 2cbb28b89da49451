"""The live primitives, held weakly, for exporters that are not given a list.

Every primitive calls `track` once, at the end of its construction. An exporter
asks `named` at scrape time: a primitive that was dropped has left the registry by
then, with nothing for its owner to undo. Holding primitives weakly costs one set
insertion per construction and nothing per call.

Only the primitives a user named are exported without being listed: a name is what
tells one metric series from another, and an unnamed primitive (a breaker made per
request, a retry policy made inline) would add a series that nobody asked for.
`kind_of` gives the family a primitive's metrics belong to, and `check_unique`
refuses two live primitives of one family under one name, whose series would
otherwise be merged without anyone noticing.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Iterable
from typing import Any

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()

#: The family of each primitive class: two classes of one family share metric names
#: (a sliding-window breaker's series are a breaker's), so their names must differ.
KINDS: dict[str, str] = {
    "CircuitBreaker": "circuitbreaker",
    "SlidingWindowBreaker": "circuitbreaker",
    "TokenBucket": "ratelimiter",
    "LeakyBucket": "ratelimiter",
    "Retry": "retry",
    "RetryBudget": "retrybudget",
    "WorkerPool": "workerpool",
    "SessionManager": "sessionmanager",
    "Timeout": "timeout",
    "Fallback": "fallback",
}

# Class -> the default of its constructor's ``name`` (None: it takes no name).
_DEFAULT_NAMES: dict[type, str | None] = {}


def track(primitive: object) -> None:
    """Add *primitive* to the registry of live primitives (it must take weak references)."""
    with _LOCK:
        _LIVE.add(primitive)


def live() -> list[Any]:
    """The primitives alive now, in no particular order."""
    with _LOCK:
        return list(_LIVE)


def kind_of(primitive: object) -> str:
    """The metric family of *primitive*: ``"circuitbreaker"``, ``"ratelimiter"`` ...

    A subclass belongs to its nearest resilio class's family; a class resilio does
    not know is its own family, named after it in lower case.
    """
    for cls in type(primitive).__mro__:
        kind = KINDS.get(cls.__name__)
        if kind is not None and cls.__module__.startswith("resilio"):
            return kind
    return type(primitive).__name__.lower()


def default_name(cls: type) -> str | None:
    """The ``name`` a primitive of *cls* gets when none is given; None if it takes none."""
    try:
        return _DEFAULT_NAMES[cls]
    except KeyError:
        pass
    try:
        parameter = inspect.signature(cls).parameters.get("name")
    except (TypeError, ValueError):  # no signature to read
        parameter = None
    default = (
        parameter.default if parameter is not None and isinstance(parameter.default, str) else None
    )
    _DEFAULT_NAMES[cls] = default
    return default


def is_named(primitive: object) -> bool:
    """Whether *primitive* was given a name of its own (not its class's default)."""
    name = getattr(primitive, "name", None)
    if not isinstance(name, str):
        return False
    return name != default_name(type(primitive))


def named() -> list[Any]:
    """The live primitives their users named, sorted by kind and name.

    A primitive built without ``name=`` (or with its class's default name) is left
    out, and so is one that takes no name.
    """
    found = [p for p in live() if is_named(p)]
    found.sort(key=lambda p: (kind_of(p), p.name))
    return found


def check_unique(primitives: Iterable[object]) -> None:
    """Refuse two primitives of the same kind under the same name.

    Their metric series would carry the same labels, and an exporter would merge two
    primitives into one series, or report one and hide the other.

    Raises:
        ValueError: naming both primitives, their kind and the name.
    """
    seen: dict[tuple[str, str], object] = {}
    for primitive in primitives:
        name = getattr(primitive, "name", None)
        if not isinstance(name, str):
            continue
        key = (kind_of(primitive), name)
        other = seen.setdefault(key, primitive)
        if other is not primitive:
            msg = (
                f"two {key[0]} primitives are named {name!r}: {other!r} and {primitive!r}; "
                "give each its own name= so that their metrics stay apart"
            )
            raise ValueError(msg)
