"""Table rows <-> protos for the profile service's store. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from sendmesh.profile.v1 import profile_pb2

from shared.clock import from_timestamp, to_timestamp


def to_row(tenant_id: str, profile: profile_pb2.Profile, now: datetime) -> dict[str, Any]:
    """What UpsertProfile writes: consents and recent events are not part of it."""
    return {
        "tenant_id": tenant_id,
        "user_id": profile.user_id,
        "attributes": json_format.MessageToDict(profile.attributes),
        "locale": profile.locale,
        "timezone": profile.timezone,
        "email": profile.contacts.email,
        "phone": profile.contacts.phone,
        "webpush": [json_format.MessageToDict(s) for s in profile.contacts.webpush],
        "quiet_hours": (
            json_format.MessageToDict(
                profile.quiet_hours, always_print_fields_with_no_presence=True
            )
            if profile.HasField("quiet_hours")
            else None
        ),
        "updated_at": now,
    }


def to_proto(row: Any, consents: Sequence[profile_pb2.Consent] = ()) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(
        user_id=row.user_id,
        locale=row.locale,
        timezone=row.timezone,
        updated_at=to_timestamp(row.updated_at),
        consents=consents,
    )
    profile.attributes.update(row.attributes)
    profile.contacts.email = row.email
    profile.contacts.phone = row.phone
    for sub in row.webpush:
        json_format.ParseDict(sub, profile.contacts.webpush.add())
    if row.quiet_hours is not None:
        json_format.ParseDict(row.quiet_hours, profile.quiet_hours)
    return profile


def consent_row(
    tenant_id: str, user_id: str, consent: profile_pb2.Consent, now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "channel": int(consent.channel),
        "category": consent.category,
        "granted": consent.granted,
        "source": consent.source,
        "at": from_timestamp(consent.at),
        "recorded_at": now,
    }


def consent_proto(row: Any) -> profile_pb2.Consent:
    return profile_pb2.Consent(
        channel=row.channel,
        category=row.category,
        granted=row.granted,
        source=row.source,
        at=to_timestamp(row.at),
    )


def event_proto(row: Any) -> profile_pb2.BehaviourEvent:
    return profile_pb2.BehaviourEvent(
        name=row.name, occurred_at=to_timestamp(row.occurred_at), properties=row.properties
    )
