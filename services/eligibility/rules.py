"""Eligibility decisions: may this recipient get this intent on this channel now?

Pure functions over the intent, the profile snapshot and the facts the stage
looked up (the tenant's quiet hours, which contacts are on the suppression
list); no I/O. The first rule that says no (or not yet) decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.eligibility import behaviour, consent, suppression
from services.eligibility.quiet_hours import (
    QuietPolicy,
    Window,
    is_quiet_at,
    is_valid_minute,
    quiet_window_end,
    recipient_zone,
)
from shared import reasons
from shared.clock import from_timestamp
from shared.envelopes import CHANNEL_NAMES, ChannelValue, StateValue

Channel = intent_pb2.Channel
State = intent_pb2.DeliveryState
Kind = intent_pb2.Kind


@dataclass(frozen=True)
class Verdict:
    state: StateValue
    reason: str
    detail: str = ""
    # SCHEDULED only: when the delivery is checked again.
    not_before: datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.state == State.DELIVERY_STATE_PENDING

    @property
    def deferred(self) -> bool:
        return self.state == State.DELIVERY_STATE_SCHEDULED


@dataclass(frozen=True)
class Facts:
    """What the stage looked up for this recipient, besides intent and profile."""

    quiet_policy: QuietPolicy | None = None
    # Listed channel -> SuppressionReason, for the profile's contacts on the list.
    suppressed: Mapping[ChannelValue, int] = field(default_factory=dict)
    marketing_requires_opt_in: bool = True


NO_FACTS = Facts()

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
    part = CONTENT_FIELDS.get(channel)
    return part is not None and inline.HasField(part)


def is_expired(intent: intent_pb2.SendIntent, now: datetime) -> bool:
    timing = intent.timing
    return timing.HasField("expires_at") and from_timestamp(timing.expires_at) <= now


def send_at_later(intent: intent_pb2.SendIntent, now: datetime) -> datetime | None:
    """The intent's send_at, if it is still in the future."""
    timing = intent.timing
    if timing.HasField("send_at") and from_timestamp(timing.send_at) > now:
        return from_timestamp(timing.send_at)
    return None


def is_marketing(intent: intent_pb2.SendIntent) -> bool:
    # Anything not declared transactional gets the stricter treatment.
    return intent.kind != Kind.KIND_TRANSACTIONAL


def quiet_window(profile: profile_pb2.Profile, policy: QuietPolicy | None) -> Window | None:
    """The recipient's own quiet hours if set (or switched off), else the tenant's."""
    if profile.HasField("quiet_hours"):
        own = profile.quiet_hours
        window = None if own.disabled else Window(own.start_minute, own.end_minute)
    else:
        window = policy.window if policy is not None else None
    # A snapshot with minutes out of range has no window rather than crashing the batch.
    if window is None or not (
        is_valid_minute(window.start_minute) and is_valid_minute(window.end_minute)
    ):
        return None
    return window


def check(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    channel: ChannelValue,
    now: datetime,
    facts: Facts = NO_FACTS,
) -> Verdict:
    """The first rule that says no (or not yet), or ALLOW."""
    if is_expired(intent, now):
        return Verdict(State.DELIVERY_STATE_EXPIRED, reasons.EXPIRED)
    send_at = send_at_later(intent, now)
    if send_at is not None:
        return Verdict(
            State.DELIVERY_STATE_SCHEDULED, reasons.SCHEDULED, f"send_at {_iso(send_at)}", send_at
        )
    if not has_content(intent, channel):
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.NO_CONTENT)
    if not has_contact_point(profile, channel):
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.NO_CONTACT_POINT)
    return _check_recipient(intent, profile, channel, now, facts)


def _check_recipient(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    channel: ChannelValue,
    now: datetime,
    facts: Facts,
) -> Verdict:
    verdict = check_consent(intent, profile, channel, facts.marketing_requires_opt_in)
    if verdict is not None:
        return verdict
    listed = facts.suppressed.get(channel)
    if listed is not None:
        return Verdict(
            State.DELIVERY_STATE_SUPPRESSED, reasons.SUPPRESSED, suppression.describe(listed)
        )
    match = behaviour.first_match(intent.exclude_if, profile.recent_events, now)
    if match is not None:
        detail = behaviour.describe(match, intent.exclude_if)
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.EXCLUDED_BY_RULE, detail)
    return check_quiet_hours(intent, profile, now, facts.quiet_policy) or ALLOW


def check_consent(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    channel: ChannelValue,
    requires_opt_in: bool,
) -> Verdict | None:
    """OPTED_OUT or NO_CONSENT, or None when consent lets the delivery pass."""
    answer = consent.consent_for(profile.consents, channel, intent.category, intent.kind)
    what = consent.describe(CHANNEL_NAMES.get(channel, "unknown"), intent.category)
    if answer is consent.Consent.WITHDRAWN:
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.OPTED_OUT, f"withdrawn: {what}")
    if answer is consent.Consent.MISSING and is_marketing(intent) and requires_opt_in:
        return Verdict(State.DELIVERY_STATE_SUPPRESSED, reasons.NO_CONSENT, f"no opt-in: {what}")
    return None


def check_quiet_hours(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    now: datetime,
    policy: QuietPolicy | None,
) -> Verdict | None:
    """SCHEDULED until the window ends for marketing inside it; None otherwise."""
    if not is_marketing(intent):
        return None
    window = quiet_window(profile, policy)
    if window is None or window.is_empty:
        return None
    zone = recipient_zone(profile.timezone, policy.default_timezone if policy else "")
    if not is_quiet_at(window, zone, now):
        return None
    end = quiet_window_end(window, zone, now)
    detail = f"quiet hours {_hhmm(window.start_minute)}-{_hhmm(window.end_minute)} {zone}"
    return Verdict(State.DELIVERY_STATE_SCHEDULED, reasons.QUIET_HOURS, detail, end)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
