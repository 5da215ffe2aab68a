"""Suppression list keys: normalised contacts and their keyed hashes.

Pure: no I/O. The list never holds a contact, only HMAC-SHA256(key, contact)
of its normalised form (email trimmed and lower-cased, phone as E.164), so a
leaked table names nobody without the key. Messages here never repeat the
contact, so they can go into field violations and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared.envelopes import ChannelValue

Channel = intent_pb2.Channel
Reason = eligibility_pb2.SuppressionReason

# The channels whose contact point is an address a list can hold.
LISTED_CHANNELS: frozenset[ChannelValue] = frozenset({Channel.CHANNEL_EMAIL, Channel.CHANNEL_SMS})

REASON_NAMES = {
    v.number: v.name.removeprefix("SUPPRESSION_REASON_").lower() for v in Reason.DESCRIPTOR.values
}

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Deliberately plain: one @, a dotted domain, no spaces or brackets. Deliverability
# is the provider's call; this only keeps obvious non-addresses off the list.
EMAIL_PATTERN = re.compile(
    r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
MAX_EMAIL_LENGTH = 254


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


def normalise_phone(raw: str) -> str:
    """E.164 if phonenumbers can read it (with its +country code), else trimmed."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException:
        return text
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise(channel: ChannelValue, raw: str) -> str:
    return normalise_email(raw) if channel == Channel.CHANNEL_EMAIL else normalise_phone(raw)


def contact_problem(channel: ChannelValue, raw: str) -> str | None:
    """Why `raw` is not a contact point of `channel` (never repeating it), or None."""
    text = raw.strip()
    if not text:
        return "required"
    if channel == Channel.CHANNEL_EMAIL:
        if len(text) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(text):
            return "not an email address"
        return None
    if not text.startswith("+"):
        return "an E.164 number with its country code, such as +4366412345678"
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException:
        return "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return "not a valid phone number for its country"
    return None


def contact_hash(key: bytes, channel: ChannelValue, raw: str) -> str:
    """HMAC-SHA256 of the normalised contact, hex: the only form the list stores."""
    normalised = normalise(channel, raw).encode()
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


def profile_contact(profile: profile_pb2.Profile, channel: ChannelValue) -> str:
    """The profile's address on a listed channel ("" for none or another channel)."""
    if channel == Channel.CHANNEL_EMAIL:
        return profile.contacts.email
    if channel == Channel.CHANNEL_SMS:
        return profile.contacts.phone
    return ""


def profile_hashes(key: bytes, profile: profile_pb2.Profile) -> dict[ChannelValue, str]:
    """channel -> contact hash, for each listed channel the profile has an address on."""
    hashes: dict[ChannelValue, str] = {}
    for channel in LISTED_CHANNELS:
        contact = profile_contact(profile, channel)
        if contact:
            hashes[channel] = contact_hash(key, channel, contact)
    return hashes


def listed_channels(
    key: bytes,
    tenant_id: str,
    profile: profile_pb2.Profile,
    listed: Mapping[tuple[str, int, str], int],
) -> dict[ChannelValue, int]:
    """channel -> SuppressionReason, for the profile's contacts found in `listed`
    ((tenant, channel, hash) -> reason, as the store's lookup returns it)."""
    found: dict[ChannelValue, int] = {}
    for channel, digest in profile_hashes(key, profile).items():
        reason = listed.get((tenant_id, channel, digest))
        if reason is not None:
            found[channel] = reason
    return found


def describe(reason: int) -> str:
    """A suppression decision's detail: the list's reason, never the contact."""
    return f"on the suppression list ({REASON_NAMES.get(reason, 'unspecified')})"
