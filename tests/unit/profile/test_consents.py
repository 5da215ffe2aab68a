"""Consent in force: the latest statement per (channel, category)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.consents import latest_per_pair, pair_of

C = intent_pb2.Channel
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def consent(channel: int, category: str, granted: bool, hours: float, source: str = "form"):
    c = profile_pb2.Consent(channel=channel, category=category, granted=granted, source=source)  # type: ignore[arg-type]
    c.at.FromDatetime(T0 + timedelta(hours=hours))
    return c


def test_the_latest_statement_of_each_pair_is_in_force_sorted_by_pair():
    history = [
        consent(C.CHANNEL_EMAIL, "", True, 0),
        consent(C.CHANNEL_SMS, "promo", True, 1),
        consent(C.CHANNEL_EMAIL, "", False, 2, "preference_center"),
        consent(C.CHANNEL_UNSPECIFIED, "", True, 3),
    ]
    assert latest_per_pair(history) == [history[3], history[2], history[1]]


def test_a_back_dated_statement_recorded_later_does_not_override_a_newer_one():
    newer = consent(C.CHANNEL_EMAIL, "news", False, 10, "sms_stop")
    back_dated = consent(C.CHANNEL_EMAIL, "news", True, 1, "import")
    assert latest_per_pair([newer, back_dated]) == [newer]


def test_of_two_statements_at_the_same_instant_the_one_recorded_later_wins():
    first = consent(C.CHANNEL_EMAIL, "", True, 5)
    second = consent(C.CHANNEL_EMAIL, "", False, 5)
    assert latest_per_pair([first, second]) == [second]


def test_no_history_means_no_consent_statements():
    assert latest_per_pair([]) == []


statements = st.lists(
    st.builds(
        consent,
        st.sampled_from([C.CHANNEL_UNSPECIFIED, C.CHANNEL_EMAIL, C.CHANNEL_SMS]),
        st.sampled_from(["", "promo", "news"]),
        st.booleans(),
        st.integers(0, 20),
    ),
    max_size=12,
)


@given(statements)
def test_there_is_one_statement_per_pair_and_none_later_in_the_history(history):
    latest = latest_per_pair(history)
    assert [pair_of(c) for c in latest] == sorted({pair_of(c) for c in history})
    for chosen in latest:
        index = max(i for i, c in enumerate(history) if c == chosen)
        for later in history[index + 1 :]:
            if pair_of(later) == pair_of(chosen):
                assert later.at.ToDatetime() < chosen.at.ToDatetime()
        for c in history:
            if pair_of(c) == pair_of(chosen):
                assert c.at.ToDatetime() <= chosen.at.ToDatetime()
