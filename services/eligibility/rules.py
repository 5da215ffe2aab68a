"""Eligibility decisions: may this recipient get this intent on this channel?

Pure functions over the intent and the profile snapshot; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared import reasons
from shared.envelopes import ChannelValue, StateValue

Channel = intent_pb2.Channel
State = intent_pb2.DeliveryState


@dataclass(frozen=True)
class Verdict:
    state: StateValue
    reason: str
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.state == State.DELIVERY_STATE_PENDING


CONTENT_FIELDS: dict[ChannelValue, Literal["email", "sms", "webpush", "inapp"]] = {
    Channel.CHANNEL_EMAIL: "email",
    Channel.CHANNEL_SMS: "sms",
    Channel.CHANNEL_WEBPUSH: "webpush",
    Channel.CHANNEL_INAPP: "inapp",
}

ALLOW = Verdict(State.DELIVERY_STATE_PENDING, reasons.ALLOWED)


def has_contact_point(profile: profile_pb2.Profile, channel: ChannelValue) -> bool:
    """In-app needs only the user id; the others need an address."""
    contacts = profile.contacts
    if channel == Channel.CHANNEL_EMAIL:
        return bool(contacts.email)
    if channel == Channel.CHANNEL_SMS:
        return bool(contacts.phone)
    if channel == Channel.CHANNEL_WEBPUSH:
        return len(contacts.webpush) > 0
    return channel == Channel.CHANNEL_INAPP


def has_content(intent: intent_pb2.SendIntent, channel: ChannelValue) -> bool:
    """A template renders for every channel; inline content must name the channel."""
    if intent.content.WhichOneof("source") != "inline":
        return True
    inline = intent.content.inline
    field = CONTENT_FIELDS.get(channel)
    return field is not None and inline.HasField(field)


def is_expired(intent: intent_pb2.SendIntent, now: datetime) -> bool:
    timing = intent.timing
    return timing.HasField("expires_at") and timing.expires_at.ToDatetime(now.tzinfo) <= now


def check(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    channel: ChannelValue,
    now: datetime,
) -> Verdict:
    """The first rule that says no, or ALLOW."""
    if is_expired(intent, now):
        return Verdict(State.DELIVERY_STATE_EXPIRED, reasons.EXPIRED)
    if not has_content(intent, channel):
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.NO_CONTENT)
    if not has_contact_point(profile, channel):
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.NO_CONTACT_POINT)
    return ALLOW
