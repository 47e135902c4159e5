"""tarry.durations: every accepted spec form, every refusal, cron across DST, and a property test."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarry.durations import UNITS, describe_spec, resolve_wake_at, validate_spec
from tarry.errors import InvalidArgument, InvalidCron, InvalidDuration

NOW = datetime(2025, 1, 15, 12, 0, 0, 250_000, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")

UNIT_SECONDS = {
    "ms": Fraction(1, 1000),
    "millisecond": Fraction(1, 1000),
    "milliseconds": Fraction(1, 1000),
    "s": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86_400,
    "day": 86_400,
    "days": 86_400,
    "w": 604_800,
    "week": 604_800,
    "weeks": 604_800,
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_unit_table_is_the_documented_one() -> None:
    assert set(UNITS) == set(UNIT_SECONDS)


# -- relative specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (0, timedelta(0)),
        (30, timedelta(seconds=30)),
        (1.5, timedelta(seconds=1.5)),
        (0.000_001, timedelta(microseconds=1)),
        (86_400 * 3, timedelta(days=3)),
        (timedelta(0), timedelta(0)),
        (timedelta(hours=2, minutes=5), timedelta(hours=2, minutes=5)),
        ({"amount": 0, "unit": "s"}, timedelta(0)),
        ({"amount": 2, "unit": "hours"}, timedelta(hours=2)),
        ({"amount": 1.5, "unit": "d"}, timedelta(hours=36)),
        ({"amount": 250, "unit": "ms"}, timedelta(milliseconds=250)),
        ({"amount": 3, "unit": "week"}, timedelta(days=21)),
    ],
)
def test_relative_specs_add_to_now(spec: Any, expected: timedelta) -> None:
    wake = resolve_wake_at(spec, NOW)
    assert wake == NOW + expected
    assert wake.tzinfo is UTC


@pytest.mark.parametrize("unit", sorted(UNIT_SECONDS))
def test_every_unit_name(unit: str) -> None:
    wake = resolve_wake_at({"amount": 7, "unit": unit}, NOW)
    assert wake - NOW == timedelta(seconds=float(7 * UNIT_SECONDS[unit]))


def test_now_in_another_zone_gives_a_utc_result() -> None:
    now = datetime(2025, 7, 1, 9, 0, tzinfo=BERLIN)  # 07:00 UTC
    wake = resolve_wake_at(60, now)
    assert wake == utc(2025, 7, 1, 7, 1)
    assert wake.tzinfo is UTC


def test_large_amounts_keep_microsecond_precision() -> None:
    # ~1900 years: converting to float seconds first (amount * 604800) would be 2 µs off here.
    wake = resolve_wake_at({"amount": 99_999.123456789, "unit": "weeks"}, NOW)
    exact = Fraction(99_999.123456789) * 604_800 * 1_000_000
    assert abs((wake - NOW) // timedelta(microseconds=1) - exact) <= 1


# -- absolute specs --------------------------------------------------------------------------


def test_aware_datetime_is_the_wake_time_in_utc() -> None:
    deadline = datetime(2025, 3, 1, 10, 30, tzinfo=BERLIN)
    wake = resolve_wake_at(deadline, NOW)
    assert wake == utc(2025, 3, 1, 9, 30)
    assert wake.tzinfo is UTC


def test_past_datetime_is_returned_unchanged() -> None:
    past = NOW - timedelta(days=2)
    assert resolve_wake_at(past, NOW) == past


# -- cron ------------------------------------------------------------------------------------


def test_cron_nine_in_berlin_is_eight_utc_in_winter() -> None:
    wake = resolve_wake_at({"cron": "0 9 * * *", "tz": "Europe/Berlin"}, utc(2025, 1, 15, 12, 0))
    assert wake == utc(2025, 1, 16, 8, 0)
    assert wake.tzinfo is UTC


def test_cron_nine_in_berlin_is_seven_utc_in_summer() -> None:
    wake = resolve_wake_at({"cron": "0 9 * * *", "tz": "Europe/Berlin"}, utc(2025, 7, 15, 12, 0))
    assert wake == utc(2025, 7, 16, 7, 0)


def test_cron_later_the_same_day() -> None:
    assert resolve_wake_at({"cron": "0 9 * * *", "tz": "Europe/Berlin"}, utc(2025, 1, 15, 5, 0)) == utc(
        2025, 1, 15, 8, 0
    )


def test_cron_is_strictly_after_now() -> None:
    spec = {"cron": "0 9 * * *", "tz": "Europe/Berlin"}
    assert resolve_wake_at(spec, utc(2025, 1, 16, 8, 0)) == utc(2025, 1, 17, 8, 0)
    # a microsecond before the firing still gets that firing
    assert resolve_wake_at(spec, utc(2025, 1, 16, 7, 59, 59) + timedelta(microseconds=999_999)) == utc(
        2025, 1, 16, 8, 0
    )


def test_cron_defaults_to_utc() -> None:
    assert resolve_wake_at({"cron": "0 9 * * *"}, utc(2025, 7, 15, 12, 0)) == utc(2025, 7, 16, 9, 0)
    assert resolve_wake_at({"cron": "*/15 * * * *"}, utc(2025, 7, 15, 12, 7)) == utc(2025, 7, 15, 12, 15)


def test_cron_day_of_week() -> None:
    # 2025-01-15 is a Wednesday; the next Monday is the 20th.
    assert resolve_wake_at({"cron": "30 8 * * MON", "tz": "UTC"}, NOW) == utc(2025, 1, 20, 8, 30)


def test_cron_in_a_skipped_hour_fires_right_after_the_spring_forward() -> None:
    # 2025-03-30: Berlin jumps from 02:00 CET to 03:00 CEST, so 02:30 does not exist that night.
    spec = {"cron": "30 2 * * *", "tz": "Europe/Berlin"}
    first = resolve_wake_at(spec, utc(2025, 3, 29, 12, 0))
    assert first == utc(2025, 3, 30, 1, 0)  # 03:00 CEST, the first minute after the gap
    assert first.astimezone(BERLIN).hour == 3
    assert resolve_wake_at(spec, first) == utc(2025, 3, 31, 0, 30)  # 02:30 CEST the next night


def test_cron_in_a_repeated_hour_fires_once_at_the_fall_back() -> None:
    # 2025-10-26: Berlin goes from 03:00 CEST back to 02:00 CET, so 02:30 happens twice.
    spec = {"cron": "30 2 * * *", "tz": "Europe/Berlin"}
    first = resolve_wake_at(spec, utc(2025, 10, 25, 12, 0))
    assert first == utc(2025, 10, 26, 0, 30)  # 02:30 CEST, the first occurrence
    assert resolve_wake_at(spec, first) == utc(2025, 10, 27, 1, 30)  # not 01:30 UTC (02:30 CET) the same day


def test_cron_from_inside_the_repeated_hour_is_never_in_the_past() -> None:
    # now = 02:00 CET, the second 02:00 of the night: the first 02:30 (00:30 UTC) is already over,
    # cronsim alone would return it; the wake time must be after now.
    now = utc(2025, 10, 26, 1, 0)
    wake = resolve_wake_at({"cron": "30 2 * * *", "tz": "Europe/Berlin"}, now)
    assert wake == utc(2025, 10, 27, 1, 30)


def test_cron_every_hour_across_the_fall_back_uses_real_time() -> None:
    spec = {"cron": "0 * * * *", "tz": "Europe/Berlin"}
    seen = [utc(2025, 10, 25, 23, 30)]
    for _ in range(4):
        seen.append(resolve_wake_at(spec, seen[-1]))
    assert seen[1:] == [
        utc(2025, 10, 26, 0, 0),
        utc(2025, 10, 26, 1, 0),
        utc(2025, 10, 26, 2, 0),
        utc(2025, 10, 26, 3, 0),
    ]


# -- refusals --------------------------------------------------------------------------------


REFUSED: list[tuple[Any, type[InvalidDuration], str]] = [
    (-1, InvalidDuration, "negative"),
    (-0.5, InvalidDuration, "negative"),
    (True, InvalidDuration, "bool"),
    (False, InvalidDuration, "bool"),
    (math.nan, InvalidDuration, "not a number (NaN)"),
    (math.inf, InvalidDuration, "infinite"),
    (-math.inf, InvalidDuration, "infinite"),
    ("5m", InvalidDuration, "strings are not parsed"),
    (None, InvalidDuration, "got NoneType"),
    ([1, "s"], InvalidDuration, "got list"),
    (timedelta(seconds=-1), InvalidDuration, "negative"),
    (datetime(2025, 1, 1, 9, 0), InvalidDuration, "make it timezone-aware"),
    (date(2025, 1, 1), InvalidDuration, "a date has no time of day"),
    (10**30, InvalidDuration, "too large"),
    ({"amount": 1e300, "unit": "weeks"}, InvalidDuration, "too large"),
    ({"amount": 1, "unit": "fortnights"}, InvalidDuration, "unknown unit 'fortnights'"),
    ({"amount": 1, "unit": "months"}, InvalidDuration, "months and years have no fixed length"),
    ({"amount": 1, "unit": "Y"}, InvalidDuration, "unknown unit 'Y'; months and years"),
    ({"amount": 1, "unit": "H"}, InvalidDuration, "unknown unit 'H'; use one of ms, s, m"),
    ({"amount": 1, "unit": 3600}, InvalidDuration, "unit must be a string, got int"),
    ({"amount": -2, "unit": "s"}, InvalidDuration, "negative"),
    ({"amount": True, "unit": "s"}, InvalidDuration, "amount is not a number (got bool)"),
    ({"amount": "2", "unit": "s"}, InvalidDuration, "amount is not a number (got str)"),
    ({"amount": None, "unit": "s"}, InvalidDuration, "amount is not a number (got NoneType)"),
    ({"amount": math.nan, "unit": "s"}, InvalidDuration, "not a number (NaN)"),
    ({"amount": math.inf, "unit": "h"}, InvalidDuration, "infinite"),
    ({"amount": 2}, InvalidDuration, "missing 'unit'"),
    ({"unit": "s"}, InvalidDuration, "missing 'amount'"),
    ({"amount": 2, "unit": "s", "jitter": 1}, InvalidDuration, "unknown key(s) 'jitter'"),
    ({"seconds": 5}, InvalidDuration, "unknown key(s) 'seconds'"),
    ({}, InvalidDuration, "empty dict"),
    ({"cron": "0 9 * * *", "amount": 1}, InvalidDuration, "unknown key(s) 'amount' next to 'cron'"),
    ({"cron": "61 * * * *"}, InvalidCron, "bad cron expression '61 * * * *': Bad minute"),
    ({"cron": "0 9 * *"}, InvalidCron, "Wrong number of fields"),
    ({"cron": "@daily"}, InvalidCron, "bad cron expression '@daily'"),
    ({"cron": "0 0 30 2 *"}, InvalidCron, "Bad day-of-month"),
    ({"cron": 9}, InvalidCron, "cron must be a string"),
    ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, InvalidCron, "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 9 * * *", "tz": "Europe"}, InvalidCron, "unknown time zone 'Europe'"),
    ({"cron": "0 9 * * *", "tz": "../etc/passwd"}, InvalidCron, "unknown time zone"),
    ({"cron": "0 9 * * *", "tz": ""}, InvalidCron, "unknown time zone ''"),
    ({"cron": "0 9 * * *", "tz": BERLIN}, InvalidCron, "tz must be a string"),
]


@pytest.mark.parametrize(("spec", "error", "reason"), REFUSED)
def test_refused_specs(spec: Any, error: type[InvalidDuration], reason: str) -> None:
    with pytest.raises(error) as info:
        resolve_wake_at(spec, NOW, step_id="nap")
    exc = info.value
    assert type(exc) is error
    assert reason in exc.reason
    assert exc.step_id == "nap"
    assert exc.value == repr(spec)
    assert exc.code == ("cron_invalid" if error is InvalidCron else "duration_invalid")
    assert "(step 'nap')" in str(exc)
    assert reason in str(exc)


@pytest.mark.parametrize(("spec", "error", "reason"), REFUSED)
def test_validate_spec_refuses_the_same(spec: Any, error: type[InvalidDuration], reason: str) -> None:
    with pytest.raises(error) as info:
        validate_spec(spec, step_id="nap")
    assert type(info.value) is error
    assert reason in info.value.reason


def test_step_id_is_optional_in_errors() -> None:
    with pytest.raises(InvalidDuration) as info:
        validate_spec(-1)
    assert info.value.step_id is None
    assert "(step" not in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [0, 2.5, timedelta(minutes=1), {"amount": 1, "unit": "ms"}, {"cron": "0 9 * * 1-5", "tz": "Asia/Tokyo"}, NOW],
)
def test_validate_spec_accepts_what_resolve_accepts(spec: Any) -> None:
    assert validate_spec(spec) is None
    assert resolve_wake_at(spec, NOW) >= NOW


def test_past_the_year_9999_is_refused() -> None:
    late = datetime(9999, 12, 31, tzinfo=UTC)
    with pytest.raises(InvalidDuration) as info:
        resolve_wake_at({"amount": 2, "unit": "days"}, late, step_id="long")
    assert "past the year 9999" in info.value.reason
    assert info.value.step_id == "long"


def test_naive_now_is_an_engine_bug() -> None:
    with pytest.raises(InvalidArgument, match="timezone-aware now"):
        resolve_wake_at(5, datetime(2025, 1, 1))


# -- describe_spec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (30, "30s"),
        (1.5, "1.5s"),
        ({"amount": 1, "unit": "h"}, "1 hour"),
        ({"amount": 2, "unit": "hour"}, "2 hours"),
        ({"amount": 250, "unit": "ms"}, "250 milliseconds"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(days=14), "2 weeks"),
        (timedelta(seconds=90), "90 seconds"),
        (timedelta(microseconds=1500), "1500 microseconds"),
        (timedelta(0), "0 microseconds"),
        ({"cron": "0 9 * * *", "tz": "Europe/Berlin"}, "cron '0 9 * * *' in Europe/Berlin"),
        ({"cron": "0 9 * * *"}, "cron '0 9 * * *' in UTC"),
        (utc(2025, 1, 2, 3, 4), "until 2025-01-02T03:04:00+00:00"),
        ({"amount": 1, "unit": "fortnight"}, "invalid duration {'amount': 1, 'unit': 'fortnight'}"),
    ],
)
def test_describe_spec(spec: Any, text: str) -> None:
    assert describe_spec(spec) == text


# -- property --------------------------------------------------------------------------------


@given(
    amount=st.one_of(
        st.integers(min_value=0, max_value=100_000),
        st.floats(min_value=0, max_value=100_000, allow_nan=False, allow_infinity=False),
    ),
    unit=st.sampled_from(sorted(UNIT_SECONDS)),
    now=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_relative_wake_is_now_plus_amount_times_unit(amount: float, unit: str, now: datetime) -> None:
    wake = resolve_wake_at({"amount": amount, "unit": unit}, now)
    # Exact arithmetic on both sides, so the check itself adds no float error.
    actual = Fraction((wake - now) // timedelta(microseconds=1), 1_000_000)
    expected = Fraction(amount) * UNIT_SECONDS[unit]
    assert abs(actual - expected) <= Fraction(1, 1_000_000)
    assert wake.tzinfo is UTC
