"""eligibility queue -> frequency queue (allowed) and events (the rest)."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2

from services.eligibility import rules
from shared import envelopes
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage
from shared.clock import utcnow

STAGE = "eligibility"


class EligibilityConsumer:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        now = utcnow()
        outs: list[Outbound] = []
        events: list[envelope_pb2.DeliveryEvent] = []
        for env in batch:
            allowed: list[envelope_pb2.Delivery] = []
            for delivery in env.deliveries:
                profile = env.profiles[delivery.user_id]
                verdict = rules.check(env.intent, profile, delivery.channel, now)
                dec = envelopes.decision(STAGE, verdict.state, verdict.reason, verdict.detail)
                delivery.decisions.append(dec)
                if verdict.allowed:
                    allowed.append(delivery)
                else:
                    events.append(envelopes.event_for(env, delivery, dec))
            if allowed:
                outs.append(
                    to_stage(self.bus.topology, topology.FREQUENCY, envelopes.onward(env, allowed))
                )
        if events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(events)))
        return outs
