"""parse_retry_after: HTTP Retry-After values read as seconds, or None."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilio import parse_retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        (b"30", 30.0),
        (bytearray(b"2"), 2.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("3.", 3.0),
    ],
)
def test_delta_seconds(value: str | bytes, expected: float) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "  ",
        "-1",
        "+1",
        "nan",
        "NaN",
        "inf",
        "Infinity",
        "1e3",
        "1,5",
        "soon",
        "1 2",
        "9" * 400,
        b"\xff",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "\u0661\u0662\u0660",  # Arabic-Indic digits: delta-seconds are ASCII only
        "\uff11\uff12",  # fullwidth digits
    ],
)
def test_unreadable_values_are_none(value: str | bytes) -> None:
    assert parse_retry_after(value) is None


def test_none_is_none() -> None:
    assert parse_retry_after(None) is None


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        parse_retry_after(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "Thu, 01 Jan 1970 00:01:00 GMT",  # IMF-fixdate
        "Thu, 01 Jan 1970 00:01:00 -0000",
        "Thursday, 01-Jan-70 00:01:00 GMT",  # obsolete RFC 850
        "Thu Jan  1 00:01:00 1970",  # obsolete asctime
        "Thu, 01 Jan 1970 01:01:00 +0100",
    ],
)
def test_http_dates(value: str) -> None:
    assert parse_retry_after(value, now=0.0) == 60.0


def test_a_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_date_is_measured_against_the_system_time_by_default() -> None:
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    delay = parse_retry_after(future)
    assert delay is not None
    assert 3000 < delay <= 3600


@given(st.text(max_size=40) | st.binary(max_size=40))
def test_any_input_is_a_finite_non_negative_number_or_none(value: str | bytes) -> None:
    delay = parse_retry_after(value, now=1e9)
    assert delay is None or (delay >= 0 and delay < float("inf"))


@given(st.integers(min_value=0, max_value=10**12))
def test_integers_round_trip(n: int) -> None:
    assert parse_retry_after(str(n)) == float(n)
