"""Cap policies and what one policy says about one more send. Pure.

A policy counts the recipient's earlier sends that match it (channel or all,
category or all, kind) and admits one more if its count rule (at most `limit`
per calendar day or rolling window) and its gap rule (at least `min_gap`
between two sends) both hold at that instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sendmesh.frequency.v1 import frequency_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency import windows

MARKETING = intent_pb2.KIND_MARKETING
CALENDAR_DAY = frequency_pb2.WINDOW_KIND_CALENDAR_DAY
ROLLING = frequency_pb2.WINDOW_KIND_ROLLING

# How far back a calendar day can reach from an instant in it (25h DST days).
DAY_REACH = timedelta(days=2)
# Days looked ahead for a free calendar day when later sends are booked.
MAX_DAYS_AHEAD = 400


def normal_kind(kind: int) -> int:
    """KIND_UNSPECIFIED is marketing, for intents and for policies."""
    return kind or MARKETING


@dataclass(frozen=True)
class Policy:
    policy_id: str
    # 0: no count rule (a gap rule only).
    limit: int = 0
    window_kind: int = 0
    # For ROLLING windows.
    window: timedelta | None = None
    min_gap: timedelta | None = None
    # 0: every channel together.
    channel: int = 0
    # Empty: every category.
    category: str = ""
    kind: int = MARKETING

    def matches(self, channel: int, category: str, kind: int) -> bool:
        """Whether a send on `channel` about `category` of `kind` counts here."""
        return (
            self.channel in (0, channel)
            and self.category in ("", category)
            and normal_kind(self.kind) == normal_kind(kind)
        )

    @property
    def horizon(self) -> timedelta:
        """How long ago a send can still matter to this policy."""
        reach = timedelta(0)
        if self.limit and self.window_kind == CALENDAR_DAY:
            reach = DAY_REACH
        if self.limit and self.window_kind == ROLLING and self.window:
            reach = self.window
        return max(reach, self.min_gap or timedelta(0))


@dataclass(frozen=True)
class Send:
    """A reserved send of the recipient: what it was and when."""

    at: datetime
    channel: int
    category: str
    kind: int


def counted(policy: Policy, sends: Iterable[Send]) -> list[datetime]:
    """The instants of the sends this policy counts."""
    return sorted(s.at for s in sends if policy.matches(s.channel, s.category, s.kind))


def admits(policy: Policy, times: Sequence[datetime], at: datetime, zone: tzinfo) -> bool:
    """Whether one more send at `at` keeps every window within the limit and
    every two sends at least `min_gap` apart (later bookings included)."""
    return _count_admits(policy, times, at, zone) and _gap_admits(policy, times, at)


def _count_admits(policy: Policy, times: Sequence[datetime], at: datetime, zone: tzinfo) -> bool:
    if not policy.limit:
        return True
    if policy.window_kind == CALENDAR_DAY:
        start, end = windows.day_bounds(at, zone)
        return sum(1 for t in times if start <= t < end) < policy.limit
    window = policy.window
    if policy.window_kind != ROLLING or window is None:
        return True
    # The new send sits in every window ending in [at, at + W). The fullest
    # of them ends at `at` or at a later send: check those.
    ends = [at, *(t for t in times if at < t < at + window)]
    return all(
        sum(1 for t in times if windows.in_rolling(t, window, end)) < policy.limit for end in ends
    )


def _gap_admits(policy: Policy, times: Sequence[datetime], at: datetime) -> bool:
    gap = policy.min_gap
    return not gap or all(abs(at - t) >= gap for t in times)


def next_slot(
    policy: Policy, times: Sequence[datetime], at: datetime, zone: tzinfo
) -> datetime | None:
    """The first instant from `at` on when the policy admits a send: `at`
    itself if free; else the oldest counted send + window (rolling), the next
    local midnight (calendar day), the last send + min_gap (gap). None if
    nothing frees within MAX_DAYS_AHEAD days."""
    if admits(policy, times, at, zone):
        return at
    candidates: set[datetime] = set()
    if policy.limit and policy.window_kind == ROLLING and policy.window:
        candidates.update(t + policy.window for t in times)
    if policy.limit and policy.window_kind == CALENDAR_DAY:
        last = max(times, default=at)
        days = min(max((last - at).days + 2, 1), MAX_DAYS_AHEAD)
        candidates.update(windows.day_ends_after(at, zone, days))
    if policy.min_gap:
        candidates.update(t + policy.min_gap for t in times)
    for candidate in sorted(c for c in candidates if c > at):
        if admits(policy, times, candidate, zone):
            return candidate
    return None


def used(policy: Policy, times: Sequence[datetime], at: datetime, zone: tzinfo) -> int:
    """Sends counted in the window holding `at` (for a gap rule: within the gap)."""
    if policy.limit and policy.window_kind == CALENDAR_DAY:
        start, end = windows.day_bounds(at, zone)
        return sum(1 for t in times if start <= t < end)
    span = policy.window if policy.limit and policy.window_kind == ROLLING else policy.min_gap
    if not span:
        return 0
    return sum(1 for t in times if windows.in_rolling(t, span, at))


def why_capped(policy: Policy, times: Sequence[datetime], at: datetime, zone: tzinfo) -> str:
    """`policy push_daily: 2/2 today`, for a decision's detail."""
    if not _count_admits(policy, times, at, zone):
        count = used(policy, times, at, zone)
        if policy.window_kind == CALENDAR_DAY:
            return f"policy {policy.policy_id}: {count}/{policy.limit} today"
        span = windows.describe(policy.window or timedelta(0))
        return f"policy {policy.policy_id}: {count}/{policy.limit} in {span}"
    gap = windows.describe(policy.min_gap or timedelta(0))
    return f"policy {policy.policy_id}: min gap {gap} between sends"
