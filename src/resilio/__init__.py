"""resilio: resilience primitives for Python services.

Circuit breakers, rate limiters, retry with backoff, a bounded worker pool and an
event-driven session manager, for threads, asyncio and trio, over one injectable
clock and one event bus. Everything public is importable from here.
"""

from __future__ import annotations

from ._breaker import BreakerSnapshot as BreakerSnapshot
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitState as CircuitState
from ._clock import Clock as Clock
from ._clock import ManualClock as ManualClock
from ._clock import SystemClock as SystemClock
from ._compose import Composed as Composed
from ._compose import Timeout as Timeout
from ._compose import TimeoutStats as TimeoutStats
from ._compose import compose as compose
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import MisuseError as MisuseError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import PoolFullError as PoolFullError
from ._errors import RateLimitExceeded as RateLimitExceeded
from ._errors import RejectedError as RejectedError
from ._errors import ResilioError as ResilioError
from ._errors import SessionNotFound as SessionNotFound
from ._events import CallCompleted as CallCompleted
from ._events import CallRejected as CallRejected
from ._events import CircuitStateChanged as CircuitStateChanged
from ._events import DestroyHookFailed as DestroyHookFailed
from ._events import Event as Event
from ._events import EventBus as EventBus
from ._events import FallbackUsed as FallbackUsed
from ._events import RateLimited as RateLimited
from ._events import RetryExhausted as RetryExhausted
from ._events import RetryRefused as RetryRefused
from ._events import RetryScheduled as RetryScheduled
from ._events import SessionCreated as SessionCreated
from ._events import SessionDestroyed as SessionDestroyed
from ._events import SessionExpired as SessionExpired
from ._events import TaskFailed as TaskFailed
from ._events import TaskRejected as TaskRejected
from ._events import TimedOut as TimedOut
from ._events import default_bus as default_bus
from ._fallback import Fallback as Fallback
from ._fallback import FallbackStats as FallbackStats
from ._guard import Guard as Guard
from ._keyed import Keyed as Keyed
from ._leaky_bucket import LeakyBucket as LeakyBucket
from ._limiter import LimiterStats as LimiterStats
from ._log import log_events as log_events
from ._pool import MapResults as MapResults
from ._pool import PoolStats as PoolStats
from ._pool import TaskHandle as TaskHandle
from ._pool import WorkerPool as WorkerPool
from ._retry import Attempt as Attempt
from ._retry import BudgetStats as BudgetStats
from ._retry import Retry as Retry
from ._retry import RetryBudget as RetryBudget
from ._retry import RetryStats as RetryStats
from ._retry import retry as retry
from ._retry_after import parse_retry_after as parse_retry_after
from ._sessions import Session as Session
from ._sessions import SessionManager as SessionManager
from ._sessions import SessionState as SessionState
from ._sessions import SessionStats as SessionStats
from ._sliding_breaker import SlidingWindowBreaker as SlidingWindowBreaker
from ._sliding_breaker import WindowSnapshot as WindowSnapshot
from ._token_bucket import TokenBucket as TokenBucket

__all__ = [
    "Attempt",
    "BreakerSnapshot",
    "BudgetStats",
    "CallCompleted",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStateChanged",
    "Clock",
    "Composed",
    "DestroyHookFailed",
    "Event",
    "EventBus",
    "Fallback",
    "FallbackStats",
    "FallbackUsed",
    "Guard",
    "Keyed",
    "LeakyBucket",
    "LimiterStats",
    "ManualClock",
    "MapResults",
    "MisuseError",
    "PoolClosedError",
    "PoolFullError",
    "PoolStats",
    "RateLimitExceeded",
    "RateLimited",
    "RejectedError",
    "ResilioError",
    "Retry",
    "RetryBudget",
    "RetryExhausted",
    "RetryRefused",
    "RetryScheduled",
    "RetryStats",
    "Session",
    "SessionCreated",
    "SessionDestroyed",
    "SessionExpired",
    "SessionManager",
    "SessionNotFound",
    "SessionState",
    "SessionStats",
    "SlidingWindowBreaker",
    "SystemClock",
    "TaskFailed",
    "TaskHandle",
    "TaskRejected",
    "TimedOut",
    "Timeout",
    "TimeoutStats",
    "TokenBucket",
    "WindowSnapshot",
    "WorkerPool",
    "compose",
    "default_bus",
    "log_events",
    "parse_retry_after",
    "retry",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("resilio."):
        _obj.__module__ = "resilio"
del _name, _obj, annotations


def __getattr__(name: str) -> str:
    if name != "__version__":
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    from importlib.metadata import version

    return version("resilio-primitives")
