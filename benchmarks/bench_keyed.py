"""Placeholder: the keyed benchmark is being written."""

from __future__ import annotations

from _harness import Result


def main(*, quick: bool = False) -> list[Result]:
    """Run nothing yet."""
    return []
