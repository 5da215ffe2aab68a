"""What the scheduler does to envelopes, without I/O.

It checks what a stage deferred, keeps the envelope ready for its way back
(`deferral` cleared), lists the deliveries it holds, drops an erased user from
it, and reports held deliveries CANCELLED when their intent is cancelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from shared import reasons
from shared.clock import from_timestamp
from shared.envelopes import decision, event_for
from shared.errors import PermanentError

STAGE = "scheduler"
CANCELLED = intent_pb2.DeliveryState.DELIVERY_STATE_CANCELLED


@dataclass(frozen=True)
class HeldDelivery:
    delivery_id: str
    user_id: str
    channel: int


@dataclass(frozen=True)
class Held:
    """One deferred envelope, as the scheduler stores it."""

    tenant_id: str
    intent_id: str
    due_at: datetime
    stage: str
    reason: str
    # sha256 of the envelope as received: a redelivered message is stored once.
    digest: str
    # The envelope with `deferral` cleared: what goes back on the stage's queue.
    body: bytes
    deliveries: tuple[HeldDelivery, ...]


def hold(env: envelope_pb2.Envelope, stages: Collection[str]) -> Held:
    """The envelope as the scheduler keeps it; PermanentError if it is not a
    deferral it can put back (no deferral, no due time, a stage it does not
    know, or nothing to defer)."""
    if not env.HasField("deferral"):
        raise PermanentError("envelope without a deferral")
    deferral = env.deferral
    if not deferral.HasField("due_at"):
        raise PermanentError("deferral without due_at")
    if deferral.stage not in stages:
        raise PermanentError(f"deferral to unknown stage {deferral.stage[:64]!r}")
    if not env.deliveries:
        raise PermanentError("deferral without deliveries")
    digest = hashlib.sha256(env.SerializeToString(deterministic=True)).hexdigest()
    stripped = envelope_pb2.Envelope()
    stripped.CopyFrom(env)
    stripped.ClearField("deferral")
    return Held(
        tenant_id=env.tenant_id,
        intent_id=env.intent_id,
        due_at=from_timestamp(deferral.due_at),
        stage=deferral.stage,
        reason=deferral.reason,
        digest=digest,
        body=stripped.SerializeToString(),
        deliveries=tuple(
            HeldDelivery(d.delivery_id, d.user_id, int(d.channel)) for d in env.deliveries
        ),
    )


def cancelled_events(bodies: Iterable[bytes]) -> list[envelope_pb2.DeliveryEvent]:
    """A CANCELLED event for every delivery of these envelopes, with its trail."""
    events = []
    for body in bodies:
        env = envelope_pb2.Envelope.FromString(body)
        for delivery in env.deliveries:
            dec = decision(STAGE, CANCELLED, reasons.CANCELLED, "cancelled while deferred")
            events.append(event_for(env, delivery, dec))
    return events


def without_users(body: bytes, user_ids: Collection[str]) -> bytes | None:
    """The envelope with every trace of `user_ids` removed (deliveries, profile
    snapshots, explicit audience), or None if no delivery is left."""
    env = envelope_pb2.Envelope.FromString(body)
    kept = [d for d in env.deliveries if d.user_id not in user_ids]
    if not kept:
        return None
    del env.deliveries[:]
    env.deliveries.extend(kept)
    for user_id in user_ids:
        if user_id in env.profiles:
            del env.profiles[user_id]
    audience = env.intent.audience.user_ids
    if any(u in user_ids for u in audience):
        remaining = [u for u in audience if u not in user_ids]
        del audience[:]
        audience.extend(remaining)
    return env.SerializeToString()


def chunks(items: list[envelope_pb2.DeliveryEvent], size: int) -> list[envelope_pb2.EventBatch]:
    """Event batches of at most `size` events, so a huge cancel is no huge message."""
    return [envelope_pb2.EventBatch(events=items[i : i + size]) for i in range(0, len(items), size)]
