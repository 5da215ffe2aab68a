"""Which of a recipient's deliveries get a slot: ALL, FIRST_AVAILABLE, every
matching policy or none, and the same answer for a redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency import choice
from services.frequency.caps import CALENDAR_DAY, ROLLING, Policy, Send
from services.frequency.choice import Ask, Outcome, Request

C = intent_pb2.Channel
EMAIL, SMS, PUSH, INAPP = C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP
ALL, FIRST = intent_pb2.STRATEGY_ALL, intent_pb2.STRATEGY_FIRST_AVAILABLE
MARKETING, TRANSACTIONAL = intent_pb2.KIND_MARKETING, intent_pb2.KIND_TRANSACTIONAL
NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")

PUSH_DAILY = Policy("push_daily", limit=2, window_kind=CALENDAR_DAY, channel=PUSH)
ALL_DAILY = Policy("all_daily", limit=3, window_kind=CALENDAR_DAY)
WEEKLY = Policy("weekly", limit=3, window_kind=ROLLING, window=timedelta(days=7))


def ask(channel: int, delivery_id: str = "", kind: int = MARKETING) -> Ask:
    return Ask(delivery_id or f"d{channel}", channel, "cart", kind)


def request(*asks: Ask, zone=UTC) -> Request:
    return Request("acme", "u1", NOW, zone, asks)


def sent(channel: int, hours_ago: float) -> Send:
    return Send(NOW - timedelta(hours=hours_ago), channel, "cart", MARKETING)


def deliveries(*channels: int) -> list[envelope_pb2.Delivery]:
    return [
        envelope_pb2.Delivery(delivery_id=f"d{c}", user_id="u1", channel=c)  # type: ignore[arg-type]
        for c in channels
    ]


def test_deliveries_are_tried_in_the_intents_order_not_the_channel_numbers():
    ordered = choice.in_intent_order([INAPP, PUSH, EMAIL], deliveries(EMAIL, PUSH, INAPP))
    assert [d.channel for d in ordered] == [INAPP, PUSH, EMAIL]


def test_a_channel_missing_from_the_order_is_tried_last():
    ordered = choice.in_intent_order([SMS], deliveries(EMAIL, SMS))
    assert [d.channel for d in ordered] == [SMS, EMAIL]


@pytest.mark.parametrize("strategy", [ALL, intent_pb2.STRATEGY_UNSPECIFIED])
def test_all_makes_each_delivery_its_own_choice(strategy):
    groups = choice.alternatives(strategy, deliveries(EMAIL, SMS))
    assert [[d.channel for d in g] for g in groups] == [[EMAIL], [SMS]]


def test_first_available_makes_one_choice_among_every_delivery():
    groups = choice.alternatives(FIRST, deliveries(EMAIL, SMS))
    assert [[d.channel for d in g] for g in groups] == [[EMAIL, SMS]]
    assert choice.alternatives(FIRST, []) == []


def test_without_a_matching_policy_a_send_is_granted_and_takes_no_slot():
    sends: list[Send] = []
    [verdict] = choice.decide([PUSH_DAILY], sends, set(), request(ask(EMAIL)))
    assert (verdict.outcome, verdict.granted) == (Outcome.NO_POLICY, True)
    assert sends == []


def test_transactional_messages_bypass_marketing_caps():
    sends = [sent(PUSH, 1), sent(PUSH, 2)]
    [verdict] = choice.decide([PUSH_DAILY], sends, set(), request(ask(PUSH, kind=TRANSACTIONAL)))
    assert verdict.outcome is Outcome.NO_POLICY


def test_a_granted_send_takes_a_slot_under_every_matching_policy():
    sends: list[Send] = []
    [verdict] = choice.decide([ALL_DAILY, PUSH_DAILY], sends, set(), request(ask(PUSH)))
    assert (verdict.outcome, verdict.policy_ids) == (Outcome.RESERVED, ("all_daily", "push_daily"))
    assert verdict.detail == "slot under all_daily, push_daily"
    assert sends == [Send(NOW, PUSH, "cart", MARKETING)]


def test_a_send_capped_by_one_policy_takes_no_slot_under_the_others():
    sends = [sent(PUSH, 1), sent(PUSH, 2)]
    [verdict] = choice.decide([ALL_DAILY, PUSH_DAILY], sends, set(), request(ask(PUSH)))
    assert verdict.outcome is Outcome.CAPPED
    assert verdict.detail == "policy push_daily: 2/2 today"
    assert len(sends) == 2


def test_the_third_send_of_the_day_is_capped_until_local_midnight():
    sends = [sent(PUSH, 1), sent(PUSH, 2)]
    [verdict] = choice.decide([PUSH_DAILY], sends, set(), request(ask(PUSH), zone=NEW_YORK))
    # Noon UTC is 08:00 in New York (UTC-4): its midnight is 04:00 UTC tomorrow.
    assert verdict.next_slot == datetime(2026, 6, 11, 4, tzinfo=UTC)


def test_the_next_slot_is_when_every_blocking_policy_frees():
    # Full today (daily) and full for the week until an old send ages out.
    sends = [sent(PUSH, 1), sent(PUSH, 2), sent(PUSH, 24 * 6 + 20)]
    [verdict] = choice.decide([PUSH_DAILY, WEEKLY], sends, set(), request(ask(PUSH)))
    assert verdict.outcome is Outcome.CAPPED
    assert verdict.detail == "policy push_daily: 2/2 today (and 1 more)"
    # The weekly one frees at 16:00 today, the daily one at midnight: midnight.
    assert verdict.next_slot == datetime(2026, 6, 11, tzinfo=UTC)


def test_first_available_falls_back_to_the_next_channel_when_the_first_is_capped():
    sends = [sent(PUSH, 1), sent(PUSH, 2)]
    tried = choice.decide([PUSH_DAILY], sends, set(), request(ask(PUSH), ask(EMAIL), ask(INAPP)))
    assert [(v.delivery_id, v.outcome) for v in tried] == [
        (f"d{PUSH}", Outcome.CAPPED),
        (f"d{EMAIL}", Outcome.NO_POLICY),
    ]


def test_first_available_stops_at_the_first_granted_channel():
    tried = choice.decide([ALL_DAILY], [], set(), request(ask(PUSH), ask(EMAIL)))
    assert [v.outcome for v in tried] == [Outcome.RESERVED]


def test_when_every_channel_is_capped_each_was_tried():
    sends = [sent(EMAIL, 1), sent(EMAIL, 2), sent(EMAIL, 3)]
    tried = choice.decide([ALL_DAILY], sends, set(), request(ask(PUSH), ask(EMAIL)))
    assert [v.outcome for v in tried] == [Outcome.CAPPED, Outcome.CAPPED]


def test_a_delivery_that_already_holds_a_slot_is_granted_again_without_a_new_one():
    sends = [sent(PUSH, 1), sent(PUSH, 2)]
    held = {"again"}
    [verdict] = choice.decide([PUSH_DAILY], sends, held, request(ask(PUSH, "again")))
    assert (verdict.outcome, verdict.granted) == (Outcome.HELD, True)
    assert verdict.detail == "slot under push_daily"
    assert len(sends) == 2


def test_later_requests_of_a_batch_count_the_slots_taken_before_them():
    sends: list[Send] = []
    held: set[str] = set()
    outcomes = [
        choice.decide([PUSH_DAILY], sends, held, request(ask(PUSH, f"d{n}")))[0].outcome
        for n in range(3)
    ]
    assert outcomes == [Outcome.RESERVED, Outcome.RESERVED, Outcome.CAPPED]
    # The same delivery twice in one batch (a redelivery) takes one slot.
    assert choice.decide([PUSH_DAILY], sends, held, request(ask(PUSH, "d0")))[0].outcome == (
        Outcome.HELD
    )
