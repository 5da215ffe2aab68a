"""Quiet hours on the recipient's wall clock: windows across midnight, zones, DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.eligibility.quiet_hours import (
    QuietPolicy,
    Window,
    is_quiet_at,
    quiet_window_end,
    recipient_zone,
    zone_named,
)

VIENNA = ZoneInfo("Europe/Vienna")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = Window(21 * 60, 8 * 60)


def at_local(
    zone: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minute", "quiet"),
    [(0, True), (479, True), (480, False), (1259, False), (1260, True), (1439, True)],
)
def test_a_window_crossing_midnight_holds_from_its_start_to_before_its_end(minute, quiet):
    assert NIGHT.contains(minute) is quiet


@pytest.mark.parametrize(
    ("minute", "quiet"), [(719, False), (720, True), (839, True), (840, False)]
)
def test_a_daytime_window_holds_from_its_start_to_before_its_end(minute, quiet):
    assert Window(12 * 60, 14 * 60).contains(minute) is quiet


def test_a_window_that_starts_where_it_ends_is_never_quiet():
    assert not any(Window(300, 300).contains(m) for m in range(1440))


def test_late_evening_in_vienna_is_quiet_until_eight_the_next_morning():
    at = at_local(VIENNA, 2026, 1, 15, 22, 30)
    assert is_quiet_at(NIGHT, VIENNA, at)
    assert quiet_window_end(NIGHT, VIENNA, at) == utc(2026, 1, 16, 7, 0)


def test_early_morning_is_quiet_until_eight_the_same_day():
    at = at_local(VIENNA, 2026, 7, 15, 5, 0)
    assert is_quiet_at(NIGHT, VIENNA, at)
    assert quiet_window_end(NIGHT, VIENNA, at) == utc(2026, 7, 15, 6, 0)  # CEST


def test_the_same_instant_is_quiet_in_one_zone_and_not_in_another():
    at = utc(2026, 1, 15, 21, 30)  # 22:30 in Vienna, 16:30 in New York
    assert is_quiet_at(NIGHT, VIENNA, at)
    assert not is_quiet_at(NIGHT, NEW_YORK, at)


def test_on_spring_forward_night_in_vienna_the_window_ends_at_eight_summer_time():
    at = at_local(VIENNA, 2026, 3, 28, 23, 0)  # the night 02:00 becomes 03:00
    end = quiet_window_end(NIGHT, VIENNA, at)
    assert end == utc(2026, 3, 29, 6, 0)
    assert end - at == timedelta(hours=8)  # an hour shorter than usual
    assert end.astimezone(VIENNA).hour == 8


def test_on_fall_back_night_in_vienna_the_window_ends_at_eight_winter_time():
    at = at_local(VIENNA, 2026, 10, 24, 23, 0)
    end = quiet_window_end(NIGHT, VIENNA, at)
    assert end == utc(2026, 10, 25, 7, 0)
    assert end - at == timedelta(hours=10)  # an hour longer than usual


def test_an_end_skipped_by_spring_forward_is_reached_when_the_clocks_jump():
    window = Window(22 * 60, 2 * 60 + 30)  # 02:30 does not exist on 2026-03-29
    at = at_local(VIENNA, 2026, 3, 29, 1, 15)
    assert is_quiet_at(window, VIENNA, at)
    end = quiet_window_end(window, VIENNA, at)
    assert end == utc(2026, 3, 29, 1, 0)
    assert end.astimezone(VIENNA).strftime("%H:%M %Z") == "03:00 CEST"
    assert not is_quiet_at(window, VIENNA, end)
    assert is_quiet_at(window, VIENNA, end - timedelta(seconds=1))


def test_a_start_skipped_by_spring_forward_starts_the_window_when_the_clocks_jump():
    window = Window(2 * 60 + 15, 6 * 60)
    assert not is_quiet_at(window, NEW_YORK, utc(2026, 3, 8, 6, 59, 59))  # 01:59:59 EST
    assert is_quiet_at(window, NEW_YORK, utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    assert quiet_window_end(window, NEW_YORK, utc(2026, 3, 8, 7, 0)) == utc(2026, 3, 8, 10, 0)


def test_an_end_in_the_repeated_hour_ends_the_first_pass_and_then_the_second():
    window = Window(21 * 60, 60 + 30)  # 01:30 happens twice in New York on 2026-11-01
    first = at_local(NEW_YORK, 2026, 11, 1, 1, 15, fold=0)
    second = at_local(NEW_YORK, 2026, 11, 1, 1, 15, fold=1)
    assert quiet_window_end(window, NEW_YORK, first) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert is_quiet_at(window, NEW_YORK, second)
    assert quiet_window_end(window, NEW_YORK, second) == utc(2026, 11, 1, 6, 30)  # 01:30 EST


def test_a_half_hour_dst_shift_on_lord_howe_island_is_handled():
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # 02:00 -> 02:30 on 2026-10-04
    window = Window(22 * 60, 2 * 60 + 10)
    at = at_local(lord_howe, 2026, 10, 4, 1, 0)
    end = quiet_window_end(window, lord_howe, at)
    assert end.astimezone(lord_howe).strftime("%H:%M") == "02:30"
    assert not is_quiet_at(window, lord_howe, end)


def test_a_zone_is_the_profiles_then_the_tenants_default_then_utc():
    assert recipient_zone("America/New_York", "Europe/Vienna") == NEW_YORK
    assert recipient_zone("", "Europe/Vienna") == VIENNA
    assert recipient_zone("Mars/Olympus", "Europe/Vienna") == VIENNA
    assert recipient_zone("", "") == UTC
    assert recipient_zone("../../etc/passwd", "not a zone") == UTC


def test_only_iana_zone_names_are_zones():
    assert zone_named("Europe/Vienna") == VIENNA
    assert zone_named("") is None
    assert zone_named("Europe/Atlantis") is None
    assert zone_named("/etc/localtime") is None


def test_a_policy_has_a_window_only_when_enabled():
    assert QuietPolicy(True, 1260, 480).window == NIGHT
    assert QuietPolicy(False, 1260, 480).window is None


ZONES = [
    "UTC",
    "Europe/Vienna",
    "America/New_York",
    "America/Santiago",  # switches at midnight: whole local dates start at 01:00
    "America/Havana",
    "Australia/Lord_Howe",  # 30-minute shifts
    "Asia/Kolkata",
    "Pacific/Apia",  # skipped 2011-12-30 altogether
]
instants = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2036, 1, 1), timezones=st.just(UTC)
)
minutes = st.integers(min_value=0, max_value=1439)


@given(st.sampled_from(ZONES), minutes, minutes, instants)
def test_a_quiet_instant_ends_later_and_is_quiet_until_the_second_before(name, start, end, at):
    zone, window = ZoneInfo(name), Window(start, end)
    assume(is_quiet_at(window, zone, at))
    until = quiet_window_end(window, zone, at)
    assert until > at
    assert until.tzinfo == UTC
    assert is_quiet_at(window, zone, max(at, until - timedelta(seconds=1)))


@given(st.sampled_from(ZONES), minutes, st.integers(min_value=121, max_value=1439), instants)
def test_the_window_end_is_not_quiet_unless_a_dst_gap_swallowed_the_open_hours(
    name, start, open_minutes, at
):
    # Open hours longer than any DST gap cannot vanish on a change day.
    window = Window(start, (start - open_minutes) % 1440)
    zone = ZoneInfo(name)
    assume(is_quiet_at(window, zone, at))
    assert not is_quiet_at(window, zone, quiet_window_end(window, zone, at))


@given(minutes, minutes, instants)
def test_without_dst_the_window_lasts_at_most_a_day(start, end, at):
    window = Window(start, end)
    assume(is_quiet_at(window, UTC, at))
    assert quiet_window_end(window, UTC, at) - at <= timedelta(days=1)


def transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """The UTC hours in `year` after which the zone's offset changed."""
    found, at = [], utc(year, 1, 1)
    while at.year == year:
        if (
            at.astimezone(zone).utcoffset()
            != (at + timedelta(hours=1)).astimezone(zone).utcoffset()
        ):
            found.append(at)
        at += timedelta(hours=1)
    return found


EDGES = [0, 30, 60 + 30, 2 * 60, 2 * 60 + 30, 3 * 60, 8 * 60, 21 * 60]


@pytest.mark.parametrize(
    "name", ["Europe/Vienna", "America/New_York", "America/Santiago", "Australia/Lord_Howe"]
)
def test_every_window_around_every_dst_change_of_a_year_ends_after_its_instant(name):
    zone = ZoneInfo(name)
    changes = transitions(zone, 2026)
    assert len(changes) == 2
    windows = [Window(s, e) for s in EDGES for e in EDGES if s != e]
    for change in changes:
        at = change - timedelta(hours=24)
        while at < change + timedelta(hours=24):
            for window in windows:
                if is_quiet_at(window, zone, at):
                    end = quiet_window_end(window, zone, at)
                    assert end > at
                    assert is_quiet_at(window, zone, max(at, end - timedelta(seconds=1)))
                    if (window.start_minute - window.end_minute) % 1440 > 120:
                        assert not is_quiet_at(window, zone, end)
            at += timedelta(minutes=20)
