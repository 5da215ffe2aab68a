"""Eligibility rules: expired, no content, no contact point per channel, or allowed.

Transactional intents here, so consent and quiet hours stay out of the way
(they have tests of their own in test_rules_order.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility.rules import check

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EVERY_CHANNEL = [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP]


def intent_with_content() -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(channels=EVERY_CHANNEL, kind=intent_pb2.KIND_TRANSACTIONAL)
    inline = intent.content.inline
    inline.email.subject = "S"
    inline.sms.text = "T"
    inline.webpush.title = "W"
    inline.inapp.title = "I"
    return intent


def reachable_profile() -> profile_pb2.Profile:
    profile = profile_pb2.Profile(user_id="u1")
    profile.contacts.email = "u1@example.com"
    profile.contacts.phone = "+4366412345678"
    profile.contacts.webpush.add(endpoint="https://push.example/1", p256dh="k", auth="a")
    return profile


def verdict_of(intent, profile, channel, now=NOW) -> tuple[int, str, bool]:
    v = check(intent, profile, channel, now)
    return v.state, v.reason, v.allowed


@pytest.mark.parametrize("channel", EVERY_CHANNEL)
def test_a_reachable_recipient_with_content_is_allowed_on_every_channel(channel):
    assert verdict_of(intent_with_content(), reachable_profile(), channel) == (
        S.DELIVERY_STATE_PENDING,
        "allowed",
        True,
    )


@pytest.mark.parametrize("channel", EVERY_CHANNEL)
def test_an_intent_past_its_expiry_is_expired_on_every_channel(channel):
    intent = intent_with_content()
    intent.timing.expires_at.FromDatetime(NOW - timedelta(seconds=1))
    assert verdict_of(intent, reachable_profile(), channel) == (
        S.DELIVERY_STATE_EXPIRED,
        "expired",
        False,
    )


def test_an_intent_expiring_exactly_now_is_expired_and_one_a_second_later_is_not():
    intent = intent_with_content()
    intent.timing.expires_at.FromDatetime(NOW)
    assert verdict_of(intent, reachable_profile(), C.CHANNEL_INAPP)[1] == "expired"
    intent.timing.expires_at.FromDatetime(NOW + timedelta(seconds=1))
    assert verdict_of(intent, reachable_profile(), C.CHANNEL_INAPP)[1] == "allowed"


@pytest.mark.parametrize(
    ("channel", "part"),
    [
        (C.CHANNEL_EMAIL, "email"),
        (C.CHANNEL_SMS, "sms"),
        (C.CHANNEL_WEBPUSH, "webpush"),
        (C.CHANNEL_INAPP, "inapp"),
    ],
)
def test_a_channel_without_inline_content_is_suppressed_for_no_content(channel, part):
    intent = intent_with_content()
    intent.content.inline.ClearField(part)
    assert verdict_of(intent, reachable_profile(), channel) == (
        S.DELIVERY_STATE_SUPPRESSED,
        "no_content",
        False,
    )
    others = [c for c in EVERY_CHANNEL if c != channel]
    assert [verdict_of(intent, reachable_profile(), c)[1] for c in others] == ["allowed"] * 3


@pytest.mark.parametrize("channel", EVERY_CHANNEL)
def test_a_template_counts_as_content_for_every_channel(channel):
    intent = intent_pb2.SendIntent(channels=EVERY_CHANNEL, kind=intent_pb2.KIND_TRANSACTIONAL)
    intent.content.template.template_id = "cart-v2"
    assert verdict_of(intent, reachable_profile(), channel)[1] == "allowed"


@pytest.mark.parametrize(
    ("channel", "remove"),
    [
        (C.CHANNEL_EMAIL, lambda p: setattr(p.contacts, "email", "")),
        (C.CHANNEL_SMS, lambda p: setattr(p.contacts, "phone", "")),
        (C.CHANNEL_WEBPUSH, lambda p: p.contacts.ClearField("webpush")),
    ],
    ids=["email", "sms", "webpush"],
)
def test_a_channel_without_its_contact_point_is_suppressed_and_the_others_are_not(channel, remove):
    profile = reachable_profile()
    remove(profile)
    assert verdict_of(intent_with_content(), profile, channel) == (
        S.DELIVERY_STATE_SUPPRESSED,
        "no_contact_point",
        False,
    )
    others = [c for c in EVERY_CHANNEL if c != channel]
    assert [verdict_of(intent_with_content(), profile, c)[1] for c in others] == ["allowed"] * 3


def test_in_app_needs_nothing_but_the_user_id():
    bare = profile_pb2.Profile(user_id="ghost")
    assert [verdict_of(intent_with_content(), bare, c)[1] for c in EVERY_CHANNEL] == [
        "no_contact_point",
        "no_contact_point",
        "no_contact_point",
        "allowed",
    ]


def test_an_unknown_channel_is_never_allowed():
    intent = intent_pb2.SendIntent(kind=intent_pb2.KIND_TRANSACTIONAL)
    intent.content.template.template_id = "t"
    assert verdict_of(intent, reachable_profile(), C.CHANNEL_UNSPECIFIED) == (
        S.DELIVERY_STATE_SUPPRESSED,
        "no_contact_point",
        False,
    )
    assert verdict_of(intent_with_content(), reachable_profile(), 99)[1] == "no_content"


def test_expiry_is_checked_before_content_and_content_before_contact_points():
    intent = intent_pb2.SendIntent(channels=[C.CHANNEL_EMAIL])
    intent.content.inline.inapp.title = "no email content"
    bare = profile_pb2.Profile(user_id="u1")
    assert verdict_of(intent, bare, C.CHANNEL_EMAIL)[1] == "no_content"
    intent.timing.expires_at.FromDatetime(NOW - timedelta(hours=1))
    assert verdict_of(intent, bare, C.CHANNEL_EMAIL)[1] == "expired"
