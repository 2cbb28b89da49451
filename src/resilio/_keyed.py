"""Keyed: one primitive per key, made on first use (being written)."""

from __future__ import annotations


class Keyed:
    """One primitive per key, made on first use by ``factory(key)``."""
