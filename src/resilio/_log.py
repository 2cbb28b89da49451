"""Structured log records for resilio's events (being written)."""

from __future__ import annotations

from collections.abc import Callable


def log_events() -> Callable[[], None]:
    """Log every event; returns the unsubscribe callable (being written)."""
    raise NotImplementedError
