"""From an envelope's delivery to the message a provider sends. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.channels.content import Unrenderable, content_for
from services.channels.provider import (
    Contact,
    OutgoingMessage,
    SendResult,
    WebPushTarget,
    permanent,
)
from shared import reasons
from shared.clock import from_timestamp
from shared.envelopes import CHANNEL_NAMES, CHANNELS_BY_NAME, ChannelValue

KIND_NAMES = {
    v.number: v.name.removeprefix("KIND_").lower() for v in intent_pb2.Kind.DESCRIPTOR.values
}


def contact_for(profile: profile_pb2.Profile, channel: str) -> Contact | None:
    """The contact points `channel` needs from the profile; None when it has none."""
    contacts = profile.contacts
    if channel == "email":
        return Contact(email=contacts.email) if contacts.email else None
    if channel == "sms":
        return Contact(phone=contacts.phone) if contacts.phone else None
    if channel == "webpush":
        targets = tuple(WebPushTarget(s.endpoint, s.p256dh, s.auth) for s in contacts.webpush)
        return Contact(webpush=targets) if targets else None
    return Contact()


def profile_of(env: envelope_pb2.Envelope, user_id: str) -> profile_pb2.Profile:
    # Indexing a protobuf map inserts a missing key; look before reading.
    return env.profiles[user_id] if user_id in env.profiles else profile_pb2.Profile()


# Inline content by (tenant, intent, channel): the same for every recipient.
ContentCache = dict[tuple[str, str, int], dict[str, Any] | Unrenderable]


def prepare(
    env: envelope_pb2.Envelope,
    delivery: envelope_pb2.Delivery,
    channel: str,
    cache: ContentCache | None = None,
) -> OutgoingMessage | SendResult:
    """The message to send for `delivery` on `channel`, or a permanent failure saying why not.

    With `cache` (one per consumed batch), inline content is worked out once per
    intent and channel, and the messages share it: providers only read content."""
    if delivery.channel != CHANNELS_BY_NAME.get(channel):
        got = CHANNEL_NAMES.get(delivery.channel, str(delivery.channel))
        return permanent(delivery.delivery_id, reasons.WRONG_CHANNEL, f"a {got} delivery")
    profile = profile_of(env, delivery.user_id)
    content = _content(env, delivery.channel, profile, cache)
    if isinstance(content, Unrenderable):
        return permanent(delivery.delivery_id, content.reason, content.detail)
    contact = contact_for(profile, channel)
    if contact is None:
        return permanent(delivery.delivery_id, reasons.NO_CONTACT_POINT, f"no {channel} contact")
    return OutgoingMessage(
        tenant_id=env.tenant_id,
        intent_id=env.intent_id,
        delivery_id=delivery.delivery_id,
        user_id=delivery.user_id,
        channel=channel,
        category=env.intent.category,
        kind=KIND_NAMES.get(env.intent.kind, "unspecified"),
        content=content,
        contact=contact,
        metadata=dict(env.intent.metadata),
        accepted_at=from_timestamp(env.accepted_at) if env.HasField("accepted_at") else None,
    )


def _content(
    env: envelope_pb2.Envelope,
    channel: ChannelValue,
    profile: profile_pb2.Profile,
    cache: ContentCache | None,
) -> dict[str, Any] | Unrenderable:
    # A template renders per recipient; inline content is the intent's own, so a
    # fan-out's thousand deliveries in one batch need it converted once.
    if cache is None or env.intent.content.WhichOneof("source") != "inline":
        return content_for(env.intent, channel, profile)
    key = (env.tenant_id, env.intent_id, channel)
    found = cache.get(key)
    if found is None:
        found = cache[key] = content_for(env.intent, channel, profile)
    return found
