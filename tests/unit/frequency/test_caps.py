"""Channel choice: every eligible channel (ALL) or the first in the intent's order."""

from __future__ import annotations

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency.caps import choose_channels

C = intent_pb2.Channel
EMAIL, SMS, WEBPUSH, INAPP = C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP
ALL, FIRST = intent_pb2.STRATEGY_ALL, intent_pb2.STRATEGY_FIRST_AVAILABLE


def deliveries(*channels: int) -> list[envelope_pb2.Delivery]:
    return [
        envelope_pb2.Delivery(delivery_id=f"d{c}", user_id="u1", channel=c)  # type: ignore[arg-type]
        for c in channels
    ]


def channels_of(items: list[envelope_pb2.Delivery]) -> list[int]:
    return [d.channel for d in items]


@pytest.mark.parametrize("strategy", [ALL, intent_pb2.STRATEGY_UNSPECIFIED])
def test_all_sends_every_eligible_delivery_and_skips_none(strategy):
    choice = choose_channels(strategy, [EMAIL, SMS, INAPP], deliveries(INAPP, EMAIL, SMS))
    assert channels_of(choice.send) == [INAPP, EMAIL, SMS]
    assert choice.skip == []


def test_first_available_sends_the_first_channel_in_the_intents_order():
    choice = choose_channels(FIRST, [EMAIL, INAPP], deliveries(INAPP, EMAIL))
    assert channels_of(choice.send) == [EMAIL]
    assert channels_of(choice.skip) == [INAPP]


def test_first_available_follows_the_intent_order_not_the_channel_numbers():
    choice = choose_channels(FIRST, [INAPP, WEBPUSH, EMAIL], deliveries(EMAIL, WEBPUSH, INAPP))
    assert channels_of(choice.send) == [INAPP]
    assert channels_of(choice.skip) == [WEBPUSH, EMAIL]


def test_first_available_falls_back_to_the_next_channel_when_an_earlier_one_is_not_eligible():
    # Email was suppressed upstream: only sms and inapp reach this stage.
    choice = choose_channels(FIRST, [EMAIL, SMS, INAPP], deliveries(INAPP, SMS))
    assert channels_of(choice.send) == [SMS]
    assert channels_of(choice.skip) == [INAPP]


def test_first_available_with_one_eligible_delivery_sends_it():
    choice = choose_channels(FIRST, [EMAIL, INAPP], deliveries(INAPP))
    assert channels_of(choice.send) == [INAPP]
    assert choice.skip == []


def test_a_channel_missing_from_the_order_ranks_last():
    choice = choose_channels(FIRST, [SMS], deliveries(EMAIL, SMS))
    assert channels_of(choice.send) == [SMS]
    assert channels_of(choice.skip) == [EMAIL]


@pytest.mark.parametrize("strategy", [ALL, FIRST])
def test_no_deliveries_means_nothing_to_send_or_skip(strategy):
    choice = choose_channels(strategy, [EMAIL, INAPP], [])
    assert (choice.send, choice.skip) == ([], [])


def test_every_delivery_is_either_sent_or_skipped_exactly_once():
    given = deliveries(WEBPUSH, INAPP, EMAIL, SMS)
    choice = choose_channels(FIRST, [SMS, EMAIL, WEBPUSH, INAPP], given)
    assert sorted(d.delivery_id for d in [*choice.send, *choice.skip]) == sorted(
        d.delivery_id for d in given
    )
    assert channels_of(choice.skip) == [EMAIL, WEBPUSH, INAPP]
