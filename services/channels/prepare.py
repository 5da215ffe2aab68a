"""From an envelope's delivery to the message a provider sends. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

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


# In-app needs no contact point: every in-app message shares this one.
NO_CONTACT = Contact()


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
    return NO_CONTACT


def profile_of(env: envelope_pb2.Envelope, user_id: str) -> profile_pb2.Profile:
    # Indexing a protobuf map inserts a missing key; look before reading.
    return env.profiles[user_id] if user_id in env.profiles else profile_pb2.Profile()


class Shared(NamedTuple):
    """What every delivery of one envelope has in common, for its messages."""

    tenant_id: str
    intent_id: str
    category: str
    kind: str
    metadata: Mapping[str, str]
    accepted_at: datetime | None
    inline: bool

    @classmethod
    def of(cls, env: envelope_pb2.Envelope) -> Shared:
        intent = env.intent
        return cls(
            env.tenant_id,
            env.intent_id,
            intent.category,
            KIND_NAMES.get(intent.kind, "unspecified"),
            MappingProxyType(dict(intent.metadata)),
            from_timestamp(env.accepted_at) if env.HasField("accepted_at") else None,
            intent.content.WhichOneof("source") == "inline",
        )


@dataclass
class PrepareCache:
    """One per consumed batch: what its deliveries share, worked out once.
    A fan-out's thousand deliveries in one batch come from a few envelopes."""

    # Inline content by (tenant, intent, channel): the same for every recipient.
    content: dict[tuple[str, str, int], dict[str, Any] | Unrenderable] = field(default_factory=dict)
    # By id(envelope): valid while the batch's envelopes are alive.
    shared: dict[int, Shared] = field(default_factory=dict)

    def of(self, env: envelope_pb2.Envelope) -> Shared:
        found = self.shared.get(id(env))
        if found is None:
            found = self.shared[id(env)] = Shared.of(env)
        return found


def prepare(
    env: envelope_pb2.Envelope,
    delivery: envelope_pb2.Delivery,
    channel: str,
    cache: PrepareCache | None = None,
) -> OutgoingMessage | SendResult:
    """The message to send for `delivery` on `channel`, or a permanent failure saying why not.

    With `cache` (one per consumed batch), inline content and the envelope's
    own fields are worked out once, and the messages share them: providers
    only read content and metadata."""
    if delivery.channel != CHANNELS_BY_NAME.get(channel):
        got = CHANNEL_NAMES.get(delivery.channel, str(delivery.channel))
        return permanent(delivery.delivery_id, reasons.WRONG_CHANNEL, f"a {got} delivery")
    shared = Shared.of(env) if cache is None else cache.of(env)
    profile = profile_of(env, delivery.user_id)
    content = _content(env, shared, delivery.channel, profile, cache)
    if isinstance(content, Unrenderable):
        return permanent(delivery.delivery_id, content.reason, content.detail)
    contact = contact_for(profile, channel)
    if contact is None:
        return permanent(delivery.delivery_id, reasons.NO_CONTACT_POINT, f"no {channel} contact")
    return OutgoingMessage(
        tenant_id=shared.tenant_id,
        intent_id=shared.intent_id,
        delivery_id=delivery.delivery_id,
        user_id=delivery.user_id,
        channel=channel,
        category=shared.category,
        kind=shared.kind,
        content=content,
        contact=contact,
        metadata=shared.metadata,
        accepted_at=shared.accepted_at,
    )


def _content(
    env: envelope_pb2.Envelope,
    shared: Shared,
    channel: ChannelValue,
    profile: profile_pb2.Profile,
    cache: PrepareCache | None,
) -> dict[str, Any] | Unrenderable:
    # A template renders per recipient; inline content is the intent's own, so a
    # fan-out's thousand deliveries in one batch need it converted once.
    if cache is None or not shared.inline:
        return content_for(env.intent, channel, profile)
    key = (shared.tenant_id, shared.intent_id, channel)
    found = cache.content.get(key)
    if found is None:
        found = cache.content[key] = content_for(env.intent, channel, profile)
    return found
