"""frequency queue -> send.<channel> (granted), deferred (capped, on_capped DEFER)
and events (capped, scheduled, skipped).

Per recipient, the intent's strategy over its channels in order: ALL reserves
a slot on every channel that arrived; FIRST_AVAILABLE sends on the first one
with a free slot and skips the rest. When nothing can be sent, the intent's
`on_capped` decides: drop (CAPPED) or defer to when a slot frees (SCHEDULED).
The whole batch is one reservation transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import choice, ledger, windows
from services.frequency.choice import Ask, Outcome, Request, Verdict
from shared import envelopes, metrics, reasons
from shared.bus import topology
from shared.bus.publisher import Bus, Outbound, to_events, to_stage
from shared.clock import from_timestamp, to_timestamp, utcnow

STAGE = "frequency"
State = envelopes.State
DEFER = intent_pb2.CAP_ACTION_DEFER

# One recipient's deliveries in the order tried, with their request.
Group = tuple[Request, list[envelope_pb2.Delivery]]


@dataclass
class Routed:
    """One envelope's deliveries after the reservations."""

    # The batch's decisions, shared by its envelopes.
    decided: envelopes.BatchDecisions
    by_channel: dict[int, list[envelope_pb2.Delivery]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # due time -> deliveries deferred until then
    deferred: dict[datetime, list[envelope_pb2.Delivery]] = field(
        default_factory=lambda: defaultdict(list)
    )
    events: list[envelope_pb2.DeliveryEvent] = field(default_factory=list)


def zone_of(env: envelope_pb2.Envelope, user_id: str) -> tzinfo:
    """The recipient's zone from their profile; UTC when unknown or invalid."""
    name = env.profiles[user_id].timezone if user_id in env.profiles else ""
    return windows.zone_named(name) or UTC


def groups_of(env: envelope_pb2.Envelope, now: datetime) -> list[Group]:
    """The envelope's requests: per recipient, per the intent's strategy."""
    by_user: dict[str, list[envelope_pb2.Delivery]] = defaultdict(list)
    for delivery in env.deliveries:
        by_user[delivery.user_id].append(delivery)
    intent = env.intent
    groups: list[Group] = []
    for user_id, deliveries in by_user.items():
        zone = zone_of(env, user_id)
        ordered = choice.in_intent_order(intent.channels, deliveries)
        for tried in choice.alternatives(intent.strategy, ordered):
            asks = tuple(Ask(d.delivery_id, d.channel, intent.category, intent.kind) for d in tried)
            groups.append((Request(env.tenant_id, user_id, now, zone, asks), tried))
    return groups


class FrequencyConsumer:
    def __init__(self, bus: Bus, engine: AsyncEngine) -> None:
        self.bus = bus
        self.engine = engine

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        now = utcnow()
        planned: list[tuple[envelope_pb2.Envelope, list[Group]]] = []
        for env in batch:
            # Back from the scheduler: the deferral is spent; it is decided anew.
            env.ClearField("deferral")
            planned.append((env, groups_of(env, now)))
        requests = [request for _, groups in planned for request, _ in groups]
        verdicts = iter(await ledger.reserve(self.engine, requests))
        outs: list[Outbound] = []
        events: list[envelope_pb2.DeliveryEvent] = []
        decided = envelopes.BatchDecisions(STAGE)
        for env, groups in planned:
            routed = Routed(decided)
            for _, deliveries in groups:
                apply(env, deliveries, next(verdicts), routed)
            outs.extend(self._onward(env, routed))
            events.extend(routed.events)
        decided.flush()
        if events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(events)))
        return outs

    def _onward(self, env: envelope_pb2.Envelope, routed: Routed) -> list[Outbound]:
        topo = self.bus.topology
        outs: list[Outbound] = []
        for channel, deliveries in routed.by_channel.items():
            stage = topology.send_stage(envelopes.CHANNEL_NAMES[channel])
            outs.append(to_stage(topo, stage, envelopes.onward(env, deliveries)))
        # One envelope per intent and due time: the scheduler keeps one deferral each.
        for due_at, deliveries in routed.deferred.items():
            deferred = envelopes.onward(env, deliveries)
            deferred.deferral.CopyFrom(
                envelope_pb2.Deferral(
                    due_at=to_timestamp(due_at), stage=topology.FREQUENCY, reason=reasons.CAPPED
                )
            )
            outs.append(to_stage(topo, topology.DEFERRED, deferred))
        return outs


def apply(
    env: envelope_pb2.Envelope,
    deliveries: list[envelope_pb2.Delivery],
    tried: list[Verdict],
    routed: Routed,
) -> None:
    """Record the verdicts on one recipient's alternatives and route them."""
    granted = next((i for i, v in enumerate(tried) if v.granted), None)
    for i, (delivery, verdict) in enumerate(zip(deliveries, tried, strict=False)):
        if verdict.granted:
            reason = (
                reasons.NO_CAP_POLICY if verdict.outcome is Outcome.NO_POLICY else reasons.RESERVED
            )
            dec = routed.decided.make(State.DELIVERY_STATE_PENDING, reason, verdict.detail)
            delivery.decisions.append(dec)
            routed.by_channel[delivery.channel].append(delivery)
        elif granted is None and i == 0:
            _on_capped(env, delivery, verdict, routed)
        else:
            _report(
                env, delivery, State.DELIVERY_STATE_CAPPED, reasons.CAPPED, verdict.detail, routed
            )
    for delivery in deliveries[len(tried) :]:
        _report(
            env, delivery, State.DELIVERY_STATE_SKIPPED, reasons.FALLBACK_NOT_NEEDED, "", routed
        )


def _on_capped(
    env: envelope_pb2.Envelope, delivery: envelope_pb2.Delivery, verdict: Verdict, routed: Routed
) -> None:
    """DEFER to the next free slot if it comes before the intent expires; else drop."""
    slot = verdict.next_slot
    detail = verdict.detail
    if env.intent.on_capped == DEFER and slot is not None:
        timing = env.intent.timing
        expires = from_timestamp(timing.expires_at) if timing.HasField("expires_at") else None
        if expires is None or slot < expires:
            scheduled = State.DELIVERY_STATE_SCHEDULED
            _report(env, delivery, scheduled, reasons.CAPPED, detail, routed, not_before=slot)
            routed.deferred[slot].append(delivery)
            metrics.DEFERRED_TOTAL.labels(STAGE, reasons.CAPPED).inc()
            return
        detail += "; the next slot is after the intent expires"
    _report(env, delivery, State.DELIVERY_STATE_CAPPED, reasons.CAPPED, detail, routed)


def _report(
    env: envelope_pb2.Envelope,
    delivery: envelope_pb2.Delivery,
    state: envelopes.StateValue,
    reason: str,
    detail: str,
    routed: Routed,
    not_before: datetime | None = None,
) -> None:
    dec = routed.decided.make(state, reason, detail, not_before)
    delivery.decisions.append(dec)
    routed.events.append(envelopes.event_for(env, delivery, dec))
