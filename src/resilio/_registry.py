"""The live primitives, held weakly, for exporters that are not given a list.

Every primitive calls `track` once, at the end of its construction. An exporter
asks `live` at scrape time: a primitive that was dropped has left the registry by
then, with nothing for its owner to undo. Holding primitives weakly costs one set
insertion per construction and nothing per call.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


def track(primitive: object) -> None:
    """Add *primitive* to the registry of live primitives (it must take weak references)."""
    with _LOCK:
        _LIVE.add(primitive)


def live() -> list[Any]:
    """The primitives alive now, in no particular order."""
    with _LOCK:
        return list(_LIVE)
