"""plan queue -> eligibility queue: resolve recipients, attach profiles, fan out."""

from __future__ import annotations

from collections import defaultdict

from sendmesh.bus.v1 import envelope_pb2

from services.profile import planner
from services.profile.store import ProfileStore
from shared import envelopes
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage


class PlanConsumer:
    def __init__(self, bus: Bus, store: ProfileStore, envelope_deliveries: int) -> None:
        self.bus = bus
        self.store = store
        self.envelope_deliveries = envelope_deliveries

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        wanted: dict[str, set[str]] = defaultdict(set)
        for env in batch:
            wanted[env.tenant_id].update(planner.recipients(env))
        # One query per tenant in the batch, not one per recipient.
        known = {t: await self.store.get_many(t, sorted(users)) for t, users in wanted.items()}
        outs: list[Outbound] = []
        events: list[envelope_pb2.DeliveryEvent] = []
        for env in batch:
            for users in planner.chunks(planner.recipients(env), self._users_per_envelope(env)):
                deliveries, profiles = planner.plan_deliveries(env, users, known[env.tenant_id])
                onward = envelopes.onward(env, deliveries, profiles)
                outs.append(to_stage(self.bus.topology, topology.ELIGIBILITY, onward))
                events.extend(envelopes.event_for(onward, d, d.decisions[-1]) for d in deliveries)
        if events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(events)))
        return outs

    def _users_per_envelope(self, env: envelope_pb2.Envelope) -> int:
        return max(1, self.envelope_deliveries // max(1, len(env.intent.channels)))
