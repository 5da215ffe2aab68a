from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels.prepare import prepare
from services.channels.provider import OutgoingMessage, SendResult, WebPushTarget

C = intent_pb2.Channel


def _envelope(channel: int) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="i1")
    env.intent.category = "cart_reminder"
    env.intent.kind = intent_pb2.Kind.KIND_MARKETING
    env.intent.metadata["campaign"] = "spring"
    inline = env.intent.content.inline
    inline.email.subject = "S"
    inline.webpush.title = "T"
    inline.inapp.title = "I"
    env.accepted_at.FromSeconds(1_800_000_000)
    env.deliveries.add(delivery_id="d1", user_id="u1", channel=channel)
    profile = env.profiles["u1"]
    profile.user_id = "u1"
    profile.contacts.email = "u1@example.com"
    profile.contacts.webpush.add(endpoint="https://push.example/1", p256dh="k", auth="a")
    return env


def test_an_email_delivery_becomes_a_message_to_the_profile_address():
    env = _envelope(C.CHANNEL_EMAIL)
    message = prepare(env, env.deliveries[0], "email")
    assert isinstance(message, OutgoingMessage)
    assert (message.tenant_id, message.intent_id, message.delivery_id) == ("acme", "i1", "d1")
    assert message.contact.email == "u1@example.com"
    assert message.content["subject"] == "S"
    assert (message.category, message.kind) == ("cart_reminder", "marketing")
    assert message.metadata == {"campaign": "spring"}
    assert message.accepted_at is not None and message.accepted_at.year == 2027


def test_a_webpush_delivery_carries_every_subscription():
    env = _envelope(C.CHANNEL_WEBPUSH)
    message = prepare(env, env.deliveries[0], "webpush")
    assert isinstance(message, OutgoingMessage)
    assert message.contact.webpush == (WebPushTarget("https://push.example/1", "k", "a"),)


def test_an_sms_delivery_without_a_phone_fails_for_want_of_a_contact_point():
    env = _envelope(C.CHANNEL_SMS)
    env.intent.content.inline.sms.text = "x"
    result = prepare(env, env.deliveries[0], "sms")
    assert isinstance(result, SendResult)
    assert (result.outcome, result.reason) == ("permanent", "no_contact_point")


def test_an_inapp_delivery_to_a_bare_profile_is_sendable():
    env = _envelope(C.CHANNEL_INAPP)
    del env.profiles["u1"]
    message = prepare(env, env.deliveries[0], "inapp")
    assert isinstance(message, OutgoingMessage)
    assert "u1" not in env.profiles  # looking did not insert a profile


def test_a_delivery_for_another_channel_is_refused():
    env = _envelope(C.CHANNEL_SMS)
    result = prepare(env, env.deliveries[0], "email")
    assert isinstance(result, SendResult)
    assert (result.outcome, result.reason) == ("permanent", "wrong_channel")


def test_template_content_fails_permanently_as_template_not_found():
    env = _envelope(C.CHANNEL_EMAIL)
    env.intent.content.template.template_id = "welcome"
    result = prepare(env, env.deliveries[0], "email")
    assert isinstance(result, SendResult)
    assert (result.outcome, result.reason) == ("permanent", "template_not_found")


def test_a_message_never_shows_its_contact_or_content_in_repr():
    env = _envelope(C.CHANNEL_EMAIL)
    message = prepare(env, env.deliveries[0], "email")
    assert "u1@example.com" not in repr(message)
    assert "'S'" not in repr(message)
