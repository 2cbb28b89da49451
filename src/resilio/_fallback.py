"""Fallback: a value in place of an error (being written)."""

from __future__ import annotations


class Fallback:
    """Returns ``handler(exc)`` instead of raising a matching exception."""
