"""frequency queue -> send.<channel> queues: apply the strategy (and, later, caps)."""

from __future__ import annotations

from collections import defaultdict

from sendmesh.bus.v1 import envelope_pb2

from services.frequency import caps
from shared import envelopes, reasons
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage

STAGE = "frequency"
State = envelopes.State


class FrequencyConsumer:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        outs: list[Outbound] = []
        events: list[envelope_pb2.DeliveryEvent] = []
        for env in batch:
            by_user: dict[str, list[envelope_pb2.Delivery]] = defaultdict(list)
            for delivery in env.deliveries:
                by_user[delivery.user_id].append(delivery)
            by_channel: dict[int, list[envelope_pb2.Delivery]] = defaultdict(list)
            for deliveries in by_user.values():
                choice = caps.choose_channels(env.intent.strategy, env.intent.channels, deliveries)
                for d in choice.send:
                    d.decisions.append(
                        envelopes.decision(
                            STAGE, State.DELIVERY_STATE_PENDING, reasons.NO_CAP_POLICY
                        )
                    )
                    by_channel[d.channel].append(d)
                for d in choice.skip:
                    dec = envelopes.decision(
                        STAGE, State.DELIVERY_STATE_SKIPPED, reasons.FALLBACK_NOT_NEEDED
                    )
                    d.decisions.append(dec)
                    events.append(envelopes.event_for(env, d, dec))
            for channel, deliveries in by_channel.items():
                stage = topology.send_stage(envelopes.CHANNEL_NAMES[channel])
                outs.append(to_stage(self.bus.topology, stage, envelopes.onward(env, deliveries)))
        if events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(events)))
        return outs
