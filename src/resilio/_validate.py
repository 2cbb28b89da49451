"""Construction-time checks that name the parameter the user typed and the value.

Every primitive validates its configuration once, when it is built, with these
helpers, so a bad value fails loudly and early (``'open_timeout' must be > 0: nan``)
instead of surfacing later on a hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(
    name: str,
    value: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    finite: bool = True,
) -> float:
    """Check that *value* is a real number within bounds; return it as a float."""
    if not _is_number(value):
        msg = f"{name!r} must be a number, not {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    try:
        math.isnan(value)
    except OverflowError:
        msg = f"{name!r} is too large: {value!r}"
        raise ValueError(msg) from None
    if math.isnan(value):
        msg = f"{name!r} must not be NaN: {value!r}"
        raise ValueError(msg)
    if finite and math.isinf(value):
        msg = f"{name!r} must be finite: {value!r}"
        raise ValueError(msg)
    if gt is not None and not value > gt:
        msg = f"{name!r} must be > {gt:g}: {value!r}"
        raise ValueError(msg)
    if ge is not None and not value >= ge:
        msg = f"{name!r} must be >= {ge:g}: {value!r}"
        raise ValueError(msg)
    if le is not None and not value <= le:
        msg = f"{name!r} must be <= {le:g}: {value!r}"
        raise ValueError(msg)
    return float(value)


def optional_number(name: str, value: Any, **bounds: Any) -> float | None:
    """Like `number()`, but ``None`` passes through."""
    return None if value is None else number(name, value, **bounds)


def duration(name: str, value: Any, **bounds: Any) -> float:
    """Like `number()`, but a `datetime.timedelta` is also taken, as its seconds."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return number(name, value, **bounds)


def optional_duration(name: str, value: Any, **bounds: Any) -> float | None:
    """Like `duration()`, but ``None`` passes through."""
    return None if value is None else duration(name, value, **bounds)


def integer(name: str, value: Any, *, ge: int) -> int:
    """Check that *value* is an ``int`` (not a bool) and at least *ge*."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{name!r} must be an int, not {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    if value < ge:
        msg = f"{name!r} must be >= {ge}: {value!r}"
        raise ValueError(msg)
    return value


def exception_types(name: str, value: Any) -> tuple[type[BaseException], ...]:
    """Accept one exception class or an iterable of them; return a tuple.

    A ``str`` or ``bytes`` is refused as a whole (it would otherwise be read as a
    sequence of characters), and so is a `BaseException` subclass outside `Exception`
    (`KeyboardInterrupt`, cancellation): guarded calls never count or retry those, so
    naming one could never match.
    """
    if isinstance(value, (str, bytes, bytearray)):
        msg = f"{name!r} must be an exception type or a tuple of them, not a string: {value!r}"
        raise TypeError(msg)
    items = (value,) if isinstance(value, type) else value
    try:
        result = tuple(items)
    except TypeError:
        msg = f"{name!r} must be an exception type or a tuple of them: {value!r}"
        raise TypeError(msg) from None
    for item in result:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            msg = f"{name!r} must contain only exception types: {item!r}"
            raise TypeError(msg)
        if not issubclass(item, Exception) and item is not BaseException:
            msg = (
                f"{name!r} names {item.__name__}, which is not an Exception subclass "
                f"and can never match: {value!r}"
            )
            raise ValueError(msg)
    return result


def is_predicate(value: Any) -> bool:
    """Whether an exception spec is a predicate rather than exception types."""
    return not isinstance(value, (type, tuple, list)) and callable(value)


def exception_matcher(name: str, value: Any) -> Callable[[BaseException], bool]:
    """Accept exception types (one, or any iterable of them) or a predicate; return a
    predicate."""
    if is_predicate(value):
        return value  # type: ignore[no-any-return]
    types = exception_types(name, value)

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, types)

    return matches


def text(name: str, value: Any) -> str:
    """Check that *value* is a non-empty string."""
    if not isinstance(value, str):
        msg = f"{name!r} must be a str, not {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    if not value:
        msg = f"{name!r} must not be empty"
        raise ValueError(msg)
    return value


def callable_(name: str, value: Any) -> Callable[..., Any]:
    """Check that *value* is callable."""
    if not callable(value):
        msg = f"{name!r} must be callable: {value!r}"
        raise TypeError(msg)
    return value  # type: ignore[no-any-return]
