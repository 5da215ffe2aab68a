"""One policy and one more send: matching, counting, and when the next slot frees."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sendmesh.intent.v1 import intent_pb2

from services.frequency import caps
from services.frequency.caps import CALENDAR_DAY, ROLLING, Policy, Send

C = intent_pb2.Channel
EMAIL, SMS, PUSH, INAPP = C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP
MARKETING, TRANSACTIONAL = intent_pb2.KIND_MARKETING, intent_pb2.KIND_TRANSACTIONAL
BERLIN = ZoneInfo("Europe/Berlin")

PUSH_DAILY = Policy("push_daily", limit=2, window_kind=CALENDAR_DAY, channel=PUSH)
WEEKLY = Policy("weekly", limit=5, window_kind=ROLLING, window=timedelta(days=7))
ALL_DAILY = Policy("all_daily", limit=3, window_kind=CALENDAR_DAY)
GAP = Policy("gap4h", min_gap=timedelta(hours=4))
BOTH = Policy("both", limit=1, window_kind=CALENDAR_DAY, min_gap=timedelta(days=3))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "channel", "category", "kind", "matches"),
    [
        (PUSH_DAILY, PUSH, "cart", MARKETING, True),
        (PUSH_DAILY, EMAIL, "cart", MARKETING, False),
        (ALL_DAILY, EMAIL, "cart", MARKETING, True),
        (ALL_DAILY, INAPP, "news", intent_pb2.KIND_UNSPECIFIED, True),
        (ALL_DAILY, EMAIL, "receipt", TRANSACTIONAL, False),
        (Policy("cart", limit=1, window_kind=CALENDAR_DAY, category="cart"), PUSH, "cart", 0, True),
        (
            Policy("cart", limit=1, window_kind=CALENDAR_DAY, category="cart"),
            PUSH,
            "news",
            0,
            False,
        ),
        (Policy("tx", limit=9, window_kind=CALENDAR_DAY, kind=TRANSACTIONAL), SMS, "otp", 1, True),
        (Policy("unspec", limit=1, window_kind=CALENDAR_DAY, kind=0), SMS, "x", MARKETING, True),
    ],
    ids=[
        "channel policy, its channel",
        "channel policy, another channel",
        "all channels",
        "unspecified kind is marketing",
        "transactional bypasses marketing caps",
        "category policy, its category",
        "category policy, another category",
        "a policy naming transactional caps it",
        "a policy of unspecified kind is marketing",
    ],
)
def test_a_policy_matches_its_channel_category_and_kind(policy, channel, category, kind, matches):
    assert policy.matches(channel, category, kind) is matches


def test_only_matching_sends_are_counted():
    sends = [
        Send(utc(2026, 6, 10, 8), PUSH, "cart", MARKETING),
        Send(utc(2026, 6, 10, 7), EMAIL, "cart", MARKETING),
        Send(utc(2026, 6, 10, 9), PUSH, "otp", TRANSACTIONAL),
    ]
    assert caps.counted(PUSH_DAILY, sends) == [utc(2026, 6, 10, 8)]
    assert caps.counted(ALL_DAILY, sends) == [utc(2026, 6, 10, 7), utc(2026, 6, 10, 8)]


def test_two_pushes_a_calendar_day_then_the_next_slot_is_local_midnight():
    times = [utc(2026, 6, 10, 6), utc(2026, 6, 10, 9)]
    at = utc(2026, 6, 10, 15)
    assert caps.admits(PUSH_DAILY, times[:1], at, BERLIN)
    assert not caps.admits(PUSH_DAILY, times, at, BERLIN)
    # Midnight in Berlin (UTC+2 in June).
    assert caps.next_slot(PUSH_DAILY, times, at, BERLIN) == utc(2026, 6, 10, 22)
    assert caps.why_capped(PUSH_DAILY, times, at, BERLIN) == "policy push_daily: 2/2 today"


def test_yesterdays_sends_in_the_recipients_zone_do_not_count_today():
    # 21:30 UTC on the 9th was 23:30 in Berlin: the 9th. 22:30 UTC is the 10th there.
    times = [utc(2026, 6, 9, 21, 30), utc(2026, 6, 9, 21, 45)]
    assert caps.admits(PUSH_DAILY, times, utc(2026, 6, 9, 22, 30), BERLIN)
    assert not caps.admits(PUSH_DAILY, times, utc(2026, 6, 9, 22, 30), UTC)


def test_on_the_day_clocks_spring_forward_the_next_slot_is_still_local_midnight():
    times = [utc(2026, 3, 29, 6), utc(2026, 3, 29, 7)]
    # The day began 23:00 UTC (CET) and ends 22:00 UTC (CEST): 23 hours.
    assert caps.next_slot(PUSH_DAILY, times, utc(2026, 3, 29, 12), BERLIN) == utc(2026, 3, 29, 22)


def test_on_the_day_clocks_fall_back_the_window_is_25_hours():
    early, late = utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 22, 30)
    assert caps.used(PUSH_DAILY, [early, late], utc(2026, 10, 25, 12), BERLIN) == 2
    assert caps.next_slot(PUSH_DAILY, [early, late], utc(2026, 10, 25, 12), BERLIN) == utc(
        2026, 10, 25, 23
    )


def test_five_in_a_rolling_week_frees_a_slot_when_the_oldest_is_a_week_old():
    times = [utc(2026, 6, d, 12) for d in (2, 4, 5, 6, 8)]
    at = utc(2026, 6, 8, 13)
    assert not caps.admits(WEEKLY, times, at, UTC)
    assert caps.next_slot(WEEKLY, times, at, UTC) == utc(2026, 6, 9, 12)
    assert caps.used(WEEKLY, times, at, UTC) == 5
    assert caps.why_capped(WEEKLY, times, at, UTC) == "policy weekly: 5/5 in 7d"


def test_a_send_exactly_a_window_ago_no_longer_counts():
    times = [utc(2026, 6, d, 12) for d in (2, 4, 5, 6, 8)]
    assert caps.admits(WEEKLY, times, utc(2026, 6, 9, 12), UTC)


def test_a_four_hour_gap_frees_four_hours_after_the_last_send():
    times = [utc(2026, 6, 10, 6), utc(2026, 6, 10, 9)]
    assert not caps.admits(GAP, times, utc(2026, 6, 10, 12), UTC)
    assert caps.next_slot(GAP, times, utc(2026, 6, 10, 12), UTC) == utc(2026, 6, 10, 13)
    assert caps.admits(GAP, times, utc(2026, 6, 10, 13), UTC)
    assert caps.why_capped(GAP, times, utc(2026, 6, 10, 12), UTC) == (
        "policy gap4h: min gap 4h between sends"
    )


def test_a_gap_also_keeps_a_send_away_from_a_later_booking():
    assert not caps.admits(GAP, [utc(2026, 6, 10, 14)], utc(2026, 6, 10, 12), UTC)


def test_a_free_policy_answers_now_as_its_next_slot():
    assert caps.next_slot(WEEKLY, [], utc(2026, 6, 10), UTC) == utc(2026, 6, 10)


@pytest.mark.parametrize(
    ("policy", "horizon"),
    [
        (PUSH_DAILY, caps.DAY_REACH),
        (WEEKLY, timedelta(days=7)),
        (GAP, timedelta(hours=4)),
        (BOTH, timedelta(days=3)),
    ],
)
def test_the_horizon_is_how_long_a_send_can_still_count(policy, horizon):
    assert policy.horizon == horizon


T0 = datetime(2026, 3, 27, tzinfo=UTC)  # a DST change in Berlin two days later
instants = st.integers(min_value=0, max_value=6 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))
policies = st.one_of(
    st.builds(
        Policy,
        policy_id=st.just("rolling"),
        limit=st.integers(1, 4),
        window_kind=st.just(ROLLING),
        window=st.integers(30, 3 * 24 * 60).map(lambda m: timedelta(minutes=m)),
    ),
    st.builds(
        Policy,
        policy_id=st.just("daily"),
        limit=st.integers(1, 4),
        window_kind=st.just(CALENDAR_DAY),
    ),
    st.builds(
        Policy,
        policy_id=st.just("gap"),
        min_gap=st.integers(1, 12 * 60).map(lambda m: timedelta(minutes=m)),
    ),
)


def reserve_in_turn(policy: Policy, asks: list[datetime], zone) -> list[datetime]:
    granted: list[datetime] = []
    for at in asks:
        if caps.admits(policy, sorted(granted), at, zone):
            granted.append(at)
    return sorted(granted)


@given(policy=policies, asks=st.lists(instants, max_size=30))
def test_never_more_than_the_limit_in_any_window_whatever_the_order_of_asks(policy, asks):
    granted = reserve_in_turn(policy, asks, BERLIN)
    if policy.window_kind == ROLLING:
        assert policy.window is not None
        for end in granted:  # the fullest windows end at a send
            assert sum(1 for t in granted if end - policy.window < t <= end) <= policy.limit
    elif policy.window_kind == CALENDAR_DAY:
        days = [t.astimezone(BERLIN).date() for t in granted]
        assert all(days.count(d) <= policy.limit for d in days)
    else:
        assert policy.min_gap is not None
        assert all(b - a >= policy.min_gap for a, b in itertools.pairwise(granted))


@given(
    policy=policies,
    booked=st.lists(instants, max_size=12),
    at=instants,
    part=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_the_next_slot_admits_a_send_and_nothing_earlier_does(policy, booked, at, part):
    times = reserve_in_turn(policy, booked, BERLIN)
    slot = caps.next_slot(policy, times, at, BERLIN)
    assert slot is not None
    assert slot >= at
    assert caps.admits(policy, times, slot, BERLIN)
    if slot > at:
        earlier = [at, slot - timedelta(microseconds=1), at + (slot - at) * part]
        assert not any(caps.admits(policy, times, t, BERLIN) for t in earlier if t < slot)
