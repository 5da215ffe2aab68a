"""Cap windows in time: the recipient's calendar day (DST-correct with zoneinfo)
and rolling spans. Pure: no I/O beyond reading the zone database.

Conventions, used everywhere in this service:
- a calendar day is [its first instant, the next day's first instant);
- a rolling window of length W ending at u holds the sends in (u - W, u],
  so a send made exactly W ago no longer counts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`; None for an empty or unknown name."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        # KeyError: ZoneInfoNotFoundError; ValueError: a path-like key.
        return None


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant of `day` in `zone`, as UTC.

    Where DST skips midnight (00:00 -> 01:00), zoneinfo reads the missing
    00:00 with the offset before the change, which is the change itself:
    the day starts when the clocks jump.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_bounds(at: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the recipient's calendar day holding `at` (UTC instants).

    A DST day is 23 or 25 hours long (or 23.5, on Lord Howe Island)."""
    day = at.astimezone(zone).date()
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    if at >= end:
        # A clock set back across midnight repeats the end of `day`: the
        # instant is already past the next day's first instant.
        return end, local_midnight(day + timedelta(days=2), zone)
    return start, end


def next_midnight(at: datetime, zone: tzinfo) -> datetime:
    """The first instant of the recipient's next calendar day after `at`."""
    return day_bounds(at, zone)[1]


def day_ends_after(at: datetime, zone: tzinfo, days: int) -> list[datetime]:
    """The next `days` local midnights after `at`, in order."""
    ends: list[datetime] = []
    current = at
    for _ in range(days):
        current = next_midnight(current, zone)
        ends.append(current)
    return ends


def in_rolling(at: datetime, window: timedelta, end: datetime) -> bool:
    """Whether a send at `at` counts in the rolling window ending at `end`."""
    return end - window < at <= end


def describe(span: timedelta) -> str:
    """`7d`, `4h`, `1h30m`, `45s`: a short span for decision details."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
