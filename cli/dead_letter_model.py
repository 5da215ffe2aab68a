"""What a dead letter is, how it is shown, and where a replay sends it. Pure.

A replayed delivery goes back to eligibility, not straight to its channel:
consent, the suppression list, expiry and the behaviour rules are decided
again for it (the user may have opted out while it waited), then frequency
reserves a cap slot again (the dead-lettering worker gave the old one back),
then the channel. Each replayed delivery gets a `replayed` decision, which
the channel worker reads as "fresh attempt budget" and GetIntent shows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.mesh import SERVICE_NAMES
from shared import envelopes, reasons
from shared.bus import topology
from shared.bus.publisher import (
    ATTEMPT_HEADER,
    DEAD_AT_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    Outbound,
    to_events,
    to_stage,
)
from shared.bus.topology import Topology
from shared.clock import to_timestamp

# The stage named on replay decisions, and the header on replayed messages.
REPLAY_STAGE = "dlq"
REPLAYED_HEADER = "x-sendmesh-replayed-from"
DEAD_SUFFIX = ".dead"
HIDDEN = "(hidden)"

Envelope = envelope_pb2.Envelope
EventBatch = envelope_pb2.EventBatch
ControlEvent = envelope_pb2.ControlEvent
TYPES: dict[str, type[Message]] = {
    t.DESCRIPTOR.full_name: t for t in (Envelope, EventBatch, ControlEvent)
}


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    reason: str
    detail: str
    attempts: int
    dead_at: datetime | None
    type: str
    headers: Mapping[str, Any]
    body: bytes


def dead_letter_stages(topo: Topology) -> list[str]:
    """Every stage of the namespace that has a dead-letter queue."""
    dead = [q for q in topo.all_queues(SERVICE_NAMES) if q.endswith(DEAD_SUFFIX)]
    return [topo.stage_of(q).removesuffix(DEAD_SUFFIX) for q in dead]


def describe(stage: str, headers: Mapping[str, Any], body: bytes, msg_type: str) -> DeadLetter:
    """Why, when and after how many attempts: from our own headers, or from
    the broker's `x-death` when the broker dead-lettered it (delivery limit)."""
    death = _last_death(headers)
    reason = _text(headers.get(REASON_HEADER)) or _text(death.get("reason")) or "unknown"
    attempts = _int(headers.get(ATTEMPT_HEADER), 1)
    if REASON_HEADER not in headers:
        attempts = max(attempts, _int(headers.get("x-delivery-count"), 0))
    dead_ms = headers.get(DEAD_AT_HEADER)
    dead_at = (
        datetime.fromtimestamp(dead_ms / 1000, UTC)
        if isinstance(dead_ms, int)
        else _utc(death.get("time"))
    )
    detail = _text(headers.get(ERROR_HEADER))
    return DeadLetter(stage, reason, detail, attempts, dead_at, msg_type, dict(headers), body)


def decode(letter: DeadLetter) -> Message | None:
    """The message, by its type (or its stage's usual type); None if it does
    not decode, or if its type is one this process does not know."""
    cls = message_class(letter.type) if letter.type else _type_of_stage(letter.stage)
    if cls is None:
        return None
    try:
        message = cls.FromString(letter.body)
    except DecodeError:
        return None
    if isinstance(message, Envelope) and not (message.tenant_id and message.intent_id):
        return None
    return message


def message_class(full_name: str) -> type[Message] | None:
    """The generated class of a protobuf type name, if it is loaded."""
    if full_name in TYPES:
        return TYPES[full_name]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return None
    return message_factory.GetMessageClass(descriptor)


def is_undecodable(letter: DeadLetter) -> bool:
    """Known not to decode: the consumer said so, or its type is known and
    the body does not parse. A message of a type unknown here is replayed as is."""
    if letter.reason == reasons.UNDECODABLE:
        return True
    known = message_class(letter.type) if letter.type else _type_of_stage(letter.stage)
    return known is not None and decode(letter) is None


def why_kept(letter: DeadLetter, reason: str | None) -> str | None:
    """Why a replay leaves this one where it is, or None to replay it."""
    if reason is not None and letter.reason != reason:
        return f"reason is {letter.reason}, not {reason}"
    if is_undecodable(letter):
        return "undecodable: a replay cannot succeed"
    return None


def replay_target(stage: str) -> str:
    """Deliveries dead after eligibility are decided again from there."""
    if stage.startswith("send.") or stage == topology.FREQUENCY:
        return topology.ELIGIBILITY
    return stage


def replay_outbound(letter: DeadLetter, topo: Topology, at: datetime) -> list[Outbound]:
    """What to publish for one replayed dead letter (attempt counter reset:
    no attempt header), and, for deliveries, the events that say so."""
    target = replay_target(letter.stage)
    marker: dict[str, str | int] = {REPLAYED_HEADER: letter.stage}
    message = decode(letter)
    if not isinstance(message, Envelope) or not message.deliveries:
        return [Outbound(topo.work_exchange, target, letter.body, letter.type, marker)]
    env = Envelope()
    env.CopyFrom(message)
    dec = replay_decision(letter, at)
    events = []
    for delivery in env.deliveries:
        delivery.decisions.append(dec)
        events.append(envelopes.event_for(env, delivery, dec))
    return [to_stage(topo, target, env, **marker), to_events(topo, envelopes.event_batch(events))]


def replay_decision(letter: DeadLetter, at: datetime) -> intent_pb2.Decision:
    detail = f"from {letter.stage} after {letter.attempts} attempt(s): {letter.reason}"
    return intent_pb2.Decision(
        stage=REPLAY_STAGE,
        state=envelopes.State.DELIVERY_STATE_PENDING,
        reason=reasons.REPLAYED,
        detail=detail,
        at=to_timestamp(at),
    )


def summary_row(letter: DeadLetter) -> dict[str, Any]:
    """One line of `dlq list --stage`: which intent and deliveries, why, when."""
    message = decode(letter)
    intents: list[str] = []
    deliveries: list[str] = []
    if isinstance(message, Envelope):
        intents, deliveries = [message.intent_id], [d.delivery_id for d in message.deliveries]
    elif isinstance(message, EventBatch):
        intents = list(dict.fromkeys(e.intent_id for e in message.events))
        deliveries = [e.delivery_id for e in message.events]
    elif isinstance(message, ControlEvent) and message.HasField("intent_cancelled"):
        intents = [message.intent_cancelled.intent_id]
    return {
        "intent_ids": intents,
        "delivery_ids": deliveries,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "dead_at": iso(letter.dead_at),
        "detail": letter.detail,
        "undecodable": is_undecodable(letter),
    }


def show_row(letter: DeadLetter) -> dict[str, Any]:
    """The whole dead letter for `dlq show`, without contact points or message bodies."""
    message = decode(letter)
    return {
        "stage": letter.stage,
        "type": letter.type,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "dead_at": iso(letter.dead_at),
        "headers": json_safe(dict(letter.headers)),
        "message": None if message is None else redacted(message),
        "size_bytes": len(letter.body),
    }


def redacted(message: Message) -> dict[str, Any]:
    """`message` as JSON, with every profile's contacts and the intent's content hidden."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if isinstance(message, Envelope):
        for profile in data.get("profiles", {}).values():
            if "contacts" in profile:
                profile["contacts"] = HIDDEN
        intent = data.get("intent", {})
        if "content" in intent:
            intent["content"] = HIDDEN
    return data


def json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return iso(_utc(value))
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def iso(at: datetime | None) -> str:
    return "" if at is None else at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age_s(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else max((now - at).total_seconds(), 0.0)


def _type_of_stage(stage: str) -> type[Message] | None:
    """What a stage's queue carries, for a message published without a type."""
    if stage in (topology.RELEASE, topology.EVENTS_INTAKE):
        return EventBatch
    if stage.startswith("control."):
        return ControlEvent
    envelope_stages = (topology.PLAN, topology.ELIGIBILITY, topology.FREQUENCY, topology.DEFERRED)
    if stage in envelope_stages or stage.startswith("send."):
        return Envelope
    return None


def _last_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    """The most recent `x-death` entry (the broker puts it first)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str | bytes) and value.strip().isdigit():
        return int(value)
    return default


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
