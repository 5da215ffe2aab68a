"""The stages Explain asks: profile, eligibility and frequency, over gRPC.

Each call carries the caller's own credentials, so every stage scopes its
answer to the caller's tenant. Retries: UNAVAILABLE only, declared once in
the channel's service config, with a deadline on every call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import grpc
from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.eligibility import behaviour
from shared.clock import to_timestamp
from shared.envelopes import ChannelValue

Metadata = Sequence[tuple[str, str]]

SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=[("grpc.service_config", SERVICE_CONFIG)])


class Peers:
    def __init__(
        self, profile: str, eligibility: str, frequency: str, timeout_s: float = 5.0
    ) -> None:
        self._channels = [open_channel(a) for a in (profile, eligibility, frequency)]
        self.profiles = profile_pb2_grpc.ProfilesStub(self._channels[0])
        self.eligibility = eligibility_pb2_grpc.EligibilityStub(self._channels[1])
        self.frequency = frequency_pb2_grpc.FrequencyStub(self._channels[2])
        self.timeout_s = timeout_s

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
