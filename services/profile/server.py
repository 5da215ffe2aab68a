"""Profile gRPC API: proto <-> store, validation and status mapping."""

from __future__ import annotations

import re
from zoneinfo import available_timezones

import grpc
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.profile.store import ProfileStore
from shared.auth import current_tenant
from shared.clock import now_timestamp, utcnow
from shared.grpc import status
from shared.grpc.status import Violations

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
ZONES = frozenset(available_timezones())
MAX_ID = 255


def _user_id(problems: Violations, field: str, value: str) -> None:
    if not value or len(value) > MAX_ID or any(ord(ch) < 32 for ch in value):
        problems.add(field, f"required, 1-{MAX_ID} printable characters")


def validate_profile(profile: profile_pb2.Profile) -> Violations:
    problems = Violations()
    _user_id(problems, "profile.user_id", profile.user_id)
    if profile.timezone and profile.timezone not in ZONES:
        problems.add("profile.timezone", f"unknown IANA time zone {profile.timezone!r}")
    if profile.locale and not LOCALE.match(profile.locale):
        problems.add("profile.locale", "a BCP 47 tag such as 'en' or 'de-AT'")
    email = profile.contacts.email
    if email and (
        len(email) > 254 or email.count("@") != 1 or any(c in email for c in " \r\n<>,;")
    ):
        problems.add("profile.contacts.email", "not an email address")
    if profile.contacts.phone and not E164.match(profile.contacts.phone):
        problems.add("profile.contacts.phone", "an E.164 number such as +4366412345678")
    for i, sub in enumerate(profile.contacts.webpush):
        if not sub.endpoint.startswith("https://") or not sub.p256dh or not sub.auth:
            problems.add(
                f"profile.contacts.webpush[{i}]", "an https endpoint with p256dh and auth keys"
            )
    return problems


class ProfileServicer(profile_pb2_grpc.ProfilesServicer):
    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    async def UpsertProfile(
        self, request: profile_pb2.UpsertProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.UpsertProfileResponse:
        validate_profile(request.profile).raise_if_any()
        saved = await self._store.upsert(current_tenant(), request.profile, utcnow())
        return profile_pb2.UpsertProfileResponse(profile=saved)

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.GetProfileResponse:
        problems = Violations()
        _user_id(problems, "user_id", request.user_id)
        problems.raise_if_any()
        found = await self._store.get_many(current_tenant(), [request.user_id])
        if request.user_id not in found:
            raise status.not_found("profile", request.user_id)
        return profile_pb2.GetProfileResponse(profile=found[request.user_id])

    async def RecordEvent(
        self, request: profile_pb2.RecordEventRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.RecordEventResponse:
        problems = Violations()
        _user_id(problems, "user_id", request.user_id)
        if not request.event.name or len(request.event.name) > 64:
            problems.add("event.name", "required, at most 64 characters")
        problems.raise_if_any()
        event = profile_pb2.BehaviourEvent()
        event.CopyFrom(request.event)
        if not event.HasField("occurred_at"):
            event.occurred_at.CopyFrom(now_timestamp())
        await self._store.record_events(current_tenant(), [(request.user_id, event)])
        return profile_pb2.RecordEventResponse()

    async def EraseProfile(
        self, request: profile_pb2.EraseProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.EraseProfileResponse:
        problems = Violations()
        _user_id(problems, "user_id", request.user_id)
        problems.raise_if_any()
        erased = await self._store.erase(current_tenant(), request.user_id)
        return profile_pb2.EraseProfileResponse(erased=erased)
