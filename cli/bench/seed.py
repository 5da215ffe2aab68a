"""The data the decision and fan-out phases need, loaded through the bulk APIs:
UpsertProfiles (1,000 profiles with their consents a call), Subscribe
(10,000 members a call), RecordEvents (1,000 a call), PutCapPolicy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from cli.client import Metadata

T = TypeVar("T")
# Each the most its RPC takes in one call.
PROFILES_PER_CALL = 1000
MEMBERS_PER_CALL = 10_000
EVENTS_PER_CALL = 1000
# Calls in flight: SQLite writes one transaction at a time anyway; two keep
# the next request decoded while the last one commits.
SEED_CONCURRENCY = 2
SEED_TIMEOUT_S = 60.0
SOURCE = "bench"


def bench_profile(user_id: str, consent_category: str | None) -> profile_pb2.Profile:
    """An in-app recipient without quiet hours of their own; with an opt-in to
    in-app messages of `consent_category` unless that is None."""
    profile = profile_pb2.Profile(user_id=user_id, locale="en", timezone="Europe/Vienna")
    profile.attributes.update({"bench": True})
    if consent_category is not None:
        profile.consents.add(
            channel=intent_pb2.CHANNEL_INAPP,
            category=consent_category,
            granted=True,
            source=SOURCE,
        )
    return profile


def batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Seeder:
    """Bulk writes to the profile and frequency services; `done` counts items written."""

    def __init__(
        self, profile: grpc.aio.Channel, frequency: grpc.aio.Channel, metadata: Metadata
    ) -> None:
        self._profiles = profile_pb2_grpc.ProfilesStub(profile)
        self._frequency = frequency_pb2_grpc.FrequencyStub(frequency)
        self._metadata = metadata
        self.done = 0

    async def profiles(self, profiles: Sequence[profile_pb2.Profile]) -> None:
        async def call(part: Sequence[profile_pb2.Profile]) -> None:
            request = profile_pb2.UpsertProfilesRequest(profiles=part)
            await self._profiles.UpsertProfiles(
                request, metadata=self._metadata, timeout=SEED_TIMEOUT_S
            )
            self.done += len(part)

        await _in_parallel(call, batches(profiles, PROFILES_PER_CALL))

    async def subscribe(self, topic: str, user_ids: Sequence[str]) -> None:
        async def call(part: Sequence[str]) -> None:
            request = profile_pb2.SubscribeRequest(topic=topic, user_ids=part)
            await self._profiles.Subscribe(request, metadata=self._metadata, timeout=SEED_TIMEOUT_S)
            self.done += len(part)

        await _in_parallel(call, batches(user_ids, MEMBERS_PER_CALL))

    async def events(self, events: Sequence[profile_pb2.UserEvent]) -> None:
        async def call(part: Sequence[profile_pb2.UserEvent]) -> None:
            request = profile_pb2.RecordEventsRequest(events=part)
            await self._profiles.RecordEvents(
                request, metadata=self._metadata, timeout=SEED_TIMEOUT_S
            )
            self.done += len(part)

        await _in_parallel(call, batches(events, EVENTS_PER_CALL))

    async def cap_policy(self, policy: frequency_pb2.CapPolicy) -> None:
        request = frequency_pb2.PutCapPolicyRequest(policy=policy)
        await self._frequency.PutCapPolicy(request, metadata=self._metadata, timeout=SEED_TIMEOUT_S)


async def _in_parallel(call: Callable[[T], Awaitable[None]], parts: Sequence[T]) -> None:
    pending = iter(parts)

    async def worker() -> None:
        for part in pending:
            await call(part)

    await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))
