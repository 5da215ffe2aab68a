"""Building blocks for what stages put on the bus: decisions and events.

Domain-free helpers on the generated types, so every stage reports the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TypeAlias

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared import metrics
from shared.clock import now_timestamp, to_timestamp

State = intent_pb2.DeliveryState
StateValue: TypeAlias = intent_pb2.DeliveryState.ValueType
ChannelValue: TypeAlias = intent_pb2.Channel.ValueType

STATE_NAMES = {
    v.number: v.name.removeprefix("DELIVERY_STATE_").lower()
    for v in intent_pb2.DeliveryState.DESCRIPTOR.values
}
CHANNEL_NAMES = {
    v.number: v.name.removeprefix("CHANNEL_").lower() for v in intent_pb2.Channel.DESCRIPTOR.values
}
CHANNELS_BY_NAME = {name: number for number, name in CHANNEL_NAMES.items() if number}


def decision(stage: str, state: StateValue, reason: str, detail: str = "") -> intent_pb2.Decision:
    """A decision stamped now, and counted in sendmesh_decisions_total."""
    metrics.count_decision(stage, STATE_NAMES.get(state, "unknown"), reason)
    return intent_pb2.Decision(
        stage=stage, state=state, reason=reason, detail=detail, at=now_timestamp()
    )


class BatchDecisions:
    """A consumed batch's decisions of one stage: one Decision per (state,
    reason, detail, not_before), stamped when first made, and counted in
    sendmesh_decisions_total once per (state, reason) at `flush`.

    A batch is decided at one moment, so its thousand `allowed` decisions
    on a fan-out are the same protobuf and one metric update, not a
    thousand of each.
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._made: dict[tuple[StateValue, str, str, datetime | None], intent_pb2.Decision] = {}
        self._counts: Counter[tuple[StateValue, str]] = Counter()

    def make(
        self, state: StateValue, reason: str, detail: str = "", not_before: datetime | None = None
    ) -> intent_pb2.Decision:
        """The decision, to be appended (copied) to a delivery's decisions or
        put in an event; never changed afterwards."""
        key = (state, reason, detail, not_before)
        dec = self._made.get(key)
        if dec is None:
            dec = intent_pb2.Decision(
                stage=self.stage, state=state, reason=reason, detail=detail, at=now_timestamp()
            )
            if not_before is not None:
                dec.not_before.CopyFrom(to_timestamp(not_before))
            self._made[key] = dec
        self._counts[(state, reason)] += 1
        return dec

    def flush(self) -> None:
        for (state, reason), n in self._counts.items():
            metrics.count_decision(self.stage, STATE_NAMES.get(state, "unknown"), reason, n)
        self._counts.clear()


def event_for(
    env: envelope_pb2.Envelope,
    delivery: envelope_pb2.Delivery,
    dec: intent_pb2.Decision,
    provider: str = "",
) -> envelope_pb2.DeliveryEvent:
    """The event reporting `dec` for `delivery`, carrying its trail so far."""
    return envelope_pb2.DeliveryEvent(
        tenant_id=env.tenant_id,
        intent_id=env.intent_id,
        delivery_id=delivery.delivery_id,
        user_id=delivery.user_id,
        channel=delivery.channel,
        decision=dec,
        accepted_at=env.accepted_at,
        provider=provider,
        trail=[d for d in delivery.decisions if d != dec],
    )


def event_batch(events: Iterable[envelope_pb2.DeliveryEvent]) -> envelope_pb2.EventBatch:
    return envelope_pb2.EventBatch(events=list(events))


def onward(
    env: envelope_pb2.Envelope,
    deliveries: list[envelope_pb2.Delivery],
    profiles: Mapping[str, profile_pb2.Profile] | None = None,
) -> envelope_pb2.Envelope:
    """A copy of `env` for the next stage, with only `deliveries` and their
    profiles (taken from `profiles` if given, else from `env`)."""
    out = envelope_pb2.Envelope(
        tenant_id=env.tenant_id,
        intent_id=env.intent_id,
        intent=env.intent,
        accepted_at=env.accepted_at,
        deliveries=deliveries,
    )
    source = env.profiles if profiles is None else profiles
    for user_id in {d.user_id for d in deliveries}:
        if user_id in source:
            out.profiles[user_id].CopyFrom(source[user_id])
    return out


def decode_envelope(body: bytes) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope()
    env.ParseFromString(body)
    if not env.intent_id or not env.tenant_id:
        raise ValueError("envelope without intent_id or tenant_id")
    return env
