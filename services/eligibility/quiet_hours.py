"""Quiet hours: a nightly window of local wall-clock time, in a recipient's zone.

Pure: no I/O. A window is [start, end) in minutes after local midnight; a
window whose start is after its end crosses midnight (21:00 to 08:00). Wall
time is what the recipient's clock shows, so on DST change days a window
lasts an hour more or less, and an end that falls into the spring-forward
gap is reached the instant the clocks jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Window:
    start_minute: int
    end_minute: int

    @property
    def is_empty(self) -> bool:
        return self.start_minute == self.end_minute

    @property
    def crosses_midnight(self) -> bool:
        return self.start_minute > self.end_minute

    def contains(self, minute: int) -> bool:
        """Whether the local minute of the day `minute` is inside the window."""
        if self.is_empty:
            return False
        if self.crosses_midnight:
            return minute >= self.start_minute or minute < self.end_minute
        return self.start_minute <= minute < self.end_minute


@dataclass(frozen=True)
class QuietPolicy:
    """A tenant's quiet hours (Eligibility.SetQuietHours)."""

    enabled: bool = False
    start_minute: int = 0
    end_minute: int = 0
    # For recipients without a (valid) zone of their own; empty: UTC.
    default_timezone: str = ""

    @property
    def window(self) -> Window | None:
        return Window(self.start_minute, self.end_minute) if self.enabled else None


def is_valid_minute(minute: int) -> bool:
    return 0 <= minute < MINUTES_PER_DAY


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone `name`, or None if there is no such zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipient_zone(profile_timezone: str, default_timezone: str) -> tzinfo:
    """The profile's zone, else the tenant's default, else UTC."""
    return zone_named(profile_timezone) or zone_named(default_timezone) or UTC


def minute_of_day(local: datetime) -> int:
    return local.hour * 60 + local.minute


def is_quiet_at(window: Window, zone: tzinfo, at: datetime) -> bool:
    """Whether the aware instant `at` falls inside `window` on the clock of `zone`."""
    return window.contains(minute_of_day(at.astimezone(zone)))


def quiet_window_end(window: Window, zone: tzinfo, at: datetime) -> datetime:
    """The UTC instant the window that `at` falls in ends: the first instant after
    `at` at which the local clock reads the end minute (or jumps past it).

    Only meaningful when `is_quiet_at(window, zone, at)`.
    """
    local = at.astimezone(zone)
    day = local.date()
    if window.crosses_midnight and minute_of_day(local) >= window.start_minute:
        day += timedelta(days=1)
    end = time(window.end_minute // 60, window.end_minute % 60)
    # An end that repeats (fall-back hour) may already have passed once.
    for offset in range(3):
        later = [t for t in _instants_of(day + timedelta(days=offset), end, zone) if t > at]
        if later:
            return min(later)
    raise AssertionError("unreachable: a local time recurs within three days")


def _instants_of(day: date, wall: time, zone: tzinfo) -> list[datetime]:
    """Every UTC instant at which the clock of `zone` reads `wall` on `day`; for a
    wall time skipped by a DST gap, the instant the clocks jump past it."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if _wall(first, zone) == naive:
        return sorted({first, second})
    return [_gap_end(min(first, second), max(first, second), zone, naive)]


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _gap_end(low: datetime, high: datetime, zone: tzinfo, naive: datetime) -> datetime:
    """The first instant in (low, high] whose wall time is at or after `naive`.

    Across a gap the wall time only moves forward, so a binary search on whole
    seconds finds the jump.
    """
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if _wall(low + timedelta(seconds=mid), zone) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)
