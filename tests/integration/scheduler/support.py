"""Deferred envelopes as eligibility and frequency hand them to the scheduler."""

from __future__ import annotations

from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from shared import envelopes
from shared.clock import now_timestamp, to_timestamp

S = intent_pb2.DeliveryState
C = intent_pb2.Channel


def deferred_envelope(
    due_at: datetime,
    *,
    tenant: str = "acme",
    intent: str = "i1",
    users: tuple[str, ...] = ("u1",),
    stage: str = "eligibility",
    reason: str = "quiet_hours",
) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id=tenant, intent_id=intent)
    env.accepted_at.CopyFrom(now_timestamp())
    env.intent.channels.append(C.CHANNEL_EMAIL)
    for user in users:
        d = env.deliveries.add(
            delivery_id=f"{intent}-{user}-email", user_id=user, channel=C.CHANNEL_EMAIL
        )
        d.decisions.append(envelopes.decision("profile", S.DELIVERY_STATE_PENDING, "planned"))
        scheduled = envelopes.decision(stage, S.DELIVERY_STATE_SCHEDULED, reason)
        scheduled.not_before.CopyFrom(to_timestamp(due_at))
        d.decisions.append(scheduled)
        env.profiles[user].user_id = user
    env.deferral.due_at.CopyFrom(to_timestamp(due_at))
    env.deferral.stage = stage
    env.deferral.reason = reason
    return env
