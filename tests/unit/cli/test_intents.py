from __future__ import annotations

from sendmesh.intent.v1 import intent_pb2

from cli.intents import (
    ChannelName,
    KindName,
    SendOptions,
    StrategyName,
    build_send_intent,
)


def test_an_inapp_intent_carries_title_body_and_recipients():
    intent = build_send_intent(
        SendOptions(users=["u1", "u2"], channels=[ChannelName.inapp], title="Hi", body="B")
    )
    assert list(intent.audience.user_ids) == ["u1", "u2"]
    assert list(intent.channels) == [intent_pb2.CHANNEL_INAPP]
    assert intent.content.inline.inapp.title == "Hi"
    assert intent.content.inline.inapp.body == "B"
    assert not intent.content.inline.HasField("email")
    assert intent.kind == intent_pb2.KIND_TRANSACTIONAL
    assert intent.strategy == intent_pb2.STRATEGY_ALL
    assert intent.category == "general"


def test_content_is_built_for_each_channel_given_in_order():
    intent = build_send_intent(
        SendOptions(
            users=["u1"],
            channels=[ChannelName.email, ChannelName.sms, ChannelName.webpush],
            title="T",
            body="B",
        )
    )
    inline = intent.content.inline
    assert list(intent.channels) == [
        intent_pb2.CHANNEL_EMAIL,
        intent_pb2.CHANNEL_SMS,
        intent_pb2.CHANNEL_WEBPUSH,
    ]
    assert (inline.email.subject, inline.email.text) == ("T", "B")
    assert inline.sms.text == "B"
    assert (inline.webpush.title, inline.webpush.body) == ("T", "B")
    assert not inline.HasField("inapp")


def test_an_explicit_subject_wins_over_the_title_for_email():
    intent = build_send_intent(
        SendOptions(users=["u1"], channels=[ChannelName.email], title="T", subject="S")
    )
    assert intent.content.inline.email.subject == "S"


def test_sms_without_a_body_sends_the_title():
    intent = build_send_intent(SendOptions(users=["u1"], channels=[ChannelName.sms], title="T"))
    assert intent.content.inline.sms.text == "T"


def test_a_repeated_channel_is_sent_once():
    intent = build_send_intent(
        SendOptions(users=["u1"], channels=[ChannelName.inapp, ChannelName.inapp], title="T")
    )
    assert list(intent.channels) == [intent_pb2.CHANNEL_INAPP]


def test_kind_strategy_category_and_key_are_passed_on():
    intent = build_send_intent(
        SendOptions(
            users=["u1"],
            channels=[ChannelName.inapp],
            kind=KindName.marketing,
            strategy=StrategyName.first,
            category="cart_reminder",
            idempotency_key="k1",
        )
    )
    assert intent.kind == intent_pb2.KIND_MARKETING
    assert intent.strategy == intent_pb2.STRATEGY_FIRST_AVAILABLE
    assert intent.category == "cart_reminder"
    assert intent.idempotency_key == "k1"


def test_without_a_key_each_intent_gets_a_fresh_random_one():
    opts = SendOptions(users=["u1"], channels=[ChannelName.inapp])
    first, second = build_send_intent(opts), build_send_intent(opts)
    assert first.idempotency_key and first.idempotency_key != second.idempotency_key
