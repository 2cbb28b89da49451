"""Helpers for the test suites of applications that use resilio (being written)."""

from __future__ import annotations
