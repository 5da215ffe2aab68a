"""Calendar days in the recipient's zone (DST-correct) and rolling windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.frequency import windows

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_calendar_day_runs_from_local_midnight_to_local_midnight():
    # 2026-06-10 15:00 UTC is 17:00 in Berlin (UTC+2 in summer).
    start, end = windows.day_bounds(utc(2026, 6, 10, 15), BERLIN)
    assert (start, end) == (utc(2026, 6, 9, 22), utc(2026, 6, 10, 22))


def test_the_local_day_is_not_the_utc_day():
    # 23:30 UTC on the 10th is already the 11th in Berlin.
    start, _ = windows.day_bounds(utc(2026, 6, 10, 23, 30), BERLIN)
    assert start == utc(2026, 6, 10, 22)
    # 02:00 UTC on the 11th is still the 10th in New York.
    start, end = windows.day_bounds(utc(2026, 6, 11, 2), NEW_YORK)
    assert (start, end) == (utc(2026, 6, 10, 4), utc(2026, 6, 11, 4))


def test_the_day_clocks_spring_forward_is_23_hours_long():
    start, end = windows.day_bounds(utc(2026, 3, 29, 12), BERLIN)
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=23)


def test_the_day_clocks_fall_back_is_25_hours_long():
    start, end = windows.day_bounds(utc(2026, 10, 25, 12), BERLIN)
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert end - start == timedelta(hours=25)


def test_an_instant_in_the_repeated_hour_belongs_to_that_one_day():
    # 00:30 and 01:30 UTC are both 02:30 local on the fall-back day.
    for instant in (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)):
        assert windows.day_bounds(instant, BERLIN) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))


def test_a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump():
    # Santiago springs forward at 00:00 -> 01:00 on 2026-09-06 (UTC-4 -> UTC-3).
    santiago = ZoneInfo("America/Santiago")
    start, end = windows.day_bounds(utc(2026, 9, 6, 12), santiago)
    assert start == utc(2026, 9, 6, 4)
    assert start.astimezone(santiago).hour == 1
    assert end - start == timedelta(hours=23)


def test_next_midnight_is_the_first_instant_of_the_next_local_day():
    assert windows.next_midnight(utc(2026, 3, 28, 23, 30), BERLIN) == utc(2026, 3, 29, 22)
    assert windows.day_ends_after(utc(2026, 3, 28, 12), BERLIN, 2) == [
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 22),
    ]


def test_a_rolling_window_holds_what_is_younger_than_its_length():
    end = utc(2026, 6, 10)
    week = timedelta(days=7)
    assert windows.in_rolling(end, week, end)
    assert windows.in_rolling(end - week + timedelta(microseconds=1), week, end)
    assert not windows.in_rolling(end - week, week, end)
    assert not windows.in_rolling(end + timedelta(seconds=1), week, end)


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("Europe/Paris", True),
        ("UTC", True),
        ("", False),
        ("Mars/Olympus", False),
        ("../etc", False),
    ],
)
def test_a_zone_is_found_by_its_iana_name_only(name, found):
    assert (windows.zone_named(name) is not None) == found


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(days=7), "7d"),
        (timedelta(hours=4), "4h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
    ],
)
def test_spans_are_described_briefly(span, text):
    assert windows.describe(span) == text


@given(
    at=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.timezones(),
)
def test_every_instant_lies_in_its_day_and_the_days_tile_time(at, zone):
    start, end = windows.day_bounds(at, zone)
    assert start <= at < end
    # Not always 23-25h: Antarctica/Casey went from UTC+11 to UTC+8 in one day.
    assert timedelta(0) < end - start <= timedelta(hours=48)
    assert windows.day_bounds(start, zone) == (start, end)
    assert windows.day_bounds(end, zone)[0] == end
