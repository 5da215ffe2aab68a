"""Provider feedback as it goes on the bus: one FeedbackBatch per producer batch,
on the events exchange under `feedback`, where eligibility and profile each
have a queue. Building only: publishing is the caller's, with its other output,
so feedback is confirmed before the message that caused it is acked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2, feedback_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels.prepare import contact_for, profile_of
from services.channels.provider import SendResult, Signal
from shared import metrics
from shared.bus import topology
from shared.bus.publisher import Outbound, to_events
from shared.bus.topology import Topology
from shared.clock import to_timestamp
from shared.envelopes import CHANNEL_NAMES

Kind = feedback_pb2.FeedbackKind
KINDS: dict[Signal, feedback_pb2.FeedbackKind.ValueType] = {
    "hard_bounce": Kind.FEEDBACK_KIND_HARD_BOUNCE,
    "complaint": Kind.FEEDBACK_KIND_COMPLAINT,
    "opt_out": Kind.FEEDBACK_KIND_OPT_OUT,
}
KIND_NAMES = {
    v.number: v.name.removeprefix("FEEDBACK_KIND_").lower()
    for v in feedback_pb2.FeedbackKind.DESCRIPTOR.values
}


def contact_of(env: envelope_pb2.Envelope, user_id: str, channel: str) -> str:
    """The address or number `channel` used for the user ("" when it has none)."""
    contact = contact_for(profile_of(env, user_id), channel)
    if contact is None:
        return ""
    return contact.email if channel == "email" else contact.phone


def from_result(
    env: envelope_pb2.Envelope,
    delivery: envelope_pb2.Delivery,
    channel: str,
    result: SendResult,
    source: str,
    at: datetime,
) -> feedback_pb2.Feedback | None:
    """The feedback a provider's answer carries (a hard bounce), or None."""
    if result.signal is None:
        return None
    contact = contact_of(env, delivery.user_id, channel)
    if not contact:
        return None
    return feedback_pb2.Feedback(
        tenant_id=env.tenant_id,
        channel=intent_pb2.Channel.Value(f"CHANNEL_{channel.upper()}"),
        kind=KINDS[result.signal],
        contact=contact,
        user_id=delivery.user_id,
        occurred_at=to_timestamp(at),
        source=source,
        provider_ref=result.provider_message_id,
        detail=result.detail,
    )


def to_bus(topo: Topology, items: Sequence[feedback_pb2.Feedback]) -> Outbound:
    """One FeedbackBatch for the events exchange, counted by channel and kind."""
    for item in items:
        channel = CHANNEL_NAMES.get(item.channel, "unspecified")
        metrics.FEEDBACK.labels(channel, KIND_NAMES.get(item.kind, "unspecified")).inc()
    batch = feedback_pb2.FeedbackBatch(items=list(items))
    return to_events(topo, batch, topology.EVENTS_FEEDBACK_KEY)


def decode_feedback(body: bytes) -> feedback_pb2.FeedbackBatch:
    return feedback_pb2.FeedbackBatch.FromString(body)
