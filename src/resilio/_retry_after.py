"""Reading an HTTP ``Retry-After`` header value into seconds."""

from __future__ import annotations

import calendar
import math
import re
import time
from datetime import datetime
from email.utils import parsedate_tz

# delta-seconds (RFC 9110 §10.2.3), and a plain non-negative decimal, which servers send too.
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_retry_after(value: str | bytes | None, *, now: float | None = None) -> float | None:
    """Read an HTTP ``Retry-After`` value as seconds to wait.

    Takes delta-seconds (``"120"``), a non-negative decimal (``"1.5"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), as `str` or `bytes`, surrounding spaces
    allowed. A date in the past reads as ``0.0``.

    Args:
        value: The header's value, or ``None`` when the header is absent.
        now: The current Unix time to measure a date against; the system's by default.

    Returns:
        The delay in seconds, a finite number ``>= 0``; or ``None`` when *value* is
        ``None`` or cannot be read (a negative number, ``nan``, ``inf``, a malformed date,
        anything else), so the caller falls back to its own backoff.

    Example:
        >>> parse_retry_after("120")
        120.0
        >>> parse_retry_after(b" 1.5 ")
        1.5
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=0.0)
        60.0
        >>> parse_retry_after("soon") is None
        True
    """
    text = _text(value)
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    parts = parsedate_tz(text)
    if parts is None:
        return None
    try:  # an HTTP-date is GMT; a date that names no zone ("-0000") is read as GMT too
        datetime(*parts[:6])  # refuses a day or an hour that does not exist
        timestamp = calendar.timegm(parts[:9]) - (parts[9] or 0)
    except (ValueError, OverflowError):
        return None
    delay = timestamp - (time.time() if now is None else now)
    return max(0.0, delay) if math.isfinite(delay) else None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value.strip() if value else None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("ascii").strip()
        except UnicodeDecodeError:
            return None
    msg = f"parse_retry_after() takes a str or bytes header value, not {type(value).__name__}"
    raise TypeError(msg)
