"""Consent: has the recipient agreed to this category of message on this channel?

Pure: no I/O. The profile carries the latest statement per (channel, category);
the most specific statement decides:

    (channel, category) > (channel, "") > (UNSPECIFIED, category) > (UNSPECIFIED, "")

Marketing needs a grant (unless the tenant runs opt-out: `requires_opt_in`
false) and stops at a withdrawal. Transactional needs no grant and stops only
at a withdrawal that names its channel or its category; the global catch-all
(UNSPECIFIED, "") is the "no more marketing" switch and does not stop
receipts or password resets.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared.envelopes import ChannelValue

Channel = intent_pb2.Channel
Kind = intent_pb2.Kind
Key = tuple[ChannelValue, str]


class Consent(Enum):
    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    MISSING = "missing"


def lookup_order(channel: ChannelValue, category: str, kind: int) -> list[Key]:
    """The statements that may decide, most specific first (without duplicates)."""
    keys: list[Key] = [
        (channel, category),
        (channel, ""),
        (Channel.CHANNEL_UNSPECIFIED, category),
    ]
    if kind != Kind.KIND_TRANSACTIONAL:
        keys.append((Channel.CHANNEL_UNSPECIFIED, ""))
    return list(dict.fromkeys(keys))


def latest_statements(consents: Iterable[profile_pb2.Consent]) -> dict[Key, bool]:
    """(channel, category) -> granted, the latest statement winning if one repeats."""
    latest: dict[Key, profile_pb2.Consent] = {}
    for c in consents:
        key = (c.channel, c.category)
        seen = latest.get(key)
        if seen is None or _when(c) >= _when(seen):
            latest[key] = c
    return {key: c.granted for key, c in latest.items()}


def _when(c: profile_pb2.Consent) -> tuple[int, int]:
    return (c.at.seconds, c.at.nanos)


def consent_for(
    consents: Iterable[profile_pb2.Consent], channel: ChannelValue, category: str, kind: int
) -> Consent:
    """The deciding statement's answer, or MISSING if none applies."""
    statements = latest_statements(consents)
    for key in lookup_order(channel, category, kind):
        if key in statements:
            return Consent.GIVEN if statements[key] else Consent.WITHDRAWN
    return Consent.MISSING


def describe(channel_name: str, category: str) -> str:
    """The detail of a consent decision: what was asked, never who."""
    return f"{channel_name} / {category or 'any category'}"
