"""The stages Explain asks: profile, eligibility and frequency, over gRPC.

Each call carries the caller's own credentials, so every stage scopes its
answer to the caller's tenant. The channels come from shared/grpc/client.py
(TLS as set, retries of UNAVAILABLE only in their service config, trace
context); every call also sets its own deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc
from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.eligibility import behaviour
from services.intake.settings import IntakeSettings
from shared.clock import to_timestamp
from shared.envelopes import ChannelValue
from shared.grpc.client import open_channel, service_config

Metadata = Sequence[tuple[str, str]]


class Peers:
    def __init__(self, settings: IntakeSettings) -> None:
        # The same deadline for the calls and for their retries.
        config = service_config(timeout_s=settings.peer_timeout_s)
        self._channels = [
            open_channel(address, settings, service_config=config)
            for address in (
                settings.profile_address,
                settings.eligibility_address,
                settings.frequency_address,
            )
        ]
        self.profiles = profile_pb2_grpc.ProfilesStub(self._channels[0])
        self.eligibility = eligibility_pb2_grpc.EligibilityStub(self._channels[1])
        self.frequency = frequency_pb2_grpc.FrequencyStub(self._channels[2])
        self.timeout_s = settings.peer_timeout_s

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def profile(self, user_id: str, metadata: Metadata) -> profile_pb2.Profile | None:
        try:
            reply = await self.profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=user_id),
                metadata=metadata,
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.profile

    async def recent_events(
        self,
        user_id: str,
        rules: Sequence[intent_pb2.BehaviourRule],
        at: datetime,
        metadata: Metadata,
    ) -> list[profile_pb2.BehaviourEvent]:
        """The user's events the rules could match, as the profile stage attaches them."""
        since = at - behaviour.longest_window(rules)
        events: list[profile_pb2.BehaviourEvent] = []
        for name in sorted(behaviour.event_names(rules)):
            reply = await self.profiles.ListEvents(
                profile_pb2.ListEventsRequest(
                    user_id=user_id,
                    name=name,
                    since=to_timestamp(since),
                    page_size=100,
                ),
                metadata=metadata,
                timeout=self.timeout_s,
            )
            events.extend(reply.events)
        return events

    async def check(
        self,
        intent: intent_pb2.SendIntent,
        profile: profile_pb2.Profile,
        at: datetime,
        metadata: Metadata,
    ) -> dict[ChannelValue, intent_pb2.Decision]:
        reply = await self.eligibility.Check(
            eligibility_pb2.CheckRequest(intent=intent, profile=profile, at=to_timestamp(at)),
            metadata=metadata,
            timeout=self.timeout_s,
        )
        return {d.channel: d.decision for d in reply.decisions}

    async def reserve_dry_run(
        self,
        intent: intent_pb2.SendIntent,
        profile: profile_pb2.Profile,
        channel: ChannelValue,
        at: datetime,
        metadata: Metadata,
    ) -> tuple[bool, intent_pb2.Decision]:
        reply = await self.frequency.Reserve(
            frequency_pb2.ReserveRequest(
                user_id=profile.user_id,
                channel=channel,
                category=intent.category,
                kind=intent.kind,
                delivery_id="explain",
                dry_run=True,
                timezone=profile.timezone,
                at=to_timestamp(at),
            ),
            metadata=metadata,
            timeout=self.timeout_s,
        )
        return reply.granted, reply.decision
