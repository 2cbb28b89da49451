"""Delay schedules for ``Retry(delay=...)``: exponential, linear and constant (being written)."""

from __future__ import annotations
