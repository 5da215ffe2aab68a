"""eligibility queue -> frequency queue (allowed), deferred queue (scheduled),
and events (everything that is not allowed).

Per batch: one query for the suppression list (every contact of every
envelope) and at most one for quiet-hours policies (cached per tenant).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.eligibility import rules, store, suppression
from services.eligibility.policies import QuietHoursCache
from services.eligibility.quiet_hours import QuietPolicy
from services.eligibility.settings import EligibilitySettings
from shared import envelopes, metrics
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage
from shared.clock import to_timestamp, utcnow

STAGE = "eligibility"


@dataclass
class Sorted:
    """One envelope's deliveries after the decisions."""

    allowed: list[envelope_pb2.Delivery] = field(default_factory=list)
    # (due time, reason) -> the deliveries deferred until then, for that reason.
    deferred: dict[tuple[datetime, str], list[envelope_pb2.Delivery]] = field(
        default_factory=lambda: defaultdict(list)
    )


class EligibilityConsumer:
    def __init__(self, bus: Bus, engine: AsyncEngine, settings: EligibilitySettings) -> None:
        self.bus = bus
        self.engine = engine
        self.hash_key = settings.hash_key()
        self.requires_opt_in = settings.marketing_requires_opt_in
        self.policies = QuietHoursCache(engine, settings.quiet_hours_cache_ttl_s)

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        now = utcnow()
        for env in batch:
            # Back from the scheduler: the deferral is spent; it is decided anew.
            env.ClearField("deferral")
        policies = await self.policies.get_many(env.tenant_id for env in batch)
        listed = await store.find_suppressions(
            self.engine,
            {
                (env.tenant_id, ch, h)
                for env in batch
                for profile in env.profiles.values()
                for ch, h in suppression.profile_hashes(self.hash_key, profile).items()
            },
        )
        outs: list[Outbound] = []
        events: list[envelope_pb2.DeliveryEvent] = []
        decided = envelopes.BatchDecisions(STAGE)
        for env in batch:
            sorted_ = self._decide(env, now, policies.get(env.tenant_id), listed, decided, events)
            outs.extend(self._onward(env, sorted_))
        decided.flush()
        if events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(events)))
        return outs

    def _decide(
        self,
        env: envelope_pb2.Envelope,
        now: datetime,
        policy: QuietPolicy | None,
        listed: dict[store.Key, int],
        decided: envelopes.BatchDecisions,
        events: list[envelope_pb2.DeliveryEvent],
    ) -> Sorted:
        out = Sorted()
        for delivery in env.deliveries:
            profile = _profile_of(env, delivery.user_id)
            # Hashed again rather than carried over: HMACs cost microseconds.
            suppressed = suppression.listed_channels(self.hash_key, env.tenant_id, profile, listed)
            facts = rules.Facts(policy, suppressed, self.requires_opt_in)
            verdict = rules.check(env.intent, profile, delivery.channel, now, facts)
            dec = decided.make(verdict.state, verdict.reason, verdict.detail, verdict.not_before)
            delivery.decisions.append(dec)
            if verdict.allowed:
                out.allowed.append(delivery)
                continue
            if verdict.deferred and verdict.not_before is not None:
                out.deferred[(verdict.not_before, verdict.reason)].append(delivery)
                metrics.DEFERRED_TOTAL.labels(STAGE, verdict.reason).inc()
            events.append(envelopes.event_for(env, delivery, dec))
        return out

    def _onward(self, env: envelope_pb2.Envelope, sorted_: Sorted) -> list[Outbound]:
        topo = self.bus.topology
        outs: list[Outbound] = []
        if sorted_.allowed:
            outs.append(to_stage(topo, topology.FREQUENCY, envelopes.onward(env, sorted_.allowed)))
        # One envelope per intent and due time: the scheduler keeps one deferral each.
        for (due_at, reason), deliveries in sorted_.deferred.items():
            deferred = envelopes.onward(env, deliveries)
            deferred.deferral.due_at.CopyFrom(to_timestamp(due_at))
            deferred.deferral.stage = topology.ELIGIBILITY
            deferred.deferral.reason = reason
            outs.append(to_stage(topo, topology.DEFERRED, deferred))
        return outs


def _profile_of(env: envelope_pb2.Envelope, user_id: str) -> profile_pb2.Profile:
    # Reading a missing key of a message map would insert an empty profile.
    if user_id in env.profiles:
        return env.profiles[user_id]
    return profile_pb2.Profile(user_id=user_id)
